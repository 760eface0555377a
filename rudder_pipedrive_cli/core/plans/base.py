"""What every plan is given: the mapping config (pure values, built from the TOML by the shell)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rudder_pipedrive_cli.core.rules import TrackRules


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldInfo:
    """A Pipedrive field as its listing describes it (known only when listings were fetched)."""

    key: str
    name: str
    field_type: str
    options: Mapping[str, int] = field(default_factory=dict)  # option label -> option id
    is_custom: bool = True


LABELS = "lead_labels"  # the lead labels' listing, as `Catalog.failed` and the state name it


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanConfig:
    user_id_field: str = ""
    group_id_field: str = ""
    create_persons: bool = False
    default_currency: str = ""
    on_invalid: str = "fail"  # [fields] on_invalid: "fail" or "drop" a value that cannot be coerced
    person_fields: Mapping[str, str] = field(default_factory=dict)  # trait path -> field key
    org_fields: Mapping[str, str] = field(default_factory=dict)
    lead_fields: Mapping[str, str] = field(default_factory=dict)
    deal_fields: Mapping[str, str] = field(default_factory=dict)  # [fields.deals], else leads'
    track_rules: TrackRules = field(default_factory=TrackRules)  # [[track]] (core/rules.py)
    lead_labels: Mapping[str, str] = field(default_factory=dict)  # label name -> label UUID
    field_types: Mapping[str, FieldInfo] = field(default_factory=dict)  # field key -> info
    # The field listings (persons, organizations, leads) that gave no types (values are sent as
    # they are), and LABELS when the lead labels' listing failed.
    unlisted: frozenset[str] = frozenset()
    # How often a write whose outcome stays unknown is tried (reconciled in between): the
    # transport's retries + 1, so `--max-retries` bounds these too.
    unknown_tries: int = 7
    # Where the input's alias events lead each userId they name, a chain of userIds
    # (`identity_cache.alias_into`, from send's first pass over its files): a userId Pipedrive
    # does not find may be one an earlier run's aliases merged or re-keyed away.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # Each previousId's own aliases, their userIds in input order (`index.input_aliases`): an
    # event between two of them is looked for in an order of its own (`ahead_of`).
    aliases_of: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # Its mappings' tables (`compiled_mapping`), made at first use; `replace` starts new ones.
    compiled: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
