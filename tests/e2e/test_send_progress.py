"""Progress while sending (SPEC 6): plain periodic lines when stderr is not a terminal, a bar on a
terminal, nothing with -q. Driven by an injected clock and a recording console."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from e2e_support import EXAMPLES, holdings, identify, rpd_send, write_events
from rich.console import Console

from rudder_pipedrive_cli.cli.progress import SendProgress
from rudder_pipedrive_cli.cli.render import print_sandbox_holdings
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
    assert run.report["events"]["sent"] == 17
    assert len(holdings(sandbox).persons) == 6


def test_the_report_says_why_events_were_skipped(sandbox: Sandbox, tmp_path: Path) -> None:
    first = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", name="first")
    assert first.exit_code == 0, first.stderr
    # The same file again with a filter: what the first run finished is "already done", what
    # the filter leaves out is "filtered" (whichever filter, one line).
    again = rpd_send(
        sandbox,
        tmp_path,
        EXAMPLES / "events.ndjson",
        name="again",
        args=("--type", "identify,group,alias,page,screen"),
    )

    assert first.report is not None and again.report is not None
    assert first.report["skipped_by_reason"] == {
        "anonymous": 2,
        "unsupported type: page": 1,
        "unsupported type: screen": 1,
    }
    assert (
        "why events were skipped:\n"
        "  2  anonymous\n"
        "  1  unsupported type: page\n"
        "  1  unsupported type: screen\n"
    ) in first.stderr
    assert again.exit_code == 0, again.stderr
    assert again.report["skipped_by_reason"] == {"already done": 15, "filtered": 6}
    assert "why events were skipped:\n  15  already done\n   6  filtered\n" in again.stderr


ESCAPES = "\x1b[1A\x1b[2K"  # cursor up, erase line: would rewrite the line above


def test_terminal_escapes_in_event_data_never_reach_send_s_output(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    event = identify("m-1", f"u-1{ESCAPES}", name=f"Ada{ESCAPES}", **{f"shoe{ESCAPES}": 42})
    events = write_events(tmp_path / "in.ndjson", [event])

    run = rpd_send(sandbox, tmp_path, events)
    missing = rpd_send(sandbox, tmp_path, tmp_path / f"gone{ESCAPES}.ndjson", name="missing")
    console, sink = recording_console(terminal=True)
    print_sandbox_holdings(console, sandbox.state(), records=True)

    assert run.exit_code == 0, run.stderr
    assert "\x1b" not in run.stderr + missing.stderr + sink.getvalue()
    assert "unmapped traits dropped: shoe\\x1b[1A\\x1b[2K (1)" in run.stderr
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"error: cannot read {tmp_path}/gone\\x1b[1A\\x1b[2K.ndjson")
    assert "Ada\\x1b[1A\\x1b[2K" in sink.getvalue()
    # What was sent keeps the data as it is.
    assert holdings(sandbox).person(f"u-1{ESCAPES}")["name"] == f"Ada{ESCAPES}"
