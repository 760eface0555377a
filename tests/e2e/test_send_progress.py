"""Progress while sending (SPEC 6): plain periodic lines when stderr is not a terminal, a bar on a
terminal, nothing with -q. Driven by an injected clock and a recording console."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from e2e_support import EXAMPLES, holdings, rpd_send
from rich.console import Console

from rudder_pipedrive_cli.cli.progress import SendProgress
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.sandbox import Sandbox


@dataclass
class FakeReading:
    bytes_read: int = 0
    total_bytes: int | None = 1000


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def recording_console(*, terminal: bool = False) -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, width=200, force_terminal=terminal, color_system=None), sink


def test_plain_lines_come_at_most_once_per_interval() -> None:
    console, sink = recording_console()
    tally, reading, clock = Tally(), FakeReading(), FakeClock()
    progress = SendProgress(console, tally, reading, mode="plain", interval=5.0, clock=clock)

    with progress:
        tally.add_outcome("identify", "sent")
        clock.now = 104.9
        progress.tick()  # under 5 s since the start: nothing yet
        tally.add_outcome("track", "failed")
        tally.add_outcome("page", "skipped")
        tally.retries, tally.rate_limited = 3, 1
        reading.bytes_read = 500
        clock.now = 105.0
        progress.tick()
        clock.now = 107.0
        progress.tick()  # 2 s after the last line: nothing
        tally.add_outcome("identify", "unchanged")
        reading.bytes_read = 1000
        clock.now = 110.0
        progress.tick()

    assert sink.getvalue().splitlines() == [
        "progress: 3 events (1/s): sent 1, unchanged 0, skipped 1, failed 1; retries 3, "
        "429 waits 1, 50% read",
        "progress: 4 events (0/s): sent 1, unchanged 1, skipped 1, failed 1; retries 3, "
        "429 waits 1, 100% read",
    ]


def test_plain_lines_without_a_known_size_leave_out_the_share() -> None:
    console, sink = recording_console()
    tally, clock = Tally(), FakeClock()
    progress = SendProgress(
        console, tally, FakeReading(total_bytes=None), mode="plain", interval=1.0, clock=clock
    )
    with progress:
        for _ in range(20):
            tally.add_outcome("identify", "sent")
        clock.now = 102.0
        progress.tick()

    assert sink.getvalue() == (
        "progress: 20 events (10/s): sent 20, unchanged 0, skipped 0, failed 0; retries 0, "
        "429 waits 0\n"
    )


def test_no_progress_at_all_in_mode_none() -> None:
    console, sink = recording_console(terminal=True)
    tally, clock = Tally(), FakeClock()
    with SendProgress(console, tally, FakeReading(), mode="none", interval=0.0, clock=clock) as p:
        tally.add_outcome("identify", "sent")
        clock.now = 1000.0
        p.tick()

    assert sink.getvalue() == ""


def test_a_terminal_gets_a_bar_with_live_counts_that_goes_away() -> None:
    console, sink = recording_console(terminal=True)
    tally, reading, clock = Tally(), FakeReading(), FakeClock()
    with SendProgress(console, tally, reading, mode="rich", clock=clock) as progress:
        tally.add_outcome("identify", "sent")
        tally.rate_limited = 2
        reading.bytes_read = 250
        clock.now = 101.0
        progress.tick()
        progress._bar.refresh() if progress._bar is not None else None

    output = sink.getvalue()
    assert "sending" in output
    assert "1 events (1/s): sent 1, unchanged 0, skipped 0, failed 0; retries 0, 429 waits 2" in (
        output
    )
    assert "progress:" not in output


def test_quiet_send_prints_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    run = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", args=("-q",))

    assert run.exit_code == 0
    assert run.stdout == ""
    assert run.stderr == ""
    assert run.report is not None
    assert run.report["events"]["sent"] == 19
    assert len(holdings(sandbox).persons) == 6
