"""Which event values feed which Pipedrive fields, and how values are normalised on the way.

Tables hold the data (standard trait names, keys that are not "dropped", one coercion per custom
field type); the plans hold the decisions (create or update, merges, links).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache, partial
from itertools import filterfalse
from typing import TYPE_CHECKING, Any, NamedTuple

from rudder_pipedrive_cli.core.errors import PlanFailure, Warned
from rudder_pipedrive_cli.core.events import (
    EXACT_FLOAT_INT,
    clipped,
    get_parts,
    identity_value,
    path_parts,
    quoted,
)

if TYPE_CHECKING:  # plans import this module: keep the import one-way at run time
    from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig

# Where an event holds the values of a body, as `entity_body` reads them.
TRAITS = ("traits",)
CONTEXT_TRAITS = ("context", "traits")
PERSON_TRAITS = (TRAITS, CONTEXT_TRAITS)  # an identify's or alias's person: top-level traits win
FIRST_NAME_PATHS = ("firstName", "first_name")
LAST_NAME_PATHS = ("lastName", "last_name")
NAME_KEYS = frozenset({"name", *FIRST_NAME_PATHS, *LAST_NAME_PATHS})
# The lead's value: the first present of these properties is the amount.
AMOUNT_PATHS = ("revenue", "value", "total", "amount")

# Trait keys a plan reads for a standard field or an identity: never reported as dropped.
IDENTITY_KEYS = frozenset({"userId", "id", "previousId", "groupId", "anonymousId"})
PERSON_STANDARD_KEYS = NAME_KEYS | {"email", "phone", "visible_to", "add_time"}
ORG_STANDARD_KEYS = frozenset({"name", "visible_to", "add_time"})
LEAD_STANDARD_KEYS = frozenset({*AMOUNT_PATHS, "currency", "expected_close_date", "label_ids"})
# A deal takes no lead labels (its labels are other ids): a label_ids property is dropped, said.
DEAL_STANDARD_KEYS = LEAD_STANDARD_KEYS - {"label_ids"}
# add_time falls back to the event's own times, in this order.
EVENT_TIME_PATHS = ("originalTimestamp", "timestamp")
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
# %-formatting the fields: 0.64 us, against 0.92 for isoformat and 1.37 for strftime.
RFC3339 = "%04d-%02d-%02dT%02d:%02d:%02dZ"
# Pipedrive's visibility groups (Lite/Growth use 1 and 3, Premium/Ultimate also 5 and 7).
VISIBLE_TO = frozenset({1, 3, 5, 7})
CONTACT_LABEL = "work"  # v2 emails/phones label of everything rpd sends
CONTACT_KEYS = frozenset({"emails", "phones"})
NEVER_SENT = frozenset({"owner_id"})  # belongs to the Pipedrive account, not to the user

CUSTOM_KEY = re.compile(r"^[0-9a-f]{40}$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")  # a time of day: not 25:99
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
# What looks like an email address: something, one @, a domain with a dot; no spaces.
# Not possessive (`++`): CPython before 3.11.5 matched those wrongly (gh-106052, gh-100061),
# and `fullmatch` of this greedy form is linear already.
EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
NOTHING: Mapping[str, Any] = {}  # the source of an event without any
INFINITIES = (float("inf"), float("-inf"))


def trait(sources: Iterable[Mapping[str, Any]], path: str, parts: tuple[str, ...] = ()) -> Any:
    """The first source's value at `path` (None and "" read as absent). A dotted path (`parts`,
    from `path_parts`) is nested objects, else a key holding the dots itself (flattened traits:
    "company.role")."""
    for source in sources:
        value = get_parts(source, parts) if parts else source.get(path)
        if parts and (value is None or value == ""):
            value = source.get(path)
        if value is not None and value != "":
            return value
    return None


def bad_value(path: str, value: Any, said: str) -> Warned:
    """A warning that the value at `path` is unusable (`said`: why, and what happens to it):
    quoting the value, and in redacted words without it."""
    return Warned(f"{path} = {quoted(value)} {said}", f"{path} {said}")


# --- standard values -------------------------------------------------------------------------


# A scalar as a non-empty, trimmed string (names, emails, currencies), else None.
text = identity_value


def name_text(value: Any, path: str, warnings: list[str]) -> str | None:
    """A name (or part of one): a string or a number, trimmed. Anything else that is there (a
    boolean, an object, a list) is dropped with a warning, not silently."""
    if type(value) is str:
        return value.strip() or None
    found = text(value)
    if found is None and value is not None:
        warnings.append(bad_value(path, value, "is not a name (a string); dropped"))
    return found


def person_name(sources: Iterable[Mapping[str, Any]], warnings: list[str]) -> str | None:
    """`name`, else first and last name, from the first source that has either: top-level
    traits win whole (their firstName/lastName over a `name` in context.traits)."""
    for source in sources:  # read only when one holds a name key (`ShapePlan`)
        value = source.get("name")
        name = None if value is None else name_text(value, "name", warnings)
        if name is not None:
            return name
        parts = []
        for paths in (FIRST_NAME_PATHS, LAST_NAME_PATHS):
            for path in paths:  # the first that is a name; each one read before it warns
                value = source.get(path)
                part = None if value is None else name_text(value, path, warnings)
                if part:
                    parts.append(part)
                    break
        if parts:
            return " ".join(parts)
    return None


def phones(value: Any, where: str, warnings: list[str]) -> list[dict[str, Any]]:
    """A phone trait (a string or a list; the first is primary) as a v2 array: every entry is
    taken (`where` and `warnings`: the signature every standard shape has)."""
    return contact_array(text(raw) for raw in contact_entries(value))


def contact_entries(value: Any) -> list[Any]:
    """The entries of an email or phone trait: a value, or a list of values or of objects with a
    "value" (an object without one gives None)."""
    items = value if isinstance(value, list | tuple) else [value]
    return [item.get("value") if isinstance(item, Mapping) else item for item in items]


def contact_array(entries: Iterable[str | None]) -> list[dict[str, Any]]:
    """v2 `emails`/`phones`: each entry once, the first primary."""
    values = dict.fromkeys(entry for entry in entries if entry is not None)
    return [
        {"value": entry, "primary": index == 0, "label": CONTACT_LABEL}
        for index, entry in enumerate(values)
    ]


def emails(value: Any, where: str, warnings: list[str]) -> list[dict[str, Any]]:
    """An email trait as a v2 array (see `contacts`). Only strings that look like an address are
    emails: any other entry (a number, a boolean, "n/a") is dropped with a warning, so that
    `[null, 5, "m@example.com"]` makes m@example.com the primary email, not "5"."""
    found: list[str] = []
    for entry in contact_entries(value):
        address = entry.strip() if type(entry) is str else entry
        if address is None or address == "":  # absent
            continue
        if type(address) is str and EMAIL.fullmatch(address):
            found.append(address)
        else:
            warnings.append(bad_value(where, entry, "is not an email address; dropped"))
    return contact_array(found)


def visible_to(value: Any, where: str, warnings: list[str]) -> int | None:
    number = as_number(value)
    if isinstance(number, int) and number in VISIBLE_TO:
        return number
    warnings.append(bad_value("visible_to", value, "is not one of 1, 3, 5, 7; dropped"))
    return None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 date or date-time, or epoch seconds/milliseconds, as an aware UTC datetime."""
    if type(value) is not str:  # most times are strings: no isinstance checks for them
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            seconds = value / 1000 if abs(value) > 1e11 else value
            try:
                return datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                return None
        if not isinstance(value, str):
            return None
    text = value.strip()
    if text[-1:] == "z":  # RFC 3339 allows a lower-case z (and t, which fromisoformat takes)
        text = text[:-1] + "Z"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is UTC:  # "Z" or +00:00, most times
            return parsed
        # Converting to UTC can leave the datetime range (9999-12-31T23:59:59-01:00).
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC with a four-digit year, also before year 1000 (Go's zero time is year 1)."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return RFC3339 % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)


def known_time(value: Any) -> datetime | None:
    """parse_time, with Go's zero time (`0001-01-01T00:00:00Z`, what a Go producer writes for
    a time it never set) taken as no time at all."""
    moment = parse_time(value)
    return None if moment == GO_ZERO_TIME else moment


def moment_text(value: Any) -> str | None:
    moment = parse_time(value)
    if moment is None:
        return None
    return "" if moment == GO_ZERO_TIME else rfc3339(moment)


# A time string parsed and formatted once per distinct string (an archive's events share their
# times often; the cache's size bounds its memory). Not for other values: True would be 1.
string_time = lru_cache(maxsize=1024)(moment_text)


def time_text(value: Any) -> str | None:
    """A time (`parse_time`) as RFC 3339 UTC, "" for Go's zero time, None when not a time."""
    return string_time(value) if type(value) is str else moment_text(value)


def add_time(given: Any, raw: Mapping[str, Any], warnings: list[str]) -> str | None:
    """add_time from the trait `given` (None: absent), else the event's originalTimestamp, else
    its timestamp. A time that is there but cannot be read is warned about (Go's zero time is
    no time: not warned about as an event time, but as the trait)."""
    text = None if given is None else time_text(given)
    if text:
        return text
    unreadable: list[tuple[str, Any]] = []  # the event's own times that are not times
    used = ""  # the event time add_time comes from
    for path in EVENT_TIME_PATHS:
        value = raw.get(path)
        if value is not None and value != "":
            text = time_text(value)
            if text:
                used = path
                break
            if text is None:
                unreadable.append((path, value))
    if given is not None:
        instead = "using the event time" if used else "left out"
        warnings.append(bad_value("add_time", given, f"is not a date or time; {instead}"))
    for path, value in unreadable:
        instead = f"add_time from {used}" if used else "add_time left out"
        warnings.append(bad_value(path, value, f"is not a date or time; {instead}"))
    return text if used else None


def date_part(value: Any) -> str | None:
    """The YYYY-MM-DD of an ISO date or date-time, else None."""
    if isinstance(value, str) and DATE.match(value.strip()):
        head = value.strip()[:10]
        try:
            date.fromisoformat(head)
        except ValueError:
            return None
        return head
    return None


def as_number(value: Any) -> int | float | None:
    """A JSON number, or a numeric string, as int (when integral and exact) or float; else None."""
    kind = type(value)  # JSON's own types first, without isinstance calls
    if kind is str or (kind is not float and isinstance(value, str)):
        if not NUMBER.match(value := value.strip()):
            return None
        value = float(value)
    elif kind is not float and not isinstance(value, float):
        return value if isinstance(value, int) and kind is not bool else None
    if value != value or value in INFINITIES:
        return None
    # Past EXACT_FLOAT_INT a whole float is not exact, and as an int past 64 bits it could
    # not even be written as JSON: it stays a float.
    return int(value) if value.is_integer() and abs(value) < EXACT_FLOAT_INT else value


def currency_code(value: Any) -> str | None:
    """A currency as Pipedrive takes it: a 3-letter code in any case ("eur"), upper-cased; else
    None ("US Dollars", ["EUR"], 978)."""
    if type(value) is str:
        code = value.strip()
        if len(code) == 3 and code.isascii() and code.isalpha():  # [A-Za-z]{3}
            return code.upper()
    return None


# --- invalid values ---------------------------------------------------------------------------


def refuse(failure: PlanFailure, on_invalid: str, warnings: list[str], left_out: str) -> None:
    """A value that cannot be what its field takes (SPEC 3, `[fields] on_invalid`): "fail" (the
    default) fails the event with `failure`; "drop" leaves the value out (`left_out` says what
    is left out) with a warning naming it, and the event goes on."""
    if on_invalid != "drop":
        raise failure
    redacted = failure.redacted if failure.redacted is not None else failure.reason
    warnings.append(Warned(f"{failure.reason}; {left_out}", f"{redacted}; {left_out}"))


# --- custom field coercion (one function per field type) -------------------------------------


class Unconvertible(ValueError):
    """The value does not fit the field; the message says what would."""


# (value, field, currency): `currency` is the event's (a track's `currency` property, else
# [identity] default_currency) for a monetary value given as a bare number.
Coerce = Callable[[Any, "FieldInfo", Any], Any]


def to_number(value: Any, info: FieldInfo, currency: Any) -> Any:
    number = as_number(value)
    if number is None:
        raise Unconvertible("a number")
    return number


def to_int(value: Any, info: FieldInfo, currency: Any, expected: str = "a whole number") -> Any:
    number = as_number(value)
    if not isinstance(number, int):
        raise Unconvertible(expected)
    return number


# The longest text a field type holds (v2.yaml's field types: "Text (up to 255 characters)").
TEXT_LIMITS: Mapping[str, int] = {"varchar": 255, "varchar_auto": 255, "phone": 255}


def to_text(value: Any, info: FieldInfo, currency: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        limit = TEXT_LIMITS.get(info.field_type)
        if limit is not None and len(value) > limit:
            raise Unconvertible(f"at most {limit:,} characters, not {len(value):,}")
        return value
    number = as_number(value)
    if number is None:
        raise Unconvertible("a string or a number")
    return str(number)


def to_bool(value: Any, info: FieldInfo, currency: Any) -> Any:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise Unconvertible("true, false")


def to_date(value: Any, info: FieldInfo, currency: Any) -> Any:
    day = date_part(value)
    if day is None:
        raise Unconvertible("a date YYYY-MM-DD")
    return day


def to_time(value: Any, info: FieldInfo, currency: Any) -> Any:
    if isinstance(value, str) and TIME.match(value.strip()):
        stripped = value.strip()
        return stripped if len(stripped) == 8 else stripped + ":00"
    raise Unconvertible("a time HH:MM:SS")


def option_id(value: Any, info: FieldInfo) -> int:
    """An option's label (exact, else trimmed, else case-insensitive) or its id, as the option
    id: " pro " is Pro for an enum as for each item of a set."""
    if isinstance(value, str):
        if value in info.options:
            return info.options[value]
        value = value.strip()
        if value in info.options:
            return info.options[value]
        folded = [oid for label, oid in info.options.items() if label.lower() == value.lower()]
        if len(folded) == 1:
            return folded[0]
    number = as_number(value)
    if isinstance(number, int) and number in info.options.values():
        return number
    raise Unconvertible("one of " + ", ".join(info.options))


def items_of(value: Any) -> Sequence[Any]:
    """The items of a value that may hold several (a set field's, the lead labels): a list, a
    comma-separated string, else the one value."""
    if isinstance(value, str):
        return value.split(",")
    return value if isinstance(value, list | tuple) else [value]


def to_options(value: Any, info: FieldInfo, currency: Any) -> Any:
    if isinstance(value, str) and value.strip() in info.options:  # a label that holds a comma
        return [info.options[value.strip()]]
    chosen = [
        option_id(item.strip() if isinstance(item, str) else item, info)
        for item in items_of(value)
        if not (isinstance(item, str) and not item.strip())
    ]
    # Pipedrive refuses [] for a set field: null clears the selection.
    return list(dict.fromkeys(chosen)) or None


def to_money(value: Any, info: FieldInfo, currency: Any) -> Any:
    amount, code = money(value, currency)
    return {"value": amount, "currency": code}


def money(value: Any, currency: Any) -> tuple[int | float, str]:
    """A monetary value (a number in `currency`, or `{"value" or "amount", "currency"}`) as its
    amount and currency code; `Unconvertible` when it is not one."""
    expected = 'a number (with identity.default_currency set) or {"value", "currency"}'
    if isinstance(value, Mapping):
        amount = as_number(value.get("value", value.get("amount")))
        given = value.get("currency")
        code = currency if given is None or given == "" else given
    else:
        amount, code = as_number(value), currency
    if amount is None or code is None or code == "":
        raise Unconvertible(expected)
    checked = currency_code(code)  # never another currency instead: that would change the sum
    if checked is None:
        raise Unconvertible(f"a 3-letter currency code, not {quoted(code)}")
    return amount, checked


# The parts of an address object (v2.yaml: an organization's address, a person's postal_address).
ADDRESS_PARTS = (
    "value",
    "country",
    "admin_area_level_1",
    "admin_area_level_2",
    "locality",
    "sublocality",
    "route",
    "street_number",
    "subpremise",
    "postal_code",
)


# RudderStack's address trait (its identify spec: city, country, postalCode, state, street), by
# the part of Pipedrive's address object each one is.
RUDDERSTACK_ADDRESS = {
    "street": "route",
    "city": "locality",
    "state": "admin_area_level_1",
    "postalCode": "postal_code",
}
# The parts, in the order a full address (`value`) is written from them when none is given.
ADDRESS_ORDER = (
    *("route", "street_number", "subpremise", "postal_code", "locality"),
    *("sublocality", "admin_area_level_2", "admin_area_level_1", "country"),
)


def to_address(value: Any, info: FieldInfo, currency: Any) -> Any:
    if isinstance(value, str):
        return {"value": value}
    if not isinstance(value, Mapping):
        raise Unconvertible('a string or an address object {"value", ...}')
    parts: dict[str, str] = {}
    unknown: list[str] = []
    for key, part in value.items():
        name = RUDDERSTACK_ADDRESS.get(key, key)
        if name not in ADDRESS_PARTS:
            unknown.append(str(key))
        elif isinstance(part, str | int) and not isinstance(part, bool):
            if str(part).strip():
                parts[name] = str(part).strip()
        elif part is not None:
            raise Unconvertible("an address object whose parts are strings")
    if unknown:
        known = ", ".join((*ADDRESS_PARTS, *RUDDERSTACK_ADDRESS))
        raise Unconvertible(f"a string or an object of {known} (not {', '.join(unknown)})")
    if parts and "value" not in parts:
        parts = {"value": ", ".join(parts[n] for n in ADDRESS_ORDER if n in parts), **parts}
    return parts or None


def to_address_text(value: Any, info: FieldInfo, currency: Any) -> Any:
    """An address field of a v1 lead: its text, which Pipedrive reads into parts itself (v1.yaml,
    "Lead fields": only monetary, daterange and timerange fields have parts there)."""
    parts = to_address(value, info, currency)
    return None if parts is None else parts["value"]


to_id = partial(to_int, expected="a numeric Pipedrive id")


COERCE: Mapping[str, Coerce] = {
    "double": to_number,
    "int": to_int,
    "monetary": to_money,
    "varchar": to_text,
    "varchar_auto": to_text,
    "varchar_options": to_text,
    "text": to_text,
    "phone": to_text,
    "boolean": to_bool,
    "date": to_date,
    "time": to_time,
    "enum": lambda value, info, currency: option_id(value, info),
    "set": to_options,
    "address": to_address,
    "user": to_id,
    "org": to_id,
    "people": to_id,
}


def unconvertible(
    path: str, value: Any, key: str, info: FieldInfo, error: Exception
) -> PlanFailure:
    """Why the value at `path` cannot be what field `key` (of `info`'s type) takes."""
    return PlanFailure(
        f"cannot convert {path} = {quoted(value)} for field {info.name or key} "
        f"({info.field_type}): expected {error}",
        redacted=f"cannot convert {path} for field {info.name or key} ({info.field_type})",
        stage="validate",
    )


# One row per trait path (`compiled_mapping`): the path, the body or field key, what the row does,
# its shape or coercion (None: as it is), the field (or what the row needs besides), a dotted
# path's parts (else ()), and a mapped value's shape or a refused one's words. What it does:
# STANDARD, a person's or organization's standard trait; CUSTOM, a custom field (MONEY: a
# monetary one of a v1 lead, the amount and `<key>_currency`); IDENTITY, the identity field rpd
# fills itself; MAPPED, a standard field a trait is mapped to (OWNED: one the body's own values
# set too: theirs win; a mapped email or phone is added to theirs); REFUSED, a field rpd sets or
# no write takes; NEVER, a key rpd never sends; OWN, a lead's or deal's own close date or labels.
# Read whatever the sources hold: ADD_TIME (creates), the add_time trait, else a trait mapped to
# it (the field: whether one is), else the event's time; TITLE, the plan's; VALUE, a lead's or
# deal's own value (its shape reads the paths; the field: the noun).
STANDARD, CUSTOM, MONEY, IDENTITY, MAPPED, OWNED, REFUSED, NEVER, OWN, ADD_TIME, TITLE, VALUE = (
    range(12)
)
Row = tuple[str, str, int, Any, Any, tuple[str, ...], Any]


class MappingTable(NamedTuple):
    """A mapping's rows; the trait paths never reported as dropped (mapped, standard, identity);
    the paths a mapped dotted path goes through ("address" for "address.city"); the warning for a
    value mapped to the identity field; the warning for the traits mapped to a key whose own
    value wins; how the body's name is read (None: it has none); whether its custom fields go in
    `custom_fields` (v2) or among its keys (v1 leads, and mapped rows alone)."""

    rows: tuple[Row, ...]
    sent: frozenset[str]
    inner: frozenset[str]
    identity_warning: str
    overridden: Mapping[str, str]
    # Per shape of the sources (their keys: SDKs send the same keys event after event), what
    # the rows do with them (`shape_plan`), at most SHAPES of them.
    plans: dict[tuple[Any, ...], ShapePlan]
    name: Callable[[tuple[Mapping[str, Any], ...], list[str]], str | None] | None = None
    nested: bool = False


def compiled_mapping(
    mapping: Mapping[str, str],
    config: PlanConfig,
    kind: Kind | None = None,
    key: object = None,
    *,
    create: bool = True,
    identity: str = "",
    identity_words: str = "",
) -> MappingTable:
    """The table of a `mapping` under `config` for a body of `kind` (None: mapped rows alone,
    shaped by none): its standard rows, add_time on `create`, the mapped rows, then its own rows
    (leads, deals). Kept in `PlanConfig.compiled` under `key`; `identity_words` refuse a value
    mapped to the `identity` field."""
    rows = kind.rows if kind is not None else ()
    # The keys a person's or organization's own values set: they win over values mapped to them.
    own = {"name", "add_time", *(row[1] for row in rows)} if rows else set()
    table: list[Row] = [
        (path, key, STANDARD, shape, entry, (), None) for path, key, shape, entry in rows
    ]
    mapped: list[Row] = []
    for path, field in mapping.items():
        info = config.field_types.get(field)
        convert = COERCE.get(info.field_type) if info is not None else None
        typed = None if convert is None else info
        how, shape = (NEVER if field in NEVER_SENT else CUSTOM), None
        if how == CUSTOM and not is_custom(field, config):
            how, shape = mapped_row(field, config, kind, create)
            how = OWNED if how == MAPPED and field in own else how
        elif how == CUSTOM and identity == field != "":
            how = IDENTITY
        elif how == CUSTOM and convert is to_money and kind is not None and kind.flat_money:
            how = MONEY
        elif convert is to_address and kind is not None and kind.flat_money:  # v1: as text
            convert = to_address_text
        parts = path_parts(path) if "." in path else ()
        mapped.append((path, field, how, convert, typed, parts, shape))
    if create and "add_time" in own:
        times = any(row[1] == "add_time" and row[2] == OWNED for row in mapped)
        table.append(("add_time", "add_time", ADD_TIME, None, times, (), None))
    after = kind.after if kind is not None else ()
    inner = frozenset(
        path[:index] for path in mapping for index, char in enumerate(path) if char == "."
    )
    paths = ", ".join(path for path, field in mapping.items() if identity == field != "")
    wins = {row[1] for row in after} | {row[1] for row in mapped if row[2] == OWNED}
    words = {
        field: (", ".join(path for path, to in mapping.items() if to == field) or field)
        + f" is mapped to {field}, which the event's own {field} sets; dropped"
        for field in wins
    }
    compiled = config.compiled[key] = MappingTable(
        plans={},
        rows=(*table, *mapped, *after),
        sent=frozenset(mapping) | (kind.standard if kind is not None else set()) | IDENTITY_KEYS,
        inner=inner,
        identity_warning=Warned(f"{paths} {identity_words}") if paths else "",
        overridden={field: Warned(text) for field, text in words.items()},
        name=kind.name if kind is not None else None,
        nested=kind is not None and not kind.flat_money,
    )
    return compiled


# A row as a shape plan holds it: the table's row, then the index of the first source holding
# its path (-1: none), and of the others (a dotted path: holding its first part or the key).
PlanRow = tuple[str, str, int, Any, Any, tuple[str, ...], Any, int, tuple[int, ...]]
SHAPES = 256  # shapes kept per table: an input of ever new shapes plans each event anew
# Keys of a shape kept, at most (an SDK's events hold tens): a kept plan holds its shape's keys,
# so a few items of thousands of keys each would otherwise hold megabytes for the whole run.
SHAPE_KEYS = 64


class ShapePlan(NamedTuple):
    """What a table does with sources of one shape, by kind of row: custom fields copied from the
    one source holding them (`plain`: key, source, path; first only ahead of any converted one,
    unnested ahead of any row), standard traits, a create's add_time (its sources, whether a mapped
    trait goes first), the other rows some source holds, a lead's or deal's own values; how a name
    is read (None: none, or no name key); the paths nothing sends (None: `dropped` reads them);
    whether its body holds no name and says nothing unless its standard values or the event's
    time do (`nameless`)."""

    plain: tuple[tuple[str, int, str], ...]
    standard: tuple[tuple[Any, ...], ...]  # path, key, shape, entry, first source, others
    created: tuple[tuple[int, ...], bool] | None
    rows: tuple[PlanRow, ...]
    own: tuple[PlanRow, ...]
    name: Callable[[tuple[Mapping[str, Any], ...], list[str]], str | None] | None
    gone: tuple[str, ...] | None
    quiet: bool


def shape_plan(table: MappingTable, sources: tuple[Mapping[str, Any], ...]) -> ShapePlan:
    """The plan of `table` for sources of the shape of `sources` (see `ShapePlan`)."""
    plain: list[tuple[str, int, str]] = []
    standard: list[tuple[Any, ...]] = []
    created: tuple[tuple[int, ...], bool] | None = None
    rows: list[PlanRow] = []
    own: list[PlanRow] = []
    later = False  # a row before sets a custom field: the plain rows after it keep their place
    for row in table.rows:
        path, key, how, convert, info, parts, _ = row
        held = tuple(
            at for at, keys in enumerate(sources) if path in keys or (parts and parts[0] in keys)
        )
        if how == VALUE and not any(amount in sources[0] for amount in AMOUNT_PATHS):
            continue  # an own value without an amount to read (a lead's or deal's one source)
        if not held and how < ADD_TIME:  # nothing to read
            continue
        at = held[0] if held else -1  # the first source holding it (-1: none), the others
        if how == STANDARD:
            standard.append((path, key, convert, info, at, held[1:]))  # its shape, entry
        elif how == ADD_TIME:  # whether a trait mapped to add_time goes before the event's time
            created = (held, info)
        elif how >= OWN:
            own.append((*row, at, held[1:]))
        elif how == CUSTOM and convert is None and not parts and len(held) == 1 and not later:
            plain.append((key, at, path))
        else:  # the plain rows after one that sets a custom field (any key, unnested) stay here
            rows.append((*row, at, held[1:]))
            later = later or how == CUSTOM or not table.nested
    keys = {key for source in sources for key in source}
    gone: list[str] = []
    if table.inner.isdisjoint(keys):  # then what is dropped depends on the keys alone
        dropped(sources, table, gone)
    name = None if NAME_KEYS.isdisjoint(keys) else table.name
    plan = (tuple(plain), tuple(standard), created, tuple(rows), tuple(own), name)
    said = tuple(gone) if table.inner.isdisjoint(keys) else None
    # Only a name key, rows (mapped ones: to name too), own values, an add_time trait, a dropped
    # trait and a standard value its contact does not take as its entry name or say something.
    quiet = (
        name is None
        and not rows
        and not own
        and (created is None or created == ((), False))
        and said == ()
        and all(entry is not None for _, _, _, entry, _, _ in standard)
    )
    return ShapePlan(*plan, said, quiet)


def nameless(
    plan: ShapePlan, sources: tuple[Mapping[str, Any], ...], raw: Mapping[str, Any]
) -> bool:
    """Whether the body of `sources` by their `plan` (a `quiet` one) provably holds no name and
    says nothing: no standard value its shape may warn about (each a string its contact takes
    as its one entry), no event time add_time warns about. False when unsure."""
    for path, _, _, entry, holder, others in plan.standard:  # as `mapped_values` reads them
        value = sources[holder][path]
        if (value is None or value == "") and (value := next_held(sources, others, path)) is None:
            continue
        if type(value) is not str or not entry(value.strip()):  # its shape may warn
            return False
    if plan.created is None:
        return True
    moment = raw.get("originalTimestamp")  # add_time's first: a time there, nothing is said
    if type(moment) is str and string_time(moment):
        return True
    said: list[str] = []  # else as add_time reads the event's times: one not a time is warned
    add_time(None, raw, said)
    return not said


def mapped_row(field: str, config: PlanConfig, kind: Kind | None, create: bool) -> tuple[int, Any]:
    """What a row does with a value mapped to the standard `field` of a body of `kind`: shape it
    as its standard trait is (MAPPED), or drop it with a warning (REFUSED: the words)."""
    if kind is None:
        return MAPPED, None
    shape = kind.shapes.get(field)
    if shape is not None:
        return MAPPED, (shape if create or field != "add_time" else lambda *_: None)
    if field in RPD_SETS:
        return REFUSED, Warned(f"a trait is mapped to {field}, which rpd sets itself; dropped")
    if field not in kind.writable:
        return REFUSED, Warned(unwritable(field, config))  # config words only
    return MAPPED, None


def mapped_values(
    sources: tuple[Mapping[str, Any], ...],
    table: MappingTable,
    config: PlanConfig,
    warnings: list[str],
    currency: Any = "",
    found: list[str] | None = None,
    raw: Mapping[str, Any] = NOTHING,
    title: str = "",
    named: bool = False,
) -> dict[str, Any]:
    """A body from the event's `sources` (the first holding a path wins) by the plan of their shape
    (`ShapePlan`): the name, standard traits, add_time (from the event `raw` at the latest), the
    mapped fields (standard ones and own values shaped, custom ones of a known type converted,
    else `refuse`; in `custom_fields` when the table nests them), the `title`; the trait paths
    nothing sends added to `found`. `currency`: the event's, else default_currency. Warnings: the
    name's, the rows', the identity's, the shapes' (`late`), add_time's and the own values'
    (`last`); the shapes' first refusal fails the event after every mapped row. `named`: only a
    body with a name is of use (a create's): {} when it would provably hold none and say nothing
    (`nameless`), as most refused are (a group's or track's person, context.traits nameless)."""
    count = len(sources)  # their shape: one source's keys (most bodies), else each source's
    if count == 1:
        keys: tuple[Any, ...] = tuple(sources[0])
    else:  # two sources (an identify's, an alias's) without map
        keys = (tuple(sources[0]), tuple(sources[1])) if count == 2 else (*map(tuple, sources),)
    plan = table.plans.get(keys)
    if plan is None:
        plan = shape_plan(table, sources)
        if len(table.plans) < SHAPES and sum(map(len, sources)) <= SHAPE_KEYS:
            table.plans[keys] = plan
    plain, standard, created, rows, own, reader, gone, quiet = plan  # once: a field read is a call
    if named and quiet and nameless(plan, sources, raw):
        return {}  # no name, nothing said: a create refused for want of one needs no body
    custom: dict[str, Any] = {}
    for key, holder, path in plain:  # most rows: custom fields as they are
        value = sources[holder][path]
        if value is not None and value != "":
            custom[key] = value
    body = {} if table.nested else custom
    if reader is not None:  # most events give it, as a string, in their first source
        given = sources[0].get("name")
        name = given.strip() if type(given) is str else None
        if name or (name := reader(sources, warnings)) is not None:
            body["name"] = name
    for path, key, shape, entry, holder, others in standard:
        value = sources[holder][path]
        if (value is None or value == "") and (value := next_held(sources, others, path)) is None:
            continue
        if type(value) is str and entry is not None and entry(one := value.strip()):
            body[key] = [{"value": one, "primary": True, "label": CONTACT_LABEL}]
            continue
        warned = len(warnings)
        shaped = shape(value, path, warnings)
        if shaped:  # an entry, or a visibility group (none is 0)
            body[key] = shaped
        elif entry is not None and len(warnings) == warned:  # no entry said why
            warnings.append(
                Warned(
                    f"{path} = {quoted(value)} holds no {path} (give a string, a list of "
                    'strings, or objects with a "value"); left out',
                    f"{path} holds no {path}; left out",
                )
            )
    last: list[str] = []  # add_time's and the own values' warnings, after all others
    at = -1  # where add_time goes when the event's time stands in for a trait mapped to it
    if created is not None:  # the add_time trait, else a trait mapped to it, else the time
        holders, defer = created
        value = next_held(sources, holders, "add_time") if holders else None
        if value is None and defer:  # a trait mapped to add_time first: the time after the rows
            at = len(body)
        else:
            moment = None
            if value is None:  # most creates: the event's time, a string
                moment = raw.get("originalTimestamp")
                if moment is None:
                    moment = raw.get("timestamp")
                moment = string_time(moment) if type(moment) is str else None
            if not moment:
                moment = add_time(value, raw, last)
            if moment is not None:
                body["add_time"] = moment
    if currency is None or currency == "":  # the event's, else default_currency
        currency = config.default_currency
    failed: PlanFailure | None = None  # the shapes' first refusal
    if rows:  # the rows that are neither plain custom fields nor standard traits
        late: list[str] = []
        owned: set[str] | None = None  # the keys the body's own rows set, at the first OWNED one
        added: dict[str, Any] | None = None  # mapped emails or phones to add to the own ones
        identity = False  # a value mapped to the identity field
        for path, key, how, convert, info, parts, shape, holder, others in rows:
            if parts:
                value = trait(sources, path, parts)
                if value is None:
                    continue
            elif ((value := sources[holder][path]) is None or value == "") and (
                value := next_held(sources, others, path)
            ) is None:
                continue
            if how == NEVER:
                warnings.append(
                    Warned(f"{path} is mapped to {key}, which rpd never sends; dropped")
                )
                continue
            if convert is not None:
                try:
                    value = convert(value, info, currency)
                except Unconvertible as error:
                    failure = unconvertible(path, value, key, info, error)
                    refuse(failure, config.on_invalid, warnings, "dropped")
                    continue
            if how == CUSTOM:
                custom[key] = value
            elif how == MONEY:  # v1 leads: the amount, and the currency in a sibling key
                custom[key], custom[key + "_currency"] = value["value"], value["currency"]
            elif how == IDENTITY:  # written, it would replace the identity: never found again
                identity = True
            elif failed is not None:  # the shapes stop at their first refusal
                continue
            elif how == REFUSED:
                late.append(shape)
            else:
                if shape is not None:
                    try:
                        value = shape(value, currency, config, late)
                    except PlanFailure as refusal:
                        failed = refusal
                        continue
                    if value is None:
                        continue
                if how == MAPPED:
                    body[key] = value
                    continue
                if owned is None:  # the body holds its own keys and plain mapped ones only
                    owned = set(body)
                if key not in owned:
                    body[key] = value
                elif key in CONTACT_KEYS:
                    added = {} if added is None else added
                    added[key] = value
                elif table.overridden[key] not in last:
                    last.append(table.overridden[key])
        if added:
            add_contacts(body, added)
        if identity:
            warnings.append(table.identity_warning)
        if late:
            warnings += late
    if at >= 0 and "add_time" not in body:  # no trait mapped to add_time gave a time
        before: list[str] = []
        moment = add_time(None, raw, before)
        last[:0] = before
        if moment is not None:  # in add_time's place, before the mapped keys
            items = list(body.items())
            body = dict([*items[:at], ("add_time", moment), *items[at:]])
    if own and failed is None:  # a lead's or deal's own values, after its mapped fields
        for path, key, how, _, info, _, shape, holder, others in own:
            if how == TITLE:
                body[key] = title
                continue
            if how == VALUE:  # it reads its paths itself
                value = sources[0]
            elif ((value := sources[holder][path]) is None or value == "") and (
                value := next_held(sources, others, path)
            ) is None:
                continue
            try:  # the value, close date, labels: they win over values mapped to their keys
                value = shape(value, currency, config, last)
            except PlanFailure as refusal:
                failed = refusal
                break
            if value is not None:
                if key in body:
                    last.append(table.overridden[key])
                body[key] = value
                if info == "deal":
                    body["currency"] = currency_code(currency)
    if last:
        warnings += last
    if failed is not None:
        raise failed
    if custom and custom is not body:
        body["custom_fields"] = custom
    if found is not None and gone is None:  # an object a dotted path goes into
        dropped(sources, table, found)
    elif found is not None and gone:
        if not found:  # most bodies: the first to report (`gone` holds each path once)
            found += gone
        else:
            # Those not in it yet (a set: an item may drop thousands of traits); no comprehension
            # here, whose closure would make a cell at every call.
            found += filterfalse(set(found).__contains__, gone)
    return body


def add_contacts(body: dict[str, Any], added: Mapping[str, Any]) -> None:
    """Add to the body's own emails or phones those mapped to them (`added`, by key) that it
    does not hold yet, none of them primary."""
    for key, value in added.items():
        known = {entry["value"] for entry in body[key]}
        extra = [{**entry, "primary": False} for entry in value if entry["value"] not in known]
        body[key] = body[key] + extra


def next_held(sources: tuple[Mapping[str, Any], ...], others: tuple[int, ...], path: str) -> Any:
    """The value at `path` in the first of the sources `others` that has one there, else None."""
    for index in others:
        value = sources[index][path]
        if value is not None and value != "":
            return value
    return None


def is_custom(key: str, config: PlanConfig) -> bool:
    """Custom when the field listing says so; without it, when the key is a 40-hex hash."""
    info = config.field_types.get(key)
    return info.is_custom if info is not None else bool(CUSTOM_KEY.match(key))


# --- dropped traits --------------------------------------------------------------------------


def dropped(
    sources: Iterable[Mapping[str, Any]],
    table: MappingTable,
    found: list[str],
    prefix: str = "",
    seen: set[str] | None = None,
) -> None:
    """Add to `found` (each path once) the trait paths that nothing sends: a top-level key, or
    the dotted paths inside an object of which only some paths are mapped (mapping
    "address.city" reports "address.street")."""
    sent, inner = table.sent, table.inner
    if seen is None:  # what `found` holds, as a set: an item may drop thousands of traits
        seen = set(found)
    for source in sources:
        for key, value in source.items():
            path = prefix + key
            if path in sent:
                continue
            if path in inner and isinstance(value, Mapping):
                dropped((value,), table, found, path + ".", seen)
            elif path not in seen:
                seen.add(path)
                found.append(path)


# --- leads -----------------------------------------------------------------------------------


def own_value(
    flat: Mapping[str, Any],
    currency: Any,
    config: PlanConfig,
    warnings: list[str],
    noun: str = "lead",
) -> Any:
    """A lead's or deal's (`noun`) own value: the first of AMOUNT_PATHS in `flat` that is a
    number, in `currency` (a lead's `{"amount", "currency"}`, a deal's amount); without one, left
    out with a warning; one not a 3-letter code is never sent as another: `[fields] on_invalid`
    fails the event or leaves the value out."""
    for path in AMOUNT_PATHS:
        given = flat.get(path)
        if given is None or given == "":
            continue
        amount = as_number(given)
        if amount is None:
            warnings.append(
                bad_value(path, given, f"is not a number; ignored for the {noun} value")
            )
            continue
        code = None if currency is None or currency == "" else currency_code(currency)
        if code is not None:
            return {"amount": amount, "currency": code} if noun == "lead" else amount
        if currency is None or currency == "":
            warnings.append(
                Warned(
                    f"{noun} value {amount} has no currency (no currency property and no "
                    "[identity] default_currency); value left out",
                    f"a {noun} value has no currency (no currency property and no [identity] "
                    "default_currency); value left out",
                )
            )
        else:
            failure = PlanFailure(
                f"currency = {quoted(currency)} is not a 3-letter currency code",
                redacted="currency is not a 3-letter currency code",
                stage="validate",
            )
            refuse(failure, config.on_invalid, warnings, f"the {noun}'s value is left out")
        return None
    return None


def close_date(value: Any, currency: Any, config: PlanConfig, warnings: list[str]) -> Any:
    """A lead's or deal's own expected_close_date: a date, else left out with a warning."""
    day = date_part(value)
    if day is None:
        warnings.append(bad_value("expected_close_date", value, "is not a date; left out"))
    return day


def lead_labels(
    value: Any, known: Mapping[str, str], warnings: list[str], *, listed: bool = True
) -> list[str]:
    """Names resolve through the account's lead labels (exact, else case-insensitive); UUIDs are
    written in lower case and, once the labels were listed, must be one of them. An unknown
    label is dropped with a warning (a label is not worth the lead). `listed` is False when the
    account's labels were never listed (an offline dry-run): UUIDs then pass unchecked."""
    folded = {name.lower(): uid for name, uid in known.items()}
    labels: list[str] = []
    for item in items_of(value):
        name = text(item)
        if name is None:
            continue
        if UUID.match(name):
            uid: str | None = name.lower()
            if listed and uid not in {known_uid.lower() for known_uid in known.values()}:
                uid = None
        else:
            uid = known.get(name, folded.get(name.lower()))
        if uid is None and not listed:
            warnings.append(
                Warned(
                    f"lead label {clipped(repr(name))} cannot be resolved without the account's "
                    "label listing (dry-run: --lookups, or the state of an earlier send); left out",
                    "a lead label cannot be resolved without the account's label listing; left out",
                )
            )
        elif uid is None:
            warnings.append(
                Warned(
                    f"lead label {clipped(repr(name))} is not a label of this account; dropped",
                    "a lead label is not a label of this account; dropped",
                )
            )
        elif uid not in labels:
            labels.append(uid)
    return labels


# --- standard fields of persons and organizations --------------------------------------------

# How a standard trait's value becomes its body value: (value, trait path, warnings) -> the body
# value, or None (left out; the shape warns when the value is there but unusable).
StandardShape = Callable[[Any, str, list[str]], Any]
# One row per standard trait (name and add_time apart): trait key, body key, shape, and for a
# contact (warned about when it holds no entry) what one string must be to be its one entry.
StandardRow = tuple[str, str, StandardShape, Callable[[str], Any] | None]
PERSON_STANDARD: tuple[StandardRow, ...] = (
    ("email", "emails", emails, EMAIL.fullmatch),
    ("phone", "phones", phones, bool),
    ("visible_to", "visible_to", visible_to, None),
)
ORG_STANDARD: tuple[StandardRow, ...] = (("visible_to", "visible_to", visible_to, None),)


def org_name(sources: Iterable[Mapping[str, Any]], warnings: list[str]) -> str | None:
    return name_text(trait(sources, "name"), "name", warnings)


# --- traits mapped to standard (non-custom) fields -------------------------------------------
# A trait may be mapped to a standard field ("workEmail = Email"): its value then takes the shape
# the standard trait would (v2 arrays for emails and phones, an integer visible_to, RFC 3339
# add_time on create only; v1 lead value, date and labels). Fields rpd fills itself are refused.

RPD_SETS = frozenset({"id", "org_id", "person_id", "owner_id", "title", "origin_id", "update_time"})


# (value, currency, config, warnings) -> the body value, or None (left out, warned about when
# the value is there but unusable): the event's currency (see `Coerce`), the config's lead labels
# (listed with its field listing) and `[fields] on_invalid`.
Shape = Callable[[Any, Any, "PlanConfig", list[str]], Any]


def mapped_shape(shape: StandardShape, key: str) -> Shape:
    """A standard trait's shape, for a value mapped to its body key `key` (warned about as `key`;
    a value holding no entry is left out)."""
    return lambda value, currency, config, warnings: shape(value, key, warnings) or None


def _name(value: Any, currency: Any, config: PlanConfig, warnings: list[str]) -> Any:
    return name_text(value, "a trait mapped to name", warnings)


def _lead_visible(value: Any, currency: Any, config: PlanConfig, warnings: list[str]) -> Any:
    number = visible_to(value, "visible_to", warnings)
    return None if number is None else str(number)  # v1 leads take it as a string


def _created(value: Any, currency: Any, config: PlanConfig, warnings: list[str]) -> Any:
    return time_text(value) or None


def _lead_value(value: Any, currency: Any, config: PlanConfig, warnings: list[str]) -> Any:
    """A value mapped to the lead's own `value`: converted as a monetary custom field is (with
    the field listing, its coercion did so already), so an offline dry-run plans what a send
    does."""
    try:
        amount, code = money(value, currency)
    except Unconvertible as error:
        failure = PlanFailure(
            f"cannot convert {quoted(value)} for the lead's value: expected {error}",
            redacted="cannot convert a mapped value for the lead's value",
            stage="validate",
        )
        refuse(failure, config.on_invalid, warnings, "left out")
        return None
    return {"amount": amount, "currency": code}


def _labels(value: Any, currency: Any, config: PlanConfig, warnings: list[str]) -> Any:
    # Without the field listing (offline) labels were not listed; nor when their listing failed.
    listed = bool(config.field_types) and "lead_labels" not in config.unlisted  # base.LABELS
    return lead_labels(value, config.lead_labels, warnings, listed=listed) or None


def standard_shapes(rows: tuple[StandardRow, ...]) -> Mapping[str, Shape]:
    """A mapped value takes the shape its standard trait has (one table per entity: `rows`)."""
    return {
        "name": _name,
        **{key: mapped_shape(shape, key) for _, key, shape, _ in rows},
        "add_time": _created,
    }


PERSON_SHAPES = standard_shapes(PERSON_STANDARD)
ORG_SHAPES = standard_shapes(ORG_STANDARD)
LEAD_SHAPES: Mapping[str, Shape] = {
    "value": _lead_value,
    "expected_close_date": lambda value, currency, config, warnings: date_part(value),
    "label_ids": _labels,
    "visible_to": _lead_visible,
}


# The top-level keys each write's request schema declares (v2 persons and organizations, v1
# leads; tests/test_openapi_requests.py holds these to pipedrive-openapi/). A standard field
# that a listing shows but a write does not take (a person's first_name, a deal's stage_id) is
# dropped with a warning: sent, Pipedrive would refuse the whole record.
PERSON_WRITABLE = frozenset(
    {"add_time", "birthday", "emails", "im", "job_title", "label_ids", "marketing_status"}
    | {"name", "notes", "org_id", "owner_id", "phones", "postal_address", "visible_to"}
)
ORG_WRITABLE = frozenset(
    {"add_time", "address", "annual_revenue", "employee_count", "industry", "label_ids"}
    | {"linkedin", "name", "owner_id", "visible_to", "website"}
)
LEAD_WRITABLE = frozenset(
    {"channel", "channel_id", "expected_close_date", "label_ids", "organization_id"}
    | {"origin_id", "owner_id", "person_id", "title", "value", "visible_to", "was_seen"}
)
# v2 deals (track rules): what a mapped property may set besides custom fields; the pipeline
# and stage come from the rule, title, person, organization and origin from rpd.
DEAL_WRITABLE = frozenset(
    {"currency", "expected_close_date", "lost_reason", "probability", "status", "value"}
    | {"visible_to"}
)
DEAL_SHAPES: Mapping[str, Shape] = {
    "value": lambda value, currency, config, warnings: as_number(value),
    "currency": lambda value, currency, config, warnings: currency_code(value),
    "expected_close_date": LEAD_SHAPES["expected_close_date"],
    "visible_to": ORG_SHAPES["visible_to"],
}


class Kind(NamedTuple):
    """What the body of one kind of record takes: its standard trait rows, every trait key a plan
    reads itself (never reported as dropped), how a value mapped to one of its standard fields is
    shaped, the standard fields its writes take, and how its name is read (persons, orgs)."""

    rows: tuple[StandardRow, ...]
    standard: frozenset[str]
    shapes: Mapping[str, Shape]
    writable: frozenset[str]
    after: tuple[Row, ...] = ()  # a lead's or deal's own rows, after the mapped ones
    flat_money: bool = False  # a monetary custom field is two keys, custom fields flat (v1 leads)
    name: Callable[[tuple[Mapping[str, Any], ...], list[str]], str | None] | None = None


CLOSE_ROW: Row = ("expected_close_date", "expected_close_date", OWN, None, None, (), close_date)
LEAD_OWN: tuple[Row, ...] = (
    ("", "title", TITLE, None, None, (), None),
    ("", "value", VALUE, None, "lead", (), own_value),
    CLOSE_ROW,
    ("label_ids", "label_ids", OWN, None, None, (), _labels),
)
DEAL_OWN = (("", "value", VALUE, None, "deal", (), partial(own_value, noun="deal")), CLOSE_ROW)
PERSON_KIND = Kind(
    PERSON_STANDARD, PERSON_STANDARD_KEYS, PERSON_SHAPES, PERSON_WRITABLE, name=person_name
)
ORG_KIND = Kind(ORG_STANDARD, ORG_STANDARD_KEYS, ORG_SHAPES, ORG_WRITABLE, name=org_name)
LEAD_KIND = Kind((), LEAD_STANDARD_KEYS, LEAD_SHAPES, LEAD_WRITABLE, LEAD_OWN, flat_money=True)
DEAL_KIND = Kind((), DEAL_STANDARD_KEYS, DEAL_SHAPES, DEAL_WRITABLE, DEAL_OWN)


WRITABLE: Mapping[str, frozenset[str]] = {
    "persons": PERSON_WRITABLE,
    "organizations": ORG_WRITABLE,
    "leads": LEAD_WRITABLE,
    "deals": DEAL_WRITABLE,
}


def writable(entity: str, key: str) -> bool:
    """Whether a value mapped to the standard field `key` of `entity` (persons, organizations,
    leads) reaches Pipedrive: a write takes it, and rpd does not set or withhold it itself."""
    return key in WRITABLE[entity] and key not in RPD_SETS and key not in NEVER_SENT


def unwritable(key: str, config: PlanConfig) -> str:
    """Why a value mapped to `key`, neither custom nor a field a write takes, is left out."""
    if key in config.field_types:
        return (
            f"a trait is mapped to {key}, a standard field Pipedrive's API does not let rpd "
            "write; dropped (map it to a custom field)"
        )
    if config.field_types:
        return f"a trait is mapped to {key}, which is no field of this account; dropped"
    # Offline: a field given by its name is resolved only with the account's field listing.
    return (
        f"a trait is mapped to {key}, which only the account's field listing can resolve "
        "(dry-run: --lookups, or the state of an earlier send); left out"
    )
