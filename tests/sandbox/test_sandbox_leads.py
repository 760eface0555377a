"""Leads beyond create: get one, update, archive (issue 13 item 4, issue 19 item 3), and the
listings' documented parameters (getLeads, getArchivedLeads)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fakes import FakeClock
from sandbox_support import HOT, SOURCE_FIELD, create_person, error

from rudder_pipedrive_cli.sandbox import Sandbox

WARM = "5d17ffad-6b12-5006-b8d6-314a56d08b1a"
NO_LABEL = "00000000-0000-4000-8000-000000000000"


def add_lead(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/leads", json={"title": "T", "person_id": 1, **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def titles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [lead["title"] for lead in response.json()["data"]]


def test_get_one_lead(api: httpx.Client) -> None:
    create_person(api)
    lead = add_lead(api, origin_id="rpd:1")
    response = api.get(f"/v1/leads/{lead['id']}")
    assert response.json() == {"success": True, "data": lead}
    missing = api.get("/v1/leads/00000000-0000-4000-8000-000000000000")
    assert (missing.status_code, missing.json()) == (404, error("Lead not found"))
    bad = api.get("/v1/leads/42")
    assert (bad.status_code, bad.json()) == (400, error("id: must be a UUID, got '42'"))


def test_archiving_moves_a_lead_from_the_listing_to_the_archived_one(
    timed: httpx.Client, clock: FakeClock
) -> None:
    create_person(timed)
    first, second = add_lead(timed, title="first"), add_lead(timed, title="second")
    clock.advance(5)
    response = timed.patch(f"/v1/leads/{first['id']}", json={"is_archived": True})
    assert response.status_code == 200
    assert response.json()["data"] == {
        **first,
        "is_archived": True,
        "update_time": "2026-05-28T20:26:45.000Z",
    }
    assert titles(timed.get("/v1/leads", params={"person_id": 1})) == ["second"]
    archived = timed.get("/v1/leads/archived", params={"person_id": 1})
    assert archived.json()["data"] == [response.json()["data"]]
    assert archived.json()["additional_data"] == {
        "start": 0,
        "limit": 100,
        "more_items_in_collection": False,
    }
    assert timed.get(f"/v1/leads/{first['id']}").json()["data"]["is_archived"] is True
    timed.patch(f"/v1/leads/{first['id']}", json={"is_archived": False})
    assert titles(timed.get("/v1/leads")) == ["first", "second"]
    assert titles(timed.get("/v1/leads/archived")) == []
    assert second["is_archived"] is False


def test_update_changes_only_the_given_properties(timed: httpx.Client, clock: FakeClock) -> None:
    create_person(timed)
    timed.post("/api/v2/organizations", json={"name": "Acme"})
    lead = add_lead(timed, label_ids=[HOT], value={"amount": 5, "currency": "EUR"})
    clock.advance(1)
    body = {
        "title": "Renamed",
        "label_ids": [WARM],
        "value": None,
        "organization_id": 1,
        "person_id": None,
        "expected_close_date": "2026-07-01",
        "visible_to": "7",
        "was_seen": True,
        "channel": 3,
        "channel_id": "spring",
        SOURCE_FIELD: "web",
    }
    response = timed.patch(f"/v1/leads/{lead['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        **lead,
        **body,
        "update_time": "2026-05-28T20:26:41.000Z",
    }
    assert timed.get("/_sandbox/state").json()["leads"] == [response.json()["data"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"person_id": None}, "A lead must be linked to a person or an organization"),
        ({"person_id": 9}, "person_id: person 9 not found"),
        ({"organization_id": 9}, "organization_id: organization 9 not found"),
        ({"title": None}, "title: a lead needs a title"),
        ({"title": 5}, "Validation failed: title: expected string, got integer"),
        ({"is_archived": "yes"}, "Validation failed: is_archived: expected boolean, got string"),
        (
            {"label_ids": [WARM.upper()[:-1] + "0"]},
            f"label_ids: unknown lead label {WARM.upper()[:-1]}0",
        ),
        ({"owner_id": 5}, "owner_id: user 5 not found"),
        ({"archived": True}, "Validation failed: archived: unknown property"),
        ({"origin_id": "x"}, "Validation failed: origin_id: unknown property"),
        (
            {"value": {"amount": 5, "currency": "EUR", "code": "EUR"}},
            "Validation failed: value.code: unknown property",
        ),
        ({"visible_to": "2"}, "Validation failed: visible_to: must be one of '1', '3', '5', '7'"),
    ],
)
def test_an_invalid_update_is_a_400_and_changes_nothing(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, Any], message: str
) -> None:
    create_person(api)
    lead = add_lead(api)
    response = api.patch(f"/v1/leads/{lead['id']}", json=body)
    assert (response.status_code, response.json()) == (400, error(message))
    assert sandbox.state()["leads"] == [lead]


def test_a_custom_field_cleared_or_never_set_is_not_shown(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    """v1.yaml (addLead, getLead): "If a custom field's value hasn't been set for the lead, it
    won't appear in the response"; null is how a client clears one."""
    create_person(api)
    lead = add_lead(api, **{SOURCE_FIELD: "web"})
    assert lead[SOURCE_FIELD] == "web"
    response = api.patch(f"/v1/leads/{lead['id']}", json={SOURCE_FIELD: None})
    assert response.status_code == 200
    assert SOURCE_FIELD not in response.json()["data"]
    assert SOURCE_FIELD not in api.get(f"/v1/leads/{lead['id']}").json()["data"]
    assert SOURCE_FIELD not in add_lead(api, **{SOURCE_FIELD: None})
    assert [SOURCE_FIELD in x for x in sandbox.state()["leads"]] == [False, False]


def test_update_of_a_missing_lead_is_a_404(api: httpx.Client) -> None:
    response = api.patch("/v1/leads/00000000-0000-4000-8000-000000000000", json={"title": "X"})
    assert (response.status_code, response.json()) == (404, error("Lead not found"))


def test_create_refuses_a_property_addlead_does_not_have(api: httpx.Client) -> None:
    create_person(api)
    response = api.post("/v1/leads", json={"title": "T", "person_id": 1, "is_archived": True})
    assert (response.status_code, response.json()) == (
        400,
        error("Validation failed: is_archived: unknown property"),
    )


@pytest.mark.parametrize("path", ["/v1/leads", "/v1/leads/archived"])
def test_listings_filter_sort_and_page(api: httpx.Client, path: str) -> None:
    create_person(api)
    create_person(api, name="Bo")
    api.post("/api/v2/organizations", json={"name": "Acme"})
    archive = path.endswith("archived")
    for title, person, org in (("b", 1, None), ("a", 2, 1), ("c", 1, 1), ("d", None, 1)):
        links = {"person_id": person, "organization_id": org}
        lead = add_lead(api, title=title, **{k: v for k, v in links.items() if v})
        if person is None:
            lead = api.patch(f"/v1/leads/{lead['id']}", json={"person_id": None}).json()["data"]
        if archive:
            api.patch(f"/v1/leads/{lead['id']}", json={"is_archived": True})
    assert titles(api.get(path)) == ["b", "a", "c", "d"]
    assert titles(api.get(path, params={"person_id": 1})) == ["b", "c"]
    assert titles(api.get(path, params={"organization_id": 1})) == ["a", "c", "d"]
    assert titles(api.get(path, params={"person_id": 1, "organization_id": 1})) == ["c"]
    assert titles(api.get(path, params={"owner_id": 7000001})) == ["b", "a", "c", "d"]
    assert titles(api.get(path, params={"owner_id": 5})) == []
    assert titles(api.get(path, params={"sort": "title DESC"})) == ["d", "c", "b", "a"]
    assert titles(api.get(path, params={"sort": "owner_id ASC, title ASC"})) == ["a", "b", "c", "d"]
    page = api.get(path, params={"sort": "title", "limit": 3, "start": 1}).json()
    assert [x["title"] for x in page["data"]] == ["b", "c", "d"]
    assert page["additional_data"] == {
        "start": 1,
        "limit": 3,
        "more_items_in_collection": False,
    }


@pytest.mark.parametrize("path", ["/v1/leads", "/v1/leads/archived"])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter_id": 1}, "filter_id: not supported by the sandbox"),
        (
            {"sort": "person_id ASC"},
            "sort: expected 'field ASC|DESC, ...' with fields id, title, "
            "owner_id, creator_id, was_seen, expected_close_date, next_activity_id, add_time, "
            "update_time",
        ),
        (
            {"sort": "title UP"},
            "sort: expected 'field ASC|DESC, ...' with fields id, title, "
            "owner_id, creator_id, was_seen, expected_close_date, next_activity_id, add_time, "
            "update_time",
        ),
        ({"owner_id": "me"}, "owner_id: expected integer, got 'me'"),
        ({"start": -1}, "start: must not be negative"),
    ],
)
def test_listing_parameters_are_checked(
    api: httpx.Client, path: str, params: dict[str, Any], message: str
) -> None:
    response = api.get(path, params=params)
    assert (response.status_code, response.json()) == (400, error(message))


def test_leads_updated_since_is_inclusive(timed: httpx.Client, clock: FakeClock) -> None:
    create_person(timed)
    old = add_lead(timed, title="old")
    clock.advance(10)
    add_lead(timed, title="new")
    since = {"updated_since": "2026-05-28T20:26:50Z"}
    assert titles(timed.get("/v1/leads", params=since)) == ["new"]
    clock.advance(1)
    timed.patch(f"/v1/leads/{old['id']}", json={"title": "old, changed"})
    assert titles(timed.get("/v1/leads", params=since)) == ["old, changed", "new"]
    assert titles(timed.get("/v1/leads", params={"updated_since": "2099-01-01T00:00:00Z"})) == []
    bad = timed.get("/v1/leads", params={"updated_since": "yesterday"})
    assert (bad.status_code, bad.json()) == (
        400,
        error("updated_since: must be RFC 3339 (2025-01-01T10:20:00Z)"),
    )


def test_archived_listing_has_no_updated_since(api: httpx.Client) -> None:
    """getArchivedLeads documents no updated_since: like any unknown parameter, a 400."""
    response = api.get("/v1/leads/archived", params={"updated_since": "2026-01-01T00:00:00Z"})
    assert (response.status_code, response.json()) == (
        400,
        error("updated_since: not a parameter of GET /v1/leads/archived"),
    )


def test_lead_operations_cost_their_tokens(api: httpx.Client, sandbox: Sandbox) -> None:
    create_person(api)
    lead = add_lead(api)
    before = sandbox.stats()["tokens"]
    api.get("/v1/leads/archived")
    api.get(f"/v1/leads/{lead['id']}")
    api.patch(f"/v1/leads/{lead['id']}", json={"is_archived": True})
    assert sandbox.stats()["tokens"] - before == 40 + 2 + 10
