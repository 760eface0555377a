"""The account's field listings and lead labels, fetched once per run, as a pure exchange.

`fetch_catalog()` yields the listing requests (cursor-paged v2 field listings, v1 lead labels) and
returns a `Catalog`. With it, the plans know each mapped field's type (values are coerced to it),
field names in `[fields.*]` resolve to keys, and lead label names resolve to ids. `rpd check` and
`rpd map-fields` judge a config against it (`Finding`s), and `rpd map-fields --format toml` and
`rpd init` suggest `[fields.*]` tables from it (`suggest_traits`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.fields import CUSTOM_KEY, writable
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
# What one record of each listing is called in messages (leads use deal fields).
NOUNS: Mapping[str, str] = {"persons": "person", "organizations": "organization", "leads": "deal"}
# itemSearch/field searches custom fields of these types only (SPEC 1), and the standard name.
# Searchable, yet no home for a userId or groupId: v2 validation refuses a string there.
NUMERIC_TYPES = frozenset({"double", "monetary"})
SEARCHABLE_TYPES = frozenset(
    {"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"}
)
# identity setting -> the entity whose field it must be.
IDENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("user_id_field", "persons"),
    ("group_id_field", "organizations"),
)
# Field names that suggest an identity field, for `rpd init` (matched on the snake_case name).
IDENTITY_NAME_HINTS: Mapping[str, tuple[str, ...]] = {
    "user_id_field": ("user_id", "userid"),
    "group_id_field": ("group_id", "groupid"),
}

Level = Literal["ok", "warn", "fail"]

Exchange = Generator[ApiRequest, ApiResponse, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One judgement of a config against the account: `fail` loses data or stops a replay."""

    level: Level
    subject: str  # the setting judged: "identity.user_id_field", "fields.persons.role"
    value: str  # its configured value ("" when unset)
    message: str
    hint: str = ""

    @property
    def line(self) -> str:
        setting = f"{self.subject} = {self.value!r}" if self.value else self.subject
        return f"{setting}: {self.message}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    """A `[fields.*]` line to paste: trait name = field key, with what the field is."""

    trait: str
    key: str
    comment: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    fields: Mapping[str, tuple[FieldInfo, ...]] = field(default_factory=dict)  # by entity
    labels: Mapping[str, str] = field(default_factory=dict)  # label name -> label id

    def field(self, entity: str, key_or_name: str) -> FieldInfo | None:
        """A field by its key, else by its name as Pipedrive shows it (never for an empty
        setting: a field with no name must not become an unset identity field)."""
        if not key_or_name:
            return None
        listed = self.fields.get(entity, ())
        return next((f for f in listed if f.key == key_or_name), None) or next(
            (f for f in listed if f.name == key_or_name), None
        )

    def owner(self, key_or_name: str) -> str | None:
        """The entity that has this field, if any."""
        return next((e for e in ENTITIES if self.field(e, key_or_name) is not None), None)

    def apply(self, config: PlanConfig) -> PlanConfig:
        """The config with field names resolved to keys (identity fields too), field types and
        lead labels known."""
        person = self._resolve("persons", config.person_fields)
        org = self._resolve("organizations", config.org_fields)
        lead = self._resolve("leads", config.lead_fields)
        types = {f.key: f for entity in ENTITIES for f in self.fields.get(entity, ())}
        user = self.field("persons", config.user_id_field)
        group = self.field("organizations", config.group_id_field)
        return replace(
            config,
            person_fields=person,
            org_fields=org,
            lead_fields=lead,
            field_types=types,
            lead_labels={**self.labels, **config.lead_labels},
            user_id_field=user.key if user is not None else config.user_id_field,
            group_id_field=group.key if group is not None else config.group_id_field,
        )

    def unknown_keys(self, config: PlanConfig) -> list[str]:
        """A line per mapped field that the account does not have (its values would be lost)."""
        return [
            f"{finding.line} ({finding.hint})"
            for finding in self.mapping_findings(config)
            if finding.level == "fail"
        ]

    def identity_findings(self, config: PlanConfig) -> list[Finding]:
        """Each identity field: set, a field of the right entity, custom, of a searchable type."""
        return [
            self._identity_finding(setting, entity, getattr(config, setting))
            for setting, entity in IDENTITY_FIELDS
        ]

    def mapping_findings(self, config: PlanConfig) -> list[Finding]:
        """Each mapped `[fields.*]` entry: the account has the field on that entity."""
        findings = []
        settings = {entity: setting for setting, entity in IDENTITY_FIELDS}
        for entity, mapping in mapped_tables(config):
            setting = settings.get(entity, "")
            identity = self.field(entity, getattr(config, setting)) if setting else None
            for trait, key in mapping.items():
                subject = f"fields.{entity}.{trait}"
                info = self.field(entity, key)
                if info is not None and identity is not None and info.key == identity.key:
                    findings.append(
                        Finding(
                            level="fail",
                            subject=subject,
                            value=key,
                            message=f"{describe(info)} is the identity field ([identity] "
                            f"{setting}): rpd fills it itself, and a trait written there would "
                            "replace the identity, so a later replay could not find the record",
                            hint="map the trait to another field, or remove it",
                        )
                    )
                elif info is None:
                    findings.append(
                        Finding(
                            level="fail",
                            subject=subject,
                            value=key,
                            message=f"the account has no such {NOUNS[entity]} field"
                            + self._elsewhere(key, entity),
                            hint="run `rpd map-fields` to list them",
                        )
                    )
                elif info.key != key and self._named(entity, key) > 1:
                    findings.append(
                        Finding(
                            level="warn",
                            subject=subject,
                            value=key,
                            message=f"{self._named(entity, key)} {NOUNS[entity]} fields have this "
                            f"name; rpd uses the first, {describe(info)} (key {info.key})",
                            hint="write the field key instead of its name",
                        )
                    )
                elif not info.is_custom and not writable(entity, info.key):
                    findings.append(
                        Finding(
                            level="fail",
                            subject=subject,
                            value=key,
                            message=f"{describe(info)} is a standard {NOUNS[entity]} field that "
                            "rpd cannot write (Pipedrive's API does not take it, or rpd sets it "
                            "itself): its values would be dropped",
                            hint="map the trait to a custom field (`rpd map-fields "
                            f"--entity {entity} --custom-only`)",
                        )
                    )
                else:
                    via = f" (by its name; key {info.key})" if info.key != key else ""
                    findings.append(
                        Finding(
                            level="ok", subject=subject, value=key, message=describe(info) + via
                        )
                    )
        return findings

    def _named(self, entity: str, name: str) -> int:
        return sum(1 for info in self.fields.get(entity, ()) if info.name == name)

    def suggest_traits(self, entity: str, *, exclude: Iterable[str] = ()) -> tuple[Suggestion, ...]:
        """A trait name for each custom field of `entity` (snake_case of its name, unique within
        the table), skipping the keys in `exclude` (the identity fields: rpd fills those)."""
        skipped = set(exclude)
        taken: set[str] = set()
        found = []
        for info in self.fields.get(entity, ()):
            if not info.is_custom or info.key in skipped:
                continue
            trait = unique(snake_case(info.name) or "field", taken)
            taken.add(trait)
            found.append(Suggestion(trait=trait, key=info.key, comment=describe(info)))
        return tuple(found)

    def guess_identity(self) -> dict[str, str]:
        """Identity settings guessed from field names (a searchable custom person field named
        like "RudderStack userId", ...), for a starting config."""
        guessed = {}
        for setting, entity in IDENTITY_FIELDS:
            for info in self.fields.get(entity, ()):
                name = snake_case(info.name).replace("_", "")
                hints = [h.replace("_", "") for h in IDENTITY_NAME_HINTS[setting]]
                if info.is_custom and is_searchable(info) and any(h in name for h in hints):
                    guessed[setting] = info.key
                    break
        return guessed

    def _identity_finding(self, setting: str, entity: str, key: str) -> Finding:
        subject = f"identity.{setting}"
        noun = NOUNS[entity]
        if not key:
            # Every event but a few with external ids needs a person: unset, a replay fails.
            return Finding(
                level="fail" if setting == "user_id_field" else "warn",
                subject=subject,
                value="",
                message="not set: only events with external ids can be replayed",
                hint=f"set it to the key of a searchable {noun} custom field "
                f"(`rpd map-fields --entity {entity}`)",
            )
        info = self.field(entity, key)
        if info is None:
            return Finding(
                level="fail",
                subject=subject,
                value=key,
                message=f"the account has no such {noun} field" + self._elsewhere(key, entity),
                hint=f"create {article(noun)} custom field for it, or pick one from "
                f"`rpd map-fields --entity {entity}`",
            )
        if not info.is_custom:
            return Finding(
                level="fail",
                subject=subject,
                value=key,
                message=f"{describe(info)} is a standard {noun} field",
                hint=f"create {article(noun)} custom field (varchar) to hold the id",
            )
        if not is_searchable(info):
            return Finding(
                level="fail",
                subject=subject,
                value=key,
                message=f"{describe(info)} is not of a searchable type, so rpd "
                "cannot look records up by it",
                hint="use a field of type " + ", ".join(sorted(SEARCHABLE_TYPES - NUMERIC_TYPES)),
            )
        if info.field_type in NUMERIC_TYPES:
            return Finding(
                level="fail",
                subject=subject,
                value=key,
                message=f"{describe(info)} holds numbers, but ids are text: Pipedrive would "
                "refuse every record rpd creates",
                hint="use a text field (varchar, varchar_auto, text) to hold the id",
            )
        via = f" (by its name; key {info.key})" if info.key != key else ""
        return Finding(
            level="ok",
            subject=subject,
            value=key,
            message=f"{describe(info)}, a searchable {noun} field{via}",
        )

    def _elsewhere(self, key: str, entity: str) -> str:
        other = next((e for e in ENTITIES if e != entity and self.field(e, key) is not None), None)
        return f" (it is {article(NOUNS[other])} field)" if other else ""

    def _resolve(self, entity: str, mapping: Mapping[str, str]) -> dict[str, str]:
        resolved = {}
        for trait, key in mapping.items():
            info = self.field(entity, key)
            resolved[trait] = info.key if info is not None else key
        return resolved


def is_searchable(info: FieldInfo) -> bool:
    """Whether itemSearch/field can find records by this field."""
    return info.field_type in SEARCHABLE_TYPES and (info.is_custom or info.key == "name")


def needs_listing(config: PlanConfig) -> list[str]:
    """Mapped entries only the account's field listing can resolve or check: a value that is
    neither a custom field key (40 hex) nor a standard field a write takes, such as a field's
    name ("Role")."""
    return [
        f"fields.{entity}.{trait} = {key!r}"
        for entity, mapping in mapped_tables(config)
        for trait, key in mapping.items()
        if not CUSTOM_KEY.match(key) and not writable(entity, key)
    ]


def mapped_tables(config: PlanConfig) -> tuple[tuple[str, Mapping[str, str]], ...]:
    return (
        ("persons", config.person_fields),
        ("organizations", config.org_fields),
        ("leads", config.lead_fields),
    )


def describe(info: FieldInfo) -> str:
    """'"Plan" (enum: Free, Pro, Enterprise)', as in config.example.toml."""
    options = f": {', '.join(info.options)}" if info.options else ""
    return f'"{info.name}" ({info.field_type}{options})'


def article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def snake_case(name: str) -> str:
    """A field name as a trait name: "RudderStack userId" -> "rudder_stack_user_id" (accents
    folded, other symbols dropped, a leading digit prefixed so the name reads as a key)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    spaced = _CAMEL.sub("_", ascii_name).lower()
    snake = _NOT_WORD.sub("_", spaced).strip("_")
    return f"field_{snake}" if snake[:1].isdigit() else snake


def unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


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


def fetch_fields(
    entity: str, *, page_size: int = PAGE_SIZE
) -> Generator[ApiRequest, ApiResponse, tuple[FieldInfo, ...]]:
    """Every field of `entity`, following `next_cursor` to the last page."""
    endpoint = FIELD_ENDPOINTS[entity]
    found: list[FieldInfo] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {"limit": page_size}
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
    entities: tuple[str, ...] = ENTITIES, *, labels: bool = True, page_size: int = PAGE_SIZE
) -> Generator[ApiRequest, ApiResponse, Catalog]:
    fields = {}
    for entity in entities:
        fields[entity] = yield from fetch_fields(entity, page_size=page_size)
    found_labels = (yield from fetch_labels()) if labels else {}
    return Catalog(fields=fields, labels=found_labels)


def catalog_requests() -> list[ApiRequest]:
    """The listings a send makes before its first event (`fetch_catalog`, one page each): what
    dry-run adds to its estimate when it lists nothing itself."""
    exchange = fetch_catalog()
    requests: list[ApiRequest] = []
    try:
        request = next(exchange)
        while True:
            requests.append(request)
            request = exchange.send(ApiResponse(status=200, data=[]))
    except StopIteration:
        return requests
