"""Nothing Pipedrive documents is accepted and ignored (issue 19).

Walks the OpenAPI descriptions of every operation the sandbox serves: each documented query
parameter and body property either has its documented effect (the answer with it differs from
the answer without it, as the probe below says) or is refused with a 400 naming it, for the
reasons in NOT_MODELLED, which the README's sandbox section lists too. A parameter the
descriptions gain fails here until it gets a probe.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import FakeClock
from openapi_contract import specs_dir
from sandbox_support import (
    GROUP_ID_FIELD,
    HOT,
    INDUSTRY_FIELD,
    PLAN_FIELD,
    ROLE_FIELD,
    SOURCE_FIELD,
    START,
    TOKEN,
    USER_ID_FIELD,
    assert_documented,
    extract_script,
)

from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions
from rudder_pipedrive_cli.sandbox.store import Store

SCRIPT = extract_script()
QUERY = SCRIPT.extract_query(specs_dir())
BODIES = SCRIPT.extract(specs_dir())
README = Path(__file__).resolve().parents[2] / "README.md"


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


NOW = iso(START + 300)  # when probes run
AFTER_A = iso(START + 50)  # between the world's first batch of writes and its second
AFTER_B = iso(START + 150)  # between the second batch and the third
NEXT = object()  # a probe's cursor: the base request's next_cursor

# ---- the world every probe starts from ---------------------------------------------------------


class World:
    """Written in three batches 100 s apart (A, B, C), so time filters and sorts can show."""

    def __init__(self, api: httpx.Client, clock: FakeClock) -> None:
        def post(path: str, body: dict[str, Any]) -> Any:
            response = api.post(path, json=body)
            assert response.is_success, response.text
            return response.json()["data"]

        # A
        post(
            "/api/v2/organizations",
            {"name": "Acme", "custom_fields": {GROUP_ID_FIELD: "g-1", INDUSTRY_FIELD: 201}},
        )
        post(
            "/api/v2/persons",
            {
                "name": "Ann Lee",
                "org_id": 1,
                "custom_fields": {USER_ID_FIELD: "u-1", ROLE_FIELD: "CTO", PLAN_FIELD: 102},
            },
        )
        post("/api/v2/persons", {"name": "Cy", "custom_fields": {ROLE_FIELD: "CTO"}})
        self.l1 = post("/v1/leads", {"title": "L1", "person_id": 1})["id"]
        post(
            "/api/v2/deals",
            {
                "title": "D1",
                "person_id": 2,
                "org_id": 1,
                "stage_id": 2,
                "custom_fields": {SOURCE_FIELD: "web"},
            },
        )
        post("/api/v2/activities", {"type": "call", "person_id": 2, "done": True, "deal_id": 1})
        post(
            "/v1/notes",
            {
                "content": "N1",
                "person_id": 2,
                "add_time": "2026-05-01 08:00:00",
                "pinned_to_person_flag": 1,
            },
        )
        clock.advance(100)  # B
        post("/api/v2/organizations", {"name": "Beta"})
        post("/api/v2/persons", {"name": "Bo", "custom_fields": {ROLE_FIELD: "CTO"}})
        post("/v1/leads", {"title": "L2", "organization_id": 2})
        for title, link in (("L3", {"person_id": 1}), ("L4", {"organization_id": 2})):
            lead = post("/v1/leads", {"title": title, **link})
            assert api.patch(f"/v1/leads/{lead['id']}", json={"is_archived": True}).is_success
        post(
            "/api/v2/deals",
            {"title": "D2", "person_id": 3, "pipeline_id": 2, "status": "won"},
        )
        for deal in (  # archived: listed only by /api/v2/deals/archived
            {"title": "D3", "person_id": 2, "stage_id": 2, "custom_fields": {SOURCE_FIELD: "web"}},
            {"title": "D4", "person_id": 3, "org_id": 2, "pipeline_id": 2, "status": "won"},
        ):
            post("/api/v2/deals", {**deal, "is_archived": True})
        task = {"type": "task", "person_id": 3, "lead_id": self.l1, "org_id": 2}
        post("/api/v2/activities", task | {"attendees": [{"email": "a@x.io"}]})
        post(
            "/v1/notes",
            {
                "content": "N2",
                "lead_id": self.l1,
                "deal_id": 2,
                "org_id": 2,
                "pinned_to_deal_flag": 1,
            },
        )
        clock.advance(100)  # C: Cy merged into Ann (their deal, activity, note move), Acme renamed
        assert api.put("/v1/persons/2/merge", json={"merge_with_id": 1}).is_success
        assert api.patch("/api/v2/organizations/1", json={"name": "Acme Inc"}).is_success
        clock.advance(100)


@dataclass(frozen=True, slots=True)
class Served:
    """The module's sandbox, the clock it runs on and a client of it (an httpx.Client costs a
    probe more to make, its SSL context, than its probe takes)."""

    sandbox: Sandbox
    clock: FakeClock
    api: httpx.Client


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    clock = FakeClock(START)
    with (
        Sandbox(SandboxOptions(), clock=clock) as sandbox,
        httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}, timeout=5.0) as api,
    ):
        yield Served(sandbox, clock, api)


@pytest.fixture(scope="module")
def built(served: Served) -> tuple[Store, float, World]:
    """The world written once over HTTP: a copy of the sandbox's records, its clock's time."""
    world = World(served.api, served.clock)
    return copy.deepcopy(served.sandbox.app.store), served.clock.now, world


@pytest.fixture
def world(served: Served, built: tuple[Store, float, World]) -> tuple[httpx.Client, World]:
    """The sandbox holding the world each probe starts from, as written (a copy: probes write),
    at the time it was written, with no stats or rate-limit windows from earlier probes."""
    store, now, world = built
    served.sandbox.reset()
    served.sandbox.app.store, served.clock.now = copy.deepcopy(store), now
    return served.api, world


# ---- what the sandbox deliberately does not model --------------------------------------------

# name -> (a value to send, why it is refused). Each must be in the README's sandbox section.
NOT_MODELLED: dict[str, tuple[Any, str]] = {
    "filter_id": (1, "the sandbox has no saved filters"),
    "include_fields": ("notes_count", "counts and activity links the sandbox does not keep"),
    "include_labels": ("true", "persons, organizations and deals have no labels in the sandbox"),
    "label_ids": ([1], "no person, organization or deal labels: only [] (lead labels are seeded)"),
    "owner_id": (5, "one user: any other owner is a 400"),
    "user_id": (5, "one user: any other user is a 400"),
    "project_id": (1, "no projects"),
    "task_id": (1, "no tasks"),
    "pinned_to_project_flag": (1, "no projects to pin a note to"),
    "pinned_to_task_flag": (1, "no tasks to pin a note to"),
}
# Where a name of NOT_MODELLED is modelled after all: lead labels exist; owner_id and user_id
# filter listings; the field listings' include_fields adds the visibility namespaces, and
# getActivities' the attendees; notes filter on pinned_to_project_flag (no note is pinned to a
# project).
MODELLED_BODY = {("POST /v1/leads", "label_ids"), ("PATCH /v1/leads/{id}", "label_ids")}
MODELLED_QUERY = {
    *((op, name) for op, names in QUERY.items() for name in names if name.endswith("user_id")),
    *((op, "owner_id") for op in QUERY),
    *((op, "include_fields") for op in QUERY if op.endswith("Fields")),
    ("GET /api/v2/activities", "include_fields"),
    ("GET /v1/notes", "pinned_to_project_flag"),
}

# ---- query probes -------------------------------------------------------------------------------

Project = Callable[[Any], Any]


def ids(data: Any) -> Any:
    return [r["id"] for r in data] if isinstance(data, list) else data


def titles(data: Any) -> Any:
    return [r["title"] for r in data] if isinstance(data, list) else data


def codes(data: Any) -> Any:
    return [f["field_code"] for f in data]


def attendees(data: Any) -> Any:
    """Each activity's attendees, or None where the answer leaves them out."""
    return [r.get("attendees") for r in data]


def custom(field: str | None = None) -> Project:
    def project(data: Any) -> Any:
        rows = data if isinstance(data, list) else [data]
        shown = [
            r["custom_fields"] if field is None else r["custom_fields"].get(field) for r in rows
        ]
        return shown if isinstance(data, list) else shown[0]

    return project


# (operation, parameter) -> (base query, the parameter's value, projection, expected)
Probe = tuple[dict[str, Any], Any, Project, Any]
L1 = "{l1}"  # the first lead's id, filled in from the world
# addActivity's answer lists every key of an attendee, null where the body gave none.
NO_ATTENDEE_KEYS = dict.fromkeys(("status", "is_organizer", "person_id", "user_id"))

_LIST_V2 = {
    "ids": ({}, "2", ids, [2]),
    "owner_id": ({}, 424242, ids, []),
    "updated_since": ({}, AFTER_B, ids, None),
    "updated_until": ({}, AFTER_B, ids, None),
    "sort_by": ({}, "update_time", ids, None),
    "sort_direction": ({}, "desc", ids, None),
    "limit": ({}, 1, ids, None),
    "cursor": ({"limit": 1}, NEXT, ids, None),
}


def _v2(expected: dict[str, Any], **extra: Probe) -> dict[str, Probe]:
    probes = {
        name: (base, value, project, expected.get(name, want))
        for name, (base, value, project, want) in _LIST_V2.items()
    }
    return probes | extra


QUERY_PROBES: dict[str, dict[str, Probe]] = {
    "GET /api/v2/persons": _v2(
        {
            "updated_since": [1],
            "updated_until": [3],
            "sort_by": [3, 1],
            "sort_direction": [3, 1],
            "limit": [1],
            "cursor": [3],
        },
        ids=({}, "3", ids, [3]),
        org_id=({}, 1, ids, [1]),
        deal_id=({}, 2, ids, [3]),
        custom_fields=(
            {},
            USER_ID_FIELD,
            custom(),
            [{USER_ID_FIELD: "u-1"}, {USER_ID_FIELD: None}],
        ),
        include_option_labels=({}, "true", custom(PLAN_FIELD), [{"id": 102, "label": "Pro"}, None]),
    ),
    "GET /api/v2/organizations": _v2(
        {
            "updated_since": [1],
            "updated_until": [2],
            "sort_by": [2, 1],
            "sort_direction": [2, 1],
            "limit": [1],
            "cursor": [2],
        },
        custom_fields=(
            {},
            GROUP_ID_FIELD,
            custom(),
            [{GROUP_ID_FIELD: "g-1"}, {GROUP_ID_FIELD: None}],
        ),
        include_option_labels=(
            {},
            "true",
            custom(INDUSTRY_FIELD),
            [{"id": 201, "label": "Software"}, None],
        ),
    ),
    "GET /api/v2/persons/{id}": {
        "custom_fields": ({}, USER_ID_FIELD, custom(), {USER_ID_FIELD: "u-1"}),
        "include_option_labels": ({}, "true", custom(PLAN_FIELD), {"id": 102, "label": "Pro"}),
    },
    "GET /api/v2/organizations/{id}": {
        "custom_fields": ({}, GROUP_ID_FIELD, custom(), {GROUP_ID_FIELD: "g-1"}),
        "include_option_labels": (
            {},
            "true",
            custom(INDUSTRY_FIELD),
            {"id": 201, "label": "Software"},
        ),
    },
    "GET /api/v2/deals": _v2(
        {
            "updated_since": [1],
            "updated_until": [2],
            "sort_by": [2, 1],
            "sort_direction": [2, 1],
            "limit": [1],
            "cursor": [2],
        },
        person_id=({}, 1, ids, [1]),
        org_id=({}, 1, ids, [1]),
        pipeline_id=({}, 2, ids, [2]),
        stage_id=({}, 2, ids, [1]),
        status=({}, "won", ids, [2]),
        custom_fields=({}, SOURCE_FIELD, custom(), [{SOURCE_FIELD: "web"}, {SOURCE_FIELD: None}]),
        # Honoured, but the sandbox's deal fields have no options to show as labels.
        include_option_labels=({}, "true", custom(), None),
    ),
    "GET /api/v2/deals/archived": _v2(
        {
            "updated_since": [3],  # D3 moved to Ann by the merge (C)
            "updated_until": [4],
            "sort_by": [4, 3],
            "sort_direction": [4, 3],
            "limit": [3],
            "cursor": [4],
        },
        ids=({}, "4", ids, [4]),
        person_id=({}, 1, ids, [3]),
        org_id=({}, 2, ids, [4]),
        pipeline_id=({}, 2, ids, [4]),
        stage_id=({}, 2, ids, [3]),
        status=({}, "won", ids, [4]),
        custom_fields=({}, SOURCE_FIELD, custom(), [{SOURCE_FIELD: "web"}, {SOURCE_FIELD: None}]),
    ),
    "GET /api/v2/activities": _v2(
        {
            "updated_since": [1],
            "updated_until": [2],
            "sort_by": [2, 1],
            "sort_direction": [2, 1],
            "limit": [1],
            "cursor": [2],
        },
        deal_id=({}, 1, ids, [1]),
        lead_id=({}, L1, ids, [2]),
        person_id=({}, 3, ids, [2]),
        org_id=({}, 2, ids, [2]),
        done=({}, "true", ids, [1]),
        include_fields=(
            {},
            "attendees",
            attendees,
            [[], [{"email": "a@x.io", "name": None} | NO_ATTENDEE_KEYS]],
        ),
    ),
    "GET /api/v2/itemSearch/field": {
        "term": ({"entity_type": "person", "field": USER_ID_FIELD}, "u-1", ids, [1]),
        "entity_type": ({"term": "g-1", "field": GROUP_ID_FIELD}, "organization", ids, [1]),
        "match": ({"entity_type": "person", "field": "name", "term": "Ann"}, "beginning", ids, [1]),
        "field": ({"entity_type": "person", "term": "u-1"}, USER_ID_FIELD, ids, [1]),
        "limit": ({"entity_type": "person", "field": ROLE_FIELD, "term": "CTO"}, 1, ids, [1]),
        "cursor": (
            {"entity_type": "person", "field": ROLE_FIELD, "term": "CTO", "limit": 1},
            NEXT,
            ids,
            [3],
        ),
    },
    "GET /v1/leads": {
        "limit": ({}, 1, titles, ["L1"]),
        "start": ({}, 1, titles, ["L2"]),
        "owner_id": ({}, 424242, titles, []),
        "person_id": ({}, 1, titles, ["L1"]),
        "organization_id": ({}, 2, titles, ["L2"]),
        "updated_since": ({}, AFTER_A, titles, ["L2"]),
        "sort": ({}, "title DESC", titles, ["L2", "L1"]),
    },
    "GET /v1/leads/archived": {
        "limit": ({}, 1, titles, ["L3"]),
        "start": ({}, 1, titles, ["L4"]),
        "owner_id": ({}, 424242, titles, []),
        "person_id": ({}, 1, titles, ["L3"]),
        "organization_id": ({}, 2, titles, ["L4"]),
        "sort": ({}, "title DESC", titles, ["L4", "L3"]),
    },
    "GET /v1/notes": {
        "user_id": ({}, 424242, ids, []),
        "lead_id": ({}, L1, ids, [2]),
        "deal_id": ({}, 2, ids, [2]),
        "person_id": ({}, 1, ids, [1]),
        "org_id": ({}, 2, ids, [2]),
        "start": ({}, 1, ids, [2]),
        "limit": ({}, 1, ids, [1]),
        "sort": ({}, "id DESC", ids, [2, 1]),
        "start_date": ({}, "2026-05-10", ids, [2]),
        "end_date": ({}, "2026-05-10", ids, [1]),
        "updated_since": ({}, AFTER_B, ids, [1]),
        "pinned_to_lead_flag": ({}, 1, ids, []),
        "pinned_to_deal_flag": ({}, 1, ids, [2]),
        "pinned_to_organization_flag": ({}, 1, ids, []),
        "pinned_to_person_flag": ({}, 1, ids, [1]),
        "pinned_to_project_flag": ({}, 1, ids, []),
    },
    "GET /api/v2/pipelines": {
        # All seeded at one time: sorting by a time keeps the id order (ties go by id).
        "sort_by": ({"sort_direction": "desc"}, "update_time", ids, None),
        "sort_direction": ({}, "desc", ids, [2, 1]),
        "limit": ({}, 1, ids, [1]),
        "cursor": ({"limit": 1}, NEXT, ids, [2]),
    },
    "GET /api/v2/stages": {
        "pipeline_id": ({}, 2, ids, [4]),
        "sort_by": ({}, "order_nr", ids, [1, 4, 2, 3]),
        "sort_direction": ({}, "desc", ids, [4, 3, 2, 1]),
        "limit": ({}, 1, ids, [1]),
        "cursor": ({"limit": 1}, NEXT, ids, [2]),
    },
    **{
        f"GET /api/v2/{kind}Fields": {
            "include_fields": (
                {},
                "ui_visibility,required_fields",
                lambda data: sorted(
                    set(data[0]) & {"ui_visibility", "important_fields", "required_fields"}
                ),
                ["required_fields", "ui_visibility"],
            ),
            "limit": ({}, 2, len, 2),
            "cursor": ({"limit": 2}, NEXT, codes, None),
        }
        for kind in ("person", "organization", "deal")
    },
}
# Probes whose effect the world cannot show (honoured, but equal to the answer without them).
UNOBSERVABLE = {
    ("GET /api/v2/pipelines", "sort_by"),
    ("GET /api/v2/deals", "include_option_labels"),
}

PATHS = {
    "GET /api/v2/persons/{id}": "/api/v2/persons/1",
    "GET /api/v2/organizations/{id}": "/api/v2/organizations/1",
}


def documented_query() -> list[tuple[str, str]]:
    return [(op, name) for op, names in sorted(QUERY.items()) for name in names]


def body_properties(schema: dict[str, Any]) -> list[str]:
    properties = dict(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        properties |= part.get("properties", {})
    return sorted(properties)


def documented_body() -> list[tuple[str, str]]:
    return [(op, name) for op, schema in sorted(BODIES.items()) for name in body_properties(schema)]


def refused(op: str, name: str, modelled: set[tuple[str, str]]) -> bool:
    return name in NOT_MODELLED and (op, name) not in modelled


def fill(value: Any, world: World) -> Any:
    return value.replace(L1, world.l1) if isinstance(value, str) else value


def answer(api: httpx.Client, op: str, query: dict[str, Any], world: World) -> Any:
    method, template = op.split(" ", 1)
    path = PATHS.get(op, template.replace("{id}", world.l1))
    response = api.request(method, path, params={k: fill(v, world) for k, v in query.items()})
    assert_documented(response, *SCRIPT.OPERATIONS[op])
    return response.json() if response.status_code == 200 else ("error", response.status_code)


@pytest.mark.parametrize(("op", "name"), documented_query(), ids=lambda v: v)
def test_every_documented_query_parameter_has_its_effect_or_is_refused(
    world: tuple[httpx.Client, World], op: str, name: str
) -> None:
    api, w = world
    if refused(op, name, MODELLED_QUERY):
        value, _ = NOT_MODELLED[name]
        response = api.request(op.split()[0], PATHS.get(op, op.split()[1]), params={name: value})
        assert (response.status_code, response.json()["error"]) == (
            400,
            f"{name}: not supported by the sandbox",
        )
        return
    assert name in QUERY_PROBES.get(op, {}), f"no probe for {name} of {op}"
    base, value, project, expected = QUERY_PROBES[op][name]
    without = answer(api, op, base, w)
    if value is NEXT:
        value = without["additional_data"]["next_cursor"]
    with_it = answer(api, op, {**base, name: value}, w)
    assert isinstance(with_it, dict), (op, name, with_it)
    shown = project(with_it["data"])
    if expected is not None:
        assert shown == expected
    before = project(without["data"]) if isinstance(without, dict) else without
    if (op, name) in UNOBSERVABLE:
        assert shown == before
    else:
        assert shown != before, f"{name} of {op} changed nothing"


# ---- body probes --------------------------------------------------------------------------------

# operation -> (path, base body, where the record is in /_sandbox/state)
TARGETS: dict[str, tuple[str, dict[str, Any], str]] = {
    "POST /api/v2/persons": ("/api/v2/persons", {"name": "Pat"}, "persons"),
    "PATCH /api/v2/persons/{id}": ("/api/v2/persons/3", {}, "persons"),
    "POST /api/v2/organizations": ("/api/v2/organizations", {"name": "Org"}, "organizations"),
    "PATCH /api/v2/organizations/{id}": ("/api/v2/organizations/2", {}, "organizations"),
    "POST /v1/leads": ("/v1/leads", {"title": "T", "organization_id": 1}, "leads"),
    "PATCH /v1/leads/{id}": (f"/v1/leads/{L1}", {}, "leads"),
    "POST /api/v2/deals": ("/api/v2/deals", {"title": "T"}, "deals"),
    "POST /api/v2/activities": ("/api/v2/activities", {}, "activities"),
    "POST /v1/notes": ("/v1/notes", {"content": "c", "person_id": 1}, "notes"),
    "PUT /v1/persons/{id}/merge": ("/v1/persons/3/merge", {}, "merges"),
}

ADDRESS = {"value": "Tallinn", "locality": "Tallinn", "country": "EE"}
_PERSON = {
    "birthday": ({"birthday": "1990-01-02"}, {"birthday": "1990-01-02"}),
    "custom_fields": (
        {"custom_fields": {ROLE_FIELD: "CEO"}},
        {"custom_fields": {USER_ID_FIELD: None, ROLE_FIELD: "CEO", PLAN_FIELD: None}},
    ),
    "emails": (
        {"emails": [{"value": "p@x.io", "label": "home"}]},
        {"emails": [{"value": "p@x.io", "primary": True, "label": "home"}]},
    ),
    "im": (
        {"im": [{"value": "pat", "label": "skype"}]},
        {"im": [{"value": "pat", "primary": True, "label": "skype"}]},
    ),
    "job_title": ({"job_title": "CTO"}, {"job_title": "CTO"}),
    "marketing_status": ({"marketing_status": "subscribed"}, {"marketing_status": "subscribed"}),
    "name": ({"name": "Pat Q"}, {"name": "Pat Q", "first_name": "Pat", "last_name": "Q"}),
    "notes": ({"notes": "met at a fair"}, {"notes": "met at a fair"}),
    "org_id": ({"org_id": 2}, {"org_id": 2}),
    "phones": (
        {"phones": [{"value": "555"}]},
        {"phones": [{"value": "555", "primary": True, "label": "work"}]},
    ),
    "postal_address": ({"postal_address": ADDRESS}, {"postal_address": ADDRESS}),
    "visible_to": ({"visible_to": 7}, {"visible_to": 7}),
}
_ORGANIZATION = {
    "address": ({"address": ADDRESS}, {"address": ADDRESS}),
    "annual_revenue": ({"annual_revenue": 1000}, {"annual_revenue": 1000}),
    "custom_fields": (
        {"custom_fields": {GROUP_ID_FIELD: "g-9"}},
        {
            "custom_fields": {
                GROUP_ID_FIELD: "g-9",
                INDUSTRY_FIELD: None,
                "30ad8f346a94dd54e680b1f9410672d8c6253b5b": None,
            }
        },
    ),
    "employee_count": ({"employee_count": 10}, {"employee_count": 10}),
    "industry": ({"industry": 5}, {"industry": 5}),
    "linkedin": (
        {"linkedin": "https://linkedin.com/company/x"},
        {"linkedin": "https://linkedin.com/company/x"},
    ),
    "name": ({"name": "Org Two"}, {"name": "Org Two"}),
    "visible_to": ({"visible_to": 1}, {"visible_to": 1}),
    "website": ({"website": "https://x.io"}, {"website": "https://x.io"}),
}
ADD_TIME = ({"add_time": "2020-02-02T00:23:09Z"}, {"add_time": "2020-02-02T00:23:09Z"})
_LEAD = {
    "channel": ({"channel": 3}, {"channel": 3}),
    "channel_id": ({"channel_id": "spring"}, {"channel_id": "spring"}),
    "expected_close_date": (
        {"expected_close_date": "2026-07-01"},
        {"expected_close_date": "2026-07-01"},
    ),
    "label_ids": ({"label_ids": [HOT]}, {"label_ids": [HOT]}),
    "organization_id": ({"organization_id": 2}, {"organization_id": 2}),
    "person_id": ({"person_id": 3}, {"person_id": 3}),
    "title": ({"title": "Renamed"}, {"title": "Renamed"}),
    "value": (
        {"value": {"amount": 5, "currency": "EUR"}},
        {"value": {"amount": 5, "currency": "EUR"}},
    ),
    "visible_to": ({"visible_to": "7"}, {"visible_to": "7"}),
    "was_seen": ({"was_seen": True}, {"was_seen": True}),
}
WON = "2026-05-01T10:00:00Z"
BODY_PROBES: dict[str, dict[str, tuple[dict[str, Any], dict[str, Any]]]] = {
    "POST /api/v2/persons": _PERSON | {"add_time": ADD_TIME},
    "PATCH /api/v2/persons/{id}": _PERSON,
    "POST /api/v2/organizations": _ORGANIZATION | {"add_time": ADD_TIME},
    "PATCH /api/v2/organizations/{id}": _ORGANIZATION,
    "POST /v1/leads": _LEAD | {"origin_id": ({"origin_id": "rpd:x"}, {"origin_id": "rpd:x"})},
    "PATCH /v1/leads/{id}": _LEAD | {"is_archived": ({"is_archived": True}, {"is_archived": True})},
    "POST /api/v2/deals": {
        "archive_time": (
            {"archive_time": "2026-05-02 10:00:00"},
            {"archive_time": "2026-05-02T10:00:00Z"},
        ),
        "close_time": (
            {"status": "won", "close_time": WON},
            {"close_time": WON, "local_close_date": "2026-05-01"},
        ),
        "currency": ({"currency": "USD"}, {"currency": "USD"}),
        "custom_fields": (
            {"custom_fields": {SOURCE_FIELD: "ads"}},
            {
                "custom_fields": {
                    SOURCE_FIELD: "ads",
                    "0ad278b60b7e6b783e51a7f5b9cef17d732fe978": None,
                }
            },
        ),
        "expected_close_date": (
            {"expected_close_date": "2026-08-01"},
            {"expected_close_date": "2026-08-01"},
        ),
        "is_archived": ({"is_archived": True}, {"is_archived": True, "archive_time": NOW}),
        "is_deleted": ({"is_deleted": True}, {"is_deleted": True}),
        "lost_reason": ({"status": "lost", "lost_reason": "price"}, {"lost_reason": "price"}),
        "lost_time": (
            {"status": "lost", "lost_time": WON},
            {"lost_time": WON, "local_lost_date": "2026-05-01"},
        ),
        "org_id": ({"org_id": 2}, {"org_id": 2}),
        "origin_id": ({"origin_id": "rpd:d"}, {"origin_id": "rpd:d"}),
        "person_id": ({"person_id": 3}, {"person_id": 3}),
        "pipeline_id": ({"pipeline_id": 2}, {"pipeline_id": 2, "stage_id": 4}),
        "probability": ({"probability": 40}, {"probability": 40}),
        "stage_id": ({"stage_id": 3}, {"stage_id": 3, "pipeline_id": 1}),
        "status": ({"status": "lost"}, {"status": "lost"}),
        "title": ({"title": "Big deal"}, {"title": "Big deal"}),
        "value": ({"value": 99.5}, {"value": 99.5}),
        "visible_to": ({"visible_to": 1}, {"visible_to": 1}),
        "won_time": (
            {"status": "won", "won_time": WON},
            {"won_time": WON, "local_won_date": "2026-05-01"},
        ),
    },
    "POST /api/v2/activities": {
        "attendees": (
            {"attendees": [{"email": "a@x.io", "name": "A"}]},
            {"attendees": [{"email": "a@x.io", "name": "A"} | NO_ATTENDEE_KEYS]},
        ),
        "busy": ({"busy": True}, {"busy": True}),
        "deal_id": ({"deal_id": 2}, {"deal_id": 2}),
        "done": ({"done": True}, {"done": True, "marked_as_done_time": NOW}),
        "due_date": ({"due_date": "2026-06-01"}, {"due_date": "2026-06-01"}),
        "due_time": ({"due_time": "09:30"}, {"due_time": "09:30:00"}),
        "duration": ({"duration": "01:00"}, {"duration": "01:00:00"}),
        "lead_id": ({"lead_id": L1}, {"lead_id": L1}),
        "location": ({"location": ADDRESS}, {"location": ADDRESS}),
        "note": ({"note": "agenda"}, {"note": "agenda"}),
        "org_id": ({"org_id": 2}, {"org_id": 2}),
        "participants": (
            {"participants": [{"person_id": 3, "primary": True}]},
            {"participants": [{"person_id": 3, "primary": True}], "person_id": 3},
        ),
        "person_id": (
            {"person_id": 1},
            {"person_id": 1, "participants": [{"person_id": 1, "primary": True}]},
        ),
        "priority": ({"priority": 2}, {"priority": 2}),
        "public_description": ({"public_description": "p"}, {"public_description": "p"}),
        "subject": ({"subject": "Kick-off"}, {"subject": "Kick-off"}),
        "type": ({"type": "lunch"}, {"type": "lunch", "subject": "Lunch"}),
    },
    "POST /v1/notes": {
        "content": ({"content": "other"}, {"content": "other"}),
        "deal_id": ({"deal_id": 2}, {"deal_id": 2, "deal": {"title": "D2"}}),
        "lead_id": ({"lead_id": L1}, {"lead_id": L1}),
        "org_id": ({"org_id": 2}, {"org_id": 2, "organization": {"name": "Beta"}}),
        "person_id": ({"person_id": 3}, {"person_id": 3, "person": {"name": "Bo"}}),
        "add_time": ({"add_time": "2026-05-03 07:00:00"}, {"add_time": "2026-05-03 07:00:00"}),
        **{
            f"pinned_to_{pin}_flag": ({f"pinned_to_{pin}_flag": 1}, {f"pinned_to_{pin}_flag": True})
            for pin in ("lead", "deal", "organization", "person")
        },
    },
    "PUT /v1/persons/{id}/merge": {
        "merge_with_id": ({"merge_with_id": 1}, {"merged_id": 3, "survivor_id": 1}),
    },
}


def _send(api: httpx.Client, op: str, body: dict[str, Any], w: World) -> httpx.Response:
    path = TARGETS[op][0].replace(L1, w.l1)
    response = api.request(op.split()[0], path, json={k: fill(v, w) for k, v in body.items()})
    assert_documented(response, *SCRIPT.OPERATIONS[op])
    return response


def _stored(api: httpx.Client, kind: str, data: Any) -> Any:
    records = api.get("/_sandbox/state").json()[kind]
    if kind == "merges":
        return records[-1]
    return next(r for r in records if r["id"] == data["id"])


@pytest.mark.parametrize(("op", "name"), documented_body(), ids=lambda v: v)
def test_every_documented_body_property_has_its_effect_or_is_refused(
    world: tuple[httpx.Client, World], op: str, name: str
) -> None:
    api, w = world
    _, base, kind = TARGETS[op]
    if refused(op, name, MODELLED_BODY):
        value, _ = NOT_MODELLED[name]
        before = api.get("/_sandbox/state").json()
        response = _send(api, op, {**base, name: value}, w)
        assert response.status_code == 400, response.text
        assert response.json()["error"].removeprefix("Validation failed: ").startswith(f"{name}:")
        assert api.get("/_sandbox/state").json() == before
        return
    assert name in BODY_PROBES.get(op, {}), f"no probe for {name} of {op}"
    extra, expected = BODY_PROBES[op][name]
    expected = {k: fill(v, w) for k, v in expected.items()}
    without = _send(api, op, {**base, **{k: v for k, v in extra.items() if k != name}}, w)
    shown_without = (
        {k: without.json()["data"].get(k) for k in expected} if without.is_success else None
    )
    with_it = _send(api, op, {**base, **extra}, w)
    assert with_it.is_success, with_it.text
    data = with_it.json()["data"]
    stored = _stored(api, kind, data)
    for key, value in expected.items():
        assert (stored[key], data.get(key, stored[key])) == (value, value), key
    assert shown_without != {k: stored[k] for k in expected}, f"{name} of {op} changed nothing"


def test_what_the_sandbox_does_not_model_is_in_the_readme() -> None:
    text = README.read_text()
    section = text[
        text.index("### `rpd sandbox`") : text.index("\n## ", text.index("### `rpd sandbox`"))
    ]
    for name, (_, why) in NOT_MODELLED.items():
        assert f"`{name}`" in section and why in section, name
