"""An external id naming a person an alias merged away (SPEC 4: an external id wins over every
lookup, so it is not followed to the survivor): send and dry-run --lookups both fail the event
before any request, with the same words, whether the merge was made earlier in the same run or
by an earlier send whose state this one carries. Found in the mixed workload (seed 14), where a
lead's person_id named a person its line 1282 merged: send POSTed the lead and Pipedrive
refused it (400 'person 15 not found'), while the dry-run planned it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import TOKEN, alias, identify, rpd_send, track, write_events
from test_dry_run_against_send import disagreements, dry_run, send
from test_send_identities import add_person

from rudder_pipedrive_cli.sandbox import Sandbox

REASON = (
    "person 1 (person_id external id) was merged into person 2 by an earlier alias; "
    "point the event at person 2"
)


def seeded(sandbox: Sandbox) -> None:
    """Persons 1 (u-a) and 2 (u-b), made by another client."""
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}) as api:
        assert [add_person(api, "u-a", "Ann"), add_person(api, "u-b", "Bob")] == [1, 2]


def naming_person_1() -> list[dict[str, Any]]:
    """A lead and an identify of person 1 by its person_id external id (each with a userId of
    its own: one failure of a userId says the next is its root cause)."""
    lead = track("m-2", "u-c", "Signed Up")
    update = identify("m-3", "u-d", role="CTO")
    for event in (lead, update):
        event["context"] = {"externalId": [{"type": "person_id", "id": 1}]}
    return [lead, update]


def assert_refused_alike(
    planned: list[dict[str, Any]],
    sent: dict[str, dict[str, Any]],
    letters: list[dict[str, Any]],
    sources: list[str],
) -> None:
    """Both events failed before any request, in the dry-run's records, the send's outcomes and
    its dead letters, with the same reason."""
    by_source = {record["source"]: record for record in planned}
    for source in sources:
        record, outcome = by_source[source], sent[source]["outcome"]
        assert (record["outcome"], record["reason"], record["requests"]) == ("failed", REASON, [])
        assert (outcome.status, outcome.reason, outcome.retryable) == ("failed", REASON, False)
        assert sent[source]["requests"] == []
    assert [(d["source"], d["error"]) for d in letters] == [
        (source, {"reason": REASON, "stage": "validate", "status": None, "retryable": False})
        for source in sources
    ]
    assert disagreements(planned, sent) == []


def test_an_external_id_of_a_person_merged_earlier_in_the_run_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    seeded(sandbox)
    events = write_events(tmp_path / "in.ndjson", [alias("m-1", "u-a", "u-b"), *naming_person_1()])

    planned = dry_run(sandbox, tmp_path, events)
    before = sandbox.stats()["requests"]
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 1, run.stderr
    assert planned[0]["outcome"] == "planned"
    assert sent[f"{events}:1"]["outcome"].status == "sent"  # the merge
    assert_refused_alike(planned, sent, run.dead_letters, [f"{events}:2", f"{events}:3"])
    requests = sandbox.stats()["requests"]
    made = {key: n - before.get(key, 0) for key, n in requests.items() if n != before.get(key)}
    # Each request of the send is its listings' or the alias's; none is the lead's or identify's.
    assert made.get("PUT /v1/persons/{id}/merge") == 1
    assert "POST /v1/leads" not in made
    assert not [key for key in made if key.startswith("PATCH")]
    assert [p["id"] for p in sandbox.state()["persons"]] == [2]


def test_an_external_id_of_a_person_an_earlier_send_merged_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The merge is in the state the first send kept: the second send, and a dry-run --lookups
    with that state, refuse the external id as the first would have."""
    seeded(sandbox)
    state = tmp_path / "state.sqlite"
    first = write_events(tmp_path / "first.ndjson", [alias("m-1", "u-a", "u-b")])
    merged = rpd_send(sandbox, tmp_path, first, state=state, name="first")
    assert merged.exit_code == 0, merged.stderr
    events = write_events(tmp_path / "later.ndjson", naming_person_1())

    planned = dry_run(sandbox, tmp_path, events, args=("--state", str(state)))
    before = sandbox.stats()["requests"]
    run, sent = send(monkeypatch, sandbox, tmp_path, events, state=state)

    assert run.exit_code == 1, run.stderr
    assert_refused_alike(planned, sent, run.dead_letters, [f"{events}:1", f"{events}:2"])
    requests = sandbox.stats()["requests"]
    made = {key for key, n in requests.items() if n != before.get(key)}
    assert "POST /v1/leads" not in made
    assert not [key for key in made if key.startswith(("PATCH", "PUT", "POST"))]
