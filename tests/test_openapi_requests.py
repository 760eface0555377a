"""Every request the plans emit in tests/core conforms to Pipedrive's OpenAPI descriptions.

The scenarios are the case tables of tests/core, replayed here (with integer ids, as Pipedrive
answers), so this holds however the test run is filtered. The contract checker itself is tested
on requests it must refuse.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_contract import ContractError, check, check_request

from rudder_pipedrive_cli.cli.identities import account_listing
from rudder_pipedrive_cli.core.costs import TOKEN_COST
from rudder_pipedrive_cli.core.index import IdentityIndex, MemoryIndexRows
from rudder_pipedrive_cli.core.plans.common import ORG, PERSON, index_listing
from rudder_pipedrive_cli.core.plans.track import KINDS
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse

sys.path.insert(0, str(Path(__file__).parent / "core"))
helpers_core = importlib.import_module("helpers_core")
CASE_MODULES = (
    "test_plan_event",
    "test_identify",
    "test_group",
    "test_alias",
    "test_track",
    "test_reconcile",
    "test_track_rules",
)
SENT = "2026-10-01T00:00:00Z"
CASES = [case for name in CASE_MODULES for case in importlib.import_module(name).CASES]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_planned_request_conforms(case: Any) -> None:
    helpers_core.SEEN.clear()
    case.play()
    for request in helpers_core.SEEN:
        check_request(request)


def test_the_scenarios_cover_every_operation_the_plans_use() -> None:
    helpers_core.SEEN.clear()
    for case in CASES:
        case.play()
    keys = {request.key for request in helpers_core.SEEN}
    assert keys <= set(TOKEN_COST), "every endpoint is a costs.py key, so reports can price it"
    assert keys == {
        "GET /api/v2/itemSearch/field",
        "GET /api/v2/persons",
        "GET /api/v2/organizations",
        "GET /api/v2/persons/{id}",
        "POST /api/v2/persons",
        "PATCH /api/v2/persons/{id}",
        "POST /api/v2/organizations",
        "PATCH /api/v2/organizations/{id}",
        "PUT /v1/persons/{id}/merge",
        "POST /v1/leads",
        "GET /v1/leads",
        "GET /v1/leads/archived",
        "POST /api/v2/deals",
        "GET /api/v2/deals",
        "GET /api/v2/deals/archived",
        "POST /api/v2/activities",
        "GET /api/v2/activities",
        "POST /v1/notes",
        "GET /v1/notes",
    }


def test_every_listing_around_the_plans_conforms() -> None:
    """The listings rpd makes around the plans, which tests/core's scenarios never make: the
    account's records of each kind a track makes (archived leads and deals too, no person_id)
    and the identity index's build and refresh of persons and organizations."""
    index = IdentityIndex(
        MemoryIndexRows(), {"person": "k" * 40, "org": "o" * 40}, clock=lambda: 0.0
    )
    last = ApiResponse(status=200, data=[], additional_data={"next_cursor": None}, sent_at=SENT)
    asked: list[ApiRequest] = []
    for kind in KINDS.values():
        steps = account_listing(index, kind)
        request = next(steps)
        with contextlib.suppress(StopIteration):
            while True:
                asked.append(request)
                request = steps.send(last)
    for entity in (PERSON, ORG, PERSON, ORG):  # a build, then a refresh (updated_since)
        pages = index_listing(index, entity)
        while pages.request is not None:
            asked.append(pages.request)
            pages.take(last)
    for request in asked:
        check_request(request)
    assert {(r.path, tuple(sorted(r.query or {}))) for r in asked} == {
        ("/v1/leads", ("limit", "start")),
        ("/v1/leads/archived", ("limit", "start")),
        ("/api/v2/deals", ("limit",)),
        ("/api/v2/deals/archived", ("limit",)),
        ("/api/v2/activities", ("limit",)),
        ("/v1/notes", ("limit", "start")),
        ("/api/v2/persons", ("custom_fields", "limit")),
        ("/api/v2/organizations", ("custom_fields", "limit")),
        ("/api/v2/persons", ("custom_fields", "limit", "updated_since")),
        ("/api/v2/organizations", ("custom_fields", "limit", "updated_since")),
    }


REFUSED: list[tuple[str, str, dict[str, Any], Any, str]] = [
    ("GET", "/v1/persons/5", {}, None, "no such operation"),
    ("DELETE", "/v1/leads", {}, None, "no such operation"),
    ("GET", "/api/v3/persons", {}, None, "not under /v1 or /api/v2"),
    ("GET", "/api/v2/itemSearch/field", {"term": "x", "field": "k"}, None, "entity_type"),
    (
        "GET",
        "/api/v2/itemSearch/field",
        {"term": "x", "entity_type": "human", "field": "k"},
        None,
        "human",
    ),
    ("GET", "/v1/leads", {"person_id": 1, "page": 2}, None, "'page' is not declared"),
    ("GET", "/v1/leads", {"person_id": "abc"}, None, "not an integer"),
    ("PATCH", "/api/v2/persons/abc", {}, {"name": "x"}, "not an integer"),
    ("PATCH", "/api/v2/persons/5", {}, {"email": "a@b.c"}, "'email' is not a field"),
    # A custom field key at the top level: v1 leads take that, v2 bodies only in custom_fields.
    (
        "PATCH",
        "/api/v2/persons/5",
        {},
        {"6098b979cd7506a9c2b183a7814c70e8a6a08a3f": "x"},
        "is not a",
    ),
    (
        "POST",
        "/api/v2/deals",
        {},
        {"title": "t", "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e": "x"},
        "is not a",
    ),
    ("POST", "/api/v2/persons", {}, {"visible_to": "3"}, "is not of type 'integer'"),
    ("POST", "/api/v2/organizations", {}, {"visible_to": 3}, "'name' is a required property"),
    ("POST", "/v1/leads", {}, {"title": "t", "value": {"amount": 5}}, "'currency' is a required"),
    ("POST", "/v1/leads", {}, {"title": "t", "label_ids": ["Hot"]}, "is not a 'uuid'"),
    ("POST", "/v1/leads", {}, {"title": None}, "None is not of type 'string'"),
    ("PUT", "/v1/persons/5/merge", {}, {"merge_with_id": "6"}, "is not of type 'integer'"),
    # The one extension (addDeal's origin_id) is not a general relaxation: not on other
    # operations, and only as a string.
    ("POST", "/api/v2/persons", {}, {"name": "n", "origin_id": "rpd:1"}, "'origin_id' is not a"),
    ("PATCH", "/api/v2/deals/5", {}, {"origin_id": "rpd:1"}, "'origin_id' is not a"),
    ("POST", "/api/v2/deals", {}, {"title": "t", "origin_id": 5}, "is not of type 'string'"),
    ("POST", "/api/v2/deals", {}, {"title": "t", "origin": "rpd:1"}, "'origin' is not a field"),
    # Nested objects list their keys too: a misspelt one is no field of its object.
    (
        "POST",
        "/api/v2/persons",
        {},
        {"name": "n", "emails": [{"value": "a@b.c", "kind": "work"}]},
        "body/emails/0: 'kind' is not a field of this object",
    ),
    (
        "POST",
        "/api/v2/organizations",
        {},
        {"name": "n", "address": {"value": "Tallinn", "city": "Tallinn"}},
        "body/address: 'city' is not a field of this object",
    ),
    (
        "POST",
        "/api/v2/activities",
        {},
        {"participants": [{"person": 1, "primary": True}]},
        "body/participants/0: 'person' is not a field of this object",
    ),
    # What the descriptions require in words.
    ("GET", "/api/v2/persons", {"limit": "501"}, None, "limit: more than 500 ('501')"),
    ("GET", "/api/v2/persons", {"ids": ",".join("1" * 101)}, None, "ids: more than 100"),
    ("GET", "/api/v2/persons", {"custom_fields": ",".join("k" * 16)}, None, "more than 15"),
    (
        "GET",
        "/api/v2/itemSearch/field",
        {"term": "", "entity_type": "person", "field": "k"},
        None,
        "term '' is under 1 character(s)",
    ),
    (
        "GET",
        "/api/v2/itemSearch/field",
        {"term": "u", "entity_type": "person", "field": "k", "match": "beginning"},
        None,
        "term 'u' is under 2 character(s)",
    ),
    ("POST", "/v1/leads", {}, {"title": "t"}, "links to none of person_id, organization_id"),
    ("POST", "/v1/notes", {}, {"content": "c"}, "links to none of lead_id"),
    # Query values are text: a boolean or number parameter's text is read as one.
    ("GET", "/api/v2/activities", {"done": "yes"}, None, "'yes' is not true or false"),
    ("GET", "/v1/notes", {"pinned_to_deal_flag": "2"}, None, "2 is not one of [0, 1]"),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "message"), REFUSED)
def test_contract_refuses(
    method: str, path: str, query: dict[str, Any], body: Any, message: str
) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        check(method, path, query, body)


def test_contract_accepts_a_deals_origin_id() -> None:
    check("POST", "/api/v2/deals", {}, {"title": "t", "origin_id": "rpd:m-1"})


def test_contract_accepts_query_text_and_open_nested_objects() -> None:
    """On the wire every query value is text; custom_fields takes any key (additionalProperties)."""
    check("GET", "/api/v2/activities", {"done": "true", "person_id": "5"}, None)
    check("GET", "/v1/notes", {"pinned_to_deal_flag": "1"}, None)
    check("GET", "/api/v2/persons", {"limit": "500", "ids": "1,2", "custom_fields": "k"}, None)
    check(
        "GET",
        "/api/v2/itemSearch/field",
        {"term": "u", "entity_type": "person", "field": "k"},
        None,
    )
    check(
        "POST",
        "/api/v2/persons",
        {},
        {"name": "n", "emails": [{"value": "a@b.c"}], "custom_fields": {"f" * 40: {"any": 1}}},
    )


def test_contract_accepts_nullable_and_custom_keys() -> None:
    check(
        "POST",
        "/v1/leads",
        {},
        {
            "title": "t",
            "person_id": 1,
            "value": None,
            "origin_id": None,
            "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e": 1,
        },
    )


def test_contract_checks_the_endpoint_template() -> None:
    with pytest.raises(ContractError, match=re.escape("should be '/api/v2/persons/{id}'")):
        check("PATCH", "/api/v2/persons/5", {}, {"name": "x"}, endpoint="/api/v2/persons/{pid}")


def declared_keys(method: str, path: str) -> set[str]:
    """The top-level keys a write's JSON request schema declares (through allOf), but
    custom_fields, which is not a field."""
    from openapi_contract import find_operation, resolve

    operation = find_operation(method, path)
    schema = resolve(operation.spec, operation.op["requestBody"])["content"]["application/json"]
    parts = [schema["schema"]]
    keys: set[str] = set()
    while parts:
        part = parts.pop()
        keys |= set(part.get("properties", {}))
        parts.extend(part.get("allOf", []))
    return keys - {"custom_fields"}


@pytest.mark.parametrize(
    ("table", "create", "update"),
    [
        ("PERSON_WRITABLE", "/api/v2/persons", "/api/v2/persons/1"),
        ("ORG_WRITABLE", "/api/v2/organizations", "/api/v2/organizations/1"),
        ("LEAD_WRITABLE", "/v1/leads", "/v1/leads/0f1e2d3c-0000-4000-8000-000000000000"),
    ],
)
def test_the_writable_tables_are_what_the_write_schemas_declare(
    table: str, create: str, update: str
) -> None:
    from rudder_pipedrive_cli.core import fields

    creatable = declared_keys("POST", create)
    updatable = declared_keys("PATCH", update)
    # A key either write takes, except what only an update of a lead can do (archive it).
    assert getattr(fields, table) == (creatable | updatable) - {"is_archived"}
