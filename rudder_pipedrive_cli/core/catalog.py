"""The account's field listings and lead labels, fetched once per run, as a pure exchange.

`fetch_catalog()` yields the listing requests (cursor-paged v2 field listings, v1 lead labels) and
returns a `Catalog`. With it, the plans know each mapped field's type (values are coerced to it),
field names in `[fields.*]` resolve to keys, and lead label names resolve to ids.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse

ENTITIES = ("persons", "organizations", "leads")
FIELD_ENDPOINTS: Mapping[str, str] = {
    "persons": "/api/v2/personFields",
    "organizations": "/api/v2/organizationFields",
    "leads": "/api/v2/dealFields",  # leads use deal fields
}
LABELS_ENDPOINT = "/v1/leadLabels"
PAGE_SIZE = 500  # the v2 listings' maximum
SEARCHABLE_TYPES = frozenset(
    {"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"}
)

Exchange = Generator[ApiRequest, ApiResponse, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    fields: Mapping[str, tuple[FieldInfo, ...]] = field(default_factory=dict)  # by entity
    labels: Mapping[str, str] = field(default_factory=dict)  # label name -> label id

    def field(self, entity: str, key_or_name: str) -> FieldInfo | None:
        """A field by its key, else by its name as Pipedrive shows it."""
        listed = self.fields.get(entity, ())
        return next((f for f in listed if f.key == key_or_name), None) or next(
            (f for f in listed if f.name == key_or_name), None
        )

    def apply(self, config: PlanConfig) -> PlanConfig:
        """The config with field names resolved to keys, field types and lead labels known."""
        person = self._resolve("persons", config.person_fields)
        org = self._resolve("organizations", config.org_fields)
        lead = self._resolve("leads", config.lead_fields)
        types = {f.key: f for entity in ENTITIES for f in self.fields.get(entity, ())}
        return replace(
            config,
            person_fields=person,
            org_fields=org,
            lead_fields=lead,
            field_types=types,
            lead_labels={**self.labels, **config.lead_labels},
        )

    def unknown_keys(self, config: PlanConfig) -> list[str]:
        """A line per mapped field that the account does not have (its values would be lost)."""
        problems = []
        tables = (
            ("persons", config.person_fields),
            ("organizations", config.org_fields),
            ("leads", config.lead_fields),
        )
        for entity, mapping in tables:
            for trait, key in mapping.items():
                if self.field(entity, key) is None:
                    problems.append(
                        f"fields.{entity}.{trait} = {key!r}: the account has no such "
                        f"{entity[:-1] if entity != 'leads' else 'deal'} field "
                        "(run `rpd map-fields` to list them)"
                    )
        return problems

    def _resolve(self, entity: str, mapping: Mapping[str, str]) -> dict[str, str]:
        resolved = {}
        for trait, key in mapping.items():
            info = self.field(entity, key)
            resolved[trait] = info.key if info is not None else key
        return resolved


def is_searchable(info: FieldInfo) -> bool:
    return info.field_type in SEARCHABLE_TYPES


def _expect_ok(response: ApiResponse, what: str) -> Any:
    if not response.ok:
        raise PlanFailure(
            f"listing {what} failed: HTTP {response.status} {response.error}".rstrip(),
            stage="list fields",
            status=response.status or None,
            retryable=response.status == 0 or response.status >= 500,
        )
    return response.data


def field_info(item: Mapping[str, Any]) -> FieldInfo:
    options = {
        str(option.get("label")): option["id"]
        for option in item.get("options") or ()
        if isinstance(option, Mapping) and isinstance(option.get("id"), int)
    }
    return FieldInfo(
        key=str(item.get("field_code", "")),
        name=str(item.get("field_name", "")),
        field_type=str(item.get("field_type", "")),
        options=options,
        is_custom=bool(item.get("is_custom_field", False)),
    )


def fetch_fields(entity: str) -> Generator[ApiRequest, ApiResponse, tuple[FieldInfo, ...]]:
    endpoint = FIELD_ENDPOINTS[entity]
    found: list[FieldInfo] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {"limit": PAGE_SIZE}
        if cursor:
            query["cursor"] = cursor
        response = yield ApiRequest(
            method="GET",
            path=endpoint,
            endpoint=endpoint,
            stage="list fields",
            query=query,
            note=f"list {entity} fields",
        )
        data = _expect_ok(response, f"{entity} fields")
        found.extend(field_info(item) for item in data or () if isinstance(item, Mapping))
        extra = response.additional_data if isinstance(response.additional_data, Mapping) else {}
        cursor = extra.get("next_cursor")
        if not cursor:
            return tuple(found)


def fetch_labels() -> Generator[ApiRequest, ApiResponse, dict[str, str]]:
    response = yield ApiRequest(
        method="GET",
        path=LABELS_ENDPOINT,
        endpoint=LABELS_ENDPOINT,
        stage="list lead labels",
        note="list lead labels",
    )
    data = _expect_ok(response, "lead labels")
    return {
        str(label["name"]): str(label["id"])
        for label in data or ()
        if isinstance(label, Mapping) and "name" in label and "id" in label
    }


def fetch_catalog(
    entities: tuple[str, ...] = ENTITIES, *, labels: bool = True
) -> Generator[ApiRequest, ApiResponse, Catalog]:
    fields = {}
    for entity in entities:
        fields[entity] = yield from fetch_fields(entity)
    found_labels = (yield from fetch_labels()) if labels else {}
    return Catalog(fields=fields, labels=found_labels)
