"""Deals, activities, notes, pipelines, stages and activity types (issue 16 item 8, SPEC 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fakes import FakeClock
from sandbox_support import CAMPAIGN_FIELD, SOURCE_FIELD, create_person, error

from rudder_pipedrive_cli.sandbox import Sandbox

NOW = "2026-05-28T20:26:40Z"
_ABOVE_LITE = ("growth", "premium", "ultimate", "unlimited")


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


# ---- pipelines, stages, activity types -------------------------------------------------------


def test_pipelines_and_stages_are_seeded(api: httpx.Client) -> None:
    pipelines = ok(api.get("/api/v2/pipelines"))
    assert [(p["id"], p["name"], p["order_nr"]) for p in pipelines] == [
        (1, "Sales", 1),
        (2, "Partners", 2),
    ]
    assert pipelines[0] == {
        "id": 1,
        "name": "Sales",
        "order_nr": 1,
        "is_deleted": False,
        "is_deal_probability_enabled": False,
        "add_time": "2026-01-05T09:00:00Z",
        "update_time": "2026-01-05T09:00:00Z",
    }
    stages = ok(api.get("/api/v2/stages"))
    assert [(s["id"], s["name"], s["pipeline_id"], s["order_nr"]) for s in stages] == [
        (1, "Qualified", 1, 1),
        (2, "Demo", 1, 2),
        (3, "Proposal", 1, 3),
        (4, "Intro", 2, 1),
    ]
    partners = ok(api.get("/api/v2/stages", params={"pipeline_id": 2}))
    assert [s["name"] for s in partners] == ["Intro"]
    by_order = {"sort_by": "order_nr", "sort_direction": "desc"}
    assert [s["id"] for s in ok(api.get("/api/v2/stages", params=by_order))] == [3, 2, 4, 1]
    page = api.get("/api/v2/pipelines", params={"limit": 1}).json()
    assert [p["name"] for p in page["data"]] == ["Sales"]
    assert page["additional_data"]["next_cursor"] is not None


def test_the_standard_activity_types_are_seeded(api: httpx.Client) -> None:
    types = ok(api.get("/v1/activityTypes"))
    assert [(t["id"], t["key_string"], t["name"]) for t in types] == [
        (1, "call", "Call"),
        (2, "meeting", "Meeting"),
        (3, "task", "Task"),
        (4, "deadline", "Deadline"),
        (5, "email", "Email"),
        (6, "lunch", "Lunch"),
    ]
    assert all(t["active_flag"] and not t["is_custom_flag"] for t in types)


# ---- deals ---------------------------------------------------------------------------------


def test_create_a_deal_with_origin_id_and_list_it_by_person(timed: httpx.Client) -> None:
    create_person(timed)
    create_person(timed, name="Bo")
    timed.post("/api/v2/organizations", json={"name": "Acme"})
    deal = ok(
        timed.post(
            "/api/v2/deals",
            json={
                "title": "Demo request",
                "person_id": 1,
                "org_id": 1,
                "stage_id": 2,
                "value": 120.5,
                "currency": "USD",
                "expected_close_date": "2026-06-30",
                "origin_id": "rpd:m-1",
                "custom_fields": {SOURCE_FIELD: "web"},
            },
        )
    )
    assert deal == {
        "id": 1,
        "title": "Demo request",
        "creator_user_id": 7000001,
        "owner_id": 7000001,
        "value": 120.5,
        "person_id": 1,
        "org_id": 1,
        "stage_id": 2,
        "pipeline_id": 1,
        "currency": "USD",
        "archive_time": None,
        "add_time": NOW,
        "update_time": NOW,
        "stage_change_time": None,
        "status": "open",
        "is_archived": False,
        "is_deleted": False,
        "probability": None,
        "lost_reason": None,
        "visible_to": 3,
        "close_time": None,
        "won_time": None,
        "lost_time": None,
        "local_won_date": None,
        "local_lost_date": None,
        "local_close_date": None,
        "expected_close_date": "2026-06-30",
        "label_ids": [],
        "origin": "API",
        "origin_id": "rpd:m-1",
        "channel": None,
        "channel_id": None,
        "custom_fields": {SOURCE_FIELD: "web", CAMPAIGN_FIELD: None},
        "arr": None,
        "mrr": None,
        "acv": None,
    }
    other = ok(timed.post("/api/v2/deals", json={"title": "Other", "person_id": 2}))
    assert (other["pipeline_id"], other["stage_id"], other["currency"], other["value"]) == (
        1,
        1,
        "EUR",
        0,
    )
    assert ok(timed.get("/api/v2/deals", params={"person_id": 1})) == [deal]
    assert [d["id"] for d in ok(timed.get("/api/v2/deals"))] == [1, 2]
    assert timed.get("/_sandbox/state").json()["deals"] == [deal, other]


def test_a_pipeline_alone_starts_at_its_first_stage(api: httpx.Client) -> None:
    create_person(api)
    deal = ok(api.post("/api/v2/deals", json={"title": "P", "person_id": 1, "pipeline_id": 2}))
    assert (deal["pipeline_id"], deal["stage_id"]) == (2, 4)


def test_won_and_lost_deals_carry_their_times(api: httpx.Client) -> None:
    create_person(api)
    won = ok(
        api.post(
            "/api/v2/deals",
            json={
                "title": "W",
                "person_id": 1,
                "status": "won",
                "won_time": "2026-05-01 10:00:00",
                "close_time": "2026-05-01T10:00:00Z",
                "probability": 90,
            },
        )
    )
    assert (won["won_time"], won["close_time"], won["local_won_date"]) == (
        "2026-05-01T10:00:00Z",
        "2026-05-01T10:00:00Z",
        "2026-05-01",
    )
    lost = ok(
        api.post(
            "/api/v2/deals",
            json={"title": "L", "person_id": 1, "status": "lost", "lost_reason": "price"},
        )
    )
    assert lost["lost_reason"] == "price"
    assert [d["title"] for d in ok(api.get("/api/v2/deals", params={"status": "won,lost"}))] == [
        "W",
        "L",
    ]
    assert ok(api.get("/api/v2/deals", params={"status": "open"})) == []


@pytest.mark.parametrize("status", ["won", "lost"])
def test_a_deal_made_won_or_lost_was_closed_now_unless_a_time_is_given(
    timed: httpx.Client, status: str
) -> None:
    """A closed deal has a close time: as archive_time is when is_archived comes alone (addDeal),
    the time of the status and close_time are the request's when the body gives neither."""
    create_person(timed)
    deal = ok(timed.post("/api/v2/deals", json={"title": "D", "person_id": 1, "status": status}))
    closed = {
        f"{status}_time": "2026-05-28T20:26:40Z",
        "close_time": "2026-05-28T20:26:40Z",
        f"local_{status}_date": "2026-05-28",
        "local_close_date": "2026-05-28",
    }
    assert {key: deal[key] for key in closed} == closed
    given = {f"{status}_time": "2026-05-01 10:00:00"}
    deal = ok(timed.post("/api/v2/deals", json={"title": "D", "status": status, **given}))
    assert (deal[f"{status}_time"], deal["close_time"]) == ("2026-05-01T10:00:00Z",) * 2
    given = {"close_time": "2026-05-02 10:00:00"}
    deal = ok(timed.post("/api/v2/deals", json={"title": "D", "status": status, **given}))
    assert (deal[f"{status}_time"], deal["close_time"]) == ("2026-05-02T10:00:00Z",) * 2
    assert ok(timed.post("/api/v2/deals", json={"title": "D"}))["close_time"] is None


def test_archived_and_deleted_deals_are_listed_as_documented(api: httpx.Client) -> None:
    create_person(api)
    api.post("/api/v2/deals", json={"title": "A", "person_id": 1, "is_archived": True})
    api.post("/api/v2/deals", json={"title": "D", "person_id": 1, "is_deleted": True})
    api.post("/api/v2/deals", json={"title": "O", "person_id": 1})
    assert [d["title"] for d in ok(api.get("/api/v2/deals"))] == ["O"]
    assert [d["title"] for d in ok(api.get("/api/v2/deals", params={"status": "deleted"}))] == ["D"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Validation failed: title: is required"),
        ({"title": ""}, "title: must not be empty"),
        ({"title": "T", "person_id": 9}, "person_id: person 9 not found"),
        ({"title": "T", "org_id": 9}, "org_id: organization 9 not found"),
        ({"title": "T", "owner_id": 9}, "owner_id: user 9 not found"),
        ({"title": "T", "stage_id": 9}, "stage_id: stage 9 not found"),
        ({"title": "T", "pipeline_id": 9}, "pipeline_id: pipeline 9 not found"),
        ({"title": "T", "pipeline_id": 2, "stage_id": 1}, "stage_id: stage 1 is not in pipeline 2"),
        ({"title": "T", "status": "closed"}, "status: must be one of open, won, lost"),
        ({"title": "T", "lost_reason": "x"}, "lost_reason: can only be set if status is lost"),
        (
            {"title": "T", "close_time": "2026-01-01T00:00:00Z"},
            "close_time: can only be set if status is won or lost",
        ),
        ({"title": "T", "label_ids": [1]}, "label_ids: unknown deal label 1"),
        ({"title": "T", "value": "5"}, "Validation failed: value: expected number, got string"),
        ({"title": "T", "origin": "x"}, "Validation failed: origin: unknown property"),
        (
            {"title": "T", "custom_fields": {SOURCE_FIELD: 5}},
            f"custom_fields.{SOURCE_FIELD}: expected string for a varchar field, got integer",
        ),
        (
            {"title": "T", "expected_close_date": "2026-02-30"},
            "Validation failed: expected_close_date: must be a date (YYYY-MM-DD)",
        ),
        (
            {"title": "T", "status": "won", "won_time": "soon"},
            "won_time: must be RFC 3339 or YYYY-MM-DD HH:MM:SS, got 'soon'",
        ),
    ],
)
def test_invalid_deals_are_400s(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, Any], message: str
) -> None:
    response = api.post("/api/v2/deals", json=body)
    assert (response.status_code, response.json()) == (400, error(message))
    assert sandbox.state()["deals"] == []


# ---- activities ----------------------------------------------------------------------------


def test_create_an_activity_and_list_it_by_its_primary_participant(timed: httpx.Client) -> None:
    create_person(timed)
    create_person(timed, name="Bo")
    body = {
        "subject": "Scheduled call",
        "type": "call",
        "person_id": 1,
        "due_date": "2026-06-01",
        "due_time": "14:30",
        "duration": "00:30",
        "done": True,
        "note": "Agenda <b>pricing</b><br>rpd:m-7",
        "busy": True,
        "priority": 2,
        "public_description": "call",
        "location": {"value": "Tallinn"},
    }
    activity = ok(timed.post("/api/v2/activities", json=body))
    assert activity == {
        "id": 1,
        "subject": "Scheduled call",
        "type": "call",
        "owner_id": 7000001,
        "creator_user_id": 7000001,
        "is_deleted": False,
        "add_time": NOW,
        "update_time": NOW,
        "deal_id": None,
        "lead_id": None,
        "person_id": 1,
        "org_id": None,
        "project_id": None,
        "due_date": "2026-06-01",
        "due_time": "14:30:00",
        "duration": "00:30:00",
        "busy": True,
        "done": True,
        "marked_as_done_time": NOW,
        "location": {"value": "Tallinn"},
        "participants": [{"person_id": 1, "primary": True}],
        "attendees": [],
        "conference_meeting_client": None,
        "conference_meeting_url": None,
        "conference_meeting_id": None,
        "public_description": "call",
        "priority": 2,
        "note": "Agenda <b>pricing</b><br>rpd:m-7",
    }
    by_participants = ok(
        timed.post(
            "/api/v2/activities",
            json={
                "type": "meeting",
                "participants": [{"person_id": 1}, {"person_id": 2, "primary": True}],
            },
        )
    )
    assert (by_participants["person_id"], by_participants["subject"]) == (2, "Meeting")
    # getActivities leaves attendees out unless include_fields asks for them (v2.yaml).
    listed = [{key: value for key, value in activity.items() if key != "attendees"}]
    assert ok(timed.get("/api/v2/activities", params={"person_id": 1})) == listed
    asked = {"person_id": 1, "include_fields": "attendees"}
    assert ok(timed.get("/api/v2/activities", params=asked)) == [activity]
    assert [a["id"] for a in ok(timed.get("/api/v2/activities", params={"person_id": 2}))] == [2]
    assert [a["id"] for a in ok(timed.get("/api/v2/activities", params={"done": "false"}))] == [2]
    assert timed.get("/_sandbox/state").json()["activities"][0] == activity


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"type": "fax"},
            "type: must be an activity type (call, meeting, task, deadline, email, lunch)",
        ),
        ({"person_id": 9}, "person_id: person 9 not found"),
        ({"participants": [{"person_id": 9}]}, "participants[0].person_id: person 9 not found"),
        ({"due_time": "25:00"}, "due_time: must be HH:MM or HH:MM:SS, got '25:00'"),
        ({"due_date": "June 1"}, "due_date: must be a date (YYYY-MM-DD), got 'June 1'"),
        ({"project_id": 1}, "project_id: the sandbox has no projects"),
        (
            {"lead_id": "00000000-0000-4000-8000-000000000000"},
            "lead_id: lead 00000000-0000-4000-8000-000000000000 not found",
        ),
        ({"done": "yes"}, "Validation failed: done: expected boolean, got string"),
        ({"due": "2026-01-01"}, "Validation failed: due: unknown property"),
    ],
)
def test_invalid_activities_are_400s(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, Any], message: str
) -> None:
    create_person(api)
    response = api.post("/api/v2/activities", json=body)
    assert (response.status_code, response.json()) == (400, error(message))
    assert sandbox.state()["activities"] == []


def test_a_null_sorts_below_every_value_as_in_mysql(api: httpx.Client) -> None:
    # Pipedrive keeps a company's data in MySQL (Percona Server), where NULL is less than any
    # value: first ascending, last descending, in v2's sort_by as in v1's sort.
    create_person(api)
    for due in ("2026-06-02", None, "2026-06-01"):
        body = {"subject": "S", "type": "call", "person_id": 1, "due_date": due}
        ok(api.post("/api/v2/activities", json={k: v for k, v in body.items() if v}))
    by_due = {"sort_by": "due_date", "limit": 2}
    first = api.get("/api/v2/activities", params=by_due).json()
    cursor = {"cursor": first["additional_data"]["next_cursor"]}
    rest = ok(api.get("/api/v2/activities", params=by_due | cursor))
    assert [a["id"] for a in first["data"] + rest] == [2, 3, 1]
    by_due |= {"sort_direction": "desc"}
    first = api.get("/api/v2/activities", params=by_due).json()
    cursor = {"cursor": first["additional_data"]["next_cursor"]}
    rest = ok(api.get("/api/v2/activities", params=by_due | cursor))
    assert [a["id"] for a in first["data"] + rest] == [1, 3, 2]
    ok(api.post("/api/v2/deals", json={"title": "D", "person_id": 1}))
    ok(api.post("/v1/notes", json={"content": "a", "person_id": 1}))
    ok(api.post("/v1/notes", json={"content": "b", "deal_id": 1}))
    notes = {d: ok(api.get("/v1/notes", params={"sort": f"deal_id {d}"})) for d in ("ASC", "DESC")}
    assert {d: [n["content"] for n in rows] for d, rows in notes.items()} == {
        "ASC": ["a", "b"],
        "DESC": ["b", "a"],
    }


# ---- notes ---------------------------------------------------------------------------------


def test_create_a_note_and_list_it_by_person(timed: httpx.Client) -> None:
    create_person(timed)
    create_person(timed, name="Bo")
    note = ok(
        timed.post(
            "/v1/notes",
            json={
                "content": "Ticket <i>#4</i><br>rpd:m-9",
                "person_id": 1,
                "add_time": "2026-05-01 08:00:00",
                "pinned_to_person_flag": 1,
            },
        )
    )
    assert note == {
        "id": 1,
        "active_flag": True,
        "add_time": "2026-05-01 08:00:00",
        "update_time": "2026-05-28 20:26:40",
        "content": "Ticket <i>#4</i><br>rpd:m-9",
        "lead_id": None,
        "deal_id": None,
        "person_id": 1,
        "org_id": None,
        "project_id": None,
        "task_id": None,
        "user_id": 7000001,
        "last_update_user_id": 7000001,
        "deal": None,
        "person": {"name": "Ann Lee"},
        "organization": None,
        "project": None,
        "task": None,
        "user": {
            "email": "sandbox@example.com",
            "icon_url": None,
            "is_you": True,
            "name": "Sandbox User",
        },
        "pinned_to_lead_flag": False,
        "pinned_to_deal_flag": False,
        "pinned_to_organization_flag": False,
        "pinned_to_person_flag": True,
        "pinned_to_project_flag": False,
        "pinned_to_task_flag": False,
    }
    timed.post("/v1/notes", json={"content": "other", "person_id": 2})
    listed = timed.get("/v1/notes", params={"person_id": 1}).json()
    assert listed["data"] == [note]
    # getNotes' paging is under additional_data.pagination, next_start only when there are more.
    paging = {"start": 0, "limit": 100, "more_items_in_collection": False}
    assert listed["additional_data"] == {"pagination": paging}
    first = timed.get("/v1/notes", params={"limit": 1}).json()["additional_data"]
    paging = {"start": 0, "limit": 1, "more_items_in_collection": True, "next_start": 1}
    assert first == {"pagination": paging}
    assert [n["id"] for n in ok(timed.get("/v1/notes", params={"sort": "id DESC"}))] == [2, 1]
    dates = {"start_date": "2026-05-02", "end_date": "2026-05-31"}
    assert [n["id"] for n in ok(timed.get("/v1/notes", params=dates))] == [2]
    pinned = {"pinned_to_person_flag": "1"}
    assert [n["id"] for n in ok(timed.get("/v1/notes", params=pinned))] == [1]
    assert timed.get("/_sandbox/state").json()["notes"][0] == note


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"person_id": 1}, "Validation failed: content: is required"),
        ({"content": "", "person_id": 1}, "content: must not be empty"),
        ({"content": "x"}, "A note must be linked to a lead, deal, person or organization"),
        ({"content": "x", "person_id": 9}, "person_id: person 9 not found"),
        ({"content": "x", "deal_id": 9}, "deal_id: deal 9 not found"),
        (
            {"content": "x", "person_id": 1, "project_id": 1},
            "project_id: the sandbox has no projects",
        ),
        ({"content": "x", "person_id": 1, "user_id": 5}, "user_id: user 5 not found"),
        (
            {"content": "x", "person_id": 1, "subject": "s"},
            "Validation failed: subject: unknown property",
        ),
        (
            {"content": "x", "person_id": 1, "pinned_to_deal_flag": 2},
            "Validation failed: pinned_to_deal_flag: must be one of 0, 1",
        ),
    ],
)
def test_invalid_notes_are_400s(
    api: httpx.Client, sandbox: Sandbox, body: dict[str, Any], message: str
) -> None:
    create_person(api)
    response = api.post("/v1/notes", json=body)
    assert (response.status_code, response.json()) == (400, error(message))
    assert sandbox.state()["notes"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # getNotes' lead_id is a UUID (format: uuid), as the lead ids it matches are.
        ({"lead_id": "42"}, "lead_id: must be a UUID, got '42'"),
        ({"start_date": "2026-5-1"}, "start_date: must be a date (YYYY-MM-DD)"),
        ({"pinned_to_person_flag": "true"}, "pinned_to_person_flag: must be 0 or 1"),
    ],
)
def test_invalid_note_listings_are_400s(
    api: httpx.Client, params: dict[str, str], message: str
) -> None:
    response = api.get("/v1/notes", params=params)
    assert (response.status_code, response.json()) == (400, error(message))


# ---- merges, state, reset, costs ---------------------------------------------------------------


def test_a_merge_moves_deals_activities_and_notes_to_the_survivor(
    timed: httpx.Client, clock: FakeClock
) -> None:
    create_person(timed, name="Old")
    create_person(timed, name="Survivor")
    timed.post("/api/v2/deals", json={"title": "D", "person_id": 1})
    timed.post("/api/v2/activities", json={"person_id": 1})
    timed.post("/v1/notes", json={"content": "N", "person_id": 1})
    clock.advance(60)
    timed.put("/v1/persons/1/merge", json={"merge_with_id": 2})
    state = timed.get("/_sandbox/state").json()
    assert [(d["person_id"], d["update_time"]) for d in state["deals"]] == [
        (2, "2026-05-28T20:27:40Z")
    ]
    assert [(a["person_id"], a["participants"]) for a in state["activities"]] == [
        (2, [{"person_id": 2, "primary": True}])
    ]
    assert [(n["person_id"], n["person"]) for n in state["notes"]] == [(2, {"name": "Survivor"})]
    assert [d["id"] for d in ok(timed.get("/api/v2/deals", params={"person_id": 2}))] == [1]


@pytest.mark.parametrize(
    ("plan", "recurring"),
    [("lite", {}), *((plan, {"arr": None, "mrr": None, "acv": None}) for plan in _ABOVE_LITE)],
)
def test_a_deal_has_arr_mrr_and_acv_on_growth_and_above_null_without_products(
    make_sandbox: Callable[..., Sandbox],
    client_for: Callable[..., httpx.Client],
    plan: str,
    recurring: dict[str, None],
) -> None:
    """v2.yaml's deal: arr, mrr and acv are "Only available in Growth and above plans" and "Null
    if there are no products attached to the deal" (the sandbox has no products); a Lite
    company's deals do not have them. In the answer to addDeal and in getDeals'."""
    api = client_for(make_sandbox(plan=plan))
    created = ok(api.post("/api/v2/deals", json={"title": "D"}))
    listed = ok(api.get("/api/v2/deals"))
    for deal in (created, *listed):
        assert {key: deal[key] for key in ("arr", "mrr", "acv") if key in deal} == recurring


def test_the_merge_answer_counts_the_survivor_s_deals_activities_and_notes(
    api: httpx.Client,
) -> None:
    """mergePersons' answer holds every key mergePersonItem documents: the counts from what the
    survivor now has (the merged person's too), its next undone and last done activity, and its
    organization as v1.yaml's schema gives it there: `org_id` the id, `org_name` its name."""
    org = ok(api.post("/api/v2/organizations", json={"name": "Acme"}))
    create_person(api, name="Old")
    create_person(api, name="Ann Lee", org_id=org["id"])
    api.post("/api/v2/deals", json={"title": "Open", "person_id": 1})
    api.post("/api/v2/deals", json={"title": "Lost", "person_id": 1, "status": "lost"})
    api.post("/api/v2/deals", json={"title": "Won", "person_id": 2, "status": "won"})
    later = {"person_id": 1, "due_date": "2026-06-02", "due_time": "09:00"}
    api.post("/api/v2/activities", json=later)
    api.post("/api/v2/activities", json={"person_id": 2, "due_date": "2026-06-01"})
    api.post("/api/v2/activities", json={"person_id": 1, "due_date": "2026-05-01", "done": True})
    api.post("/v1/notes", json={"content": "N", "person_id": 1})
    api.post("/v1/notes", json={"content": "M", "person_id": 2})
    data = ok(api.put("/v1/persons/1/merge", json={"merge_with_id": 2}))
    counts = {key: value for key, value in data.items() if key.endswith("_count")}
    assert counts == {
        "activities_count": 3,
        "done_activities_count": 1,
        "undone_activities_count": 2,
        "notes_count": 2,
        "open_deals_count": 1,
        "closed_deals_count": 2,
        "won_deals_count": 1,
        "lost_deals_count": 1,
        "email_messages_count": 0,
        "files_count": 0,
        "followers_count": 0,
        "participant_open_deals_count": 0,
        "participant_closed_deals_count": 0,
        "related_open_deals_count": 0,
        "related_closed_deals_count": 0,
        "related_won_deals_count": 0,
        "related_lost_deals_count": 0,
    }
    activities = {key: value for key, value in data.items() if "activity_" in key}
    assert activities == {
        "next_activity_id": 2,
        "next_activity_date": "2026-06-01",
        "next_activity_time": None,
        "last_activity_id": 3,
        "last_activity_date": "2026-05-01",
    }
    shown = ("id", "merge_what_id", "org_id", "org_name", "label", "picture_id", "cc_email")
    assert {key: data[key] for key in shown} == {
        "id": 2,
        "merge_what_id": 1,
        "org_id": org["id"],
        "org_name": "Acme",
        "label": None,
        "picture_id": None,
        "cc_email": "sandbox@pipedrivemail.com",
    }
    assert (data["last_incoming_mail_time"], data["last_outgoing_mail_time"]) == (None, None)


def test_a_merge_answer_without_an_organization_has_null_org_id_and_org_name(
    api: httpx.Client,
) -> None:
    create_person(api, name="Old")
    create_person(api, name="Ann Lee")
    data = ok(api.put("/v1/persons/1/merge", json={"merge_with_id": 2}))
    assert (data["org_id"], data["org_name"], data["activities_count"]) == (None, None, 0)
    assert (data["next_activity_id"], data["last_activity_id"]) == (None, None)


def test_reset_clears_the_new_kinds_and_ids_start_again(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    create_person(api)
    api.post("/api/v2/deals", json={"title": "D", "person_id": 1})
    api.post("/api/v2/activities", json={"person_id": 1})
    api.post("/v1/notes", json={"content": "N", "person_id": 1})
    assert api.post("/_sandbox/reset").json() == {"reset": True}
    state = sandbox.state()
    assert (state["deals"], state["activities"], state["notes"]) == ([], [], [])
    create_person(api)
    assert ok(api.post("/api/v2/deals", json={"title": "D", "person_id": 1}))["id"] == 1


def test_persons_listed_by_deal(api: httpx.Client) -> None:
    create_person(api)
    create_person(api, name="Bo")
    api.post("/api/v2/deals", json={"title": "D", "person_id": 2})
    assert [p["name"] for p in ok(api.get("/api/v2/persons", params={"deal_id": 1}))] == ["Bo"]
    assert ok(api.get("/api/v2/persons", params={"deal_id": 9})) == []


def test_the_new_operations_cost_their_tokens(api: httpx.Client, sandbox: Sandbox) -> None:
    create_person(api)
    before = sandbox.stats()["tokens"]
    api.post("/api/v2/deals", json={"title": "D", "person_id": 1})  # 5
    api.get("/api/v2/deals", params={"person_id": 1})  # 10
    api.post("/api/v2/activities", json={"person_id": 1})  # 5
    api.get("/api/v2/activities", params={"person_id": 1})  # 10
    api.post("/v1/notes", json={"content": "N", "person_id": 1})  # 10
    api.get("/v1/notes", params={"person_id": 1})  # 20
    api.get("/api/v2/pipelines")  # 5
    api.get("/api/v2/stages")  # 5
    api.get("/v1/activityTypes")  # 20
    assert sandbox.stats()["tokens"] - before == 90
