"""Offline answers for dry-run: lookups answered by assumption, writes answered with placeholders.

`--assume missing` (the default) answers every search with no hit, so creation paths show;
`--assume existing` answers with a placeholder id such as "{person:u-1}". Records that an earlier
event would create get the same placeholder, and the identity cache (`IdentityStore`) makes
later events of the same run treat them as existing, so the plan reads like the real replay.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Literal

from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import SEARCH_KEY
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse

Assume = Literal["missing", "existing"]
ENTITY = {"person": "person", "organization": "org"}
# The answer to every search under --assume missing: one value, since plans only read answers.
NO_HITS = ApiResponse(status=200, data=None)
# What a POST creates, by `ApiRequest.key`: its placeholder's kind (a serial names track's).
CREATED = {
    "POST /api/v2/persons": "person",
    "POST /api/v2/organizations": "org",
    "POST /v1/leads": "lead",
    "POST /api/v2/deals": "deal",
    "POST /api/v2/activities": "activity",
    "POST /v1/notes": "note",
}
# A person's records listed offline: none (v1 listings page by offset, v2 by cursor).
NONE_V1 = ApiResponse(status=200, data=[], additional_data={"pagination": {}})
NONE_V2 = ApiResponse(status=200, data=[], additional_data={"next_cursor": None})
# The answers that are the same whatever the request, by "METHOD endpoint" (`ApiRequest.key`).
LISTED = {f"GET {path}": NONE_V1 for path in ("/v1/leads", "/v1/leads/archived", "/v1/notes")}
LISTED.update(
    {
        f"GET /api/v2/{kind}": NONE_V2
        for kind in ("persons", "organizations", "deals", "deals/archived", "activities")
    }
)
CANNED: Mapping[Assume, Mapping[str, ApiResponse]] = {
    "missing": {**LISTED, SEARCH_KEY: NO_HITS},
    "existing": LISTED,
}


class OfflineResponder:
    """`canned` holds the answers that need no request read: the Recorder (core/preview.py)
    answers those without a call."""

    def __init__(self, config: PlanConfig, assume: Assume = "missing") -> None:
        self.config = config
        self.canned = CANNED[assume]
        self._serial = itertools.count(1)

    def __call__(self, request: ApiRequest) -> ApiResponse:
        key = request.key
        if (canned := self.canned.get(key)) is not None:
            return canned
        if key == SEARCH_KEY:  # --assume existing
            entity = ENTITY.get(str(request.query.get("entity_type")), "person")
            placeholder = f"{{{entity}:{request.query.get('term')}}}"
            return ApiResponse(status=200, data=[{"id": placeholder, "name": placeholder}])
        body = request.body or {}
        if (kind := CREATED.get(key)) is None:  # updates, merges, single-record reads: echoed
            return ApiResponse(status=200, data={"id": request.path.rsplit("/", 1)[-1], **body})
        if kind != "person" and kind != "org":
            return ApiResponse(status=201, data={"id": f"{{{kind}:{next(self._serial)}}}"})
        field_key = self.config.user_id_field if kind == "person" else self.config.group_id_field
        custom = body.get("custom_fields") or {}
        identity = (
            custom.get(field_key) if type(custom) is dict or isinstance(custom, Mapping) else None
        )
        label = identity if identity is not None else next(self._serial)
        return ApiResponse(status=201, data={"id": f"{{{kind}:{label}}}", **body})


class LiveLookups:
    """`dry-run --lookups`: reads go to Pipedrive, writes (and reads of records that a write in
    this dry-run would have made, named by placeholder) are answered offline. It has no
    `canned` answers: every read goes to Pipedrive.

    A write that gives an existing record another identity (an update setting its identity
    field: an external id with another userId, a re-key) is not made, so Pipedrive still finds
    the record under its old one: a search for that one leaves it out (`moved`), as the
    replay's search would not find it."""

    def __init__(
        self, offline: OfflineResponder, live: Callable[[ApiRequest], ApiResponse]
    ) -> None:
        self.offline = offline
        self.live = live
        config = offline.config
        # A PATCH path's collection: the kind of record and its identity field.
        self.fields = {
            "persons": ("person", config.user_id_field),
            "organizations": ("org", config.group_id_field),
        }
        self.moved: dict[tuple[str, str], str] = {}  # (kind, id): the identity a write gave it

    def __call__(self, request: ApiRequest) -> ApiResponse:
        placeholder = "{" in request.path or any("{" in str(v) for v in request.query.values())
        if request.is_write or placeholder:
            if request.method == "PATCH":
                self.note_moved(request)
            return self.offline(request)
        answer = self.live(request)
        if self.moved and request.key == SEARCH_KEY and answer.ok and type(answer.data) is list:
            kind = ENTITY.get(str(request.query.get("entity_type")), "person")
            term = str(request.query.get("term"))
            moved = self.moved
            hits = [hit for hit in answer.data if moved.get((kind, hit_id(hit)), term) == term]
            answer = ApiResponse(
                status=answer.status, data=hits, additional_data=answer.additional_data
            )
        return answer

    def note_moved(self, request: ApiRequest) -> None:
        _, collection, record = request.path.rsplit("/", 2)
        custom = (request.body or {}).get("custom_fields")
        if collection in self.fields and isinstance(custom, Mapping):
            kind, field_key = self.fields[collection]
            if field_key and (identity := custom.get(field_key)) is not None:
                self.moved[(kind, record)] = str(identity)


def hit_id(hit: object) -> str:
    """An itemSearch hit's id as text (both shapes, SPEC 1); "" for a hit of neither."""
    item = hit.get("item", hit) if isinstance(hit, Mapping) else None
    return str(item.get("id")) if isinstance(item, Mapping) else ""
