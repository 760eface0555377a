"""SPEC 4 common rules through `plan_event`: which events are planned at all, and whose identity."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fakes import FakeClock
from helpers_core import (
    CONFIG,
    SENT_AT,
    SINCE,
    UNKNOWN,
    USER_FIELD,
    Call,
    Case,
    check,
    create_lead,
    create_person,
    leads_of,
    listing,
    ok,
    patch_person,
    person_record,
    post,
    refused,
    run,
    search_person,
)

from rudder_pipedrive_cli.core.events import EXTERNAL_ID_TYPES, parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.index import IdentityIndex, MemoryIndexRows
from rudder_pipedrive_cli.core.plans import HANDLERS, plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import PERSON, index_listing
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Learned, Outcome

CASES = [
    *(
        Case(
            name=f"unsupported type {kind}: skipped, no requests",
            raw={"type": kind, "userId": "u-1"},
            expect={"status": "skipped", "reason": "unsupported type"},
        )
        for kind in ("page", "screen", "Page ", "something")
    ),
    *(
        Case(
            name=f"{kind} with only an anonymousId: skipped as anonymous",
            raw={"type": kind, "anonymousId": "anon-1", "event": "X", "groupId": "g-1"},
            expect={"status": "skipped", "reason": "anonymous"},
        )
        for kind in ("identify", "group", "track")
    ),
    Case(
        name="no userId, anonymousId or external id: fails",
        raw={"type": "identify", "traits": {"name": "Ann"}},
        expect={
            "status": "failed",
            "reason": "event has no userId, anonymousId or external id",
            "stage": "validate",
            "retryable": False,
        },
    ),
    Case(
        name="an external id of an unknown type: the reason says which types are known",
        raw={"type": "identify", "context": {"externalId": [{"type": "PERSON_ID", "id": 5}]}},
        expect={
            "status": "failed",
            "reason": "event has no userId, anonymousId or external id (context.externalId "
            "holds none of the types person_id, pipedrivePersonId, org_id, pipedriveGroupId, "
            "prev_person_id, pipedrivePreviousId, curr_person_id, pipedriveCurrentId)",
            "stage": "validate",
            "retryable": False,
        },
    ),
    *(
        Case(
            name=f"userId fallback {where}, anonymousId never used",
            raw={"type": "identify", "anonymousId": "anon-1", **raw},
            calls=[search_person("u-9", 42), patch_person(42, {"name": "Ann"})],
            expect={"status": "sent", "identities": {("person", "u-9"): 42}},
        )
        for where, raw in (
            ("userId", {"userId": "u-9", "traits": {"name": "Ann"}}),
            ("traits.userId", {"traits": {"userId": "u-9", "name": "Ann"}}),
            ("traits.id", {"traits": {"id": "u-9", "name": "Ann"}}),
            ("context.traits.userId", {"context": {"traits": {"userId": "u-9", "name": "Ann"}}}),
            ("context.traits.id", {"context": {"traits": {"id": "u-9", "name": "Ann"}}}),
            ("empty userId skipped", {"userId": "", "traits": {"userId": "u-9", "name": "Ann"}}),
        )
    ),
    Case(
        name="numeric userId is searched and stored as a string",
        raw={"type": "identify", "userId": 123, "traits": {"name": "Ann"}},
        calls=[
            search_person("123"),
            create_person({"name": "Ann", "custom_fields": {USER_FIELD: "123"}}),
        ],
        expect={"status": "sent", "identities": {("person", "123"): 100}},
    ),
    Case(
        name="numeric userId 123 finds the person cached under '123'",
        raw={"type": "identify", "userId": 123.0, "traits": {"name": "Ann"}},
        persons={"123": 5},
        calls=[patch_person(5, {"name": "Ann"})],
        expect={"status": "sent"},
    ),
    Case(
        name="type is trimmed and lower-cased",
        raw={"type": " Identify ", "userId": "u-1", "traits": {"name": "Ann"}},
        calls=[search_person("u-1", 4), patch_person(4, {"name": "Ann"})],
        expect={"status": "sent"},
    ),
]


def ext(*entries: object, kind: str = "identify") -> dict[str, object]:
    """An identify (or `kind`) of u-1 whose context.externalId is `entries` (one entry: the
    object alone)."""
    external = entries[0] if len(entries) == 1 else list(entries)
    return {
        "type": kind,
        "userId": "u-1",
        "traits": {"name": "Ann"},
        "context": {"externalId": external},
    }


NOT_AN_ID = "external id {} = {} is not a Pipedrive id (a whole number from 1 up)"
# The event type that reads each external id type (SPEC 4): refused there for a bad id.
USED_BY = {
    "person_id": "identify",
    "org_id": "group",
    "prev_person_id": "alias",
    "curr_person_id": "alias",
}
PATCH_ANN = patch_person(261, {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}})

# Issue 20 items 3 and 4: external ids in unexpected shapes are used or refused, never ignored.
EXTERNAL_ID_CASES = [
    Case(
        name="externalId as one object (not a list) is a one-element list",
        raw=ext({"type": "person_id", "id": "261"}),
        calls=[PATCH_ANN],
        expect={"status": "sent", "identities": {("person", "u-1"): 261}},
    ),
    Case(
        name="the same id twice (a number and a string, two names of one type) is one id",
        raw=ext({"type": "person_id", "id": 261}, {"type": "pipedrivePersonId", "id": " 0261 "}),
        calls=[PATCH_ANN],
        expect={"status": "sent"},
    ),
    Case(
        name="another destination's entry is passed over, whatever its id",
        raw=ext({"type": "brazeExternalId", "id": True}, {"type": "person_id", "id": 261.0}),
        calls=[PATCH_ANN],
        expect={"status": "sent"},
    ),
    *(
        Case(
            name=f"external id {shown[:24]} of a Pipedrive type fails the event, no request",
            raw=ext({"type": kind, "id": value}, kind=USED_BY[EXTERNAL_ID_TYPES[kind]]),
            expect=refused(
                NOT_AN_ID.format(kind, shown),
                f"external id {kind} is not a Pipedrive id (a whole number from 1 up)",
            ),
        )
        for kind, value, shown in (
            ("person_id", True, "true"),
            ("person_id", [1, 2], "[1,2]"),
            ("pipedrivePersonId", {"id": 1}, '{"id":1}'),
            ("org_id", 2.5, "2.5"),
            ("pipedriveCurrentId", "x1", '"x1"'),
            ("person_id", 0, "0"),  # item 4: Pipedrive ids are positive
            ("person_id", "0", '"0"'),
            ("pipedrivePreviousId", -5, "-5"),
            ("curr_person_id", "-5", '"-5"'),
            # int() refuses 4,300+ digits; the message quotes the start of so long a value
            ("person_id", "9" * 5000, '"' + "9" * 59 + "... (5,002 characters)"),
            ("person_id", 2**63, str(2**63)),  # past a 64-bit id
        )
    ),
    *(
        Case(
            name=f"external id of a Pipedrive type without an id ({where}) fails the event",
            raw=ext(entry),
            expect=refused("external id person_id has no id"),
        )
        for where, entry in (
            ("missing", {"type": "person_id"}),
            ("null", {"type": "person_id", "id": None}),
            ("blank", {"type": "person_id", "id": "  "}),
        )
    ),
    Case(
        name="two different ids of one type fail the event, whichever names they use",
        raw=ext({"type": "person_id", "id": 261}, {"type": "pipedrivePersonId", "id": "262"}),
        expect=refused(
            "context.externalId names two different person_id ids: person_id = 261 and "
            "pipedrivePersonId = 262",
            "context.externalId names two different person_id ids",
        ),
    ),
    *(
        Case(
            name=f"{what} of an identify, which reads none, is none",
            raw=ext(*entries, {"type": "person_id", "id": 261}),
            calls=[PATCH_ANN],
            expect={"status": "sent", "identities": {("person", "u-1"): 261}},
        )
        for what, entries in (
            *(
                (f"a bad {kind} external id", ({"type": kind, "id": "x"},))
                for kind in ("org_id", "pipedrivePreviousId", "curr_person_id")
            ),
            (
                "two different org_id external ids",
                ({"type": "org_id", "id": 5}, {"type": "pipedriveGroupId", "id": 6}),
            ),
        )
    ),
    Case(
        name="a bad person_id external id of an alias, which reads prev and curr ids, is none",
        raw=ext(
            {"type": "person_id", "id": 0},
            {"type": "prev_person_id", "id": 7},
            {"type": "curr_person_id", "id": 261},
            kind="alias",
        ),
        calls=[
            Call(
                method="PUT",
                path="/v1/persons/7/merge",
                body={"merge_with_id": 261},
                response=ok({"id": 261}),
            )
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="a bad external id on an unsupported type: still skipped, not failed",
        raw={"type": "page", "context": {"externalId": {"type": "person_id", "id": True}}},
        expect={"status": "skipped", "reason": "unsupported type"},
    ),
]

# Issue 20 item 5: an identity that is an object, a list or a boolean is not anonymous.
IDENTITY_CASES = [
    *(
        Case(
            name=f"{path} = {value!r} fails, even with an anonymousId",
            raw={"type": kind, "anonymousId": "anon-1", "event": "X", **raw},
            expect=refused(f"{path} is not a string or number (got {got})"),
        )
        for kind, path, value, got, raw in (
            ("identify", "userId", {"id": 1}, "an object", {"userId": {"id": 1}}),
            ("track", "userId", ["u-1"], "a list", {"userId": ["u-1"]}),
            ("identify", "userId", True, "true", {"userId": True}),
            ("identify", "userId", False, "false", {"userId": False}),
            ("identify", "traits.userId", {}, "an object", {"traits": {"userId": {}}}),
            ("group", "groupId", ["g"], "a list", {"userId": "u-1", "groupId": ["g"]}),
            ("alias", "previousId", True, "true", {"userId": "u-1", "previousId": True}),
        )
    ),
    Case(
        name="an identify whose traits.groupId is a list (the user's groups) goes: not its id",
        raw={"type": "identify", "userId": "u-1", "traits": {"name": "Ann", "groupId": ["g", "h"]}},
        calls=[search_person("u-1", 42), patch_person(42, {"name": "Ann"})],
        expect={"status": "sent"},
    ),
    Case(
        name="a null or empty userId is absent: the next path is read",
        raw={"type": "identify", "userId": None, "traits": {"userId": "", "id": 9, "name": "Ann"}},
        calls=[search_person("9", 42), patch_person(42, {"name": "Ann"})],
        expect={"status": "sent"},
    ),
]


@pytest.mark.parametrize("case", EXTERNAL_ID_CASES + IDENTITY_CASES, ids=lambda c: c.name)
def test_identity_values_are_used_or_refused(case: Case) -> None:
    case.verify()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_event(case: Case) -> None:
    case.verify()


@pytest.mark.parametrize("kind", sorted(HANDLERS))
def test_a_plan_is_its_handlers_own_generator(kind: str) -> None:
    """One generator level (issue 12 item 2): `plan_event` hands back the handler's generator,
    not a wrapper retrying it (the handler plans again itself on a stale cached id: the stale
    cases of test_identify, test_group, test_alias and test_track); an event that needs no
    request, its outcome itself (no generator).
    """
    raw = {"type": kind, "userId": "u-1", "previousId": "u-0", "groupId": "g-1", "event": "X"}
    plan = plan_event(parse_event(raw, "t:1"), CONFIG, IdentityStore())
    assert not isinstance(plan, Outcome) and plan.gi_code is HANDLERS[kind].__code__
    anonymous = parse_event({"type": kind, "anonymousId": "a-1", "event": "X"}, "t:2")
    assert plan_event(anonymous, CONFIG, IdentityStore()) == Outcome(
        status="skipped", reason="anonymous"
    )


def test_a_search_and_a_write_are_one_generator_level_under_the_plan() -> None:
    """`find` yields its itemSearch itself, and a create answered at once is read where it was
    sent: while either waits for its answer, the plan's generator delegates to one generator
    that yields the request itself (issue 12 item 2), and the exchange is the same as before."""
    event = parse_event({"type": "identify", "messageId": "m-1", "userId": "u-1",
                         "traits": {"name": "Ann"}}, "t:1")  # fmt: skip
    plan = plan_event(event, CONFIG, IdentityStore())
    assert not isinstance(plan, Outcome)
    search = next(plan)
    chains = [levels(plan)]
    assert search.path == "/api/v2/itemSearch/field"
    create = plan.send(ApiResponse(status=200))  # no hits
    chains.append(levels(plan))
    assert (create.method, create.path) == ("POST", "/api/v2/persons")
    with pytest.raises(StopIteration) as end:
        plan.send(ApiResponse(status=201, data={"id": 7}))
    assert chains == [("find",), ("create",)]
    check(end.value.value, status="sent", identities={("person", "u-1"): 7})


def levels(plan: Generator[ApiRequest, ApiResponse, Outcome]) -> tuple[str, ...]:
    """The generators a suspended plan delegates to, outermost first (`yield from`'s chain)."""
    names, level = [], plan.gi_yieldfrom
    while level is not None:
        names.append(level.gi_code.co_name)
        level = level.gi_yieldfrom
    return tuple(names)


ANN = {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}}
IDENTIFY_ANN = {"type": "identify", "userId": "u-1", "traits": {"name": "Ann"}}


def answered(call: Call, response: ApiResponse, **query: Any) -> Call:
    """`call` answered with `response`, its query with `query` added (a further page)."""
    return replace(call, query={**call.query, **query}, response=response)


def person_get(pid: int, status: int) -> Call:
    return Call(method="GET", path=f"/api/v2/persons/{pid}", response=ok({"id": pid}, status))


def pending(**tables: Any) -> Callable[[], IdentityStore]:
    """A store holding `tables`' rows, as the state gives it (pending writes looked up)."""

    def made() -> IdentityStore:
        known = IdentityStore(pending=True)
        for name, rows in tables.items():
            getattr(known, name).update(rows)
        return known

    return made


def index_due() -> IdentityIndex:
    """A person index built from one empty page sent at SENT_AT, now over 10 s old (due)."""
    clock = FakeClock()
    index = IdentityIndex(MemoryIndexRows(), {"person": USER_FIELD}, clock=clock)
    build = index_listing(index, PERSON)
    build.take(ApiResponse(status=200, data=[], sent_at=SENT_AT))
    assert build.request is None
    clock.now = 10.5
    return index


@dataclass(frozen=True, kw_only=True)
class Path:
    """A reconcile path: the event, its exact exchange, the generator chain under the plan while
    it waits for each answer, and its outcome."""

    name: str
    raw: Mapping[str, Any]
    calls: Sequence[Call]
    chains: Sequence[tuple[str, ...]]
    expect: Mapping[str, Any]
    known: Callable[[], IdentityStore] = IdentityStore
    index: Callable[[], IdentityIndex | None] = lambda: None
    config: PlanConfig = CONFIG


LIST = listing("persons", [])
LEAD = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 42}
PATHS = [
    Path(
        name="a merge left unknown, checked before its person is used",
        raw=IDENTIFY_ANN,
        calls=[person_get(7, 404), person_get(8, 200), patch_person(8, {"name": "Ann"})],
        known=pending(persons={"u-1": 7}, pending_merges={7: 8}),
        chains=[("find",), ("find",), ()],
        expect={"status": "sent", "merged": {7: 8}, "pending_merges": {7: None}},
    ),
    Path(
        name="an alias's merge whose answer is lost, checked",
        raw={"type": "alias", "previousId": "old", "userId": "new"},
        calls=[
            Call(
                method="PUT",
                path="/v1/persons/7/merge",
                body={"merge_with_id": 8},
                response=UNKNOWN,
            ),
            person_get(7, 404),
            person_get(8, 200),
        ],
        known=pending(persons={"old": 7, "new": 8}),
        chains=[("merge",)] * 3,
        expect={"status": "sent", "merged": {7: 8}, "writes": ("merges",)},
    ),
    Path(
        name="the state's pending create, reconciled by a listing of two pages",
        raw=IDENTIFY_ANN,
        calls=[
            answered(LIST, ok([person_record(5, "u-2")], additional={"next_cursor": "c2"})),
            answered(LIST, ok([person_record(7, "u-1")]), cursor="c2"),
            patch_person(7, {"name": "Ann"}),
        ],
        known=pending(pending_creates={("person", "u-1"): SENT_AT}),
        chains=[("find",), ("find",), ()],
        expect={"status": "sent", "identities": {("person", "u-1"): 7}},
    ),
    Path(
        name="a create whose answer is lost, reconciled by listing two pages, then sent again",
        raw=IDENTIFY_ANN,
        calls=[
            search_person("u-1"),
            post("/api/v2/persons", ANN, UNKNOWN),
            answered(LIST, ok([], additional={"next_cursor": "c2"})),
            answered(LIST, ok([]), cursor="c2"),
            create_person(ANN, 9),
        ],
        chains=[("find",)] + [("create",)] * 4,
        expect={"status": "sent", "identities": {("person", "u-1"): 9}},
    ),
    Path(
        name="a search of two pages",
        raw=IDENTIFY_ANN,
        calls=[
            answered(search_person("u-1"), ok([], additional={"next_cursor": "s2"})),
            answered(search_person("u-1", 7), ok([{"id": 7, "name": "Ann"}]), cursor="s2"),
            patch_person(7, {"name": "Ann"}),
        ],
        chains=[("find",), ("find",), ()],
        expect={"status": "sent", "identities": {("person", "u-1"): 7}},
    ),
    Path(
        name="a userId aliased away: its alias's person searched",
        raw=IDENTIFY_ANN,
        config=replace(CONFIG, aliases={"u-1": "u-2"}),
        calls=[search_person("u-1"), search_person("u-2", 8), patch_person(8, {"name": "Ann"})],
        chains=[("find",), ("find",), ()],
        expect={"status": "sent", "identities": {("person", "u-1"): 8}},
    ),
    Path(
        name="an update whose answer is lost, sent again by the plan itself",
        raw=IDENTIFY_ANN,
        calls=[
            replace(patch_person(7, {"name": "Ann"}), response=UNKNOWN),
            replace(patch_person(7, {"name": "Ann"}), response=UNKNOWN),
            patch_person(7, {"name": "Ann"}),
        ],
        known=pending(persons={"u-1": 7}),
        chains=[(), (), ()],
        expect={"status": "sent", "writes": ("persons updated",)},
    ),
    Path(
        name="track's origins listing, and its lead create reconciled by listing them again",
        raw={"type": "track", "event": "Signed Up", "userId": "u-1"},
        calls=[*leads_of(42), post("/v1/leads", LEAD, UNKNOWN), *leads_of(42, "rpd:m-1")],
        known=pending(persons={"u-1": 42}),
        chains=[(), (), ("create_record",), ("create_record",), ("create_record",)],
        expect={"status": "sent", "lead_origins": {42: frozenset({"rpd:m-1"})}},
    ),
    Path(
        name="the identity index refreshed before its person is taken as not found",
        raw=IDENTIFY_ANN,
        index=index_due,
        calls=[
            Call(
                method="GET",
                path="/api/v2/persons",
                query={"custom_fields": USER_FIELD, "limit": 500, "updated_since": SINCE},
                response=ok([person_record(7, "u-1")]),
            ),
            patch_person(7, {"name": "Ann"}),
        ],
        chains=[("find",), ()],
        expect={"status": "sent", "identities": {("person", "u-1"): 7}},
    ),
]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_every_reconcile_request_is_at_most_one_generator_level_under_the_plan(
    path: Path,
) -> None:
    """Issue 12 item 2: a merge's outcome checks, a create's reconcile listing and its further
    pages, a search's further pages, an alias's lookups, track's origins listing and the
    identity index's refresh are yielded by the plan or by the one generator it delegates to
    (an update, and its repeats after a lost answer, by the plan itself: no generator level)
    (their requests read by plain functions: `Pages`, `MergeCheck`, `WriteOnce`), with the
    exact exchange and outcome as before."""
    event = parse_event({"messageId": "m-1", **path.raw}, "t:1")
    plan = plan_event(event, path.config, path.known(), path.index())
    assert not isinstance(plan, Outcome)
    chains: list[tuple[str, ...]] = []
    request = next(plan)
    for number, call in enumerate(path.calls, 1):
        got = (request.method, request.path, dict(request.query), request.body)
        assert got == (call.method, call.path, dict(call.query), call.body), f"request {number}"
        chains.append(levels(plan))
        try:
            request = plan.send(call.response)
        except StopIteration as end:
            assert number == len(path.calls), f"ended after {number} of {len(path.calls)}"
            check(end.value, **path.expect)
            break
    else:
        raise AssertionError(f"an extra request: {request}")
    assert chains == path.chains


def test_dry_run_placeholder_ids_are_kept_as_strings() -> None:
    """Dry-run answers with ids like "{person:u-1}": they go into paths and bodies unchanged."""
    outcome = run(
        {"type": "track", "event": "Signed Up", "userId": "u-1"},
        [
            search_person("u-1", "{person:u-1}"),
            *leads_of("{person:u-1}"),
            create_lead(
                {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": "{person:u-1}"}
            ),
        ],
    )
    check(
        outcome,
        status="sent",
        identities={("person", "u-1"): "{person:u-1}"},
        lead_origins={"{person:u-1}": frozenset({"rpd:m-1"})},
    )
    group = run(
        {"type": "group", "userId": "u-1", "groupId": "g-1", "traits": {}},
        [patch_person("{person:u-1}", {"org_id": "{org:g-1}"})],
        known=Case(
            name="", raw={}, persons={"u-1": "{person:u-1}"}, orgs={"g-1": "{org:g-1}"}
        ).known(),
    )
    check(group, status="sent", memberships={"{person:u-1}": "{org:g-1}"})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"type": "track", "userId": "u-96"}, "track needs an event name (the lead title)"),
        (
            {"type": "group", "userId": "u-96"},
            "group needs a groupId or an org_id external id",
        ),
        (
            {
                "type": "group",
                "groupId": "g-1",
                "context": {"externalId": [{"type": "org_id", "id": 5}]},
            },
            "group needs a person: a userId or a person_id external id",
        ),
        (
            {"type": "alias", "previousId": "u-96"},
            "alias needs a userId or a curr_person_id external id",
        ),
    ],
    ids=["track unnamed", "group without org", "group without person", "alias"],
)
def test_an_invalid_event_fails_with_its_own_reason_whatever_it_would_wait_for(
    raw: dict[str, Any], reason: str
) -> None:
    """An event that cannot be valid fails as such, not retryable, though an earlier event of its
    userId (or groupId) failed retryably: it was 'an earlier event of userId u-96 failed: this
    one waits for it', its own error masked until a rerun, and retried by each."""
    known = IdentityStore()
    waited = frozenset({("person", "u-96"), ("org", "g-1")})
    known.learn(Outcome(status="failed", reason="x", learned=Learned(held_back=waited)))
    event = parse_event({"messageId": "m-2", **raw}, "in.ndjson:2")
    assert plan_event(event, CONFIG, known) == Outcome(
        status="failed", reason=reason, stage="validate", retryable=False
    )
