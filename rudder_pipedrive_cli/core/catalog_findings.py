"""Judging a config against the account's `Catalog`: `Finding`s for `rpd check`, `rpd map-fields`
and the checks `rpd send` makes before its first event, and `[fields.*]` tables suggested for
`rpd map-fields --format toml` and `rpd init` (`suggest_traits`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from rudder_pipedrive_cli.core.catalog import ENTITIES, LISTING_OF, Catalog, nearest_name
from rudder_pipedrive_cli.core.catalog_fetch import rule_listings
from rudder_pipedrive_cli.core.errors import ConfigError
from rudder_pipedrive_cli.core.fields import CUSTOM_KEY, writable
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig

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
# Field names that suggest an identity field, for `rpd init`: matched on the snake_case name
# without its underscores ("RudderStack userId", "user_id" and "User ID" all hold "userid").
IDENTITY_NAME_HINTS: Mapping[str, str] = {"user_id_field": "userid", "group_id_field": "groupid"}

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One judgement of a config against the account: `fail` loses data or stops a replay."""

    level: Level
    subject: str  # the setting judged: "identity.user_id_field", "fields.persons.role"
    value: str = ""  # its configured value ("" when unset, or for a check of no one setting)
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


def unknown_keys(catalog: Catalog, config: PlanConfig) -> list[str]:
    """A line per mapped field that the account does not have (its values would be lost)."""
    return [
        f"{finding.line} ({finding.hint})"
        for finding in mapping_findings(catalog, config)
        if finding.level == "fail"
    ]


def identity_findings(catalog: Catalog, config: PlanConfig) -> list[Finding]:
    """Each identity field: set, a field of the right entity, custom, of a searchable type.
    One set for an entity whose listing the catalog lacks (it failed) is not judged."""
    return [
        _identity_finding(catalog, setting, entity, getattr(config, setting))
        for setting, entity in IDENTITY_FIELDS
        if entity in catalog.fields or not getattr(config, setting)
    ]


def send_refuses(catalog: Catalog, config: PlanConfig) -> list[Finding]:
    """The identity findings a send refuses to start on, from the account's listing: a field set
    but unusable (missing, standard, unsearchable, numeric), as every event that needs it would
    fail. An unset one is not refused: events with external ids need none (SPEC 4); see
    `unset_identity`."""
    return [
        finding
        for finding in identity_findings(catalog, config)
        if finding.level == "fail" and finding.value
    ]


def unset_identity(config: PlanConfig) -> list[Finding]:
    """The unset identity fields whose events fail (user_id_field): send refuses to start on them
    unless an event of its input names its person by an external id (its first pass says), and
    then warns once and sends those (cli/send_catalog.py `judge_unset_identity`)."""
    return [
        finding
        for finding in identity_findings(Catalog(), config)
        if finding.level == "fail" and not finding.value
    ]


def listing_findings(catalog: Catalog, config: PlanConfig) -> list[Finding]:
    """A failed finding per listing that failed (`Catalog.failed`: Pipedrive refused it, its
    retries spent), naming what of the config could not be checked without it."""
    findings = []
    for name, failure in catalog.failed.items():
        unchecked = [
            f"identity.{setting}"
            for setting, entity in IDENTITY_FIELDS
            if entity == name and getattr(config, setting)
        ]
        unchecked += [
            table
            for table, entity, mapping in mapped_tables(config)
            if LISTING_OF.get(entity, entity) == name and mapping
        ]
        unchecked += [r.where for r in config.track_rules.rules if name in rule_listings(r)]
        findings.append(
            Finding(
                level="fail",
                subject="pipedrive",
                message=failure.reason
                + (f"; not checked: {', '.join(unchecked)}" if unchecked else ""),
                hint="try again later" if failure.retryable else "",
            )
        )
    return findings


def identity_warnings(catalog: Catalog, config: PlanConfig, entities: Sequence[str]) -> list[str]:
    """A warning per configured identity field that is missing or cannot be searched: the
    problem, then a line saying what to do."""
    listed = {setting for setting, entity in IDENTITY_FIELDS if entity in entities}
    return [
        f"{finding.line}\nhint: {finding.hint}"
        for finding in identity_findings(catalog, config)
        if finding.level == "fail"
        and finding.value  # configured: an unset one is `rpd check`'s to judge
        and finding.subject.removeprefix("identity.") in listed
    ]


def mapping_findings(catalog: Catalog, config: PlanConfig) -> list[Finding]:
    """Each mapped `[fields.*]` entry: the account has the field on that entity."""
    findings = []
    settings = {entity: setting for setting, entity in IDENTITY_FIELDS}
    for table, entity, mapping in mapped_tables(config):
        if LISTING_OF.get(entity, entity) not in catalog.fields:  # its listing failed (a send)
            continue
        setting = settings.get(entity, "")
        identity = catalog.field(entity, getattr(config, setting)) if setting else None
        noun = NOUNS[entity]
        for trait, key in mapping.items():
            judged = partial(Finding, subject=f"{table}.{trait}", value=key)
            info = catalog.field(entity, key)
            if info is not None and identity is not None and info.key == identity.key:
                finding = judged(
                    level="fail",
                    message=f"{describe(info)} is the identity field ([identity] {setting}): rpd "
                    "fills it itself, and a trait written there would replace the identity, so a "
                    "later replay could not find the record",
                    hint="map the trait to another field, or remove it",
                )
            elif info is None:
                elsewhere = _elsewhere(catalog, key, entity)
                finding = judged(
                    level="fail",
                    message=f"the account has no such {noun} field{elsewhere}",
                    hint=("" if elsewhere else _field_meant(catalog, entity, key))
                    + "run `rpd map-fields` to list them",
                )
            elif info.key != key and _named(catalog, entity, key) > 1:
                finding = judged(
                    level="warn",
                    message=f"{_named(catalog, entity, key)} {noun} fields have this name; rpd "
                    f"uses the first, {describe(info)} (key {info.key})",
                    hint="write the field key instead of its name",
                )
            elif not info.is_custom and not writable(entity, info.key):
                finding = judged(
                    level="fail",
                    message=f"{describe(info)} is a standard {noun} field that rpd cannot write "
                    "(Pipedrive's API does not take it, or rpd sets it itself): its values would "
                    "be dropped",
                    hint="map the trait to a custom field (`rpd map-fields "
                    f"--entity {entity} --custom-only`)",
                )
            else:
                via = f" (by its name; key {info.key})" if info.key != key else ""
                finding = judged(level="ok", message=describe(info) + via)
            findings.append(finding)
    return findings


def _field_meant(catalog: Catalog, entity: str, key: str) -> str:
    """`did you mean ...? ` for a mapped value that is no field of `entity`: a key written with
    capitals or spaces (Pipedrive's are lower-case hex), or the nearest field name."""
    listed = catalog.fields.get(LISTING_OF.get(entity, entity), ())
    squeezed = "".join(key.split()).lower()
    same = next((info for info in listed if info.key == squeezed), None)
    if same is not None:
        return f"did you mean {same.key!r}, the key of {describe(same)}? "
    return nearest_name(key, [info.name for info in listed])


def _named(catalog: Catalog, entity: str, name: str) -> int:
    listed = catalog.fields.get(LISTING_OF.get(entity, entity), ())
    return sum(1 for info in listed if info.name == name)


def suggest_traits(
    catalog: Catalog, entity: str, *, exclude: Iterable[str] = ()
) -> tuple[Suggestion, ...]:
    """A trait name for each custom field of `entity` (snake_case of its name, unique within
    the table), skipping the keys in `exclude` (the identity fields: rpd fills those)."""
    skipped = set(exclude)
    taken: set[str] = set()
    found = []
    for info in catalog.fields.get(entity, ()):
        if not info.is_custom or info.key in skipped:
            continue
        trait = unique(snake_case(info.name) or "field", taken)
        taken.add(trait)
        found.append(Suggestion(trait=trait, key=info.key, comment=describe(info)))
    return tuple(found)


def guess_identity(catalog: Catalog) -> dict[str, str]:
    """Identity settings guessed from field names (a searchable custom person field named
    like "RudderStack userId", ...), for a starting config."""
    guessed = {}
    for setting, entity in IDENTITY_FIELDS:
        for info in catalog.fields.get(entity, ()):
            name = snake_case(info.name).replace("_", "")
            if info.is_custom and is_searchable(info) and IDENTITY_NAME_HINTS[setting] in name:
                guessed[setting] = info.key
                break
    return guessed


def _identity_finding(catalog: Catalog, setting: str, entity: str, key: str) -> Finding:
    judged = partial(Finding, subject=f"identity.{setting}", value=key)
    noun = NOUNS[entity]
    if not key:
        # Every event but a few with external ids needs a person: unset, a replay fails.
        return judged(
            level="fail" if setting == "user_id_field" else "warn",
            message="not set: only events with external ids can be replayed",
            hint=f"set it to the key of a searchable {noun} custom field "
            f"(`rpd map-fields --entity {entity}`)",
        )
    info = catalog.field(entity, key)
    if info is None:
        return judged(
            level="fail",
            message=f"the account has no such {noun} field" + _elsewhere(catalog, key, entity),
            hint=f"create {article(noun)} custom field for it, or pick one from "
            f"`rpd map-fields --entity {entity}`",
        )
    if not info.is_custom:
        return judged(
            level="fail",
            message=f"{describe(info)} is a standard {noun} field",
            hint=f"create {article(noun)} custom field (varchar) to hold the id",
        )
    if not is_searchable(info):
        return judged(
            level="fail",
            message=f"{describe(info)} is not of a searchable type, so rpd "
            "cannot look records up by it",
            hint="use a field of type " + ", ".join(sorted(SEARCHABLE_TYPES - NUMERIC_TYPES)),
        )
    if info.field_type in NUMERIC_TYPES:
        return judged(
            level="fail",
            message=f"{describe(info)} holds numbers, but ids are text: Pipedrive would "
            "refuse every record rpd creates",
            hint="use a text field (varchar, varchar_auto, text) to hold the id",
        )
    via = f" (by its name; key {info.key})" if info.key != key else ""
    return judged(level="ok", message=f"{describe(info)}, a searchable {noun} field{via}")


def _elsewhere(catalog: Catalog, key: str, entity: str) -> str:
    listing = LISTING_OF.get(entity, entity)
    other = next((e for e in ENTITIES if e != listing and catalog.field(e, key) is not None), None)
    return f" (it is {article(NOUNS[other])} field)" if other else ""


def rule_findings(catalog: Catalog, config: PlanConfig) -> list[Finding]:
    """Each `[[track]]` rule: what it makes, and whether the pipeline, stage and activity
    type it names are the account's (its mapped fields are `mapping_findings`); not one whose
    listing failed."""
    findings = []
    for rule in config.track_rules.rules:
        if any(name in catalog.failed for name in rule_listings(rule)):
            continue  # its listing failed: `listing_findings` names it
        events = ", ".join(repr(e) for e in rule.events)
        try:
            resolved = catalog.resolve_rule(rule)
        except ConfigError as error:
            message = error.message.removeprefix(f"{rule.where}: ")
            findings.append(
                Finding(level="fail", subject=rule.where, message=message, hint=error.hint)
            )
            continue
        what = {"skip": "skip", "lead": "a lead", "deal": "a deal", "note": "a note"}.get(
            rule.create, "an activity"
        )
        detail = ""
        if rule.create == "deal":
            pipeline = resolved.pipeline_id
            stage = resolved.stage_id
            names = catalog.pipelines or {}
            detail = (
                f" in pipeline {names.get(pipeline, pipeline)!r} ({pipeline})"
                if pipeline is not None
                else " in the default pipeline"
            )
            stage_name = next((s.name for s in catalog.stages or () if s.id == stage), stage)
            detail += f", stage {stage_name!r} ({stage})" if stage is not None else ""
        if rule.create == "activity":
            key = resolved.type_key
            detail = f" of type {key!r}" if key is not None else " of the account's default type"
        findings.append(
            Finding(
                level="ok",
                subject=rule.where,
                message=f"{what}{detail} for {events}",
            )
        )
    return findings


def is_searchable(info: FieldInfo) -> bool:
    """Whether itemSearch/field can find records by this field."""
    return info.field_type in SEARCHABLE_TYPES and (info.is_custom or info.key == "name")


def needs_listing(config: PlanConfig, listings: Sequence[str] = ENTITIES) -> list[str]:
    """Mapped entries only the account's field `listings` can resolve or check: a value that is
    neither a custom field key (40 hex) nor a standard field a write takes, such as a field's
    name ("Role")."""
    return [
        f"{table}.{trait} = {key!r}"
        for table, entity, mapping in mapped_tables(config)
        if LISTING_OF.get(entity, entity) in listings
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
