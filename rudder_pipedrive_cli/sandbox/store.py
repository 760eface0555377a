"""The sandbox company's records: persons, organizations, leads, merges, and the search index.

Pure state: every operation takes `now` (epoch seconds) and raises `ApiError` for what Pipedrive
refuses. Bodies arrive already checked against the request schemas (see routes); the store checks
what needs the data: custom field keys and types, links to other records, merges.

The search index lags: each write queues a snapshot of the record's searchable values that becomes
visible `index_lag_ms` later; until then search sees the previous snapshot (or nothing).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
import uuid
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any

from rudder_pipedrive_cli.sandbox.replies import ApiError
from rudder_pipedrive_cli.sandbox.sales import Sales
from rudder_pipedrive_cli.sandbox.schemas import REQUEST_SCHEMAS
from rudder_pipedrive_cli.sandbox.seed import (
    CC_EMAIL,
    DEFAULT_VISIBLE_TO,
    LEAD_LABEL_IDS,
    USER_ID,
    Entity,
    Field,
    custom_fields,
)
from rudder_pipedrive_cli.sandbox.times import rfc3339, v1_time
from rudder_pipedrive_cli.sandbox.validation import (
    check_custom_fields,
    check_field_value,
    check_visibility,
    json_type,
    looks_like_field_key,
    parse_rfc3339,
)

Record = dict[str, Any]
Snapshot = Mapping[str, Any]

# v2 properties a person or organization body may set that the store keeps as given.
_PASSTHROUGH = {
    "person": ("postal_address", "notes", "im", "birthday", "job_title", "marketing_status"),
    "organization": (
        "address",
        "website",
        "linkedin",
        "industry",
        "annual_revenue",
        "employee_count",
    ),
}
# The survivor's identity and names are its own even where empty (SPEC 1: its data wins).
_KEPT_ON_MERGE = frozenset({"id", "name", "first_name", "last_name", "add_time", "update_time"})
# A lead keeps every property addLead and updateLead declare as given (after the checks in
# `Store._apply_lead`).
_LEAD_KEPT = frozenset(
    name
    for op in ("POST /v1/leads", "PATCH /v1/leads/{id}")
    for name in REQUEST_SCHEMAS[op]["properties"]
)


def _contact_list(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Emails, phones and instant messaging accounts as Pipedrive keeps them: the first is
    primary unless one says so."""
    items = list(items)
    any_primary = any(item.get("primary") for item in items)
    return [
        {
            "value": item.get("value", ""),
            "primary": bool(item.get("primary")) if any_primary else i == 0,
            "label": item.get("label", "work"),
        }
        for i, item in enumerate(items)
    ]


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _search_terms(value: Any) -> tuple[str, ...]:
    """The strings an exact search term must equal to find `value`."""
    if isinstance(value, bool) or value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, int | float):
        terms = {repr(value) if isinstance(value, float) else str(value)}
        if float(value).is_integer():
            terms |= {str(int(value)), f"{float(value)}"}
        return tuple(sorted(terms))
    if isinstance(value, Mapping) and "value" in value:
        return _search_terms(value["value"])
    return ()


class Store:
    def __init__(self, *, index_lag_ms: int = 0, plan: str = "unlimited") -> None:
        self.index_lag_ms = index_lag_ms
        self.plan = plan  # the company's Pipedrive plan (core.costs.PLANS), as SandboxOptions'
        self.clear()

    def clear(self) -> None:
        # Every sandbox, and every reset one, is an account of its own (a new company id): rpd's
        # state keys its namespaces on the account (SPEC 5), so a fresh sandbox never inherits
        # what a state file remembers of an earlier one on the same port and token.
        self.company_id = random.SystemRandom().randrange(10_000, 2**31)
        self.persons: dict[int, Record] = {}
        self.organizations: dict[int, Record] = {}
        self.leads: dict[str, Record] = {}
        self.merged_into: dict[int, int] = {}
        self.merges: list[dict[str, int]] = []
        self.sales = Sales(self)
        self._next_id = {"person": 1, "organization": 1}
        # Lead ids are UUIDs from a fixed seed: a fresh sandbox always hands out the same ones.
        self._uuids = random.Random(0)
        self._pending: list[tuple[float, int, Entity, int, Snapshot | None]] = []
        self._seq = itertools.count()
        self._visible: dict[tuple[Entity, int], Snapshot] = {}
        # (entity, field code, term) -> ids: exact searches are lookups, not scans.
        self._exact: dict[tuple[Entity, str, str], set[int]] = {}

    # ---- introspection ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "persons": list(self.persons.values()),
                "organizations": list(self.organizations.values()),
                "leads": list(self.leads.values()),
                "merges": self.merges,
                "deals": list(self.sales.deals.values()),
                "activities": list(self.sales.activities.values()),
                "notes": list(self.sales.notes.values()),
            }
        )

    def check_links(self, body: Mapping[str, Any]) -> None:
        """Every id a body links to names a record the company has."""
        tables: dict[str, tuple[str, Container[Any]]] = {
            "person_id": ("person", self.persons),
            "org_id": ("organization", self.organizations),
            "organization_id": ("organization", self.organizations),
            "deal_id": ("deal", self.sales.deals),
            "lead_id": ("lead", self.leads),
            "owner_id": ("user", {USER_ID}),
            "user_id": ("user", {USER_ID}),
        }
        for key, (what, table) in tables.items():
            value = body.get(key)
            if value is not None and value not in table:
                raise ApiError(400, f"{key}: {what} {value} not found")

    # ---- persons and organizations ----------------------------------------------------------

    def table(self, entity: Entity) -> dict[int, Record]:
        return self.persons if entity == "person" else self.organizations

    def get(self, entity: Entity, record_id: int) -> Record:
        record = self.table(entity).get(record_id)
        if record is not None:
            return record
        if entity == "person" and record_id in self.merged_into:
            survivor = self.merged_into[record_id]
            raise ApiError(410, f"Person {record_id} was merged into person {survivor}")
        raise ApiError(404, f"{entity.capitalize()} not found")

    def create(self, entity: Entity, body: Mapping[str, Any], now: float) -> Record:
        if not body.get("name"):
            raise ApiError(400, "name: is required")
        fields = custom_fields(entity)
        record: Record = {
            "id": self._next_id[entity],
            "name": "",
            "owner_id": USER_ID,
            "add_time": self._add_time(body, now),
            "update_time": rfc3339(now),
            "is_deleted": False,
            "visible_to": DEFAULT_VISIBLE_TO,
            "label_ids": [],
            "custom_fields": dict.fromkeys(fields),
        }
        # What a v2 answer always holds, null until set (the contact sync fields of a person,
        # "included if contact sync is enabled", only once given).
        if entity == "person":
            record |= {"first_name": "", "last_name": "", "org_id": None, "picture_id": None}
            record |= {"emails": [], "phones": []}
        else:
            record |= dict.fromkeys(_PASSTHROUGH["organization"])
        self._apply(entity, record, body)
        self._next_id[entity] += 1
        self.table(entity)[record["id"]] = record
        self._reindex(entity, record, now)
        return record

    def update(self, entity: Entity, record_id: int, body: Mapping[str, Any], now: float) -> Record:
        record = self.get(entity, record_id)
        if "name" in body and not body["name"]:
            raise ApiError(400, "name: must not be empty")
        self._apply(entity, record, body)
        record["update_time"] = rfc3339(now)
        self._reindex(entity, record, now)
        return record

    def _add_time(self, body: Mapping[str, Any], now: float) -> str:
        if "add_time" not in body:
            return rfc3339(now)
        parsed = parse_rfc3339(body["add_time"])
        if parsed is None:
            raise ApiError(400, "add_time: must be RFC 3339 date and time (2020-02-02T00:23:09Z)")
        return rfc3339(parsed.timestamp())

    def _apply(self, entity: Entity, record: Record, body: Mapping[str, Any]) -> None:
        """Checks `body` against the company's records and fields, then writes it into `record`."""
        problem = check_visibility(body) or check_custom_fields(
            custom_fields(entity), body.get("custom_fields") or {}
        )
        if problem:
            raise ApiError(400, problem)
        self.check_links(body)
        if body.get("label_ids"):  # the sandbox company has no person or organization labels
            raise ApiError(400, f"label_ids: unknown {entity} label {body['label_ids'][0]}")
        for key in ("name", "owner_id", "visible_to", "label_ids", *_PASSTHROUGH[entity]):
            if key in body:
                record[key] = copy.deepcopy(body[key])
        if entity == "person":
            if "name" in body:
                first, _, last = body["name"].partition(" ")
                record["first_name"], record["last_name"] = first, last
            if "org_id" in body:
                record["org_id"] = body["org_id"]
            for key in ("emails", "phones", "im"):
                if key in body:
                    record[key] = _contact_list(body[key])
        record["custom_fields"].update(copy.deepcopy(body.get("custom_fields") or {}))

    # ---- merges --------------------------------------------------------------------------

    def merge(self, merged_id: int, survivor_id: int, now: float) -> Record:
        merged = self.get("person", merged_id)
        if merged_id == survivor_id:
            raise ApiError(400, "merge_with_id: cannot merge a person with itself")
        try:
            survivor = self.get("person", survivor_id)
        except ApiError as err:
            raise ApiError(400, f"merge_with_id: {err.message}") from None
        for key, value in merged.items():
            if key == "custom_fields":
                for field, field_value in value.items():
                    if _is_empty(survivor["custom_fields"].get(field)):
                        survivor["custom_fields"][field] = copy.deepcopy(field_value)
            elif key not in _KEPT_ON_MERGE and _is_empty(survivor.get(key)):
                survivor[key] = copy.deepcopy(value)
        survivor["update_time"] = rfc3339(now)
        del self.persons[merged_id]
        self.merged_into[merged_id] = survivor_id
        for merged_from, into in self.merged_into.items():
            if into == merged_id:
                self.merged_into[merged_from] = survivor_id
        self.merges.append({"merged_id": merged_id, "survivor_id": survivor_id})
        self.sales.reassign_person(merged_id, survivor_id, now)
        self._queue("person", merged_id, None, now)
        self._reindex("person", survivor, now)
        return survivor

    # ---- leads ---------------------------------------------------------------------------

    def create_lead(self, body: Mapping[str, Any], now: float) -> Record:
        lead: Record = {
            "id": str(uuid.UUID(int=self._uuids.getrandbits(128), version=4)),
            "title": body["title"],
            "owner_id": USER_ID,
            "creator_id": USER_ID,
            "label_ids": [],
            "person_id": None,
            "organization_id": None,
            "source_name": "API",
            "origin": "API",
            "origin_id": None,
            "channel": None,
            "channel_id": None,
            "source_deal_id": None,  # made here, not converted from a deal
            "is_archived": False,
            "was_seen": False,
            "value": None,
            "expected_close_date": None,
            "next_activity_id": None,
            "add_time": v1_time(now),
            "update_time": v1_time(now),
            "visible_to": str(DEFAULT_VISIBLE_TO),
            "cc_email": CC_EMAIL,
        }
        self._apply_lead(lead, body)
        self.leads[lead["id"]] = lead
        return lead

    def get_lead(self, lead_id: str) -> Record:
        lead = self.leads.get(lead_id)
        if lead is None:
            raise ApiError(404, "Lead not found")
        return lead

    def update_lead(self, lead_id: str, body: Mapping[str, Any], now: float) -> Record:
        """updateLead: only the given properties change; `is_archived` archives or restores."""
        lead = self.get_lead(lead_id)
        changed = copy.deepcopy(lead)
        self._apply_lead(changed, body)
        changed["update_time"] = v1_time(now)
        self.leads[lead_id] = changed
        return changed

    def _apply_lead(self, lead: Record, body: Mapping[str, Any]) -> None:
        """Checks `body` against the company's records and fields, then writes it into `lead`."""
        if "title" in body and not body["title"]:  # addLead's and updateLead's alike
            raise ApiError(400, "title: a lead needs a title")
        person_id = body.get("person_id", lead["person_id"])
        org_id = body.get("organization_id", lead["organization_id"])
        if person_id is None and org_id is None:
            raise ApiError(400, "A lead must be linked to a person or an organization")
        self.check_links(body)
        unknown_labels = [i for i in body.get("label_ids") or () if i not in LEAD_LABEL_IDS]
        if unknown_labels:
            raise ApiError(400, f"label_ids: unknown lead label {unknown_labels[0]}")
        custom = _lead_custom_fields(body)
        lead |= {key: copy.deepcopy(value) for key, value in body.items() if key in _LEAD_KEPT}
        # "If a custom field's value hasn't been set for the lead, it won't appear" (v1.yaml):
        # null clears one, so it leaves the lead.
        for key, value in custom.items():
            if value is None:
                lead.pop(key, None)
            else:
                lead[key] = value

    # ---- search --------------------------------------------------------------------------

    def search(
        self, entity: Entity, field: Field, term: str, match: str, now: float
    ) -> list[Record]:
        """Ids and names of records whose indexed `field` matches `term` (case sensitive)."""
        self._catch_up(now)
        if match == "exact":
            found = self._exact.get((entity, field.code, term), set())
        else:
            matches = _MATCHERS[match]
            found = {
                record_id
                for (kind, record_id), snapshot in self._visible.items()
                if kind == entity
                and any(matches(t, term) for t in _search_terms(snapshot.get(field.code)))
            }
        return [
            {"id": record_id, "name": self._visible[(entity, record_id)].get("name", "")}
            for record_id in sorted(found)
        ]

    def _reindex(self, entity: Entity, record: Record, now: float) -> None:
        snapshot = {"name": record["name"], **record["custom_fields"]}
        self._queue(entity, record["id"], snapshot, now)

    def _queue(self, entity: Entity, record_id: int, snapshot: Snapshot | None, now: float) -> None:
        visible_at = now + self.index_lag_ms / 1000.0
        heapq.heappush(
            self._pending, (visible_at, next(self._seq), entity, record_id, copy.deepcopy(snapshot))
        )
        self._catch_up(now)

    def _catch_up(self, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, _, entity, record_id, snapshot = heapq.heappop(self._pending)
            for key in _index_keys(entity, self._visible.pop((entity, record_id), {})):
                self._exact[key].discard(record_id)
            if snapshot is not None:
                self._visible[(entity, record_id)] = snapshot
                for key in _index_keys(entity, snapshot):
                    self._exact.setdefault(key, set()).add(record_id)


def _index_keys(entity: Entity, snapshot: Snapshot) -> list[tuple[Entity, str, str]]:
    return [
        (entity, code, term) for code, value in snapshot.items() for term in _search_terms(value)
    ]


# The partial matches, which scan the index; an exact one looks its term up (`Store._exact`).
_MATCHERS: Mapping[str, Callable[[str, str], bool]] = {
    # "The search is case sensitive" (v2.yaml, searchItemByField), whatever the match.
    "beginning": lambda value, term: value.startswith(term),
    "middle": lambda value, term: term in value,
}
MATCH_MODES = ("exact", *_MATCHERS)


def _lead_custom_fields(body: Mapping[str, Any]) -> Record:
    """The custom deal fields of a lead body, checked: v1 leads take them as top-level keys, a
    monetary one flat: the amount under its key, the currency under `<key>_currency` (v1.yaml,
    "Lead fields")."""
    deal_fields = custom_fields("deal")
    found: Record = {}
    for key, value in body.items():
        field_key = key.removesuffix("_currency")
        if not looks_like_field_key(field_key):
            continue
        field = deal_fields.get(field_key)
        if field is None or (key != field_key and field.type != "monetary"):
            raise ApiError(400, f"{key}: unknown deal field")
        if field.type == "monetary":
            problem = _flat_monetary(key, value, currency=key != field_key)
        else:
            problem = check_field_value(field, value, key, v1=True)
        if problem:
            raise ApiError(400, problem)
        found[key] = copy.deepcopy(value)
    return found


def _flat_monetary(key: str, value: Any, *, currency: bool) -> str | None:
    """A monetary deal field on a v1 lead: a number under its key, a currency code beside it."""
    if value is None:
        return None
    kind = json_type(value)
    if currency:
        return None if kind == "string" else f"{key}: expected a currency code (string), got {kind}"
    return None if kind in ("integer", "number") else f"{key}: expected a number, got {kind}"
