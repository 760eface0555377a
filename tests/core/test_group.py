"""group (SPEC 4): organization by external id, cache or search; person found or created; link."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers_core import (
    CONFIG,
    EMPLOYEES,
    GROUP_FIELD,
    INDUSTRY,
    USER_FIELD,
    Case,
    create_org,
    create_person,
    patch,
    patch_org,
    patch_person,
    search_org,
    search_person,
)

from rudder_pipedrive_cli.core.protocol import ApiResponse

TS = "2021-05-06T07:08:09Z"
ACME = {"name": "Acme", "add_time": TS, "custom_fields": {GROUP_FIELD: "g-1"}}
LINK_42 = patch_person(42, {"org_id": 500})


def group(traits: dict[str, object] | None = None, **fields: object) -> dict[str, object]:
    return {
        "type": "group",
        "userId": "u-1",
        "groupId": "g-1",
        "timestamp": TS,
        "traits": traits if traits is not None else {"name": "Acme"},
        **fields,
    }


def ext(*pairs: tuple[str, object]) -> dict[str, object]:
    return {"externalId": [{"type": kind, "id": value} for kind, value in pairs]}


CASES = [
    Case(
        name="org and person found: org updated with mapped fields, person linked",
        raw=group({"name": "Acme", "industry": "Retail", "employees": "250", "plan": "x"}),
        calls=[
            search_org("g-1", 500),
            search_person("u-1", 42),
            patch_org(500, {"name": "Acme", "custom_fields": {INDUSTRY: 5, EMPLOYEES: 250}}),
            LINK_42,
        ],
        expect={
            "status": "sent",
            "identities": {("org", "g-1"): 500, ("person", "u-1"): 42},
            "memberships": {42: 500},
            "dropped": ["plan"],
        },
    ),
    Case(
        name="org found with nothing mapped: no org PATCH, only the link",
        raw=group({}),
        calls=[search_org("g-1", 500), search_person("u-1", 42), LINK_42],
        expect={"status": "sent", "memberships": {42: 500}},
    ),
    Case(
        name="org not found: created with name, add_time and groupId field",
        raw=group({"name": "Acme", "visible_to": 3, "industry": "Software"}),
        calls=[
            search_org("g-1"),
            search_person("u-1", 42),
            create_org(
                {
                    "name": "Acme",
                    "visible_to": 3,
                    "add_time": TS,
                    "custom_fields": {INDUSTRY: 4, GROUP_FIELD: "g-1"},
                }
            ),
            LINK_42,
        ],
        expect={
            "status": "sent",
            "identities": {("org", "g-1"): 500, ("person", "u-1"): 42},
        },
    ),
    Case(
        name="an organization name that is not a string: dropped with a warning (issue 20)",
        raw=group({"name": {"legal": "Acme"}}),
        calls=[search_org("g-1"), search_person("u-1", 42)],
        expect={
            "status": "failed",
            "reason": "cannot create organization without a name",
            "warnings": ['name = {"legal":"Acme"} is not a name (a string); dropped'],
        },
    ),
    Case(
        name="unnamed new organization fails before any write",
        raw=group({"industry": "Retail"}),
        calls=[search_org("g-1"), search_person("u-1", 42)],
        expect={
            "status": "failed",
            "reason": "cannot create organization without a name",
            "stage": "create organization",
            "retryable": False,
        },
    ),
    Case(
        name="person not found: created from context.traits with org_id in the create",
        raw=group({}, context={"traits": {"name": "Ann", "role": "x"}}),
        calls=[
            search_org("g-1", 500),
            search_person("u-1"),
            create_person(
                {
                    "name": "Ann",
                    "add_time": TS,
                    "custom_fields": {
                        "6098b979cd7506a9c2b183a7814c70e8a6a08a3f": "x",
                        USER_FIELD: "u-1",
                    },
                    "org_id": 500,
                }
            ),
        ],
        expect={
            "status": "sent",
            "identities": {("org", "g-1"): 500, ("person", "u-1"): 100},
            "memberships": {100: 500},
            "lead_origins": {100: frozenset()},
        },
    ),
    Case(
        name="person not found, creation off: fails before the organization is created",
        raw=group(),
        config=replace(CONFIG, create_persons=False),
        calls=[search_org("g-1"), search_person("u-1")],
        expect={"status": "failed", "reason": "person not found and create_persons is off"},
    ),
    Case(
        name="external org_id and person_id: no searches, groupId recorded on the org",
        raw=group(context=ext(("org_id", 9), ("person_id", "42"))),
        calls=[
            patch_org(9, {"name": "Acme", "custom_fields": {GROUP_FIELD: "g-1"}}),
            patch_person(42, {"org_id": 9}),
        ],
        expect={
            "status": "sent",
            "identities": {("org", "g-1"): 9},
            "memberships": {42: 9},
        },
    ),
    Case(
        name="external pipedriveGroupId beats cache and search",
        raw=group({}, context=ext(("pipedriveGroupId", 9))),
        orgs={"g-1": 1},
        persons={"u-1": 42},
        calls=[
            patch_org(9, {"custom_fields": {GROUP_FIELD: "g-1"}}),
            patch_person(42, {"org_id": 9}),
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="membership already known: nothing to do",
        raw=group({}),
        orgs={"g-1": 500},
        persons={"u-1": 42},
        memberships={42: 500},
        expect={"status": "unchanged", "identities": {}},
    ),
    Case(
        name="groupId from traits.groupId",
        raw={"type": "group", "userId": "u-1", "traits": {"groupId": "g-1"}},
        calls=[search_org("g-1", 500), search_person("u-1", 42), LINK_42],
        expect={"status": "sent"},
    ),
    Case(
        name="cached organization refused in the link: forgotten and searched again",
        raw=group({}),
        orgs={"g-1": 1},
        persons={"u-1": 42},
        calls=[
            patch_person(42, {"org_id": 1}, 400),
            search_org("g-1", 500),
            LINK_42,
        ],
        expect={"status": "sent", "identities": {("org", "g-1"): 500}, "memberships": {42: 500}},
    ),
    Case(
        name="org created, cached person stale: re-found and linked, org not re-created",
        raw=group(),
        persons={"u-1": 7},
        calls=[
            search_org("g-1"),
            create_org(ACME),
            patch_person(7, {"org_id": 500}, 404),
            search_person("u-1", 42),
            LINK_42,
        ],
        expect={
            "status": "sent",
            "identities": {("org", "g-1"): 500, ("person", "u-1"): 42},
            "memberships": {42: 500},
        },
    ),
    Case(
        name="org updated, cached person stale: planned again, the org's PATCH not made twice",
        raw=group(),
        persons={"u-1": 7},
        calls=[
            search_org("g-1", 500),
            patch_org(500, {"name": "Acme"}),
            patch_person(7, {"org_id": 500}, 404),
            search_person("u-1", 42),
            LINK_42,
        ],
        expect={
            "status": "sent",
            "identities": {("org", "g-1"): 500, ("person", "u-1"): 42},
            "memberships": {42: 500},
            "writes": ("organizations updated", "persons updated"),
        },
    ),
    Case(
        name="link refused while the organization was found by search: fails",
        raw=group({}),
        calls=[
            search_org("g-1", 500),
            search_person("u-1", 42),
            patch("persons", 42, {"org_id": 500}, ApiResponse(status=400, error="bad org")),
        ],
        expect={
            "status": "failed",
            "reason": "link person refused: HTTP 400: bad org",
            "stage": "link person",
            "http_status": 400,
        },
    ),
    Case(
        name="no groupId: fails",
        raw={"type": "group", "userId": "u-1", "traits": {"name": "Acme"}},
        expect={
            "status": "failed",
            "reason": "group needs a groupId or an org_id external id",
            "stage": "validate",
        },
    ),
    Case(
        name="no person: fails",
        raw={"type": "group", "groupId": "g-1", "context": ext(("org_id", 9))},
        expect={
            "status": "failed",
            "reason": "group needs a person: a userId or a person_id external id",
        },
    ),
    Case(
        name="organization field that cannot be coerced fails naming it",
        raw=group({"name": "Acme", "employees": "many"}),
        calls=[search_org("g-1", 500), search_person("u-1", 42)],
        expect={
            "status": "failed",
            "reason": "cannot convert employees = many for field Employees (double): "
            "expected a number",
        },
    ),
    Case(
        name="a new organization without a name fails before any write, its body read",
        raw=group({"industry": "Retail", "junk": 1, "add_time": "soon"}),
        calls=[search_org("g-1"), search_person("u-1", 42)],
        expect={
            "status": "failed",
            "reason": "cannot create organization without a name",
            "stage": "create organization",
            "warnings": ["add_time = soon is not a date or time; using the event time"],
            "dropped": ["junk"],
        },
    ),
    Case(
        name="no group_id_field configured: fails naming the setting",
        raw=group(),
        config=replace(CONFIG, group_id_field=""),
        expect={
            "status": "failed",
            "reason": "[identity] group_id_field is not set: cannot look up groupId g-1",
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_group(case: Case) -> None:
    case.verify()
