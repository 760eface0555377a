"""The report's numbers at scale (QA): a backfill of a million events is read from the report
as the progress line reads it, thousands grouped (`1,000,000`, not `1000000` beside `100000`),
and a run of hours says its hours (`5,432.1 s (1:30:32)`), on a terminal and in a log alike.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from rich.console import Console

from rudder_pipedrive_cli.cli.identities import Ways
from rudder_pipedrive_cli.cli.render import print_dry_run_summary, print_send_report
from rudder_pipedrive_cli.core.preview import WayEstimate
from rudder_pipedrive_cli.core.tally import Counts, Tally


def backfill() -> Tally:
    tally = Tally()
    tally.by_type["identify"] = Counts({"sent": 998_000, "failed": 1_500, "skipped": 500})
    tally.by_type["track"] = Counts({"sent": 1_200_000, "unchanged": 34_567})
    tally.requests = Counts(
        {"POST /api/v2/persons": 998_000, "GET /api/v2/itemSearch/field": 2_200_000}
    )
    tally.failures = Counts({"cannot convert plan": 500})  # and 1,000 knock-ons: 1,500 failed
    tally.knock_ons = Counts({"cannot convert plan": 1_000})
    tally.skips = Counts({"anonymous": 500})
    tally.writes = Counts({"persons created": 998_000})
    tally.retries, tally.rate_limited = 12_345, 4_321
    tally.dropped = Counts({"utm_source": 1_234_567})
    return tally


def lines(terminal: bool, print_report: Callable[[Console], None]) -> list[str]:
    """What `print_report` prints on an 80-column terminal, or in a log."""
    sink = io.StringIO()
    print_report(Console(file=sink, width=80, force_terminal=terminal, color_system=None))
    return sink.getvalue().splitlines()


EVENTS = [
    "┏━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━┳━━━━━━━━━━━┓",
    "┃ type     ┃      sent ┃ unchanged ┃ skipped ┃ failed ┃     total ┃",
    "┡━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━━┩",
    "│ identify │   998,000 │         0 │     500 │  1,500 │ 1,000,000 │",
    "│ track    │ 1,200,000 │    34,567 │       0 │      0 │ 1,234,567 │",
    "│ all      │ 2,198,000 │    34,567 │     500 │  1,500 │ 2,234,567 │",
    "└──────────┴───────────┴───────────┴─────────┴────────┴───────────┘",
]
REQUESTS = [
    "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━━┓",
    "┃ request                      ┃     count ┃ API tokens ┃",
    "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━━┩",
    "│ GET /api/v2/itemSearch/field │ 2,200,000 │ 44,000,000 │",
    "│ POST /api/v2/persons         │   998,000 │  4,990,000 │",
    "│ all                          │ 3,198,000 │ 48,990,000 │",
    "└──────────────────────────────┴───────────┴────────────┘",
]
FAILED = [  # the cause's own events, then its knock-ons, in the column of the widest count
    "    500  cannot convert plan",
    "         +1,000 later events of the same users",
]


@pytest.mark.parametrize("terminal", [True, False])
def test_a_send_report_of_a_million_events_groups_thousands_and_says_its_hours(
    terminal: bool,
) -> None:
    shown = lines(
        terminal,
        lambda console: print_send_report(console, backfill(), duration_s=5432.1, dead_letter=None),
    )

    assert [line.rstrip() for line in shown] == [
        "Events",
        *EVENTS,
        "Requests",
        *REQUESTS,
        *(
            [  # wrapped between words at 80 columns
                "retries: 12,345; 429 waits: 4,321; API tokens: 48,990,000; duration: 5,432.1 s",
                "  (1:30:32); 411.4 events/s",
            ]
            if terminal
            else [
                "retries: 12,345; 429 waits: 4,321; API tokens: 48,990,000; duration: 5,432.1 s "
                "(1:30:32); 411.4 events/s"
            ]
        ),
        "writes: persons created 998,000",
        "unmapped traits dropped: utm_source (1,234,567)",
        "why events were skipped:",
        "  500  anonymous",
        "why events failed:",
        *FAILED,
    ]


def test_a_dry_run_summary_of_a_million_events_groups_thousands_and_says_its_hours() -> None:
    shown = lines(
        True,
        lambda console: print_dry_run_summary(console, backfill(), plan="growth", seconds=98765.4),
    )

    start = next(n for n, line in enumerate(shown) if line.startswith("estimated"))
    assert [line.rstrip() for line in shown[start:]] == [
        "estimated API tokens: 48,990,000; estimated duration at the growth plan's rate",
        "  limit: 98,765.4 s (27:26:05)",
        "planned writes: persons created 998,000",
        "unmapped traits dropped: utm_source (1,234,567)",
        "why events would be skipped:",
        "  500  anonymous",
        "why events would fail:",
        *FAILED,
    ]


def test_the_dry_run_s_line_of_both_identity_ways_groups_thousands_and_says_its_hours() -> None:
    ways = Ways(
        search=WayEstimate(way="search", requests=2_200_000, tokens=44_000_000, duration_s=96_000),
        index=WayEstimate(
            way="index", requests=12_000, tokens=120_000, duration_s=1_234.5, pages=12_000
        ),
        way="index",
        why="auto: 1,100,000 person searches planned, the index from 200 on",
    )

    assert ways.line() == (
        "identities by search: 44,000,000 API tokens, 96,000.0 s (26:40:00); by index: "
        "120,000 API tokens, 1,234.5 s (0:20:34) (12,000 listing pages; 0 refreshes); a send "
        "would resolve them by index (auto: 1,100,000 person searches planned, the index from "
        "200 on)"
    )
