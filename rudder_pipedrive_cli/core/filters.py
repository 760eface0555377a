"""The `--type`, `--since` and `--until` decisions (SPEC 2). Pure.

Time filters compare the event's time (`event_time`: the first readable of `timestamp`,
`originalTimestamp`, `sentAt`) as an instant: `--since` is inclusive, `--until` exclusive, so
consecutive windows (`--since 2024-01-01 --until 2024-02-01`, then `--since 2024-02-01 ...`)
neither overlap nor leave a gap. When a time filter is set, an event without a readable time is
filtered out (it cannot be shown to be inside the window); without time filters its time is
never looked at.

A year (`2021`) or a month (`2021-06`) names a period: `--since` starts at its first instant and
`--until` takes all of it (it ends where the next period starts), so `--since 2021-01 --until
2021-06` is January to June. A date or a time is an instant, as above (`--until 2021-06-30`
excludes June 30).

A late event (a mobile SDK queued it offline for days) is received, and so filed in a backup's
objects (core/backups.py), long after its time: a window that reads its object leaves it out as
before --since, and the window of its time does not read that object. The mirror is a
future-dated event (a device whose clock runs ahead): filed before its time, left out as not
before --until by a window that reads its object, never read by the window of its time.
`LateEvents` counts both kinds a run left out, for a warning saying which --since and --until
would send them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from rudder_pipedrive_cli.core.backups import OBJECT, Window
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.events import TIME_PATHS, Event, quoted
from rudder_pipedrive_cli.core.fields import known_time, parse_time

# The RudderStack event types a user may name in --type: the four rpd delivers, and the two it
# counts as skipped but that archives are full of.
EVENT_TYPES = ("identify", "group", "alias", "track", "page", "screen")


BEFORE_SINCE = "filtered out: before --since"
NOT_BEFORE_UNTIL = "filtered out: not before --until"
NEVER_SET = "is Go's zero time, a time never set"  # read as no time (fields.known_time)
PERIOD = re.compile(r"(\d{4})(?:-(\d{2}))?")


def parse_period(text: str, *, end: bool) -> datetime | None:
    """A year `YYYY` or a month `YYYY-MM` (UTC): its first instant, or with `end` the first
    instant after it; None when `text` is neither. Raises ValueError for a month that is not one."""
    match = PERIOD.fullmatch(text.strip())
    if match is None:
        return None
    year, month = int(match.group(1)), int(match.group(2) or 1)
    start = datetime(year, month, 1, tzinfo=UTC)
    if not end:
        return start
    if match.group(2) is None or month == 12:
        return datetime(year + 1, 1, 1, tzinfo=UTC)
    return datetime(year, month + 1, 1, tzinfo=UTC)


def parse_when(text: str) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime: a date means midnight UTC, naive is UTC.

    Raises ValueError when `text` is not ISO 8601.
    """
    when = datetime.fromisoformat(text.strip())
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def event_time(event: Event) -> datetime | None:
    """The first readable time of `timestamp`, `originalTimestamp`, `sentAt` (ISO 8601, or epoch
    seconds or milliseconds): a time that cannot be read gives way to the next, so consecutive
    windows still split an input whose `timestamp` is unreadable but `originalTimestamp` is not."""
    for path in TIME_PATHS:
        value = event.raw.get(path)
        if value is not None and value != "":
            when = known_time(value)  # Go's zero time is no time: the next one is read
            if when is not None:
                return when
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    types: frozenset[str] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name, when in (("since", self.since), ("until", self.until)):
            if when is not None and when.tzinfo is None:
                raise ValueError(f"EventFilter.{name} must be timezone-aware")

    @property
    def window(self) -> Window:
        """The time window, for choosing the objects of a backup from their keys."""
        return Window(since=self.since, until=self.until)

    def skip_reason(self, event: Event) -> str | None:
        """None when the event passes every filter, else why it is skipped."""
        if self.types is not None and event.type not in self.types:
            return f"filtered out: type {event.type}"
        if self.since is None and self.until is None:
            return None
        when = event_time(event)
        if when is None:  # the first time there names why: none of them could be read
            for path in TIME_PATHS:
                if (value := event.raw.get(path)) not in (None, ""):
                    why = NEVER_SET if parse_time(value) is not None else "is not a date or time"
                    return f"filtered out: {path} = {quoted(value)} {why}"
            return "filtered out: no timestamp"
        if self.since is not None and when < self.since:
            return BEFORE_SINCE
        if self.until is not None and when >= self.until:
            return NOT_BEFORE_UNTIL
        return None

    @classmethod
    def from_options(cls, types: str | None, since: str | None, until: str | None) -> EventFilter:
        """Build the filter from the raw option values; a bad value raises `UsageError`."""
        start = _option_time("--since", since)
        end = _option_time("--until", until)
        if start is not None and end is not None and start >= end:
            raise UsageError(
                f"--since {since} is not before --until {until}",
                hint="--since is inclusive and --until exclusive: give a later --until",
            )
        return cls(types=_option_types(types), since=start, until=end)


@dataclass(slots=True, kw_only=True)
class LeftOut:
    """The events of one kind (late, or future-dated) a run left out that no window sends: how
    many, and the earliest and latest of their times (what a rerun's --since or --until needs)."""

    count: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None

    def add(self, when: datetime) -> None:
        self.count += 1
        self.earliest = when if self.earliest is None else min(self.earliest, when)
        self.latest = when if self.latest is None else max(self.latest, when)


@dataclass(slots=True, kw_only=True)
class LateEvents:
    """The events a run left out of a backup's objects (their sources name their keys) that no
    window of a day-by-day backfill sends, each counted by exactly one of consecutive windows; of
    a type rpd sends (`planned`: a page is skipped either way), and not `done` (the journal's: an
    earlier run sent it).

    - `before` (late events): left out as before `since`, from an object received at or after
      `since` (FIRST in its key), so that no window ending at `since` reads it. One received
      before `since` is not counted: the window before reads that object too (a day's last
      upload holds events of both days), and says so if the event is older than that window.
    - `after` (future-dated events): left out as not before `until`, from an object received
      wholly before `until` (LAST in its key), so that no window starting at `until` reads it.
      One whose LAST is at or after `until` is not counted: the window after reads that object
      too, and sends the event, or says so if the event is past that window as well.
    """

    since: datetime | None = None
    until: datetime | None = None
    planned: Container[str]
    done: Callable[[str], bool] = lambda _: False
    before: LeftOut = field(default_factory=LeftOut)
    after: LeftOut = field(default_factory=LeftOut)
    # The windows on the other side of each bound, that the counted objects must not meet.
    _earlier: Window = field(init=False)
    _later: Window = field(init=False)

    def __post_init__(self) -> None:
        self._earlier = Window(until=self.since)
        self._later = Window(since=self.until)

    def add(self, event: Event, reason: str) -> None:
        """Count `event`, skipped for `reason`, if no other window sends it."""
        if reason == BEFORE_SINCE and self.since is not None:
            left_out, others = self.before, self._earlier
        elif reason == NOT_BEFORE_UNTIL and self.until is not None:
            left_out, others = self.after, self._later
        else:
            return
        if event.type not in self.planned:
            return
        key = OBJECT.search(event.source)
        when = event_time(event)
        if key is None or when is None or others.meets(int(key.group(2)), int(key.group(3))):
            return
        if self.done(event.id):
            return
        left_out.add(when)

    def rerun(self) -> str | None:
        """How the same command, with the same state, sends the events counted (None: none):
        `with --since` the earliest late event's day, `--until` the day after the latest
        future-dated one's (--until is exclusive), or `without --until` when no day follows."""
        options, without = [], []
        if self.before.earliest is not None:
            options.append(f"--since {self.before.earliest.astimezone(UTC).date()}")
        if self.after.latest is not None:
            day = self.after.latest.astimezone(UTC).date()
            if day < date.max:
                options.append(f"--until {day + timedelta(days=1)}")
            else:
                without.append("without --until")
        rerun = ([f"with {' '.join(options)}"] if options else []) + without
        return " and ".join(rerun) or None


def _option_types(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    names = [name.strip().lower() for name in text.split(",")]
    chosen = frozenset(name for name in names if name)
    if not chosen:
        raise UsageError(
            "--type needs at least one event type", hint=f"choose from {', '.join(EVENT_TYPES)}"
        )
    unknown = sorted(chosen.difference(EVENT_TYPES))
    if unknown:
        listed = ", ".join(unknown)
        noun = "type" if len(unknown) == 1 else "types"
        raise UsageError(
            f"unknown event {noun} in --type: {listed}",
            hint=f"valid types: {', '.join(EVENT_TYPES)} (comma-separated)",
        )
    return chosen


def _option_time(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_period(text, end=option == "--until") or parse_when(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO 8601 date or time",
            hint=f"use e.g. {option} 2024, {option} 2024-05, {option} 2024-05-01 or "
            f"{option} 2024-05-01T12:00:00Z (naive means UTC)",
        ) from None
