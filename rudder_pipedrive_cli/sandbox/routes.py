"""Pipedrive's routes: a table from (method, path template) to the code that answers it.

Each handler reads a parsed `Request`, validates what the OpenAPI says about it, calls the store
and wraps the result in Pipedrive's envelope. Handlers raise `ApiError` for 4xx answers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from rudder_pipedrive_cli.sandbox.replies import Answer, ApiError, success
from rudder_pipedrive_cli.sandbox.sales import DEAL_STATUSES, PIN_FLAGS
from rudder_pipedrive_cli.sandbox.schemas import REQUEST_SCHEMAS
from rudder_pipedrive_cli.sandbox.seed import (
    ACTIVITY_TYPES,
    CC_EMAIL,
    FIELD_EXTRAS,
    FIELD_LISTINGS,
    FIELDS,
    LEAD_LABELS,
    PIPELINES,
    STAGES,
    USER_ME,
    Entity,
    custom_fields,
    searchable_field,
)
from rudder_pipedrive_cli.sandbox.store import MATCH_MODES, Record, Store
from rudder_pipedrive_cli.sandbox.times import epoch
from rudder_pipedrive_cli.sandbox.validation import (
    check_schema,
    is_date,
    is_uuid,
    looks_like_field_key,
    parse_rfc3339,
)

# v2 listings' `limit` ("Please note that a maximum value of 500 is allowed"); v1's getLeads,
# getArchivedLeads and getNotes document none.
V2_MAX_LIMIT = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    template: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    now: float


Handler = Callable[[Store, Request], Answer]


# ---- query helpers --------------------------------------------------------------------------


def _int(value: str, name: str) -> int:
    if not re.fullmatch(r"-?\d+", value):
        raise ApiError(400, f"{name}: expected integer, got {value!r}")
    return int(value)


def _query_int(req: Request, name: str) -> int | None:
    return _int(req.query[name], name) if name in req.query else None


def _path_id(req: Request) -> int:
    return _int(req.params["id"], "id")


def _limit(req: Request, maximum: int | None) -> int:
    """The page size asked for (default 100): at least 1, and at most `maximum` if there is one."""
    limit = _int(req.query.get("limit", "100"), "limit")
    if maximum is not None and not 1 <= limit <= maximum:
        raise ApiError(400, f"limit: must be between 1 and {maximum}")
    if limit < 1:
        raise ApiError(400, "limit: must be at least 1")
    return limit


SortKey = Callable[[Any], tuple[Any, ...]]


def _nulls_lowest(value: Any) -> tuple[bool, Any]:
    """A sort key of `value` as MySQL, which holds a company's data, orders it: NULL below every
    value, so first ascending and last descending."""
    return value is not None, value


def _by(sort_by: str) -> SortKey:
    """v2's order: by `sort_by` (null lowest), ties by id."""
    return lambda row: (*_nulls_lowest(row[sort_by]), row["id"])


BY_ID = _by("id")


def _cursor_page(
    req: Request,
    rows: list[Any],
    *,
    view: Callable[[Any], Any] | None = None,
    key: SortKey = BY_ID,
    order: tuple[str, str] = ("id", "asc"),
) -> Answer:
    """One page of `rows` (sorted by `key` and `order`: field, asc or desc) after the request's
    cursor, with v2's `additional_data.next_cursor` (null on the last page). As Pipedrive's does,
    the cursor holds where its page ended (the last row's key), not how many rows came before:
    a record added or deleted before it while a client pages (a merge) moves no other record
    off the next page."""
    limit = _limit(req, V2_MAX_LIMIT)
    if req.query.get("cursor"):
        after = _cursor_key(req.query["cursor"], order)
        descending = order[1] == "desc"
        try:
            rows = [row for row in rows if (key(row) < after if descending else key(row) > after)]
        except TypeError:  # a key of another shape: not a cursor this listing gave
            raise ApiError(400, "cursor: invalid cursor") from None
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        mark = {"order": order, "after": key(page[-1])}
        cursor = base64.urlsafe_b64encode(orjson.dumps(mark)).decode()
    return success(page if view is None else [view(row) for row in page], {"next_cursor": cursor})


def _cursor_key(cursor: str, order: tuple[str, str]) -> tuple[Any, ...]:
    """The key a cursor of this `order` ended its page at."""
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        decoded = None
    if not isinstance(decoded, dict) or decoded.get("order") != list(order):
        raise ApiError(400, "cursor: invalid cursor")
    if not isinstance(after := decoded.get("after"), list):
        raise ApiError(400, "cursor: invalid cursor")
    return tuple(after)


def _time_query(req: Request, name: str) -> float | None:
    if name not in req.query:
        return None
    parsed = parse_rfc3339(req.query[name])
    if parsed is None:
        raise ApiError(400, f"{name}: must be RFC 3339 (2025-01-01T10:20:00Z)")
    return parsed.timestamp()


def _body(req: Request) -> Mapping[str, Any]:
    """The JSON body, checked against the operation's request schema (strict: no unknown keys)."""
    strict = req.template.startswith("/api/v2/")
    problem = check_schema(
        REQUEST_SCHEMAS[f"{req.method} {req.template}"], req.body, extra_ok=not strict
    )
    if problem:
        raise ApiError(400, f"Validation failed: {problem}")
    body: Mapping[str, Any] = req.body
    return body


# ---- persons and organizations ---------------------------------------------------------------

_SORTABLE = ("id", "update_time", "add_time")


def _v2_sorted_page(
    req: Request,
    rows: list[Record],
    sortable: Sequence[str],
    view: Callable[[Record], Record] | None = None,
) -> Answer:
    """A page of `rows` by v2's `sort_by` (default id) and `sort_direction` (default asc)."""
    sort_by = req.query.get("sort_by", "id")
    if sort_by not in sortable:
        raise ApiError(400, f"sort_by: must be one of {', '.join(sortable)}")
    direction = req.query.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise ApiError(400, "sort_direction: must be asc or desc")
    key = _by(sort_by)
    rows = sorted(rows, key=key, reverse=direction == "desc")
    return _cursor_page(req, rows, view=view, key=key, order=(sort_by, direction))


def _matching(
    records: Iterable[Record],
    *,
    filters: Mapping[str, Any],
    updated_since: float | None,
    updated_until: float | None = None,
    ids: frozenset[int] | None = None,
) -> list[Record]:
    """The records a listing shows: of `ids`, equal to `filters`, updated in the window (lists
    never lag)."""

    def keep(record: Record) -> bool:
        updated = epoch(record["update_time"])
        return (
            (ids is None or record["id"] in ids)
            and all(record[key] == value for key, value in filters.items())
            and (updated_since is None or updated >= int(updated_since))
            and (updated_until is None or updated < updated_until)
        )

    return [record for record in records if keep(record)]


def _v2_listing(
    req: Request,
    records: Iterable[Record],
    filters: Mapping[str, Any],
    *,
    ids: frozenset[int] | None,
    sortable: Sequence[str] = _SORTABLE,
    view: Callable[[Record], Record] | None = None,
) -> Answer:
    """A page of a v2 listing: `records` of `ids`, equal to `filters`, in `updated_since` and
    `updated_until`, sorted by `sort_by` and `sort_direction`."""
    rows = _matching(
        records,
        ids=ids,
        filters=filters,
        updated_since=_time_query(req, "updated_since"),
        updated_until=_time_query(req, "updated_until"),
    )
    return _v2_sorted_page(req, rows, sortable, view)


def _lister(entity: Entity) -> Handler:
    def handle(store: Store, req: Request) -> Answer:
        _unmodelled(req, "filter_id")
        view = _record_view(entity, req)
        ids = _ids(req)
        deal_id = _query_int(req, "deal_id")  # GET persons only, as org_id below
        if deal_id is not None:  # the persons linked to that deal
            deal = store.sales.deals.get(deal_id)
            linked = {deal["person_id"]} if deal and deal["person_id"] is not None else set()
            ids = frozenset(linked if ids is None else linked & ids)
        filters = _int_filters(req, "owner_id", "org_id")  # org_id: GET persons only
        return _v2_listing(req, store.table(entity).values(), filters, ids=ids, view=view)

    return handle


_MAX_IDS = 100
_MAX_CUSTOM_FIELDS = 15


def _ids(req: Request) -> frozenset[int] | None:
    if "ids" not in req.query:
        return None
    ids = [_int(i.strip(), "ids") for i in req.query["ids"].split(",")]
    if len(ids) > _MAX_IDS:
        raise ApiError(400, f"ids: at most {_MAX_IDS} ids, got {len(ids)}")
    return frozenset(ids)


def _query_bool(req: Request, name: str) -> bool:
    value = req.query.get(name, "false")
    if value not in ("true", "false"):
        raise ApiError(400, f"{name}: must be true or false, got {value!r}")
    return value == "true"


def _record_view(entity: Entity, req: Request) -> Callable[[Record], Record]:
    """How a v2 get or list shows a record: `custom_fields=K1,K2` keeps only those custom fields
    (at most 15), `include_option_labels=true` shows enum values as {id, label}."""
    _unmodelled(req, "include_fields", "include_labels")
    fields = custom_fields(entity)
    keys: tuple[str, ...] | None = None
    if "custom_fields" in req.query:
        keys = tuple(k.strip() for k in req.query["custom_fields"].split(",") if k.strip())
        if not keys:
            raise ApiError(400, "custom_fields: name at least one custom field key")
        unknown = next((k for k in keys if k not in fields), None)
        if unknown is not None:
            raise ApiError(400, f"custom_fields: {unknown!r} is not a custom {entity} field")
        if len(keys) > _MAX_CUSTOM_FIELDS:
            raise ApiError(400, f"custom_fields: at most {_MAX_CUSTOM_FIELDS} keys")
    labels = _query_bool(req, "include_option_labels")
    if keys is None and not labels:
        return lambda record: record

    def view(record: Record) -> Record:
        shown = record["custom_fields"]
        if keys is not None:
            shown = {key: value for key, value in shown.items() if key in keys}
        if labels:
            shown = {key: fields[key].labelled(value) for key, value in shown.items()}
        return {**record, "custom_fields": shown}

    return view


def _getter(entity: Entity) -> Handler:
    def handle(store: Store, req: Request) -> Answer:
        view = _record_view(entity, req)
        return success(view(store.get(entity, _path_id(req))))

    return handle


def _creator(entity: Entity) -> Handler:
    return lambda store, req: success(store.create(entity, _body(req), req.now))


def _updater(entity: Entity) -> Handler:
    return lambda store, req: success(store.update(entity, _path_id(req), _body(req), req.now))


def _merge(store: Store, req: Request) -> Answer:
    survivor_id = _v1_body(req)["merge_with_id"]
    merged_id = _path_id(req)
    survivor = store.merge(merged_id, survivor_id, req.now)
    return success(_v1_person(store, survivor, merged_id))


def _v1_person(store: Store, person: Mapping[str, Any], merged_id: int) -> dict[str, Any]:
    """The v1 shape mergePersons answers with (mergePersonItem: every key it documents).
    `org_id` is the organization's id (an integer, null without one), as that schema has it,
    with its name beside it in `org_name`; the counts are `Sales.person_summary`'s."""
    org = store.organizations.get(person["org_id"]) if person["org_id"] is not None else None
    return {
        "id": person["id"],
        "company_id": store.company_id,
        "owner_id": person["owner_id"],
        "owner_name": USER_ME["name"],
        "org_id": person["org_id"],
        "org_name": None if org is None else org["name"],
        "merge_what_id": merged_id,
        "name": person["name"],
        "first_name": person["first_name"],
        "last_name": person["last_name"],
        "active_flag": True,
        "email": person["emails"],
        "phone": person["phones"],
        "first_char": person["name"][:1].lower(),
        "add_time": person["add_time"].replace("T", " ").rstrip("Z"),
        "update_time": person["update_time"].replace("T", " ").rstrip("Z"),
        "visible_to": str(person["visible_to"]),
        "picture_id": person["picture_id"],
        "label": None,  # the sandbox has no person labels (label_ids is [])
        "label_ids": person["label_ids"],
        "cc_email": CC_EMAIL,
        **store.sales.person_summary(person["id"]),
        **person["custom_fields"],
    }


# ---- search ----------------------------------------------------------------------------------

_SEARCH_ENTITIES: Mapping[str, Entity] = {"person": "person", "organization": "organization"}


def _search(store: Store, req: Request) -> Answer:
    for name in ("term", "entity_type", "field"):
        if not req.query.get(name):
            raise ApiError(400, f"{name}: is required")
    entity = _SEARCH_ENTITIES.get(req.query["entity_type"])
    if entity is None:
        raise ApiError(400, "entity_type: the sandbox searches person and organization")
    match = req.query.get("match", "exact")
    if match not in MATCH_MODES:
        raise ApiError(400, f"match: must be one of {', '.join(MATCH_MODES)}")
    if match != "exact" and len(req.query["term"]) < 2:
        raise ApiError(400, "term: minimum 2 characters (or 1 if match is exact)")
    field = searchable_field(entity, req.query["field"])
    if field is None:
        raise ApiError(400, f"field: {req.query['field']!r} is not a searchable {entity} field")
    hits = store.search(entity, field, req.query["term"], match, req.now)
    return _cursor_page(req, hits)


# ---- leads -----------------------------------------------------------------------------------


def _v1_body(req: Request, extra: Callable[[str], bool] = lambda key: False) -> Mapping[str, Any]:
    """A v1 body: its schema, and no key beyond the properties it lists (in any of its parts)
    but those `extra` accepts."""
    body = _body(req)
    schema = REQUEST_SCHEMAS[f"{req.method} {req.template}"]
    parts = (schema, *schema.get("allOf", ()))
    known = {name for part in parts for name in part.get("properties", {})}
    unknown = next((key for key in body if key not in known and not extra(key)), None)
    if unknown is not None:
        raise ApiError(400, f"Validation failed: {unknown}: unknown property")
    return body


def _lead_body(req: Request) -> Mapping[str, Any]:
    """A v1 lead body: no key beyond its schema but custom deal fields (top level)."""
    return _v1_body(req, lambda key: looks_like_field_key(key.removesuffix("_currency")))


def _uuid(value: str, name: str) -> str:
    if not is_uuid(value):
        raise ApiError(400, f"{name}: must be a UUID, got {value!r}")
    return value


def _lead_id(req: Request) -> str:
    return _uuid(req.params["id"], "id")


def _create_lead(store: Store, req: Request) -> Answer:
    return success(store.create_lead(_lead_body(req), req.now), status=201)


def _update_lead(store: Store, req: Request) -> Answer:
    return success(store.update_lead(_lead_id(req), _lead_body(req), req.now))


_LEAD_SORTABLE = (
    "id",
    "title",
    "owner_id",
    "creator_id",
    "was_seen",
    "expected_close_date",
    "next_activity_id",
    "add_time",
    "update_time",
)


def _v1_sorted(req: Request, rows: list[Record], sortable: Sequence[str]) -> list[Record]:
    """Rows sorted by v1's `sort`, "field_1 ASC, field_2 DESC" (unsorted: as they are, the order
    they were added)."""
    keys: list[tuple[str, bool]] = []
    for part in req.query.get("sort", "").split(","):
        if not part.strip():
            continue
        name, _, direction = part.strip().partition(" ")
        direction = direction.strip().upper() or "ASC"
        if name not in sortable or direction not in ("ASC", "DESC"):
            raise ApiError(
                400, f"sort: expected 'field ASC|DESC, ...' with fields {', '.join(sortable)}"
            )
        keys.append((name, direction == "DESC"))
    for key, descending in reversed(keys):  # stable sorts, last key first
        rows = sorted(rows, key=lambda r: _nulls_lowest(r[key]), reverse=descending)
    return rows


def _v1_page(req: Request, rows: list[Any], *, nested: bool) -> Answer:
    """One page of `rows` by v1's `start` and `limit`, its paging where the listing's description
    puts it: getNotes' under `additional_data.pagination`, with `next_start` when there are more
    (`nested`); getLeads' and getArchivedLeads' at the top of `additional_data`, which they give
    no `next_start` (the next page starts after this one's rows)."""
    start = _int(req.query.get("start", "0"), "start")
    if start < 0:
        raise ApiError(400, "start: must not be negative")
    limit = _limit(req, None)
    more = start + limit < len(rows)
    pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more and nested:
        pagination["next_start"] = start + limit
    return success(
        rows[start : start + limit], {"pagination": pagination} if nested else pagination
    )


def _unmodelled(req: Request, *names: str) -> None:
    """Parameters Pipedrive documents that the sandbox does not model: refused, never ignored."""
    for name in names:
        if name in req.query:
            raise ApiError(400, f"{name}: not supported by the sandbox")


def _lead_lister(*, archived: bool) -> Handler:
    """getLeads (`archived` False) or getArchivedLeads, unsorted in the order they were added."""

    def handle(store: Store, req: Request) -> Answer:
        _unmodelled(req, "filter_id")
        filters = _int_filters(req, "person_id", "organization_id", "owner_id")
        since = _time_query(req, "updated_since")  # getLeads only: the app refuses it elsewhere
        rows = [
            lead
            for lead in _matching(store.leads.values(), filters=filters, updated_since=None)
            if lead["is_archived"] == archived
            and (since is None or epoch(lead["update_time"]) >= since)  # to the millisecond
        ]
        return _v1_page(req, _v1_sorted(req, rows, _LEAD_SORTABLE), nested=False)

    return handle


def _include_fields(req: Request, known: Sequence[str]) -> tuple[str, ...]:
    """The additional fields `include_fields` asks for, each one of `known`."""
    names = tuple(e.strip() for e in req.query.get("include_fields", "").split(",") if e)
    if any(name not in known for name in names):
        raise ApiError(400, f"include_fields: must be some of {', '.join(known)}")
    return names


# ---- fields, labels, user ----------------------------------------------------------------------


def _field_listing(entity: Entity) -> Handler:
    def handle(store: Store, req: Request) -> Answer:
        known = FIELD_EXTRAS[entity]
        extras = {name: known[name] for name in _include_fields(req, tuple(known))}
        # Fields list in the order they were made (the seed's): their place is their key.
        place = {f.code: (i,) for i, f in enumerate(FIELDS[entity])}
        rows = [f.listing(extras) for f in FIELDS[entity]]
        return _cursor_page(
            req, rows, key=lambda row: place[row["field_code"]], order=("place", "asc")
        )

    return handle


# ---- deals, activities, notes, pipelines, stages, activity types ------------------------------


_DEAL_STATUSES = (*DEAL_STATUSES, "deleted")  # a deleted deal is listed when asked for


def _deal_lister(*, archived: bool) -> Handler:
    """getDeals (`archived` False) or getArchivedDeals: the same filters, each its own deals."""

    def handle(store: Store, req: Request) -> Answer:
        _unmodelled(req, "filter_id")
        view = _record_view("deal", req)
        statuses = None
        if "status" in req.query:
            statuses = [s.strip() for s in req.query["status"].split(",")]
            if not all(s in _DEAL_STATUSES for s in statuses):
                raise ApiError(400, f"status: must be some of {', '.join(_DEAL_STATUSES)}")
        ids = _ids(req)
        filters = _int_filters(req, "owner_id", "person_id", "org_id", "pipeline_id", "stage_id")
        deals = store.sales.deal_listing(statuses, archived=archived)
        return _v2_listing(req, deals, filters, ids=ids, view=view)

    return handle


def _int_filters(req: Request, *names: str) -> dict[str, Any]:
    """The integer id filters a request gives, by name."""
    return {name: _query_int(req, name) for name in names if name in req.query}


# getActivities' include_fields ("additional fields to include"): attendees, which a listing
# leaves out unless asked (addActivity's answer has them).
_ACTIVITY_EXTRAS = ("attendees",)


def _activity_view(req: Request) -> Callable[[Record], Record]:
    hidden = set(_ACTIVITY_EXTRAS).difference(_include_fields(req, _ACTIVITY_EXTRAS))
    return lambda record: {key: value for key, value in record.items() if key not in hidden}


def _list_activities(store: Store, req: Request) -> Answer:
    _unmodelled(req, "filter_id")
    view = _activity_view(req)
    filters = _int_filters(req, "owner_id", "deal_id", "person_id", "org_id")
    if "lead_id" in req.query:
        filters["lead_id"] = req.query["lead_id"]
    if "done" in req.query:
        filters["done"] = _query_bool(req, "done")
    ids, sortable = _ids(req), (*_SORTABLE, "due_date")
    activities = store.sales.activities.values()
    return _v2_listing(req, activities, filters, ids=ids, sortable=sortable, view=view)


_NOTE_SORTABLE = ("id", "user_id", "deal_id", "person_id", "org_id", "content", "add_time")


def _list_notes(store: Store, req: Request) -> Answer:
    _unmodelled(req, "project_id", "task_id", "pinned_to_task_flag")
    filters = _int_filters(req, "user_id", "deal_id", "person_id", "org_id")
    if "lead_id" in req.query:  # getNotes' is a UUID (getActivities' is any string)
        filters["lead_id"] = _uuid(req.query["lead_id"], "lead_id")
    for flag in PIN_FLAGS:
        if flag in req.query:
            if req.query[flag] not in ("0", "1"):
                raise ApiError(400, f"{flag}: must be 0 or 1")
            filters[flag] = req.query[flag] == "1"
    for name in ("start_date", "end_date"):
        if name in req.query and not is_date(req.query[name]):
            raise ApiError(400, f"{name}: must be a date (YYYY-MM-DD)")
    start, end = req.query.get("start_date"), req.query.get("end_date")
    notes = _matching(
        store.sales.notes.values(), filters=filters, updated_since=_time_query(req, "updated_since")
    )
    rows = [
        note
        for note in notes
        if (start is None or note["add_time"][:10] >= start)
        and (end is None or note["add_time"][:10] <= end)
    ]
    return _v1_page(req, _v1_sorted(req, rows, (*_NOTE_SORTABLE, "update_time")), nested=True)


def _list_stages(store: Store, req: Request) -> Answer:
    pipeline_id = _query_int(req, "pipeline_id")
    rows = [dict(s) for s in STAGES if pipeline_id is None or s["pipeline_id"] == pipeline_id]
    return _v2_sorted_page(req, rows, (*_SORTABLE, "order_nr"))


ROUTES: Mapping[tuple[str, str], Handler] = {
    ("GET", "/api/v2/itemSearch/field"): _search,
    ("GET", "/api/v2/persons"): _lister("person"),
    ("POST", "/api/v2/persons"): _creator("person"),
    ("GET", "/api/v2/persons/{id}"): _getter("person"),
    ("PATCH", "/api/v2/persons/{id}"): _updater("person"),
    ("GET", "/api/v2/organizations"): _lister("organization"),
    ("POST", "/api/v2/organizations"): _creator("organization"),
    ("GET", "/api/v2/organizations/{id}"): _getter("organization"),
    ("PATCH", "/api/v2/organizations/{id}"): _updater("organization"),
    **{("GET", path): _field_listing(entity) for path, entity in FIELD_LISTINGS.items()},
    ("PUT", "/v1/persons/{id}/merge"): _merge,
    ("POST", "/v1/leads"): _create_lead,
    ("GET", "/v1/leads"): _lead_lister(archived=False),
    # Before /v1/leads/{id}: routes match in this order.
    ("GET", "/v1/leads/archived"): _lead_lister(archived=True),
    ("GET", "/v1/leads/{id}"): lambda store, req: success(store.get_lead(_lead_id(req))),
    ("PATCH", "/v1/leads/{id}"): _update_lead,
    ("GET", "/v1/leadLabels"): lambda store, req: success(list(LEAD_LABELS)),
    ("GET", "/v1/users/me"): lambda store, req: success(dict(USER_ME, company_id=store.company_id)),
    ("POST", "/api/v2/deals"): lambda store, req: success(
        store.sales.create_deal(_body(req), req.now)
    ),
    ("GET", "/api/v2/deals"): _deal_lister(archived=False),
    ("GET", "/api/v2/deals/archived"): _deal_lister(archived=True),
    ("POST", "/api/v2/activities"): lambda store, req: success(
        store.sales.create_activity(_body(req), req.now)
    ),
    ("GET", "/api/v2/activities"): _list_activities,
    ("POST", "/v1/notes"): lambda store, req: success(
        store.sales.create_note(_v1_body(req), req.now)
    ),
    ("GET", "/v1/notes"): _list_notes,
    ("GET", "/api/v2/pipelines"): lambda store, req: _v2_sorted_page(
        req, [dict(p) for p in PIPELINES], _SORTABLE
    ),
    ("GET", "/api/v2/stages"): _list_stages,
    ("GET", "/v1/activityTypes"): lambda store, req: success([dict(t) for t in ACTIVITY_TYPES]),
}

# "METHOD template" of the lookups: the answers rpd decides "found" or "not found" from, which
# `fail_mangle` may replace with a malformed body.
LOOKUPS = frozenset(
    {
        "GET /api/v2/itemSearch/field",
        "GET /api/v2/persons",
        "GET /api/v2/organizations",
        "GET /v1/leads",
        "GET /v1/leads/archived",
        "GET /api/v2/deals",
        "GET /api/v2/deals/archived",
        "GET /api/v2/activities",
        "GET /v1/notes",
    }
)

_PATTERNS = [
    (re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"), template)
    for template in dict.fromkeys(template for _, template in ROUTES)
]


def match_route(path: str) -> tuple[str, dict[str, str]] | None:
    """The path template `path` matches and its parameters, or None."""
    for pattern, template in _PATTERNS:
        found = pattern.match(path)
        if found:
            return template, found.groupdict()
    return None
