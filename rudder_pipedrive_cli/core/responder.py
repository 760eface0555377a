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

from rudder_pipedrive_cli.core.plans.alias import MERGE
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import SEARCH_KEY
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, reply

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
MERGED = "PUT " + MERGE  # a merge's `ApiRequest.key`
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
            return reply(200, [{"id": placeholder, "name": placeholder}])
        body = request.body or {}
        if key == MERGED:  # the survivor, as v1 answers; its organization unknown here: no
            # org_id, so the plan takes the one its cache knows (plans/common.joined_org)
            merged = request.path.rsplit("/", 2)[-2]  # /v1/persons/{id}/merge
            survivor = {"id": body.get("merge_with_id"), "merge_what_id": merged}
            return reply(200, survivor)
        if (kind := CREATED.get(key)) is None:  # updates, single-record reads: echoed
            return reply(200, {"id": request.path.rsplit("/", 1)[-1], **body})
        if kind != "person" and kind != "org":
            return reply(201, {"id": f"{{{kind}:{next(self._serial)}}}"})
        field_key = self.config.user_id_field if kind == "person" else self.config.group_id_field
        custom = body.get("custom_fields") or {}
        identity = (
            custom.get(field_key) if type(custom) is dict or isinstance(custom, Mapping) else None
        )
        label = identity if identity is not None else next(self._serial)
        return reply(201, {"id": f"{{{kind}:{label}}}", **body})


class LiveLookups:
    """`dry-run --lookups`: reads go to Pipedrive, writes (and reads of records that a write in
    this dry-run would have made, named by placeholder) are answered offline. It has no
    `canned` answers: every read goes to Pipedrive.

    A write that gives an existing record another identity (an update setting its identity
    field: an external id with another userId, a re-key) is not made, so Pipedrive still finds
    the record under its old one: a search for that one leaves it out (`moved`), as the
    replay's search would not find it, and a search for the new one adds it (`given`), as a
    record this dry-run created is added to a search for its identity: the replay's search
    finds those. A person a merge takes away is found under no identity (the replay's
    search does not find it)."""

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
        # (kind, identity): the records a write gave it, in the order given (a dict as a set).
        self.given: dict[tuple[str, str], dict[str, None]] = {}

    def __call__(self, request: ApiRequest) -> ApiResponse:
        placeholder = "{" in request.path or any("{" in str(v) for v in request.query.values())
        if request.is_write or placeholder:
            answer = self.offline(request)
            if request.is_write:
                self.note_written(request, answer)
            return answer
        answer = self.live(request)
        data = answer.data
        written = self.moved or self.given
        if written and request.key == SEARCH_KEY and answer.ok and type(data or []) is list:
            kind = ENTITY.get(str(request.query.get("entity_type")), "person")
            term = str(request.query.get("term"))
            moved = self.moved
            hits = [h for h in data or () if moved.get((kind, hit_id(h)), term) == term]
            seen = {hit_id(hit) for hit in hits}
            for record in self.given.get((kind, term), ()):
                if moved.get((kind, record), term) == term and record not in seen:
                    hits.append({"id": int(record) if record.isdigit() else record})
            if hits != (data or []):
                answer = ApiResponse(
                    status=answer.status, data=hits, additional_data=answer.additional_data
                )
        return answer

    def note_written(self, request: ApiRequest, answer: ApiResponse) -> None:
        """The identity a create or an update gives the record it writes; a merge, none."""
        method, parts = request.method, request.path.rsplit("/", 2)
        if method == "PUT" and parts[-1] == "merge":  # /v1/persons/{id}/merge: it is gone
            self.moved[("person", parts[-2])] = GONE
            return
        if method == "POST" and isinstance(answer.data, Mapping):
            collection, record = parts[-1], str(answer.data.get("id"))
        elif method == "PATCH":
            collection, record = parts[-2], parts[-1]
        else:
            return
        custom = (request.body or {}).get("custom_fields")
        if collection in self.fields and isinstance(custom, Mapping):
            kind, field_key = self.fields[collection]
            if field_key and (identity := custom.get(field_key)) is not None:
                identity = str(identity)
                if method == "PATCH":  # a created record is under its own (the placeholder's)
                    self.moved[(kind, record)] = identity
                self.given.setdefault((kind, identity), {})[record] = None


GONE = ""  # the identity of a person merged away: no search's term (a search needs one)


def hit_id(hit: object) -> str:
    """An itemSearch hit's id as text (both shapes, SPEC 1); "" for a hit of neither."""
    item = hit.get("item", hit) if isinstance(hit, Mapping) else None
    return str(item.get("id")) if isinstance(item, Mapping) else ""
