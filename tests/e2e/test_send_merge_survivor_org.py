"""An alias that merges a person in an organization into one in none: Pipedrive (and the
sandbox) give the survivor the merged person's organization, and the deals, activities and notes
made for it next name that organization, in the send and in the dry-run's plan alike. rpd read
only the merge answer's id: the survivor's organization stayed unknown to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ONE, alias, group, identify, rpd_send, track, write_events
from test_dry_run_against_send import disagreements, dry_run, mixed_workload, send

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.replies import Answer

# config.example.toml's [[track]] rules: a deal, an activity, a note and (any other name) a lead.
MADE = {
    "Demo Requested": "/api/v2/deals",
    "Call Scheduled": "/api/v2/activities",
    "Support Ticket Opened": "/v1/notes",
    "Signed Up": "/v1/leads",
}


def tracks_of(user_id: str) -> list[dict[str, Any]]:
    return [track(f"m-t{n}", user_id, name) for n, name in enumerate(MADE)]


def old_in_an_organization(sandbox: Sandbox, tmp_path: Path) -> None:
    """An earlier run (another state): u-old's person 1 in organization 1, u-new's 2 in none."""
    known = [
        identify("s-1", "u-old", name="Old"),
        identify("s-2", "u-new", name="New"),
        group("s-3", "u-old", "g-1", name="Acme"),
    ]
    seeding = write_events(tmp_path / "seed.ndjson", known)
    earlier = rpd_send(sandbox, tmp_path, seeding, state=tmp_path / "seed.sqlite", args=ONE)
    assert earlier.exit_code == 0, earlier.stderr


def created(sent: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The body of each record the send posted, by its endpoint."""
    return {
        request.path: request.body
        for event in sent.values()
        for request in event["requests"]
        if request.method == "POST" and request.path in MADE.values()
    }


def test_records_made_for_a_merge_survivor_name_the_organization_the_merge_gave_it(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """An earlier run (another state) put u-old's person (1) in organization 1; u-new's (2) is
    in none. The merge's answer names the survivor's organization, the one thing that tells
    this run of it: the deal, activity and note name it; a lead names its person alone, as
    every lead rpd makes (SPEC 4)."""
    old_in_an_organization(sandbox, tmp_path)
    events = write_events(
        tmp_path / "in.ndjson", [alias("m-1", "u-old", "u-new"), *tracks_of("u-new")]
    )

    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 0, run.stderr
    assert [p["org_id"] for p in sandbox.state()["persons"]] == [1]
    bodies = created(sent)
    assert [bodies[MADE[name]].get("org_id") for name in list(MADE)[:3]] == [1, 1, 1]
    assert [bodies[MADE["Signed Up"]].get(key) for key in ("org_id", "organization_id")] == [
        None,
        None,
    ]


def test_a_merge_whose_answer_was_lost_is_found_done_with_the_organization_it_gave(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The merge is made and its answer lost (the connection closed): rpd finds it done (the
    merged person gone, the survivor there) and reads the survivor's organization from the
    read that found it, as it would have from the merge's answer."""
    old_in_an_organization(sandbox, tmp_path)
    handle = sandbox.app.handle

    def dropping(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        answer = handle(method, target, headers, body)
        return replace(answer, drop=True) if target.endswith("/merge") else answer

    monkeypatch.setattr(sandbox.app, "handle", dropping)
    deal = track("m-2", "u-new", "Demo Requested")
    events = write_events(tmp_path / "in.ndjson", [alias("m-1", "u-old", "u-new"), deal])

    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 0, run.stderr
    assert sandbox.state()["merges"] == [{"merged_id": 1, "survivor_id": 2}]
    merge = [(r.method, r.path) for r in sent[f"{events}:1"]["requests"]]
    assert merge == [
        ("GET", "/api/v2/itemSearch/field"),
        ("GET", "/api/v2/itemSearch/field"),
        ("PUT", "/v1/persons/1/merge"),
        ("GET", "/api/v2/persons/1"),
        ("GET", "/api/v2/persons/2"),
    ]
    assert created(sent)["/api/v2/deals"]["org_id"] == 1


def test_the_dry_run_plans_the_organization_a_merge_gives_its_survivor_as_the_send_takes_it(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The input links u-old's person to an organization, then merges it into u-new's: the
    dry-run, whose merge has no answer naming an organization, gives the survivor the merged
    person's as Pipedrive does, and plans what the send makes."""
    known = [identify("s-1", "u-old", name="Old"), identify("s-2", "u-new", name="New")]
    seeding = write_events(tmp_path / "seed.ndjson", known)
    earlier = rpd_send(sandbox, tmp_path, seeding, state=tmp_path / "seed.sqlite", args=ONE)
    assert earlier.exit_code == 0, earlier.stderr
    linked = [group("m-0", "u-old", "g-1", name="Acme"), alias("m-1", "u-old", "u-new")]
    events = write_events(tmp_path / "in.ndjson", [*linked, *tracks_of("u-new")])

    planned = dry_run(sandbox, tmp_path, events)
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 0, run.stderr
    # The organization's create first, then what the tracks make.
    posted = [r for p in planned for r in p["requests"] if r["method"] == "POST"][1:]
    assert [r["body"].get("org_id") for r in posted] == [*["{org:g-1}"] * 3, None]
    assert disagreements(planned, sent) == []


def test_the_mixed_workload_s_seed_10_is_planned_as_send_runs_it(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Seed 10 (line 1359): person 16 (u-107), linked to organization 5 by the input, is merged
    into u-103's; an identify of u-107 then updates the survivor, whose PATCH answer told the
    send its organization, and the activity of line 1359 named it in the send alone."""
    events = mixed_workload(sandbox, tmp_path, 10)

    planned = dry_run(sandbox, tmp_path, events, args=("--identities", "search"))
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 1, run.stderr  # bad values fail events, alike
    assert disagreements(planned, sent) == []
