"""A person's v1 listings (leads, notes) page by their records, not by the origins they hold: a
full page of records rpd did not make is followed by the next one, so an origin on a later page
is found before any create (SPEC 5: no record made twice). Found in review of the probes step:
paging on the origins read stopped after such a page and created a lead twice."""

from __future__ import annotations

from typing import Any

from test_track_rules import RULED

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.index import origins_key
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse

CONFIG = PlanConfig(user_id_field="f" * 40, create_persons=True)
MORE = {"pagination": {"more_items_in_collection": True, "next_start": 500}}
HAND_MADE_LEADS = [{"id": f"h-{n}", "origin_id": None} for n in range(500)]


def track(name: str = "Paid") -> Any:
    raw = {"type": "track", "messageId": "m-1", "userId": "u-1", "event": name}
    return parse_event({**raw, "timestamp": "2026-11-28T10:00:00Z"}, "x:1")


def cached_person(*complete: str) -> IdentityStore:
    known = IdentityStore()
    known.persons.update({"u-1": 1})
    for kind in complete:  # the person's records of `kind` known: none
        known.leads.put(origins_key(kind, 1), frozenset())
    return known


def test_a_full_page_of_leads_without_origins_is_followed_by_the_next() -> None:
    asked: list[tuple[str, str, dict[str, Any]]] = []

    def send(request: ApiRequest) -> ApiResponse:
        asked.append((request.method, request.path, dict(request.query)))
        if request.path == "/v1/leads" and request.query["start"] == 0:
            return ApiResponse(status=200, data=HAND_MADE_LEADS, additional_data=MORE)
        if request.path == "/v1/leads":
            return ApiResponse(status=200, data=[{"id": "b", "origin_id": "rpd:m-1"}])
        return ApiResponse(status=200, data=[])

    outcome = drive(plan_event(track(), CONFIG, cached_person()), send)
    assert (outcome.status, outcome.reason) == ("skipped", "already done")
    assert asked == [
        ("GET", "/v1/leads", {"person_id": 1, "start": 0, "limit": 500}),
        ("GET", "/v1/leads", {"person_id": 1, "start": 500, "limit": 500}),
        ("GET", "/v1/leads/archived", {"person_id": 1, "start": 0, "limit": 500}),
    ]


def test_a_lost_lead_create_is_found_on_the_reconcile_listings_second_page() -> None:
    posts: list[ApiRequest] = []

    def send(request: ApiRequest) -> ApiResponse:
        if request.method == "POST":
            posts.append(request)
            return ApiResponse(status=0, sent_at="2026-11-28T10:00:05Z")  # the answer is lost
        if request.path == "/v1/leads" and request.query["start"] == 0:
            return ApiResponse(status=200, data=HAND_MADE_LEADS, additional_data=MORE)
        if request.path == "/v1/leads":
            return ApiResponse(status=200, data=[{"id": "b", "origin_id": "rpd:m-1"}])
        return ApiResponse(status=200, data=[])

    outcome = drive(plan_event(track(), CONFIG, cached_person("lead")), send)
    assert len(posts) == 1  # it landed: never sent again
    assert (outcome.status, outcome.writes) == ("sent", ("leads created",))


def test_notes_page_by_their_records_without_next_start() -> None:
    starts: list[int] = []

    def send(request: ApiRequest) -> ApiResponse:
        if request.method == "GET" and request.path == "/v1/notes":
            starts.append(request.query["start"])
            if request.query["start"] == 0:  # 500 notes, one of them rpd's: no next_start
                notes = [{"id": n, "content": "hand-written"} for n in range(500)]
                notes[0] = {"id": 0, "content": "x [rpd:m-0]"}
                more = {"pagination": {"more_items_in_collection": True}}
                return ApiResponse(status=200, data=notes, additional_data=more)
            return ApiResponse(status=200, data=[])
        if request.method == "GET":
            return ApiResponse(status=200, data=[])
        return ApiResponse(status=201, data={"id": 9})

    outcome = drive(plan_event(track("Support Ticket 9"), RULED, cached_person()), send)
    assert starts == [0, 500]  # the next page starts after the 500 records, not after 1 origin
    assert outcome.status == "sent"
