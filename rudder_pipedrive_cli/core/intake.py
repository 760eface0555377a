"""The reader's items ready to plan: the filters and the limit, and the events already done."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from rudder_pipedrive_cli.core.events import INVALID as INVALID
from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.protocol import Outcome

DONE = frozenset({"sent", "unchanged", "skipped"})  # journal statuses a rerun skips


class IdSet(Protocol):
    def __contains__(self, event_id: str) -> bool: ...

    def add(self, event_id: str) -> None: ...


class Finished:
    """The events that are done (SPEC 5): those a journal (the replay state's) says an earlier
    run finished, and those this run finished. An event whose id is among them is skipped as
    `already done`: the same messageId twice is one event, sent once, with a state file or
    without one (a first dry-run, `send --sandbox`), so dry-run plans it as send does.

    The ids this run finishes go to `ids` (a set by default; dry-run passes one that keeps its
    memory flat, io/scratch.py).
    """

    __slots__ = ("_ids", "_journal_status")

    def __init__(
        self,
        journal_status: Callable[[str], str | None] | None = None,
        ids: IdSet | None = None,
    ) -> None:
        self._ids: IdSet = ids if ids is not None else set()
        self._journal_status = journal_status

    def __contains__(self, event_id: str) -> bool:
        if event_id in self._ids:
            return True
        status = self._journal_status
        return status is not None and status(event_id) in DONE

    def add(self, event_id: str, status: str) -> None:
        """Record how an event this run planned ended (only a done one is kept)."""
        if status in DONE:
            self._ids.add(event_id)


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
