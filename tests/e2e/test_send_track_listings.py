"""One listing of the account's deals, activities and notes in place of listing each person's
(SPEC 5, issue 16 item 4), over loopback HTTP against the sandbox: a rerun without the state
duplicates nothing, and each kind is listed for the account only where that costs fewer requests
and tokens than listing each tracked person's records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import (
    LISTINGS,
    TOKEN,
    USER_ID_FIELD,
    SendRun,
    archive_deal,
    assert_report_adds_up,
    rpd_send,
    track,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox

pytestmark = pytest.mark.usefixtures("index_clock_stopped")  # the counts of a fast run

USERS = ("u-1", "u-2", "u-3")
# config.example.toml's rules: a deal, an activity and a note.
DEAL, ACTIVITY, NOTE = "Demo Requested", "Call Scheduled", "Support Ticket Opened"
INDEX = {"GET /api/v2/persons": 1, "GET /api/v2/organizations": 1}  # the identity index


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}) as client:
        yield client


def add_person(api: httpx.Client, user_id: str) -> int:
    """A person made by another client (not rpd): rpd knows nothing of its records."""
    response = api.post(
        "/api/v2/persons",
        json={"name": f"Person {user_id}", "custom_fields": {USER_ID_FIELD: user_id}},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["id"])


def send(sandbox: Sandbox, tmp_path: Path, events: list[dict[str, Any]], name: str) -> SendRun:
    """`rpd send --identities index` with a state file of its own (`name`), ending well."""
    run = rpd_send(
        sandbox,
        tmp_path,
        write_events(tmp_path / f"{name}.ndjson", events),
        args=("--identities", "index"),
        state=tmp_path / f"{name}.sqlite",
        name=name,
    )
    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    return run


def held(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    state = sandbox.state()
    return {kind: state[kind] for kind in ("deals", "activities", "notes")}


def test_a_rerun_without_the_state_lists_each_kind_once_for_the_account(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    persons = {user: add_person(api, user) for user in USERS}
    # Records another client made: left alone, and no reason to skip anything.
    by_hand = api.post(
        "/api/v2/deals",
        json={"title": "By hand", "person_id": persons["u-1"], "origin_id": "crm:9"},
    )
    assert by_hand.status_code == 200, by_hand.text
    note = api.post("/v1/notes", json={"content": "Called back", "person_id": persons["u-2"]})
    assert note.status_code == 200, note.text
    events = [
        track(f"{name[0]}-{user}", user, name) for user in USERS for name in (DEAL, ACTIVITY, NOTE)
    ]
    listings = {"GET /api/v2/activities": 1, "GET /v1/notes": 1}
    listings |= {"GET /api/v2/deals": 1, "GET /api/v2/deals/archived": 1}
    pages = {"pages": 2, "refreshes": 0, "lead_pages": 0}
    pages |= {"deal_pages": 2, "activity_pages": 1, "note_pages": 1}
    line = (
        "identities: by index (2 listing pages, 2 of deals, 1 of activities, 1 of notes; "
        "0 refreshes)"
    )

    first = send(sandbox, tmp_path, events, "one")

    report = first.report
    assert report is not None
    assert report["by_type"] == {"track": {"sent": 9}}
    # Three persons to list for each kind, one page of the account's records instead.
    assert report["requests"] == LISTINGS | INDEX | listings | {
        "POST /api/v2/deals": 3,
        "POST /api/v2/activities": 3,
        "POST /v1/notes": 3,
    }
    assert report["identity_index"] == pages
    assert line in first.stderr
    before = held(sandbox)
    assert sorted(deal["origin_id"] for deal in before["deals"]) == [
        "crm:9",
        "rpd:D-u-1",
        "rpd:D-u-2",
        "rpd:D-u-3",
    ]
    assert [len(before[kind]) for kind in ("activities", "notes")] == [3, 4]

    again = send(sandbox, tmp_path, events, "two")

    report = again.report
    assert report is not None
    assert report["by_type"] == {"track": {"skipped": 9}}
    assert report["requests"] == LISTINGS | INDEX | listings
    assert report["identity_index"] == pages
    assert held(sandbox) == before  # no deal, activity or note twice


def test_where_a_kind_has_one_person_to_list_its_listing_is_the_persons_own(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    persons = {user: add_person(api, user) for user in USERS}
    done = api.post(
        "/v1/notes", json={"content": "<p>Old</p><p>rpd:N-u-1</p>", "person_id": persons["u-1"]}
    )
    assert done.status_code == 200, done.text
    events = [track(f"D-{user}", user, DEAL) for user in USERS]
    events += [track("N-u-1", "u-1", NOTE), track("A-u-2", "u-2", ACTIVITY)]

    run = send(sandbox, tmp_path, events, "run")

    report = run.report
    assert report is not None
    assert report["by_type"] == {"track": {"sent": 4, "skipped": 1}}
    # Deals: three persons, so the account's; notes and activities: one person each against
    # one page of the account's, equal, so that person's own (`GET ...?person_id=`).
    assert report["identity_index"] == {
        "pages": 2,
        "refreshes": 0,
        "lead_pages": 0,
        "deal_pages": 2,  # its deals and its archived deals
    }
    assert report["requests"] == LISTINGS | INDEX | {
        "GET /api/v2/deals": 1,
        "GET /api/v2/deals/archived": 1,
        "GET /v1/notes": 1,
        "GET /api/v2/activities": 1,
        "POST /api/v2/deals": 3,
        "POST /api/v2/activities": 1,
    }
    records = held(sandbox)
    assert [note["content"] for note in records["notes"]] == ["<p>Old</p><p>rpd:N-u-1</p>"]
    assert len(records["deals"]) == 3
    (activity,) = records["activities"]
    assert activity["person_id"] == persons["u-2"]


def test_the_account_leads_listed_do_not_stand_for_a_persons_deals(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    for user in USERS:
        add_person(api, user)
    # Leads for three persons (the account's leads listed), a deal for one (its own listed).
    events = [track(f"L-{user}", user, "Trial Started") for user in USERS]
    events.append(track("D-u-1", "u-1", DEAL))
    send(sandbox, tmp_path, events, "one")
    before = held(sandbox)
    assert [deal["origin_id"] for deal in before["deals"]] == ["rpd:D-u-1"]

    again = send(sandbox, tmp_path, events, "two")

    report = again.report
    assert report is not None
    assert report["by_type"] == {"track": {"skipped": 4}}
    assert report["requests"] == LISTINGS | INDEX | {
        "GET /v1/leads": 1,
        "GET /v1/leads/archived": 1,
        "GET /api/v2/deals": 1,  # u-1's deals: the leads listed say nothing of them
        "GET /api/v2/deals/archived": 1,
    }
    assert report["identity_index"] == {"pages": 2, "refreshes": 0, "lead_pages": 2}
    assert held(sandbox) == before
    assert sorted(lead["origin_id"] for lead in sandbox.state()["leads"]) == [
        f"rpd:L-{user}" for user in USERS
    ]


def test_an_account_with_more_activities_than_pages_worth_lists_each_persons_instead(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    persons = {user: add_person(api, user) for user in ("u-1", "u-2")}
    # Another client's 501 activities: two pages of the account's, where two persons' own
    # listings cost one page each.
    for n in range(501):
        made = api.post("/api/v2/activities", json={"subject": f"Call {n}", "type": "call"})
        assert made.status_code == 200, made.text
    done = api.post(
        "/api/v2/activities",
        json={"subject": "Old", "person_id": persons["u-1"], "note": "<p>rpd:A-u-1</p>"},
    )
    assert done.status_code == 200, done.text
    events = [track(f"A-{user}", user, ACTIVITY) for user in persons]

    run = send(sandbox, tmp_path, events, "run")

    report = run.report
    assert report is not None
    assert report["by_type"] == {"track": {"sent": 1, "skipped": 1}}
    # One page of the account's (10 tokens) showed more to come: a second would have cost what
    # the two persons' own listings cost (20). So those, after it.
    assert report["requests"] == LISTINGS | INDEX | {
        "GET /api/v2/activities": 3,
        "POST /api/v2/activities": 1,
    }
    assert report["identity_index"] == {
        "pages": 2,
        "refreshes": 0,
        "lead_pages": 0,
        "activity_pages": 1,
    }
    assert (
        "warning: the account holds more activities than its persons: listing them all would "
        "cost more than listing those of 2 persons one by one (20 API tokens); stopped after 10, "
        "each person's are listed when needed"
    ) in run.stderr
    mine = [a for a in sandbox.state()["activities"] if a["person_id"] is not None]
    assert sorted(a["note"].rsplit("<p>", 1)[-1] for a in mine) == [
        "rpd:A-u-1</p>",
        "rpd:A-u-2</p>",
    ]


def test_a_deal_archived_in_pipedrive_is_found_by_the_account_listing_too(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    for user in USERS:
        add_person(api, user)
    events = [track(f"D-{user}", user, DEAL) for user in USERS]
    send(sandbox, tmp_path, events, "one")
    by_origin = {deal["origin_id"]: deal["id"] for deal in held(sandbox)["deals"]}
    archive_deal(sandbox, by_origin["rpd:D-u-1"])  # events go concurrently: made in any order

    again = send(sandbox, tmp_path, events, "two")

    report = again.report
    assert report is not None
    assert report["by_type"] == {"track": {"skipped": 3}}
    assert report["requests"] == LISTINGS | INDEX | {
        "GET /api/v2/deals": 1,
        "GET /api/v2/deals/archived": 1,
    }
    assert sorted((deal["origin_id"], deal["is_archived"]) for deal in held(sandbox)["deals"]) == [
        ("rpd:D-u-1", True),
        ("rpd:D-u-2", False),
        ("rpd:D-u-3", False),
    ]
