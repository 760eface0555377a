"""The account-wide listing of what track rules create (SPEC 5, issue 16 item 4): the exact
requests it makes for each kind (every page, no `person_id`), and what it reads from them."""

from __future__ import annotations

from typing import Any

import pytest

from rudder_pipedrive_cli.cli.identities import Dearer, account_listing, prepare
from rudder_pipedrive_cli.core.driver import drive_exchange
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.index import IdentityIndex, MemoryIndexRows, Survey
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.track import KINDS
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.core.rules import parse_rules

USER_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"


def new_index() -> IdentityIndex:
    return IdentityIndex(MemoryIndexRows(), {"person": USER_FIELD}, clock=lambda: 0.0)


def shown(request: ApiRequest) -> tuple[str, str, dict[str, Any], str, str]:
    return (request.method, request.path, dict(request.query), request.stage, request.note)


def drive(
    steps: Any, answers: list[ApiResponse]
) -> tuple[list[tuple[str, str, dict[str, Any], str, str]], Any]:
    """Every request the exchange makes, each answered in turn, and what it returns."""
    requests = [shown(next(steps))]
    for answer in answers[:-1]:
        requests.append(shown(steps.send(answer)))
    with pytest.raises(StopIteration) as stop:
        steps.send(answers[-1])
    return requests, stop.value.value


def test_the_account_deals_are_listed_by_cursor_without_a_person() -> None:
    index = new_index()
    note = "list the account's deals once, to skip deals sent before (by origin_id)"
    requests, origins = drive(
        account_listing(index, KINDS["deal"]),
        [
            ApiResponse(
                status=200,
                data=[
                    {"id": 1, "person_id": 7, "origin_id": "rpd:m-1"},
                    {"id": 2, "person_id": 8, "origin_id": "crm:1"},
                ],
                additional_data={"next_cursor": "c2"},
            ),
            ApiResponse(
                status=200,
                data=[{"id": 3, "person_id": 7, "origin_id": "rpd:m-2"}],
                additional_data={"next_cursor": None},
            ),
            # Archived deals: only in their own listing (GET /api/v2/deals omits them).
            ApiResponse(
                status=200,
                data=[{"id": 4, "person_id": 9, "origin_id": "rpd:m-3"}],
                additional_data={"next_cursor": None},
            ),
        ],
    )
    assert requests == [
        ("GET", "/api/v2/deals", {"limit": 500}, "list deals", note),
        ("GET", "/api/v2/deals", {"limit": 500, "cursor": "c2"}, "list deals", note),
        ("GET", "/api/v2/deals/archived", {"limit": 500}, "list deals", note),
    ]
    assert origins == {"deal:7": {"rpd:m-1", "rpd:m-2"}, "deal:9": {"rpd:m-3"}}
    assert index.stats.track_pages == {"deal": 3}
    assert index.stats.lead_pages == 0


def test_the_account_activities_are_read_by_their_markers() -> None:
    index = new_index()
    requests, origins = drive(
        account_listing(index, KINDS["activity"]),
        [
            ApiResponse(
                status=200,
                data=[
                    {"id": 1, "person_id": 7, "note": "Booked<p>rpd:m-3</p>"},
                    {"id": 2, "person_id": 7, "note": None},
                ],
            )
        ],
    )
    assert requests == [
        (
            "GET",
            "/api/v2/activities",
            {"limit": 500},
            "list activities",
            "list the account's activities once, to skip activities sent before (by marker)",
        )
    ]
    assert origins == {"activity:7": {"rpd:m-3"}}
    assert index.stats.track_pages == {"activity": 1}


def test_the_account_notes_are_listed_by_v1_pages() -> None:
    index = new_index()
    note = "list the account's notes once, to skip notes sent before (by marker)"
    requests, origins = drive(
        account_listing(index, KINDS["note"]),
        [
            ApiResponse(
                status=200,
                data=[{"id": 1, "person_id": 9, "content": "<p>Ticket</p><p>rpd:m-4</p>"}],
                additional_data={"pagination": {"more_items_in_collection": True, "next_start": 1}},
            ),
            ApiResponse(
                status=200,
                data=[{"id": 2, "person_id": 9, "content": "by hand"}],
                additional_data={"pagination": {"more_items_in_collection": False}},
            ),
        ],
    )
    assert requests == [
        ("GET", "/v1/notes", {"start": 0, "limit": 500}, "list notes", note),
        ("GET", "/v1/notes", {"start": 1, "limit": 500}, "list notes", note),
    ]
    assert origins == {"note:9": {"rpd:m-4"}}
    assert index.stats.track_pages == {"note": 2}


def test_a_v1_listing_whose_next_start_goes_no_further_fails_instead_of_paging_for_ever() -> None:
    """v1 pages by `next_start`: one that does not move on (here it points back at 0) would
    list the same page until the day's budget is spent."""
    steps = account_listing(new_index(), KINDS["note"])
    next(steps)
    page = ApiResponse(
        status=200,
        data=[{"id": 1, "person_id": 9, "content": "<p>rpd:m-4</p>"}],
        additional_data={"pagination": {"more_items_in_collection": True, "next_start": 0}},
    )
    with pytest.raises(PlanFailure) as failed:
        steps.send(page)
    assert failed.value.reason == (
        "list notes: Pipedrive's answer is malformed (HTTP 200: its next_start 0 goes no "
        "further); not taken as no records: retry later"
    )
    assert failed.value.retryable


def test_the_account_leads_and_archived_leads_are_listed_as_before() -> None:
    index = new_index()
    note = "list the account's leads once, to skip leads sent before (by origin_id)"
    requests, origins = drive(
        account_listing(index, KINDS["lead"]),
        [
            ApiResponse(
                status=200,
                data=[{"id": "a", "person_id": 7, "origin_id": "rpd:m-5"}],
                additional_data={"pagination": {"more_items_in_collection": True, "next_start": 1}},
            ),
            # A second page of leads: the listing does not stop after the first.
            ApiResponse(status=200, data=[{"id": "c", "person_id": 7, "origin_id": "rpd:m-7"}]),
            ApiResponse(status=200, data=[{"id": "b", "person_id": 8, "origin_id": "rpd:m-6"}]),
        ],
    )
    assert requests == [
        ("GET", "/v1/leads", {"start": 0, "limit": 500}, "list leads", note),
        ("GET", "/v1/leads", {"start": 1, "limit": 500}, "list leads", note),
        ("GET", "/v1/leads/archived", {"start": 0, "limit": 500}, "list leads", note),
    ]
    assert origins == {7: {"rpd:m-5", "rpd:m-7"}, 8: {"rpd:m-6"}}
    assert (index.stats.lead_pages, index.stats.track_pages) == (3, {})


def answering(answers: dict[str, list[ApiResponse]], asked: list[str]) -> Any:
    """An exchange with Pipedrive answering from `answers` (by path, in turn), noting each
    request's path in `asked`."""

    def answer(request: ApiRequest) -> ApiResponse:
        asked.append(request.path)
        return answers[request.path].pop(0)

    return lambda steps: drive_exchange(steps, answer)


def page(*records: dict[str, Any], cursor: str | None = None) -> ApiResponse:
    return ApiResponse(status=200, data=list(records), additional_data={"next_cursor": cursor})


def test_an_account_listing_stops_where_it_would_cost_what_it_saves() -> None:
    more, last = page({"id": 1, "person_id": 7}, cursor="c"), page({"id": 2, "person_id": 7})
    # Two persons' activities cost 20 tokens; a first page of 10 with more to come: 20 at least.
    steps = account_listing(new_index(), KINDS["activity"], budget=20)
    next(steps)
    with pytest.raises(Dearer) as stopped:
        steps.send(more)
    assert stopped.value.spent == 10
    # Three persons' (30): the second page ends it at 20.
    requests, origins = drive(
        account_listing(new_index(), KINDS["activity"], budget=30), [more, last]
    )
    assert [request[2] for request in requests] == [{"limit": 500}, {"limit": 500, "cursor": "c"}]
    assert origins == {}
    # Leads: a last page of leads still leaves the archived leads' first page (40) to list.
    leads = account_listing(new_index(), KINDS["lead"], budget=60)
    next(leads)
    with pytest.raises(Dearer):
        leads.send(ApiResponse(status=200, data=[]))


def test_send_lists_for_the_account_the_kinds_it_pays_for_and_says_why_not_the_others() -> None:
    rules = parse_rules(
        [
            {"events": ["Demo"], "create": "deal"},
            {"events": ["Call"], "create": "activity"},
            {"events": ["Ticket"], "create": "note"},
        ],
        "rpd.toml",
    )
    config = PlanConfig(user_id_field=USER_FIELD, track_rules=rules)
    survey = Survey(rules=rules)
    tracked = [("u-1", "Demo"), ("u-2", "Demo"), ("u-1", "Call"), ("u-2", "Call")]
    tracked += [("u-1", "Ticket"), ("u-2", "Ticket"), ("u-9", "Ticket")]  # u-9: to be created
    tracked += [("u-1", "Signed Up")]  # one person's leads: listed on their own
    for n, (user, name) in enumerate(tracked):
        raw = {"type": "track", "messageId": f"m-{n}", "userId": user, "event": name}
        survey.add(parse_event(raw, f"f:{n}"))
    persons = [{"id": n, "custom_fields": {USER_FIELD: f"u-{n}"}} for n in (1, 2)]
    answers = {
        "/api/v2/persons": [page(*persons)],
        "/api/v2/deals": [page({"id": 5, "person_id": 2, "origin_id": "rpd:m-1"})],
        "/api/v2/deals/archived": [page()],
        # More activities than persons: a second page would cost what two persons' cost.
        "/api/v2/activities": [page({"id": 1, "person_id": 1, "note": "rpd:m-2"}, cursor="c")],
        "/v1/notes": [ApiResponse(status=500, error="Internal error")],
    }
    asked: list[str] = []

    identities = prepare(
        "index",
        config,
        survey=survey,
        known=IdentityStore(),
        rows=MemoryIndexRows(),
        exchange=answering(answers, asked),
    )

    # Deals: two persons to list, one page of the account's: listed. Activities: two persons,
    # but more pages than that. Notes: two persons (u-9 is not in the account), but the listing
    # failed. Leads: one person against one page: equal, so that person's own.
    assert asked == [
        "/api/v2/persons",
        "/api/v2/deals",
        "/api/v2/deals/archived",
        "/api/v2/activities",
        "/v1/notes",
    ]
    assert identities.listed == ["deal"]
    assert identities.origins == {"deal:2": {"rpd:m-1"}}
    assert identities.notes == [
        "the account holds more activities than its persons: listing them all would cost more "
        "than listing those of 2 persons one by one (20 API tokens); stopped after 10, each "
        "person's are listed when needed",
        "the account's notes could not be listed (list notes refused: HTTP 500: Internal error): "
        "each person's notes are listed when needed",
    ]
    assert identities.index is not None
    # The refused page is not counted; the pages of deals (and archived deals) and activities
    # read are.
    assert identities.index.stats.track_pages == {"deal": 2, "activity": 1}
