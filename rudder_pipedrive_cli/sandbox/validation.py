"""Strict request validation: the OpenAPI subset Pipedrive's request schemas use, and field values.

Pipedrive v2 does not coerce: a string where an integer belongs is a 400. Each check returns the
first problem as a message ("visible_to: expected integer, got string"), or None.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from rudder_pipedrive_cli.core.fields import TEXT_LIMITS
from rudder_pipedrive_cli.sandbox.schemas import REQUEST_SCHEMAS
from rudder_pipedrive_cli.sandbox.seed import ADDRESS_PARTS, Field

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FIELD_KEY = re.compile(r"^[0-9a-f]{40}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")


# JSON's type names for what orjson parses a body into (anything else is a dict: "object").
_JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number"}
_JSON_TYPES |= {str: "string", list: "array"}


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "object")


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def looks_like_field_key(key: str) -> bool:
    return bool(_FIELD_KEY.match(key))


def check_schema(
    schema: Mapping[str, Any], value: Any, path: str = "", *, extra_ok: bool = True
) -> str | None:
    """The first way `value` breaks `schema`, or None. `extra_ok` lets the object at the top take
    keys the schema does not list (a v1 body's custom fields: the routes check those keys);
    nested objects never do (a lead's value is {amount, currency}), but those that declare
    additionalProperties (custom_fields)."""
    where = path or "body"
    if value is None:
        return None if schema.get("nullable") else f"{where}: must not be null"
    for sub in schema.get("allOf", ()):
        problem = check_schema(sub, value, path, extra_ok=extra_ok)
        if problem:
            return problem
    expected = schema.get("type")
    actual = json_type(value)
    if expected and actual != expected and (expected, actual) != ("number", "integer"):
        return f"{where}: expected {expected}, got {actual}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        return f"{where}: must be one of {allowed}"
    fmt = schema.get("format")
    if fmt == "uuid" and not is_uuid(value):
        return f"{where}: must be a UUID"
    if fmt == "date" and not is_date(value):
        return f"{where}: must be a date (YYYY-MM-DD)"
    if actual == "object":
        return _check_object(schema, value, path, extra_ok=extra_ok)
    if actual == "array" and "items" in schema:
        for i, item in enumerate(value):
            problem = check_schema(schema["items"], item, f"{path}[{i}]", extra_ok=False)
            if problem:
                return problem
    return None


def _check_object(
    schema: Mapping[str, Any], value: Mapping[str, Any], path: str, *, extra_ok: bool
) -> str | None:
    prefix = f"{path}." if path else ""
    for name in schema.get("required", ()):
        if name not in value:
            return f"{prefix}{name}: is required"
    properties: Mapping[str, Any] = schema.get("properties", {})
    # Strict all the way down (an address's parts, an email's keys, a lead's value), but for
    # objects that declare additionalProperties (custom_fields).
    open_ended = extra_ok or bool(schema.get("additionalProperties"))
    for name, item in value.items():
        if name in properties:
            problem = check_schema(properties[name], item, prefix + name, extra_ok=False)
            if problem:
                return problem
        elif not open_ended:
            return f"{prefix}{name}: unknown property"
    return None


def check_field_value(field: Field, value: Any, where: str, *, v1: bool = False) -> str | None:
    """Check a custom field value strictly by the field's type; None clears a field. v1 (a
    lead's fields) takes an address as its text: only monetary, daterange and timerange fields
    have parts there (v1.yaml, "Lead fields")."""
    if value is None:
        return None
    kind = json_type(value)
    check = _check_text if v1 and field.type == "address" else _FIELD_CHECKS.get(field.type)
    problem = (check or _check_text)(field, value, kind)
    return f"{where}: {problem}" if problem else None


def _check_text(field: Field, value: Any, kind: str) -> str | None:
    if kind != "string":
        return f"expected string for a {field.type} field, got {kind}"
    limit = TEXT_LIMITS.get(field.type)  # "Text (up to 255 characters)"
    if limit is not None and len(value) > limit:
        return f"a {field.type} field holds at most {limit} characters, got {len(value)}"
    return None


def _check_number(field: Field, value: Any, kind: str) -> str | None:
    ok = kind in ("integer", "number") if field.type == "double" else kind == "integer"
    return None if ok else f"expected number for a {field.type} field, got {kind}"


def _check_enum(field: Field, value: Any, kind: str) -> str | None:
    if kind != "integer":
        return f"expected an option id (integer) for an enum field, got {kind}"
    return None if value in field.option_ids else f"{value} is not an option of {field.name!r}"


def _check_set(field: Field, value: Any, kind: str) -> str | None:
    if kind != "array" or not all(json_type(v) == "integer" for v in value):
        return "expected a list of option ids (integers) for a set field"
    if not value:  # v2.yaml: "sending an empty array [] is not supported": null clears a set
        return "an empty list is not a set field's value: null clears it"
    unknown = [v for v in value if v not in field.option_ids]
    return f"{unknown[0]} is not an option of {field.name!r}" if unknown else None


def _check_date(field: Field, value: Any, kind: str) -> str | None:
    return None if kind == "string" and is_date(value) else "expected a date (YYYY-MM-DD)"


def _check_monetary(field: Field, value: Any, kind: str) -> str | None:
    schema = {
        "type": "object",
        "required": ["value", "currency"],
        "properties": {"value": {"type": "number"}, "currency": {"type": "string"}},
    }
    return check_schema(schema, value, "value", extra_ok=False)


def _check_boolean(field: Field, value: Any, kind: str) -> str | None:
    return None if kind == "boolean" else f"expected boolean for a boolean field, got {kind}"


def _check_id(field: Field, value: Any, kind: str) -> str | None:
    """A user, organization or person field holds that record's id."""
    if kind == "integer" and value > 0:
        return None
    return f"expected an id (integer) for a {field.type} field, got {kind}"


def _check_time(field: Field, value: Any, kind: str) -> str | None:
    ok = kind == "string" and _TIME.match(value)
    return None if ok else "expected a time (HH:MM:SS)"


# An address field is an object of its subfields (v2.yaml: "subfields ... (address, monetary)").
_ADDRESS = {
    "type": "object",
    "properties": {p: {"type": "string"} for p in ("value", *ADDRESS_PARTS)},
}


def _check_address(field: Field, value: Any, kind: str) -> str | None:
    return check_schema(_ADDRESS, value, "value", extra_ok=False)


_FIELD_CHECKS = {
    "double": _check_number,
    "int": _check_number,
    "enum": _check_enum,
    "set": _check_set,
    "date": _check_date,
    "monetary": _check_monetary,
    "boolean": _check_boolean,
    "user": _check_id,
    "org": _check_id,
    "people": _check_id,
    "time": _check_time,
    "address": _check_address,
}


# Pipedrive's visibility groups: v1.yaml enumerates them for leads (as text), the one write whose
# schema does; v2's persons, organizations and deals take the same groups as integers.
VISIBILITY_GROUPS = tuple(
    int(group)
    for group in REQUEST_SCHEMAS["POST /v1/leads"]["properties"]["visible_to"]["allOf"][0]["enum"]
)


def check_visibility(body: Mapping[str, Any]) -> str | None:
    """A v2 body's `visible_to` (already an integer, by its schema) names a visibility group."""
    group = body.get("visible_to")
    if group is None or group in VISIBILITY_GROUPS:
        return None
    return f"visible_to: must be one of {', '.join(map(str, VISIBILITY_GROUPS))}"


def check_custom_fields(fields: Mapping[str, Field], values: Mapping[str, Any]) -> str | None:
    """Every key must be a known custom field and every value of its field's type."""
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            return f"custom_fields.{key}: unknown custom field"
        problem = check_field_value(field, value, f"custom_fields.{key}")
        if problem:
            return problem
    return None


def parse_rfc3339(value: str) -> dt.datetime | None:
    """A timezone-aware datetime from RFC 3339 text ('Z' or an offset required), else None."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
