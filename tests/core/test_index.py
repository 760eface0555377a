"""The identity index (core/index.py, issue 15): listing pages in, identity-to-id maps out, and
the plans resolving from it: found without a search, ambiguous as search hits are, refreshed with
`updated_since` before a create when over 10 s old, and stale ids searched again."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from fakes import FakeClock
from helpers_core import (
    CONFIG,
    GROUP_FIELD,
    ROLE,
    USER_FIELD,
    Call,
    check,
    create_lead,
    create_person,
    leads_of,
    ok,
    patch,
    patch_person,
    person_record,
    post,
    run,
    search_org,
    search_person,
    taught,
)

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.index import (
    IdentityIndex,
    IndexWait,
    MemoryIndexRows,
    Survey,
    account_listing_pays,
    choose,
    identity_rows,
    input_aliases,
    origins_key,
    origins_kind,
    rpd_origins,
    surveyed,
    worth_counting,
)
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.common import (
    ORG,
    PERSON,
    Step,
    index_listing,
    probe_steps,
)
from rudder_pipedrive_cli.core.plans.track import KINDS
from rudder_pipedrive_cli.core.protocol import ApiResponse, Learned, Outcome
from rudder_pipedrive_cli.core.rules import parse_rules

LISTED_AT = "2026-11-28T10:00:05Z"
REFRESHED_AT = "2026-11-28T10:00:16Z"


def built(*records: dict[str, Any], clock: FakeClock | None = None) -> IdentityIndex:
    """A person index built from one page of `records`, listed at LISTED_AT."""
    index = IdentityIndex(MemoryIndexRows(), {"person": USER_FIELD}, clock=clock or FakeClock())
    steps = probe_steps(index_listing(index, PERSON))
    request = next(steps)
    assert (request.method, request.path, dict(request.query)) == (
        "GET",
        "/api/v2/persons",
        {"custom_fields": USER_FIELD, "limit": 500},
    )
    with pytest.raises(StopIteration):
        steps.send(ApiResponse(status=200, data=list(records), sent_at=LISTED_AT))
    return index


def refresh(records: list[dict[str, Any]], answer: ApiResponse | None = None) -> Call:
    """A refresh of the person index from LISTED_AT, less the 2 s slack."""
    return Call(
        method="GET",
        path="/api/v2/persons",
        query={
            "custom_fields": USER_FIELD,
            "limit": 500,
            "updated_since": "2026-11-28T10:00:03Z",
        },
        response=answer
        or ApiResponse(
            status=200, data=records, additional_data={"next_cursor": None}, sent_at=REFRESHED_AT
        ),
    )


IDENTIFY = {"type": "identify", "userId": "u-1", "traits": {"name": "Ann", "role": "Dev"}}


def test_rows_read_identities_as_strings_and_records_without_one() -> None:
    records = [
        {"id": 1, "custom_fields": {USER_FIELD: 123}},
        {"id": 2, "custom_fields": {USER_FIELD: {"value": "u-2"}}},
        {"id": 3, "custom_fields": {USER_FIELD: None}},
        {"id": 4, "custom_fields": {}},
        {"name": "no id", "custom_fields": {USER_FIELD: "u-5"}},
        {"id": 6, "custom_fields": {USER_FIELD: " u-6 "}},  # as itemSearch's exact match has it
        {"id": 7, "custom_fields": {USER_FIELD: ""}},
    ]
    assert identity_rows(records, USER_FIELD) == [
        (1, "123"), (2, "u-2"), (3, None), (4, None), (6, " u-6 "), (7, None),
    ]  # fmt: skip


def test_a_found_person_is_updated_without_a_search() -> None:
    index = built(person_record(7, "u-1"), person_record(8, "u-2"))
    outcome = run(
        IDENTIFY, [patch_person(7, {"name": "Ann", "custom_fields": {ROLE: "Dev"}})], index=index
    )
    check(outcome, status="sent", warnings=())
    assert taught(outcome).identities == {("person", "u-1"): 7}


def test_two_persons_with_one_user_id_take_the_lowest_id_with_a_warning() -> None:
    index = built(person_record(9, "u-1"), person_record(4, "u-1"))
    outcome = run(
        IDENTIFY, [patch_person(4, {"name": "Ann", "custom_fields": {ROLE: "Dev"}})], index=index
    )
    check(
        outcome,
        status="sent",
        warnings=("ambiguous identity: 2 persons have userId u-1; using the lowest id",),
    )


def test_not_in_a_fresh_index_is_created_without_any_listing() -> None:
    clock = FakeClock()
    index = built(person_record(8, "u-2"), clock=clock)
    clock.now = 10.0  # listed 10 s ago: fresh
    body = {"name": "Ann", "custom_fields": {ROLE: "Dev", USER_FIELD: "u-1"}}
    outcome = run(IDENTIFY, [create_person(body, 100)], index=index)
    check(outcome, status="sent")
    index.learn(outcome)
    assert index.lookup("person", "u-1") == [100]  # what rpd made goes in as it is made
    assert index.stats.refreshes == 0


def test_not_in_an_index_over_10s_old_refreshes_it_first_and_finds_the_new_person() -> None:
    clock = FakeClock()
    index = built(person_record(8, "u-2"), clock=clock)
    clock.now = 10.5
    outcome = run(
        IDENTIFY,
        [
            refresh([person_record(12, "u-1")]),
            patch_person(12, {"name": "Ann", "custom_fields": {ROLE: "Dev"}}),
        ],
        index=index,
    )
    check(outcome, status="sent")
    assert (index.stats.pages, index.stats.refreshes) == (2, 1)


def test_a_refresh_that_finds_nothing_lets_the_create_go_and_is_not_repeated_for_10s() -> None:
    clock = FakeClock()
    index = built(clock=clock)
    clock.now = 11.0
    body = {"name": "Ann", "custom_fields": {ROLE: "Dev", USER_FIELD: "u-1"}}
    check(run(IDENTIFY, [refresh([]), create_person(body, 100)], index=index), status="sent")
    clock.now = 21.0
    other = {"type": "identify", "userId": "u-3", "traits": {"name": "Cy"}}
    made = {"name": "Cy", "custom_fields": {USER_FIELD: "u-3"}}
    check(run(other, [create_person(made, 101)], index=index), status="sent")


def test_a_refresh_that_fails_fails_the_event_and_the_next_one_refreshes_again() -> None:
    clock = FakeClock()
    index = built(clock=clock)
    clock.now = 11.0
    failing = refresh([], ApiResponse(status=503, error="HTTP 503"))
    check(run(IDENTIFY, [failing], index=index), status="failed", retryable=True)
    body = {"name": "Ann", "custom_fields": {ROLE: "Dev", USER_FIELD: "u-1"}}
    check(run(IDENTIFY, [refresh([]), create_person(body, 100)], index=index), status="sent")


def test_a_found_identity_is_taken_while_a_refresh_begun_under_10s_ago_is_in_flight() -> None:
    """Each lookup over 10 s after the last listing refreshes the index, found or not. While
    one event's refresh was in flight, every other event that found its identity made its own,
    each listing again every record updated since (all those rpd updated too): 15,000 found
    users over the sandbox made 16 refreshes of 265 pages, where 30 pages built the index. A
    found identity is taken while a refresh begun under 10 s ago is in flight; a missing one
    still makes its own before its create, and once that refresh is 10 s old, found ones too."""
    clock = FakeClock()
    index = built(person_record(7, "u-1"), clock=clock)
    clock.now = 11.0
    in_flight = probe_steps(index_listing(index, PERSON))  # another event's refresh
    assert next(in_flight).query["updated_since"] == "2026-11-28T10:00:03Z"
    clock.now = 12.0
    update = patch_person(7, {"name": "Ann", "custom_fields": {ROLE: "Dev"}})
    check(run(IDENTIFY, [update], index=index), status="sent")
    missing = {"type": "identify", "userId": "u-3", "traits": {"name": "Cy"}}
    made = {"name": "Cy", "custom_fields": {USER_FIELD: "u-3"}}
    check(run(missing, [refresh([]), create_person(made, 101)], index=index), status="sent")
    clock.now = 22.5  # the first refresh (begun at 11 s) never ended; the second, begun at 12 s
    again = refresh([])
    again = replace(again, query={**again.query, "updated_since": "2026-11-28T10:00:14Z"})
    check(run(IDENTIFY, [again, update], index=index), status="sent")
    assert (index.stats.pages, index.stats.refreshes) == (3, 2)


MISSING = {"type": "identify", "userId": "u-3", "traits": {"name": "Cy"}}


def waiting_index(told: list[str]) -> tuple[FakeClock, IdentityIndex, Step[Any]]:
    """An index listed at 0 s whose shell answers waits (`told` each listing's end), and another
    event's refresh of it, begun at 11 s and in flight (its first page asked)."""
    clock = FakeClock()
    index = built(clock=clock)
    index.notify = told.append
    clock.now = 11.0
    in_flight = probe_steps(index_listing(index, PERSON))
    assert next(in_flight).query["updated_since"] == "2026-11-28T10:00:03Z"
    return clock, index, in_flight


def planned(raw: dict[str, Any], index: IdentityIndex) -> Step[Outcome]:
    event = parse_event({"messageId": "m-1", **raw}, "test.ndjson:1")
    plan = plan_event(event, CONFIG, IdentityStore(), index)
    assert not isinstance(plan, Outcome)
    return plan


def test_a_miss_waits_for_the_refresh_in_flight_and_answers_from_it_while_under_10s_old() -> None:
    """A lookup that missed while another event's refresh was in flight made its own, each
    listing again every record updated since: 15,000 new userIds over the sandbox made 16
    refreshes of 241 pages. It waits for that refresh instead and looks again: u-3, made by
    another client meanwhile and listed by that refresh, is updated, not made twice, and no
    listing of its own is made."""
    told: list[str] = []
    clock, index, in_flight = waiting_index(told)
    clock.now = 12.0
    plan = planned(MISSING, index)
    wait = next(plan)
    assert type(wait) is IndexWait and (wait.kind, wait.until) == ("person", 21.0)
    assert (wait.stage, wait.note) == (
        "index persons",
        "wait for the person index's refresh in flight",
    )
    with pytest.raises(StopIteration):
        in_flight.send(ok([person_record(9, "u-3")], additional={"next_cursor": None}))
    assert told == ["person"]
    clock.now = 20.5  # the refresh began 9.5 s ago: as fresh as a lookup trusts
    update = plan.send(ok())
    assert (update.method, update.path) == ("PATCH", "/api/v2/persons/9")
    with pytest.raises(StopIteration) as stop:
        plan.send(ok({"id": 9}))
    check(stop.value.value, status="sent", identities={("person", "u-3"): 9})
    assert (index.stats.pages, index.stats.refreshes) == (2, 1)


def test_a_miss_that_waited_past_10s_after_the_refresh_began_makes_its_own() -> None:
    """The refresh in flight ended, but 10 s after it began: a record made since may be missing
    from it, so the lookup that waited refreshes the index itself (SPEC 5's 10 s, kept exact),
    and a refresh begun over 10 s ago is not waited for at all."""
    told: list[str] = []
    clock, index, in_flight = waiting_index(told)
    clock.now = 15.0
    plan = planned(MISSING, index)
    assert type(next(plan)) is IndexWait
    clock.now = 21.5
    with pytest.raises(StopIteration):
        in_flight.send(ok([], additional={"next_cursor": None}))
    own = plan.send(ok())
    assert (own.method, own.query.get("updated_since")) == ("GET", "2026-11-28T10:00:03Z")
    late = probe_steps(index_listing(index, PERSON))  # begun at 21.5 s, in flight
    next(late)
    clock.now = 31.6
    again = next(planned(MISSING, index))
    assert (again.method, again.path) == ("GET", "/api/v2/persons")  # 10.1 s old: its own


def test_a_miss_stops_waiting_for_a_refresh_that_failed() -> None:
    """The refresh in flight failed (its page malformed): the index tells the shell, which wakes
    the lookups waiting for it, and they make their own; later misses wait for none."""
    told: list[str] = []
    clock, index, in_flight = waiting_index(told)
    clock.now = 12.0
    plan = planned(MISSING, index)
    assert type(next(plan)) is IndexWait
    with pytest.raises(PlanFailure):
        in_flight.send(ok({"not": "a list"}))
    assert told == ["person"]
    assert index.awaited("person") is None  # no later miss waits for it
    own = plan.send(ok())
    assert (own.method, own.path) == ("GET", "/api/v2/persons")


def test_a_malformed_refresh_is_never_taken_as_not_found() -> None:
    clock = FakeClock()
    index = built(clock=clock)
    clock.now = 11.0
    mangled = refresh([], ApiResponse(status=200, data={"items": []}))
    outcome = run(IDENTIFY, [mangled], index=index)
    check(outcome, status="failed", retryable=True)
    assert "malformed" in outcome.reason


def test_a_record_a_listing_shows_deleted_holds_no_identity() -> None:
    """A listing may show a deleted record (`is_deleted`, in v2's person and organization
    schemas), as an updated_since refresh after a delete can: it held u-1 and was taken as u-1's
    person, to be updated though deleted, where a search (which finds no deleted record) has
    none and creates it. It goes out of the index; a lost create's reconciling reads it so too."""
    clock = FakeClock()
    index = built(person_record(7, "u-1"), clock=clock)
    clock.now = 11.0
    deleted = person_record(7, "u-1") | {"is_deleted": True}
    body = {"name": "Ann", "custom_fields": {ROLE: "Dev", USER_FIELD: "u-1"}}
    outcome = run(IDENTIFY, [refresh([deleted]), create_person(body, 100)], index=index)
    check(outcome, status="sent")
    assert identity_rows([deleted, person_record(8, "u-2")], USER_FIELD) == [(7, None), (8, "u-2")]


def test_an_alias_whose_survivor_the_index_gave_is_gone_searches_it_again() -> None:
    """The index (which a listing never tells of a deleted record) gave the survivor of an
    alias's merge, 8, that someone else has merged away: Pipedrive refuses the merge with 400
    naming merge_with_id. That failed the event for good, though a search finds u-new's person,
    as it does for a survivor the cache gave: the index's is stale too, searched again."""
    index = built(person_record(7, "old"), person_record(8, "new"))
    gone = ApiResponse(status=400, error="merge_with_id: person 8 was merged")
    calls = [
        Call(method="PUT", path="/v1/persons/7/merge", body={"merge_with_id": 8}, response=gone),
        search_person("new", 9),
        Call(
            method="PUT",
            path="/v1/persons/7/merge",
            body={"merge_with_id": 9},
            response=ok({"id": 9}),
        ),
    ]
    outcome = run({"type": "alias", "previousId": "old", "userId": "new"}, calls, index=index)
    check(outcome, status="sent")
    assert index.lookup("person", "new") == []  # the gone person is out of the index


def with_acme(index: IdentityIndex) -> IdentityIndex:
    """`index` with an organization index built from one page: g-1's organization, 500."""
    index.fields["org"] = GROUP_FIELD
    steps = probe_steps(index_listing(index, ORG))
    next(steps)
    org = {"id": 500, "name": "Acme", "custom_fields": {GROUP_FIELD: "g-1"}}
    with pytest.raises(StopIteration):
        steps.send(ApiResponse(status=200, data=[org], sent_at=LISTED_AT))
    return index


def test_a_link_to_an_organization_the_index_gave_refused_searches_it_again() -> None:
    """The organization index gave g-1's organization, 500, which someone else has deleted
    since (a listing never says): linking the person to it is refused, and that failed the
    event for good, where an organization the cache gave is searched again. So is this one."""
    index = with_acme(built(person_record(42, "u-1")))
    refused = ApiResponse(status=400, error="org_id: organization 500 not found")
    calls = [
        patch("persons", 42, {"org_id": 500}, refused),
        search_org("g-1", 501),
        patch("persons", 42, {"org_id": 501}, ok({"id": 42, "org_id": 501})),
    ]
    raw = {"type": "group", "userId": "u-1", "groupId": "g-1", "traits": {}}
    outcome = run(raw, calls, index=index)
    check(outcome, status="sent")
    assert index.lookup("org", "g-1") == []  # the gone organization is out of the index


def test_a_link_refused_for_its_gone_person_leaves_the_organization_in_the_index() -> None:
    """The person a search found for u-1 is gone: its link answers 404 (the URL's person),
    while g-1's organization, which the index gave, is there. The refusal is taken as a stale
    organization too (searched again, as one the cache gave), and it left the index at once:
    its search failing (503), the event failed with the organization out of the index, and a
    later event of g-1, not finding it there, would create it a second time. It leaves the
    index only once the search has answered."""
    index = with_acme(IdentityIndex(MemoryIndexRows(), {}, clock=FakeClock()))
    gone = ApiResponse(status=404, error="person not found")
    failing = replace(search_org("g-1"), response=ApiResponse(status=503, error="HTTP 503"))
    calls = [search_person("u-1", 42), patch("persons", 42, {"org_id": 500}, gone), failing]
    raw = {"type": "group", "userId": "u-1", "groupId": "g-1", "traits": {}}
    check(run(raw, calls, index=index), status="failed", retryable=True)
    assert index.lookup("org", "g-1") == [500]


def test_a_person_the_index_gave_stays_in_it_when_its_search_again_fails() -> None:
    """A lead for u-1's person, 42, which the index gave, refused with a 400 naming a person
    (here a person-type field's value, not 42): taken as 42 gone, as for a person the cache
    gives, and searched again. 42 left the index at once, so when that search failed (503)
    the event failed with u-1's person, which is there, out of the state's index, and u-1's
    next identify, not finding it there, would create a second one. It leaves the index only
    once the search has answered: here it stays."""
    index = built(person_record(42, "u-1"))
    lead = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 42}
    refused = ApiResponse(status=400, error="Referrer: not a person id")
    failing = replace(search_person("u-1"), response=ApiResponse(status=503, error="HTTP 503"))
    calls = [*leads_of(42), post("/v1/leads", lead, refused), failing]
    raw = {"type": "track", "event": "Signed Up", "userId": "u-1"}
    check(run(raw, calls, index=index), status="failed", retryable=True)
    assert index.lookup("person", "u-1") == [42]


def test_a_person_the_index_gave_stays_in_it_when_its_search_again_finds_it_among_others() -> None:
    """The lead's 400 naming a person is taken as u-1's person, 42 (the index's), gone, and u-1
    is searched again: the search finds 42, there all along, and 5, another client's, with
    u-1 too. The lowest, 5, is taken (ambiguous, as any two hits) and goes into the index, and
    42 left it: the index no longer said u-1 was ambiguous, and once 5 lost u-1 (re-keyed,
    merged away) it would say u-1 has no person, and the next event would make a second. A
    record the search finds is there: it stays."""
    index = built(person_record(42, "u-1"))
    lead = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 42}
    refused = ApiResponse(status=400, error="Referrer: not a person id")
    calls = [*leads_of(42), post("/v1/leads", lead, refused), search_person("u-1", 42, 5)]
    calls += [*leads_of(5), create_lead({**lead, "person_id": 5})]
    raw = {"type": "track", "event": "Signed Up", "userId": "u-1"}
    outcome = run(raw, calls, index=index)
    check(outcome, status="sent", identities={("person", "u-1"): 5})
    index.learn(outcome)
    assert index.lookup("person", "u-1") == [5, 42]


def test_an_indexed_id_that_is_gone_is_searched_again() -> None:
    index = built(person_record(7, "u-1"))
    body = {"name": "Ann", "custom_fields": {ROLE: "Dev"}}
    outcome = run(
        IDENTIFY,
        [patch_person(7, body, status=404), search_person("u-1", 9), patch_person(9, body)],
        index=index,
    )
    check(outcome, status="sent")
    assert taught(outcome).identities == {("person", "u-1"): 9}


def test_a_merge_takes_the_merged_person_out_and_a_changed_identity_moves() -> None:
    index = built(person_record(7, "u-1"), person_record(8, "u-2"))
    index.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 8}, merged={7: 8}))
    )
    assert index.lookup("person", "u-1") == []  # the survivor keeps its own userId
    assert index.lookup("person", "u-2") == [8]
    index.begin("person", 0.0)
    index.take("person", [person_record(8, "u-9")])
    assert (index.lookup("person", "u-2"), index.lookup("person", "u-9")) == ([], [8])


def test_an_index_listed_for_another_field_is_built_again() -> None:
    rows = MemoryIndexRows()
    index = IdentityIndex(rows, {"person": USER_FIELD}, clock=FakeClock())
    index.begin("person", 0.0)
    index.take("person", [person_record(1, "u-1")])
    index.end("person", LISTED_AT, refresh=False, started=0.0)
    other = IdentityIndex(rows, {"person": GROUP_FIELD}, clock=FakeClock())
    assert not other.covers("person")
    assert other.begin("person", 0.0) is None  # a build: from no rows
    assert rows.ids("person", "u-1") == []


@pytest.mark.parametrize(
    ("unknown", "account", "way"),
    [
        (199, None, "search"),
        (200, None, "index"),
        (0, None, "search"),
        (1, 0, "index"),  # 20 tokens of search against one page of 10
        (50, 50_000, "index"),  # 1,000 tokens against 100 pages (1,000 tokens): not more
        (50, 50_001, "search"),
    ],
)
def test_auto_weighs_search_tokens_against_listing_tokens(
    unknown: int, account: int | None, way: str
) -> None:
    if (unknown, account) == (50, 50_000):
        way = "search"  # equal costs: searching is not dearer
    assert choose(unknown, account) == way


def test_the_account_listing_pays_when_more_persons_need_listing_than_pages() -> None:
    assert not account_listing_pays(1, 400)
    assert account_listing_pays(2, 400)
    assert not account_listing_pays(2, 1000)
    assert account_listing_pays(3, 1000)
    assert not account_listing_pays(0, 0)  # an empty listing is a page too


def test_only_rpd_origins_are_kept_from_the_account_leads() -> None:
    leads = [
        {"id": "a", "person_id": 1, "origin_id": "rpd:m-1"},
        {"id": "b", "person_id": 1, "origin_id": "rpd:m-2"},
        {"id": "c", "person_id": 2, "origin_id": "crm:5"},
        {"id": "d", "person_id": None, "origin_id": "rpd:m-3"},
        {"id": "e", "person_id": 3, "origin_id": None},
    ]
    assert rpd_origins(leads, KINDS["lead"].origins) == {1: {"rpd:m-1", "rpd:m-2"}}


def test_activities_and_notes_are_keyed_on_their_person_by_their_markers() -> None:
    activities = [
        {"id": 1, "person_id": 4, "note": "Booked<p>rpd:m-1</p>"},
        {"id": 2, "person_id": 4, "note": None},
        {"id": 3, "person_id": 5, "note": "by hand"},
        {"id": 4, "person_id": None, "note": "<p>rpd:m-2</p>"},
    ]
    assert rpd_origins(activities, KINDS["activity"].origins) == {4: {"rpd:m-1"}}
    notes = [{"id": 1, "person_id": 6, "content": "<p>Ticket</p><p>rpd:m-3</p>"}]
    assert rpd_origins(notes, KINDS["note"].origins) == {6: {"rpd:m-3"}}


@pytest.mark.parametrize(
    ("kind", "person", "key"),
    [
        ("lead", 42, 42),
        ("lead", "{person:u-1}", "{person:u-1}"),
        ("deal", 42, "deal:42"),
        ("activity", 42, "activity:42"),
        ("note", "{person:u-1}", "note:'{person:u-1}'"),
    ],
)
def test_origins_keys_say_their_kind(kind: str, person: int | str, key: int | str) -> None:
    assert origins_key(kind, person) == key
    assert origins_kind(key) == kind


def test_listed_origins_answer_for_the_kinds_listed_only() -> None:
    known = listed = IdentityStore()
    assert listed.lead_origins(7) is None  # nothing listed: the cache's alone
    listed.list_origins({origins_key("deal", 7): {"rpd:m-1"}, 7: {"rpd:m-2"}}, ["lead", "deal"])
    assert listed.lead_origins(7) == frozenset({"rpd:m-2"})
    assert listed.lead_origins(origins_key("deal", 7)) == frozenset({"rpd:m-1"})
    assert listed.lead_origins(origins_key("deal", 8)) == frozenset()  # listed: it has none
    # Activities and notes were not listed for the account: each person's are listed first.
    assert listed.lead_origins(origins_key("activity", 7)) is None
    assert listed.lead_origins(origins_key("note", 7)) is None
    known.learn(
        Outcome(
            status="sent", learned=Learned(lead_origins={origins_key("deal", 7): frozenset({"x"})})
        )
    )
    assert listed.lead_origins(origins_key("deal", 7)) == frozenset({"x"})  # the cache's first


def test_the_survey_counts_tracked_persons_by_what_their_rule_creates() -> None:
    rules = parse_rules(
        [
            {"events": ["Page *"], "create": "skip"},
            {"events": ["Demo Requested"], "create": "deal"},
            {"events": ["Call *"], "create": "activity"},
            {"events": ["Ticket"], "create": "note"},
        ],
        "rpd.toml",
    )
    survey = Survey(rules=rules)
    raws = [
        ("u-1", "Page Viewed"),
        ("u-1", "Demo Requested"),
        ("u-2", "Demo Requested"),
        ("u-2", "Call Booked"),
        ("u-3", "Ticket"),
        ("u-3", "Signed Up"),
    ]
    for n, (user, name) in enumerate(raws):
        raw = {"messageId": f"m-{n}", "type": "track", "userId": user, "event": name}
        survey.add(parse_event(raw, f"f:{n}"))
    external = {"type": "track", "userId": "u-9", "event": "Ticket"}
    external["context"] = {"externalId": [{"type": "person_id", "id": 9}]}
    survey.add(parse_event({"messageId": "m-x", **external}, "f:x"))
    assert survey.tracked == {
        "deal": {"u-1", "u-2"},
        "activity": {"u-2"},
        "note": {"u-3"},
        "lead": {"u-3"},
    }


def test_the_survey_counts_what_no_external_id_resolves() -> None:
    survey = Survey()
    raws = [
        {"type": "identify", "userId": "u-1"},
        {"type": "track", "userId": "u-2", "event": "E"},
        {"type": "alias", "userId": "u-3", "previousId": "u-0"},
        {"type": "group", "userId": "u-1", "groupId": "g-1"},
        {
            "type": "group",
            "userId": "u-4",
            "groupId": "g-2",
            "context": {
                "externalId": [{"type": "org_id", "id": 5}, {"type": "person_id", "id": 6}]
            },
        },
        {"type": "identify", "userId": "u-1", "previousId": "u-5"},  # only an alias looks it up
    ]
    for n, raw in enumerate(raws):
        survey.add(parse_event({"messageId": f"m-{n}", **raw}, f"f:{n}"))
    assert survey.persons == {"u-1", "u-2", "u-3"}
    assert survey.aliased == {"u-0": ["m-2"]}  # a previousId: apart, with its aliases
    assert survey.orgs == {"g-1"}
    assert survey.tracked == {"lead": {"u-2"}}
    known = IdentityStore()
    known.persons["u-1"] = 1
    assert survey.unknown("person", known) == 3
    assert survey.unknown("org", known) == 1


@pytest.mark.parametrize(("done", "unknown"), [(set(), 2), ({"m-1"}, 2), ({"m-1", "m-3"}, 1)])
def test_a_previous_id_no_person_has_is_unknown_until_its_every_alias_is_done(
    done: set[str], unknown: int
) -> None:
    """An anonymousId an alias names is never a person: counted only while an alias naming it
    is left to do, so a rerun with nothing to do refreshes no index for it. One that is also a
    userId is counted as such."""
    survey = Survey(alias_journal=lambda id: "sent" if id in done else None)
    raws = [
        {"type": "alias", "userId": "u-1", "previousId": "anon-1"},
        {"type": "alias", "userId": "u-2", "previousId": "u-1"},
        {"type": "alias", "userId": "u-2", "previousId": "anon-1"},
    ]
    for n, raw in enumerate(raws, 1):
        survey.add(parse_event({"messageId": f"m-{n}", **raw}, f"f:{n}"))
    known = IdentityStore()
    known.persons["u-2"] = 2
    assert survey.unknown("person", known) == unknown  # u-1 always; anon-1 till m-1, m-3 done


def test_the_survey_keeps_at_most_its_cap_of_alias_ids_and_takes_the_rest_as_not_done() -> None:
    """An anonymousId aliased at each login: the ids of its aliases grew with the input, past
    the cap every count keeps (400,000 aliases of 1,000 previousIds kept 400,000). Past it, a
    previousId keeps none and is counted as not done: unknown while no person has it."""
    survey = Survey(cap=3, alias_journal=lambda id: "sent")  # every alias done
    raws = [("anon-1", "u-1"), ("anon-2", "u-2"), ("anon-1", "u-3"), ("anon-1", "u-4")]
    raws += [("anon-2", "u-5"), ("anon-3", "u-6")]
    for n, (previous, user) in enumerate(raws, 1):
        raw = {"messageId": f"m-{n}", "type": "alias", "userId": user, "previousId": previous}
        survey.add(parse_event(raw, f"f:{n}"))
    # anon-1's fourth alias found the cap reached: its ids went, and anon-2's next and anon-3's
    # first fit again.
    assert survey.aliased == {"anon-1": None, "anon-2": ["m-2", "m-5"], "anon-3": ["m-6"]}
    assert survey.alias_ids == 3
    known = IdentityStore()
    for n, user in enumerate(("u-1", "u-2", "u-3", "u-4", "u-5", "u-6"), 1):
        known.persons[user] = n
    assert survey.unknown("person", known) == 1  # anon-1: not known to be done
    known.persons["anon-1"] = 9
    assert survey.unknown("person", known) == 0


@pytest.mark.parametrize(
    ("raw", "external"),
    [
        ({"type": "identify", "userId": "u-1"}, False),
        ({"type": "group", "groupId": "g-1", "ids": [("org_id", 5)]}, False),
        ({"type": "page", "ids": [("person_id", 6)]}, False),  # no plan resolves it
        ({"type": "track", "event": "Page Viewed", "ids": [("person_id", 6)]}, False),  # skipped
        ({"type": "track", "ids": [("person_id", 6)]}, False),  # unnamed: it fails
        ({"type": "identify", "ids": [("person_id", 6)]}, True),
        ({"type": "track", "event": "Signed Up", "ids": [("person_id", 6)]}, True),
        ({"type": "alias", "ids": [("prev_person_id", 2), ("curr_person_id", 3)]}, True),
        # A userId or previousId left to look up needs user_id_field all the same.
        ({"type": "alias", "userId": "u-1", "ids": [("prev_person_id", 2)]}, False),
        ({"type": "alias", "previousId": "u-0", "ids": [("curr_person_id", 3)]}, False),
        ({"type": "identify", "previousId": "u-0", "ids": [("person_id", 6)]}, True),
    ],
)
def test_the_survey_notes_an_event_to_plan_that_names_a_person_by_an_external_id(
    raw: dict[str, Any], external: bool
) -> None:
    # With user_id_field unset, send sends such events (SPEC 4) and refuses to start without one.
    rules = parse_rules([{"events": ["Page *"], "create": "skip"}], "rpd.toml")
    entries = [{"type": kind, "id": value} for kind, value in raw.pop("ids", [])]
    event = parse_event({"messageId": "m-1", **raw, "context": {"externalId": entries}}, "f:1")
    survey = Survey(rules=rules, cap=0)
    assert list(surveyed([event], survey)) == [event]
    assert survey.external is external
    assert survey.persons == set()  # dry-run's: it keeps no identity


def test_an_event_the_journal_has_done_is_not_noted_as_having_an_external_id() -> None:
    # A rerun does not plan it: with user_id_field unset, only the events left decide.
    journal = {"m-1": "sent", "m-2": "failed"}
    survey = Survey(journal_status=journal.get)
    by_person_id = {"type": "identify", "context": {"externalId": [{"type": "person_id", "id": 6}]}}
    survey.add(parse_event({"messageId": "m-1", **by_person_id}, "f:1"))
    assert not survey.external
    survey.add(parse_event({"messageId": "m-2", **by_person_id}, "f:2"))
    assert survey.external


def test_a_filtered_out_event_is_not_noted() -> None:
    raw = {"messageId": "m-1", "type": "identify", "userId": "u-1"}
    raw["context"] = {"externalId": [{"type": "person_id", "id": 6}]}
    event = parse_event(raw, "f:1")
    event.decided = Outcome(status="skipped", reason="filtered out")
    survey = Survey()
    assert input_aliases([event], survey) == {}
    assert not survey.external


def test_without_an_index_the_plan_searches_as_before() -> None:
    body = {"name": "Ann", "custom_fields": {ROLE: "Dev"}}
    outcome = run(IDENTIFY, [search_person("u-1", 3), patch_person(3, body)], config=CONFIG)
    check(outcome, status="sent")


def test_a_refresh_answer_without_a_send_time_keeps_the_time_listed_from() -> None:
    clock = FakeClock()
    index = built(clock=clock)
    index.begin("person", 0.0)
    index.end("person", "", refresh=True, started=0.0)
    assert index.since("person") == LISTED_AT
    assert index.covers("person")


def test_events_that_need_a_refresh_while_one_is_in_flight_make_their_own() -> None:
    clock = FakeClock()
    index = built(clock=clock)
    clock.now = 11.0
    assert index.due("person")
    first = probe_steps(index_listing(index, PERSON))
    next(first)  # a refresh in flight: the index is still the one listed 11 s ago
    assert index.due("person")
    with pytest.raises(StopIteration):
        first.send(ApiResponse(status=200, data=[], sent_at=REFRESHED_AT))
    assert not index.due("person")  # listed now
    clock.now = 21.0
    assert not index.due("person")  # started at 11 s: 10 s old
    clock.now = 21.5
    assert index.due("person")


@pytest.mark.parametrize("account", [None, 0, 499, 500, 501, 20_000, 50_001])
def test_counting_stops_where_the_choice_is_settled(account: int | None) -> None:
    limit = worth_counting(account)
    assert choose(limit, account) == "index"
    assert choose(limit - 1, account) == "search"
    survey = Survey()
    for n in range(limit + 50):
        survey.add(parse_event({"messageId": f"m-{n}", "type": "identify", "userId": n}, "f:1"))
    assert survey.unknown("person", IdentityStore(), limit) == limit
