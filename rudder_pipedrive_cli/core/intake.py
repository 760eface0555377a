"""The reader's items ready to plan: the filters and the limit, and the events already done."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.rules import SKIP_REASON

DONE = frozenset({"sent", "unchanged", "skipped"})  # journal statuses a rerun skips
# The outcomes of what is not planned, one value each (outcomes are immutable by convention,
# protocol.py): an event done (`Finished`: by an earlier run, or a messageId this run finished),
# input that is not an event, and a track event a skip rule takes (core/plans `plan_event`, before
# any other look at it). send's replay tells the first from a plan's "already done" (a lead found
# by its origin_id), which it journals, by identity (replay.py); a rule's skip is the config's,
# as a --type filter's is: it is not journaled, so that a changed rule reaches the event (this
# run still has it done: a repeat of its messageId is `already done`, as dry-run plans it).
ALREADY_DONE = Outcome(status="skipped", reason="already done")
NOT_AN_EVENT = Outcome(status="failed", reason="not an event")
RULE_SKIPPED = Outcome(status="skipped", reason=SKIP_REASON)  # nothing learned


# 2 MiB, a bit per id: with a million ids moved, 6% of the ids never seen still ask SQLite (a
# second bit per id cost more than it saved).
FILTER_BITS = 1 << 24


class IdSet(Protocol):
    """Where `Finished` moves its ids `recent` at a time (io/scratch.py's ScratchIds: bounded)."""

    recent: int

    def __contains__(self, event_id: str) -> bool: ...

    def move(self, ids: Iterable[str]) -> None: ...


class Finished:
    """The events that are done (SPEC 5): those a journal (the replay state's) says an earlier
    run finished, and those this run finished. An event whose id is among them is skipped as
    `already done`: the same messageId twice is one event, sent once, with a state file or
    without one (a first dry-run, `send --sandbox`), so dry-run plans it as send does.

    The ids this run finishes are in memory, in the order they finished; with `older` (dry-run's,
    so its memory stays flat), they move there `older.recent` at a time, and `older` is asked
    only for an id whose bit is set in a Bloom filter of `filter_bits` (a power of two), made at
    the first move and filled a batch at a time (until then a new id costs one membership test).
    """

    __slots__ = ("_bits", "_ids", "_journal_status", "_mask", "_older", "_recent")

    def __init__(
        self,
        journal_status: Callable[[str], str | None] | None = None,
        older: IdSet | None = None,
        filter_bits: int = FILTER_BITS,
    ) -> None:
        if filter_bits < 1 or filter_bits & (filter_bits - 1):
            raise ValueError("a filter's size must be a power of two")
        self._ids: dict[str, None] = {}  # in the order finished: a batch moves out nearly sorted
        self._journal_status = journal_status
        self._older = older
        self._recent = float("inf") if older is None else older.recent
        self._mask = filter_bits - 1
        self._bits = bytearray()  # empty (false) until ids first move to `older`

    def has(self, event_id: str) -> bool:
        """Whether the event `event_id` is done."""
        if event_id in self._ids:
            return True
        if bits := self._bits:  # the filter inline: a clear bit tells at once
            bit = hash(event_id) & self._mask
            if bits[bit >> 3] & (1 << (bit & 7)) and event_id in self._older:  # type: ignore[operator]
                return True
        status = self._journal_status
        return status is not None and status(event_id) in DONE

    def add(self, event_id: str, status: str) -> None:
        """Record how an event this run planned ended (only a done one is kept)."""
        if status in DONE:
            ids = self._ids
            ids[event_id] = None
            if len(ids) >= self._recent:  # to `older`, their bits set in the filter
                bits = self._bits = self._bits or bytearray((self._mask + 8) >> 3)
                for bit in map(self._mask.__and__, map(hash, ids)):
                    bits[bit >> 3] |= 1 << (bit & 7)
                self._older.move(ids)  # type: ignore[union-attr]  # `_recent`: only with one
                ids.clear()


def intake(
    items: Iterable[Event], event_filter: EventFilter, limit: int | None = None
) -> Iterator[Event]:
    """The reader's items with the filters and the limit applied: every item comes out once
    (so every input is accounted for), an event the filters skip decided as skipped.

    `limit` stops after that many events that pass the filters; what comes on the way (events
    the filters skip, input that is not an event) is still yielded, as skipped or failed. No item
    is read past the limit, so a slow stream is not waited for and a bad line after it is never
    met. Without filters or a limit, the items are the reader's own, with no loop around them.
    """
    if limit == 0:
        return iter(())
    filtering = event_filter != EventFilter()
    if not filtering and limit is None:
        return iter(items)
    return _taken(items, event_filter.skip_reason if filtering else None, limit)


def _taken(
    items: Iterable[Event], skip_reason: Callable[[Event], str | None] | None, limit: int | None
) -> Iterator[Event]:
    taken = 0
    for item in items:
        counted = item.decided is None
        if counted and skip_reason is not None and (skip := skip_reason(item)):
            item.decided = Outcome(status="skipped", reason=skip)
            counted = False
        yield item
        if counted:
            taken += 1
            if limit is not None and taken >= limit:
                return
