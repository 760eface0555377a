"""SPEC 4 common rules through `plan_event`: which events are planned at all, and whose identity."""

from __future__ import annotations

import pytest
from helpers_core import (
    USER_FIELD,
    Case,
    check,
    create_lead,
    create_person,
    leads_of,
    patch_person,
    run,
    search_person,
)

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


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_event(case: Case) -> None:
    case.verify()


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
