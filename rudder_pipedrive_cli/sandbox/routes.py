"""Pipedrive's routes: a table from (method, path template) to the code that answers it.

Each handler reads a parsed `Request`, validates what the OpenAPI says about it, calls the store
and wraps the result in Pipedrive's envelope. Handlers raise `ApiError` for 4xx answers.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from rudder_pipedrive_cli.sandbox.replies import Answer, ApiError, success
from rudder_pipedrive_cli.sandbox.schemas import REQUEST_SCHEMAS
from rudder_pipedrive_cli.sandbox.seed import (
    FIELD_LISTINGS,
    FIELDS,
    LEAD_LABELS,
    USER_ME,
    Entity,
    searchable_field,
)
from rudder_pipedrive_cli.sandbox.store import MATCH_MODES, Store
from rudder_pipedrive_cli.sandbox.validation import check_schema, parse_rfc3339

MAX_LIMIT = 500
V1_MAX_LIMIT = 500


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


def _query_int(req: Request, name: str, default: int | None = None) -> int | None:
    return _int(req.query[name], name) if name in req.query else default


def _path_id(req: Request) -> int:
    return _int(req.params["id"], "id")


def _limit(req: Request, default: int, maximum: int) -> int:
    limit = _query_int(req, "limit", default)
    assert limit is not None
    if not 1 <= limit <= maximum:
        raise ApiError(400, f"limit: must be between 1 and {maximum}")
    return limit


def _cursor_offset(req: Request) -> int:
    cursor = req.query.get("cursor")
    if not cursor:
        return 0
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise ApiError(400, "cursor: invalid cursor") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("offset"), int):
        raise ApiError(400, "cursor: invalid cursor")
    return int(decoded["offset"])


def _cursor_page(req: Request, rows: list[Any], *, default_limit: int = 100) -> Answer:
    """One page of `rows` with v2's `additional_data.next_cursor` (null on the last page)."""
    limit = _limit(req, default_limit, MAX_LIMIT)
    offset = _cursor_offset(req)
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    cursor = (
        base64.urlsafe_b64encode(orjson.dumps({"offset": offset + limit})).decode()
        if more
        else None
    )
    return success(page, {"next_cursor": cursor})


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


def _lister(entity: Entity) -> Handler:
    def handle(store: Store, req: Request) -> Answer:
        sort_by = req.query.get("sort_by", "id")
        if sort_by not in _SORTABLE:
            raise ApiError(400, f"sort_by: must be one of {', '.join(_SORTABLE)}")
        direction = req.query.get("sort_direction", "asc")
        if direction not in ("asc", "desc"):
            raise ApiError(400, "sort_direction: must be asc or desc")
        ids = req.query.get("ids")
        rows = store.listing(
            entity,
            ids=frozenset(_int(i, "ids") for i in ids.split(",")) if ids else None,
            org_id=_query_int(req, "org_id") if entity == "person" else None,
            updated_since=_time_query(req, "updated_since"),
            updated_until=_time_query(req, "updated_until"),
            sort_by=sort_by,
            descending=direction == "desc",
        )
        return _cursor_page(req, rows)

    return handle


def _getter(entity: Entity) -> Handler:
    return lambda store, req: success(store.get(entity, _path_id(req)))


def _creator(entity: Entity) -> Handler:
    return lambda store, req: success(store.create(entity, _body(req), req.now))


def _updater(entity: Entity) -> Handler:
    return lambda store, req: success(store.update(entity, _path_id(req), _body(req), req.now))


def _merge(store: Store, req: Request) -> Answer:
    survivor_id = _body(req)["merge_with_id"]
    merged_id = _path_id(req)
    survivor = store.merge(merged_id, survivor_id, req.now)
    return success(_v1_person(survivor, merged_id))


def _v1_person(person: Mapping[str, Any], merged_id: int) -> dict[str, Any]:
    """The v1 shape mergePersons answers with."""
    return {
        "id": person["id"],
        "company_id": USER_ME["company_id"],
        "owner_id": person["owner_id"],
        "org_id": person["org_id"],
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
        "label_ids": person["label_ids"],
        "owner_name": USER_ME["name"],
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


def _create_lead(store: Store, req: Request) -> Answer:
    return success(store.create_lead(_body(req), req.now), status=201)


def _list_leads(store: Store, req: Request, *, archived: bool = False) -> Answer:
    start = _query_int(req, "start", 0)
    assert start is not None
    if start < 0:
        raise ApiError(400, "start: must not be negative")
    limit = _limit(req, 100, V1_MAX_LIMIT)
    rows = store.lead_listing(
        person_id=_query_int(req, "person_id"),
        org_id=_query_int(req, "organization_id"),
        archived=archived,
    )
    more = start + limit < len(rows)
    pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    # v1 lists page in `additional_data.pagination`; the OpenAPI puts the same keys one level up.
    return success(rows[start : start + limit], {**pagination, "pagination": pagination})


# ---- fields, labels, user ----------------------------------------------------------------------


def _field_listing(entity: Entity) -> Handler:
    return lambda store, req: _cursor_page(req, [f.listing() for f in FIELDS[entity]])


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
    ("GET", "/v1/leads"): _list_leads,
    ("GET", "/v1/leads/archived"): lambda store, req: _list_leads(store, req, archived=True),
    ("GET", "/v1/leadLabels"): lambda store, req: success(list(LEAD_LABELS)),
    ("GET", "/v1/users/me"): lambda store, req: success(dict(USER_ME)),
}

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
