"""From raw input items to events ready to plan, or to an outcome decided without any request."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from rudder_pipedrive_cli.core.events import Event, EventError, parse_event
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.wrappers import RawItem

INVALID = "invalid"  # the "type" under which input that is not an event is counted
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


@dataclass(slots=True, kw_only=True)  # immutable by convention: see protocol.py
class Intake:
    source: str
    kind: str  # the event's type, or INVALID
    raw: Any  # what goes to a dead letter: the event value, or the unparsable line's text
    event: Event | None = None
    decided: Outcome | None = None  # set when no request is needed (invalid, filtered out)

    @property
    def id(self) -> str:
        return self.event.id if self.event is not None else ""


def _invalid(item: RawItem, reason: str, stage: str, redacted: str | None = None) -> Intake:
    raw = item.value if item.value is not None else item.text
    return Intake(
        source=item.source,
        kind=INVALID,
        raw=raw,
        decided=Outcome(status="failed", reason=reason, stage=stage, redacted=redacted),
    )


def intake(
    items: Iterable[RawItem], event_filter: EventFilter, limit: int | None = None
) -> Iterator[Intake]:
    """Every item becomes exactly one Intake (so every input is accounted for).

    `limit` stops after that many events that pass the filters; what comes on the way (events
    the filters skip, input that is not an event) is still yielded, as skipped or failed. No item
    is read past the limit, so a slow stream is not waited for and a bad line after it is never
    met.
    """
    if limit == 0:
        return
    filtering = (
        event_filter.types is not None
        or event_filter.since is not None
        or event_filter.until is not None
    )
    taken = 0
    for item in items:
        counted = False
        if item.error:
            yield _invalid(item, item.error, "read")
        else:
            try:
                event = parse_event(item.value, item.source)
            except EventError as exc:
                yield _invalid(item, str(exc), "parse", exc.redacted)
            else:
                skip = event_filter.skip_reason(event) if filtering else None
                counted = skip is None
                yield Intake(
                    source=item.source,
                    kind=event.type,
                    raw=item.value,
                    event=event,
                    decided=Outcome(status="skipped", reason=skip) if skip else None,
                )
        if counted:
            taken += 1
            if limit is not None and taken >= limit:
                return
