"""A malformed answer to a lookup or a listing is never "no records" (issue 13 item 3, SPEC 4):
the event fails, retryably, before any write that such a reading would have made (a second
person, a second lead)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_core import (
    SENT_AT,
    UNKNOWN,
    USER_FIELD,
    Call,
    check,
    leads_of,
    list_archived,
    list_leads,
    listing,
    post,
    run,
    search_person,
)

from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.protocol import ApiResponse

IDENTIFY = {"type": "identify", "userId": "u-1", "traits": {"name": "Ann"}}
TRACK = {"type": "track", "userId": "u-1", "event": "Signed Up"}
ANN = {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}}
AGAIN = "retry later"

# What the client makes of each body (tests/http/test_http_malformed_answers.py pins that part).
MALFORMED: dict[str, tuple[ApiResponse, str]] = {
    "success false": (
        ApiResponse(status=200, error="failed", malformed='"success" is not true'),
        '"success" is not true',
    ),
    "html page": (ApiResponse(status=200, malformed="not JSON"), "not JSON"),
    "empty body": (ApiResponse(status=200, malformed="an empty body"), "an empty body"),
    "success without data": (ApiResponse(status=200, malformed='no "data"'), 'no "data"'),
    "v1-shaped search": (
        ApiResponse(status=200, data={"items": [{"result_score": 1, "item": {"id": 7}}]}),
        '"data" is an object, not a list',
    ),
    "a list of strings": (ApiResponse(status=200, data=["7"]), 'an item of "data" is a string'),
    # empty, but neither null nor a list: not the "no hits" an empty answer is read as at once
    "an empty object": (ApiResponse(status=200, data={}), '"data" is an object, not a list'),
    "an empty string": (ApiResponse(status=200, data=""), '"data" is a string, not a list'),
}


def refused(stage: str, why: str) -> str:
    return (
        f"{stage}: Pipedrive's answer is malformed (HTTP 200: {why}); not taken as no records: "
        f"{AGAIN}"
    )


def answered(call: Call, response: ApiResponse) -> Call:
    return Call(
        method=call.method, path=call.path, query=call.query, body=call.body, response=response
    )


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_a_malformed_search_answer_fails_the_event_and_creates_nothing(shape: str) -> None:
    response, why = MALFORMED[shape]
    outcome = run(IDENTIFY, [answered(search_person("u-1"), response)])
    check(
        outcome,
        status="failed",
        reason=refused("lookup person", why),
        stage="lookup person",
        http_status=200,
        retryable=True,
    )


def test_a_hit_without_an_id_is_malformed_not_a_miss() -> None:
    response = ApiResponse(status=200, data=[{"result_score": 1, "item": {"name": "Ann"}}])
    outcome = run(IDENTIFY, [answered(search_person("u-1"), response)])
    check(outcome, status="failed", reason=refused("lookup person", "a hit holds no id"))


@pytest.mark.parametrize(
    "response",
    [
        ApiResponse(status=200, data=None),
        ApiResponse(status=200, data=[]),
    ],
    ids=["null", "empty list"],
)
def test_data_null_or_an_empty_list_is_not_found(response: ApiResponse) -> None:
    created = post("/api/v2/persons", ANN, ApiResponse(status=201, data={"id": 9, **ANN}))
    outcome = run(IDENTIFY, [answered(search_person("u-1"), response), created])
    check(outcome, status="sent", identities={("person", "u-1"): 9})


def test_both_hit_shapes_are_read() -> None:
    response = ApiResponse(
        status=200, data=[{"id": 7, "name": "Ann"}, {"result_score": 0.9, "item": {"id": 5}}]
    )
    update = Call(
        method="PATCH",
        path="/api/v2/persons/5",
        body={"name": "Ann"},
        response=ApiResponse(status=200, data={"id": 5}),
    )
    outcome = run(IDENTIFY, [answered(search_person("u-1"), response), update])
    check(outcome, status="sent", identities={("person", "u-1"): 5})


@pytest.mark.parametrize("shape", sorted(MALFORMED))
@pytest.mark.parametrize("archived", [False, True], ids=["leads", "archived leads"])
def test_a_malformed_lead_listing_fails_the_track_and_creates_no_lead(
    shape: str, archived: bool
) -> None:
    response, why = MALFORMED[shape]
    calls = (
        [list_leads(42), answered(list_archived(42), response)]
        if archived
        else [answered(list_leads(42), response)]
    )
    outcome = run(TRACK, [search_person("u-1", 42), *calls])
    check(
        outcome,
        status="failed",
        reason=refused("list leads", why),
        stage="list leads",
        retryable=True,
    )


def test_an_archived_lead_counts_as_sent_before() -> None:
    outcome = run(TRACK, [search_person("u-1", 42), *leads_of(42, archived=["rpd:m-1"])])
    check(outcome, status="skipped", reason="already done")


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_a_malformed_reconciliation_listing_leaves_the_create_pending(shape: str) -> None:
    response, why = MALFORMED[shape]
    known = IdentityStore()
    lost = post("/api/v2/persons", ANN, UNKNOWN)
    calls = [search_person("u-1"), lost, answered(listing("persons", []), response)]
    outcome = run(IDENTIFY, calls, known=known)
    check(
        outcome,
        status="failed",
        reason=refused("reconcile person", why),
        retryable=True,
        pending_creates={("person", "u-1"): SENT_AT},
    )


def test_a_lost_lead_is_looked_for_among_archived_leads_too() -> None:
    lead: dict[str, Any] = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 42}
    lost = post("/v1/leads", lead, UNKNOWN)
    calls = [*leads_of(42), lost, list_leads(42), list_archived(42, "rpd:m-1")]
    outcome = run(TRACK, [search_person("u-1", 42), *calls])
    check(outcome, status="sent", lead_origins={42: frozenset({"rpd:m-1"})})
