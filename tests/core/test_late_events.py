"""`LateEvents` (core/filters.py): which events --since and --until leave out of a backup's
objects that no window of a day-by-day backfill sends, and the rerun that sends them.

A late event (dated before its object's upload) is left out as before --since by the window that
reads its object; a future-dated one (dated after, a device's clock running ahead) is left out as
not before --until. Only the window that no other window's reading follows counts it, so that
consecutive windows say each such event once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from rudder_pipedrive_cli.core.events import Event, parse_event
from rudder_pipedrive_cli.core.filters import EventFilter, LateEvents
from rudder_pipedrive_cli.core.plans import HANDLERS

MAY_1 = datetime(2024, 5, 1, tzinfo=UTC)
MAY_2 = MAY_1 + timedelta(days=1)
HOUR = 3600


def source(first: datetime, last: datetime) -> str:
    """The source of an event in the backup object uploaded from `first` to `last`."""
    stamps = f"{int(first.timestamp())}_{int(last.timestamp())}"
    return f"backup/src-a/gw/{first.date()}/{first.hour}/i-1/{stamps}_ws-1.json.gz:1#1"


def dated(when: datetime | str, where: str, kind: str = "identify", name: str = "e-1") -> Event:
    stamp = when if isinstance(when, str) else when.isoformat()
    raw: dict[str, Any] = {"type": kind, "messageId": name, "userId": "u-1", "timestamp": stamp}
    return parse_event(raw, where)


def counted(late: LateEvents, *events: Event) -> LateEvents:
    """`late` after the window's filter left `events` out, as Tally hands them on."""
    window = EventFilter(since=late.since, until=late.until)
    for event in events:
        reason = window.skip_reason(event)
        assert reason is not None, event.source  # each case's events are left out
        late.add(event, reason)
    return late


def window(**bounds: datetime) -> LateEvents:
    return LateEvents(planned=HANDLERS, **bounds)


APRIL_30 = MAY_1 - timedelta(days=1)
# Uploaded on April 30 from 10:00 to 10:30: no window from May 1 reads it.
APRIL_30_OBJECT = source(APRIL_30 + timedelta(hours=10), APRIL_30 + timedelta(hours=10.5))


def test_a_future_dated_event_in_an_object_uploaded_before_until_is_counted() -> None:
    late = counted(
        window(since=APRIL_30, until=MAY_1),
        dated(MAY_1 + timedelta(hours=8), APRIL_30_OBJECT, name="ahead-1"),
        dated(MAY_1 + timedelta(hours=20), APRIL_30_OBJECT, name="ahead-2"),
        dated("2024-05-01T09:00:00Z", APRIL_30_OBJECT, kind="track", name="ahead-track"),
    )
    assert (late.after.count, late.after.latest) == (3, MAY_1 + timedelta(hours=20))
    assert late.before.count == 0
    # --until is exclusive: the day after the latest one's takes it in.
    assert late.rerun() == "with --until 2024-05-02"


@pytest.mark.parametrize(
    ("last", "counted_it"),
    [
        (MAY_1 - timedelta(seconds=1), True),  # its last job's second ends at --until
        (MAY_1, False),  # the May 1 window reads this object too: it sends the event, or says so
        (MAY_1 + timedelta(hours=3), False),
    ],
    ids=["last second before until", "last at until", "last after until"],
)
def test_a_future_dated_event_is_counted_only_when_no_window_from_until_reads_its_object(
    last: datetime, counted_it: bool
) -> None:
    where = source(MAY_1 - timedelta(minutes=10), last)
    late = counted(window(since=APRIL_30, until=MAY_1), dated(MAY_1 + timedelta(hours=1), where))
    assert late.after.count == (1 if counted_it else 0)
    assert late.rerun() == ("with --until 2024-05-02" if counted_it else None)


@pytest.mark.parametrize(
    ("first", "counted_it"),
    [
        (MAY_1 - timedelta(seconds=1), False),  # the April 30 window reads this object too
        (MAY_1, True),
    ],
    ids=["first before since", "first at since"],
)
def test_a_late_event_is_counted_only_when_no_window_ending_at_since_reads_its_object(
    first: datetime, counted_it: bool
) -> None:
    where = source(first, MAY_1 + timedelta(hours=1))
    late = counted(window(since=MAY_1, until=MAY_2), dated(APRIL_30, where))
    assert late.before.count == (1 if counted_it else 0)
    assert late.rerun() == ("with --since 2024-04-30" if counted_it else None)


def test_what_is_not_counted() -> None:
    done = {"done"}
    late = window(since=APRIL_30, until=MAY_1)
    late.done = done.__contains__
    ahead = MAY_1 + timedelta(hours=1)
    counted(
        late,
        dated(ahead, APRIL_30_OBJECT, kind="page"),  # skipped either way
        dated(ahead, APRIL_30_OBJECT, name="done"),  # the journal's: an earlier run sent it
        dated(ahead, "events.ndjson:3"),  # a file's events are read by every window
    )
    # Left out by --type: a later --until would leave it out too.
    late.add(dated(ahead, APRIL_30_OBJECT), "filtered out: type identify")
    assert (late.before.count, late.after.count, late.rerun()) == (0, 0, None)


def test_without_until_nothing_is_future_dated() -> None:
    late = window(since=MAY_1)
    late.add(dated(MAY_2, APRIL_30_OBJECT), "filtered out: not before --until")
    assert (late.after.count, late.rerun()) == (0, None)


def test_both_kinds_make_one_rerun() -> None:
    may_1_object = source(MAY_1 + timedelta(hours=9), MAY_1 + timedelta(hours=10))
    late = counted(
        window(since=MAY_1, until=MAY_2),
        dated("2024-04-28T12:00:00Z", may_1_object, name="late"),
        dated("2024-05-03T23:59:59Z", may_1_object, name="ahead"),
    )
    assert late.rerun() == "with --since 2024-04-28 --until 2024-05-04"


@pytest.mark.parametrize(
    ("since", "rerun"),
    [(None, "without --until"), (APRIL_30, "with --since 2024-04-29 and without --until")],
)
def test_no_day_follows_the_last_one_so_the_rerun_drops_until(
    since: datetime | None, rerun: str
) -> None:
    # A clock set to the end of time: no --until takes 9999-12-31, a rerun without one does.
    late = counted(
        LateEvents(since=since, until=MAY_1, planned=HANDLERS),
        dated("9999-12-31T23:59:59Z", APRIL_30_OBJECT, name="end"),
        *([dated("2024-04-29T10:00:00Z", APRIL_30_OBJECT, name="late")] if since else []),
    )
    assert late.rerun() == rerun


def test_consecutive_windows_say_each_event_no_window_sends_exactly_once() -> None:
    # Hour-long windows from May 1 00:00 to 12:00; objects uploaded from 02:00 to 09:59 (each
    # read by the windows that meet it), events dated from 00:00 to 11:59.
    bounds = [MAY_1 + timedelta(hours=hour) for hour in range(13)]
    windows = [EventFilter(since=start, until=end) for start, end in pairwise(bounds)]
    for first in range(120, 600, 37):
        for last in (first, first + 1, first + 58, first + 61, first + 150):
            start, end = (MAY_1 + timedelta(minutes=minute) for minute in (first, last))
            where = source(start, end)
            reading = [
                w for w in windows if w.window.meets(int(start.timestamp()), int(end.timestamp()))
            ]
            for at in range(0, 720, 13):
                event = dated(MAY_1 + timedelta(minutes=at), where)
                sent = sum(w.skip_reason(event) is None for w in reading)
                said = 0
                for left_out_by in (w for w in reading if w.skip_reason(event) is not None):
                    late = counted(window(since=left_out_by.since, until=left_out_by.until), event)
                    said += late.before.count + late.after.count
                assert (sent, said) in ((1, 0), (0, 1)), (first, last, at)
