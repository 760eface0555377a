"""Contract tests over real HTTP: every operation of SPEC 1, its envelope, status and effect."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fakes import FakeClock
from sandbox_support import (
    CAMPAIGN_FIELD,
    EMPLOYEES_FIELD,
    EMPTY_STATE,
    GROUP_ID_FIELD,
    HOT,
    INDUSTRY_FIELD,
    PLAN_FIELD,
    ROLE_FIELD,
    SOURCE_FIELD,
    TOKEN,
    USER_ID_FIELD,
    create_person,
    error,
    search,
)

from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions

# ---- persons -------------------------------------------------------------------------------


def test_create_person_returns_the_v2_record(timed: httpx.Client) -> None:
    response = timed.post(
        "/api/v2/persons",
        json={
            "name": "Ann Lee",
            "emails": [{"value": "ann@example.com"}, {"value": "a@x.io", "label": "home"}],
            "phones": [{"value": "+3725550000", "primary": True, "label": "mobile"}],
            "visible_to": 7,
            "add_time": "2020-02-02T02:23:09+02:00",
            "custom_fields": {USER_ID_FIELD: "u-1", PLAN_FIELD: 102},
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {
            "id": 1,
            "name": "Ann Lee",
            "first_name": "Ann",
            "last_name": "Lee",
            "owner_id": 7000001,
            "org_id": None,
            "add_time": "2020-02-02T00:23:09Z",
            "update_time": "2026-05-28T20:26:40Z",
            "is_deleted": False,
            "visible_to": 7,
            "label_ids": [],
            "picture_id": None,
            "emails": [
                {"value": "ann@example.com", "primary": True, "label": "work"},
                {"value": "a@x.io", "primary": False, "label": "home"},
            ],
            "phones": [{"value": "+3725550000", "primary": True, "label": "mobile"}],
            "custom_fields": {USER_ID_FIELD: "u-1", ROLE_FIELD: None, PLAN_FIELD: 102},
        },
    }
    assert timed.get("/api/v2/persons/1").json()["data"] == response.json()["data"]


def test_person_ids_are_sequential_integers_and_add_time_defaults_to_now(
    timed: httpx.Client,
) -> None:
    first, second = create_person(timed), create_person(timed, name="Bo")
    assert (first["id"], second["id"]) == (1, 2)
    assert second["add_time"] == second["update_time"] == "2026-05-28T20:26:40Z"
    assert (second["first_name"], second["last_name"]) == ("Bo", "")


def test_patch_person_changes_only_the_given_fields(timed: httpx.Client, clock: FakeClock) -> None:
    person = create_person(timed, custom_fields={USER_ID_FIELD: "u-1", ROLE_FIELD: "CTO"})
    clock.advance(60)
    response = timed.patch(
        f"/api/v2/persons/{person['id']}",
        json={"emails": [{"value": "new@example.com"}], "custom_fields": {ROLE_FIELD: "CEO"}},
    )
    assert response.status_code == 200
    assert response.json()["data"] == {
        **person,
        "emails": [{"value": "new@example.com", "primary": True, "label": "work"}],
        "custom_fields": {USER_ID_FIELD: "u-1", ROLE_FIELD: "CEO", PLAN_FIELD: None},
        "update_time": "2026-05-28T20:27:40Z",
    }


def test_patch_person_org_id_links_it_to_the_organization(api: httpx.Client) -> None:
    person = create_person(api)
    org = api.post("/api/v2/organizations", json={"name": "Acme"}).json()["data"]
    response = api.patch(f"/api/v2/persons/{person['id']}", json={"org_id": org["id"]})
    assert response.json()["data"]["org_id"] == org["id"]
    assert api.get(f"/api/v2/persons/{person['id']}").json()["data"]["org_id"] == org["id"]
    unlink = api.patch(f"/api/v2/persons/{person['id']}", json={"org_id": None})
    assert unlink.json()["error"] == "Validation failed: org_id: must not be null"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"org_id": 99}, "org_id: organization 99 not found"),
        ({"owner_id": 5}, "owner_id: user 5 not found"),
        ({"org_id": 99, "owner_id": 5}, "org_id: organization 99 not found"),
    ],
)
def test_patch_person_linking_an_unknown_record_is_a_400(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, Any], message: str
) -> None:
    person = create_person(api)
    response = api.patch(f"/api/v2/persons/{person['id']}", json=body)
    assert (response.status_code, response.json()) == (400, error(message))
    assert sandbox.state()["persons"] == [person]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v2/persons/99", "Person not found"),
        ("/api/v2/organizations/99", "Organization not found"),
    ],
)
def test_get_or_patch_a_missing_record_is_a_404(api: httpx.Client, path: str, message: str) -> None:
    for response in (api.get(path), api.patch(path, json={"name": "X"})):
        assert (response.status_code, response.json()) == (404, error(message))


def test_a_non_integer_id_is_a_400(api: httpx.Client) -> None:
    response = api.get("/api/v2/persons/abc")
    assert (response.status_code, response.json()) == (
        400,
        error("id: expected integer, got 'abc'"),
    )


# ---- validation ----------------------------------------------------------------------------

BAD_BODIES = [
    ("/api/v2/persons", {"name": 5}, "Validation failed: name: expected string, got integer"),
    (
        "/api/v2/persons",
        {"name": "A", "visible_to": "3"},
        "Validation failed: visible_to: expected integer, got string",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "emails": [{"value": 1}]},
        "Validation failed: emails[0].value: expected string, got integer",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "emails": "a@x.io"},
        "Validation failed: emails: expected array, got string",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "email": "a@x.io"},
        "Validation failed: email: unknown property",
    ),
    ("/api/v2/persons", {"emails": []}, "name: is required"),
    (
        "/api/v2/persons",
        {"name": "A", "add_time": "2020-02-02"},
        "add_time: must be RFC 3339 date and time (2020-02-02T00:23:09Z)",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "custom_fields": {"0" * 40: "x"}},
        f"custom_fields.{'0' * 40}: unknown custom field",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "custom_fields": {USER_ID_FIELD: 123}},
        f"custom_fields.{USER_ID_FIELD}: expected string for a varchar field, got integer",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "custom_fields": {PLAN_FIELD: "Pro"}},
        f"custom_fields.{PLAN_FIELD}: expected an option id (integer) for an enum field, "
        "got string",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "custom_fields": {PLAN_FIELD: 999}},
        f"custom_fields.{PLAN_FIELD}: 999 is not an option of 'Plan'",
    ),
    ("/api/v2/organizations", {}, "Validation failed: name: is required"),
    (
        "/api/v2/organizations",
        {"name": "Acme", "custom_fields": {EMPLOYEES_FIELD: "12"}},
        f"custom_fields.{EMPLOYEES_FIELD}: expected number for a double field, got string",
    ),
    ("/v1/leads", {"person_id": 1}, "Validation failed: title: is required"),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, "value": {"amount": 5}},
        "Validation failed: value.currency: is required",
    ),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, "value": {"amount": "5", "currency": "EUR"}},
        "Validation failed: value.amount: expected number, got string",
    ),
    (  # v1 takes custom fields at a body's top level, never inside its objects
        "/v1/leads",
        {"title": "T", "person_id": 1, "value": {"amount": 5, "currency": "EUR", "vat": 1}},
        "Validation failed: value.vat: unknown property",
    ),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, "label_ids": ["hot"]},
        "Validation failed: label_ids[0]: must be a UUID",
    ),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, "expected_close_date": "2026-13-01"},
        "Validation failed: expected_close_date: must be a date (YYYY-MM-DD)",
    ),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, "visible_to": 3},
        "Validation failed: visible_to: expected string, got integer",
    ),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, "label_ids": ["00000000-0000-4000-8000-000000000000"]},
        "label_ids: unknown lead label 00000000-0000-4000-8000-000000000000",
    ),
    # addLead requires a title, and updateLead refuses to empty it: a create may not either.
    ("/v1/leads", {"title": "", "person_id": 1}, "title: a lead needs a title"),
    ("/v1/leads", {"title": "T"}, "A lead must be linked to a person or an organization"),
    ("/v1/leads", {"title": "T", "person_id": 42}, "person_id: person 42 not found"),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, SOURCE_FIELD: 5},
        f"{SOURCE_FIELD}: expected string for a varchar field, got integer",
    ),
    ("/v1/leads", {"title": "T", "person_id": 1, "f" * 40: "x"}, f"{'f' * 40}: unknown deal field"),
    # v2.yaml's field types: "varchar: Text (up to 255 characters)".
    (
        "/api/v2/persons",
        {"name": "A", "custom_fields": {USER_ID_FIELD: "u" * 256}},
        f"custom_fields.{USER_ID_FIELD}: a varchar field holds at most 255 characters, got 256",
    ),
    (
        "/v1/leads",
        {"title": "T", "person_id": 1, SOURCE_FIELD: "s" * 256},
        f"{SOURCE_FIELD}: a varchar field holds at most 255 characters, got 256",
    ),
    # Visibility groups are 1, 3, 5 and 7 (v1.yaml lists them for leads, the one write whose
    # schema enumerates them; v2's persons, organizations and deals take the same groups).
    ("/api/v2/persons", {"name": "A", "visible_to": 2}, "visible_to: must be one of 1, 3, 5, 7"),
    (
        "/api/v2/organizations",
        {"name": "Acme", "visible_to": 0},
        "visible_to: must be one of 1, 3, 5, 7",
    ),
    ("/api/v2/deals", {"title": "D", "visible_to": 9}, "visible_to: must be one of 1, 3, 5, 7"),
    # Strict in nested objects too (v2): an address's parts, an email's keys.
    (
        "/api/v2/organizations",
        {"name": "Acme", "address": {"value": "Tallinn", "city": "Tallinn"}},
        "Validation failed: address.city: unknown property",
    ),
    (
        "/api/v2/persons",
        {"name": "A", "emails": [{"value": "a@x.io", "kind": "work"}]},
        "Validation failed: emails[0].kind: unknown property",
    ),
]


@pytest.mark.parametrize(("path", "body", "message"), BAD_BODIES)
def test_invalid_bodies_are_400s_that_say_why_and_change_nothing(
    api: httpx.Client, sandbox: Sandbox, path: str, body: dict[str, Any], message: str
) -> None:
    create_person(api)
    before = sandbox.state()
    response = api.post(path, json=body)
    assert (response.status_code, response.json()) == (400, error(message))
    assert sandbox.state() == before


def test_a_body_that_is_not_json_is_a_400(api: httpx.Client) -> None:
    response = api.post("/api/v2/persons", content=b"{nope", headers={"content-type": "x"})
    assert (response.status_code, response.json()) == (
        400,
        error("Validation failed: body: not valid JSON"),
    )


def test_patch_cannot_set_add_time(api: httpx.Client) -> None:
    person = create_person(api)
    response = api.patch(
        f"/api/v2/persons/{person['id']}", json={"add_time": "2020-01-01T00:00:00Z"}
    )
    assert (response.status_code, response.json()["error"]) == (
        400,
        "Validation failed: add_time: unknown property",
    )


# ---- organizations -------------------------------------------------------------------------


def test_create_and_update_organization(timed: httpx.Client, clock: FakeClock) -> None:
    created = timed.post(
        "/api/v2/organizations",
        json={
            "name": "Acme",
            "visible_to": 3,
            "custom_fields": {GROUP_ID_FIELD: "g-1", INDUSTRY_FIELD: 201, EMPLOYEES_FIELD: 12.5},
        },
    )
    assert created.status_code == 200
    assert created.json()["data"] == {
        "id": 1,
        "name": "Acme",
        "owner_id": 7000001,
        "add_time": "2026-05-28T20:26:40Z",
        "update_time": "2026-05-28T20:26:40Z",
        "is_deleted": False,
        "visible_to": 3,
        "label_ids": [],
        "address": None,
        "website": None,
        "linkedin": None,
        "industry": None,
        "annual_revenue": None,
        "employee_count": None,
        "custom_fields": {GROUP_ID_FIELD: "g-1", INDUSTRY_FIELD: 201, EMPLOYEES_FIELD: 12.5},
    }
    clock.advance(1)
    updated = timed.patch("/api/v2/organizations/1", json={"name": "Acme Inc"}).json()["data"]
    assert (updated["name"], updated["update_time"]) == ("Acme Inc", "2026-05-28T20:26:41Z")
    assert timed.get("/api/v2/organizations/1").json()["data"] == updated


# ---- lists ---------------------------------------------------------------------------------


def test_list_persons_pages_with_a_cursor(api: httpx.Client) -> None:
    ids = [create_person(api, name=f"P {i}")["id"] for i in range(5)]
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        body = api.get("/api/v2/persons", params=params).json()
        seen += [p["id"] for p in body["data"]]
        pages += 1
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert (seen, pages) == (ids, 3)


def test_list_persons_updated_since_is_inclusive_and_sorts(
    timed: httpx.Client, clock: FakeClock
) -> None:
    create_person(timed, name="old")
    clock.advance(10)
    since = "2026-05-28T20:26:50.400Z"  # within the second the next writes happen
    clock.advance(0.5)
    create_person(timed, name="new 1")
    create_person(timed, name="new 2")
    body = timed.get(
        "/api/v2/persons",
        params={"updated_since": since, "sort_by": "id", "sort_direction": "desc"},
    ).json()
    assert [p["name"] for p in body["data"]] == ["new 2", "new 1"]
    assert timed.get("/api/v2/persons", params={"updated_since": "yesterday"}).status_code == 400


def test_list_persons_by_org_and_ids(api: httpx.Client) -> None:
    org = api.post("/api/v2/organizations", json={"name": "Acme"}).json()["data"]
    create_person(api, org_id=org["id"])
    create_person(api)
    create_person(api, org_id=org["id"])
    by_org = api.get("/api/v2/persons", params={"org_id": org["id"]}).json()["data"]
    by_ids = api.get("/api/v2/persons", params={"ids": "2,3"}).json()["data"]
    assert ([p["id"] for p in by_org], [p["id"] for p in by_ids]) == ([1, 3], [2, 3])
    assert api.get("/api/v2/organizations").json()["data"] == [org]


def test_list_limits_are_checked(api: httpx.Client) -> None:
    for params in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": "!!"}):
        assert api.get("/api/v2/persons", params=params).status_code == 400


# ---- merge ---------------------------------------------------------------------------------


def test_merge_keeps_the_survivor_values_and_fills_its_gaps(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    org = api.post("/api/v2/organizations", json={"name": "Acme"}).json()["data"]
    merged = create_person(
        api,
        name="Old Name",
        org_id=org["id"],
        emails=[{"value": "old@example.com"}],
        custom_fields={USER_ID_FIELD: "anon-1", ROLE_FIELD: "CTO", PLAN_FIELD: 101},
    )
    survivor = create_person(
        api,
        name="Ann",
        phones=[{"value": "555"}],
        custom_fields={USER_ID_FIELD: "u-1", PLAN_FIELD: 103},
    )
    lead = api.post("/v1/leads", json={"title": "T", "person_id": merged["id"]}).json()["data"]
    response = api.put(f"/v1/persons/{merged['id']}/merge", json={"merge_with_id": survivor["id"]})
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["id"], data["merge_what_id"], data["name"]) == (
        survivor["id"],
        merged["id"],
        "Ann",
    )
    after = api.get(f"/api/v2/persons/{survivor['id']}").json()["data"]
    assert after == {
        **survivor,
        "org_id": org["id"],
        "emails": merged["emails"],
        "custom_fields": {USER_ID_FIELD: "u-1", ROLE_FIELD: "CTO", PLAN_FIELD: 103},
        "update_time": after["update_time"],
    }
    state = sandbox.state()
    assert state["merges"] == [{"merged_id": merged["id"], "survivor_id": survivor["id"]}]
    assert [p["id"] for p in state["persons"]] == [survivor["id"]]
    assert [(x["id"], x["person_id"]) for x in state["leads"]] == [(lead["id"], survivor["id"])]


def test_a_merged_person_is_gone(api: httpx.Client) -> None:
    merged, survivor = create_person(api), create_person(api)
    api.put(f"/v1/persons/{merged['id']}/merge", json={"merge_with_id": survivor["id"]})
    gone = error(f"Person {merged['id']} was merged into person {survivor['id']}")
    for response in (
        api.get(f"/api/v2/persons/{merged['id']}"),
        api.patch(f"/api/v2/persons/{merged['id']}", json={"name": "X"}),
        api.put(f"/v1/persons/{merged['id']}/merge", json={"merge_with_id": survivor["id"]}),
    ):
        assert (response.status_code, response.json()) == (410, gone)
    assert search(api, "Ann Lee", field="name").json()["data"] == [
        {"id": survivor["id"], "name": "Ann Lee"}
    ]


@pytest.mark.parametrize(
    ("merged", "survivor", "status", "message"),
    [
        (1, 1, 400, "merge_with_id: cannot merge a person with itself"),
        (1, 9, 400, "merge_with_id: Person not found"),
        (9, 1, 404, "Person not found"),
    ],
)
def test_merge_errors(
    api: httpx.Client, merged: int, survivor: int, status: int, message: str
) -> None:
    create_person(api)
    response = api.put(f"/v1/persons/{merged}/merge", json={"merge_with_id": survivor})
    assert (response.status_code, response.json()) == (status, error(message))


def test_merge_needs_an_integer_merge_with_id(api: httpx.Client) -> None:
    create_person(api)
    create_person(api)
    response = api.put("/v1/persons/1/merge", json={"merge_with_id": "2"})
    assert (
        response.json()["error"] == "Validation failed: merge_with_id: expected integer, got string"
    )


def test_merge_refuses_a_property_mergepersons_does_not_have(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """As addLead, updateLead and addNote do: a misspelt key is a 400, not a merge without it."""
    create_person(api)
    create_person(api)
    before = sandbox.state()
    response = api.put("/v1/persons/1/merge", json={"merge_with_id": 2, "merge_what_id": 1})
    assert (response.status_code, response.json()) == (
        400,
        error("Validation failed: merge_what_id: unknown property"),
    )
    assert sandbox.state() == before


# ---- search --------------------------------------------------------------------------------


def test_search_is_exact_and_case_sensitive_over_custom_fields(api: httpx.Client) -> None:
    create_person(api, name="One", custom_fields={USER_ID_FIELD: "User-1"})
    create_person(api, name="Two", custom_fields={USER_ID_FIELD: "user-1"})
    create_person(api, name="Three", custom_fields={USER_ID_FIELD: "User-10"})
    assert search(api, "User-1").json() == {
        "success": True,
        "data": [{"id": 1, "name": "One"}],
        "additional_data": {"next_cursor": None},
    }
    assert search(api, "user-1").json()["data"] == [{"id": 2, "name": "Two"}]
    assert search(api, "USER-1").json()["data"] == []
    assert search(api, "User-").json()["data"] == []


def test_search_finds_several_hits_in_id_order(api: httpx.Client) -> None:
    for name in ("A", "B"):
        create_person(api, name=name, custom_fields={ROLE_FIELD: "CTO"})
    assert search(api, "CTO", field=ROLE_FIELD).json()["data"] == [
        {"id": 1, "name": "A"},
        {"id": 2, "name": "B"},
    ]


def test_search_sees_the_new_value_after_a_patch(api: httpx.Client) -> None:
    create_person(api, custom_fields={USER_ID_FIELD: "old"})
    api.patch("/api/v2/persons/1", json={"custom_fields": {USER_ID_FIELD: "new"}})
    assert (search(api, "old").json()["data"], search(api, "new").json()["data"]) == (
        [],
        [{"id": 1, "name": "Ann Lee"}],
    )


def test_search_organizations_by_a_double_field(api: httpx.Client) -> None:
    api.post(
        "/api/v2/organizations",
        json={"name": "Acme", "custom_fields": {EMPLOYEES_FIELD: 12, GROUP_ID_FIELD: "g"}},
    )
    for term in ("12", "12.0"):
        found = search(api, term, field=EMPLOYEES_FIELD, entity_type="organization")
        assert found.json()["data"] == [{"id": 1, "name": "Acme"}]
    found = search(api, "g", field=GROUP_ID_FIELD, entity_type="organization")
    assert found.json()["data"] == [{"id": 1, "name": "Acme"}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"field": PLAN_FIELD}, f"field: '{PLAN_FIELD}' is not a searchable person field"),
        ({"field": GROUP_ID_FIELD}, f"field: '{GROUP_ID_FIELD}' is not a searchable person field"),
        ({"entity_type": "deal"}, "entity_type: the sandbox searches person and organization"),
        ({"match": "fuzzy"}, "match: must be one of exact, beginning, middle"),
        ({"entity_type": ""}, "entity_type: is required"),
    ],
)
def test_search_errors(api: httpx.Client, params: dict[str, str], message: str) -> None:
    response = search(api, "x", **params)
    assert (response.status_code, response.json()) == (400, error(message))


def test_search_needs_a_term(api: httpx.Client) -> None:
    response = search(api, "")
    assert (response.status_code, response.json()) == (400, error("term: is required"))


def test_search_is_case_sensitive_whatever_the_match(api: httpx.Client) -> None:
    # v2.yaml, searchItemByField: "The search is case sensitive."
    create_person(api, custom_fields={ROLE_FIELD: "Chief Technology Officer"})
    assert search(api, "Chief", field=ROLE_FIELD, match="beginning").json()["data"] != []
    assert search(api, "Technology", field=ROLE_FIELD, match="middle").json()["data"] != []
    assert search(api, "chief", field=ROLE_FIELD, match="beginning").json()["data"] == []
    assert search(api, "TECHNOLOGY", field=ROLE_FIELD, match="middle").json()["data"] == []
    assert search(api, "Officer", field=ROLE_FIELD, match="beginning").json()["data"] == []


@pytest.mark.parametrize("match", ["beginning", "middle"])
def test_a_one_character_term_is_only_for_exact_matches(api: httpx.Client, match: str) -> None:
    # v2.yaml: "Minimum 2 characters (or 1 if `match` is `exact`)."
    create_person(api, custom_fields={ROLE_FIELD: "C"})
    response = search(api, "C", field=ROLE_FIELD, match=match)
    message = "term: minimum 2 characters (or 1 if match is exact)"
    assert (response.status_code, response.json()) == (400, error(message))
    assert search(api, "C", field=ROLE_FIELD, match="exact").json()["data"] != []


# ---- leads ---------------------------------------------------------------------------------


def test_create_lead_returns_201_and_the_v1_record(timed: httpx.Client) -> None:
    create_person(timed)
    response = timed.post(
        "/v1/leads",
        json={
            "title": "Signed up",
            "person_id": 1,
            "value": {"amount": 49.5, "currency": "EUR"},
            "label_ids": [HOT],
            "expected_close_date": "2026-06-30",
            "origin_id": "rpd:m-1",
            SOURCE_FIELD: "web",
            CAMPAIGN_FIELD: None,
        },
    )
    assert response.status_code == 201
    lead = response.json()["data"]
    assert lead == {
        "id": lead["id"],
        "title": "Signed up",
        "owner_id": 7000001,
        "creator_id": 7000001,
        "label_ids": [HOT],
        "person_id": 1,
        "organization_id": None,
        "source_name": "API",
        "origin": "API",
        "origin_id": "rpd:m-1",
        "channel": None,
        "channel_id": None,
        "source_deal_id": None,
        "is_archived": False,
        "was_seen": False,
        "value": {"amount": 49.5, "currency": "EUR"},
        "expected_close_date": "2026-06-30",
        "next_activity_id": None,
        "add_time": "2026-05-28T20:26:40.000Z",
        "update_time": "2026-05-28T20:26:40.000Z",
        "visible_to": "3",
        "cc_email": "sandbox@pipedrivemail.com",
        SOURCE_FIELD: "web",  # Campaign, given null, is not set: not shown (v1.yaml, addLead)
    }
    assert lead["id"] == "e3e70682-c209-4cac-a29f-6fbed82c07cd"  # fixed seed: the same every run


def test_list_leads_by_person_with_v1_pagination(api: httpx.Client) -> None:
    create_person(api)
    create_person(api)
    for i in range(3):
        api.post("/v1/leads", json={"title": f"T{i}", "person_id": 1, "origin_id": f"rpd:{i}"})
    api.post("/v1/leads", json={"title": "other", "person_id": 2})
    first = api.get("/v1/leads", params={"person_id": 1, "limit": 2}).json()
    assert [x["origin_id"] for x in first["data"]] == ["rpd:0", "rpd:1"]
    # getLeads' paging is at the top of additional_data, without next_start (v1.yaml).
    assert first["additional_data"] == {"start": 0, "limit": 2, "more_items_in_collection": True}
    rest = api.get("/v1/leads", params={"person_id": 1, "limit": 2, "start": 2}).json()
    assert [x["origin_id"] for x in rest["data"]] == ["rpd:2"]
    assert rest["additional_data"] == {"start": 2, "limit": 2, "more_items_in_collection": False}
    assert api.get("/v1/leads", params={"person_id": 99}).json()["data"] == []


def test_list_leads_by_organization(api: httpx.Client) -> None:
    api.post("/api/v2/organizations", json={"name": "Acme"})
    create_person(api)
    api.post("/v1/leads", json={"title": "org lead", "organization_id": 1})
    api.post("/v1/leads", json={"title": "person lead", "person_id": 1})
    data = api.get("/v1/leads", params={"organization_id": 1}).json()["data"]
    assert [x["title"] for x in data] == ["org lead"]


# ---- fields, labels, user ------------------------------------------------------------------

SEEDED_CUSTOM = {
    "/api/v2/personFields": [
        (USER_ID_FIELD, "RudderStack userId", "varchar", None),
        (ROLE_FIELD, "Role", "varchar", None),
        (PLAN_FIELD, "Plan", "enum", ["Free", "Pro", "Enterprise"]),
    ],
    "/api/v2/organizationFields": [
        (GROUP_ID_FIELD, "RudderStack groupId", "varchar", None),
        (INDUSTRY_FIELD, "Industry", "enum", ["Software", "Retail", "Finance"]),
        (EMPLOYEES_FIELD, "Employees", "double", None),
    ],
    "/api/v2/dealFields": [
        (SOURCE_FIELD, "Source", "varchar", None),
        (CAMPAIGN_FIELD, "Campaign", "varchar", None),
    ],
}


def all_pages(api: httpx.Client, path: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    pages = 0
    while True:
        body = api.get(path, params=params).json()
        items += body["data"]
        pages += 1
        if body["additional_data"]["next_cursor"] is None:
            return items, pages
        params["cursor"] = body["additional_data"]["next_cursor"]


@pytest.mark.parametrize("path", list(SEEDED_CUSTOM))
def test_seeded_custom_fields_have_the_spec_keys(api: httpx.Client, path: str) -> None:
    items, pages = all_pages(api, path, limit=3)
    assert pages >= 3  # a page size below the total exercises paging
    custom = [
        (
            f["field_code"],
            f["field_name"],
            f["field_type"],
            [o["label"] for o in f["options"]] if f["options"] is not None else None,
        )
        for f in items
        if f["is_custom_field"]
    ]
    assert custom == SEEDED_CUSTOM[path]
    standard = {f["field_code"] for f in items if not f["is_custom_field"]}
    assert {"owner_id", "visible_to", "add_time"} <= standard


def test_person_standard_fields_and_option_ids(api: httpx.Client) -> None:
    items, _ = all_pages(api, "/api/v2/personFields", limit=100)
    by_code = {f["field_code"]: f for f in items}
    assert {"name", "emails", "phones", "org_id", "visible_to", "add_time"} <= set(by_code)
    seeded = {
        "color": None,
        "add_time": "2026-01-05T09:00:00Z",
        "update_time": "2026-01-05T09:00:00Z",
    }
    assert by_code[PLAN_FIELD]["options"] == [
        {"id": 101, "label": "Free", **seeded},
        {"id": 102, "label": "Pro", **seeded},
        {"id": 103, "label": "Enterprise", **seeded},
    ]


def test_lead_labels_are_seeded(api: httpx.Client) -> None:
    data = api.get("/v1/leadLabels").json()["data"]
    assert [(x["name"], x["id"]) for x in data] == [
        ("Hot", "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"),
        ("Warm", "5d17ffad-6b12-5006-b8d6-314a56d08b1a"),
        ("Cold", "de8cb1cf-2bc1-5b1e-9553-cacf123b23c7"),
    ]


def test_users_me_is_the_sandbox_user(api: httpx.Client) -> None:
    data = api.get("/v1/users/me").json()["data"]
    assert (data["id"], data["name"], data["company_domain"]) == (
        7000001,
        "Sandbox User",
        "rpd-sandbox",
    )
    # Each sandbox, and each reset, is an account of its own: rpd's state keys on the company id.
    with Sandbox(SandboxOptions(plan="unlimited")) as other:
        answer = httpx.get(f"{other.url}/v1/users/me", headers={"x-api-token": "sandbox-token"})
        assert answer.json()["data"]["company_id"] != data["company_id"]
    assert api.post("/_sandbox/reset").status_code == 200
    assert api.get("/v1/users/me").json()["data"]["company_id"] != data["company_id"]


# ---- auth, unknown routes, introspection ---------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query"),
    [({}, {}), ({"x-api-token": "wrong"}, {}), ({}, {"api_token": "wrong"})],
)
def test_a_missing_or_wrong_token_is_a_401(
    sandbox: Sandbox, headers: dict[str, str], query: dict[str, str]
) -> None:
    response = httpx.get(f"{sandbox.url}/v1/users/me", headers=headers, params=query)
    assert (response.status_code, response.json()) == (
        401,
        {**error("unauthorized access"), "errorCode": 401},
    )
    assert sandbox.state()["persons"] == []


def test_the_token_works_in_the_header_or_the_query(sandbox: Sandbox) -> None:
    by_header = httpx.get(f"{sandbox.url}/v1/users/me", headers={"x-api-token": TOKEN})
    by_query = httpx.get(f"{sandbox.url}/v1/users/me", params={"api_token": TOKEN})
    assert (by_header.status_code, by_query.status_code) == (200, 200)


def test_introspection_needs_the_token(sandbox: Sandbox) -> None:
    for method, path in (("GET", "state"), ("GET", "stats"), ("POST", "reset")):
        response = httpx.request(method, f"{sandbox.url}/_sandbox/{path}")
        assert response.status_code == 401


def test_an_unknown_route_is_a_404(api: httpx.Client) -> None:
    for response in (api.get("/v1/persons/1"), api.delete("/api/v2/persons/1")):
        assert response.status_code == 404
        assert response.json()["error"].startswith("Unknown method ")


def test_state_stats_and_reset_over_http(api: httpx.Client, sandbox: Sandbox) -> None:
    create_person(api, custom_fields={USER_ID_FIELD: "u-1"})
    search(api, "u-1")
    api.get("/api/v2/persons/7")
    state = api.get("/_sandbox/state").json()
    assert state == sandbox.state()
    assert (len(state["persons"]), state["organizations"], state["leads"], state["merges"]) == (
        1,
        [],
        [],
        [],
    )
    assert api.get("/_sandbox/stats").json() == {
        "requests": {
            "GET /api/v2/itemSearch/field": 1,
            "GET /api/v2/persons/{id}": 1,
            "POST /api/v2/persons": 1,
        },
        "statuses": {"200": 2, "404": 1},
        "tokens": 26,
        "rate_limited": 0,
        "forbidden": 0,
        "resets": 0,
        "mangled": 0,
    }
    assert api.post("/_sandbox/reset").json() == {"reset": True}
    assert sandbox.state() == EMPTY_STATE
    assert sandbox.stats()["requests"] == {}
    assert create_person(api)["id"] == 1
