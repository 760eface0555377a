"""The account's field listings and lead labels, fetched once per run, as a pure exchange.

`fetch_catalog()` yields the listing requests (cursor-paged v2 field listings, v1 lead labels) and
returns a `Catalog`. With it, the plans know each mapped field's type (values are coerced to it),
field names in `[fields.*]` resolve to keys, and lead label names resolve to ids. `rpd check` and
`rpd map-fields` judge a config against it (`Finding`s), and `rpd map-fields --format toml` and
`rpd init` suggest `[fields.*]` tables from it (`suggest_traits`).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rudder_pipedrive_cli.core.errors import ConfigError, PlanFailure
from rudder_pipedrive_cli.core.fields import CUSTOM_KEY, writable
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.core.rules import TrackRule, TrackRules

ENTITIES = ("persons", "organizations", "leads")
FIELD_ENDPOINTS: Mapping[str, str] = {
    "persons": "/api/v2/personFields",
    "organizations": "/api/v2/organizationFields",
    "leads": "/api/v2/dealFields",  # leads use deal fields
}
LABELS_ENDPOINT = "/v1/leadLabels"
# What deal and activity rules name (SPEC 4 track rules): listed once at start when a rule needs
# them, kept in the state like the field listings.
SALES_ENDPOINTS: Mapping[str, str] = {
    "pipelines": "/api/v2/pipelines",
    "stages": "/api/v2/stages",
    "activity_types": "/v1/activityTypes",
}
# A field table's listing: deal fields serve leads and deals.
LISTING_OF: Mapping[str, str] = {"deals": "leads"}
PAGE_SIZE = 500  # the v2 listings' maximum
# What one record of each listing is called in messages (leads use deal fields).
NOUNS: Mapping[str, str] = {
    "persons": "person",
    "organizations": "organization",
    "leads": "deal",
    "deals": "deal",
}
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
class Stage:
    id: int
    name: str
    pipeline_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    fields: Mapping[str, tuple[FieldInfo, ...]] = field(default_factory=dict)  # by entity
    labels: Mapping[str, str] = field(default_factory=dict)  # label name -> label id
    # None: not listed (no rule needed them).
    pipelines: Mapping[int, str] | None = None  # id -> name
    stages: tuple[Stage, ...] | None = None
    activity_types: Mapping[str, str] | None = None  # key -> name

    def field(self, entity: str, key_or_name: str) -> FieldInfo | None:
        """A field by its key, else by its name as Pipedrive shows it (never for an empty
        setting: a field with no name must not become an unset identity field)."""
        if not key_or_name:
            return None
        listed = self.fields.get(LISTING_OF.get(entity, entity), ())
        return next((f for f in listed if f.key == key_or_name), None) or next(
            (f for f in listed if f.name == key_or_name), None
        )

    def apply(self, config: PlanConfig) -> PlanConfig:
        """The config with field names resolved to keys (identity fields too), field types and
        lead labels known."""
        person = self._resolve("persons", config.person_fields)
        org = self._resolve("organizations", config.org_fields)
        lead = self._resolve("leads", config.lead_fields)
        deal = self._resolve("leads", config.deal_fields)
        types = {f.key: f for entity in ENTITIES for f in self.fields.get(entity, ())}
        user = self.field("persons", config.user_id_field)
        group = self.field("organizations", config.group_id_field)
        rules = config.track_rules
        return replace(
            config,
            person_fields=person,
            org_fields=org,
            lead_fields=lead,
            deal_fields=deal,
            track_rules=rules.with_rules(tuple(self._rule(rule) for rule in rules.rules)),
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
        for table, entity, mapping in mapped_tables(config):
            setting = settings.get(entity, "")
            identity = self.field(entity, getattr(config, setting)) if setting else None
            for trait, key in mapping.items():
                subject = f"{table}.{trait}"
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
        listing = LISTING_OF.get(entity, entity)
        other = next((e for e in ENTITIES if e != listing and self.field(e, key) is not None), None)
        return f" (it is {article(NOUNS[other])} field)" if other else ""

    def rule_findings(self, config: PlanConfig) -> list[Finding]:
        """Each `[[track]]` rule: what it makes, and whether the pipeline, stage and activity
        type it names are the account's (its mapped fields are `mapping_findings`)."""
        findings = []
        for rule in config.track_rules.rules:
            events = ", ".join(repr(e) for e in rule.events)
            try:
                resolved = self._rule(rule)
            except ConfigError as error:
                message = error.message.removeprefix(f"{rule.where}: ")
                findings.append(
                    Finding(
                        level="fail", subject=rule.where, value="", message=message, hint=error.hint
                    )
                )
                continue
            what = {"skip": "skip", "lead": "a lead", "deal": "a deal", "note": "a note"}.get(
                rule.create, "an activity"
            )
            detail = ""
            if rule.create == "deal":
                pipeline = resolved.pipeline_id
                stage = resolved.stage_id
                names = self.pipelines or {}
                detail = (
                    f" in pipeline {names.get(pipeline, pipeline)!r} ({pipeline})"
                    if pipeline is not None
                    else " in the default pipeline"
                )
                stage_name = next((s.name for s in self.stages or () if s.id == stage), stage)
                detail += f", stage {stage_name!r} ({stage})" if stage is not None else ""
            if rule.create == "activity":
                key = resolved.type_key
                detail = (
                    f" of type {key!r}" if key is not None else " of the account's default type"
                )
            findings.append(
                Finding(
                    level="ok",
                    subject=rule.where,
                    value="",
                    message=f"{what}{detail} for {events}",
                )
            )
        return findings

    def _rule(self, rule: TrackRule) -> TrackRule:
        """The rule with its field names, pipeline, stage and activity type resolved (what was
        not listed stays as configured); a name the account does not have is a ConfigError."""
        fields = None if rule.fields is None else self._resolve("leads", rule.fields)
        pipeline_id, stage_id, type_key = rule.pipeline_id, rule.stage_id, rule.type_key
        if rule.create == "deal":
            pipeline_id, stage_id = self.pipeline_and_stage(rule)
        if rule.create == "activity" and rule.type is not None:
            type_key = self.activity_type(rule)
        return replace(
            rule, fields=fields, pipeline_id=pipeline_id, stage_id=stage_id, type_key=type_key
        )

    def pipeline_and_stage(self, rule: TrackRule) -> tuple[int | None, int | None]:
        """A deal rule's pipeline and stage ids: by id or name; a stage named without a
        pipeline is looked for in every pipeline (it must be there once)."""
        pipeline_id = rule.pipeline if isinstance(rule.pipeline, int) else None
        stage_id = rule.stage if isinstance(rule.stage, int) else None
        if self.pipelines is None or self.stages is None:
            return pipeline_id, stage_id
        where = f"{rule.where}"
        if rule.pipeline is not None:
            pipeline_id = _pick(rule.pipeline, self.pipelines, where, "pipeline")
        if rule.stage is None:
            return pipeline_id, None
        stages = [s for s in self.stages if pipeline_id is None or s.pipeline_id == pipeline_id]
        in_pipeline = (
            f" in pipeline {self.pipelines.get(pipeline_id, pipeline_id)!r}"
            if (pipeline_id is not None)
            else ""
        )
        if isinstance(rule.stage, int):
            chosen = [s for s in stages if s.id == rule.stage]
        else:
            chosen = [s for s in stages if s.name == rule.stage] or [
                s for s in stages if s.name.casefold() == rule.stage.casefold()
            ]
        if not chosen:
            names = list(dict.fromkeys(s.name for s in stages))
            near = difflib.get_close_matches(str(rule.stage), names, n=1, cutoff=0.5)
            raise ConfigError(
                f"{where}: stage {rule.stage!r}: the account has no such stage{in_pipeline}",
                hint=(f"did you mean {near[0]!r}? " if near else "")
                + f"stages{in_pipeline}: {', '.join(names) or 'none'}",
            )
        if len(chosen) > 1:
            raise ConfigError(
                f"{where}: stage {rule.stage!r} is in {len(chosen)} pipelines",
                hint="name its pipeline too: pipeline = "
                + " or ".join(repr(self.pipelines.get(s.pipeline_id, "")) for s in chosen),
            )
        return chosen[0].pipeline_id, chosen[0].id

    def activity_type(self, rule: TrackRule) -> str | None:
        """An activity rule's type key, from its key or its name as Pipedrive shows it."""
        if self.activity_types is None or rule.type is None:
            return rule.type_key
        if rule.type in self.activity_types:
            return rule.type
        by_name = {name.casefold(): key for key, name in self.activity_types.items()}
        found = by_name.get(rule.type.casefold())
        if found is not None:
            return found
        candidates = [*self.activity_types, *self.activity_types.values()]
        near = difflib.get_close_matches(rule.type, candidates, n=1, cutoff=0.5)
        raise ConfigError(
            f"{rule.where}: type {rule.type!r}: the account has no such activity type",
            hint=(f"did you mean {near[0]!r}? " if near else "")
            + f"activity types: {', '.join(self.activity_types)}",
        )

    def _resolve(self, entity: str, mapping: Mapping[str, str]) -> dict[str, str]:
        resolved = {}
        for trait, key in mapping.items():
            info = self.field(entity, key)
            resolved[trait] = info.key if info is not None else key
        return resolved


def _pick(value: str | int, named: Mapping[int, str], where: str, noun: str) -> int:
    """The id of a pipeline (`named`: id -> name) given by id or by name (exact, else ignoring
    case); else a ConfigError with the nearest name."""
    if isinstance(value, int):
        if value in named:
            return value
        raise ConfigError(
            f"{where}: {noun} {value}: the account has no {noun} with this id",
            hint=f"{noun}s: " + ", ".join(f"{name} ({i})" for i, name in named.items()),
        )
    exact = [i for i, name in named.items() if name == value] or [
        i for i, name in named.items() if name.casefold() == value.casefold()
    ]
    if exact:
        return exact[0]
    near = difflib.get_close_matches(value, list(named.values()), n=1, cutoff=0.5)
    raise ConfigError(
        f"{where}: {noun} {value!r}: the account has no such {noun}",
        hint=(f"did you mean {near[0]!r}? " if near else "")
        + f"{noun}s: {', '.join(named.values()) or 'none'}",
    )


def is_searchable(info: FieldInfo) -> bool:
    """Whether itemSearch/field can find records by this field."""
    return info.field_type in SEARCHABLE_TYPES and (info.is_custom or info.key == "name")


def needs_listing(config: PlanConfig) -> list[str]:
    """Mapped entries only the account's field listing can resolve or check: a value that is
    neither a custom field key (40 hex) nor a standard field a write takes, such as a field's
    name ("Role")."""
    return [
        f"{table}.{trait} = {key!r}"
        for table, entity, mapping in mapped_tables(config)
        for trait, key in mapping.items()
        if not CUSTOM_KEY.match(key) and not writable(entity, key)
    ]


def mapped_tables(config: PlanConfig) -> tuple[tuple[str, str, Mapping[str, str]], ...]:
    """(where it is configured, entity, mapping) of every field table: `[fields.*]` and the
    track rules' `fields` (deals: `[fields.deals]` when it is not `[fields.leads]`)."""
    tables: list[tuple[str, str, Mapping[str, str]]] = [
        ("fields.persons", "persons", config.person_fields),
        ("fields.organizations", "organizations", config.org_fields),
        ("fields.leads", "leads", config.lead_fields),
    ]
    if config.deal_fields is not config.lead_fields and config.deal_fields:
        tables.append(("fields.deals", "deals", config.deal_fields))
    for rule in config.track_rules.rules:
        if rule.fields is not None:
            entity = "deals" if rule.create == "deal" else "leads"
            tables.append((f"track #{rule.number}.fields", entity, rule.fields))
    return tuple(tables)


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
    items = yield from fetch_listing(
        FIELD_ENDPOINTS[entity], f"{entity} fields", page_size=page_size
    )
    return tuple(field_info(item) for item in items)


def fetch_listing(
    endpoint: str, what: str, *, page_size: int = PAGE_SIZE
) -> Generator[ApiRequest, ApiResponse, list[Mapping[str, Any]]]:
    """Every object of a listing: v2 ones follow `next_cursor` to the last page; v1 ones
    (activity types) are one page."""
    paged = endpoint.startswith("/api/v2/")
    found: list[Mapping[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {"limit": page_size} if paged else {}
        if cursor:
            query["cursor"] = cursor
        response = yield ApiRequest(
            method="GET",
            path=endpoint,
            endpoint=endpoint,
            stage="list fields",
            query=query,
            note=f"list {what}",
        )
        data = _expect_ok(response, what)
        found.extend(item for item in data or () if isinstance(item, Mapping))
        extra = response.additional_data if isinstance(response.additional_data, Mapping) else {}
        cursor = extra.get("next_cursor") if paged else None
        if not cursor:
            return found


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


def sales_listings(rules: TrackRules) -> frozenset[str]:
    """The listings the rules name things from: pipelines and stages for deal rules, activity
    types for activity rules that name a type."""
    needed: set[str] = set()
    for rule in rules.rules:
        if rule.create == "deal" and (rule.pipeline is not None or rule.stage is not None):
            needed.update(("pipelines", "stages"))
        if rule.create == "activity" and rule.type is not None:
            needed.add("activity_types")
    return frozenset(needed)


def _ids(items: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [i for i in items if isinstance(i.get("id"), int) and not isinstance(i["id"], bool)]


def fetch_catalog(
    entities: tuple[str, ...] = ENTITIES,
    *,
    labels: bool = True,
    page_size: int = PAGE_SIZE,
    sales: frozenset[str] = frozenset(),
) -> Generator[ApiRequest, ApiResponse, Catalog]:
    """The field listings and lead labels, and the `sales` listings (`sales_listings`)."""
    fields = {}
    for entity in entities:
        fields[entity] = yield from fetch_fields(entity, page_size=page_size)
    found_labels = (yield from fetch_labels()) if labels else {}
    pipelines = stages = types = None
    if "pipelines" in sales:
        listed = yield from fetch_listing(
            SALES_ENDPOINTS["pipelines"], "pipelines", page_size=page_size
        )
        pipelines = {int(p["id"]): str(p.get("name", "")) for p in _ids(listed)}
    if "stages" in sales:
        listed = yield from fetch_listing(SALES_ENDPOINTS["stages"], "stages", page_size=page_size)
        stages = tuple(
            Stage(id=int(s["id"]), name=str(s.get("name", "")), pipeline_id=s["pipeline_id"])
            for s in _ids(listed)
            if isinstance(s.get("pipeline_id"), int)
        )
    if "activity_types" in sales:
        listed = yield from fetch_listing(SALES_ENDPOINTS["activity_types"], "activity types")
        types = {
            str(t["key_string"]): str(t.get("name", ""))
            for t in listed
            if isinstance(t.get("key_string"), str) and t.get("active_flag", True) is not False
        }
    return Catalog(
        fields=fields,
        labels=found_labels,
        pipelines=pipelines,
        stages=stages,
        activity_types=types,
    )


def catalog_requests(sales: frozenset[str] = frozenset()) -> list[ApiRequest]:
    """The listings a send makes before its first event (`fetch_catalog`, one page each): what
    dry-run adds to its estimate when it lists nothing itself."""
    exchange = fetch_catalog(sales=sales)
    requests: list[ApiRequest] = []
    try:
        request = next(exchange)
        while True:
            requests.append(request)
            request = exchange.send(ApiResponse(status=200, data=[]))
    except StopIteration:
        return requests
