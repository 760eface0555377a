"""`--type`, `--since`, `--until` (SPEC 2): option parsing and per-event decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.filters import EVENT_TYPES, EventFilter, parse_when


def event(kind: str = "identify", **fields: Any) -> Any:
    return parse_event({"type": kind, "userId": "u-1", **fields}, "f:1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (" 2024-05-01 ", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:30:00", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01 12:30", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00.250Z", datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=UTC)),
        (
            "2024-05-01T12:30:00+02:00",
            datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    parsed = parse_when(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01", "05/01/2024", "1714567890"])
def test_parse_when_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_when(text)


def test_from_options_without_options_keeps_everything() -> None:
    assert EventFilter.from_options(None, None, None) == EventFilter()
    assert EventFilter().skip_reason(event("page")) is None
    assert EventFilter().skip_reason(event()) is None  # no timestamp is fine without time filters


def test_types_are_trimmed_and_lower_cased() -> None:
    chosen = EventFilter.from_options(" Identify, TRACK ,", None, None)
    assert chosen.types == frozenset({"identify", "track"})


def test_every_documented_type_is_accepted() -> None:
    chosen = EventFilter.from_options(",".join(EVENT_TYPES), None, None)
    assert chosen.types == frozenset({"identify", "group", "alias", "track", "page", "screen"})


@pytest.mark.parametrize(
    ("types", "message"),
    [
        ("identify,pageview", "unknown event type in --type: pageview"),
        ("identfy,trak", "unknown event types in --type: identfy, trak"),
    ],
)
def test_unknown_types_are_a_usage_error(types: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        EventFilter.from_options(types, None, None)
    assert caught.value.message == message
    assert caught.value.hint == (
        "valid types: identify, group, alias, track, page, screen (comma-separated)"
    )


@pytest.mark.parametrize("types", ["", " , "])
def test_empty_type_list_is_a_usage_error(types: str) -> None:
    with pytest.raises(UsageError) as caught:
        EventFilter.from_options(types, None, None)
    assert caught.value.message == "--type needs at least one event type"
    assert caught.value.hint == "choose from identify, group, alias, track, page, screen"


@pytest.mark.parametrize(("option", "args"), [("--since", ("x", None)), ("--until", (None, "x"))])
def test_bad_time_is_a_usage_error(option: str, args: tuple[str | None, str | None]) -> None:
    with pytest.raises(UsageError) as caught:
        EventFilter.from_options(None, *args)
    assert caught.value.message == f"{option} 'x' is not an ISO 8601 date or time"
    assert caught.value.hint == (
        f"use e.g. {option} 2024, {option} 2024-05, {option} 2024-05-01 or "
        f"{option} 2024-05-01T12:00:00Z (naive means UTC)"
    )


@pytest.mark.parametrize("until", ["2024-05-01", "2024-04-30"])
def test_since_must_be_before_until(until: str) -> None:
    with pytest.raises(UsageError) as caught:
        EventFilter.from_options(None, "2024-05-01", until)
    assert caught.value.message == f"--since 2024-05-01 is not before --until {until}"


def test_naive_datetimes_are_refused_by_the_dataclass() -> None:
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        EventFilter(since=datetime(2024, 5, 1))


def test_type_filter() -> None:
    only = EventFilter.from_options("identify,track", None, None)
    assert only.skip_reason(event("identify")) is None
    assert only.skip_reason(event("Track")) is None  # parse_event lower-cases the type
    assert only.skip_reason(event("page")) == "filtered out: type page"
    assert only.skip_reason(event("group", groupId="g")) == "filtered out: type group"


WINDOW = EventFilter.from_options(None, "2024-05-01", "2024-05-02T00:00:00Z")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"timestamp": "2024-05-01T00:00:00Z"}, None),  # since is inclusive
        ({"timestamp": "2024-05-01T23:59:59.999Z"}, None),
        ({"timestamp": "2024-05-02T00:00:00Z"}, "filtered out: not before --until"),
        ({"timestamp": "2024-04-30T23:59:59Z"}, "filtered out: before --since"),
        # Offsets are instants: 01:00+02:00 is 23:00 UTC the day before.
        ({"timestamp": "2024-05-01T01:00:00+02:00"}, "filtered out: before --since"),
        ({"timestamp": "2024-05-02T01:00:00+02:00"}, None),
        ({"timestamp": "2024-05-01T12:00:00"}, None),  # naive means UTC
        ({"timestamp": "2024-05-01"}, None),
        # timestamp, else originalTimestamp, else sentAt
        ({"originalTimestamp": "2024-04-01T00:00:00Z"}, "filtered out: before --since"),
        ({"sentAt": "2024-06-01T00:00:00Z"}, "filtered out: not before --until"),
        (
            {"timestamp": "2024-05-01T10:00:00Z", "originalTimestamp": "2024-01-01T00:00:00Z"},
            None,
        ),
        ({}, "filtered out: no timestamp"),
        # The reason names the key and quotes its value (an archive's events carry one of three).
        (
            {"timestamp": "last tuesday"},
            "filtered out: timestamp = last tuesday is not a date or time",
        ),
        ({"timestamp": True}, "filtered out: timestamp = true is not a date or time"),
        (
            {"originalTimestamp": "2024-02-30T00:00:00Z", "sentAt": [1]},
            "filtered out: originalTimestamp = 2024-02-30T00:00:00Z is not a date or time",
        ),
        ({"timestamp": 1714560000000}, None),  # epoch ms: 2024-05-01T10:40:00Z
        ({"timestamp": 1714600000}, None),  # epoch seconds: 2024-05-01T21:46:40Z
        ({"timestamp": 1714700000}, "filtered out: not before --until"),
        # An unreadable time gives way to the next (QA: such events fell outside every window).
        (
            {"timestamp": "1714560000000", "originalTimestamp": "2024-05-01T09:00:00Z"},
            None,
        ),
        ({"timestamp": "soon", "sentAt": "2024-04-01T00:00:00Z"}, "filtered out: before --since"),
        # Go's zero time is a time nobody set: the next one is read (review).
        ({"timestamp": "0001-01-01T00:00:00Z", "originalTimestamp": "2024-05-01T09:00:00Z"}, None),
        (
            {"timestamp": "0001-01-01T00:00:00Z"},
            "filtered out: timestamp = 0001-01-01T00:00:00Z is Go's zero time, a time never set",
        ),
    ],
)
def test_time_window(fields: dict[str, Any], reason: str | None) -> None:
    assert WINDOW.skip_reason(event(**fields)) == reason


def test_since_alone_and_until_alone() -> None:
    since = EventFilter.from_options(None, "2024-05-01", None)
    until = EventFilter.from_options(None, None, "2024-05-01")
    early = event(timestamp="2020-01-01T00:00:00Z")
    late = event(timestamp="2030-01-01T00:00:00Z")
    assert (since.skip_reason(early), since.skip_reason(late)) == (
        "filtered out: before --since",
        None,
    )
    assert (until.skip_reason(early), until.skip_reason(late)) == (
        None,
        "filtered out: not before --until",
    )
    assert until.skip_reason(event()) == "filtered out: no timestamp"


def test_type_is_checked_before_time() -> None:
    both = EventFilter.from_options("identify", "2024-05-01", None)
    assert both.skip_reason(event("page")) == "filtered out: type page"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "start", "end"),
    [
        ("2021", "2021", utc(2021, 1, 1), utc(2022, 1, 1)),
        ("2021-06", "2021-06", utc(2021, 6, 1), utc(2021, 7, 1)),
        (" 2021-01", "2021-12 ", utc(2021, 1, 1), utc(2022, 1, 1)),
        ("2020", "2021-06-30", utc(2020, 1, 1), utc(2021, 6, 30)),
    ],
)
def test_a_year_or_month_is_a_period_since_its_start_until_its_end(
    since: str, until: str, start: datetime, end: datetime
) -> None:
    # Issue 20 item 8: --since 2021 is the start of 2021, --until 2021-06 the end of June.
    chosen = EventFilter.from_options(None, since, until)
    assert (chosen.since, chosen.until) == (start, end)


def test_until_a_month_keeps_its_last_instant_and_drops_the_next() -> None:
    june = EventFilter.from_options(None, "2021-06", "2021-06")
    assert june.skip_reason(event(timestamp="2021-06-30T23:59:59.999Z")) is None
    assert june.skip_reason(event(timestamp="2021-06-01T00:00:00Z")) is None
    assert june.skip_reason(event(timestamp="2021-07-01T00:00:00Z")) == (
        "filtered out: not before --until"
    )
    assert june.skip_reason(event(timestamp="2021-05-31T23:59:59Z")) == (
        "filtered out: before --since"
    )


@pytest.mark.parametrize("text", ["2021-13", "2021-00", "21", "20210"])
def test_a_month_that_is_not_one_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        EventFilter.from_options(None, text, None)
    assert caught.value.message == f"--since {text!r} is not an ISO 8601 date or time"
