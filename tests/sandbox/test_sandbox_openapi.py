"""The sandbox against Pipedrive's own OpenAPI: its schema table is in sync with the YAML, and its
answers to rpd's requests validate against the documented response schemas."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openapi_contract import ContractError, check, find_operation, resolve, specs_dir
from sandbox_support import (
    GROUP_ID_FIELD,
    HOT,
    SOURCE_FIELD,
    TOKEN,
    USER_ID_FIELD,
    assert_documented,
    assert_documented_error,
    assert_valid,
    create_person,
    extract_script,
    load_openapi,
    response_schema,
    search,
)

from rudder_pipedrive_cli.core.costs import TOKEN_COST
from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.routes import ROUTES
from rudder_pipedrive_cli.sandbox.schemas import QUERY_PARAMETERS, REQUEST_SCHEMAS


def test_the_packaged_request_schemas_match_the_openapi_files() -> None:
    script = extract_script()
    assert script.extract(specs_dir()) == REQUEST_SCHEMAS
    assert script.extract_query(specs_dir()) == QUERY_PARAMETERS
    served = {f"{method} {path}" for method, path in ROUTES}
    assert set(script.OPERATIONS) == served, "every served operation is in the script's list"


def test_every_costed_operation_is_served() -> None:
    assert {f"{method} {path}" for method, path in ROUTES} == set(TOKEN_COST)


def test_each_operation_costs_its_documented_x_token_cost() -> None:
    script = extract_script()
    documented = {
        key: load_openapi(file)["paths"][path][method]["x-token-cost"]
        for key, (file, path, method) in script.OPERATIONS.items()
    }
    assert documented == dict(TOKEN_COST)


# ---- response schemas ----------------------------------------------------------------------


def test_answers_to_rpds_requests_match_the_response_schemas(api: httpx.Client) -> None:
    org = api.post(
        "/api/v2/organizations", json={"name": "Acme", "custom_fields": {GROUP_ID_FIELD: "g-1"}}
    )
    person = api.post(
        "/api/v2/persons",
        json={
            "name": "Ann Lee",
            "emails": [{"value": "ann@example.com", "primary": True, "label": "work"}],
            "phones": [{"value": "555", "primary": True, "label": "mobile"}],
            "visible_to": 3,
            "add_time": "2020-02-02T00:23:09Z",
            "custom_fields": {USER_ID_FIELD: "u-1"},
        },
    )
    other = create_person(api, name="Bo")
    lead = api.post(
        "/v1/leads",
        json={
            "title": "Signed up",
            "person_id": 1,
            "value": {"amount": 10, "currency": "EUR"},
            "label_ids": [HOT],
            "expected_close_date": "2026-06-30",
            "origin_id": "rpd:1",
            SOURCE_FIELD: "web",
        },
    )
    lead_id = lead.json()["data"]["id"]
    checks = [
        (org, "v2.yaml", "/organizations", "post"),
        (person, "v2.yaml", "/persons", "post"),
        (lead, "v1.yaml", "/leads", "post"),
        (api.get("/api/v2/persons/1"), "v2.yaml", "/persons/{id}", "get"),
        (api.patch("/api/v2/persons/1", json={"org_id": 1}), "v2.yaml", "/persons/{id}", "patch"),
        (api.get("/api/v2/organizations/1"), "v2.yaml", "/organizations/{id}", "get"),
        (
            api.patch("/api/v2/organizations/1", json={"name": "Acme Inc"}),
            "v2.yaml",
            "/organizations/{id}",
            "patch",
        ),
        (api.get("/api/v2/persons", params={"limit": 1}), "v2.yaml", "/persons", "get"),
        (api.get("/api/v2/organizations"), "v2.yaml", "/organizations", "get"),
        (search(api, "u-1"), "v2.yaml", "/itemSearch/field", "get"),
        (api.get("/api/v2/personFields"), "v2.yaml", "/personFields", "get"),
        (api.get("/api/v2/organizationFields"), "v2.yaml", "/organizationFields", "get"),
        (api.get("/api/v2/dealFields", params={"limit": 2}), "v2.yaml", "/dealFields", "get"),
        (api.get("/v1/leads", params={"person_id": 1}), "v1.yaml", "/leads", "get"),
        (api.get(f"/v1/leads/{lead_id}"), "v1.yaml", "/leads/{id}", "get"),
        (
            api.patch(f"/v1/leads/{lead_id}", json={"is_archived": True}),
            "v1.yaml",
            "/leads/{id}",
            "patch",
        ),
        (api.get("/v1/leads/archived"), "v1.yaml", "/leads/archived", "get"),
        (api.get("/v1/leadLabels"), "v1.yaml", "/leadLabels", "get"),
        (api.get("/v1/users/me"), "v1.yaml", "/users/me", "get"),
        (
            api.put(f"/v1/persons/{other['id']}/merge", json={"merge_with_id": 1}),
            "v1.yaml",
            "/persons/{id}/merge",
            "put",
        ),
    ]
    for response, file, path, method in checks:
        assert response.is_success, (path, response.text)
        assert_documented(response, file, path, method)


def test_the_documented_success_status_of_each_write(api: httpx.Client) -> None:
    """addPerson and addOrganization document 200, addLead 201: the sandbox answers the same."""
    documented = {
        ("v2.yaml", "/persons", "post"): 200,
        ("v2.yaml", "/organizations", "post"): 200,
        ("v1.yaml", "/leads", "post"): 201,
        ("v1.yaml", "/persons/{id}/merge", "put"): 200,
    }
    for (file, path, method), status in documented.items():
        responses = load_openapi(file)["paths"][path][method]["responses"]
        assert [code for code in responses if code.startswith("2")] == [str(status)]
    assert api.post("/api/v2/organizations", json={"name": "A"}).status_code == 200
    assert api.post("/api/v2/persons", json={"name": "A"}).status_code == 200
    assert api.post("/v1/leads", json={"title": "T", "person_id": 1}).status_code == 201


def test_a_401_matches_the_documented_error(sandbox: Any) -> None:
    response = httpx.get(f"{sandbox.url}/v1/users/me")
    assert response.status_code == 401
    assert_valid(response, "v1.yaml", "/users/me", "get")


def test_answers_of_the_track_rule_operations_match_the_response_schemas(
    api: httpx.Client,
) -> None:
    create_person(api)
    api.post("/api/v2/organizations", json={"name": "Acme"})
    checks = [
        (
            api.post(
                "/api/v2/deals",
                json={"title": "D", "person_id": 1, "org_id": 1, "origin_id": "rpd:1"},
            ),
            "v2.yaml",
            "/deals",
            "post",
        ),
        (api.get("/api/v2/deals", params={"person_id": 1}), "v2.yaml", "/deals", "get"),
        (
            api.post(
                "/api/v2/activities",
                json={"subject": "S", "type": "call", "person_id": 1, "due_date": "2026-06-01"},
            ),
            "v2.yaml",
            "/activities",
            "post",
        ),
        (api.get("/api/v2/activities", params={"person_id": 1}), "v2.yaml", "/activities", "get"),
        (api.post("/v1/notes", json={"content": "N", "person_id": 1}), "v1.yaml", "/notes", "post"),
        (api.get("/v1/notes", params={"person_id": 1}), "v1.yaml", "/notes", "get"),
        (
            api.get(
                "/api/v2/dealFields",
                params={"include_fields": "ui_visibility,important_fields,required_fields"},
            ),
            "v2.yaml",
            "/dealFields",
            "get",
        ),
        (api.get("/api/v2/personFields"), "v2.yaml", "/personFields", "get"),
        (api.get("/api/v2/pipelines"), "v2.yaml", "/pipelines", "get"),
        (api.get("/api/v2/stages"), "v2.yaml", "/stages", "get"),
        (api.get("/v1/activityTypes"), "v1.yaml", "/activityTypes", "get"),
    ]
    for response, file, path, method in checks:
        assert response.status_code == 200, (path, response.text)
        assert_documented(response, file, path, method)


def test_the_field_listings_extras_have_each_entitys_documented_shape(api: httpx.Client) -> None:
    """include_fields adds ui_visibility, important_fields and required_fields in the shape the
    listing's own schema gives (a person field's ui_visibility has show_in_add_deal_dialog, an
    organization field's the detail flags and both dialogs, a deal field's show_in_pipelines)."""
    extras = ("ui_visibility", "important_fields", "required_fields")
    for kind in ("person", "organization", "deal"):
        path = f"/{kind}Fields"
        data = response_schema("v2.yaml", path, "get", "200")["properties"]["data"]
        documented = data["anyOf"][0]["items"]["properties"]
        response = api.get(f"/api/v2{path}", params={"include_fields": ",".join(extras)})
        for field in response.json()["data"]:
            shapes = {name: sorted(field[name]) for name in extras}
            assert shapes == {
                name: sorted(documented[name]["anyOf"][0]["properties"]) for name in extras
            }, (kind, field["field_code"])


# ---- what Pipedrive's descriptions refuse, the sandbox refuses ---------------------------------

# A value of each JSON type but the one a schema declares ("integer" takes neither 1.5 nor True).
_OTHER_TYPES: dict[str, tuple[Any, ...]] = {
    "integer": ("7", 1.5, True, [1], {"a": 1}),
    "number": ("7", True, [1]),
    "string": (7, True, ["a"], {"a": "b"}),
    "boolean": ("true", 1, [True]),
    "array": ("a", 1, {"a": 1}),
    "object": ("a", 1, [1]),
}
_QUERY_BREAKERS: dict[str, tuple[str, ...]] = {
    "integer": ("abc", "1.5", ""),
    "number": ("abc",),
    "boolean": ("yes", "1"),
}
# A valid body of each write, and the path it goes to (the world of `_refusal_world`).
_WRITES: dict[str, tuple[str, dict[str, Any]]] = {
    "POST /api/v2/persons": ("/api/v2/persons", {"name": "P"}),
    "PATCH /api/v2/persons/{id}": ("/api/v2/persons/1", {}),
    "POST /api/v2/organizations": ("/api/v2/organizations", {"name": "O"}),
    "PATCH /api/v2/organizations/{id}": ("/api/v2/organizations/1", {}),
    "POST /v1/leads": ("/v1/leads", {"title": "T", "person_id": 1}),
    "PATCH /v1/leads/{id}": ("/v1/leads/{lead}", {}),
    "POST /api/v2/deals": ("/api/v2/deals", {"title": "D"}),
    "POST /api/v2/activities": ("/api/v2/activities", {"subject": "S"}),
    "POST /v1/notes": ("/v1/notes", {"content": "c", "person_id": 1}),
    "PUT /v1/persons/{id}/merge": ("/v1/persons/2/merge", {"merge_with_id": 1}),
}


def _declared(schema: dict[str, Any]) -> list[str]:
    """The JSON types a (resolved, possibly nullable) schema declares."""
    declared = schema.get("type", [])
    return [declared] if isinstance(declared, str) else list(declared)


def _breakers(schema: dict[str, Any]) -> list[Any]:
    """Values `schema` refuses, by type, enum, format, or an unlisted key of an object."""
    declared = _declared(schema)
    values = [v for t in declared for v in _OTHER_TYPES.get(t, ()) if _type(v) not in declared]
    if "enum" in schema:
        values.append("no-such-option")
    if schema.get("format") in ("date", "date-time", "uuid"):
        values.append("not-a-" + schema["format"])
    if "object" in declared and schema.get("properties") and not schema.get("additionalProperties"):
        values.append({**_least(schema), "no_such_key": 1})
    items = schema.get("items", {})
    if "array" in declared and items.get("properties") and not items.get("additionalProperties"):
        values.append([{**_least(items), "no_such_key": 1}])
    return values


_LEAST = {"integer": 1, "number": 1, "string": "a", "boolean": True, "array": []}


def _least(schema: dict[str, Any]) -> Any:
    """The least value `schema` takes: an object of its required properties only (so that an
    unlisted key added to it is the one thing wrong)."""
    if "enum" in schema:
        return schema["enum"][0]
    declared = _declared(schema)
    if "object" in declared:
        properties = schema.get("properties", {})
        return {name: _least(properties[name]) for name in schema.get("required", ())}
    return next((_LEAST[t] for t in declared if t in _LEAST), None)


def _type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object")


def _refusal_cases() -> list[tuple[str, str, Any]]:
    """(operation, where: "body NAME" or "query NAME", value) for every documented body property
    and query parameter of every served operation, each value one its schema refuses."""
    cases: list[tuple[str, str, Any]] = []
    for op in extract_script().OPERATIONS:
        method, template = op.split(" ", 1)
        operation = find_operation(method, template.replace("{id}", "1"))
        for param in operation.params:
            if param["in"] == "query":
                schema = param.get("schema", {})
                breakers = [*_QUERY_BREAKERS.get(schema.get("type", ""), ())]
                breakers += ["no-such-option"] if "enum" in schema else []
                breakers += ["yesterday"] if schema.get("format") else []
                cases += [(op, f"query {param['name']}", v) for v in breakers]
        body = operation.op.get("requestBody")
        if body is not None:
            schema = resolve(operation.spec, body)["content"]["application/json"]["schema"]
            properties = {
                name: sub
                for part in (schema, *schema.get("allOf", ()))
                for name, sub in part.get("properties", {}).items()
            }
            for name, sub in properties.items():
                cases += [(op, f"body {name}", v) for v in _breakers(sub)]
    return cases


@pytest.fixture(scope="module")
def refusal_world(module_sandbox: Sandbox) -> tuple[httpx.Client, str]:
    """Persons 1 and 2, organization 1, a lead of person 1 (its id returned)."""
    module_sandbox.reset()
    api = httpx.Client(base_url=module_sandbox.url, headers={"x-api-token": TOKEN}, timeout=5.0)
    create_person(api)
    create_person(api, name="Bo")
    api.post("/api/v2/organizations", json={"name": "Acme"})
    lead = api.post("/v1/leads", json={"title": "T", "person_id": 1}).json()["data"]["id"]
    return api, str(lead)


@pytest.mark.parametrize(("op", "where", "value"), _refusal_cases(), ids=repr)
def test_what_the_descriptions_refuse_the_sandbox_refuses(
    refusal_world: tuple[httpx.Client, str], op: str, where: str, value: Any
) -> None:
    """Each documented body property and query parameter, given a value its schema refuses (the
    request contract says so first), is a 400 with Pipedrive's error envelope, nothing written."""
    api, lead = refusal_world
    method, template = op.split(" ", 1)
    place, name = where.split(" ")
    path, body = _WRITES.get(op, (template.replace("{id}", lead if "leads" in op else "1"), None))
    path = path.replace("{lead}", lead)
    query = {"term": "Ann", "entity_type": "person", "field": "name"} if "itemSearch" in op else {}
    if place == "query":
        query[name] = value
    else:
        body = {**(body or {}), name: value}
    with pytest.raises(ContractError):
        check(method, path, query, body)
    before = api.get("/_sandbox/state").json()
    response = api.request(method, path, params=query, json=body)
    assert response.status_code == 400, response.text
    assert_documented_error(response, *extract_script().OPERATIONS[op])
    assert api.get("/_sandbox/state").json() == before


def _documented_limits() -> list[tuple[str, int | None]]:
    """Each served listing that takes `limit`, and the maximum its description states (None: it
    states none, as v1's getLeads, getArchivedLeads and getNotes)."""
    found: list[tuple[str, int | None]] = []
    for op in extract_script().OPERATIONS:
        method, template = op.split(" ", 1)
        for param in find_operation(method, template).params:
            if (param["in"], param["name"]) == ("query", "limit"):
                stated = re.search(r"maximum value of (\d+)", param.get("description", ""))
                found.append((op, int(stated[1]) if stated else None))
    return found


@pytest.mark.parametrize(("op", "maximum"), _documented_limits(), ids=repr)
def test_a_listing_s_limit_is_refused_above_its_documented_maximum_only(
    api: httpx.Client, op: str, maximum: int | None
) -> None:
    """A v2 listing refuses a limit above the 500 its description states; v1's, which state no
    maximum, take it (and answer that limit). A limit below 1 is refused by both."""
    path = op.split(" ", 1)[1]
    query = {"term": "Ann", "entity_type": "person", "field": "name"} if "itemSearch" in op else {}
    above = api.get(path, params={**query, "limit": (maximum or 500) + 1})
    if maximum is None:
        assert above.status_code == 200, above.text
        paging = above.json()["additional_data"]  # getNotes' is under its `pagination`
        assert paging.get("pagination", paging)["limit"] == 501
    else:
        assert (above.status_code, above.json()["error"]) == (
            400,
            f"limit: must be between 1 and {maximum}",
        )
    below = api.get(path, params={**query, "limit": 0})
    assert below.status_code == 400, below.text


# ---- error answers ---------------------------------------------------------------------------

_NO_LEAD = "leads/00000000-0000-4000-8000-000000000000"  # a lead id the company does not have


def _error_cases() -> list[tuple[str, str]]:
    """(operation, what provokes the error) for every served operation: no token (401), a query
    parameter it does not have (400), the rate limit (429), and for one of a record, a record
    the company does not have (404)."""
    cases = []
    for op in extract_script().OPERATIONS:
        kinds = ("401", "400", "429", *(("404",) if "{id}" in op else ()))
        cases += [(op, kind) for kind in kinds]
    return cases


@pytest.mark.parametrize(("op", "kind"), _error_cases(), ids=repr)
def test_every_operation_s_error_answers_are_in_the_documented_error_shape(
    make_sandbox: Any, op: str, kind: str
) -> None:
    """Each error the sandbox answers an operation with, a 401, 400, 429 or 404, is in the schema
    the operation documents for that status (a lead's 404, users/me's 401) or else in the
    descriptions' error envelope, every key of it given."""
    method, template = op.split(" ", 1)
    sandbox = make_sandbox(fail_429=1.0 if kind == "429" else 0.0)
    path = template.replace("leads/{id}", _NO_LEAD).replace("{id}", "999" if kind == "404" else "1")
    query = {"term": "Ann", "entity_type": "person", "field": "name"} if "itemSearch" in op else {}
    headers = {} if kind == "401" else {"x-api-token": TOKEN}
    if kind == "400":
        query["no_such_parameter"] = "1"
    body = _WRITES[op][1] if op in _WRITES else None
    response = httpx.request(
        method, f"{sandbox.url}{path}", params=query, json=body, headers=headers, timeout=5.0
    )
    assert response.status_code == int(kind), response.text
    assert_documented_error(response, *extract_script().OPERATIONS[op])


# ---- every operation's success answer -------------------------------------------------------

_LEAD = "{lead}"  # the world's lead, filled in
# operation -> (path, query, body) of a request that succeeds in `_success_world`, its listings
# each finding a record.
_SUCCEEDS: dict[str, tuple[str, dict[str, Any], Any]] = {
    "GET /api/v2/itemSearch/field": (
        "/api/v2/itemSearch/field",
        {"term": "u-1", "entity_type": "person", "field": USER_ID_FIELD},
        None,
    ),
    "GET /api/v2/persons": ("/api/v2/persons", {}, None),
    "POST /api/v2/persons": ("/api/v2/persons", {}, {"name": "Cy"}),
    "GET /api/v2/persons/{id}": ("/api/v2/persons/1", {}, None),
    "PATCH /api/v2/persons/{id}": ("/api/v2/persons/1", {}, {"job_title": "CTO"}),
    "GET /api/v2/organizations": ("/api/v2/organizations", {}, None),
    "POST /api/v2/organizations": ("/api/v2/organizations", {}, {"name": "Beta"}),
    "GET /api/v2/organizations/{id}": ("/api/v2/organizations/1", {}, None),
    "PATCH /api/v2/organizations/{id}": ("/api/v2/organizations/1", {}, {"website": "x.io"}),
    "GET /api/v2/personFields": ("/api/v2/personFields", {}, None),
    "GET /api/v2/organizationFields": ("/api/v2/organizationFields", {}, None),
    "GET /api/v2/dealFields": ("/api/v2/dealFields", {}, None),
    "PUT /v1/persons/{id}/merge": ("/v1/persons/2/merge", {}, {"merge_with_id": 1}),
    "POST /v1/leads": ("/v1/leads", {}, {"title": "L", "organization_id": 1}),
    "GET /v1/leads": ("/v1/leads", {}, None),
    "GET /v1/leads/archived": ("/v1/leads/archived", {}, None),
    "GET /v1/leads/{id}": (f"/v1/leads/{_LEAD}", {}, None),
    "PATCH /v1/leads/{id}": (f"/v1/leads/{_LEAD}", {}, {"was_seen": True}),
    "GET /v1/leadLabels": ("/v1/leadLabels", {}, None),
    "GET /v1/users/me": ("/v1/users/me", {}, None),
    "POST /api/v2/deals": ("/api/v2/deals", {}, {"title": "D", "status": "won"}),
    "GET /api/v2/deals": ("/api/v2/deals", {}, None),
    "GET /api/v2/deals/archived": ("/api/v2/deals/archived", {}, None),
    "POST /api/v2/activities": ("/api/v2/activities", {}, {"subject": "S", "person_id": 1}),
    "GET /api/v2/activities": ("/api/v2/activities", {"include_fields": "attendees"}, None),
    "POST /v1/notes": ("/v1/notes", {}, {"content": "c", "deal_id": 1}),
    "GET /v1/notes": ("/v1/notes", {}, None),
    "GET /api/v2/pipelines": ("/api/v2/pipelines", {}, None),
    "GET /api/v2/stages": ("/api/v2/stages", {}, None),
    "GET /v1/activityTypes": ("/v1/activityTypes", {}, None),
}


def _success_world(api: httpx.Client) -> str:
    """Persons 1 (of organization 1, with an email and u-1) and 2, a lead of person 1 (valued,
    labelled) and an archived one, an archived deal and an open one, an activity with an
    attendee and a place, a note pinned to the person; the first lead's id."""
    api.post("/api/v2/organizations", json={"name": "Acme"})
    emails = [{"value": "ann@example.com", "primary": True, "label": "work"}]
    fields = {USER_ID_FIELD: "u-1"}
    create_person(api, org_id=1, emails=emails, custom_fields=fields)
    create_person(api, name="Bo")
    value = {"amount": 5, "currency": "EUR"}
    lead = api.post(
        "/v1/leads", json={"title": "T", "person_id": 1, "value": value, "label_ids": [HOT]}
    ).json()["data"]["id"]
    archived = api.post("/v1/leads", json={"title": "A", "person_id": 1}).json()["data"]["id"]
    api.patch(f"/v1/leads/{archived}", json={"is_archived": True})
    api.post("/api/v2/deals", json={"title": "Open", "person_id": 1, "org_id": 1})
    api.post("/api/v2/deals", json={"title": "Old", "person_id": 1, "is_archived": True})
    activity = {"person_id": 1, "due_date": "2026-06-01", "location": {"value": "Tallinn"}}
    api.post("/api/v2/activities", json=activity | {"attendees": [{"email": "a@x.io"}]})
    api.post("/v1/notes", json={"content": "N", "person_id": 1, "pinned_to_person_flag": 1})
    return str(lead)


@pytest.mark.parametrize("op", list(extract_script().OPERATIONS), ids=str)
def test_every_operation_s_success_answer_is_documented(api: httpx.Client, op: str) -> None:
    """Every operation the sandbox serves (each one rpd sends: the token costs list them), asked
    what succeeds, answers its documented success status in its documented schema, every key
    given, include_fields' only when asked, paging in its documented shape (assert_documented),
    listings holding a record each."""
    lead = _success_world(api)
    path, query, body = _SUCCEEDS[op]
    response = api.request(op.split(" ", 1)[0], path.replace(_LEAD, lead), params=query, json=body)
    file, template, method = extract_script().OPERATIONS[op]
    documented = load_openapi(file)["paths"][template][method]["responses"]
    assert [str(response.status_code)] == [c for c in documented if c.startswith("2")], (
        response.text
    )
    assert_documented(response, file, template, method)
    assert response.json()["data"], "a listing that finds nothing checks no record's shape"


def test_each_served_operation_has_a_request_that_succeeds() -> None:
    assert list(_SUCCEEDS) == list(extract_script().OPERATIONS)
