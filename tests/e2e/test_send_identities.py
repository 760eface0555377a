"""Issue 15: `--identities search|index|auto` over loopback HTTP against the sandbox: the index
built by listing, found records updated and new ones created with no search, a person another
client made during the run found (not duplicated), the index kept in the state and refreshed by
a later run, ambiguous identities, auto's choice, and one listing of the account's leads."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    GROUP_ID_FIELD,
    LISTINGS,
    TOKEN,
    USER_ID_FIELD,
    SendRun,
    alias,
    assert_report_adds_up,
    group,
    holdings,
    identify,
    rpd_send,
    track,
    write_events,
)
from fakes import FakeClock
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli import identities
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.sandbox import Sandbox, routes
from rudder_pipedrive_cli.sandbox.replies import Answer

# The counts of a fast run; tests of a slow one set a stepping FakeClock.
pytestmark = pytest.mark.usefixtures("index_clock_stopped")

SEARCH = "GET /api/v2/itemSearch/field"


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}) as client:
        yield client


def add_person(api: httpx.Client, user_id: str, name: str = "Other Client") -> int:
    """A person made by another client (not rpd)."""
    response = api.post(
        "/api/v2/persons", json={"name": name, "custom_fields": {USER_ID_FIELD: user_id}}
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["id"])


def send_by(
    sandbox: Sandbox,
    tmp_path: Path,
    events: list[dict[str, Any]],
    way: str = "index",
    *,
    state: Path | None = None,
    name: str = "run",
    args: tuple[str, ...] = (),
) -> SendRun:
    """`rpd send` of `events` with `--identities WAY`; it must end well with a report that adds
    up and says the way it took."""
    path = write_events(tmp_path / f"{name}.ndjson", events)
    run = rpd_send(
        sandbox, tmp_path, path, args=("--identities", way, *args), state=state, name=name
    )
    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    return run


def test_index_way_lists_once_and_never_searches(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    existing = {user: add_person(api, user) for user in ("u-1", "u-2", "u-3")}
    events = [identify(f"m-{n}", f"u-{n}", name=f"User {n}", role="Dev") for n in range(1, 6)]
    run = send_by(sandbox, tmp_path, events, "index")
    report = run.report
    assert report is not None
    assert (report["identities"], report["identities_by_search"]) == ("index", [])
    assert report["identity_index"] == {"pages": 2, "refreshes": 0, "lead_pages": 0}
    assert report["requests"] == LISTINGS | {
        "GET /api/v2/organizations": 1,  # the organization index: one (empty) page
        "GET /api/v2/persons": 1,  # the person index: one page
        "PATCH /api/v2/persons/{id}": 3,
        "POST /api/v2/persons": 2,
    }
    assert "identities: by index (2 listing pages; 0 refreshes)" in run.stderr
    found = holdings(sandbox)
    assert found.user_ids() == {f"u-{n}": 1 for n in range(1, 6)}
    for user, person in existing.items():
        assert found.person(user)["id"] == person
        assert found.person(user)["name"] == f"User {user[2:]}"


def test_a_person_another_client_makes_during_the_run_is_found_not_duplicated(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_person(api, "u-1")
    made: list[int] = []
    # Readings: 1 and 2 when the two indexes are listed; 3 when u-1's lookup weighs a refresh:
    # the other client has just made u-late, 11 s after the listing.
    clock = FakeClock(step=11.0, at=3, then=lambda: made.append(add_person(api, "u-late")))
    monkeypatch.setattr(identities, "CLOCK", clock)
    events = [
        identify("m-1", "u-1", name="One"),
        identify("m-2", "u-late", name="Late"),
        identify("m-3", "u-new", name="New"),
    ]
    run = send_by(sandbox, tmp_path, events, args=("--concurrency", "1"))
    assert made, "the other client's person was made during the run"
    found = holdings(sandbox)
    assert found.user_ids() == {"u-1": 1, "u-late": 1, "u-new": 1}  # no second u-late
    assert found.person("u-late")["id"] == made[0]
    assert found.person("u-late")["name"] == "Late"  # rpd's identify updated it
    report = run.report
    assert report is not None
    # Each lookup 11 s after the listing before refreshes it (updated_since), found or not:
    # u-1's found u-late, then u-late's and u-new's.
    assert report["identity_index"] == {"pages": 5, "refreshes": 3, "lead_pages": 0}
    assert report["requests"]["GET /api/v2/persons"] == 4
    assert report["requests"]["POST /api/v2/persons"] == 1
    assert report["requests"]["PATCH /api/v2/persons/{id}"] == 2
    assert SEARCH not in report["requests"]


def test_a_fresh_index_is_not_listed_again_before_each_create(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identities, "CLOCK", FakeClock(step=1.0))  # never 10 s old
    events = [identify(f"m-{n}", f"u-{n}", name=f"U{n}") for n in range(5)]
    run = send_by(sandbox, tmp_path, events, "index")
    assert run.report is not None
    assert run.report["identity_index"] == {"pages": 2, "refreshes": 0, "lead_pages": 0}
    assert run.report["requests"]["POST /api/v2/persons"] == 5


def test_misses_while_a_refresh_is_in_flight_wait_for_it_instead_of_each_listing_again(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index listed at 0 s, every lookup after at 100 s: the first miss refreshes it, and
    the others in flight (8 at once, each answer 50 ms away) made one refresh each, listing
    again what that one lists (15,000 new userIds: 16 refreshes, 241 pages). They wait for it
    and answer from it: one refresh, and every userId still made once."""
    sandbox = make_sandbox(plan="unlimited", latency_ms=50)
    readings = iter([0.0, 0.0])  # the person and organization indexes built
    monkeypatch.setattr(identities, "CLOCK", lambda: next(readings, 100.0))
    events = [identify(f"m-{n}", f"u-{n}", name=f"U{n}") for n in range(16)]
    run = send_by(sandbox, tmp_path, events, "index", args=("--concurrency", "8"))
    assert run.report is not None
    assert run.report["identity_index"] == {"pages": 3, "refreshes": 1, "lead_pages": 0}
    assert run.report["requests"]["GET /api/v2/persons"] == 2
    assert run.report["requests"]["POST /api/v2/persons"] == 16
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(16)}


def test_the_index_is_kept_in_the_state_and_a_later_run_refreshes_it(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    add_person(api, "u-1")
    state = tmp_path / "state.sqlite"
    send_by(sandbox, tmp_path, [identify("m-1", "u-2", name="Two")], state=state, name="a")
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT kind, value FROM identity_index ORDER BY value").fetchall()
    assert rows == [("person", "u-1"), ("person", "u-2")]  # listed, then created
    late = add_person(api, "u-3")
    second = send_by(
        sandbox, tmp_path, [identify("m-2", "u-3", name="Three")], state=state, name="b"
    )
    assert second.report is not None
    # Not listed whole again: u-3 missing, the person index is refreshed from the first run's
    # listing (updated_since); the organization index is not needed.
    assert second.report["identity_index"] == {"pages": 1, "refreshes": 1, "lead_pages": 0}
    assert "identities: by index (1 listing page; 1 refresh)" in second.stderr.splitlines()
    assert second.report["requests"]["GET /api/v2/persons"] == 1
    assert "GET /api/v2/organizations" not in second.report["requests"]
    assert holdings(sandbox).user_ids() == {"u-1": 1, "u-2": 1, "u-3": 1}
    assert holdings(sandbox).person("u-3")["id"] == late


def test_two_persons_with_one_user_id_resolve_as_ambiguous_search_hits(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    low = add_person(api, "u-twice", name="First")
    high = add_person(api, "u-twice", name="Second")
    run = send_by(sandbox, tmp_path, [identify("m-1", "u-twice", name="Updated")], "index")
    names = {p["id"]: p["name"] for p in holdings(sandbox).persons}
    assert names == {low: "Updated", high: "Second"}
    assert "ambiguous identity: several persons have one userId; using the lowest id" in run.stderr


def test_organizations_by_index(sandbox: Sandbox, api: httpx.Client, tmp_path: Path) -> None:
    response = api.post(
        "/api/v2/organizations", json={"name": "Acme", "custom_fields": {GROUP_ID_FIELD: "g-1"}}
    )
    org = response.json()["data"]["id"]
    events = [identify("m-1", "u-1", name="One"), group("m-2", "u-1", "g-1", name="Acme Inc")]
    run = send_by(sandbox, tmp_path, events, "index")
    assert run.report is not None
    assert SEARCH not in run.report["requests"]
    assert holdings(sandbox).org("g-1")["id"] == org
    assert holdings(sandbox).person("u-1")["org_id"] == org


@pytest.mark.parametrize(("users", "way"), [(199, "search"), (200, "index")])
def test_auto_takes_the_index_from_200_unknown_identities(
    sandbox: Sandbox, tmp_path: Path, users: int, way: str
) -> None:
    events = [identify(f"m-{n}", f"u-{n}", name=f"U{n}") for n in range(users)]
    run = send_by(sandbox, tmp_path, events, "auto")
    assert run.report is not None
    assert run.report["identities"] == way
    # By index, the groupIds (none counted) went by search: it said "index" alone (small18).
    assert run.report.get("identities_by_search") == (["groupId"] if way == "index" else None)
    assert run.report["requests"].get(SEARCH, 0) == (users if way == "search" else 0)
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(users)}


def test_auto_counts_identities_the_state_resolves_as_known(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    events = [identify(f"m-{n}", f"u-{n}", name=f"U{n}") for n in range(150)]
    first = send_by(sandbox, tmp_path, events, "auto", state=state, name="a")
    assert first.report is not None and first.report["identities"] == "search"
    # 250 userIds, 150 of them cached by the first run: 100 unknown, so search again.
    more = [identify(f"n-{n}", f"u-{n}", name=f"V{n}") for n in range(250)]
    second = send_by(sandbox, tmp_path, more, "auto", state=state, name="b")
    assert second.report is not None
    assert second.report["identities"] == "search"
    assert second.report["requests"][SEARCH] == 100


def test_stdin_with_auto_searches(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(tmp_path / "in.ndjson", [identify("m-1", "u-1", name="One")])
    run = rpd_send(sandbox, tmp_path, "-", args=(), stdin=events.read_bytes())
    assert run.exit_code == 0, run.stderr
    assert run.report is not None and run.report["identities"] == "search"


def test_one_listing_of_the_account_leads_replaces_listing_each_persons(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    persons = {user: add_person(api, user) for user in ("u-1", "u-2", "u-3")}
    done = api.post(
        "/v1/leads",
        json={"title": "Signed Up", "person_id": persons["u-1"], "origin_id": "rpd:t-1"},
    )
    assert done.status_code == 201, done.text
    other = api.post(
        "/v1/leads", json={"title": "By hand", "person_id": persons["u-2"], "origin_id": "crm:9"}
    )
    assert other.status_code == 201, other.text
    events = [
        track("t-1", "u-1", "Signed Up"),  # sent by an earlier run: its lead is there
        track("t-2", "u-2", "Signed Up"),
        track("t-3", "u-3", "Signed Up"),
    ]
    run = send_by(sandbox, tmp_path, events, "index")
    report = run.report
    assert report is not None
    assert report["by_type"] == {"track": {"sent": 2, "skipped": 1}}
    # Once each listing for the account, where each of the 3 persons would have cost one each.
    assert report["requests"]["GET /v1/leads"] == 1
    assert report["requests"]["GET /v1/leads/archived"] == 1
    assert report["identity_index"] == {"pages": 2, "refreshes": 0, "lead_pages": 2}
    assert holdings(sandbox).origin_ids() == {"rpd:t-1": 1, "crm:9": 1, "rpd:t-2": 1, "rpd:t-3": 1}


def test_search_way_lists_each_persons_leads(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    for user in ("u-1", "u-2", "u-3"):
        add_person(api, user)
    events = [track(f"t-{n}", f"u-{n}", "Signed Up") for n in (1, 2, 3)]
    run = send_by(sandbox, tmp_path, events, "search")
    assert run.report is not None
    assert run.report["identities"] == "search"
    assert run.report["requests"]["GET /v1/leads"] == 3
    assert run.report["requests"][SEARCH] == 3


def test_a_bad_identities_flag_is_a_config_error_exit_2(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(tmp_path / "in.ndjson", [identify("m-1", "u-1", name="One")])
    run = rpd_send(sandbox, tmp_path, events, args=("--identities", "all"))
    assert run.exit_code == 2
    assert run.stderr.splitlines() == [
        "error: unknown --identities 'all'",
        "hint: use one of: auto, search, index",
    ]
    assert sandbox.stats()["requests"] == {}


def test_one_tracked_person_has_its_own_leads_listed_not_the_account(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    person = add_person(api, "u-1")
    for n in (2, 3):
        add_person(api, f"u-{n}")
    done = api.post("/v1/leads", json={"title": "Old", "person_id": person, "origin_id": "rpd:t-1"})
    assert done.status_code == 201, done.text
    run = rpd_send(
        sandbox,
        tmp_path,
        write_events(
            tmp_path / "in.ndjson", [track("t-1", "u-1", "Old"), track("t-2", "u-1", "New")]
        ),
        args=("--identities", "index"),
    )
    assert run.exit_code == 0, run.stderr
    report = run.report
    assert report is not None
    # One person to list against one page of the account's leads: equal, so per person.
    assert report["identity_index"] == {"pages": 2, "refreshes": 0, "lead_pages": 0}
    assert report["requests"]["GET /v1/leads"] == 1
    assert report["requests"]["GET /v1/leads/archived"] == 1
    assert report["by_type"] == {"track": {"sent": 1, "skipped": 1}}
    assert holdings(sandbox).origin_ids() == {"rpd:t-1": 1, "rpd:t-2": 1}


def test_a_listing_whose_cursor_repeats_stops_and_identities_go_by_search(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A persons listing whose next_cursor points back at a page it gave: rpd paged it for ever
    (11,363 pages, 113,702 API tokens in 25 s: a day's budget). It stops at the repeat and
    searches instead; the person already there is found, not duplicated."""
    add_person(api, "u-1")
    cursor_page = routes._cursor_page
    first = {"order": ["id", "asc"], "after": [False, 0, 0]}  # before every person: page 1
    again = base64.urlsafe_b64encode(orjson.dumps(first)).decode()
    pages: list[None] = []

    def repeating(req: routes.Request, rows: list[Any], **kwargs: Any) -> Answer:
        answer = cursor_page(req, rows, **kwargs)
        if req.template != "/api/v2/persons":
            return answer
        pages.append(None)  # after 50 pages it ends, so that a client that loops fails, not hangs
        envelope = orjson.loads(answer.body)
        envelope["additional_data"] = {"next_cursor": again if len(pages) < 50 else None}
        return Answer(status=answer.status, body=orjson.dumps(envelope))

    monkeypatch.setattr(routes, "_cursor_page", repeating)
    events = [identify("m-1", "u-1", name="One"), identify("m-2", "u-2", name="Two")]
    run = send_by(sandbox, tmp_path, events)
    report = run.report
    assert report is not None
    assert report["requests"]["GET /api/v2/persons"] == 2  # the first page, and its repeat
    assert report["requests"][SEARCH] == 2
    assert report["events"]["sent"] == 2
    # The JSON says so too: it said "identities": "index" alone (small18).
    assert (report["identities"], report["identities_by_search"]) == ("index", ["userId"])
    assert (
        "warning: the person index could not be listed (index persons: Pipedrive's answer is "
        "malformed (HTTP 200: its next_cursor was given before)"
    ) in " ".join(run.stderr.split())
    assert holdings(sandbox).user_ids() == {"u-1": 1, "u-2": 1}
    # The report's last line says so too, not only the warning before the first event: it said
    # 'identities: by index (3 listing pages; 0 refreshes)' of a run that searched every userId.
    assert run.stderr.splitlines()[-1] == (
        "identities: by index (3 listing pages; 0 refreshes); userIds by search: their index "
        "could not be listed"
    )


def test_auto_counts_no_identity_of_an_event_that_resolves_none(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """QA (rules15): page views a track rule skips, and page events, resolve no identity, yet
    send's first pass counted their userIds: 400 of them took auto to the index (a listing of
    the whole account) while dry-run said a send would search its one identity."""
    skipped = [track(f"t-{n}", f"u-{n}", "Page Viewed") for n in range(200)]
    pages = [{"type": "page", "messageId": f"p-{n}", "userId": f"p-{n}"} for n in range(200)]
    events = [*skipped, *pages, identify("m-1", "u-1", name="One")]

    run = send_by(sandbox, tmp_path, events, "auto")

    assert run.report is not None
    assert run.report["identities"] == "search"
    assert run.report["requests"][SEARCH] == 1
    assert "GET /api/v2/persons" not in run.report["requests"]


@pytest.mark.parametrize("way", ["search", "index"])
def test_a_value_with_spaces_around_is_not_the_user_id_by_index_either(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, way: str
) -> None:
    """A person another client keyed 'u-1 ' (a trailing space, as an import leaves it) is not
    u-1's: itemSearch's exact match does not find it, so by search u-1's person is created; the
    index read the value trimmed and updated that person instead, so the CRM a send left
    depended on the way auto took. Both ways now create u-1 and leave 'u-1 ' as it was."""
    spaced = add_person(api, "u-1 ", name="Imported")
    run = send_by(sandbox, tmp_path, [identify("m-1", "u-1", name="One")], way)
    assert run.report is not None
    assert run.report["requests"]["POST /api/v2/persons"] == 1
    persons = {
        p["id"]: (p["custom_fields"][USER_ID_FIELD], p["name"]) for p in holdings(sandbox).persons
    }
    assert persons == {spaced: ("u-1 ", "Imported"), spaced + 1: ("u-1", "One")}


def rekey(api: httpx.Client, person: int, value: str | None) -> None:
    """Another client gives a person another userId (None: clears it)."""
    response = api.patch(
        f"/api/v2/persons/{person}", json={"custom_fields": {USER_ID_FIELD: value}}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["u-9", None])
@pytest.mark.parametrize("way", ["search", "index"])
def test_a_person_another_client_re_keys_after_an_earlier_run_is_not_the_user_id_any_more(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, way: str, value: str | None
) -> None:
    """The index an earlier run kept said u-1 is person P; another client then gave P userId u-9
    (or none). The index was refreshed only when a lookup missed it, so u-1's identify updated P,
    now u-9's person, with u-1's name and made no u-1 person, where a search finds none and
    creates it. A lookup refreshes a kept index first, found or not, as it does a missing one."""
    other = add_person(api, "u-1", name="Other")
    state = tmp_path / "state.sqlite"
    send_by(sandbox, tmp_path, [identify("m-0", "u-2", name="Two")], way, state=state, name="a")
    rekey(api, other, value)
    run = send_by(
        sandbox, tmp_path, [identify("m-1", "u-1", name="One")], way, state=state, name="b"
    )
    assert run.report is not None
    assert run.report["requests"]["POST /api/v2/persons"] == 1
    assert "PATCH /api/v2/persons/{id}" not in run.report["requests"]
    persons = {
        p["id"]: (p["custom_fields"][USER_ID_FIELD], p["name"]) for p in holdings(sandbox).persons
    }
    assert persons == {
        other: (value, "Other"),
        other + 1: ("u-2", "Two"),
        other + 2: ("u-1", "One"),
    }


def test_a_person_another_client_re_keys_during_the_run_is_not_the_user_id_any_more(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within a run too: u-1's person, listed at the start, given userId u-9 by another client
    11 s later, is no longer taken for u-1's: the lookup, found in an index over 10 s old,
    refreshes it first and creates u-1's person as a search would."""
    other = add_person(api, "u-1", name="Other")
    # Readings: 1 and 2 when the two indexes are listed; 3 when u-1's lookup weighs a refresh.
    monkeypatch.setattr(
        identities, "CLOCK", FakeClock(step=11.0, at=3, then=lambda: rekey(api, other, "u-9"))
    )
    run = send_by(sandbox, tmp_path, [identify("m-1", "u-1", name="One")])
    assert run.report is not None
    assert run.report["identity_index"] == {"pages": 3, "refreshes": 1, "lead_pages": 0}
    persons = {
        p["id"]: (p["custom_fields"][USER_ID_FIELD], p["name"]) for p in holdings(sandbox).persons
    }
    assert persons == {other: ("u-9", "Other"), other + 1: ("u-1", "One")}


def test_a_duplicate_merged_away_by_another_client_is_no_ambiguity_and_leaves_the_index(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """The index an earlier run kept holds two persons with userId u-1; another client then
    merged the lower into the higher, so one is left. A listing shows no deleted record: u-1's
    identify took the lowest, got 404 and searched, right, but the report still warned that
    several persons have one userId, and the gone person stayed in the index for every later
    run to try and warn about again. The 404 takes it out of the index; no ambiguity is said."""
    low, high = add_person(api, "u-1", name="Low"), add_person(api, "u-1", name="High")
    state = tmp_path / "state.sqlite"
    send_by(sandbox, tmp_path, [identify("m-0", "u-2", name="Two")], state=state, name="a")
    merged = api.put(f"/v1/persons/{low}/merge", json={"merge_with_id": high})
    assert merged.status_code == 200, merged.text
    run = send_by(sandbox, tmp_path, [identify("m-1", "u-1", name="One")], state=state, name="b")
    assert run.report is not None
    assert "ambiguous" not in run.stderr
    assert run.report["requests"]["PATCH /api/v2/persons/{id}"] == 2  # the gone one's 404, then
    assert run.report["requests"][SEARCH] == 1  # the person the search finds
    assert holdings(sandbox).person("u-1") | {"name": "One"} == holdings(sandbox).person("u-1")
    assert holdings(sandbox).person("u-1")["id"] == high
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT pd_id, value FROM identity_index ORDER BY value").fetchall()
    assert rows == [(f"i:{high}", "u-1"), (f"i:{high + 1}", "u-2")]  # the gone person left


def test_an_index_an_earlier_run_kept_is_refreshed_once_before_the_events_not_by_each(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept index is not fresh: each of the first events (8 at a time) found it due and made
    its own refresh of everything updated since the earlier run (600 persons another client
    made: 2 pages each, 16 in all). When the first pass counted identities to look up, it is
    refreshed once before the first event, as a build is made."""
    state = tmp_path / "state.sqlite"
    send_by(sandbox, tmp_path, [identify("m-0", "u-0", name="Zero")], state=state, name="a")
    for n in range(600):
        add_person(api, f"x-{n}")
    monkeypatch.setattr(identities, "CLOCK", FakeClock(step=0.01))  # never 10 s old in the run
    events = [identify(f"m-{n}", f"u-{n}", name=f"U{n}") for n in range(1, 21)]
    run = send_by(sandbox, tmp_path, events, state=state, name="b")
    assert run.report is not None
    assert run.report["identity_index"] == {"pages": 2, "refreshes": 1, "lead_pages": 0}
    assert run.report["requests"]["GET /api/v2/persons"] == 2
    assert "GET /api/v2/organizations" not in run.report["requests"]  # no groupId to look up
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(21)} | {
        f"x-{n}": 1 for n in range(600)
    }


def test_dry_run_estimates_no_listing_of_an_index_the_state_keeps_only_its_refreshes(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path
) -> None:
    """With the state of a send that listed 1,200 persons, dry-run's estimate of the index way
    counted those 3 pages again as if listed whole, where a send only refreshes a kept index: a
    page before lookups every 10 s, 1 for 50 new users at the example's growth plan."""
    for n in range(1200):
        add_person(api, f"x-{n}")
    state = tmp_path / "state.sqlite"
    send_by(sandbox, tmp_path, [identify("m-0", "u-0", name="Zero")], state=state, name="a")
    events = write_events(
        tmp_path / "b.ndjson", [identify(f"m-{n}", f"u-{n}", name=f"U{n}") for n in range(1, 51)]
    )
    command = ["dry-run", str(events), "--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url]
    command += ["--state", str(state), "--format", "json", "-q"]
    result = CliRunner().invoke(app, command, env={**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN})
    assert result.exit_code == 0, result.stderr
    estimate = orjson.loads(result.stdout)["identities"]["index"]
    assert (estimate["pages"], estimate["refreshes"]) == (1, 1)


def merged_away_after_a_run(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, way: str, state: Path, person: int
) -> int:
    """A send of one identify keeps its state (and by index, the index), then another client
    merges `person` into a person it makes without a userId (which takes `person`'s): its id."""
    send_by(sandbox, tmp_path, [identify("m-0", "u-0", name="Zero")], way, state=state, name="a")
    plain = int(api.post("/api/v2/persons", json={"name": "Plain"}).json()["data"]["id"])
    merged = api.put(f"/v1/persons/{person}/merge", json={"merge_with_id": plain})
    assert merged.status_code == 200, merged.text
    return plain


@pytest.mark.parametrize("way", ["search", "index"])
def test_an_alias_whose_previous_person_another_client_merged_away_merges_where_it_went(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, way: str
) -> None:
    """u-old's person, in the index an earlier run kept, was merged by another client into a
    person without a userId, which took u-old from it. By index, the alias's merge of the gone
    person got 404 and was taken as rpd's own merge of an earlier run ('merged in an earlier
    run', unchanged): u-old's person was left unmerged beside u-new's, where a search finds it
    and merges it. A 404 for a person the index gave is a stale index, searched again."""
    old, new = add_person(api, "u-old", name="Old"), add_person(api, "u-new", name="New")
    state = tmp_path / "state.sqlite"
    plain = merged_away_after_a_run(sandbox, api, tmp_path, way, state, old)
    run = send_by(sandbox, tmp_path, [alias("m-1", "u-old", "u-new")], way, state=state, name="b")
    assert run.report is not None
    assert run.report["events"]["sent"] == 1
    # By index, the gone person's merge answers 404 first.
    assert run.report["requests"]["PUT /v1/persons/{id}/merge"] == {"search": 1, "index": 2}[way]
    assert "ambiguous" not in run.stderr
    assert {m["merged_id"]: m["survivor_id"] for m in sandbox.state()["merges"]} == {
        old: plain,
        plain: new,
    }
    assert holdings(sandbox).user_ids() == {"u-0": 1, "u-new": 1}


@pytest.mark.parametrize("way", ["search", "index"])
def test_a_track_whose_person_another_client_merged_away_goes_to_where_it_went(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, way: str
) -> None:
    """u-1's person, in the index an earlier run kept, was merged by another client into a
    person without a userId, which took u-1 from it. By index, the lead for the gone person was
    refused (400 naming the person) and the event failed for good, where a search finds the
    person it went to and the lead is made there; a person the index gave is searched again."""
    state = tmp_path / "state.sqlite"
    plain = merged_away_after_a_run(sandbox, api, tmp_path, way, state, add_person(api, "u-1"))
    run = send_by(sandbox, tmp_path, [track("t-1", "u-1", "Signed Up")], way, state=state, name="b")
    assert run.report is not None
    assert run.report["events"]["sent"] == 1
    assert "ambiguous" not in run.stderr
    assert holdings(sandbox).lead("rpd:t-1")["person_id"] == plain


@pytest.mark.parametrize("way", ["search", "index"])
def test_a_user_id_the_input_aliases_to_a_person_another_client_merged_away_goes_where_it_went(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, way: str
) -> None:
    """u-a has no person; the input aliases it to u-b (issue 20), whose person, in the index an
    earlier run kept, another client merged into a person without a userId, which took u-b. By
    search, u-b's person is found where it went and u-a's identify updates it. By index, the gone
    person was taken (labelled found by search, so its 404 was no stale index): 'person N no
    longer exists (HTTP 404)', the alias held back behind it, on every rerun. A person the index
    gives for the userId an alias names is searched again when gone, as any the index gives."""
    state = tmp_path / "state.sqlite"
    plain = merged_away_after_a_run(sandbox, api, tmp_path, way, state, add_person(api, "u-b"))
    events = [identify("m-2", "u-a", name="Ada"), alias("m-1", "u-a", "u-b")]
    run = send_by(sandbox, tmp_path, events, way, state=state, name="b")
    assert run.report is not None
    assert run.report["events"]["failed"] == 0
    assert "POST /api/v2/persons" not in run.report["requests"]
    assert holdings(sandbox).person("u-b")["id"] == plain
    assert holdings(sandbox).person("u-b")["name"] == "Ada"
    # Said once, of the person taken, not also of the gone one.
    assert "warnings: 1 a userId not found is taken as the person" in " ".join(run.stderr.split())


@pytest.mark.parametrize("way", ["search", "index"])
def test_a_user_id_the_input_aliases_to_a_cached_person_that_is_gone_is_searched_again(
    sandbox: Sandbox, api: httpx.Client, tmp_path: Path, way: str
) -> None:
    """u-b's person, in the identity cache an earlier run kept, is gone: another client merged
    it into u-z's person, which keeps its own userId, so no person holds u-b (the sandbox has no
    delete). u-a has no person and the input aliases it to u-b (issue 20): u-a's identify took
    u-b's cached person, 'person N no longer exists (HTTP 410)', failed retryable and held its
    alias back, on every rerun. The gone person is forgotten, u-b's cache entry with it, and
    searched again as any kept id found gone: u-a's person is made and the alias re-keys it."""
    state = tmp_path / "state.sqlite"
    send_by(sandbox, tmp_path, [identify("m-0", "u-b", name="Bee")], way, state=state, name="a")
    gone = holdings(sandbox).person("u-b")["id"]
    merged = api.put(f"/v1/persons/{gone}/merge", json={"merge_with_id": add_person(api, "u-z")})
    assert merged.status_code == 200, merged.text
    events = [identify("m-2", "u-a", name="Ada"), alias("m-1", "u-a", "u-b")]
    run = send_by(sandbox, tmp_path, events, way, state=state, name="b")
    assert run.report is not None
    assert run.report["events"]["sent"] == 2
    # The gone person, then the re-key; by index the index gives the gone person too (a listing
    # never shows one merged away), which is then searched again as any it gives.
    patches = run.report["requests"]["PATCH /api/v2/persons/{id}"]
    assert patches == {"search": 2, "index": 3}[way]
    assert holdings(sandbox).user_ids() == {"u-b": 1, "u-z": 1}
    assert holdings(sandbox).person("u-b")["name"] == "Ada"
    again = send_by(sandbox, tmp_path, events, way, state=state, name="c")
    assert again.report is not None
    assert again.report["events"]["skipped"] == 2  # already done


def test_a_rerun_with_nothing_to_do_lists_nothing_though_an_alias_s_previous_id_never_existed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """An alias's previousId that never was a person (an anonymousId) is never resolved: every
    rerun counted it an identity to look up and refreshed the index before its first event (a
    300,000-event backfill's rerun with nothing to do: 5 listing pages, 1 refresh). Its only
    events done, it needs no lookup: the rerun lists nothing."""
    state = tmp_path / "state.sqlite"
    events = [identify("m-1", "u-1", name="One"), alias("m-2", "anon-1", "u-1")]
    first = send_by(sandbox, tmp_path, events, state=state, name="a")
    assert first.report is not None
    assert first.report["identity_index"] == {"pages": 2, "refreshes": 0, "lead_pages": 0}
    second = send_by(sandbox, tmp_path, events, state=state, name="b")
    assert second.report is not None
    assert second.report["identity_index"] == {"pages": 0, "refreshes": 0, "lead_pages": 0}
    assert "identities: by index (0 listing pages; 0 refreshes)" in second.stderr.splitlines()
    assert "GET /api/v2/persons" not in second.report["requests"]
    assert holdings(sandbox).user_ids() == {"u-1": 1}


def test_a_rerun_still_refreshes_for_an_alias_s_previous_id_whose_alias_is_not_done(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The alias not done yet (added since), its previousId is still one to look up: the kept
    index is refreshed once before the first event."""
    state = tmp_path / "state.sqlite"
    events = [identify("m-1", "u-1", name="One")]
    send_by(sandbox, tmp_path, events, state=state, name="a")
    events.append(alias("m-2", "anon-1", "u-1"))
    second = send_by(sandbox, tmp_path, events, state=state, name="b")
    assert second.report is not None
    assert second.report["identity_index"] == {"pages": 1, "refreshes": 1, "lead_pages": 0}
