"""The field catalog kept in the replay state, so dry-run can coerce values offline and a send
whose listing fails can still use the last one it saw; with the pipelines, stages and activity
types track rules name, when they were listed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from rudder_pipedrive_cli.core.catalog import ENTITIES, Catalog, Stage
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.plans.base import LABELS, FieldInfo

PIPELINES, STAGES, ACTIVITY_TYPES = "pipelines", "stages", "activity_types"


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedFields:
    """A listing kept in the state (its `fields` table): when it was fetched, and what it held."""

    fetched_at: str
    payload: Any


class FieldStore(Protocol):
    def get_fields(self, entity: str) -> CachedFields | None: ...

    def put_fields(self, entity: str, payload: Any) -> None: ...


def save_catalog(store: FieldStore, catalog: Catalog) -> None:
    for entity, fields in catalog.fields.items():
        store.put_fields(entity, [asdict(info) for info in fields])
    if LABELS not in catalog.failed:
        store.put_fields(LABELS, dict(catalog.labels))
    if catalog.pipelines is not None:
        store.put_fields(PIPELINES, [{"id": i, "name": n} for i, n in catalog.pipelines.items()])
    if catalog.stages is not None:
        store.put_fields(STAGES, [asdict(stage) for stage in catalog.stages])
    if catalog.activity_types is not None:
        store.put_fields(ACTIVITY_TYPES, dict(catalog.activity_types))


def _listed(store: FieldStore, name: str) -> list[dict[str, Any]] | None:
    """The objects of a listing saved as a list, or None when none was saved."""
    cached = store.get_fields(name)
    if cached is None or not isinstance(cached.payload, list):
        return None
    return [item for item in cached.payload if isinstance(item, dict)]


def _names(store: FieldStore, name: str) -> dict[str, str] | None:
    """A listing saved as a table of names, or None when none was saved."""
    cached = store.get_fields(name)
    if cached is None or not isinstance(cached.payload, dict):
        return None
    return {str(k): str(v) for k, v in cached.payload.items()}


def load_catalog(store: FieldStore) -> Catalog | None:
    """The cached catalog, or None when no listing was ever saved."""
    fields: dict[str, tuple[FieldInfo, ...]] = {}
    for entity in ENTITIES:
        listed = _listed(store, entity)
        if listed is None:
            continue
        fields[entity] = tuple(
            FieldInfo(
                key=str(item["key"]),
                name=str(item["name"]),
                field_type=str(item["field_type"]),
                options={str(k): int(v) for k, v in dict(item.get("options") or {}).items()},
                is_custom=bool(item.get("is_custom", True)),
            )
            for item in listed
        )
    if not fields:
        return None
    pipelines = _listed(store, PIPELINES)
    stages = _listed(store, STAGES)
    return Catalog(
        fields=fields,
        labels=_names(store, LABELS) or {},
        pipelines=None if pipelines is None else {int(p["id"]): str(p["name"]) for p in pipelines},
        stages=None
        if stages is None
        else tuple(
            Stage(id=int(s["id"]), name=str(s["name"]), pipeline_id=int(s["pipeline_id"]))
            for s in stages
        ),
        activity_types=_names(store, ACTIVITY_TYPES),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Sourced:
    """The catalog a run goes by, and why it is not a live one (`failure`: the listing failed)."""

    catalog: Catalog | None  # None: neither listed now nor saved by an earlier send
    live: bool = False
    failure: PlanFailure | None = None
    # The listings of a live catalog that failed and were taken from `store` instead, by name.
    saved: Mapping[str, PlanFailure] = field(default_factory=dict)


def live_or_cached(
    fetch: Callable[[], Catalog] | None, store: FieldStore | None, *, keep: bool
) -> Sourced:
    """The account's catalog, live or cached, decided here only: listed now by `fetch` (kept in
    `store` when `keep`: a send's state), else, when the listing failed or there is none to make
    (`fetch` None: an offline dry-run), the one `store` saved last, else none; a live one whose
    listings failed in part takes those from `store` (`with_saved`)."""
    failure = None
    if fetch is not None:
        try:
            catalog = fetch()
        except PlanFailure as error:
            failure = error
        else:
            if keep and store is not None:
                save_catalog(store, catalog)
            if catalog.failed and store is not None:
                return with_saved(catalog, store)
            return Sourced(catalog=catalog, live=True)
    cached = load_catalog(store) if store is not None else None
    return Sourced(catalog=cached, failure=failure)


def with_saved(live: Catalog, store: FieldStore) -> Sourced:
    """`live` with each listing that failed (`Catalog.failed`) taken from `store` when an
    earlier send saved it; those that were are `Sourced.saved`."""
    cached = load_catalog(store) or Catalog()
    fields = {e: f for e, f in cached.fields.items() if e in live.failed}
    sales = {
        name: getattr(cached, name)
        for name in (PIPELINES, STAGES, ACTIVITY_TYPES)
        if name in live.failed and getattr(cached, name) is not None
    }
    labels = _names(store, LABELS) if LABELS in live.failed else None
    saved = {*fields, *sales, *([LABELS] if labels is not None else [])}
    catalog = replace(
        live,
        fields={**live.fields, **fields},
        labels=live.labels if labels is None else labels,
        failed={name: f for name, f in live.failed.items() if name not in saved},
        **sales,
    )
    found = {name: f for name, f in live.failed.items() if name in saved}
    return Sourced(catalog=catalog, live=True, saved=found)
