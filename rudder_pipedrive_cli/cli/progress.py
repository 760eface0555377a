"""Progress while sending: a live view on a terminal, plain periodic lines otherwise, or nothing.

The live view is two lines laid out for the console's width (80 columns and up): the bar with the
events done of the total, the share, the rate, the time taken and the time left; then the counts.
Nothing is cut: the bar takes the room the rest leaves, and the counts take short labels when the
long ones do not fit; narrower still (a 40-column pane), each goes on more lines. What the numbers
mean is core/eta.py's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Protocol, TypeVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.status import Status
from rich.text import Text

from rudder_pipedrive_cli.cli.screen import clock_text, plural
from rudder_pipedrive_cli.core.eta import Estimate, Mark, estimate, mark
from rudder_pipedrive_cli.core.tally import OUTCOMES, Tally


class Taken(Protocol):
    """An item taken from the reader: `decided` already (a filter skipped it, not an event) is
    one --limit does not count."""

    @property
    def decided(self) -> object: ...


E = TypeVar("E", bound=Taken)

BAR, BACK = "━", "─"  # done, to do: told apart without colour too (NO_COLOR, a capture)
# For a terminal that cannot show those (PYTHONIOENCODING=ascii, a Latin-1 locale): written as
# `\u2500`, each cell of the bar took six columns, past the terminal's edge.
ASCII_BAR, ASCII_BACK = "#", "-"
MIN_BAR = 10  # narrower than this, a bar says nothing: the line goes without it
MAX_BAR = 60  # wider, it only pushes the numbers away from the eye
PACE_WINDOW = 30.0  # seconds: the ETA follows the pace of about the last half minute
MARK_EVERY = 5.0
LONG_LABELS = (*OUTCOMES, "retries", "429 waits")
SHORT_LABELS = ("sent", "unch", "skip", "fail", "retry", "429")


class Reading(Protocol):
    @property
    def bytes_read(self) -> int: ...

    total_bytes: int | None


def part_done(done: int, total: int, whole: int = 100) -> int:
    """`done` of `total` events as a part of `whole` (a percent, the bar's cells), rounded down:
    all of it only once every event is done (999,999 of 1,000,000 read `(100%)` under a full
    bar while the run went on)."""
    return min(whole * done // total, whole) if total else whole


def done_text(at: Estimate, *, short: bool = False) -> str:
    """`412 of ~1,000 events (41%)` (`412/~1,000 (41%)` when `short`): `~` while the total is
    estimated from the bytes read."""
    if at.total is None or at.share is None:
        return f"{at.done:,}" if short else plural(at.done, "event")
    about, share = "" if at.exact else "~", part_done(at.done, at.total)
    if short:
        return f"{at.done:,}/{about}{at.total:,} ({share}%)"
    return f"{at.done:,} of {about}{at.total:,} events ({share}%)"


def counts(tally: Tally, *, short: bool = False) -> list[str]:
    """`sent 12`, `unchanged 3`, ... (`LONG_LABELS`'s order): the outcomes, then the waits."""
    labels = SHORT_LABELS if short else LONG_LABELS
    values = (*(tally.outcomes[name] for name in OUTCOMES), tally.retries, tally.rate_limited)
    return [f"{label} {value:,}" for label, value in zip(labels, values, strict=True)]


class LiveView:
    """The two lines of the live view, laid out anew for the width at each refresh."""

    def __init__(self, progress: SendProgress) -> None:
        self.progress = progress

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        at = self.progress.estimate()
        yield self.bar_line(at, width, ascii_only=options.ascii_only)
        told = "  ".join(counts(self.progress.tally)) + objects_text(self.progress.reading)
        if len(told) > width:  # `obj`: a backfill's six-digit counts and objects on one line
            objects = objects_done(self.progress.reading)
            short = counts(self.progress.tally, short=True) + (
                [f"obj {objects}"] if objects else []
            )
            told = rows(short, width)
        yield Text(told, no_wrap=True, overflow="ellipsis")

    def bar_line(self, at: Estimate, width: int, *, ascii_only: bool = False) -> Text:
        """The bar, then the rest in the first of its forms (fullest first) that leaves the bar
        room enough; the time taken goes first, then words, never the ETA."""
        rate, eta = f"{at.rate:,.0f}/s", f"eta {clock_text(at.eta)}"
        done = done_text(at)
        tails = (
            f" {done}  {rate}  {clock_text(self.progress.elapsed())}  {eta}",
            f" {done}  {rate}  {eta}",
            f" {done_text(at, short=True)}  {rate}  {eta}",
        )
        line = Text("sending", style="bold", no_wrap=True, overflow="ellipsis")
        for tail in tails:  # the last one if none leaves room enough
            room = min(width - len(line) - 1 - len(tail), MAX_BAR)
            if room >= MIN_BAR:
                break
        if len(line) + len(tail) > width:  # a narrow pane (40 columns): on lines, not cut
            lines = Text(rows([line.plain, *tail.strip().split("  ")], width), no_wrap=True)
            lines.stylize("bold", 0, len(line))
            return lines
        if at.total is not None and room >= MIN_BAR:
            filled = part_done(at.done, at.total, room)
            bar, back = (ASCII_BAR, ASCII_BACK) if ascii_only else (BAR, BACK)
            line.append(" " + bar * filled, style="bar.complete")
            line.append(back * (room - filled), style="bar.back")
        line.append(tail)
        return line


def rows(items: list[str], width: int) -> str:
    """`items` two spaces apart, on as few lines of `width` as they fit on: on a narrow pane
    the live view goes on a line rather than cut its ETA or counts (`eta 0:0…`)."""
    lines = [items[0]]
    for item in items[1:]:
        if len(lines[-1]) + 2 + len(item) > width:
            lines.append(item)
        else:
            lines[-1] += f"  {item}"
    return "\n".join(lines)


def is_a_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def objects_done(reading: Reading) -> str:
    """Objects done of a bucket or backup folder (their events all ended, not only read), `4/6`,
    when the input has any (SPEC 2); else empty."""
    total = getattr(reading, "objects_total", 0)
    return f"{getattr(reading, 'objects_done', 0)}/{total}" if total else ""


def objects_text(reading: Reading) -> str:
    """`; objects 4/6`, the end of a progress line, when the input has objects."""
    objects = objects_done(reading)
    return f"; objects {objects}" if objects else ""


class SendProgress:
    """Call `tick()` after each event; the view decides how often to show anything.

    `counted` wraps the events taken from the reader, so the total can be estimated from the
    bytes per event; `plan` is the rate limit the time left is reckoned at.
    """

    def __init__(
        self,
        console: Console,
        tally: Tally,
        reading: Reading,
        *,
        mode: str,  # "rich" | "plain" | "none"
        plan: str = "unlimited",
        limit: int | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.tally = tally
        self.reading = reading
        # A dumb terminal (TERM=dumb: Emacs' shell, M-x compile) moves no cursor: rich's live
        # view draws nothing there, a transient one not even at the end. A file rich takes for
        # a terminal (FORCE_COLOR, TTY_COMPATIBLE: a CI log) would get it redrawn four times a
        # second. Both get plain lines.
        live = not console.is_dumb_terminal and is_a_tty(console.file)
        self.mode = "plain" if mode == "rich" and not live else mode
        self.plan = plan
        self.limit = limit
        self.interval = interval
        self.clock = clock
        self.taken = 0
        self.total: int | None = None  # the items a first pass over the same input took
        # Of them, the events --limit counts: not those filters skip, not bad lines.
        self.limited = 0
        self.started = clock()
        self._last_line = self.started
        self._live: Live | None = None
        self._marks: deque[Mark] = deque([Mark()])

    def counted(self, items: Iterable[E]) -> Iterator[E]:
        for item in items:
            self.taken += 1
            if item.decided is None:  # one --limit counts (core/intake.py), as far as it knows
                self.limited += 1
            yield item

    def elapsed(self) -> float:
        return self.clock() - self.started

    def estimate(self) -> Estimate:
        elapsed = self.elapsed()
        marks = self._marks
        if elapsed - marks[-1].elapsed >= MARK_EVERY:
            now = mark(self.tally, elapsed=elapsed, plan=self.plan)
            if not now.done:  # none sent yet (a resumed run skipping): its pace starts later
                marks.clear()
            marks.append(now)
        while len(marks) > 1 and elapsed - marks[1].elapsed >= PACE_WINDOW:
            marks.popleft()  # the oldest mark still at least a window back is the base
        return estimate(
            self.tally,
            taken=self.taken,
            bytes_read=self.reading.bytes_read,
            total_bytes=self.reading.total_bytes,
            elapsed=elapsed,
            plan=self.plan,
            since=marks[0],
            limit=self.items_to_limit(),
            counted=self.total,
        )

    def items_to_limit(self) -> int | None:
        """The items reading takes before --limit's Nth event, at the pace they came so far:
        those the filters skip and bad lines come between the events it counts (the total was
        capped at N, so `--type identify --limit 100` over one identify in ten said 500 of ~500
        (100%) 500 items in, to its end); None before its first event (nothing to go by)."""
        if self.limit is None or not self.limited:
            return None
        return round(self.limit * self.taken / self.limited)

    def __enter__(self) -> SendProgress:
        self.started = self._last_line = self.clock()  # the run starts now, not at set-up
        if self.mode == "rich":
            self._live = Live(
                LiveView(self), console=self.console, transient=True, refresh_per_second=4
            )
            self._live.start()
        return self

    def preparing(self, what: str) -> AbstractContextManager[object]:
        """On a terminal, a transient spinner saying `what` send does before its first event (the
        first pass over the input: a minute and more over a large bucket, where the screen
        stayed blank as if rpd hung); in a log or a pipe, `what` on a line as it starts; with -q
        nothing."""
        if self.mode == "rich":
            return self.console.status(what)
        if self.mode == "plain":
            self.say(what)
        return nullcontext()

    @contextmanager
    def steps(self) -> Iterator[Callable[[str], None]]:
        """`doing(what)`, called as each step starts, says it as `preparing` does (a terminal's
        spinner then takes the new words): called only for a step that is made, so nothing is
        said of one that is not (the identity index is listed only when chosen, refreshed
        when kept: a terminal's spinner said it was listed while a search run chose, a log that
        it was listed when it was refreshed)."""
        status: Status | None = None

        def doing(what: str) -> None:
            nonlocal status
            if self.mode == "plain":
                self.say(what)
            elif self.mode == "rich" and status is None:
                status = self.console.status(what)
                status.start()
            elif status is not None:
                status.update(what)

        try:
            yield doing
        finally:
            if status is not None:
                status.stop()

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def tick(self) -> None:
        if self.mode != "plain":
            return  # the live view refreshes itself; nothing to do per event
        now = self.clock()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self.say(self.line())

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def line(self) -> str:
        """A plain progress line: the share of the events done (of how many: `~` while the total
        is estimated), the rate, the time left, then the counts."""
        at = self.estimate()
        if at.total is None or at.share is None:
            done = f"{plural(at.done, 'event')} done"
        else:
            about = "" if at.exact else "~"
            share = part_done(at.done, at.total)
            done = f"{share}% of events done ({at.done:,} of {about}{at.total:,})"
        left = f", {clock_text(at.eta)} left" if at.eta is not None else ""
        told = counts(self.tally)
        outcomes, waits = ", ".join(told[:4]), ", ".join(told[4:])
        objects = objects_text(self.reading)
        return f"progress: {done}, {at.rate:,.0f}/s{left}; {outcomes}; {waits}{objects}"

    def __exit__(self, *_: object) -> None:
        if self._live is not None:
            self._live.stop()
