"""Turning one raw RudderStack event (a dict) into an `Event` with its identities resolved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from rudder_pipedrive_cli.core.protocol import Outcome

if TYPE_CHECKING:
    from rudder_pipedrive_cli.core.identity_cache import AliasesRead
    from rudder_pipedrive_cli.core.rules import TrackRule

# External id types: the seed's names first, then RudderStack's later names for the same thing.
EXTERNAL_ID_TYPES: Mapping[str, str] = {
    "person_id": "person_id",
    "pipedrivePersonId": "person_id",
    "org_id": "org_id",
    "pipedriveGroupId": "org_id",
    "prev_person_id": "prev_person_id",
    "pipedrivePreviousId": "prev_person_id",
    "curr_person_id": "curr_person_id",
    "pipedriveCurrentId": "curr_person_id",
}

# Ordered fallbacks for each identity: the first present, non-empty value wins.
USER_ID_PATHS = (
    "userId",
    "traits.userId",
    "traits.id",
    "context.traits.userId",
    "context.traits.id",
)
GROUP_ID_PATHS = ("groupId", "traits.groupId")
PREVIOUS_ID_PATHS = ("previousId", "traits.previousId", "context.traits.previousId")
TIME_PATHS = ("timestamp", "originalTimestamp", "sentAt")


# Each identity's top-level key, then its fallbacks in order as (in `context.traits`, key, path
# for messages); read only when the top-level value is not a non-empty string.
_FALLBACKS = tuple(
    (
        paths[0],
        tuple((path.startswith("context."), path.rpartition(".")[2], path) for path in paths[1:]),
    )
    for paths in (USER_ID_PATHS, GROUP_ID_PATHS, PREVIOUS_ID_PATHS)
)
_EMPTY: Mapping[str, Any] = {}  # what a missing object reads as (never written)


# Integers past this are not exact as JSON numbers (doubles): 2**53.
EXACT_FLOAT_INT = 2**53
MAX_ID_DIGITS = 19  # a Pipedrive id is a 64-bit integer


# The ordering key of an event that takes effect after every earlier event and before every later
# one: an alias. Its merge re-points every identity cached to the merged-away person, which no
# key of its own names (u-a was aliased to u-b; an alias of u-b to u-c then moves u-a's person).
EVERY = "*"


class EventError(ValueError):
    """The value is not a usable event; the message is a one-line reason (`redacted`: the same
    without the event data it quotes, as for `PlanFailure`)."""

    def __init__(self, message: str, redacted: str | None = None) -> None:
        super().__init__(message)
        self.redacted = redacted


# Split paths, memoised: paths come from code and from the config, so there are few of them.
_PARTS: dict[str, tuple[str, ...]] = {}


def path_parts(path: str) -> tuple[str, ...]:
    """`path` split at its dots (memoised)."""
    parts = _PARTS.get(path)
    if parts is None:
        parts = _PARTS[path] = tuple(path.split("."))
    return parts


def get_parts(obj: Any, parts: tuple[str, ...] | list[str]) -> Any:
    # Decoded JSON is made of dicts: the exact type check is much faster than an ABC check.
    for part in parts:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def identity_value(value: Any) -> str | None:
    """Identities compare as strings: 123 and "123" are the same person. Empty means absent."""
    if type(value) is str:
        return value.strip() or None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | float | str):
        return str(value).strip() or None
    return None


def exact_identity(value: Any, path: str = "identity") -> str | None:
    """`identity_value` of a value read as an identity at `path`: None when absent (null, an
    empty string); `EventError` when present but not usable as one: an object, a list or a
    boolean (`userId: {"id": 1}` is not an anonymous event), or a number too large to have
    arrived exactly (JSON integers past 2**53 are rounded on the way in, so two different ids
    could become one person)."""
    if type(value) is str:  # the common case
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = ("true" if value else "false") if isinstance(value, bool) else json_word(value)
        raise EventError(f"{path} is not a string or number (got {got})")
    if type(value) is float and abs(value) >= EXACT_FLOAT_INT:
        raise EventError(
            f"{path} {value!r} is a number too large to compare exactly (JSON numbers past "
            "2**53 are rounded when read): send it as a string",
            redacted=f"{path} is a number too large to compare exactly: send it as a string",
        )
    return identity_value(value)


def json_text(value: Any) -> str:
    """A value as JSON text, for messages (repr when it cannot be: an int past 64 bits)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        return repr(value)


# A value a message quotes is cut after this many characters, its length said: a reason is one
# line (a 5 MB trait made a 5 MB reason, in the dead letter beside the event that holds it).
QUOTED_CHARS = 60
# What would break a message's line, or rewrite it on a terminal: C0 and C1 controls, DEL, and
# Unicode's own line and paragraph separators. orjson escapes C0 itself; the others as JSON does.
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), 0x2028, 0x2029)}


def quoted(value: Any) -> str:
    """A value as the user wrote it, for a one-line message: a string as it is, unless it holds
    a line break or another control character (then as JSON, escaped), anything else as JSON;
    cut after QUOTED_CHARS characters, with its length. Most values a message names (a userId
    in a search's note, one per event) are short and printable: those are returned at once."""
    if type(value) is str and len(value) <= QUOTED_CHARS and value.isprintable():
        return value  # isprintable() is False for every character _BREAKS matches
    if type(value) is str and not _BREAKS.search(value):
        return clipped(value)
    return clipped(json_text(value).translate(_ESCAPES))


def clipped(text: str) -> str:
    """`text` cut after QUOTED_CHARS characters, its length said, when it is longer."""
    if len(text) <= QUOTED_CHARS:
        return text
    return f"{text[:QUOTED_CHARS]}... ({len(text):,} characters)"


NO_TYPE = 'event has no "type"'
NO_TYPE_TRACK = (
    f'{NO_TYPE} (it names an "event", as a track call\'s body does: add "type": "track")'
)


def json_word(value: Any) -> str:
    """A decoded JSON value's kind in JSON's words, for messages: "an object", "a list",
    "a string", "a number", "a boolean", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def stable_id(raw: Mapping[str, Any]) -> str:
    """A stable identity for an event without messageId: a hash of its canonical JSON."""
    try:
        canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # nested past orjson's 255 levels
        raise EventError(f"event has no messageId and cannot be hashed instead ({exc})") from None
    import hashlib  # here: OpenSSL's 3 ms to load are for files without messageIds only

    return "sha1:" + hashlib.sha1(canonical).hexdigest()


def external_ids(entries: Any, kind: str = "") -> dict[str, str]:
    """Of the entries of `context.externalId`, those of known types, by rpd's canonical type
    name, each id as its decimal digits. The list may also come as one `{"type", "id"}` object.
    Entries of other types are other destinations' (RudderStack keeps them all in one list) and
    are passed over; an entry of a Pipedrive type whose id cannot be a Pipedrive id, or two
    different ids of one type, raise `EventError`: which record the event means is not known.
    For an event of a `kind` that does not use that type (an identify's org_id), such ids read
    as absent, as its groupId or previousId would (`_identity`)."""
    if isinstance(entries, Mapping):
        entries = [entries]
    elif not isinstance(entries, list):
        return {}
    found: dict[str, str] = {}
    written: dict[str, str] = {}  # canonical type -> the entry that gave it, for messages
    unread: set[str] = set()  # types of unused ids that conflict: neither is taken
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name = entry.get("type")
        if not isinstance(name, str) or (canonical := EXTERNAL_ID_TYPES.get(name)) is None:
            continue
        try:
            value = pipedrive_id(entry.get("id"), name)
        except EventError:
            if kind in _EXTERNAL_UNUSED[canonical]:
                continue  # reads as absent
            raise
        have = found.get(canonical)
        if have is None:
            found[canonical] = value
            written[canonical] = f"{name} = {value}"
        elif have != value:
            if kind in _EXTERNAL_UNUSED[canonical]:
                unread.add(canonical)
                continue
            raise EventError(
                f"context.externalId names two different {canonical} ids: "
                f"{written[canonical]} and {name} = {value}",
                redacted=f"context.externalId names two different {canonical} ids",
            )
    for canonical in unread:
        del found[canonical]
    return found


def pipedrive_id(value: Any, name: str) -> str:
    """An external id's `id` as the decimal digits of a Pipedrive id: a whole number from 1 up,
    as a JSON number or a string ("7", 7, 7.0 and "007" are all "7")."""
    if value is None or (type(value) is str and not value.strip()):
        raise EventError(f"external id {name} has no id")
    number: int | None = None
    if type(value) is int:
        number = value
    elif type(value) is float and value.is_integer() and abs(value) < EXACT_FLOAT_INT:
        number = int(value)
    elif type(value) is str:
        digits = value.strip().lstrip("0") or "0"
        # Not "①", which isdigit() but int() refuses; not thousands of digits, which int() refuses.
        if digits.isascii() and digits.isdigit() and len(digits) <= MAX_ID_DIGITS:
            number = int(digits)
    if number is None or not 0 < number < 2**63:
        shown = clipped(json_text(value))
        raise EventError(
            f"external id {name} = {shown} is not a Pipedrive id (a whole number from 1 up)",
            redacted=f"external id {name} is not a Pipedrive id (a whole number from 1 up)",
        )
    return str(number)


INVALID = "invalid"  # the "type" under which input that is not an event is counted


class Event:
    """One input item, and the only object intake makes for it (SPEC 2): a raw RudderStack event
    with its identities resolved, or input that is not an event (`invalid`: type INVALID, no id,
    `decided` its failure). `parse_event(raw, source)` makes one: it raises `EventError` with a
    one-line reason for a value that is not a usable event. Immutable by convention (protocol.py),
    but for `decided`, which intake's filters set on the events they skip."""

    id: str  # the messageId, else a hash of the event (stable_id); "" for input that is not one
    type: str  # lower case; INVALID for input that is not an event
    kind: str  # the same: what the report counts the item under
    source: str
    raw: Any  # what goes to a dead letter: the event value, or the unparsable line's text
    user_id: str | None
    group_id: str | None
    previous_id: str | None
    external: Mapping[str, str]
    # Set when the event cannot be planned whatever Pipedrive holds: an identity value that cannot
    # be one (`userId: true`, an external id of 0). A supported type fails with it (plan_event).
    refused: Outcome | None
    decided: Outcome | None  # set when no request is needed (not an event, filtered out)
    # Set (by the planning pass, as it reads the input in order, when a previousId is aliased
    # twice or more) on an event with a userId: where it was read, and the `AliasesRead` that read
    # it, which says where it stands among the own aliases of each userId along its chain
    # (`identity_cache.ahead_of`). Unset on every other event (read with getattr's default).
    among_aliases: tuple[int, AliasesRead]
    # Set on an item read from a dead-letter record (core/wrappers.py): where it was first read,
    # through any number of dead letters sent again (its dead letter says it beside `source`).
    # Unset on every other item (read with getattr's default).
    origin: str
    # Set by plan_event on a track event, the first thing it asks of one: the [[track]] rule its
    # name matches (None: no rule), found once; its handler plans by it and dry-run names it.
    # Unset on every other event (a track not planned: done, filtered out).
    rule: TrackRule | None
    __slots__ = tuple(__annotations__)

    @property
    def anonymous_id(self) -> str | None:
        """The anonymousId, read when asked: only an event without a user identity needs it."""
        return identity_value(self.raw.get("anonymousId")) if self.id else None

    @property
    def event(self) -> Event | None:
        """The event to plan: this one, or None for input that is not an event."""
        return self if self.id else None

    @property
    def identities(self) -> set[str]:
        """Keys that order events: two events sharing one take effect in input order (`EVERY`
        orders an event against all others). A new set each time, the caller's to add to (the
        ordering keys, core/ordering.py, are these and more)."""
        if self.type == "alias":
            return {EVERY}
        keys = {"u:" + user for user in (self.user_id, self.previous_id) if user is not None}
        if self.group_id is not None:
            keys.add("g:" + self.group_id)
        if self.external:
            keys.update(("o:" if k == "org_id" else "p:") + v for k, v in self.external.items())
        return keys


def _identity(
    value: Any, slot: int, traits: Mapping[str, Any], nested: Mapping[str, Any], kind: str
) -> str | None:
    """Identity `slot` (userId, groupId, previousId) when its top-level `value` is not a
    non-empty string: that value checked (a number is an identity; an object raises
    `EventError`), else the first present, non-empty value of its fallbacks in `traits` and
    `nested` (context.traits). An event of a `kind` that does not use the identity takes a
    value that cannot be one as none (an identify whose traits.groupId lists the user's
    groups is still that user's identify)."""
    top, paths = _FALLBACKS[slot]
    try:
        if value is not None and (value := exact_identity(value, top)) is not None:
            return value
        for in_context, key, path in paths:
            value = (nested if in_context else traits).get(key)
            if value is not None and (value := exact_identity(value, path)) is not None:
                return value
    except EventError:
        if kind in _UNUSED[slot]:
            return None
        raise
    return None


# The delivered types that do not use each identity (userId, groupId, previousId): a groupId is a
# group's, a previousId an alias's. Other types are refused as ever (and skipped all the same).
_UNUSED: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"identify", "track", "alias"}),
    frozenset({"identify", "track", "group"}),
)
# And each external id type: an org_id is a group's as a groupId is, prev_person_id and
# curr_person_id an alias's as its previousId, person_id the person of every other type.
_EXTERNAL_UNUSED: Mapping[str, frozenset[str]] = {
    "person_id": frozenset({"alias"}),
    "org_id": _UNUSED[1],
    "prev_person_id": _UNUSED[2],
    "curr_person_id": _UNUSED[2],
}


# The event types as most input spells them, each to itself: those skip the check, strip and
# lower-casing, and their events share one string for the type (compared by identity at once).
_TYPES = {kind: kind for kind in ("identify", "track", "group", "alias", "page", "screen")}


def _mapping(value: Any) -> Mapping[str, Any]:
    """An object identities are read in: a Mapping as it is, anything else as an empty one."""
    return value if isinstance(value, Mapping) else _EMPTY


def parse_event(raw: Any, source: str) -> Event:
    """Build an `Event` from a decoded JSON value, or raise `EventError` with a one-line reason.
    Made empty, then stored: `Event` has no `__init__`, so `Event()` is all C, where a Python
    `__init__` costs an interpreter frame of its own, called from C (type_call, slot_tp_init)."""
    if type(raw) is not dict and not isinstance(raw, Mapping):  # the exact check is faster
        raise EventError(f"expected a JSON object, got {json_word(raw)}")
    try:
        kind = _TYPES[raw["type"]]
    except (KeyError, TypeError):  # none, or not as most input spells it
        if (name := raw.get("type")) is not None and not isinstance(name, str):
            raise EventError(f'event "type" is not a string (got {json_word(name)})') from None
        if not (kind := name.strip().lower() if name is not None else ""):
            # A track call's body (another tool's export, what was posted to /v1/track)
            # names its event and took its type from the endpoint: say what to add.
            named = isinstance(raw.get("event"), str)
            raise EventError(NO_TYPE_TRACK if named else NO_TYPE) from None
    event = Event()
    event.type = event.kind = kind
    event.source = source
    event.raw = raw
    event.decided = event.refused = None
    # Each identity: its top-level value when a non-empty string (the common case), else
    # `_identity` checks it and reads its fallbacks in order (skipped for an absent groupId
    # or previousId whose fallback keys, those of the PATHS tables, are all absent too).
    context, traits = raw.get("context", _EMPTY), raw.get("traits", _EMPTY)
    if type(context) is not dict or type(traits) is not dict:
        context, traits = _mapping(context), _mapping(traits)
    if type(nested := context.get("traits", _EMPTY)) is not dict:  # context.traits
        nested = _mapping(nested)
    user, group, previous = raw.get("userId"), raw.get("groupId"), raw.get("previousId")
    try:
        if type(user) is not str or not (user := user.strip()):
            user = _identity(user, 0, traits, nested, kind)
        if (group is not None or "groupId" in traits) and (
            type(group) is not str or not (group := group.strip())
        ):
            group = _identity(group, 1, traits, nested, kind)
        if (previous is not None or "previousId" in traits or "previousId" in nested) and (
            type(previous) is not str or not (previous := previous.strip())
        ):
            previous = _identity(previous, 2, traits, nested, kind)
        entries = context.get("externalId")
        event.external = _EMPTY if entries is None else external_ids(entries, kind)
        event.user_id, event.group_id, event.previous_id = user, group, previous
    except EventError as error:  # an event still, of its type: it fails when planned
        event.user_id = event.group_id = event.previous_id = None
        event.external = _EMPTY
        event.refused = Outcome(
            status="failed", reason=str(error), redacted=error.redacted, stage="validate"
        )
    message_id = raw.get("messageId")
    if type(message_id) is str and (message_id := message_id.strip()):
        event.id = message_id
    else:  # a number is an id too; none (or an empty one): a hash of the event
        event.id = (message_id is not None and identity_value(message_id)) or stable_id(raw)
    return event


class NoEvent(Event):
    """Input that is not an event (`invalid`)."""

    # Whether reading the input again fails it again whatever the config (SPEC 2: a line not
    # JSON, not UTF-8, a value not an object or no event): not so a read that failed (a store's
    # error, a size over --max-item-bytes), whose object is read again (io/objects.py).
    lasting: bool
    __slots__ = ("lasting",)


def invalid(
    source: str,
    raw: Any,
    reason: str,
    stage: str,
    redacted: str | None = None,
    *,
    lasting: bool = True,
) -> Event:
    """The item of input that is not an event: counted as INVALID, failed at `stage` ("read":
    not an event value at all; "parse": a value `Event` refuses), `raw` for its dead letter;
    `lasting` as NoEvent's."""
    item = NoEvent()  # no `__init__`: its slots stored here, as parse_event stores them
    item.lasting = lasting
    item.id, item.type = "", INVALID
    item.kind, item.source, item.raw = INVALID, source, raw
    item.user_id = item.group_id = item.previous_id = None
    item.external, item.refused = _EMPTY, None
    item.decided = Outcome(status="failed", reason=reason, stage=stage, redacted=redacted)
    return item


def fails_again(item: Event) -> bool:
    """Whether `item` is input that fails each time it is read, whatever the config (NoEvent)."""
    return isinstance(item, NoEvent) and item.lasting


def take(value: Any, source: str) -> Event:
    """The item of one decoded value: its `Event`, or the invalid item saying why it is none."""
    try:
        return parse_event(value, source)
    except EventError as exc:
        return invalid(source, value, str(exc), "parse", exc.redacted)
