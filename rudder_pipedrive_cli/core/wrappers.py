"""Unwrapping one decoded JSON value into the events it holds (SPEC 2). Pure: no file I/O.

A value may be a bare event or one of the wrappers real exports come in:
- a RudderStack batch body `{"batch": [...], "writeKey", "receivedAt", ...}`;
- a RudderStack archive line `{"payload": {event}, "messageId", "createdAt", "userId"}`;
- a legacy backup row `{"event_payload": {"batch": [...]}}` (the payload may be a JSON string, as
  database dumps export jsonb columns);
- an rpd dead-letter record `{"event": {...}, "error": {...}, "source": "..."}`, so a dead-letter
  file is valid input. Its item keeps where it was first read as its `origin` (the record's own
  `origin`, a dead letter's sent again, else its `source`): its next dead letter says both.

Wrappers nest (an archive payload or a backup row holds a batch body), so contents are unwrapped
again. A value with a string `type` is always a bare event: a track event's own `event` key (its
name) is a string and never mistaken for a dead-letter record. An object that is neither an event
nor a wrapper is taken as an event, which fails with the reason (`event has no "type"`).

Sources: the N-th element of a batch gets `SOURCE#N` (1-based), so a batch on line 3 gives
`FILE:3#1`, `FILE:3#2`..., and a batch that is the whole file gives `FILE#1`... Single-event
wrappers keep their source.
"""

from __future__ import annotations

from typing import Any

import orjson

from rudder_pipedrive_cli.core.events import Event, invalid, json_word, take

# Wrappers nest at most a few levels in real data; the bound keeps hostile input off the stack.
MAX_DEPTH = 8


def unwrap(value: Any, source: str, depth: int = 0) -> list[Event]:
    """The items of the events `value` holds, each with its source; a single failed item when
    none (`invalid`, at the "read" stage)."""
    if not isinstance(value, dict):
        return [invalid(source, value, f"expected a JSON object, got {json_word(value)}", "read")]
    if isinstance(value.get("type"), str):
        return [take(value, source)]
    if depth >= MAX_DEPTH:
        return [invalid(source, value, f"wrappers nested more than {MAX_DEPTH} deep", "read")]
    if "batch" in value:
        return _unwrap_batch(value, source, depth)
    if "event_payload" in value:
        return unwrap(_decoded(value["event_payload"]), source, depth + 1)
    if "payload" in value:
        return _unwrap_archive(value, source, depth)
    if "event" in value and "error" in value:
        event = value["event"]  # as it was read: a string there is one (not decoded: it failed)
        if not isinstance(event, dict):  # the dead letter of input that held no event
            items = [_failed_again(value, event, source)]
        else:
            items = unwrap(event, source, depth + 1)
        origin = value.get("origin", value.get("source"))
        if isinstance(origin, str) and origin:
            for item in items:
                item.origin = origin
        return items
    return [take(value, source)]


def _failed_again(record: dict[str, Any], event: Any, source: str) -> Event:
    """The dead letter of input that held no event (a line not JSON, an object that could not
    be read), read again: it fails for the reason it first did (counted with its like), at its
    line here, whose record names where it was first read."""
    error = record["error"]
    reason = error.get("reason") if isinstance(error, dict) else None
    if not isinstance(reason, str) or not reason:
        reason = f"expected a JSON object, got {json_word(event)}"
    return invalid(source, event, reason, "read")


def _unwrap_batch(wrapper: dict[str, Any], source: str, depth: int) -> list[Event]:
    batch = wrapper["batch"]
    if not isinstance(batch, list):
        return [invalid(source, wrapper, f'"batch" is not a list (got {json_word(batch)})', "read")]
    items: list[Event] = []
    for number, element in enumerate(batch, 1):
        items.extend(unwrap(element, f"{source}#{number}", depth + 1))
    return items


def _unwrap_archive(wrapper: dict[str, Any], source: str, depth: int) -> list[Event]:
    payload = _decoded(wrapper["payload"])
    if isinstance(payload, dict) and "messageId" not in payload and "messageId" in wrapper:
        # The archive keeps the event's messageId beside the payload: it is the event's identity,
        # and without it a replay would fall back to a content hash.
        payload = {**payload, "messageId": wrapper["messageId"]}
    return unwrap(payload, source, depth + 1)


def _decoded(inner: Any) -> Any:
    """Database dumps export JSON columns as strings: decode one that holds a JSON object."""
    if isinstance(inner, str) and inner.lstrip().startswith("{"):
        try:
            return orjson.loads(inner)
        except orjson.JSONDecodeError:
            return inner
    return inner
