"""SPEC 5 exactly-once: a write whose outcome is unknown is reconciled before it is repeated."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers_core import (
    CONFIG,
    GROUP_FIELD,
    UNKNOWN,
    USER_FIELD,
    Call,
    Case,
    create_lead,
    create_person,
    leads_of,
    listing,
    ok,
    patch_person,
    person_record,
    post,
    search_org,
    search_person,
)

from rudder_pipedrive_cli.core.plans.alias import MERGED_BEFORE
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiResponse

UNKNOWN_TRIES = PlanConfig().unknown_tries  # the default: the transport's 6 retries + 1

ANN = {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}}
IDENTIFY = {"type": "identify", "userId": "u-1", "traits": {"name": "Ann"}}
ORIGIN = "rpd:m-1"
LEAD = {"title": "Signed Up", "origin_id": ORIGIN, "person_id": 42}
TRACK = {"type": "track", "event": "Signed Up", "userId": "u-1"}
UNKNOWN_PERSON = post("/api/v2/persons", ANN, UNKNOWN)
UNKNOWN_LEAD = post("/v1/leads", LEAD, UNKNOWN)
OUTCOME_UNKNOWN = {
    "status": "failed",
    "retryable": True,
}


def merge(status: int | ApiResponse = 200) -> Call:
    response = status if isinstance(status, ApiResponse) else ok({"id": 8}, status=status)
    return Call(
        method="PUT",
        path="/v1/persons/7/merge",
        body={"merge_with_id": 8},
        response=response,
    )


def get_previous(status: int) -> Call:
    return Call(method="GET", path="/api/v2/persons/7", response=ok({"id": 7}, status=status))


def get_survivor(status: int) -> Call:
    return Call(method="GET", path="/api/v2/persons/8", response=ok({"id": 8}, status=status))


CASES = [
    Case(
        name="unknown person create, found among recent persons: used, not repeated",
        raw=IDENTIFY,
        calls=[
            search_person("u-1"),
            UNKNOWN_PERSON,
            listing("persons", [person_record(5, "u-2"), person_record(6, "u-1")]),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 6}},
    ),
    Case(
        name="unknown person create, identity field answered as {value: ...}",
        raw=IDENTIFY,
        calls=[
            search_person("u-1"),
            UNKNOWN_PERSON,
            listing("persons", [{"id": 6, "custom_fields": {USER_FIELD: {"value": "u-1"}}}]),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 6}},
    ),
    Case(
        name="unknown person create, listing paged by next_cursor",
        raw=IDENTIFY,
        calls=[
            search_person("u-1"),
            UNKNOWN_PERSON,
            listing("persons", [person_record(5, "u-2")], cursor="c2"),
            Call(
                method="GET",
                path="/api/v2/persons",
                query={**listing("persons", []).query, "cursor": "c2"},
                response=ok([person_record(9, "u-1")]),
            ),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 9}},
    ),
    Case(
        name="unknown person create, not found: repeated once more",
        raw=IDENTIFY,
        calls=[search_person("u-1"), UNKNOWN_PERSON, listing("persons", []), create_person(ANN)],
        expect={"status": "sent", "identities": {("person", "u-1"): 100}},
    ),
    Case(
        name="unknown_tries unknown outcomes: fails retryable, saying the outcome is unknown",
        raw=IDENTIFY,
        calls=[search_person("u-1")] + [UNKNOWN_PERSON, listing("persons", [])] * UNKNOWN_TRIES,
        expect={
            **OUTCOME_UNKNOWN,
            "reason": f"create person: outcome unknown after {UNKNOWN_TRIES} attempts "
            "(no person with userId u-1 appeared); retry later",
            "stage": "create person",
        },
    ),
    Case(
        name="--max-retries 1: two tries of a write whose outcome stays unknown (QA)",
        raw=IDENTIFY,
        config=replace(CONFIG, unknown_tries=2),
        calls=[search_person("u-1")] + [UNKNOWN_PERSON, listing("persons", [])] * 2,
        expect={
            **OUTCOME_UNKNOWN,
            "reason": "create person: outcome unknown after 2 attempts "
            "(no person with userId u-1 appeared); retry later",
            "stage": "create person",
        },
    ),
    Case(
        name="--max-retries 0: one try of a write whose outcome stays unknown, 'after 1 attempt'",
        raw=IDENTIFY,
        config=replace(CONFIG, unknown_tries=1),
        calls=[search_person("u-1"), UNKNOWN_PERSON, listing("persons", [])],
        expect={
            **OUTCOME_UNKNOWN,
            "reason": "create person: outcome unknown after 1 attempt "
            "(no person with userId u-1 appeared); retry later",
            "stage": "create person",
        },
    ),
    Case(
        name="a userId with a line break is quoted in the reason, as JSON",
        raw={**IDENTIFY, "userId": "u-1\nx"},
        config=replace(CONFIG, unknown_tries=1),
        calls=[
            search_person("u-1\nx"),
            post("/api/v2/persons", {**ANN, "custom_fields": {USER_FIELD: "u-1\nx"}}, UNKNOWN),
            listing("persons", []),
        ],
        expect={
            **OUTCOME_UNKNOWN,
            "reason": "create person: outcome unknown after 1 attempt "
            '(no person with userId "u-1\\nx" appeared); retry later',
        },
    ),
    Case(
        name="unknown outcome without a send time: fails retryable, not repeated",
        raw=IDENTIFY,
        calls=[search_person("u-1"), post("/api/v2/persons", ANN, ApiResponse(status=0))],
        expect={
            **OUTCOME_UNKNOWN,
            "reason": "create person: outcome unknown and no send time to reconcile with",
        },
    ),
    Case(
        name="unknown organization create: reconciled by the groupId field",
        raw={"type": "group", "userId": "u-1", "groupId": "g-1", "traits": {"name": "Acme"}},
        persons={"u-1": 42},
        memberships={42: 31},
        calls=[
            search_org("g-1"),
            post(
                "/api/v2/organizations",
                {"name": "Acme", "custom_fields": {GROUP_FIELD: "g-1"}},
                UNKNOWN,
            ),
            listing(
                "organizations",
                [
                    {"id": 30, "custom_fields": {GROUP_FIELD: "g-0"}},
                    {"id": 31, "custom_fields": {GROUP_FIELD: "g-1"}},
                ],
            ),
        ],
        expect={"status": "sent", "identities": {("org", "g-1"): 31}},
    ),
    Case(
        name="unknown lead create, found by origin_id: done, not repeated",
        raw=TRACK,
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[UNKNOWN_LEAD, *leads_of(42, "rpd:other", ORIGIN)],
        expect={"status": "sent", "lead_origins": {42: frozenset({"rpd:other", ORIGIN})}},
    ),
    Case(
        name="unknown lead create, not found: repeated once more",
        raw=TRACK,
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[UNKNOWN_LEAD, *leads_of(42), create_lead(LEAD)],
        expect={"status": "sent", "lead_origins": {42: frozenset({ORIGIN})}},
    ),
    Case(
        name="lead outcome unknown three times: fails retryable",
        raw=TRACK,
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[UNKNOWN_LEAD, *leads_of(42)] * UNKNOWN_TRIES,
        expect={**OUTCOME_UNKNOWN, "stage": "create lead"},
    ),
    Case(
        name="a messageId with a line break is quoted in the reason, its origin_id sent whole",
        raw={**TRACK, "messageId": "m\n1"},
        config=replace(CONFIG, unknown_tries=1),
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[post("/v1/leads", {**LEAD, "origin_id": "rpd:m\n1"}, UNKNOWN), *leads_of(42)],
        expect={
            **OUTCOME_UNKNOWN,
            "reason": "create lead: outcome unknown after 1 attempt "
            '(no lead with "rpd:m\\n1" appeared); retry later',
        },
    ),
    Case(
        name="unknown merge, previous person gone while the survivor is there: the merge is done",
        raw={"type": "alias", "previousId": "old", "userId": "new"},
        persons={"old": 7, "new": 8},
        calls=[merge(UNKNOWN), get_previous(404), get_survivor(200)],
        expect={"status": "sent"},
    ),
    Case(
        name="unknown merge found done: the survivor's organization as its read gives it",
        raw={"type": "alias", "previousId": "old", "userId": "new"},
        persons={"old": 7, "new": 8},
        memberships={7: 500},
        calls=[
            merge(UNKNOWN),
            get_previous(404),
            Call(method="GET", path="/api/v2/persons/8", response=ok({"id": 8, "org_id": 300})),
        ],
        expect={"status": "sent", "memberships": {8: 300}},
    ),
    Case(
        name="merge refused 404 for a person a search found, done before: the survivor's "
        "organization as its read gives it",
        raw={"type": "alias", "previousId": "old", "userId": "new"},
        calls=[
            search_person("old", 7),
            search_person("new", 8),
            merge(404),
            Call(method="GET", path="/api/v2/persons/8", response=ok({"id": 8, "org_id": 300})),
        ],
        expect={"status": "unchanged", "reason": MERGED_BEFORE, "memberships": {8: 300}},
    ),
    Case(
        name="unknown merge, both persons gone: the cached survivor is stale, looked up again",
        raw={"type": "alias", "previousId": "old", "userId": "new"},
        persons={"old": 7, "new": 8},
        calls=[
            merge(UNKNOWN),
            get_previous(404),
            get_survivor(410),
            search_person("new"),
            patch_person(7, {"custom_fields": {USER_FIELD: "new"}}, status=404),
            search_person("old"),
            search_person("new"),
        ],
        expect={
            "status": "failed",
            "reason": "alias: neither previous nor current person found",
            "identities": {("person", "new"): None, ("person", "old"): None},
        },
    ),
    Case(
        name="unknown merge, previous person still there: merged again",
        raw={"type": "alias", "previousId": "old", "userId": "new"},
        persons={"old": 7, "new": 8},
        calls=[merge(UNKNOWN), get_previous(200), merge()],
        expect={"status": "sent"},
    ),
    Case(
        name="merge outcome unknown three times: fails retryable",
        raw={"type": "alias", "previousId": "old", "userId": "new"},
        persons={"old": 7, "new": 8},
        calls=[merge(UNKNOWN), get_previous(200)] * UNKNOWN_TRIES,
        expect={**OUTCOME_UNKNOWN, "stage": "merge persons"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reconcile(case: Case) -> None:
    case.verify()
