"""Progress while sending (SPEC 6): plain periodic lines when stderr is not a terminal, a bar on a
terminal, nothing with -q. Driven by an injected clock and a recording console."""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from e2e_support import EXAMPLES, holdings, identify, rpd_send, track, write_events
from fakes import FakeClock
from rich.console import Console

from rudder_pipedrive_cli.cli import common, send_cmd
from rudder_pipedrive_cli.cli.progress import LiveView, SendProgress
from rudder_pipedrive_cli.cli.render import print_sandbox_holdings
from rudder_pipedrive_cli.core.events import Event, parse_event
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.intake import intake
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.tally import Counts, Tally, add_count
from rudder_pipedrive_cli.sandbox import Sandbox


@dataclass
class FakeReading:
    bytes_read: int = 0
    total_bytes: int | None = 1000


def events_of(count: int) -> list[Event]:
    """`count` events as the reader gives them: none decided, each one --limit counts."""
    return [parse_event(identify(f"m-{n}", f"u-{n}"), "in") for n in range(count)]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def recording_console(*, terminal: bool = False) -> tuple[Console, io.StringIO]:
    sink = Tty() if terminal else io.StringIO()
    return Console(file=sink, width=200, force_terminal=terminal, color_system=None), sink


def test_plain_lines_come_at_most_once_per_interval() -> None:
    console, sink = recording_console()
    tally, reading, clock = Tally(), FakeReading(), FakeClock(100.0)
    progress = SendProgress(console, tally, reading, mode="plain", interval=5.0, clock=clock)

    with progress:
        events = progress.counted(events_of(4))
        next(events)
        tally.add_outcome("identify", Outcome(status="sent"))
        clock.now = 104.9
        progress.tick()  # under 5 s since the start: nothing yet
        next(events), next(events)
        tally.add_outcome("track", Outcome(status="failed"))
        tally.add_outcome("page", Outcome(status="skipped"))
        tally.retries, tally.rate_limited = 3, 1
        reading.bytes_read = 600  # 3 events in 600 bytes of 1000: about 5 events in all
        clock.now = 105.0
        progress.tick()
        clock.now = 107.0
        progress.tick()  # 2 s after the last line: nothing
        next(events)
        tally.add_outcome("identify", Outcome(status="unchanged"))
        reading.bytes_read = 1000  # all read: 4 events, counted
        clock.now = 110.0
        progress.tick()

    assert sink.getvalue().splitlines() == [
        "progress: 60% of events done (3 of ~5), 1/s, 0:00:03 left; sent 1, unchanged 0, "
        "skipped 1, failed 1; retries 3, 429 waits 1",
        "progress: 100% of events done (4 of 4), 0/s, 0:00:00 left; sent 1, unchanged 1, "
        "skipped 1, failed 1; retries 3, 429 waits 1",
    ]


def test_plain_lines_without_a_known_size_leave_out_the_share() -> None:
    console, sink = recording_console()
    tally, clock = Tally(), FakeClock(100.0)
    progress = SendProgress(
        console, tally, FakeReading(total_bytes=None), mode="plain", interval=1.0, clock=clock
    )
    with progress:
        for _ in progress.counted(events_of(20)):
            tally.add_outcome("identify", Outcome(status="sent"))
        clock.now = 102.0
        progress.tick()

    assert sink.getvalue() == (
        "progress: 20 events done, 10/s; sent 20, unchanged 0, skipped 0, failed 0; retries 0, "
        "429 waits 0\n"
    )


def test_no_progress_at_all_in_mode_none() -> None:
    console, sink = recording_console(terminal=True)
    tally, clock = Tally(), FakeClock(100.0)
    with SendProgress(console, tally, FakeReading(), mode="none", interval=0.0, clock=clock) as p:
        tally.add_outcome("identify", Outcome(status="sent"))
        clock.now = 1000.0
        p.tick()

    assert sink.getvalue() == ""


def progress_at(
    tally: Tally,
    *,
    taken: int,
    bytes_read: int,
    total_bytes: int | None,
    seconds: float,
    limit: int | None = None,
    limited: int | None = None,
) -> SendProgress:
    """`taken` items read, `limited` of them (default: all) events --limit counts."""
    clock = FakeClock(100.0)
    reading = FakeReading(bytes_read=bytes_read, total_bytes=total_bytes)
    progress = SendProgress(
        Console(), tally, reading, mode="none", plan="growth", limit=limit, clock=clock
    )
    progress.taken = taken
    progress.limited = taken if limited is None else limited
    clock.now += seconds
    return progress


def a_run(*, sent: int, skipped: int, failed: int, requests: int = 0) -> Tally:
    tally = Tally(retries=3, rate_limited=1)
    for count, status in ((sent, "sent"), (skipped, "skipped"), (failed, "failed")):
        for _ in range(count):
            tally.add_outcome("identify", Outcome(status=status))
    tally.requests["PATCH /api/v2/persons/{id}"] = requests
    return tally


def live_lines(progress: SendProgress, width: int) -> list[str]:
    console, sink = recording_console(terminal=True)
    console.width = width
    console.print(LiveView(progress))
    return sink.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_the_live_view_fits_the_terminal_with_bar_eta_and_every_count(width: int) -> None:
    tally = a_run(sent=400, skipped=10, failed=2)
    progress = progress_at(tally, taken=412, bytes_read=412_000, total_bytes=1_000_000, seconds=34)

    bar, counts = live_lines(progress, width)

    tail = " 412 of ~1,000 events (41%)  12/s  0:00:34  eta 0:00:49"
    assert len(bar) <= width
    room = min(width - 8 - len(tail), 60)
    assert room >= 10 and bar.endswith(tail)
    filled = room * 412 // 1000  # rounded down: full only once every event is done
    assert bar == "sending " + "━" * filled + "─" * (room - filled) + tail
    assert counts == "sent 400  unchanged 0  skipped 10  failed 2  retries 3  429 waits 1"


def test_large_counts_still_fit_80_columns() -> None:
    tally = a_run(sent=1_234_567, skipped=123_456, failed=12_345)
    tally.retries, tally.rate_limited = 123_456, 12_345
    done = 1_234_567 + 123_456 + 12_345
    progress = progress_at(
        tally, taken=done, bytes_read=done * 100, total_bytes=9_000_000_000, seconds=36_000
    )

    bar, counts = live_lines(progress, 80)

    # The time taken gives way to the bar; the ETA stays.
    assert bar == (
        "sending ────────────── 1,370,368 of ~90,000,000 events (1%)  38/s  eta 646:45:28"
    )
    assert counts == "sent 1,234,567  unch 0  skip 123,456  fail 12,345  retry 123,456  429 12,345"


def test_a_backfill_s_six_digit_counts_and_its_objects_fit_two_lines_at_80_columns() -> None:
    # A 300,000-event backfill from a bucket: '; objects 47/48' went on a third line, under
    # 'sent 115,791  unch 7,476  skip 174,947  fail 1,786  retry 0'.
    tally = Tally(retries=0, rate_limited=0)
    tally.by_type["track"] = Counts({"sent": 115_791, "unchanged": 7_476, "skipped": 174_946})
    tally.by_type["identify"] = Counts({"failed": 1_786})
    progress = progress_at(tally, taken=300_000, bytes_read=10**8, total_bytes=10**8, seconds=240)
    progress.reading.objects_done, progress.reading.objects_total = 47, 48  # type: ignore[attr-defined]

    bar, counts = live_lines(progress, 80)

    # README's example
    assert bar == "sending " + "━" * 17 + "─ 299,999 of 300,000 events (99%)  1,250/s  eta 0:00:00"
    assert counts == "sent 115,791  unch 7,476  skip 174,946  fail 1,786  retry 0  429 0  obj 47/48"


def test_in_a_40_column_pane_the_live_view_goes_on_a_line_rather_than_cut_its_eta() -> None:
    # It cut what did not fit: 'sending 412/~1,000 (41%)  12/s  eta 0:0…' and
    # 'sent 400  unch 0  skip 10  fail 2  retr…' (the retries and 429 waits gone).
    tally = a_run(sent=400, skipped=10, failed=2)
    progress = progress_at(tally, taken=412, bytes_read=412_000, total_bytes=1_000_000, seconds=34)

    assert live_lines(progress, 40) == [
        "sending  412/~1,000 (41%)  12/s",
        "eta 0:00:49",
        "sent 400  unch 0  skip 10  fail 2",
        "retry 3  429 1",
    ]


class AsciiTty(Tty):
    encoding = "ascii"  # PYTHONIOENCODING=ascii, a Latin-1 locale's terminal


def test_a_terminal_that_cannot_show_the_bar_s_characters_gets_ascii_ones() -> None:
    # Each cell of the bar came out as `\u2500`, six columns: the line ran past the terminal's
    # edge, and the view, redrawn a line short, left its frames on the screen.
    tally = a_run(sent=400, skipped=10, failed=2)
    progress = progress_at(tally, taken=412, bytes_read=412_000, total_bytes=1_000_000, seconds=34)
    sink = AsciiTty()

    Console(file=sink, width=80, force_terminal=True, color_system=None).print(LiveView(progress))

    tail = " 412 of ~1,000 events (41%)  12/s  0:00:34  eta 0:00:49"
    assert sink.getvalue().splitlines()[0] == "sending " + "#" * 7 + "-" * 10 + tail


def test_one_event_short_of_a_million_is_99_percent_done_under_a_bar_not_yet_full() -> None:
    # It read "(100%)" under a full bar, and "100% of events done", while the run went on.
    tally = Tally()
    tally.by_type["identify"] = Counts({"sent": 999_998, "failed": 1})
    progress = progress_at(tally, taken=1_000_000, bytes_read=10**8, total_bytes=10**8, seconds=1)

    bar, _ = live_lines(progress, 80)
    tail = " 999,999 of 1,000,000 events (99%)  999,999/s  eta 0:00:00"
    assert bar == "sending " + "━" * 13 + "─" + tail  # of 14 cells, 13.99999 rounded down
    assert progress.line().startswith("progress: 99% of events done (999,999 of 1,000,000), ")


def test_without_a_known_size_the_live_view_has_counts_and_no_bar() -> None:
    tally = a_run(sent=20, skipped=0, failed=0)
    progress = progress_at(tally, taken=20, bytes_read=2000, total_bytes=None, seconds=2)

    assert live_lines(progress, 80) == [
        "sending 20 events  10/s  0:00:02  eta -:--:--",
        "sent 20  unchanged 0  skipped 0  failed 0  retries 3  429 waits 1",
    ]


def test_the_eta_is_events_left_at_the_pace_the_plan_allows() -> None:
    # 100 of ~1,000 events done in 1 s (a first burst), each needing 2 requests: the growth
    # plan allows 20 requests a second, so 10 events a second: 900 left take 90 s, not 9 s.
    tally = a_run(sent=100, skipped=0, failed=0, requests=200)
    progress = progress_at(tally, taken=100, bytes_read=10_000, total_bytes=100_000, seconds=1)

    at = progress.estimate()

    assert (at.total, at.exact, at.eta) == (1000, False, 90.0)
    # Slower than the plan allows (latency, retries): the pace seen counts.
    slow = progress_at(tally, taken=100, bytes_read=10_000, total_bytes=100_000, seconds=50)
    assert slow.estimate().eta == 450.0


def test_a_resumed_run_s_time_left_is_not_reckoned_at_the_pace_it_skips_what_it_did() -> None:
    # A resumed 300,000-event backfill skipped its 250,000 events already done at 10,000 a
    # second and said '0:00:25 left' (the events left at that pace), then jumped to minutes.
    tally, clock = Tally(), FakeClock(100.0)
    progress = SendProgress(
        Console(), tally, FakeReading(), mode="none", plan="growth", clock=clock
    )
    progress.total = 300_000  # its first pass counted them
    etas = []
    with progress:
        for second in range(5, 30, 5):  # skipping, an estimate (the live view's) every 5 s
            clock.now = 100.0 + second
            progress.taken = skipped = 10_000 * second
            tally.by_type["identify"] = Counts({"skipped": skipped})
            tally.skips["already done"] = skipped
            etas.append(progress.estimate().eta)
        clock.now += 2.0  # 20 sent in 2 s: 0.1 s each
        progress.taken += 20
        tally.by_type["track"] = Counts({"sent": 20})
        etas.append(progress.estimate().eta)

    # No time left until an event is sent; then the 49,980 left at the pace of those sent.
    assert etas == [None, None, None, None, None, 4998.0]


def test_the_total_is_counted_once_every_byte_is_read() -> None:
    tally = a_run(sent=10, skipped=0, failed=0)
    progress = progress_at(tally, taken=25, bytes_read=1000, total_bytes=1000, seconds=1)

    at = progress.estimate()

    assert (at.total, at.exact, at.share, at.eta) == (25, True, 0.4, 1.5)


def test_the_total_a_first_pass_counted_is_exact_from_the_start() -> None:
    """A 290,850-event backfill said '~290,850' to its end though its first pass had taken every
    item: that count is the total, no `~`. Fewer than taken (the input grew since): estimated."""
    tally = a_run(sent=3, skipped=0, failed=0)
    progress = progress_at(tally, taken=3, bytes_read=300, total_bytes=1000, seconds=3)
    progress.total = 8

    at = progress.estimate()

    assert (at.total, at.exact, at.eta) == (8, True, 5.0)
    assert progress.line().startswith("progress: 37% of events done (3 of 8), 1/s, 0:00:05 left;")
    progress.total = 2
    assert (progress.estimate().total, progress.estimate().exact) == (10, False)


def test_send_gives_the_first_pass_s_count_to_the_progress(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Filters, --limit and bad lines alike in both passes: the count is the items the run takes;
    stdin has no first pass, so no count."""
    made: list[SendProgress] = []

    class Recording(SendProgress):
        def __init__(self, *args: Any, **options: Any) -> None:
            super().__init__(*args, **options)
            made.append(self)

    monkeypatch.setattr(send_cmd, "SendProgress", Recording)
    events = [identify(f"m-{n}", f"u-{n}", name="One") for n in range(4)]
    source = write_events(tmp_path / "in.ndjson", events)
    with source.open("a") as lines:
        lines.write("not json\n")

    whole = rpd_send(sandbox, tmp_path, source, name="whole")
    limited = rpd_send(sandbox, tmp_path, source, args=("--limit", "2"), name="limited")
    piped = rpd_send(sandbox, tmp_path, "-", stdin=source.read_bytes(), name="piped")

    assert [whole.exit_code, limited.exit_code, piped.exit_code] == [1, 0, 1], whole.stderr
    assert [(progress.total, progress.taken) for progress in made] == [
        (5, 5),
        (2, 2),
        (None, 5),
    ]


def test_with_a_limit_the_total_is_the_limit_not_the_input_s() -> None:
    """`send --limit 3000` over a 300,000-event backup ended on 'sending 3,018 of ~263,748 events
    (1%)  79/s  eta 0:57:29': the total was the input's, from its bytes, where reading stops at
    the 3,000th event (bad lines on the way are taken beyond it: 18 here)."""

    def limited(sent: int, failed: int, seconds: float) -> tuple[int | None, float | None]:
        done = sent + failed  # 100 bytes each of a 30 MB input
        tally = a_run(sent=sent, skipped=0, failed=failed)
        progress = progress_at(
            tally,
            taken=done,
            bytes_read=done * 100,
            total_bytes=30_000_000,
            seconds=seconds,
            limit=3000,
            limited=sent,
        )
        at = progress.estimate()
        return at.total, at.eta

    assert limited(1000, 0, seconds=10) == (3000, 20.0)
    assert limited(3000, 18, seconds=38) == (3018, 0.0)


def test_with_a_limit_and_a_filter_the_total_counts_the_items_the_filter_skips() -> None:
    """`send --type identify --limit 100` over an input of one identify in ten: reading stops at
    the 100th identify, about 1,000 items in, where the total was capped at max(limit, taken):
    at 500 items taken (50 identifies) the progress said 500 of ~500 (100%), eta 0:00:00, as it
    did all the way to the end. The items --limit lets by (skipped by the filter, bad lines) are
    counted in the total at the pace they came so far."""
    events = [
        parse_event(identify(f"m-{n}", "u-1") if n % 10 == 0 else track(f"m-{n}", "u-1", "x"), "in")
        for n in range(2000)
    ]
    clock, reading = FakeClock(100.0), FakeReading(bytes_read=50_000, total_bytes=200_000)
    tally = a_run(sent=50, skipped=450, failed=0)
    progress = SendProgress(
        Console(), tally, reading, mode="none", plan="unlimited", limit=100, clock=clock
    )
    taken = progress.counted(intake(events, EventFilter.from_options("identify", None, None), 100))
    assert sum(1 for _ in islice(taken, 500)) == 500
    clock.now += 10

    at = progress.estimate()

    assert (at.done, at.total, at.exact, at.share, at.eta) == (500, 1000, False, 0.5, 10.0)


def test_send_gives_its_limit_to_the_progress(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits: list[int | None] = []

    class Recording(SendProgress):
        def __init__(self, *args: Any, **options: Any) -> None:
            limits.append(options.get("limit"))
            super().__init__(*args, **options)

    monkeypatch.setattr(send_cmd, "SendProgress", Recording)
    events = [identify(f"m-{n}", f"u-{n}", name="One") for n in range(2)]

    source = write_events(tmp_path / "in.ndjson", events)
    run = rpd_send(sandbox, tmp_path, source, args=("--limit", "1"))

    assert run.exit_code == 0, run.stderr
    assert limits == [1]


def one_of_about_eight(console: Console) -> None:
    """A send's progress on `console` 5 s into it: 2 events read of about 8, 1 done."""
    tally, reading, clock = Tally(), FakeReading(), FakeClock(100.0)
    with SendProgress(console, tally, reading, mode="rich", clock=clock) as progress:
        for _ in progress.counted(events_of(2)):
            pass
        tally.add_outcome("identify", Outcome(status="sent"))
        tally.rate_limited = 2
        reading.bytes_read = 250
        clock.now = 105.0
        progress.tick()  # a plain line is due
        progress.refresh()


def test_a_terminal_gets_a_live_view_that_goes_away() -> None:
    console, sink = recording_console(terminal=True)
    one_of_about_eight(console)

    output = sink.getvalue()
    # 1 of ~8 events (2 read, 250 of 1000 bytes): 7 of the bar's 60 cells, rounded down
    assert "sending " + "━" * 7 + "───" in output
    assert "sent 1  unchanged 0  skipped 0  failed 0  retries 0  429 waits 2" in output
    assert "progress:" not in output
    assert output.endswith("\x1b[2K")  # transient: the view is erased at the end


@pytest.mark.parametrize(
    "sink, environ",
    [(Tty(), {"TERM": "dumb"}), (io.StringIO(), {"TERM": "xterm", "FORCE_COLOR": "1"})],
    ids=["dumb terminal", "forced into a file"],
)
def test_a_dumb_terminal_or_a_file_rich_takes_for_one_gets_plain_lines(
    sink: io.StringIO, environ: dict[str, str]
) -> None:
    # TERM=dumb (Emacs' shell and M-x compile): rich's live view draws nothing there, and a
    # transient one nothing at the end either: a send of hours showed no progress at all.
    # FORCE_COLOR=1 (a CI job's setting) with stderr a log: the view was redrawn into it four
    # times a second, escape sequences and all, 1.2 kB a second.
    one_of_about_eight(Console(file=sink, force_terminal=True, _environ=environ))

    assert sink.getvalue() == (
        "progress: 12% of events done (1 of ~8), 0/s, 0:00:35 left; sent 1, unchanged 0, "
        "skipped 0, failed 0; retries 0, 429 waits 2\n"
    )


@pytest.mark.parametrize("way", ["index", "search"])
def test_a_terminal_is_told_what_send_does_before_its_first_event(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The first pass over the input and the identity index's listing took a minute of a
    300,000-event backfill from S3 into an account of 46,000 persons, the terminal blank as if
    rpd hung: a transient line says which is under way, then the live view comes. The index's
    only when it is listed: a run by search showed 'listing the identity index' as it chose."""
    terminal = Tty()
    err = Console(
        file=terminal, width=80, force_terminal=True, color_system=None, _environ={"TERM": "xterm"}
    )
    monkeypatch.setattr(common, "make_consoles", lambda: (Console(file=io.StringIO()), err))
    events = write_events(tmp_path / "in.ndjson", [identify("m-1", "u-1", name="One")])

    run = rpd_send(sandbox, tmp_path, events, args=("--identities", way))

    assert run.exit_code == 0
    told = terminal.getvalue()
    reading = told.index("reading the input first: its aliases and the identities to look up")
    if way == "search":
        assert "identity index" not in told
        assert reading < told.index("sending ")
        return
    # The spinner shows its words as it refreshes (4 times a second) and as it stops: those of
    # the persons' listing may be replaced before they are shown, the organizations' are not.
    listing = told.index("listing the identity index: the account's organizations")
    assert reading < listing < told.index("sending ")


LISTED = [
    "listing the identity index: the account's persons",
    "listing the identity index: the account's organizations",
]


@pytest.mark.parametrize(
    ("way", "said"), [("index", LISTED), ("search", [])], ids=["index", "search"]
)
def test_a_log_is_told_what_send_does_before_its_first_event(
    sandbox: Sandbox, tmp_path: Path, way: str, said: list[str]
) -> None:
    """On a log or a pipe, the first pass and the index's listing were minutes of silence on a
    real account: each says so on a line as it starts; the listing only when it is made."""
    events = write_events(tmp_path / "in.ndjson", [identify("m-1", "u-1", name="One")])

    run = rpd_send(sandbox, tmp_path, events, args=("--identities", way))

    assert run.exit_code == 0, run.stderr
    told = run.stderr.splitlines()
    assert told[: 1 + len(said)] == [
        "reading the input first: its aliases and the identities to look up",
        *said,
    ]
    assert [line for line in told if "identity index" in line] == said


def test_a_log_is_told_the_index_kept_is_refreshed_not_listed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A rerun whose state keeps the index lists only the persons changed since (updated_since):
    its log said 'listing the identity index (the account's persons, organizations, leads)', as
    the first run's, where it listed one page of changes, and no organization at all (the input
    names none rpd does not know)."""
    first = write_events(tmp_path / "first.ndjson", [identify("m-1", "u-1", name="One")])
    assert rpd_send(sandbox, tmp_path, first, args=("--identities", "index")).exit_code == 0
    later = write_events(tmp_path / "later.ndjson", [identify("m-2", "u-2", name="Two")])

    run = rpd_send(sandbox, tmp_path, later, args=("--identities", "index"), name="later")

    assert run.exit_code == 0, run.stderr
    assert run.report is not None and run.report["identity_index"]["refreshes"] == 1
    assert run.stderr.splitlines()[:2] == [
        "reading the input first: its aliases and the identities to look up",
        "refreshing the identity index: the persons changed since its last listing",
    ]
    assert [line for line in run.stderr.splitlines() if "identity index" in line] == [
        "refreshing the identity index: the persons changed since its last listing"
    ]


def test_quiet_send_prints_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    run = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", args=("-q",))

    assert run.exit_code == 0
    assert run.stdout == ""
    assert run.stderr == ""
    assert run.report is not None
    assert run.report["events"]["sent"] == 19
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
        "track rule: skip": 2,
        "unsupported type: page": 1,
        "unsupported type: screen": 1,
    }
    assert (
        "why events were skipped:\n"
        "  2  anonymous\n"
        "  2  track rule: skip\n"
        "  1  unsupported type: page\n"
        "  1  unsupported type: screen\n"
    ) in first.stderr
    assert again.exit_code == 0, again.stderr
    assert again.report["skipped_by_reason"] == {"already done": 15, "filtered": 10}
    assert "why events were skipped:\n  15  already done\n  10  filtered\n" in again.stderr


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


def test_the_eta_follows_the_pace_of_the_last_half_minute() -> None:
    # A backfill of 3,000 events: the first 300 each need a search (5 a second on every plan),
    # the later ones of the same users a PATCH each (20 a second on growth).
    tally, clock = Tally(), FakeClock(100.0)
    reading = FakeReading(total_bytes=3000 * 100)
    progress = SendProgress(Console(), tally, reading, mode="none", plan="growth", clock=clock)
    search, patch = "GET /api/v2/itemSearch/field", "PATCH /api/v2/persons/{id}"
    etas = []
    with progress:
        for second in range(1, 91):
            for _ in range(5 if second <= 60 else 20):
                tally.add_outcome("identify", Outcome(status="sent"))
                add_count(tally.requests, search if second <= 60 else patch)
            progress.taken = tally.read
            reading.bytes_read = tally.read * 100
            clock.now += 1
            etas.append(progress.estimate().eta)

    # At 60 s: 300 done, 2,700 left at 5 a second. At 90 s: 900 done, and the last 30 s went at
    # 20 a second: 2,100 left take 105 s (over the whole run, 10 a second, it would say 210 s).
    assert etas[59] == pytest.approx(540.0)
    assert etas[89] == pytest.approx(105.0)


def test_what_the_sandbox_holds_is_counted_in_words() -> None:
    console, sink = recording_console()
    one = {"persons": [{"id": 1}], "organizations": [], "leads": [{}], "merges": [{}]}

    print_sandbox_holdings(console, one, records=False)
    print_sandbox_holdings(console, {"persons": [{"id": 1}, {"id": 2}]}, records=False)

    assert sink.getvalue() == (
        "1 person, 0 organizations, 1 lead, 1 merge\n"
        "2 persons, 0 organizations, 0 leads, 0 merges\n"
    )
