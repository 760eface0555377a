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
    leads_of,
    listing,
    ok,
    patch_person,
    person_record,
    post,
    search_person,
    taught,
)

from rudder_pipedrive_cli.core.driver import drive, gave_up
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Learned, Outcome

ANN = {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}}
LOST = post("/api/v2/persons", ANN, ApiResponse(status=0, sent_at=SENT_AT))
OUTAGE = PlanFailure("GET /api/v2/persons: HTTP 502 after 7 attempts", status=502, retryable=True)


def replay(
    raw: dict[str, Any], calls: Sequence[Call | PlanFailure], known: IdentityStore
) -> Outcome:
    """Drive the plan through `calls`; a PlanFailure in the script is the transport giving up."""
    script = list(calls)

    def send(request: ApiRequest) -> ApiResponse:
        assert script, f"unexpected request: {request}"
        call = script.pop(0)
        if isinstance(call, PlanFailure):  # the transport gave up: an answer saying so
            return gave_up(call, request.stage)
        got = (request.method, request.path, dict(request.query), request.body)
        assert got == (call.method, call.path, dict(call.query), call.body)
        return call.response

    event = parse_event({"messageId": "m-1", **raw}, "t:1")
    outcome = drive(plan_event(event, CONFIG, known), send)
    assert not script, f"unused: {script}"
    known.learn(outcome)
    return outcome


def next_run(known: IdentityStore) -> IdentityStore:
    """`known` as a later run sees it (the state keeps marks; which events failed in this run,
    whose later events wait for them, is the run's own)."""
    known.held.clear()
    return known


def identify(user_id: str = "u-1") -> dict[str, Any]:
    # An id of its own: events sharing one are one event (they wait for each other's retry).
    return {
        "type": "identify",
        "messageId": f"i-{user_id}",
        "userId": user_id,
        "traits": {"name": "Ann"},
    }


def lost_create(known: IdentityStore) -> Outcome:
    return replay(identify(), [search_person("u-1"), LOST, OUTAGE], known)


def test_a_create_left_unknown_fails_retryable_and_is_remembered() -> None:
    known = IdentityStore()
    outcome = lost_create(known)
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert outcome.stage == "reconcile person"
    assert outcome.reason == OUTAGE.reason
    assert taught(outcome).pending_creates == {("person", "u-1"): SENT_AT}
    assert known.pending_create("person", "u-1") == SENT_AT


def test_a_failed_answer_is_never_read_as_the_writes_own_whatever_its_status() -> None:
    """A write answered at once is read where it was sent; an answer that says the transport
    gave up goes to the exactly-once loop even with a status of its own (a sender may give one):
    read as Pipedrive's 503, it would settle the create as refused, though it may have landed."""
    gave_up = ApiResponse(status=503, sent_at=SENT_AT, failed=OUTAGE)
    known = IdentityStore()
    outcome = replay(
        identify(), [search_person("u-1"), post("/api/v2/persons", ANN, gave_up)], known
    )
    assert (outcome.status, outcome.reason, outcome.retryable) == ("failed", OUTAGE.reason, True)
    assert ("person", "u-1") not in taught(outcome).pending_creates  # not settled as refused


def test_the_next_event_lists_first_and_takes_the_record_the_lost_create_made() -> None:
    known = IdentityStore()
    lost_create(known)
    next_run(known)
    outcome = replay(
        identify(),
        [listing("persons", [person_record(7, "u-1")]), patch_person(7, {"name": "Ann"})],
        known,
    )
    assert outcome.status == "sent"
    assert taught(outcome).identities == {("person", "u-1"): 7}
    assert known.pending_create("person", "u-1") is None
    assert known.person_id("u-1") == 7


def test_the_next_event_creates_only_once_the_listing_shows_nothing_landed() -> None:
    known = IdentityStore()
    lost_create(known)
    next_run(known)
    outcome = replay(
        identify(), [listing("persons", []), search_person("u-1"), create_person(ANN, 8)], known
    )
    assert outcome.status == "sent"
    assert known.pending_create("person", "u-1") is None
    assert known.person_id("u-1") == 8


def test_while_pipedrive_cannot_settle_it_the_next_event_fails_too_without_a_search() -> None:
    known = IdentityStore()
    lost_create(known)
    next_run(known)
    outcome = replay(identify(), [OUTAGE], known)
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert known.pending_create("person", "u-1") == SENT_AT  # still to settle


def test_other_identities_are_not_held_up() -> None:
    known = IdentityStore()
    lost_create(known)
    bob = {"name": "Ann", "custom_fields": {USER_FIELD: "u-2"}}
    outcome = replay(identify("u-2"), [search_person("u-2"), create_person(bob, 9)], known)
    assert outcome.status == "sent"


def test_a_person_created_before_the_transport_gave_up_is_learned() -> None:
    known = IdentityStore()
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
    known = IdentityStore()
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
    assert taught(outcome).identities == {}
    assert known.person_id("u-1") == 5  # left as it was


def test_a_create_answered_without_an_id_is_pending_too() -> None:
    known = IdentityStore()
    answer = ApiResponse(status=201, data={"name": "Ann"}, sent_at=SENT_AT)  # no id in it
    outcome = replay(
        identify(), [search_person("u-1"), post("/api/v2/persons", ANN, answer)], known
    )
    assert (outcome.status, outcome.reason) == ("failed", "create person: the answer holds no id")
    assert known.pending_create("person", "u-1") == SENT_AT  # it exists: the next event lists first


def test_a_lead_left_unknown_makes_the_persons_lead_list_unknown() -> None:
    known = IdentityStore()
    known.persons["u-1"] = 42
    known.leads.put(42, ())  # nobody has leads for 42 yet, as far as rpd knows
    lead = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 42}
    lost = post("/v1/leads", lead, ApiResponse(status=0, sent_at=SENT_AT))
    track = {"type": "track", "userId": "u-1", "event": "Signed Up"}
    outcome = replay(track, [lost, OUTAGE], known)
    assert (outcome.status, outcome.retryable) == ("failed", True)
    assert known.lead_origins(42) is None  # the same event again lists the leads before posting


def test_a_record_learned_another_way_settles_the_mark() -> None:
    known = IdentityStore()
    lost_create(known)
    next_run(known)
    known.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 12})))
    assert known.pending_create("person", "u-1") is None


ALIAS = {"type": "alias", "messageId": "a-1", "previousId": "A", "userId": "B"}
LOST_MERGE = Call(
    method="PUT",
    path="/v1/persons/1/merge",
    body={"merge_with_id": 2},
    response=ApiResponse(status=0, sent_at=SENT_AT),
)


def person(pid: int, status: int) -> Call:
    return Call(method="GET", path=f"/api/v2/persons/{pid}", response=ApiResponse(status=status))


def lost_merge(known: IdentityStore) -> Outcome:
    known.persons.update({"A": 1, "B": 2})
    return replay(ALIAS, [LOST_MERGE, OUTAGE], known)


def track_of_a(lead_person: int) -> tuple[dict[str, Any], list[Call]]:
    lead = {"title": "T", "origin_id": "rpd:m-1", "person_id": lead_person}
    raw = {"type": "track", "userId": "A", "event": "T"}
    return raw, [
        *leads_of(lead_person),
        post("/v1/leads", lead, ApiResponse(status=201, data={"id": "l-1", **lead})),
    ]


def test_a_merge_left_unknown_is_remembered() -> None:
    known = IdentityStore()
    outcome = lost_merge(known)
    assert (outcome.status, outcome.stage, outcome.retryable) == ("failed", "reconcile merge", True)
    assert taught(outcome).pending_merges == {1: 2}
    assert known.merging_into(1) == 2
    assert known.person_id("A") == 1  # not forgotten: the next event settles it


def test_the_next_event_of_the_merged_away_person_settles_the_merge_and_follows_it() -> None:
    known = IdentityStore()
    lost_merge(known)
    next_run(known)
    raw, lead_calls = track_of_a(2)
    outcome = replay(raw, [person(1, 410), person(2, 200), *lead_calls], known)
    assert outcome.status == "sent"
    assert (known.person_id("A"), known.merging_into(1)) == (2, None)


def test_a_merge_settled_by_a_later_event_puts_the_survivor_where_its_read_says() -> None:
    """The survivor's organization (a merge may give it the merged person's) as the read that
    found it there names it: the deals, activities and notes made for it next name it too."""
    known = IdentityStore()
    lost_merge(known)
    next_run(known)
    raw, lead_calls = track_of_a(2)
    there = Call(method="GET", path="/api/v2/persons/2", response=ok({"id": 2, "org_id": 300}))
    outcome = replay(raw, [person(1, 410), there, *lead_calls], known)
    assert (outcome.status, taught(outcome).memberships) == ("sent", {2: 300})
    assert known.person_org(2) == 300


def test_a_merge_that_did_not_land_leaves_the_person_as_it_was() -> None:
    known = IdentityStore()
    lost_merge(known)
    next_run(known)
    raw, lead_calls = track_of_a(1)
    outcome = replay(raw, [person(1, 200), *lead_calls], known)
    assert outcome.status == "sent"
    assert (known.person_id("A"), known.merging_into(1)) == (1, None)


def test_after_a_retryable_failure_the_identitys_later_events_wait_for_its_retry() -> None:
    """identify A fails (its search: A may yet be created by its retry); the alias A -> B must
    not decide "no previous person" now, nor a track create A: they wait, and a rerun sends all
    three in input order (SPEC 5). QA found an alias journaled "unchanged" and A never merged."""
    known = IdentityStore()
    failed = replay(identify("A"), [OUTAGE], known)
    assert taught(failed).held_back == {("person", "A"), ("event", "i-A")}
    known.persons["B"] = 2
    for raw in (ALIAS, {"type": "track", "messageId": "t-1", "userId": "A", "event": "T"}):
        outcome = replay(raw, [], known)  # no request at all
        assert (outcome.status, outcome.retryable, outcome.stage) == ("failed", True, "order")
        assert outcome.reason == (
            "an earlier event of userId A failed: this one waits for it "
            "(a rerun tries that one first)"
        )
    other = replay(
        identify("C"),
        [search_person("C"), create_person(ANN | {"custom_fields": {USER_FIELD: "C"}}, 3)],
        known,
    )
    assert other.status == "sent"  # other identities go on


def test_a_failure_that_a_retry_cannot_fix_holds_nothing_up() -> None:
    known = IdentityStore()
    failed = replay({"type": "identify", "userId": "A", "traits": {}}, [search_person("A")], known)
    assert (failed.reason, taught(failed).held_back) == (
        "cannot create person without a name",
        frozenset(),
    )
    assert not known.held_back("person", "A")


def test_after_a_merge_a_failure_of_either_userid_holds_back_the_others_events() -> None:
    """QA: identify ua, identify ub, alias ua -> ub, identify ua (fails: a 503), identify ub.
    ua and ub now name one person: had the last identify gone ahead, the rerun would apply the
    older ua update after it, leaving the older value in the CRM."""
    known = IdentityStore()
    known.learn(
        Outcome(
            status="sent",
            learned=Learned(identities={("person", "ua"): 2, ("person", "ub"): 2}, merged={1: 2}),
        )
    )
    failed = replay(identify("ua"), [OUTAGE], known)
    assert taught(failed).held_back == {("person", "ua"), ("person_id", "2"), ("event", "i-ua")}
    outcome = replay(identify("ub"), [], known)  # no request at all
    assert (outcome.status, outcome.retryable, outcome.stage) == ("failed", True, "order")
    assert outcome.reason == (
        "an earlier event of person 2 failed: this one waits for it (a rerun tries that one first)"
    )
    assert outcome.redacted == "an earlier event of its person failed: this one waits for it"


def test_after_a_re_key_a_failure_of_either_userid_holds_back_the_others_events() -> None:
    """QA: alias ua -> ub with ub unknown re-keys ua's person to ub (no merge); a failed
    identify of ua must hold back a later identify of ub, as after a merge."""
    known = IdentityStore()
    known.persons["ua"] = 1
    rekeyed = replay(
        {"type": "alias", "previousId": "ua", "userId": "ub"},
        [search_person("ub"), patch_person(1, {"custom_fields": {USER_FIELD: "ub"}})],
        known,
    )
    assert rekeyed.status == "sent"
    assert known.merges and known.person_id("ub") == 1
    assert replay(identify("ua"), [OUTAGE], known).status == "failed"
    outcome = replay(identify("ub"), [], known)  # no request at all
    assert (outcome.stage, outcome.retryable) == ("order", True)
    assert outcome.reason.startswith("an earlier event of person 1 failed")


def test_creates_and_merges_say_what_they_leave_to_settle_and_a_refusal_settles_it() -> None:
    # A state journals `creates`/`merges` before sending (io/state.py begin_write); a create
    # refused outright was never made, so its outcome settles the mark.
    known = IdentityStore()
    seen: list[ApiRequest] = []
    answers = [ok([]), ApiResponse(status=400, error="name: bad"), ok({"id": 2})]

    def send(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        return answers.pop(0)

    outcome = drive(plan_event(parse_event(identify("A"), "t:1"), CONFIG, known), send)
    assert [r.creates for r in seen] == [None, ("person", "A")]
    assert (outcome.status, taught(outcome).pending_creates) == ("failed", {("person", "A"): None})
    known.persons.update({"A": 1, "B": 2})
    merge = drive(plan_event(parse_event(ALIAS, "t:2"), CONFIG, known), send)
    assert (merge.status, seen[-1].merges) == ("sent", (1, 2))


def test_a_merge_settled_by_a_later_event_makes_the_survivors_lead_list_unknown() -> None:
    """Review: settled through its mark, a merge skipped the lead bookkeeping of a merge made
    here: the survivor's list (known empty) stayed "complete" though the merged person's leads,
    which nobody listed, had moved there."""
    known = IdentityStore()
    lost_merge(known)
    next_run(known)
    known.leads.put(2, ())  # B's leads known: none; A's never listed
    raw, lead_calls = track_of_a(2)
    outcome = replay(raw, [person(1, 410), person(2, 200), *lead_calls], known)  # lists first
    assert outcome.status == "sent"
    assert known.lead_origins(2) == frozenset({"rpd:m-1"})


def test_a_messageid_used_again_for_another_user_waits_for_its_first_uses_retry() -> None:
    """QA: the first use failed retryably and the second (another user) went ahead; the journal
    then took the id as done, so the rerun skipped the first use: its lead was never made."""
    known = IdentityStore()
    first = {"type": "identify", "messageId": "dup", "userId": "A", "traits": {"name": "Ann"}}
    assert replay(first, [OUTAGE], known).status == "failed"
    again = {"type": "identify", "messageId": "dup", "userId": "B", "traits": {"name": "Bo"}}
    outcome = replay(again, [], known)  # no request at all
    assert (outcome.status, outcome.stage, outcome.retryable) == ("failed", "order", True)
    assert outcome.reason == (
        "an earlier event of messageId dup failed: this one waits for it "
        "(a rerun tries that one first)"
    )
