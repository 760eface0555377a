"""Progress while sending: a rich bar on a terminal, plain periodic lines otherwise, or nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rudder_pipedrive_cli.core.tally import Tally


class Reading(Protocol):
    @property
    def bytes_read(self) -> int: ...

    total_bytes: int | None


def counts_text(tally: Tally, elapsed: float) -> str:
    rate = tally.read / elapsed if elapsed > 0 else 0.0
    o = tally.outcomes
    return (
        f"{tally.read} events ({rate:.0f}/s): sent {o['sent']}, unchanged {o['unchanged']}, "
        f"skipped {o['skipped']}, failed {o['failed']}; retries {tally.retries}, "
        f"429 waits {tally.rate_limited}"
    )


def objects_text(reading: Reading) -> str:
    """Objects read of a bucket or backup folder, when the input has any (SPEC 2)."""
    total = getattr(reading, "objects_total", 0)
    return f"; objects {getattr(reading, 'objects_read', 0)}/{total}" if total else ""


class SendProgress:
    """Call `tick()` after each event; the view decides how often to show anything."""

    def __init__(
        self,
        console: Console,
        tally: Tally,
        reading: Reading,
        *,
        mode: str,  # "rich" | "plain" | "none"
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.tally = tally
        self.reading = reading
        self.mode = mode
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last_line = self.started
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> SendProgress:
        if self.mode == "rich":
            self._bar = Progress(
                TextColumn("[bold]sending"),
                BarColumn(),
                DownloadColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[counts]}"),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("send", total=self.reading.total_bytes, counts="")
        return self

    def tick(self) -> None:
        now = self.clock()
        if self._bar is not None and self._task is not None:
            self._bar.update(
                self._task,
                completed=self.reading.bytes_read,
                counts=counts_text(self.tally, now - self.started) + objects_text(self.reading),
            )
        elif self.mode == "plain" and now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(self.line(now), markup=False, highlight=False)

    def line(self, now: float) -> str:
        total = self.reading.total_bytes
        share = f", {100 * self.reading.bytes_read / total:.0f}% read" if total else ""
        objects = objects_text(self.reading)
        return f"progress: {counts_text(self.tally, now - self.started)}{share}{objects}"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
