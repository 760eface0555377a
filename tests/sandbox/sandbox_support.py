"""Constants and helpers the sandbox tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from openapi_contract import load, specs_dir

TOKEN = "sandbox-token"
START = 1_780_000_000.0  # 2026-05-28T20:26:40Z: far from a UTC midnight

USER_ID_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
ROLE_FIELD = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
PLAN_FIELD = "2166d04123ea6d974ed242877a8d769fe934c896"
GROUP_ID_FIELD = "872513dc3f908b99275edf2d09fcc9a467df9fa5"
INDUSTRY_FIELD = "defb159c0eed85085c8281ba35dedef9760c65bd"
EMPLOYEES_FIELD = "30ad8f346a94dd54e680b1f9410672d8c6253b5b"
SOURCE_FIELD = "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e"
CAMPAIGN_FIELD = "0ad278b60b7e6b783e51a7f5b9cef17d732fe978"
HOT = "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"
# What a fresh or reset sandbox holds.
EMPTY_STATE = {
    "persons": [],
    "organizations": [],
    "leads": [],
    "merges": [],
    "deals": [],
    "activities": [],
    "notes": [],
}
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def error(message: str) -> dict[str, Any]:
    """Pipedrive's error envelope."""
    return {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }


def search(client: httpx.Client, term: str, field: str = USER_ID_FIELD, **extra: Any) -> Any:
    params = {"term": term, "entity_type": "person", "field": field, "match": "exact", **extra}
    return client.get("/api/v2/itemSearch/field", params=params)


def create_person(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v2/persons", json={"name": "Ann Lee", **body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def load_openapi(name: str) -> dict[str, Any]:
    """A parsed Pipedrive description, found and cached as the request contract does."""
    return dict(load(name))


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`rpd sandbox --port 0 ARGS` in a child process, and the first line it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rudder_pipedrive_cli", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline()


@functools.cache
def extract_script() -> Any:
    """scripts/extract_sandbox_schemas.py as a module (its OPERATIONS list what is served), made
    once, reading the descriptions of tests/data through the request contract's `load` (parsed
    once a session, with yaml's CSafeLoader as the script's own `_load` does): `_load` parsed
    both files again at each extract and extract_query, four times a session beside `load`'s
    once, ~1.5 s of CPU each pair (3 s wall on a loaded 2-core box), two of them at collection."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "extract_sandbox_schemas.py"
    spec = importlib.util.spec_from_file_location("extract_sandbox_schemas", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    parse = script._load

    def parsed_once(openapi_dir: Path) -> dict[str, Any]:
        if openapi_dir != specs_dir():
            return parse(openapi_dir)
        return {name: load(name) for name in ("v1.yaml", "v2.yaml")}

    script._load = parsed_once
    return script


# ---- answers against the documented response schemas -------------------------------------------


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    """Inline $refs and turn OpenAPI 3.0 `nullable` into JSON Schema's null type.

    Pipedrive's descriptions rarely mark `nullable`, while the API answers null for an unset
    optional value (a person without an organization has `"org_id": null`): so a property that is
    not `required` may be null too.
    """
    if isinstance(node, list):
        return [_resolve(doc, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = doc
        for part in node["$ref"].split("/")[1:]:
            target = target[part]
        return _resolve(doc, target)
    out = {k: _resolve(doc, v) for k, v in node.items() if k not in ("example", "nullable")}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out:
        required = set(out.get("required", ()))
        out["properties"] = {
            name: sub if name in required else {"anyOf": [sub, {"type": "null"}]}
            for name, sub in out["properties"].items()
        }
    return out


def response_schema(file: str, path: str, method: str, status: str) -> dict[str, Any]:
    doc = load_openapi(file)
    response = doc["paths"][path][method]["responses"][status]
    schema: dict[str, Any] = _resolve(doc, response)["content"]["application/json"]["schema"]
    return schema


@functools.cache
def _validator(file: str, path: str, method: str, status: str) -> Any:
    """What jsonschema.validate makes of an answer's schema, made once: validate checks the
    schema itself against its metaschema at every call, nine tenths of an answer's check."""
    schema = response_schema(file, path, method, status)
    kind = jsonschema.validators.validator_for(schema)
    kind.check_schema(schema)
    return kind(schema, format_checker=jsonschema.FormatChecker())


def assert_valid(response: httpx.Response, file: str, path: str, method: str) -> None:
    """jsonschema.validate's check: its best-matching error raised, if any."""
    validator = _validator(file, path, method, str(response.status_code))
    error = jsonschema.exceptions.best_match(validator.iter_errors(response.json()))
    if error is not None:
        raise error


# Keys a record's response schema lists that an answer may leave out, by where the descriptions
# say so in words ("included if contact sync is enabled"; those only include_fields brings are
# `only_if_asked`), and these, by name. ("Only available in Growth and above plans" is not one:
# the walks' sandboxes are "unlimited", above every plan, so a deal has arr, mrr and acv.)
ABSENT_BY_DESCRIPTION = re.compile(r"included if")
MAY_BE_ABSENT: Mapping[str, str] = {
    # searchItemByField's schema is itemSearch's (result_score, item); its example and the API
    # answer {id, name} per item, which is what the sandbox answers and rpd reads.
    "result_score": "searchItemByField answers {id, name}",
    "item": "searchItemByField answers {id, name}",
    # getNotes' pagination: the next page's start, when there is one (more_items_in_collection).
    "next_start": "only when there are more",
}
# Objects whose parts are the client's own, kept as given (an address's parts).
AS_GIVEN = frozenset({"address", "postal_address", "location"})


def _properties(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The properties an (allOf or nullable anyOf) object schema lists, all parts together."""
    found: dict[str, Any] = {}
    for part in (schema, *schema.get("allOf", ()), *schema.get("anyOf", ())):
        if isinstance(part, Mapping) and part is not schema:
            found |= _properties(part)
    return found | dict(schema.get("properties", {}))


def _items(schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for part in (schema, *schema.get("anyOf", ())):
        if isinstance(part, Mapping) and isinstance(part.get("items"), Mapping):
            items: Mapping[str, Any] = part["items"]
            return items
    return None


def missing_keys(value: Any, schema: Mapping[str, Any], where: str = "") -> list[str]:
    """Where `value` lacks a key its schema documents (as Pipedrive answers every documented key,
    null when unset), but for those the descriptions make conditional (above)."""
    if isinstance(value, list):
        items = _items(schema)
        return [
            m for i, v in enumerate(value) for m in missing_keys(v, items or {}, f"{where}[{i}]")
        ]
    properties = _properties(schema)
    if not isinstance(value, Mapping) or not properties:
        return []
    missing = [
        f"{where}.{name}"
        for name, sub in properties.items()
        if name not in value
        and name not in MAY_BE_ABSENT
        and not ABSENT_BY_DESCRIPTION.search(_description(sub))
    ]
    for name, item in value.items():
        if name in properties and name not in AS_GIVEN:
            missing += missing_keys(item, properties[name], f"{where}.{name}")
    return missing


def _description(schema: Mapping[str, Any]) -> str:
    return " ".join(
        str(part.get("description", ""))
        for part in (schema, *schema.get("anyOf", ()))
        if isinstance(part, Mapping)
    )


def assert_documented(response: httpx.Response, file: str, path: str, method: str) -> None:
    """An answer validates against its documented schema and leaves out no documented key of
    its `data` and `additional_data` (`missing_keys`) but those include_fields brings, which it
    has only if asked for (`only_if_asked`), and its `additional_data` (the paging) has no key
    the description does not list for it (`undocumented_keys`); a status the operation does not
    document is not checked here."""
    responses = load_openapi(file)["paths"][path][method]["responses"]
    if str(response.status_code) not in responses:
        return
    assert_valid(response, file, path, method)
    schema = response_schema(file, path, method, str(response.status_code))
    if response.status_code >= 300:
        return
    body = response.json()
    missing = missing_keys(body, schema)
    extra = undocumented_keys(
        body.get("additional_data"), _properties(schema).get("additional_data") or {}
    )
    asked_for = only_if_asked(response, file, path, method, _properties(schema).get("data") or {})
    missing = [m for m in missing if m.rpartition(".")[2] not in asked_for]
    rows = body["data"] if isinstance(body["data"], list) else [body["data"]]
    unasked = sorted({k for row in rows if isinstance(row, Mapping) for k in row if k in asked_for})
    shown = list(dict.fromkeys(missing))  # once, not once per row
    assert not missing, f"{response.request.method} {response.request.url}: no {shown}"
    assert not extra, f"{response.request.method} {response.request.url}: undocumented {extra}"
    assert not unasked, f"{response.request.method} {response.request.url}: not asked {unasked}"


_ASKED_FOR = re.compile(r"only included when requested via include_fields", re.IGNORECASE)


def only_if_asked(
    response: httpx.Response, file: str, path: str, method: str, data: Mapping[str, Any]
) -> set[str]:
    """The keys of an answer's records that come only when `include_fields` asks for them (the
    names its values list, "additional fields to include", and keys whose description says "Only
    included when requested via include_fields parameter") and that the request did not ask for."""
    operation = load_openapi(file)["paths"][path][method]
    enum = [
        param.get("schema", {}).get("enum", ())
        for param in operation.get("parameters", ())
        if param.get("name") == "include_fields"
    ]
    record = _items(data) or data
    conditional = {
        name for name, sub in _properties(record).items() if _ASKED_FOR.search(_description(sub))
    }
    asked = set(",".join(response.request.url.params.get_list("include_fields")).split(","))
    named = {name for values in enum for value in values for name in value.split(",")}
    return (named | conditional) - asked


def undocumented_keys(
    value: Any, schema: Mapping[str, Any], where: str = "additional_data"
) -> list[str]:
    """Where `value`, an object, has a key its schema does not list (within listed objects too)."""
    properties = _properties(schema)
    if not isinstance(value, Mapping) or not properties:
        return []
    found = [f"{where}.{name}" for name in value if name not in properties]
    for name, item in value.items():
        if name in properties:
            found += undocumented_keys(item, properties[name], f"{where}.{name}")
    return found


# ---- error answers ---------------------------------------------------------------------------

# The error envelope of Pipedrive's descriptions, for a status an operation documents no answer
# for (most document none: no 400 or 429 anywhere among them): a 401's is unathorizedResponse
# (success, error, errorCode), any other's LeadNotFoundResponse's (success, error, error_info,
# data, additional_data), the shape the descriptions' call log, conversion and lead errors share.
ERROR_ENVELOPES: Mapping[int, tuple[str, str, str, str]] = {
    401: ("v1.yaml", "/users/me", "get", "401"),
    0: ("v1.yaml", "/leads/{id}", "get", "404"),
}


def assert_documented_error(response: httpx.Response, file: str, path: str, method: str) -> None:
    """An error answer is JSON in the schema the operation documents for its status, else in
    the descriptions' error envelope (ERROR_ENVELOPES), with every key that schema lists, and
    says it failed."""
    status = response.status_code
    documented = load_openapi(file)["paths"][path][method]["responses"]
    where = (
        (file, path, method, str(status))
        if str(status) in documented
        else ERROR_ENVELOPES.get(status, ERROR_ENVELOPES[0])
    )
    assert response.headers["content-type"].startswith("application/json"), response.text
    schema = response_schema(*where)
    body = response.json()
    jsonschema.validate(body, schema, format_checker=jsonschema.FormatChecker())
    missing = missing_keys(body, schema)
    assert not missing, f"{response.request.method} {response.request.url} {status}: no {missing}"
    assert body["success"] is False and isinstance(body["error"], str), body
