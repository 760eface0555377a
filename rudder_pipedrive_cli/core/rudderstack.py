"""A RudderStack Pipedrive destination config, converted to rpd's settings (pure).

The destination's settings (seed: "Pipedrive Configuration Settings in RudderStack") map one to
one: `userIdToken` and `groupIdToken` are the identity field keys, `enableUserCreation` is
`create_persons` (a boolean: text or a number there is warned about and left false), and
`personsMap`, `organizationMap` and `leadsMap` are lists of `{from, to}` rows, from an event trait
name to a Pipedrive field key (or name). The `apiToken` is never carried over: the caller only
learns whether there was one, so it can tell the user where tokens go.

Event filtering (`eventFilteringOption`: "disable", "whitelistedEvents" or "blacklistedEvents",
with `whitelistedEvents` / `blacklistedEvents` lists of `{"eventName"}` rows) becomes `[[track]]`
rules (SPEC 4): an allowlist a lead rule for its names and a final skip rule for every other
event; a denylist a skip rule for its names (every other event stays a lead). An allowlist with
no names lets no track event through in RudderStack: one skip rule for every event, warned about.
RudderStack matches those names exactly, a `*` in them too: a name holding a `*` is written as
the exact pattern rpd reads so (core/rules.py `exact_pattern`), not as a prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.rules import exact_pattern

# RudderStack setting -> rpd [fields.*] table.
MAPS: tuple[tuple[str, str], ...] = (
    ("personsMap", "persons"),
    ("organizationMap", "organizations"),
    ("leadsMap", "leads"),
)
SETTINGS = frozenset(
    {"apiToken", "userIdToken", "groupIdToken", "enableUserCreation"} | {m for m, _ in MAPS}
)
FILTERING = "eventFilteringOption"
FILTER_LISTS = {"whitelistedEvents": "lead", "blacklistedEvents": "skip"}
# Settings RudderStack keeps on every destination; they mean nothing to a replay.
PLATFORM_SETTINGS = frozenset(
    {
        "blacklistedEvents",
        "whitelistedEvents",
        FILTERING,
        "oneTrustCookieCategories",
        "ketchConsentPurposes",
        "consentManagement",
        "connectionMode",
        "eventDelivery",
        "eventDeliveryTS",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Converted:
    user_id_field: str = ""
    group_id_field: str = ""
    create_persons: bool = False
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # table -> trait -> key
    # [[track]] rules from event filtering: (event names, create), in order.
    track: tuple[tuple[tuple[str, ...], str], ...] = ()
    warnings: tuple[str, ...] = ()


def destination_config(document: Any) -> Mapping[str, Any]:
    """The settings object: the document itself, or its `config` / `Config` when the document is
    a whole destination as RudderStack's API and the transformer see it."""
    if not isinstance(document, Mapping):
        raise UsageError(
            "the RudderStack destination config must be a JSON object",
            hint='expected {"userIdToken", "personsMap", ...} or a destination with "config"',
        )
    wrapped = (document.get(wrapper) for wrapper in ("config", "Config"))
    settings = next((inner for inner in wrapped if isinstance(inner, Mapping)), document)
    if not SETTINGS & set(settings):  # another destination's config: the wrong file
        raise UsageError(
            "the document holds no Pipedrive destination setting (userIdToken, groupIdToken, "
            "enableUserCreation, personsMap, organizationMap, leadsMap)",
            hint="give the config of a RudderStack Pipedrive destination",
        )
    return settings


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _create_persons(value: Any, warnings: list[str]) -> bool:
    """`enableUserCreation`: a JSON boolean, as RudderStack's dashboard stores it (a checkbox,
    default false); unset or "" is false. Anything else ("yes", "true", 1) is no value RudderStack
    writes: warned about and left false, the side a reviewer can still turn on (persons created
    by mistake are not taken back)."""
    if isinstance(value, bool) or value in (None, ""):
        return value is True
    warnings.append(
        f"enableUserCreation is {value!r}, not true or false (a checkbox in RudderStack): "
        "create_persons left false; set it to true in the file if rpd is to create persons"
    )
    return False


def _listed(name: str, rows: Any, shape: str, warnings: list[str]) -> list[Any]:
    """A setting's list of `shape` rows: none when unset (or "", as the dashboard leaves it);
    anything but a list is warned about and ignored."""
    if rows in (None, ""):
        return []
    if not isinstance(rows, list):
        warnings.append(f"{name} is not a list of {shape} rows; ignored")
        return []
    return rows


def _rows(name: str, rows: Any, warnings: list[str]) -> dict[str, str]:
    """`[{from, to}, ...]` as trait -> field key; the dashboard's empty rows are skipped."""
    mapping: dict[str, str] = {}
    for index, row in enumerate(_listed(name, rows, "{from, to}", warnings)):
        where = f"{name}[{index}]"
        if not isinstance(row, Mapping):
            warnings.append(f"{where} is not a {{from, to}} row; ignored")
            continue
        trait, key = _text(row.get("from")), _text(row.get("to"))
        if not trait and not key:
            continue
        if not trait or not key:
            warnings.append(f"{where} needs both from and to; ignored")
            continue
        if trait in mapping and mapping[trait] != key:
            warnings.append(
                f"{where}: {trait!r} is mapped again; the last row wins, as in RudderStack"
            )
        if "." in trait:
            warnings.append(f"{where}: rpd reads {trait!r} as a nested trait path")
        mapping[trait] = key
    return mapping


def event_names(name: str, rows: Any, warnings: list[str]) -> tuple[str, ...]:
    """`[{"eventName": ...}, ...]` as names, in order, once each; empty rows skipped."""
    names: list[str] = []
    for index, row in enumerate(_listed(name, rows, "{eventName}", warnings)):
        value = row.get("eventName") if isinstance(row, Mapping) else row
        if not isinstance(value, str):
            warnings.append(f"{name}[{index}] is not an {{eventName}} row; ignored")
            continue
        event = value.strip()
        if event and event not in names:
            names.append(event)
    return tuple(names)


def track_rules(
    config: Mapping[str, Any], warnings: list[str]
) -> tuple[tuple[tuple[str, ...], str], ...]:
    """The destination's event filtering as track rules (see the module's doc)."""
    option = _text(config.get(FILTERING))
    if option in ("", "disable"):
        return ()
    if option not in FILTER_LISTS:
        warnings.append(
            f"{FILTERING} {option!r} is not one of disable, whitelistedEvents, "
            "blacklistedEvents; no event filtering converted"
        )
        return ()
    names = tuple(exact_pattern(name) for name in event_names(option, config.get(option), warnings))
    if option == "blacklistedEvents":
        return ((names, "skip"),) if names else ()
    if not names:
        warnings.append(
            "whitelistedEvents is empty: RudderStack sends no track event; every track event "
            "is skipped"
        )
        return ((("*",), "skip"),)
    return ((names, "lead"), (("*",), "skip"))


def convert(document: Any) -> Converted:
    """rpd's settings from a RudderStack Pipedrive destination config."""
    config = destination_config(document)
    warnings = [
        f"{key} is not a Pipedrive destination setting; ignored"
        for key in config
        if key not in SETTINGS and key not in PLATFORM_SETTINGS
    ]
    fields = {table: _rows(name, config.get(name), warnings) for name, table in MAPS}
    rules = track_rules(config, warnings)
    for key in ("userIdToken", "groupIdToken"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            warnings.append(f"{key} is not a field key (a string): left empty")
    create_persons = _create_persons(config.get("enableUserCreation"), warnings)
    user_id_field = _text(config.get("userIdToken"))
    group_id_field = _text(config.get("groupIdToken"))
    if not user_id_field:
        warnings.append("userIdToken is empty: only events with external ids can be replayed")
    return Converted(
        user_id_field=user_id_field,
        group_id_field=group_id_field,
        create_persons=create_persons,
        fields=fields,
        track=rules,
        warnings=tuple(warnings),
    )
