"""Track rules (SPEC 3 `[[track]]`, SPEC 4 "track rules"): what a track event becomes, by name.

A rule is data, compiled once at start: its event patterns go into a table (exact names in a
dict, prefixes in a list, `"*"` as one index), its templates into parts. Each event name is
matched once (a lookup, a short loop), and remembered; `Template.render` loops over parts.

Where SPEC is silent:
- A rule is named in messages and dry-run output by its place in the file, `track #2 (deal)`;
  an event no rule matches is `no rule (lead)`.
- A key that does not apply to the rule's kind (`pipeline` on a note rule) is a config error, as
  an unknown key is: it would silently do nothing.
- `fields` applies to lead and deal rules (notes and activities have no custom fields).
- A template value that is an object or a list renders as its compact JSON; true/false as such.
- `{{` and `}}` are literal braces.
- A `*` that is part of an event name is written `\\*` (TOML `"Trial\\\\*"`): the exact name
  `Trial*`, not a prefix. RudderStack's event filtering lists exact names, and `rpd init
  --from-rudderstack` writes them so (`exact_pattern`). A `*` before a pattern's end unescaped
  (`"Support * Ticket"`, `"*Ticket"`) is read as SPEC reads it, part of an exact name, and
  warned about (`rule_warnings`): a prefix is matched only by a trailing `*`, so it is likely a
  pattern meant that matches no event.
- A pattern an earlier rule always matches first (`"Demo Requested"` after `"Demo *"`, anything
  after `"*"`) is kept, as SPEC's "first match wins" says, and warned about: it never matches.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from rudder_pipedrive_cli.core.errors import ConfigError
from rudder_pipedrive_cli.core.events import Event, get_parts, identity_value, json_text, path_parts

KINDS = ("lead", "deal", "activity", "note", "skip")
STAR = "\\*"  # a `*` that is part of an event name, in a pattern: `Trial\*` is the name Trial*
RULE_KEYS = ("events", "create", "title", "content", "pipeline", "stage", "type", "done", "fields")
# The keys each kind takes besides `events` and `create`.
KIND_KEYS: Mapping[str, frozenset[str]] = {
    "lead": frozenset({"title", "fields"}),
    "deal": frozenset({"title", "pipeline", "stage", "fields"}),
    "activity": frozenset({"title", "content", "type", "done"}),
    "note": frozenset({"content"}),
    "skip": frozenset(),
}
SKIP_REASON = "track rule: skip"
MAX_NAMES = 10_000  # event names whose rule a run remembers at once
NO_RULE = "no rule (lead)"
MARKER_PREFIX = "rpd:"
# The characters a marker keeps as they are: an event id is quoted into one word of HTML-safe
# text, so it can be found again in what Pipedrive stores (`markers`). Not `'`, which an HTML
# sanitizer may store as `&#39;` (Pipedrive sanitizes a note's HTML).
_MARKER_SAFE = "-._~:@!$()*+,;=/?#[]"
MARKER = re.compile(r"rpd:([^\s<>&\"]+)")

# Template roots: a bare name, or a prefix followed by a path.
TEMPLATE_NAMES = ("event", "userId")
TEMPLATE_ROOTS = ("properties.", "context.traits.", "traits.")
TEMPLATE_HINT = "use {event}, {userId}, {properties.PATH}, {context.traits.PATH} or {traits.PATH}"
EVENT_PATH = ("event",)  # {event}: one tuple, known by identity when rendered
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A compiled template: literal text and placeholders, in order."""

    text: str
    # (literal, None) or ("", path parts from the event's root; () for userId)
    parts: tuple[tuple[str, tuple[str, ...] | None], ...] = ()

    def render(self, event: Event, *, escape: bool = False) -> str:
        out = ""  # a few short parts: added in place, no list to join
        for literal, path in self.parts:
            if path is None:
                out += literal
                continue
            value = event.user_id if not path else get_parts(event.raw, path)
            # Most values: a string, or missing (renders empty), read without a call.
            shown = value if type(value) is str else "" if value is None else template_text(value)
            if path is EVENT_PATH:  # the name as the rules match it, and as a lead's title is
                shown = shown.strip()
            out += html.escape(shown) if escape else shown
        return out


def template_text(value: Any) -> str:
    """A value as a template shows it: missing renders empty, a string as it is, anything else
    as its JSON (true, 5, {"a": 1})."""
    return "" if value is None else value if isinstance(value, str) else json_text(value)


def compile_template(text: str, where: str) -> Template:
    """The template, or a ConfigError naming `where` for a placeholder that cannot exist."""
    parts: list[tuple[str, tuple[str, ...] | None]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            parts.append((text[position : match.start()], None))
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append((token[0], None))
            continue
        if match.group(1) is None:
            raise ConfigError(
                f"{where}: unmatched {token!r} in template {text!r}",
                hint="write {{ or }} for a literal brace",
            )
        parts.append(("", _placeholder(match.group(1).strip(), text, where)))
    if position < len(text):
        parts.append((text[position:], None))
    return Template(text=text, parts=tuple(parts))


def _placeholder(name: str, text: str, where: str) -> tuple[str, ...]:
    if name == "event":
        return EVENT_PATH
    if name == "userId":
        return ()
    for root in TEMPLATE_ROOTS:
        if name.startswith(root) and len(name) > len(root) and "" not in name.split("."):
            return path_parts(name)
    meant = _placeholder_meant(name)
    raise ConfigError(
        f"{where}: {{{name}}} in template {text!r} refers to nothing an event holds",
        hint=(f"did you mean {{{meant}}}? " if meant else "") + TEMPLATE_HINT,
    )


def _placeholder_meant(name: str) -> str | None:
    """The placeholder nearest to `name`, whole: its root put right where the first one, two or
    more of its parts misspell it ({propertes.x}, {context.trait.x}: not {context.traits.trait.x},
    which a root matched against the first part alone gave), or a bare name ({Event})."""
    if f"{name}." in TEMPLATE_ROOTS:  # {properties}: a path is missing, said by the hint
        return None
    parts = name.split(".")
    guesses = [*TEMPLATE_NAMES]
    guesses += [root + ".".join(parts[k:]) for root in TEMPLATE_ROOTS for k in range(1, len(parts))]
    near = difflib.get_close_matches(name, guesses, n=1, cutoff=0.5)
    return near[0] if near else None


def marker(event_id: str) -> str:
    """What rpd writes into an activity's or a note's text to find it again: `rpd:` + the event
    identity, quoted into one HTML-safe word."""
    return MARKER_PREFIX + quote(event_id, safe=_MARKER_SAFE)


def markers(text: Any) -> set[str]:
    """The marker rpd wrote into a stored text (an activity's note, a note's content): the last
    one, where rpd puts it (SPEC 4). One before it came with the event's data (a property quoting
    another event's marker): taken as that event's, it would skip that event unsent."""
    if not isinstance(text, str) or MARKER_PREFIX not in text:
        return set()
    if "&" in text:  # what a sanitizer escaped (`&#39;` for `'`) reads as it was written
        text = html.unescape(text)
    found = MARKER.findall(text)
    # Written by an rpd that kept `'` as it is, or found as written: the marker rpd writes now.
    return {MARKER_PREFIX + found[-1].replace("'", "%27")} if found else set()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackRule:
    number: int  # its place among the [[track]] tables, from 1
    events: tuple[str, ...]
    create: str
    title: Template | None = None
    content: Template | None = None
    pipeline: str | int | None = None  # as configured: a name or an id
    stage: str | int | None = None
    type: str | None = None
    done: bool | None = None
    fields: Mapping[str, str] | None = None  # this rule's property mappings
    # Resolved through the account's listings (Catalog.apply); None until then.
    pipeline_id: int | None = None
    stage_id: int | None = None
    type_key: str | None = None
    # Why a send cannot resolve a name this rule gives (its listing failed): its events fail,
    # retryable, rather than send a name where Pipedrive takes an id. "" when all is resolved.
    unresolvable: str = ""
    # How dry-run output names it, `track #2 (deal)`: made with it, read by each event it takes.
    label: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.where} ({self.create})")  # frozen: set so

    @property
    def where(self) -> str:
        return f"track #{self.number}"


def exact_pattern(name: str) -> str:
    """The event pattern that matches the event named `name` and no other."""
    return name.replace("*", STAR)


def prefix_of(pattern: str) -> str | None:
    """What the names a pattern matches start with, for a prefix pattern (`"Trial *"`: `Trial `,
    `"*"`: every name); None for an exact name. `\\*` is a `*` of the name."""
    if pattern.endswith("*") and not pattern.endswith(STAR):
        return pattern[:-1].replace(STAR, "*")
    return None


def literal(pattern: str) -> str:
    """The event name an exact pattern names (`Trial\\*`: Trial*)."""
    return pattern.replace(STAR, "*")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackRules:
    """The rules, and a table to find the first that matches an event name."""

    rules: tuple[TrackRule, ...] = ()
    exact: Mapping[str, int] = field(default_factory=dict)  # name -> first rule index
    prefixes: tuple[tuple[int, str], ...] = ()  # (rule index, prefix), in rule order
    every: int | None = None  # the first rule with "*"
    # What the events may create, leads always (no match): the kinds whose origins rpd keeps.
    creates: tuple[str, ...] = ("lead",)
    # Each name's rule and label, emptied at MAX_NAMES (an archive may name thousands); not
    # copied by `replace` (init=False): rules resolved anew start it anew.
    matched: dict[str, tuple[TrackRule | None, str]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def of(cls, rules: tuple[TrackRule, ...]) -> TrackRules:
        exact: dict[str, int] = {}
        prefixes: list[tuple[int, str]] = []
        every: int | None = None
        for index, rule in enumerate(rules):
            for pattern in rule.events:
                prefix = prefix_of(pattern)
                if pattern == "*":
                    every = index if every is None else every
                elif prefix is not None:
                    prefixes.append((index, prefix))
                else:
                    exact.setdefault(literal(pattern), index)
        others = {rule.create for rule in rules} - {"lead", "skip"}
        creates = ("lead", *(kind for kind in KINDS if kind in others))
        return cls(rules=rules, exact=exact, prefixes=tuple(prefixes), every=every, creates=creates)

    def match(self, name: Any) -> TrackRule | None:
        """The first rule whose events match a track event's name (its "event" value, trimmed
        as `text` trims it), or None (then: a lead, as the seed does)."""
        try:
            return self.matched[name][0]
        except (KeyError, TypeError):  # a name not met yet; a list or an object
            return self._match(name)[0]

    def label(self, name: Any) -> str:
        """How dry-run output names the rule `name` matches: `track #2 (deal)`, or NO_RULE."""
        try:
            return self.matched[name][1]
        except (KeyError, TypeError):
            return self._match(name)[1]

    def _match(self, raw: Any) -> tuple[TrackRule | None, str]:
        if (name := identity_value(raw)) is None:
            return None, NO_RULE
        best = self.exact.get(name)
        if self.every is not None and (best is None or self.every < best):
            best = self.every
        for index, prefix in self.prefixes:
            if best is not None and index >= best:
                break
            if name.startswith(prefix):
                best = index
                break
        rule = None if best is None else self.rules[best]
        found = (None, NO_RULE) if rule is None else (rule, rule.label)
        if type(raw) is str:  # not 1 or True: one key for both
            if len(self.matched) >= MAX_NAMES:
                self.matched.clear()
            self.matched[raw] = found
        return found

    @property
    def skips(self) -> str:
        """What decides which track events a skip rule takes, as a short digest ("" when no
        rule skips): the rules up to the last skip rule, each its patterns and whether it skips.
        An object an earlier run finished under other skip rules may hold events it skipped
        that these rules do not, so it is read again (io/state.py `object_finished`)."""
        skipping = [index for index, rule in enumerate(self.rules) if rule.create == "skip"]
        if not skipping:
            return ""
        import hashlib  # here: OpenSSL's 3 ms to load are for configs with a skip rule only

        deciding = [[rule.events, rule.create == "skip"] for rule in self.rules[: skipping[-1] + 1]]
        return hashlib.sha256(json_text(deciding).encode()).hexdigest()[:16]

    def unresolved(self) -> list[str]:
        """Names of pipelines, stages and activity types no listing has resolved yet."""
        return [f"{rule.where}.{name}" for rule in self.rules for name in _unresolved(rule)]

    def unresolvable(self, why: str) -> TrackRules:
        """The rules, those with a name no listing resolved marked so their events fail
        (retryable) with `why`; the other rules, and the other events, go on."""
        return replace(
            self,
            rules=tuple(
                replace(
                    rule,
                    unresolvable=f"{rule.where}: {', '.join(names)} cannot be resolved: {why}; "
                    "retry later",
                )
                if (names := _unresolved(rule))
                else rule
                for rule in self.rules
            ),
        )


def _unresolved(rule: TrackRule) -> list[str]:
    """`pipeline = 'Sales'`, ...: what the rule names that no listing resolved."""
    found = []
    if rule.create == "deal":
        if isinstance(rule.pipeline, str) and rule.pipeline_id is None:
            found.append(f"pipeline = {rule.pipeline!r}")
        if isinstance(rule.stage, str) and rule.stage_id is None:
            found.append(f"stage = {rule.stage!r}")
    if rule.create == "activity" and rule.type is not None and rule.type_key is None:
        found.append(f"type = {rule.type!r}")
    return found


def parse_rules(tables: Any, where: str, *, places: Sequence[str] = ()) -> TrackRules:
    """`[[track]]` tables as read from TOML, validated; `where` names the file in errors, and
    `places` each rule's place in it (`rpd.toml:12`, its header's line) when known."""
    if not isinstance(tables, list):
        raise ConfigError(
            f"{where}: track must be an array of tables ([[track]])",
            hint='write each rule as [[track]] with events = [...] and create = "..."',
        )
    places = places or [where] * len(tables)
    return TrackRules.of(
        tuple(
            _rule(table, n, place)
            for n, (table, place) in enumerate(zip(tables, places, strict=True), 1)
        )
    )


def rule_warnings(rules: TrackRules, where: str) -> list[str]:
    """A warning (its hint on a line of its own) per event pattern SPEC reads otherwise than it
    likely means: a `*` before its end (a `*` of the name, no wildcard), and a pattern an earlier
    rule always matches first (the first rule that matches wins: it never matches). Both are
    legal (SPEC 3, 4): a shadowed rule may be there on purpose, and `A*B` is an exact name."""
    warnings = []
    for index, rule in enumerate(rules.rules):
        for pattern in rule.events:
            if "*" in _before_end(pattern).replace(STAR, ""):
                warnings.append(
                    f"{where}: {rule.where}: {pattern!r} in events has a * before its end: it "
                    "stands for a * in the event's name, not for any text\nhint: a * matches a "
                    'prefix only at the end (e.g. "Trial *": every name starting "Trial "); if '
                    "the * is part of the name, write it \\\\* to say so"
                )
            first = _matched_before(rules, index, pattern)
            if first is not None:
                warnings.append(
                    f"{where}: {rule.where}: {pattern!r} in events is matched by {first.where} "
                    "first, so never by this rule\nhint: the first rule that matches an event "
                    "wins: take the name out of one of the two rules, or put the rule it is meant "
                    "for first"
                )
    return warnings


def _matched_before(rules: TrackRules, index: int, pattern: str) -> TrackRule | None:
    """The rule before `rules.rules[index]` that matches every event `pattern` matches, if any."""
    if rules.every is not None and rules.every < index:
        return rules.rules[rules.every]
    if pattern == "*":
        return None
    prefix = prefix_of(pattern)
    names = literal(pattern) if prefix is None else prefix  # what every name matched starts with
    for earlier, start in rules.prefixes:
        if earlier >= index:
            break
        if names.startswith(start):
            return rules.rules[earlier]
    earlier = rules.exact.get(names, index) if prefix is None else index
    return rules.rules[earlier] if earlier < index else None


def closest(name: str, candidates: Sequence[str], cutoff: float = 0.5) -> str | None:
    """The one of `candidates` `name` is most likely a misspelling of, if any (`cutoff`: how
    alike, 0 to 1, they must be at least)."""
    near = difflib.get_close_matches(name, candidates, n=1, cutoff=cutoff)
    return near[0] if near else None


def nearest(name: str, candidates: Sequence[str]) -> str:
    """The hint for an unknown config key or section `name`: the nearest of `candidates`, else
    all of them."""
    near = closest(name, candidates)
    return f"did you mean {near!r}?" if near else f"valid keys: {', '.join(candidates)}"


# What people write for true and false from other languages (YAML's yes, Python's True): TOML
# has only lower-case true and false; the config's hints say the line as it was meant.
BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "yes", "on"), "true"),
    **dict.fromkeys(("false", "no", "off"), "false"),
}
# A text rule key's example, for the hint when it holds something else.
TEXT_EXAMPLES = {
    "title": "{event} via {properties.campaign}",
    "content": "Booked from {properties.page}",
    "type": "call",
}


def _before_end(pattern: str) -> str:
    """A pattern without its trailing prefix `*`, if it has one."""
    return pattern[:-1] if prefix_of(pattern) is not None else pattern


def boolean_hint(name: str, value: Any) -> str:
    """The hint for `name = value` where true or false belongs: the line meant when `value` is
    text that spells a boolean (`"yes"`, `"true"`), else an example."""
    word = BOOLEAN_WORDS.get(value.strip().lower()) if isinstance(value, str) else None
    return f"write {name} = {word}, without quotes" if word else f"e.g. {name} = true"


def _rule(table: Any, number: int, file: str) -> TrackRule:
    where = f"{file}: track #{number}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table ([[track]])")
    for key in table:
        if key not in RULE_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}", hint=nearest(key, RULE_KEYS))
    create = table.get("create")
    if create not in KINDS:
        shown = "missing" if create is None else repr(create)
        near = difflib.get_close_matches(str(create).strip().lower(), KINDS, n=1, cutoff=0.6)
        meant = f"did you mean create = {near[0]!r}? " if near and create is not None else ""
        raise ConfigError(
            f"{where}: create is {shown}",
            hint=f"{meant}create = one of {', '.join(map(repr, KINDS))}",
        )
    for key in table:
        if key not in ("events", "create") and key not in KIND_KEYS[create]:
            takes = ", ".join(sorted(KIND_KEYS[create])) or "no other keys"
            raise ConfigError(
                f"{where}: {key} does not apply to a {create} rule",
                hint=f"a {create} rule takes events, create and {takes}",
            )
    events = table.get("events")
    if isinstance(events, str):
        events = [events]
    if isinstance(events, list):
        bad = next((e for e in events if not isinstance(e, str) or not e.strip()), None)
        held = "it is empty" if not events else "" if bad is None else f"it holds {bad!r}"
    else:
        held = "it is missing" if events is None else f"it is {events!r}"
    if held or not isinstance(events, list):
        raise ConfigError(
            f"{where}: events must be a non-empty list of event names; {held}",
            hint='e.g. events = ["Demo Requested", "Trial *"] (a trailing * matches a prefix; '
            '"*" any event)',
        )
    for name, example in TEXT_EXAMPLES.items():
        if name in table and not isinstance(table[name], str):
            raise ConfigError(
                f"{where}: {name} must be text (a string), got {table[name]!r}",
                hint=f'write it in quotes, e.g. {name} = "{example}"',
            )
    for name in ("pipeline", "stage"):
        value = table.get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, str | int)
            or value == ""
            or (isinstance(value, int) and value < 1)  # Pipedrive's ids count from 1
        ):
            shown = str(value).lower() if isinstance(value, bool) else repr(value)  # TOML's
            raise ConfigError(
                f"{where}: {name} must be a name (a string) or an id (an integer from 1), "
                f"got {shown}",
                hint=f'e.g. {name} = "{"Sales" if name == "pipeline" else "Qualified"}"',
            )
    if "done" in table and not isinstance(table["done"], bool):
        raise ConfigError(
            f"{where}: done must be true or false, got {table['done']!r}",
            hint=boolean_hint("done", table["done"]),
        )
    fields = table.get("fields")
    if fields is not None and (
        not isinstance(fields, dict)
        or not all(isinstance(v, str) and v.strip() for v in fields.values())
    ):
        raise ConfigError(
            f"{where}: fields must be a table of property path = Pipedrive field key",
            hint='e.g. fields = { plan = "2166d04123ea6d974ed242877a8d769fe934c896" }',
        )
    return TrackRule(
        number=number,
        events=tuple(e.strip() for e in events),
        create=create,
        title=compile_template(table["title"], f"{where}: title") if "title" in table else None,
        content=(
            compile_template(table["content"], f"{where}: content") if "content" in table else None
        ),
        pipeline=table.get("pipeline"),
        stage=table.get("stage"),
        type=table.get("type"),
        done=table.get("done"),
        fields=None if fields is None else {k: v.strip() for k, v in fields.items()},
    )
