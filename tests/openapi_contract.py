"""Check a request against Pipedrive's own OpenAPI descriptions (tests/data/pipedrive-openapi/).

`check_request(request)` fails (ContractError) unless the operation exists for the method and path
(v1 under `/v1`, v2 under `/api/v2`), the request's `endpoint` is that operation's path template,
path and query parameters are declared and fit their schemas, required ones are present, and the
body validates against the request schema (OpenAPI 3.0 `nullable` honoured; undeclared top-level
keys allowed only in v1 bodies and only when they look like custom field keys, as v1 leads take
them: v2 bodies hold custom fields in `custom_fields`; nested objects list their keys too), and
what the descriptions require only in words holds (`within_the_prose`, `PROSE`: limits, the
search term's length, a lead's or note's link).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rudder_pipedrive_cli.core.protocol import ApiRequest

SPECS = Path(__file__).resolve().parent / "data" / "pipedrive-openapi"
SERVERS = (("/api/v2", "v2.yaml"), ("/v1", "v1.yaml"))
CUSTOM_KEY = re.compile(r"^[0-9a-f]{40}(_currency)?$")
# Body properties Pipedrive takes that this copy of the descriptions does not list yet, by
# operation: exactly these, nothing more general. addDeal's `origin_id`: Pipedrive's changelog
# "Introducing 4 new fields for Leads and Deals" (effective 2024-05-20) says of origin_id "User
# can supply a value in POST payload"; v2.yaml lists it in deal answers only. rpd sends it
# (SPEC 4 track rules) so a deal can be found again; the sandbox takes it likewise (EXTENSIONS in
# scripts/extract_sandbox_schemas.py).
EXTENSIONS: Mapping[str, Mapping[str, Any]] = {
    "POST /api/v2/deals": {"origin_id": {"type": ["string", "null"]}},
}


class ContractError(AssertionError):
    """The request is not one Pipedrive's description allows."""


@dataclass(frozen=True, slots=True)
class Operation:
    template: str  # with the server prefix, as ApiRequest.endpoint spells it
    spec: Mapping[str, Any]
    op: Mapping[str, Any]
    params: tuple[Mapping[str, Any], ...]


def specs_dir() -> Path:
    """The copy of Pipedrive's descriptions kept in the repository (see its SOURCE.md)."""
    return SPECS


@functools.cache
def load(name: str) -> Mapping[str, Any]:
    """A parsed description; cached for the session (the files are megabytes)."""
    with (specs_dir() / name).open(encoding="utf-8") as handle:
        loaded: Mapping[str, Any] = yaml.load(
            handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    return loaded


def resolve(spec: Mapping[str, Any], node: Any, depth: int = 0) -> Any:
    """Inline `$ref`s and turn OpenAPI 3.0 `nullable` into JSON Schema."""
    if depth > 40:
        return {}
    if isinstance(node, list):
        return [resolve(spec, item, depth + 1) for item in node]
    if not isinstance(node, Mapping):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target[part]
        return resolve(spec, target, depth + 1)
    out = {k: resolve(spec, v, depth + 1) for k, v in node.items() if not k.startswith("x-")}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "type" not in out and "enum" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def find_operation(method: str, path: str) -> Operation:
    for prefix, name in SERVERS:
        if not path.startswith(prefix + "/"):
            continue
        spec = load(name)
        rest = path[len(prefix) :]
        matches = []
        for template, item in spec["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, rest) and method.lower() in item:
                literal = template.count("{")
                matches.append((literal, template, item))
        if not matches:
            raise ContractError(f"{method} {path}: no such operation in {name}")
        _, template, item = min(matches)
        op = item[method.lower()]
        params = tuple(
            resolve(spec, p) for p in [*item.get("parameters", []), *op.get("parameters", [])]
        )
        return Operation(template=prefix + template, spec=spec, op=op, params=params)
    raise ContractError(f"{method} {path}: not under /v1 or /api/v2")


def fits(value: Any, schema: Mapping[str, Any], where: str) -> None:
    """Path and query values travel as text: an integer parameter takes an int or digits, a
    number one a number's text, a boolean one true or false."""
    if schema.get("type") == "integer" and isinstance(value, str):
        if not re.fullmatch(r"-?\d+", value):
            raise ContractError(f"{where} = {value!r} is not an integer")
        value = int(value)
    if schema.get("type") == "number" and isinstance(value, str):
        if not re.fullmatch(r"-?\d+(\.\d+)?", value):
            raise ContractError(f"{where} = {value!r} is not a number")
        value = float(value) if "." in value else int(value)
    if schema.get("type") == "boolean" and isinstance(value, str):
        if value not in ("true", "false"):
            raise ContractError(f"{where} = {value!r} is not true or false")
        value = value == "true"
    if schema.get("type") == "string" and isinstance(value, int):
        value = str(value)
    validate(value, schema, where)


def validate(value: Any, schema: Mapping[str, Any], where: str) -> None:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        at = "/".join(str(p) for p in first.path)
        raise ContractError(f"{where}{'/' + at if at else ''}: {first.message}")


def check(
    method: str, path: str, query: Mapping[str, Any], body: Any, endpoint: str | None = None
) -> None:
    operation = find_operation(method, path)
    fits_the_schemas(operation, method, path, query, body, endpoint)
    rule = PROSE.get(f"{method} {operation.template}")
    problem = rule(query, body) if rule is not None else None
    if problem:
        raise ContractError(f"{method} {path}: {problem}")


def fits_the_schemas(
    operation: Operation,
    method: str,
    path: str,
    query: Mapping[str, Any],
    body: Any,
    endpoint: str | None,
) -> None:
    if endpoint is not None and endpoint != operation.template:
        raise ContractError(f"endpoint {endpoint!r} should be {operation.template!r}")
    where = f"{method} {path}"
    path_values = dict(
        zip(
            re.findall(r"\{([^}]+)\}", operation.template),
            re.match(
                "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(operation.template)) + "$",
                path,
            ).groups(),  # type: ignore[union-attr]
            strict=True,
        )
    )
    declared = {(p["in"], p["name"]): p for p in operation.params}
    for name, value in path_values.items():
        param = declared.get(("path", name))
        if param is None:
            raise ContractError(f"{where}: path parameter {name} is not declared")
        fits(value, param.get("schema", {}), f"{where} path {name}")
    for name, value in query.items():
        param = declared.get(("query", name))
        if param is None:
            raise ContractError(f"{where}: query parameter {name!r} is not declared")
        fits(value, param.get("schema", {}), f"{where} query {name}")
    for (place, name), param in declared.items():
        if place == "query" and param.get("required") and name not in query:
            raise ContractError(f"{where}: required query parameter {name!r} missing")
        if place == "query" and name in query:
            within_the_prose(name, str(query[name]), param.get("description", ""), where)
    request_body = operation.op.get("requestBody")
    if request_body is None:
        if body is not None:
            raise ContractError(f"{where}: takes no body")
        return
    schema = resolve(operation.spec, request_body)["content"]["application/json"]["schema"]
    extension = EXTENSIONS.get(f"{method} {operation.template}")
    if extension is not None:
        schema = {**schema, "properties": {**schema.get("properties", {}), **extension}}
    if body is None:
        if request_body.get("required"):
            raise ContractError(f"{where}: body required")
        return
    validate(body, schema, f"{where} body")
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and isinstance(body, Mapping):
        for key in body:
            custom = path.startswith("/v1/") and CUSTOM_KEY.match(str(key))
            if key not in properties and not custom:
                raise ContractError(f"{where} body: {key!r} is not a field of this operation")
            if key in properties:
                no_unknown_keys(body[key], properties[key], f"{where} body/{key}")


def within_the_prose(name: str, value: str, description: str, where: str) -> None:
    """The bounds a parameter's description states in words: "a maximum value of 500" (limit),
    "up to 100 entity ids" (ids), "A maximum of 15 keys" (custom_fields)."""
    bounds = (
        (r"maximum value of (\d+)", lambda: int(value) if value.lstrip("-").isdigit() else 0),
        (r"up to (\d+) entity ids", lambda: len(value.split(","))),
        (r"maximum of (\d+) keys", lambda: len(value.split(","))),
    )
    for pattern, size in bounds:
        found = re.search(pattern, description)
        if found and size() > int(found[1]):
            raise ContractError(f"{where} query {name}: more than {found[1]} ({value!r})")


def _search_term(query: Mapping[str, Any], body: Any) -> str | None:
    """searchItemByField: "Minimum 2 characters (or 1 if `match` is `exact`)"."""
    least = 1 if query.get("match", "exact") == "exact" else 2
    term = str(query.get("term", ""))
    return None if len(term) >= least else f"term {term!r} is under {least} character(s)"


def _linked(*keys: str) -> Any:
    """A write that needs one of `keys` ("A lead always has to be linked to a person or an
    organization"; a note's link "is required unless one of ... is specified")."""

    def linked(query: Mapping[str, Any], body: Any) -> str | None:
        if isinstance(body, Mapping) and any(body.get(key) is not None for key in keys):
            return None
        return f"the body links to none of {', '.join(keys)}"

    return linked


# What an operation's descriptions require in words, which its schemas cannot say.
PROSE: Mapping[str, Any] = {
    "GET /api/v2/itemSearch/field": _search_term,
    "POST /v1/leads": _linked("person_id", "organization_id"),
    "POST /v1/notes": _linked("lead_id", "deal_id", "person_id", "org_id", "project_id", "task_id"),
}


def no_unknown_keys(value: Any, schema: Mapping[str, Any], where: str) -> None:
    """Within a body's values too (an email's keys, an address's parts, a participant's), a key
    is one its object lists, unless the object takes any (`additionalProperties`, as
    custom_fields does): JSON Schema lets any other pass, so a misspelt key would."""
    parts = [schema, *schema.get("allOf", ()), *schema.get("anyOf", ())]
    if isinstance(value, list):
        for part in parts:
            if isinstance(part.get("items"), Mapping):
                for i, item in enumerate(value):
                    no_unknown_keys(item, part["items"], f"{where}/{i}")
        return
    if not isinstance(value, Mapping) or any(p.get("additionalProperties") for p in parts):
        return
    known = {name: sub for part in parts for name, sub in part.get("properties", {}).items()}
    if not known:  # an object the description leaves open ("type": "object" alone)
        return
    for key, item in value.items():
        if key not in known:
            raise ContractError(f"{where}: {key!r} is not a field of this object")
        no_unknown_keys(item, known[key], f"{where}/{key}")


def check_request(request: ApiRequest) -> None:
    check(request.method, request.path, request.query, request.body, request.endpoint)
