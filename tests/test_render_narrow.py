"""A narrow terminal (a tmux pane, QA): a table rich would cut (`unchang…` at 60 columns, the
types to `ide…` and the paths to `/api/v2/organi…` at 40) is said row by row instead, each row
wrapped between words, a count never parted from its name; a table that fits stays a table.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from rich.console import Console

from rudder_pipedrive_cli.cli.render import print_dry_run_summary, print_send_report
from rudder_pipedrive_cli.core.tally import Counts, Tally


def small_run() -> Tally:
    tally = Tally()
    tally.by_type["identify"] = Counts({"sent": 7, "skipped": 1})
    tally.by_type["track"] = Counts({"sent": 7, "skipped": 3})
    tally.requests = Counts(
        {
            "POST /api/v2/persons": 7,
            "GET /api/v2/organizationFields": 1,
            "PUT /v1/persons/{id}/merge": 1,
        }
    )
    return tally


def narrow(width: int, print_report: Callable[[Console], None]) -> list[str]:
    sink = io.StringIO()
    print_report(Console(file=sink, width=width, force_terminal=True, color_system=None))
    return sink.getvalue().splitlines()


def test_a_send_report_in_a_40_column_pane_says_its_tables_row_by_row_uncut() -> None:
    shown = narrow(
        40,
        lambda console: print_send_report(console, small_run(), duration_s=2.0, dead_letter=None),
    )

    assert shown == [
        "Events",
        "  identify: sent 7, unchanged 0,",
        "    skipped 1, failed 0, total 8",
        "  track: sent 7, unchanged 0, skipped 3,",
        "    failed 0, total 10",
        "  all: sent 14, unchanged 0, skipped 4,",
        "    failed 0, total 18",
        "Requests",
        "  GET /api/v2/organizationFields:",
        "    count 1, API tokens 10",
        "  POST /api/v2/persons: count 7,",
        "    API tokens 35",
        "  PUT /v1/persons/{id}/merge: count 1,",
        "    API tokens 40",
        "  all: count 9, API tokens 85",
        "retries: 0; 429 waits: 0; API tokens:",
        "  85; duration: 2.0 s; 9.0 events/s",
    ]


def test_a_dry_run_summary_at_60_columns_keeps_the_table_that_fits() -> None:
    shown = narrow(
        60, lambda console: print_dry_run_summary(console, small_run(), plan="growth", seconds=2.0)
    )

    assert [line.rstrip() for line in shown[:12]] == [
        "Planned events",  # 61 columns as a table: `unchang…`
        "  identify: planned 7, unchanged 0, skipped 1, failed 0,",
        "    total 8",
        "  track: planned 7, unchanged 0, skipped 3, failed 0,",
        "    total 10",
        "  all: planned 14, unchanged 0, skipped 4, failed 0,",
        "    total 18",
        "Requests a replay would make",
        "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━┓",
        "┃ request                        ┃ count ┃ API tokens ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━┩",
        "│ GET /api/v2/organizationFields │     1 │         10 │",
    ]
