"""A person's many track events over two runs with one state (SPEC 5 leads exactly once), over
loopback HTTP against the sandbox: the person's leads are listed once, the first time; every lead
rpd creates then only adds its origin to what the state knows (core/identity_cache.py's `Added`),
so the second run lists nothing and no lead is ever made twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from e2e_support import (
    CLEAN_ENV,
    LISTINGS,
    TOKEN,
    USER_ID_FIELD,
    alias,
    assert_report_adds_up,
    identify,
    rpd_send,
    track,
    write_events,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.sandbox import Sandbox

EVENT = "Order Completed"  # config.example.toml: a lead (no track rule)


def send(
    sandbox: Sandbox, tmp_path: Path, events: list[dict[str, Any]], name: str
) -> dict[str, Any]:
    run = rpd_send(
        sandbox,
        tmp_path,
        write_events(tmp_path / f"{name}.ndjson", events),
        state=tmp_path / "state.sqlite",
        name=name,
    )
    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    return run.report


def origins(sandbox: Sandbox) -> list[str]:
    state = sandbox.state()
    return sorted(lead["origin_id"] for lead in state["leads"])


def test_a_persons_tracks_over_two_runs_list_once_and_never_duplicate(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}) as api:
        person = api.post(
            "/api/v2/persons",
            json={"name": "Ada", "custom_fields": {USER_ID_FIELD: "u-1"}},
        ).json()["data"]["id"]
        by_hand = api.post(
            "/v1/leads", json={"title": "By hand", "person_id": person, "origin_id": "crm:1"}
        )
        assert by_hand.status_code == 201, by_hand.text
    first = [track(f"t-{n}", "u-1", EVENT) for n in range(1, 6)]

    report = send(sandbox, tmp_path, first, "one")

    assert report["by_type"] == {"track": {"sent": 5}}
    assert report["requests"] == LISTINGS | {
        "GET /api/v2/itemSearch/field": 1,  # the person, by its userId field
        "GET /v1/leads": 1,  # listed once, the first time: its leads, archived ones too
        "GET /v1/leads/archived": 1,
        "POST /v1/leads": 5,
    }
    assert origins(sandbox) == ["crm:1", *(f"rpd:t-{n}" for n in range(1, 6))]

    # The same events again (the journal's) and five new ones: the state knows the person's
    # list, grown by the five it created, so nothing is listed again.
    second = first + [track(f"t-{n}", "u-1", EVENT) for n in range(6, 11)]
    report = send(sandbox, tmp_path, second, "two")

    assert report["by_type"] == {"track": {"skipped": 5, "sent": 5}}
    assert report["requests"] == LISTINGS | {"POST /v1/leads": 5}
    assert origins(sandbox) == ["crm:1", *sorted(f"rpd:t-{n}" for n in range(1, 11))]


def test_rpds_lead_after_a_full_page_of_leads_by_hand_is_found_by_a_run_without_state(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A person's leads page by their records: 500 made by hand fill the first page, rpd's lead
    is on the second, and a rerun that lost its state finds it there (review of issue 12's
    probes: paging by the origins read stopped after the first page and made it twice)."""
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}) as api:
        person = api.post(
            "/api/v2/persons",
            json={"name": "Ada", "custom_fields": {USER_ID_FIELD: "u-1"}},
        ).json()["data"]["id"]
        for n in range(500):
            made = api.post("/v1/leads", json={"title": f"By hand {n}", "person_id": person})
            assert made.status_code == 201, made.text
    events = write_events(tmp_path / "paid.ndjson", [track("m-1", "u-1", EVENT)])
    # Each run with a new state: the first lists one page (500 leads), the second two (501).
    for name, outcome, pages in (("first", "sent", 1), ("again", "skipped", 2)):
        run = rpd_send(sandbox, tmp_path, events, state=tmp_path / f"{name}.sqlite", name=name)
        assert run.exit_code == 0, run.stderr
        assert run.report is not None
        assert run.report["by_type"] == {"track": {outcome: 1}}
        assert run.report["requests"]["GET /v1/leads"] == pages
    made = [lead.get("origin_id") for lead in sandbox.state()["leads"]]
    assert (len(made), made.count("rpd:m-1")) == (501, 1)


def test_state_show_counts_once_the_leads_of_two_persons_merged(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A merge gives the survivor the merged person's lead origins, which the merged person's
    rows keep too: `rpd state show` counted a lead once per person holding it (68,887 origin ids
    shown for a backfill's 65,986 leads). Two persons with a lead each, merged: 2, not 3. Nor
    is the person merged away counted among those whose records were listed (its rows stay):
    '2 origin ids known for 2 persons' where Pipedrive holds one, and so for each kind."""
    events = [
        identify("m-1", "u-1", name="One"),
        track("t-1", "u-1", EVENT),
        identify("m-2", "u-2", name="Two"),
        track("t-2", "u-2", EVENT),
        alias("m-3", "u-1", "u-2"),  # u-1's person merged into u-2's
    ]
    report = send(sandbox, tmp_path, events, "a")
    assert report["requests"]["PUT /v1/persons/{id}/merge"] == 1
    assert origins(sandbox) == ["rpd:t-1", "rpd:t-2"]
    show = ["state", "show", "--state", str(tmp_path / "state.sqlite")]
    shown = CliRunner().invoke(app, [*show, "-f", "json"], env=CLEAN_ENV)
    assert shown.exit_code == 0, shown.output
    (namespace,) = orjson.loads(shown.stdout)["namespaces"]
    assert namespace["lead_origins"]["lead"] == 2
    assert namespace["leads_listed"] == {"lead": 1, "deal": 1, "activity": 1, "note": 1}
    table = CliRunner().invoke(app, show, env={**CLEAN_ENV, "COLUMNS": "200"})
    (row,) = [line for line in table.stdout.splitlines() if "│ leads" in line]
    assert row.split("│")[2].strip() == "2 origin ids known for 1 person"
    # The identities are u-1 and u-2's: said as 2 persons, where Pipedrive holds 1.
    assert namespace["identities"] == {"person": 2, "org": 0}
    (ids,) = [line for line in table.stdout.splitlines() if "│ identities" in line]
    assert ids.split("│")[2].strip() == "2 userIds, 0 groupIds"
