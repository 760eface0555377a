"""A create whose outcome stays unknown (its answer lost, and the listing that would settle it
failed too) is remembered per identity, and the next event of that identity settles it with a
listing before it may search or create: a search can miss a record made moments ago (the index
lags), and a create then makes a duplicate (QA found this). And what a plan learned before the
transport gave up (a person it created) reaches the outcome, so later events need not search;
what it learned from an external id that turned out not to exist does not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from helpers_core import (
    CONFIG,
    SENT_AT,
    USER_FIELD,
    Call,
    create_person,
    listing,
    patch_person,
    person_record,
    post,
    search_person,
)

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.known import MemoryKnown
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome

ANN = {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}}
LOST = post("/api/v2/persons", ANN, ApiResponse(status=0, sent_at=SENT_AT))
OUTAGE = PlanFailure("GET /api/v2/persons: HTTP 502 after 7 attempts", status=502, retryable=True)


def replay(raw: dict[str, Any], calls: Sequence[Call | PlanFailure], known: MemoryKnown) -> Outcome:
    """Drive the plan through `calls`; a PlanFailure in the script is the transport giving up."""
    script = list(calls)

    def send(request: ApiRequest) -> ApiResponse:
        assert script, f"unexpected request: {request}"
        call = script.pop(0)
        if isinstance(call, PlanFailure):
            raise call
        got = (request.method, request.path, dict(request.query), request.body)
        assert got == (call.method, call.path, dict(call.query), call.body)
        return call.response

    event = parse_event({"messageId": "m-1", **raw}, "t:1")
    outcome = drive(plan_event(event, CONFIG, known), send)
    assert not script, f"unused: {script}"
    known.learn(outcome)
    return outcome


def identify(user_id: str = "u-1") -> dict[str, Any]:
    return {"type": "identify", "userId": user_id, "traits": {"name": "Ann"}}


def lost_create(known: MemoryKnown) -> Outcome:
    return replay(identify(), [search_person("u-1"), LOST, OUTAGE], known)


def test_a_create_left_unknown_fails_retryable_and_is_remembered() -> None:
    known = MemoryKnown()
    outcome = lost_create(known)
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert outcome.stage == "reconcile person"
    assert outcome.reason == OUTAGE.reason
    assert outcome.unsettled == {("person", "u-1"): SENT_AT}
    assert known.unsettled("person", "u-1") == SENT_AT


def test_the_next_event_lists_first_and_takes_the_record_the_lost_create_made() -> None:
    known = MemoryKnown()
    lost_create(known)
    outcome = replay(
        identify(),
        [listing("persons", [person_record(7, "u-1")]), patch_person(7, {"name": "Ann"})],
        known,
    )
    assert outcome.status == "sent"
    assert outcome.identities == {("person", "u-1"): 7}
    assert known.unsettled("person", "u-1") is None
    assert known.person_id("u-1") == 7


def test_the_next_event_creates_only_once_the_listing_shows_nothing_landed() -> None:
    known = MemoryKnown()
    lost_create(known)
    outcome = replay(
        identify(), [listing("persons", []), search_person("u-1"), create_person(ANN, 8)], known
    )
    assert outcome.status == "sent"
    assert known.unsettled("person", "u-1") is None
    assert known.person_id("u-1") == 8


def test_while_pipedrive_cannot_settle_it_the_next_event_fails_too_without_a_search() -> None:
    known = MemoryKnown()
    lost_create(known)
    outcome = replay(identify(), [OUTAGE], known)
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert known.unsettled("person", "u-1") == SENT_AT  # still to settle


def test_other_identities_are_not_held_up() -> None:
    known = MemoryKnown()
    lost_create(known)
    bob = {"name": "Ann", "custom_fields": {USER_FIELD: "u-2"}}
    outcome = replay(identify("u-2"), [search_person("u-2"), create_person(bob, 9)], known)
    assert outcome.status == "sent"


def test_a_person_created_before_the_transport_gave_up_is_learned() -> None:
    known = MemoryKnown()
    track = {
        "type": "track",
        "userId": "u-1",
        "event": "Signed Up",
        "context": {"traits": {"name": "Ann"}},
    }
    lead_outage = PlanFailure("POST /v1/leads: HTTP 503 after 7 attempts", retryable=True)
    outcome = replay(track, [search_person("u-1"), create_person(ANN, 11), lead_outage], known)
    assert (outcome.status, outcome.reason) == ("failed", lead_outage.reason)
    assert outcome.stage == "create lead"
    assert known.person_id("u-1") == 11  # the next event of u-1 uses it: no search to miss it


def test_an_external_id_that_does_not_exist_is_not_cached_for_the_user_id() -> None:
    known = MemoryKnown()
    known.persons["u-1"] = 5  # what an earlier run learned
    raw = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"name": "Ann"},
        "context": {"externalId": [{"type": "person_id", "id": "999"}]},
    }
    outcome = replay(raw, [patch_person(999, ANN, status=404)], known)
    assert (outcome.status, outcome.reason) == (
        "failed",
        "person 999 (person_id external id) not found",
    )
    assert outcome.identities == {}
    assert known.person_id("u-1") == 5  # left as it was


def test_a_create_answered_without_an_id_is_unsettled_too() -> None:
    known = MemoryKnown()
    answer = ApiResponse(status=201, data={"name": "Ann"}, sent_at=SENT_AT)  # no id in it
    outcome = replay(
        identify(), [search_person("u-1"), post("/api/v2/persons", ANN, answer)], known
    )
    assert (outcome.status, outcome.reason) == ("failed", "create person: the answer holds no id")
    assert known.unsettled("person", "u-1") == SENT_AT  # it exists: the next event lists first


def test_a_lead_left_unknown_makes_the_persons_lead_list_unknown() -> None:
    known = MemoryKnown()
    known.persons["u-1"] = 42
    known.leads[42] = frozenset()  # nobody has leads for 42 yet, as far as rpd knows
    lead = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 42}
    lost = post("/v1/leads", lead, ApiResponse(status=0, sent_at=SENT_AT))
    track = {"type": "track", "userId": "u-1", "event": "Signed Up"}
    outcome = replay(track, [lost, OUTAGE], known)
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert known.lead_origins(42) is None  # the same event again lists the leads before posting


def test_a_record_learned_another_way_settles_the_mark() -> None:
    known = MemoryKnown()
    lost_create(known)
    known.learn(Outcome(status="sent", identities={("person", "u-1"): 12}))
    assert known.unsettled("person", "u-1") is None
