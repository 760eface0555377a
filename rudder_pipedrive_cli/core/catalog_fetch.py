"""Fetching the `Catalog`, once per run, as a pure exchange: `fetch_catalog()` yields the listing
requests (cursor-paged v2 field listings, v1 lead labels, and the sales listings track rules
name things from) and returns the catalog."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from rudder_pipedrive_cli.core.catalog import ENTITIES, Catalog, Stage
from rudder_pipedrive_cli.core.driver import drive_exchange
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.plans.base import LABELS, FieldInfo
from rudder_pipedrive_cli.core.plans.common import Pages, Step, probe_steps
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.core.rules import TrackRule, TrackRules

FIELD_ENDPOINTS: Mapping[str, str] = {
    "persons": "/api/v2/personFields",
    "organizations": "/api/v2/organizationFields",
    "leads": "/api/v2/dealFields",  # leads use deal fields
}
LABELS_ENDPOINT = "/v1/leadLabels"
PAGE_SIZE = 500  # the v2 listings' maximum
T = TypeVar("T")


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


def fetch_listing(
    endpoint: str, what: str, *, page_size: int = PAGE_SIZE, stage: str = "list fields"
) -> Step[list[Mapping[str, Any]]]:
    """Every object of a listing, through the plans' one paged-listing helper: v2 ones follow
    `next_cursor` to the last page; v1 ones (activity types, lead labels) are one page, one
    request without a parameter (Pipedrive's OpenAPI gives them none), whatever it answers."""

    def objects(response: ApiResponse, _: str) -> list[Mapping[str, Any]]:
        if not response.ok:
            raise PlanFailure(
                f"listing {what} failed: HTTP {response.status} {response.error}".rstrip(),
                stage=stage,
                status=response.status or None,
                retryable=response.status == 0 or response.status >= 500,
            )
        return [item for item in response.data or () if isinstance(item, Mapping)]

    paged = endpoint.startswith("/api/v2/")
    query = {"limit": page_size} if paged else {}
    pages = Pages(endpoint, query, stage=stage, note=f"list {what}", read=objects, paged=paged)
    items: list[Mapping[str, Any]] = yield from probe_steps(pages)
    return items


def fetch_labels() -> Step[dict[str, str]]:
    labels = yield from fetch_listing(LABELS_ENDPOINT, "lead labels", stage="list lead labels")
    return {str(x["name"]): str(x["id"]) for x in labels if "name" in x and "id" in x}


def sales_listings(rules: TrackRules) -> frozenset[str]:
    """The listings the rules name things from (`rule_listings`)."""
    return frozenset(name for rule in rules.rules for name in rule_listings(rule))


def rule_listings(rule: TrackRule) -> tuple[str, ...]:
    """The listings a rule names things from: pipelines and stages for a deal rule naming
    either, activity types for an activity rule that names a type."""
    if rule.create == "deal" and (rule.pipeline is not None or rule.stage is not None):
        return ("pipelines", "stages")
    if rule.create == "activity" and rule.type is not None:
        return ("activity_types",)
    return ()


def _ids(items: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [i for i in items if isinstance(i.get("id"), int) and not isinstance(i["id"], bool)]


def _pipelines(items: list[Mapping[str, Any]]) -> dict[int, str]:
    return {int(p["id"]): str(p.get("name", "")) for p in _ids(items)}


def _stages(items: list[Mapping[str, Any]]) -> tuple[Stage, ...]:
    return tuple(
        Stage(id=int(s["id"]), name=str(s.get("name", "")), pipeline_id=s["pipeline_id"])
        for s in _ids(items)
        if isinstance(s.get("pipeline_id"), int)
    )


def _activity_types(items: list[Mapping[str, Any]]) -> dict[str, str]:
    return {
        str(t["key_string"]): str(t.get("name", ""))
        for t in items
        if isinstance(t.get("key_string"), str) and t.get("active_flag", True) is not False
    }


# What deal and activity rules name (SPEC 4 track rules), by the `Catalog` field each fills:
# listed once at start when a rule needs them, kept in the state like the field listings.
SALES_LISTINGS: Mapping[str, tuple[str, Callable[[list[Mapping[str, Any]]], Any]]] = {
    "pipelines": ("/api/v2/pipelines", _pipelines),
    "stages": ("/api/v2/stages", _stages),
    "activity_types": ("/v1/activityTypes", _activity_types),
}


def fetch_catalog(
    entities: tuple[str, ...] = ENTITIES,
    *,
    labels: bool = True,
    page_size: int = PAGE_SIZE,
    sales: frozenset[str] = frozenset(),
    each: bool = False,
) -> Step[Catalog]:
    """The field listings and lead labels, and the `sales` listings (`sales_listings`). With
    `each` (send, check, map-fields, dry-run --lookups) a listing Pipedrive refused (an HTTP
    error, its retries spent) is left out and kept in the catalog's `failed`, and the others
    are still made (what to do when every one failed is the caller's); one that got no answer
    (unreachable) is raised at once."""
    failed: dict[str, PlanFailure] = {}

    def listing(name: str, exchange: Step[T]) -> Step[T | None]:
        try:
            return (yield from exchange)
        except PlanFailure as error:
            if not each or error.status is None:  # no answer at all: Pipedrive unreachable
                raise
            failed[name] = error
            return None

    fields = {}
    for entity in entities:  # every page of each
        what = f"{entity.removesuffix('s')} fields"  # "person fields", as Pipedrive says
        items = yield from listing(
            entity, fetch_listing(FIELD_ENDPOINTS[entity], what, page_size=page_size)
        )
        if items is not None:
            fields[entity] = tuple(field_info(item) for item in items)
    found_labels = (yield from listing(LABELS, fetch_labels())) if labels else {}
    listed = {}
    for name, (endpoint, read) in SALES_LISTINGS.items():
        if name in sales:
            what = name.replace("_", " ")
            items = yield from listing(name, fetch_listing(endpoint, what, page_size=page_size))
            if items is not None:
                listed[name] = read(items)
    return Catalog(fields=fields, labels=found_labels or {}, failed=failed, **listed)


def catalog_requests(sales: frozenset[str] = frozenset()) -> list[ApiRequest]:
    """The listings a send makes before its first event (`fetch_catalog`, one page each): what
    dry-run adds to its estimate when it lists nothing itself."""
    requests: list[ApiRequest] = []

    def none_listed(request: ApiRequest) -> ApiResponse:
        requests.append(request)
        return ApiResponse(status=200, data=[])

    drive_exchange(fetch_catalog(sales=sales), none_listed)
    return requests
