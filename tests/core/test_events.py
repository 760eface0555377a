"""Events: each identity's fallbacks, in order, read only when needed, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from rudder_pipedrive_cli.core.events import (
    EVERY,
    GROUP_ID_PATHS,
    INVALID,
    PREVIOUS_ID_PATHS,
    USER_ID_PATHS,
    EventError,
    invalid,
    parse_event,
    quoted,
    take,
)
from rudder_pipedrive_cli.core.protocol import Outcome

CURR_0, ORG_5 = {"type": "curr_person_id", "id": 0}, {"type": "org_id", "id": 5}
PERSON_X, ORG_6 = {"type": "person_id", "id": "x"}, {"type": "pipedriveGroupId", "id": "6"}
WHOLE, ORGS = " (a whole number from 1 up)", "org_id = 5 and pipedriveGroupId = 6"


def identities(kind: str = "identify", **raw: Any) -> tuple[Any, ...]:
    event = parse_event({"type": kind, "messageId": "m-1", **raw}, "f:1")
    refused = event.refused.reason if event.refused is not None else None
    return event.user_id, event.group_id, event.previous_id, dict(event.external), refused


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # A top-level null or empty value falls back to the nested paths.
        ({"groupId": None, "traits": {"groupId": "g-1"}}, (None, "g-1", None, {}, None)),
        ({"userId": "  ", "traits": {"id": 5.0}}, ("5", None, None, {}, None)),
        (
            {
                "previousId": "",
                "traits": {"previousId": ""},
                "context": {"traits": {"previousId": 7}},
            },
            (None, None, "7", {}, None),
        ),
        # The first present, non-empty value wins: traits.userId before traits.id.
        ({"traits": {"userId": "u-1", "id": "u-2"}}, ("u-1", None, None, {}, None)),
        # What is not an object is passed over, not an error.
        ({"traits": "x", "context": {"traits": {"id": "u-2"}}}, ("u-2", None, None, {}, None)),
        ({"context": "x", "traits": {"groupId": 3}}, (None, "3", None, {}, None)),
        # A top-level value wins over the nested ones, which are then not read at all.
        ({"userId": "u-1", "traits": {"userId": True}}, ("u-1", None, None, {}, None)),
        (
            {"userId": "u-1", "context": {"externalId": {"type": "person_id", "id": "007"}}},
            ("u-1", None, None, {"person_id": "7"}, None),
        ),
        # An identity value that cannot be one refuses the event, naming the path it was read at.
        (
            {"userId": None, "traits": {"userId": True}},
            (None, None, None, {}, "traits.userId is not a string or number (got true)"),
        ),
        (
            {"kind": "group", "userId": "u-1", "groupId": {"id": 1}},
            (None, None, None, {}, "groupId is not a string or number (got an object)"),
        ),
        (
            {"kind": "alias", "userId": "u-1", "context": {"traits": {"previousId": [1]}}},
            (
                None,
                None,
                None,
                {},
                "context.traits.previousId is not a string or number (got a list)",
            ),
        ),
        # ... but only an identity its type uses: a groupId only a group's, a previousId only
        # an alias's. An identify whose traits list the user's groups is still that user's.
        (
            {"userId": "u-1", "traits": {"groupId": ["g-1", "g-2"]}},
            ("u-1", None, None, {}, None),
        ),
        (
            {"kind": "track", "userId": "u-1", "context": {"traits": {"previousId": {"id": 1}}}},
            ("u-1", None, None, {}, None),
        ),
        ({"kind": "alias", "userId": "u-1", "groupId": True}, ("u-1", None, None, {}, None)),
        ({"kind": "group", "userId": "u-1", "previousId": [2]}, ("u-1", None, None, {}, None)),
        (  # a type rpd skips is refused as before (skipped all the same)
            {"kind": "page", "userId": "u-1", "groupId": True},
            (None, None, None, {}, "groupId is not a string or number (got true)"),
        ),
        # So is an external id: an org_id is a group's, prev_ and curr_person_id an alias's,
        # person_id every other type's.
        (
            {"kind": "track", "userId": "u-1", "context": {"externalId": {"type": "org_id"}}},
            ("u-1", None, None, {}, None),
        ),
        (
            {"kind": "group", "userId": "u-1", "context": {"externalId": [CURR_0, ORG_5]}},
            ("u-1", None, None, {"org_id": "5"}, None),
        ),
        (
            {"kind": "alias", "userId": "u-1", "context": {"externalId": [PERSON_X, CURR_0]}},
            (None, None, None, {}, "external id curr_person_id = 0 is not a Pipedrive id" + WHOLE),
        ),
        (
            {"kind": "group", "userId": "u-1", "context": {"externalId": [ORG_5, CURR_0, ORG_6]}},
            (None, None, None, {}, "context.externalId names two different org_id ids: " + ORGS),
        ),
    ],
)
def test_identity_fallbacks(raw: dict[str, Any], expected: tuple[Any, ...]) -> None:
    assert identities(**raw) == expected


def nested(path: str, value: Any) -> dict[str, Any]:
    """The event body holding `value` at the dotted `path` only."""
    *outer, key = path.split(".")
    body: dict[str, Any] = {key: value}
    for part in reversed(outer):
        body = {part: body}
    return body


@pytest.mark.parametrize(
    ("slot", "path"),
    [
        (slot, path)
        for slot, paths in enumerate((USER_ID_PATHS, GROUP_ID_PATHS, PREVIOUS_ID_PATHS))
        for path in paths
    ],
)
def test_every_path_of_an_identity_is_read_when_it_alone_holds_the_value(
    slot: int, path: str
) -> None:
    """Each path of each identity's table, the only one holding a value, gives the identity:
    a path added to a table is read too (Event's straight line guards the fallbacks of groupId
    and previousId by their keys, which must follow the tables)."""
    expected: list[Any] = [None, None, None]
    expected[slot] = "id-1"
    assert identities(**nested(path, " id-1 "))[:3] == tuple(expected)


def test_ids_type_and_anonymous_id() -> None:
    event = parse_event({"type": " Track ", "messageId": 12.0, "anonymousId": " a-1 "}, "f:2")
    assert (event.id, event.type, event.anonymous_id, event.source) == ("12", "track", "a-1", "f:2")
    assert parse_event(
        {"type": "track", "messageId": "  ", "anonymousId": ""}, "f:3"
    ).id.startswith("sha1:")
    assert parse_event({"type": "track", "anonymousId": ""}, "f:3").anonymous_id is None
    # A messageId of 0 is an id like any number, not a missing one (no hash instead).
    assert parse_event({"type": "track", "messageId": 0}, "f:4").id == "0"


TRACK_BODY = (
    'event has no "type" (it names an "event", as a track call\'s body does: add "type": "track")'
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([1], "expected a JSON object, got a list"),
        ({"userId": "u-1"}, 'event has no "type"'),
        ({"type": "  "}, 'event has no "type"'),
        # A track call's body (Segment's, RudderStack's /v1/track): its endpoint was its type.
        ({"event": "Order Completed", "userId": "u-1"}, TRACK_BODY),
        ({"type": "", "event": "Order Completed"}, TRACK_BODY),
        ({"event": 5, "userId": "u-1"}, 'event has no "type"'),  # no event name: no guess
        ({"type": 3}, 'event "type" is not a string (got a number)'),
    ],
)
def test_not_an_event(raw: Any, message: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(raw, "f:1")
    assert str(caught.value) == message


class Recording(dict[str, Any]):
    """A decoded object that notes each key looked up in it."""

    def __init__(self, looked: list[str], **values: Any) -> None:
        super().__init__(values)
        self.looked = looked

    def get(self, key: str, default: Any = None) -> Any:
        self.looked.append(key)
        return super().get(key, default)


def test_fallback_keys_are_read_only_when_the_top_level_value_is_missing() -> None:
    looked: list[str] = []
    traits = Recording(looked, groupId="g-2")
    inner = Recording(looked, previousId="p-2")
    context = Recording(looked, traits=inner)
    base = {"type": "identify", "messageId": "m-1", "traits": traits, "context": context}
    event = parse_event({**base, "userId": "u-1", "groupId": "g-1", "previousId": "p-1"}, "f:1")
    assert (event.user_id, event.group_id, event.previous_id) == ("u-1", "g-1", "p-1")
    # Every identity at the top: no fallback key is looked up (context's keys are read).
    assert looked == ["traits", "externalId"]
    looked.clear()
    event = parse_event({**base, "userId": "u-1", "groupId": None, "previousId": ""}, "f:1")
    assert (event.user_id, event.group_id, event.previous_id) == ("u-1", "g-2", "p-2")
    # traits.groupId; traits.previousId, then context.traits.previousId (the first is absent).
    assert looked == ["traits", "groupId", "previousId", "previousId", "externalId"]


def test_input_that_is_not_an_event_is_one_item() -> None:
    item = invalid("f:9", "{oops", "not valid JSON: unexpected end of data at column 6", "read")
    assert (item.id, item.type, item.kind, item.source, item.raw) == (
        "",
        INVALID,
        INVALID,
        "f:9",
        "{oops",
    )
    assert item.event is None and item.refused is None
    assert item.decided == Outcome(
        status="failed", reason="not valid JSON: unexpected end of data at column 6", stage="read"
    )
    event = take({"type": "identify", "messageId": "m-1"}, "f:1")
    assert event.event is event and event.decided is None and event.kind == "identify"
    refused = take({"messageId": "m-2"}, "f:2")
    assert (refused.kind, refused.raw, refused.event) == (INVALID, {"messageId": "m-2"}, None)
    assert refused.decided == Outcome(status="failed", reason='event has no "type"', stage="parse")


def test_ordering_keys_name_every_identity_of_the_event() -> None:
    external = [{"type": "pipedriveGroupId", "id": 5}, {"type": "person_id", "id": "007"}]
    event = parse_event(
        {
            "type": "identify",
            "messageId": "m-1",
            "userId": "u-1",
            "previousId": "u-0",
            "groupId": "g-1",
            "context": {"externalId": external},
        },
        "f:1",
    )
    assert event.identities == {"u:u-1", "u:u-0", "g:g-1", "o:5", "p:7"}
    assert parse_event(
        {"type": "track", "messageId": "m-2", "anonymousId": "a"}, "f:2"
    ).identities == (frozenset())
    assert parse_event({"type": "alias", "userId": "u-1"}, "f:3").identities == {EVERY}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("José 😀", "José 😀"),  # as written: no quotes, no escapes
        (5, "5"),
        ({"a": [1, None]}, '{"a":[1,null]}'),
        ("a\nb", '"a\\nb"'),  # a line break would begin a line of its own
        ("a\r\x1b[2K", '"a\\r\\u001b[2K"'),  # nor rewrite the line on a terminal
        ("a\u2028b\x7f\x85", '"a\\u2028b\\u007f\\u0085"'),
        ("é" * 61, "é" * 60 + "... (61 characters)"),
        (["x" * 100], '["' + "x" * 58 + "... (104 characters)"),
    ],
)
def test_a_quoted_value_is_one_line_of_at_most_60_characters_and_its_length(
    value: object, shown: str
) -> None:
    assert quoted(value) == shown
