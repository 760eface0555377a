"""The sandbox against Pipedrive's own OpenAPI: its schema table is in sync with the YAML, and its
answers to rpd's requests validate against the documented response schemas."""

from __future__ import annotations

from typing import Any

import httpx
from openapi_contract import specs_dir
from sandbox_support import (
    GROUP_ID_FIELD,
    HOT,
    SOURCE_FIELD,
    USER_ID_FIELD,
    assert_documented,
    assert_valid,
    create_person,
    extract_script,
    load_openapi,
    response_schema,
    search,
)

from rudder_pipedrive_cli.core.costs import TOKEN_COST
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
        # mergePersons' v1 person lacks counts the sandbox does not keep (test_sandbox_fidelity).
        assert_documented(response, file, path, method, complete=path != "/persons/{id}/merge")


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
