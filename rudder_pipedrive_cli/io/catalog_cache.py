"""The field catalog kept in the replay state, so dry-run can coerce values offline and a send
whose listing fails can still use the last one it saw."""

from __future__ import annotations

from typing import Any, Protocol

from rudder_pipedrive_cli.core.catalog import ENTITIES, Catalog
from rudder_pipedrive_cli.core.plans.base import FieldInfo
from rudder_pipedrive_cli.io.state import CachedFields

LABELS = "lead_labels"


class FieldStore(Protocol):
    def get_fields(self, entity: str) -> CachedFields | None: ...

    def put_fields(self, entity: str, payload: Any) -> None: ...


def _field_json(info: FieldInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "name": info.name,
        "field_type": info.field_type,
        "options": dict(info.options),
        "is_custom": info.is_custom,
    }


def save_catalog(store: FieldStore, catalog: Catalog) -> None:
    for entity, fields in catalog.fields.items():
        store.put_fields(entity, [_field_json(info) for info in fields])
    store.put_fields(LABELS, dict(catalog.labels))


def load_catalog(store: FieldStore) -> Catalog | None:
    """The cached catalog, or None when no listing was ever saved."""
    fields: dict[str, tuple[FieldInfo, ...]] = {}
    for entity in ENTITIES:
        cached = store.get_fields(entity)
        if cached is None or not isinstance(cached.payload, list):
            continue
        fields[entity] = tuple(
            FieldInfo(
                key=str(item["key"]),
                name=str(item["name"]),
                field_type=str(item["field_type"]),
                options={str(k): int(v) for k, v in dict(item.get("options") or {}).items()},
                is_custom=bool(item.get("is_custom", True)),
            )
            for item in cached.payload
            if isinstance(item, dict)
        )
    if not fields:
        return None
    labels = store.get_fields(LABELS)
    found = labels.payload if labels is not None and isinstance(labels.payload, dict) else {}
    return Catalog(fields=fields, labels={str(k): str(v) for k, v in found.items()})
