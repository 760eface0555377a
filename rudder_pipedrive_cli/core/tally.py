"""Counting a run: events by type and outcome, requests by endpoint, tokens, retries, 429 waits.

Both `rpd send` and `rpd dry-run` fill one `Tally`; `to_json` gives the report shape of SPEC 6.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from rudder_pipedrive_cli.core.costs import BURST_LIMITS, SEARCH_LIMIT, WINDOW_S, token_cost
from rudder_pipedrive_cli.core.errors import redacted_warning
from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome

OUTCOMES = ("sent", "unchanged", "skipped", "failed")
# Distinct failure reasons (and warnings) counted one by one; past this many, the rest are
# counted together (a reason may name a value, so a large file could otherwise make one per event).
MAX_REASONS = 1000
OTHER_REASONS = "(other reasons)"
OTHER_WARNINGS = "(other warnings)"
FILTERED = "filtered"
UNSUPPORTED = "unsupported type"
# RudderStack's unsupported types, as their skips are counted: made once.
UNSUPPORTED_KEYS = {kind: f"{UNSUPPORTED}: {kind}" for kind in ("page", "screen")}


class Counts(Counter[str]):
    """A `Counter` whose stores are dict's own C code: `Counter.__delitem__`, in Python, routes
    every store through a Python-level `__setitem__` lookup (twice a dict's time; a dry-run
    counts a few per event). Deleting a missing key raises KeyError (nothing deletes here)."""

    __slots__ = ()
    __delitem__ = dict.__delitem__  # type: ignore[assignment]


@dataclass(slots=True)
class Tally:
    # Each event counted once, by type and outcome (`read` and `outcomes` are derived from it).
    by_type: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counts))
    requests: Counter[str] = field(default_factory=Counts)
    dropped: Counter[str] = field(default_factory=Counts)
    failures: Counter[str] = field(default_factory=Counts)  # failed events by reason
    # Failed events an earlier failure of the same userId caused, by that root's reason
    # (core/rootcause.py): counted under it, not as causes of their own.
    knock_ons: Counter[str] = field(default_factory=Counts)
    skips: Counter[str] = field(default_factory=Counts)  # skipped events by reason
    warnings: Counter[str] = field(default_factory=Counts)  # warnings by text, every outcome
    # Requests a 429 refused, by endpoint: they cost no API tokens (tokens are derived at the end).
    uncharged: Counter[str] = field(default_factory=Counts)
    retries: int = 0
    rate_limited: int = 0
    # Events read but not finished when the run stopped early (Ctrl-C, SIGTERM, unreachable, the
    # budget): not failed, not dead-lettered; the rerun takes them. Counted in `events.read`.
    not_attempted: int = 0
    writes: Counter[str] = field(default_factory=Counts)  # Outcome.writes, summed
    rules: Counter[str] = field(default_factory=Counts)  # track events by rule (dry-run)

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
        """Count a request that reached Pipedrive; a refused one (429) costs no API tokens."""
        key = request.key
        self.requests[key] += 1
        if not charged:
            self.uncharged[key] += 1

    def add_requests(self, other: Tally) -> None:
        """Count the requests (and tokens) another tally counted."""
        self.requests.update(other.requests)
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

    def add_outcome(self, event_type: str, outcome: Outcome, root: str = "") -> None:
        """Count one event's end, in words without event data (SPEC 8). `event_type` is "invalid"
        for input that was not an event; `root`, for a failure an earlier one of the same userId
        caused, that one's redacted reason (core/rootcause.py)."""
        status = outcome.status
        self.by_type[event_type][status] += 1
        # Each reason (and warning) counted under itself, or under "other" once MAX_REASONS
        # distinct ones are: no call for one already counted, most of them.
        if status == "failed" or status == "skipped":
            reason = outcome.reason if outcome.redacted is None else outcome.redacted
            if status == "failed":
                counted, key = (self.knock_ons, root) if root else (self.failures, reason)
            # A skip: each filter's own words are one reason, and an unsupported type is named
            # (`unsupported type: page`), as a user deciding whether the skips are expected
            # wants to see them.
            elif reason == UNSUPPORTED:
                key = UNSUPPORTED_KEYS.get(event_type) or f"{UNSUPPORTED}: {event_type}"
                counted = self.skips
            else:
                filtered = reason.startswith("filtered out")
                counted, key = self.skips, FILTERED if filtered else reason or "(no reason given)"
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
            counted = self.dropped
            for path in dropped:
                counted[path] += 1

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
            "skipped_by_reason": dict(self.skips.most_common()),
            "requests": dict(sorted(self.requests.items())),
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "tokens": self.tokens,
            "duration_s": round(duration_s, 3),
            "dead_letter": dead_letter,
        }
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

    def causes(self) -> list[tuple[str, int]]:
        """Failure reasons with the failures each caused in all (its own and those of later
        events of the same users), the most first."""
        totals = self.failures + self.knock_ons
        return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def estimated_seconds(tally: Tally, plan: str) -> float:
    """How long the requests counted would take at the plan's rate limit (0 when unlimited)."""
    limit = BURST_LIMITS.get(plan)
    if limit is None:
        return 0.0
    counted = tuple(tally.requests.items())  # one C call: the live view reads this mid-run
    total = sum(n for _, n in counted)
    searches = sum(n for key, n in counted if "/itemSearch" in key)
    return max(total / (limit / WINDOW_S), searches / (SEARCH_LIMIT / WINDOW_S))
