"""Unwrapping decoded JSON values into raw events (SPEC 2): every accepted shape, and failures."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from objects_support import Item, viewed

from rudder_pipedrive_cli.core.events import EventError, parse_event
from rudder_pipedrive_cli.core.wrappers import MAX_DEPTH, unwrap

IDENTIFY = {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "Ann"}}
TRACK = {"type": "track", "messageId": "m-2", "userId": "u-1", "event": "Signed Up"}


def ok(source: str, value: Any) -> Item:
    return Item(source=source, raw=value)


def bad(source: str, value: Any, error: str) -> Item:
    return Item(source=source, raw=value, error=error)


def viewed_unwrap(value: Any, source: str) -> list[Item]:
    return viewed(unwrap(value, source))


BATCH_BODY = {"batch": [IDENTIFY, TRACK], "writeKey": "wk", "receivedAt": "2024-05-01T00:00:00Z"}

CASES: list[tuple[str, Any, list[Item]]] = [
    ("bare event", IDENTIFY, [ok("f:1", IDENTIFY)]),
    (
        "track event with an error property is not a dead-letter record",
        {**TRACK, "error": {"code": 1}},
        [ok("f:1", {**TRACK, "error": {"code": 1}})],
    ),
    ("batch body", BATCH_BODY, [ok("f:1#1", IDENTIFY), ok("f:1#2", TRACK)]),
    ("empty batch holds no events", {"batch": []}, []),
    (
        "batch that is not a list",
        {"batch": {"type": "track"}},
        [bad("f:1", {"batch": {"type": "track"}}, '"batch" is not a list (got an object)')],
    ),
    (
        "non-object inside a batch",
        {"batch": [IDENTIFY, 5, None, ["x"]]},
        [
            ok("f:1#1", IDENTIFY),
            bad("f:1#2", 5, "expected a JSON object, got a number"),
            bad("f:1#3", None, "expected a JSON object, got null"),
            bad("f:1#4", ["x"], "expected a JSON object, got a list"),
        ],
    ),
    (
        "archive line",
        {"payload": IDENTIFY, "messageId": "m-1", "createdAt": "2024-05-01", "userId": "u-1"},
        [ok("f:1", IDENTIFY)],
    ),
    (
        "archive line lends its messageId to a payload without one",
        {"payload": {"type": "track", "event": "X"}, "messageId": "m-9", "userId": "u-1"},
        [ok("f:1", {"type": "track", "event": "X", "messageId": "m-9"})],
    ),
    (
        "archive payload's own messageId wins",
        {"payload": IDENTIFY, "messageId": "other"},
        [ok("f:1", IDENTIFY)],
    ),
    (
        "archive payload holding a batch body",
        {"payload": BATCH_BODY, "messageId": "job-1"},
        [ok("f:1#1", IDENTIFY), ok("f:1#2", TRACK)],
    ),
    (
        "archive payload stored as a JSON string",
        {"payload": orjson.dumps(IDENTIFY).decode(), "messageId": "m-1"},
        [ok("f:1", IDENTIFY)],
    ),
    (
        "archive payload that is not an object",
        {"payload": "hello", "messageId": "m-1"},
        [bad("f:1", "hello", "expected a JSON object, got a string")],
    ),
    (
        "legacy backup row",
        {"event_payload": {"batch": [IDENTIFY, TRACK]}, "job_id": 7},
        [ok("f:1#1", IDENTIFY), ok("f:1#2", TRACK)],
    ),
    (
        "legacy backup row with the payload as a JSON string",
        {"event_payload": orjson.dumps({"batch": [TRACK]}).decode()},
        [ok("f:1#1", TRACK)],
    ),
    (
        "dead-letter record",
        {"event": IDENTIFY, "error": {"reason": "boom", "retryable": True}, "source": "a:3"},
        [ok("f:1", IDENTIFY)],
    ),
    (
        "dead-letter record whose event is not an object",
        {"event": None, "error": {"reason": "not valid JSON"}, "source": "a:3"},
        [bad("f:1", None, "not valid JSON")],
    ),
    (
        "dead-letter record whose event is not an object, without a reason",
        {"event": [1], "error": None, "source": "a:3"},
        [bad("f:1", [1], "expected a JSON object, got a list")],
    ),
    ("array value", [IDENTIFY], [bad("f:1", [IDENTIFY], "expected a JSON object, got a list")]),
    ("string value", "x", [bad("f:1", "x", "expected a JSON object, got a string")]),
    (  # its dead letter, sent again, was decoded and sent: what failed for good, with no fix
        "string value holding an event's JSON",
        orjson.dumps(IDENTIFY).decode(),
        [bad("f:1", orjson.dumps(IDENTIFY).decode(), "expected a JSON object, got a string")],
    ),
    ("number value", 1.5, [bad("f:1", 1.5, "expected a JSON object, got a number")]),
    ("boolean value", True, [bad("f:1", True, "expected a JSON object, got a boolean")]),
    # An object that is neither an event nor a wrapper goes on: parse_event names the problem.
    (
        "object without a type: taken as an event, which fails",
        {"userId": "u"},
        [bad("f:1", {"userId": "u"}, 'event has no "type"')],
    ),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unwrap(value: Any, expected: list[Item]) -> None:
    assert viewed_unwrap(value, "f:1") == expected


def test_whole_file_batch_gets_file_hash_sources() -> None:
    assert viewed_unwrap(BATCH_BODY, "events.json") == [
        ok("events.json#1", IDENTIFY),
        ok("events.json#2", TRACK),
    ]


def test_batch_in_an_array_element_numbers_both_levels() -> None:
    assert viewed_unwrap({"batch": [TRACK]}, "events.json#3") == [ok("events.json#3#1", TRACK)]


def test_object_without_type_fails_in_parse_event() -> None:
    [item] = viewed_unwrap({"userId": "u"}, "f:1")
    with pytest.raises(EventError, match='event has no "type"'):
        parse_event(item.raw, item.source)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"type": 5, "userId": "u"}, 'event "type" is not a string (got a number)'),
        ({"type": ["identify"]}, 'event "type" is not a string (got a list)'),
        ({"type": "  "}, 'event has no "type"'),
        ({"type": None}, 'event has no "type"'),
    ],
)
def test_a_type_that_is_not_a_name_says_what_it_is(value: dict[str, Any], reason: str) -> None:
    [item] = viewed_unwrap(value, "f:1")
    with pytest.raises(EventError) as caught:
        parse_event(item.raw, item.source)
    assert str(caught.value) == reason


def test_nesting_is_bounded() -> None:
    value: Any = IDENTIFY
    for _ in range(MAX_DEPTH + 2):
        value = {"payload": value}
    [item] = viewed_unwrap(value, "f:1")
    assert item.error == f"wrappers nested more than {MAX_DEPTH} deep"
    assert item.source == "f:1"


def test_nesting_within_the_bound_unwraps() -> None:
    value: Any = IDENTIFY
    for _ in range(MAX_DEPTH):
        value = {"payload": value}
    assert viewed_unwrap(value, "f:1") == [ok("f:1", IDENTIFY)]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dead_letter_of_any_item_unwraps_to_the_same_value_and_reason(
    value: Any, expected: list[Item]
) -> None:
    """A dead-letter record of a failed item reads back as the same failure (or the same event),
    and its own dead letter as the same again: the reason counts with its like."""
    for item in viewed_unwrap(value, "f:1"):
        record = {"event": item.raw, "error": {"reason": item.error}, "source": item.source}
        again = viewed_unwrap(orjson.loads(orjson.dumps(record)), "dead.ndjson:1")
        assert again == [Item(source="dead.ndjson:1", raw=item.raw, error=item.error)]
        record = {"event": item.raw, "error": {"reason": item.error}, "source": "dead.ndjson:1"}
        assert viewed_unwrap(orjson.loads(orjson.dumps(record)), "dead2.ndjson:1") == [
            Item(source="dead2.ndjson:1", raw=item.raw, error=item.error)
        ]
