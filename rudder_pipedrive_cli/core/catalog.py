"""The account's field listings, lead labels and sales listings as a `Catalog`, and applying it to
a config: field names in `[fields.*]` resolve to keys, each mapped field's type becomes known
(values are coerced to it), lead label names resolve to ids, and track rules' pipelines, stages
and activity types to ids and keys.

Fetching it is core/catalog_fetch.py; judging a config against it (`rpd check`, `rpd map-fields`,
`rpd init`) is core/catalog_findings.py.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from rudder_pipedrive_cli.core.errors import ConfigError, PlanFailure
from rudder_pipedrive_cli.core.plans.base import LABELS, FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.rules import TrackRule

ENTITIES = ("persons", "organizations", "leads")
# A field table's listing: deal fields serve leads and deals.
LISTING_OF: Mapping[str, str] = {"deals": "leads"}


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
    # The listings that failed (a send lists each on its own), by name: an entity of
    # `fields`, LABELS or a sales listing; what they fill is left out.
    failed: Mapping[str, PlanFailure] = field(default_factory=dict)

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
        rules = config.track_rules
        return replace(
            config,
            person_fields=self._resolve("persons", config.person_fields),
            org_fields=self._resolve("organizations", config.org_fields),
            lead_fields=self._resolve("leads", config.lead_fields),
            deal_fields=self._resolve("leads", config.deal_fields),
            track_rules=replace(rules, rules=tuple(map(self.resolve_rule, rules.rules))),
            field_types={f.key: f for entity in ENTITIES for f in self.fields.get(entity, ())},
            unlisted=frozenset(e for e in ENTITIES if e not in self.fields)
            | (self.failed.keys() & {LABELS}),
            lead_labels={**self.labels, **config.lead_labels},
            user_id_field=self._key("persons", config.user_id_field),
            group_id_field=self._key("organizations", config.group_id_field),
        )

    def resolve_rule(self, rule: TrackRule) -> TrackRule:
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
        if rule.pipeline is not None:
            pipeline_id = _pick(rule.pipeline, self.pipelines, rule.where, "pipeline")
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
            raise ConfigError(
                f"{rule.where}: stage {rule.stage!r}: the account has no such stage{in_pipeline}",
                hint=_as_id(rule.stage, {s.id: s.name for s in stages}, "stage")
                + nearest_name(str(rule.stage), names)
                + f"stages{in_pipeline}: {', '.join(names) or 'none'}",
            )
        pipelines = list(dict.fromkeys(s.pipeline_id for s in chosen))
        if len(pipelines) > 1:
            raise ConfigError(
                f"{rule.where}: stage {rule.stage!r} is in {len(pipelines)} pipelines",
                hint="name its pipeline too: pipeline = "
                + " or ".join(repr(self.pipelines.get(p, "")) for p in pipelines),
            )
        if len(chosen) > 1:
            within = f" in pipeline {self.pipelines.get(pipelines[0], pipelines[0])!r}"
            raise _twins(rule.where, "stage", rule.stage, [s.id for s in chosen], within)
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
        raise ConfigError(
            f"{rule.where}: type {rule.type!r}: the account has no such activity type",
            hint=nearest_name(rule.type, candidates)
            + f"activity types: {', '.join(self.activity_types)}",
        )

    def _key(self, entity: str, key_or_name: str) -> str:
        """The key of the field so given, else the setting as it is (the account lacks it)."""
        info = self.field(entity, key_or_name)
        return info.key if info is not None else key_or_name

    def _resolve(self, entity: str, mapping: Mapping[str, str]) -> dict[str, str]:
        return {trait: self._key(entity, key) for trait, key in mapping.items()}


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
    if len(exact) > 1:
        raise _twins(where, noun, value, exact)
    if exact:
        return exact[0]
    raise ConfigError(
        f"{where}: {noun} {value!r}: the account has no such {noun}",
        hint=_as_id(value, named, noun)
        + nearest_name(value, list(named.values()))
        + f"{noun}s: {', '.join(named.values()) or 'none'}",
    )


def _as_id(value: str | int, named: Mapping[int, str], noun: str) -> str:
    """`an id is written as a number: pipeline = 2 ('Partners'); ` for a name that is the digits
    of one of `named`'s ids (id -> name): TOML's `pipeline = "2"` is a name."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        name = named.get(int(value))
        if name is not None:
            return f"an id is written as a number: {noun} = {int(value)} ({name!r}); "
    return ""


def _twins(
    where: str, noun: str, value: str | int, ids: list[int], within: str = ""
) -> ConfigError:
    """A name the account gives to several pipelines (or stages of one pipeline): taking one of
    them would be a guess."""
    return ConfigError(
        f"{where}: {noun} {value!r} names {len(ids)} {noun}s{within} "
        f"(ids {', '.join(map(str, ids))})",
        hint="give its id: " + " or ".join(f"{noun} = {i}" for i in ids),
    )


def nearest_name(name: str, names: list[str]) -> str:
    """`did you mean 'NAME'? ` for the account's name nearest a mistyped one, if any is near."""
    near = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return f"did you mean {near[0]!r}? " if near else ""
