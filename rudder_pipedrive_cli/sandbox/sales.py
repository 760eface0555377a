"""Deals, activities and notes: what track rules write (SPEC 4, 7), linked to the store's persons,
organizations and leads.

Pure state like the store: every operation takes `now` and raises `ApiError` for what Pipedrive
refuses. Bodies arrive checked against the request schemas; this checks what needs the data
(links to other records, pipelines and stages, activity types, custom deal fields, status rules).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rudder_pipedrive_cli.core.costs import PLAN_NAMES
from rudder_pipedrive_cli.sandbox.replies import ApiError
from rudder_pipedrive_cli.sandbox.schemas import REQUEST_SCHEMAS
from rudder_pipedrive_cli.sandbox.seed import (
    ACTIVITY_TYPES,
    DEFAULT_VISIBLE_TO,
    STAGES,
    USER_ID,
    USER_ME,
    custom_fields,
)
from rudder_pipedrive_cli.sandbox.times import clock_time, parse_time, rfc3339, v1_seconds, v1_time
from rudder_pipedrive_cli.sandbox.validation import check_custom_fields, check_visibility, is_date

if TYPE_CHECKING:
    from rudder_pipedrive_cli.sandbox.store import Store

Record = dict[str, Any]

DEFAULT_PIPELINE_ID = 1
DEFAULT_CURRENCY = str(USER_ME["default_currency"])
ACTIVITY_TYPE_KEYS = tuple(t["key_string"] for t in ACTIVITY_TYPES)
DEAL_STATUSES = ("open", "won", "lost")
# Deal times only a deal of these statuses may carry (addDeal's descriptions).
_STATUS_TIMES = {
    "lost_reason": ("lost",),
    "won_time": ("won",),
    "lost_time": ("lost",),
    "close_time": ("won", "lost"),
}
# Deal times a body may give in either format: kept in RFC 3339.
_DEAL_TIMES = ("archive_time", "close_time", "won_time", "lost_time")
# A deal or an activity keeps as given every property its create declares but those the create
# works out: a deal's pipeline and stage, owner, labels, times and custom fields; an activity's
# person and participants, attendees (each with every key), owner, times of day and project
# (refused).
_DEAL_KEPT = frozenset(REQUEST_SCHEMAS["POST /api/v2/deals"]["properties"]).difference(
    ("pipeline_id", "stage_id", "owner_id", "label_ids", "custom_fields", *_DEAL_TIMES)
)
_ADD_ACTIVITY = REQUEST_SCHEMAS["POST /api/v2/activities"]["properties"]
_ACTIVITY_KEPT = frozenset(_ADD_ACTIVITY).difference(
    ("person_id", "participants", "attendees", "owner_id", "due_time", "duration", "project_id")
)
# An attendee's keys, which addActivity's body and answer both list: an answer holds each, null
# where the body gave none.
_ATTENDEE_KEYS = tuple(_ADD_ACTIVITY["attendees"]["items"]["properties"])
# A deal's recurring revenue: "Only available in Growth and above plans ... Null if there are no
# products attached to the deal" (v2.yaml's deal), and the sandbox has no products. "unlimited",
# the sandbox's plan without rate limits, is above them all.
_RECURRING = ("arr", "mrr", "acv")
_GROWTH_AND_ABOVE = PLAN_NAMES[PLAN_NAMES.index("growth") :]
# A person's counts of what the sandbox does not keep (Sales.person_summary).
_NOT_KEPT_COUNTS = (
    "email_messages_count",
    "files_count",
    "followers_count",
    "participant_open_deals_count",
    "participant_closed_deals_count",
    *(f"related_{status}_deals_count" for status in ("open", "closed", "won", "lost")),
)
# The pin flags a note carries and getNotes filters by (projects: never pinned, the sandbox has
# none; its pinned_to_task_flag, which getNotes does not filter by here, is always false).
PIN_FLAGS = tuple(
    f"pinned_to_{pin}_flag" for pin in ("lead", "deal", "organization", "person", "project")
)


class Sales:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.deals: dict[int, Record] = {}
        self.activities: dict[int, Record] = {}
        self.notes: dict[int, Record] = {}

    # ---- deals -----------------------------------------------------------------------------

    def create_deal(self, body: Mapping[str, Any], now: float) -> Record:
        if not body["title"]:
            raise ApiError(400, "title: must not be empty")
        self.store.check_links(body)
        pipeline_id, stage_id = _pipeline_and_stage(body.get("pipeline_id"), body.get("stage_id"))
        status = body.get("status", "open")
        if status not in DEAL_STATUSES:
            raise ApiError(400, f"status: must be one of {', '.join(DEAL_STATUSES)}")
        for key, statuses in _STATUS_TIMES.items():
            if body.get(key) is not None and status not in statuses:
                raise ApiError(400, f"{key}: can only be set if status is {' or '.join(statuses)}")
        if body.get("label_ids"):
            raise ApiError(400, f"label_ids: unknown deal label {body['label_ids'][0]}")
        problem = check_visibility(body) or check_custom_fields(
            custom_fields("deal"), body.get("custom_fields") or {}
        )
        if problem:
            raise ApiError(400, problem)
        times = {
            key: rfc3339(parse_time(body[key], key))
            for key in _DEAL_TIMES
            if body.get(key) is not None
        }
        deal: Record = {
            "id": len(self.deals) + 1,
            "title": "",
            "creator_user_id": USER_ID,
            "owner_id": USER_ID,
            "value": 0,
            "person_id": None,
            "org_id": None,
            "stage_id": stage_id,
            "pipeline_id": pipeline_id,
            "currency": DEFAULT_CURRENCY,
            "archive_time": None,
            "add_time": rfc3339(now),
            "update_time": rfc3339(now),
            "stage_change_time": None,
            "status": "open",
            "is_archived": False,
            "is_deleted": False,
            "probability": None,
            "lost_reason": None,
            "visible_to": DEFAULT_VISIBLE_TO,
            "close_time": None,
            "won_time": None,
            "lost_time": None,
            "local_won_date": None,
            "local_lost_date": None,
            "local_close_date": None,
            "expected_close_date": None,
            "label_ids": [],
            "origin": "API",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            # source_lead_id: "Only included when requested via include_fields parameter", which
            # the sandbox refuses on deals (and none of its deals was a lead).
            "custom_fields": dict.fromkeys(custom_fields("deal")),
        }
        if self.store.plan in _GROWTH_AND_ABOVE:
            deal |= dict.fromkeys(_RECURRING)
        deal |= {key: copy.deepcopy(body[key]) for key in _DEAL_KEPT if key in body}
        deal |= times
        if deal["is_archived"] and deal["archive_time"] is None:
            deal["archive_time"] = rfc3339(now)
        if status != "open":  # closed now, as archived now above, unless the body says when
            closed = deal[f"{status}_time"] or deal["close_time"] or rfc3339(now)
            deal[f"{status}_time"] = deal[f"{status}_time"] or closed
            deal["close_time"] = deal["close_time"] or closed
        for key in ("won", "lost", "close"):
            stamp = deal[f"{key}_time"]
            deal[f"local_{key}_date"] = stamp[:10] if stamp else None
        deal["custom_fields"].update(copy.deepcopy(body.get("custom_fields") or {}))
        self.deals[deal["id"]] = deal
        return deal

    def deal_listing(
        self, statuses: Sequence[str] | None, *, archived: bool = False
    ) -> list[Record]:
        """getDeals' deals (getArchivedDeals': `archived`) before its other filters (routes'
        `_matching`): not deleted unless `statuses` has "deleted"."""

        def status_ok(deal: Record) -> bool:
            if deal["is_deleted"]:
                return statuses is not None and "deleted" in statuses
            return statuses is None or deal["status"] in statuses

        return [
            deal
            for deal in self.deals.values()
            if deal["is_archived"] == archived and status_ok(deal)
        ]

    # ---- activities ------------------------------------------------------------------------

    def create_activity(self, body: Mapping[str, Any], now: float) -> Record:
        self.store.check_links(body)
        if "project_id" in body:
            raise ApiError(400, "project_id: the sandbox has no projects")
        kind = body.get("type", ACTIVITY_TYPE_KEYS[0])
        if kind not in ACTIVITY_TYPE_KEYS:
            raise ApiError(400, f"type: must be an activity type ({', '.join(ACTIVITY_TYPE_KEYS)})")
        participants = copy.deepcopy(body.get("participants") or [])
        for i, participant in enumerate(participants):
            if participant.get("person_id") not in self.store.persons:
                raise ApiError(
                    400,
                    f"participants[{i}].person_id: person {participant.get('person_id')} not found",
                )
        for attendee in body.get("attendees") or ():
            self.store.check_links(attendee)  # its person_id and user_id
        person_id = body.get("person_id")
        if person_id is None:
            person_id = next((p["person_id"] for p in participants if p.get("primary")), None)
        if not participants and person_id is not None:
            participants = [{"person_id": person_id, "primary": True}]
        # addActivity's schema gives due_date no format (addDeal's expected_close_date has one).
        if body.get("due_date") is not None and not is_date(body["due_date"]):
            raise ApiError(400, f"due_date: must be a date (YYYY-MM-DD), got {body['due_date']!r}")
        done = bool(body.get("done", False))
        activity: Record = {
            "id": len(self.activities) + 1,
            "subject": next(t["name"] for t in ACTIVITY_TYPES if t["key_string"] == kind),
            "type": kind,
            "owner_id": USER_ID,
            "creator_user_id": USER_ID,
            "is_deleted": False,
            "add_time": rfc3339(now),
            "update_time": rfc3339(now),
            "deal_id": None,
            "lead_id": None,
            "person_id": person_id,
            "org_id": None,
            "project_id": None,
            "due_date": None,
            "due_time": None,
            "duration": None,
            "busy": False,
            "done": done,
            "marked_as_done_time": rfc3339(now) if done else None,
            "location": None,
            "participants": participants,
            "attendees": [
                {key: copy.deepcopy(attendee.get(key)) for key in _ATTENDEE_KEYS}
                for attendee in body.get("attendees") or ()
            ],
            "conference_meeting_client": None,
            "conference_meeting_url": None,
            "conference_meeting_id": None,
            "public_description": None,
            "priority": None,
            "note": None,
        }
        activity |= {key: copy.deepcopy(body[key]) for key in _ACTIVITY_KEPT if key in body}
        for key in ("due_time", "duration"):
            if body.get(key) is not None:
                activity[key] = clock_time(body[key], key)
        self.activities[activity["id"]] = activity
        return activity

    # ---- notes -----------------------------------------------------------------------------

    def create_note(self, body: Mapping[str, Any], now: float) -> Record:
        if not body["content"]:
            raise ApiError(400, "content: must not be empty")
        for key in ("project_id", "task_id"):
            if key in body:
                raise ApiError(400, f"{key}: the sandbox has no {key.removesuffix('_id')}s")
        self.store.check_links(body)
        if not any(
            body.get(key) is not None for key in ("lead_id", "deal_id", "person_id", "org_id")
        ):
            raise ApiError(400, "A note must be linked to a lead, deal, person or organization")
        added = parse_time(body["add_time"], "add_time") if "add_time" in body else now
        store = self.store
        note: Record = {
            "id": len(self.notes) + 1,
            "active_flag": True,
            "add_time": v1_seconds(added),
            "update_time": v1_seconds(now),
            "content": body["content"],
            "lead_id": body.get("lead_id"),
            "deal_id": body.get("deal_id"),
            "person_id": body.get("person_id"),
            "org_id": body.get("org_id"),
            "project_id": None,
            "task_id": None,
            "user_id": USER_ID,
            "last_update_user_id": USER_ID,
            "deal": _named(self.deals, body.get("deal_id"), "title"),
            "person": _named(store.persons, body.get("person_id"), "name"),
            "organization": _named(store.organizations, body.get("org_id"), "name"),
            "project": None,
            "task": None,
            "user": {
                "email": USER_ME["email"],
                "icon_url": None,
                "is_you": True,
                "name": USER_ME["name"],
            },
        }
        for pin in ("project", "task"):
            if body.get(f"pinned_to_{pin}_flag"):
                raise ApiError(400, f"pinned_to_{pin}_flag: the sandbox has no {pin}s")
        note |= {flag: bool(body.get(flag)) for flag in PIN_FLAGS} | {"pinned_to_task_flag": False}
        self.notes[note["id"]] = note
        return note

    # ---- what v1 says of a person ------------------------------------------------------------

    def person_summary(self, person_id: int) -> dict[str, Any]:
        """The counts and activity links v1 gives beside a person (mergePersons' answer), from
        the person's deals, activities (those it takes part in) and notes. The sandbox keeps no
        mail, files, followers or deal participants, nor deals related through an organization:
        those count 0 and the mail times are null."""
        deals = [
            d for d in self.deals.values() if d["person_id"] == person_id and not d["is_deleted"]
        ]
        activities = [
            a
            for a in self.activities.values()
            if not a["is_deleted"] and any(p["person_id"] == person_id for p in a["participants"])
        ]
        done = [a for a in activities if a["done"]]
        dated = [a for a in activities if a["due_date"] is not None]
        upcoming = min((a for a in dated if not a["done"]), key=_activity_when, default={})
        last = max((a for a in dated if a["done"]), key=_activity_when, default={})
        statuses = [d["status"] for d in deals]
        return {
            "activities_count": len(activities),
            "done_activities_count": len(done),
            "undone_activities_count": len(activities) - len(done),
            "notes_count": sum(n["person_id"] == person_id for n in self.notes.values()),
            "open_deals_count": statuses.count("open"),
            "closed_deals_count": len(statuses) - statuses.count("open"),
            "won_deals_count": statuses.count("won"),
            "lost_deals_count": statuses.count("lost"),
            **dict.fromkeys(_NOT_KEPT_COUNTS, 0),
            "last_incoming_mail_time": None,
            "last_outgoing_mail_time": None,
            "next_activity_id": upcoming.get("id"),
            "next_activity_date": upcoming.get("due_date"),
            "next_activity_time": upcoming.get("due_time"),
            "last_activity_id": last.get("id"),
            "last_activity_date": last.get("due_date"),
        }

    # ---- merges ----------------------------------------------------------------------------

    def reassign_person(self, merged_id: int, survivor_id: int, now: float) -> None:
        """A merge moves the merged person's leads, deals, activities and notes to the survivor."""
        tables = ((self.store.leads, v1_time), (self.deals, rfc3339), (self.activities, rfc3339))
        for table, stamp in tables:
            for record in table.values():
                if record["person_id"] == merged_id:
                    record["person_id"] = survivor_id
                    record["update_time"] = stamp(now)
        for activity in self.activities.values():
            for participant in activity["participants"]:
                if participant["person_id"] == merged_id:
                    participant["person_id"] = survivor_id
        survivor = self.store.persons[survivor_id]
        for note in self.notes.values():
            if note["person_id"] == merged_id:
                note["person_id"] = survivor_id
                note["person"] = {"name": survivor["name"]}
                note["update_time"] = v1_seconds(now)


def _named(table: Mapping[Any, Record], record_id: Any, key: str) -> dict[str, Any] | None:
    return None if record_id is None else {key: table[record_id][key]}


def _pipeline_and_stage(pipeline_id: int | None, stage_id: int | None) -> tuple[int, int]:
    """The deal's pipeline and stage: a stage names its pipeline; a pipeline alone starts at its
    first stage; neither: the first stage of the default pipeline."""
    if stage_id is not None:
        stage = next((s for s in STAGES if s["id"] == stage_id), None)
        if stage is None:
            raise ApiError(400, f"stage_id: stage {stage_id} not found")
        if pipeline_id is not None and stage["pipeline_id"] != pipeline_id:
            raise ApiError(400, f"stage_id: stage {stage_id} is not in pipeline {pipeline_id}")
        return int(stage["pipeline_id"]), stage_id
    pipeline_id = DEFAULT_PIPELINE_ID if pipeline_id is None else pipeline_id
    stages = sorted(
        (s for s in STAGES if s["pipeline_id"] == pipeline_id), key=lambda s: s["order_nr"]
    )
    if not stages:
        raise ApiError(400, f"pipeline_id: pipeline {pipeline_id} not found")
    return pipeline_id, int(stages[0]["id"])


def _activity_when(activity: Record) -> tuple[str, str, int]:
    """When an activity is due, to order a person's next and last: its date, then its time (an
    activity without one first in its day), then its id."""
    return activity["due_date"], activity["due_time"] or "", activity["id"]
