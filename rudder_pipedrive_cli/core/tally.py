"""Counting a run: events by type and outcome, requests by endpoint, tokens, retries, 429 waits.

Both `rpd send` and `rpd dry-run` fill one `Tally`; `to_json` gives the report shape of SPEC 6.

A failure caused by an earlier failure of the same user is told as such (issue 14 item 4): 7
users' identify failed (a plan that is not an option of the enum field), and so did every later
event of those users: their persons were never made, and a track without a name cannot make one.
The report read "74 cannot create person without a name" above "7 cannot convert plan": the
cause hid under its effects. So within one run, the first failure of an event about a userId is
its root; a later event of that userId that fails because it has no person, or that waits for
the root's retry, is a knock-on: its reason says so (`no person for u-1: its identify failed
earlier (cannot convert plan ...)`) and the report counts it under the root's reason.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rudder_pipedrive_cli.core.costs import BURST_LIMITS, SEARCH_LIMIT, WINDOW_S, token_cost
from rudder_pipedrive_cli.core.errors import redacted_warning
from rudder_pipedrive_cli.core.events import INVALID, Event
from rudder_pipedrive_cli.core.identity_cache import table_get
from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome

if TYPE_CHECKING:
    from rudder_pipedrive_cli.core.filters import LateEvents

OUTCOMES = ("sent", "unchanged", "skipped", "failed")
# Distinct failure reasons (and warnings) counted one by one; past this many, the rest are
# counted together (a reason may name a value, so a large file could otherwise make one per event).
MAX_REASONS = 1000
OTHER_REASONS = "(other reasons)"
OTHER_WARNINGS = "(other warnings)"
OTHER_TRAITS = "(other traits)"
FILTERED = "filtered"
UNSUPPORTED = "unsupported type"
# The types counted by name: RudderStack's, and INVALID (input that was not an event). Any other
# "type" is event data that may hold anything, a name or an email (SPEC 8: not for the report): it
# is named only when it reads as a type name, and only while fewer than MAX_OTHER_TYPES are (one
# row per distinct value otherwise); the rest are counted together as OTHER_TYPE.
KNOWN_TYPES = frozenset({"identify", "track", "group", "alias", "page", "screen", INVALID})
TYPE_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,39}")
MAX_OTHER_TYPES = 20
OTHER_TYPE = "(other type)"
# RudderStack's unsupported types, as their skips are counted: made once.
UNSUPPORTED_KEYS = {kind: f"{UNSUPPORTED}: {kind}" for kind in ("page", "screen")}
# Where a plan fails for want of a person, decided by rpd itself (no answer from Pipedrive):
# "person not found and create_persons is off", "cannot create person without a name".
NO_PERSON_STAGES = frozenset({"lookup person", "create person"})


def charged(status: int, *, is_json: bool) -> bool:
    """Whether Pipedrive charges a request it answered `status` its x-token-cost: not one it
    refused before doing anything, as the sandbox does not: a token it knows no account of
    (401: no budget to charge; a send refused at the start reported 2 tokens spent), a 429
    (the limits), the edge's HTML 403 (a client blocked for ignoring 429s)."""
    return status != 401 and status != 429 and (status != 403 or is_json)


def ranked(counts: Counter[str], top: int | None = None) -> list[tuple[str, int]]:
    """The most common first, ties by text: the same order for the same counts, however the
    events finished (send ends events concurrently; `most_common` keeps first-seen order)."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ordered if top is None else ordered[:top]


# Where a plan fails waiting for an earlier failed event of the same identity (plans/__init__).
WAITING_STAGE = "order"
# Failed userIds remembered per run: past this many, later knock-ons are counted as causes.
MAX_ROOTS = 100_000


@dataclass(frozen=True, slots=True)
class Root:
    """The first failure of a userId, as the later failures it explains tell it. Their words are
    made when a knock-on asks for them: most roots explain no later event."""

    redacted: str  # its reason in words holding no event data: what its knock-ons count under
    user: str
    type: str  # its event's
    reason: str  # its reason as its record and dead letter told it, which may quote event data

    @property
    def told(self) -> str:
        """A knock-on's reason, which may quote event data: for the record, the dead letter."""
        return f"no person for {self.user}: its {self.type} failed earlier ({self.reason})"

    @property
    def told_redacted(self) -> str:
        """A knock-on's reason in words holding none: for the report."""
        return f"no person for its userId: its {self.type} failed earlier ({self.redacted})"

    def retell(self, outcome: Outcome) -> Outcome:
        """A knock-on's outcome told by this root (send's dead letter and journal)."""
        return replace(outcome, reason=self.told, redacted=self.told_redacted)


class Counts(Counter[str]):
    """A `Counter` whose stores are dict's own C code: `Counter.__delitem__`, in Python, routes
    every store through a Python-level `__setitem__` lookup (twice a dict's time; a dry-run
    counts a few per event). Deleting a missing key raises KeyError (nothing deletes here)."""

    __slots__ = ()
    __delitem__ = dict.__delitem__  # type: ignore[assignment]


def add_count(counts: dict[str, int], key: str, count: int = 1) -> None:
    """Add `count` to `key`'s in a plain dict of counts (absent: none yet)."""
    counts[key] = counts.get(key, 0) + count


@dataclass(slots=True)
class Tally:
    # Each event counted once, by type and outcome (`read` and `outcomes` are derived from it).
    by_type: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counts))
    # Requests by endpoint: a plain dict, as a dry-run's Recorder counts each one (`+=` on a
    # dict subclass, a Counter, is not specialized by CPython 3.11: ~233 Ir more a request). An
    # endpoint not yet counted is absent (`add_count`).
    requests: dict[str, int] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counts)
    failures: Counter[str] = field(default_factory=Counts)  # failed events by reason
    # Failed events an earlier failure of the same userId caused, by that root's reason: counted
    # under it, not as causes of their own.
    knock_ons: Counter[str] = field(default_factory=Counts)
    skips: Counter[str] = field(default_factory=Counts)  # skipped events by reason
    warnings: Counter[str] = field(default_factory=Counts)  # warnings by text, every outcome
    # Requests a 429 refused, by endpoint: they cost no API tokens (tokens are derived at the end).
    uncharged: Counter[str] = field(default_factory=Counts)
    retries: int = 0  # requests to Pipedrive tried again (under --max-retries)
    # Calls to the input's store tried again (an object's read, a listing, a HEAD; a reset, a
    # 5xx, S3's SlowDown: io/objects.py, io/s3.py):
    # apart from `retries`, which cost API tokens and time under Pipedrive's limits.
    store_retries: int = 0
    rate_limited: int = 0
    # Events read but not finished when the run stopped early (Ctrl-C, SIGTERM, unreachable, the
    # budget): not failed, not dead-lettered; the rerun takes them. Counted in `events.read`.
    not_attempted: int = 0
    driving: bool = False  # a send began to drive events (a stop after says so, not "no event")
    reported: bool = False  # a send began its report (a stop after is not one while starting)
    writes: Counter[str] = field(default_factory=Counts)  # Outcome.writes, summed
    rules: Counter[str] = field(default_factory=Counts)  # track events by rule (dry-run)
    late: LateEvents | None = None  # what --since/--until leave out of a backup, no window sends
    # The first failure of each userId (a bounded table for a CLI run, issue 18: `keep_roots`);
    # events of one userId end in input order (the runner orders them), so the first failure
    # seen is the first in the input.
    roots: MutableMapping[str, Root] = field(default_factory=dict, repr=False, compare=False)
    root_of: Callable[[str], Root | None] = field(init=False, repr=False, compare=False)
    roots_kept: int = field(default=0, init=False, repr=False, compare=False)  # never removed

    def __post_init__(self) -> None:
        self.keep_roots(self.roots)

    def keep_roots(self, table: MutableMapping[str, Root]) -> None:
        """Keep the roots in `table` (before any is counted)."""
        self.roots = table
        self._bind()

    def _bind(self) -> None:
        self.root_of = table_get(self.roots, self._bind)  # a read is no call of ours

    @property
    def outcomes(self) -> Counter[str]:
        """Events of every type by outcome, from `by_type`. The live view's refresh thread reads
        this while the run counts: each table is copied in one C call (`tuple`, `dict`) before
        Python code iterates it, as a new type or status may be counted meanwhile."""
        total: Counter[str] = Counter()
        for counts in tuple(self.by_type.values()):
            total.update(dict(counts))
        return total

    @property
    def read(self) -> int:
        return sum(self.outcomes.values())

    def add_request(self, request: ApiRequest, *, charged: bool = True) -> None:
        """Count a request that reached Pipedrive; one it refused (`charged`) costs no tokens."""
        key = request.key
        add_count(self.requests, key)
        if not charged:
            self.uncharged[key] += 1

    def add_requests(self, other: Tally) -> None:
        """Count the requests (and tokens) another tally counted."""
        for key, count in other.requests.items():  # added, as Counter.update adds
            add_count(self.requests, key, count)
        self.uncharged.update(other.uncharged)

    @property
    def tokens_by(self) -> Counter[str]:
        """API tokens spent (or planned), by endpoint: derived from the counts, not kept per
        request (a dry-run counts hundreds of thousands)."""
        uncharged = self.uncharged
        return Counter(
            {
                key: (count - uncharged[key]) * token_cost(key)
                for key, count in self.requests.items()
            }
        )

    @property
    def tokens(self) -> int:
        """API tokens spent (or planned) in all."""
        return sum(self.tokens_by.values())

    def add_outcome(
        self, event_type: str, outcome: Outcome, event: Event | None = None
    ) -> Root | None:
        """Count one event's end, in words without event data (SPEC 8). `event_type` is "invalid"
        for input that was not an event. With the `event` (any intake item), a failure is told
        by its root: a knock-on is counted under its root's reason, and the root is returned
        when the knock-on's reason takes its words (`Root.told`: it failed for want of the person
        its root did not make); else None. Only a failure of an event with a userId may have a
        root or be one. An alias is about two users and never creates: its reason is its own,
        unless it waits for a failure of either."""
        status, retold = outcome.status, None
        if event_type not in KNOWN_TYPES:
            event_type = self._shown_type(event_type)
        self.by_type[event_type][status] += 1
        # Each reason (and warning) counted under itself, or under "other" once MAX_REASONS
        # distinct ones are: no call for one already counted, most of them.
        if status == "failed":
            root = None
            if event is not None and (user := event.user_id) is not None and event.id:
                root_of = self.root_of
                if event.type == "alias":
                    if outcome.stage == WAITING_STAGE:
                        root = root_of(user) or root_of(event.previous_id or "")
                elif (root := root_of(user)) is None:
                    if self.roots_kept < MAX_ROOTS:
                        redacted = outcome.redacted_reason
                        self.roots[user] = Root(redacted, user, event.type, outcome.reason)
                        self.roots_kept += 1
                elif (stage := outcome.stage) == WAITING_STAGE:
                    pass  # its reason says so already: grouped only
                elif stage in NO_PERSON_STAGES and outcome.http_status is None:
                    retold = root
                else:
                    root = None  # a cause of its own
            if root is None:
                counted = self.failures
                key = outcome.reason if outcome.redacted is None else outcome.redacted
            else:
                counted, key = self.knock_ons, root.redacted
            counted[key if key in counted or len(counted) < MAX_REASONS else OTHER_REASONS] += 1
        elif status == "skipped":
            # Each filter's own words are one reason, and an unsupported type is named
            # (`unsupported type: page`), as a user deciding whether the skips are expected
            # wants to see them.
            reason = outcome.reason if outcome.redacted is None else outcome.redacted
            if reason == UNSUPPORTED:
                key = UNSUPPORTED_KEYS.get(event_type) or f"{UNSUPPORTED}: {event_type}"
            else:
                filtered = reason.startswith("filtered out")
                if filtered and self.late is not None and event is not None:
                    self.late.add(event, reason)
                key = FILTERED if filtered else reason or "(no reason given)"
            counted = self.skips
            counted[key if key in counted or len(counted) < MAX_REASONS else OTHER_REASONS] += 1
        if warnings := outcome.warnings:
            counted = self.warnings
            for w in map(redacted_warning, warnings):
                counted[w if w in counted or len(counted) < MAX_REASONS else OTHER_WARNINGS] += 1
        if writes := outcome.writes:  # a loop, not Counter.update: its Mapping check costs more
            counted = self.writes
            for kind in writes:
                counted[kind] += 1
        if dropped := outcome.dropped:
            counted = self.dropped  # trait names are event data: bounded as reasons are
            for path in dropped:
                counted[
                    path if path in counted or len(counted) < MAX_REASONS else OTHER_TRAITS
                ] += 1
        return retold

    def _shown_type(self, event_type: str) -> str:
        """The name a type rpd does not know is counted under (KNOWN_TYPES)."""
        if event_type in self.by_type:
            return event_type
        others = len(self.by_type.keys() - KNOWN_TYPES)
        return (
            event_type
            if others < MAX_OTHER_TYPES and TYPE_NAME.fullmatch(event_type)
            else OTHER_TYPE
        )

    def to_json(self, *, duration_s: float, dead_letter: str | None) -> dict[str, Any]:
        events: dict[str, int] = {"read": self.read + self.not_attempted}
        events.update({name: self.outcomes[name] for name in OUTCOMES})
        if self.not_attempted:  # only a run that stopped early has the key
            events["not_attempted"] = self.not_attempted
        document: dict[str, Any] = {
            "events": events,
            "by_type": {
                kind: {name: counts[name] for name in OUTCOMES if counts[name]}
                for kind, counts in sorted(self.by_type.items())
            },
            "skipped_by_reason": dict(ranked(self.skips)),
            "requests": dict(sorted(self.requests.items())),
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "tokens": self.tokens,
            "duration_s": round(duration_s, 3),
            "dead_letter": dead_letter,
        }
        if self.store_retries:  # only a run that read an object again has the key
            document["store_retries"] = self.store_retries
        if self.writes:  # only a run that wrote (or would write) has the key
            document["writes"] = dict(sorted(self.writes.items()))
        if self.rules:  # only a dry-run with [[track]] rules has the key
            document["by_rule"] = dict(sorted(self.rules.items()))
        if self.failures or self.knock_ons:  # only a run with failed events has the key
            document["failed_by_reason"] = {
                reason: {"events": self.failures[reason], "later_events": self.knock_ons[reason]}
                for reason, _ in self.causes()
            }
        return document

    def store_retried(self) -> None:
        """A call to the input's store is tried again: an object's read, a listing or a HEAD
        (it failed, transiently)."""
        self.store_retries += 1

    def causes(self) -> list[tuple[str, int]]:
        """Failure reasons with the failures each caused in all (its own and those of later
        events of the same users), the most first."""
        return ranked(self.failures + self.knock_ons)


def estimated_seconds(tally: Tally, plan: str) -> float:
    """How long the requests counted would take at the plan's rate limit (0 when unlimited)."""
    limit = BURST_LIMITS.get(plan)
    if limit is None:
        return 0.0
    counted = tuple(tally.requests.items())  # one C call: the live view reads this mid-run
    total = sum(n for _, n in counted)
    searches = sum(n for key, n in counted if "/itemSearch" in key)
    return max(total / (limit / WINDOW_S), searches / (SEARCH_LIMIT / WINDOW_S))
