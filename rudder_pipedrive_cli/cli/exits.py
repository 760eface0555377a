"""The one place that maps outcomes and errors to exit codes and renders errors (SPEC 6)."""

from __future__ import annotations

import enum
import errno
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TextIO

from rudder_pipedrive_cli.cli.screen import columns, printable, wrap
from rudder_pipedrive_cli.core.errors import (
    RAISED_BY,
    AuthRefused,
    PlanFailure,
    RpdError,
    StoppedEarly,
    signal_of,
)
from rudder_pipedrive_cli.io.paths import NO_SPACE as NO_SPACE  # where io meets it too


class ExitStatus(enum.IntEnum):
    OK = 0
    EVENTS_FAILED = 1
    USAGE = 2
    AUTH_REFUSED = 3
    STOPPED_EARLY = 4  # state saved, rerun to resume: daily budget, rate limit, unreachable
    INTERNAL = 70  # a bug in rpd (EX_SOFTWARE): not one of SPEC 6's codes, so never mistaken
    INTERRUPTED = 130
    TERMINATED = 143  # 128 + SIGTERM, after the report (SPEC 6)
    HUNG_UP = 129  # 128 + SIGHUP (the terminal or ssh session closed), after the report
    PIPE_CLOSED = 141  # 128 + SIGPIPE: the reader of stdout went away (`rpd dry-run ... | head`)


# The word for a command each stop signal stopped (handle_errors'; send's STOPPED_BY names the
# signal beside it).
STOP_WORD = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


@contextmanager
def handled(signums: Iterable[int], handler: Callable[[int, Any], None]) -> Iterator[None]:
    """`handler` for `signums` while in it, the handlers before it again after; on a thread
    other than the main one (where Python takes no handler), nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def raise_stop(signum: int, _frame: object) -> None:
    """A stop signal's handler: its exception (RAISED_BY) raised where Python's code runs, as
    Ctrl-C raises KeyboardInterrupt."""
    raise RAISED_BY[signal.Signals(signum)]


def stops_raised() -> AbstractContextManager[None]:
    """SIGTERM and SIGHUP end every command as Ctrl-C does (handle_errors: their word, then 143
    or 129, SPEC 6): by default they killed dry-run, check or map-fields where it was, without
    a word, the process dead of the signal. Ctrl-C keeps Python's own handler (asyncio's
    Runner takes it over while it runs); send and the sandbox set their own inside."""
    return handled((signum for signum in RAISED_BY if signum is not signal.SIGINT), raise_stop)


def exit_status_for(error: BaseException) -> ExitStatus:
    """The exit status of a command `error` stopped."""
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, SIGTERM, SIGHUP: 128 + the signal
        return ExitStatus(128 + signal_of(error))
    if isinstance(error, AuthRefused):
        return ExitStatus.AUTH_REFUSED
    if isinstance(error, StoppedEarly):
        return ExitStatus.STOPPED_EARLY
    if isinstance(error, PlanFailure):  # a request outside any event: no event failed
        return request_failed(error)
    # Any other of rpd's errors (UsageError, ConfigError) is a usage error.
    return ExitStatus.USAGE if isinstance(error, RpdError) else ExitStatus.EVENTS_FAILED


def request_failed(failure: PlanFailure) -> ExitStatus:
    """A request that failed outside any event, stopping the command before it had an event to
    fail (not 1): in check, map-fields, init and dry-run --lookups, and a send's listing it
    cannot start without (a field mapped by its name). One a rerun later may get through (no
    answer at all, a 5xx, 408 or 429 with its retries spent, a 2xx answer that is not
    Pipedrive's envelope: `retryable`) stopped it early, as Pipedrive unreachable does (4); one
    Pipedrive refused for good (a 4xx: a listing the server at base_url does not have) is the
    config's or the account's to change (2), as a check that fails on what Pipedrive answered
    is."""
    return ExitStatus.STOPPED_EARLY if failure.retryable else ExitStatus.USAGE


def exit_status_for_run(failed: int) -> ExitStatus:
    return ExitStatus.EVENTS_FAILED if failed else ExitStatus.OK


def internal_error(error: BaseException) -> RpdError:
    """A bug, described without its arguments' values (they may hold event data)."""
    return RpdError(
        f"internal error: {type(error).__name__} (a bug in rpd)",
        hint="rerun with -v for the traceback, and please report it",
    )


def print_error(error: RpdError, stream: TextIO | None = None) -> None:
    """One or two lines on stderr (or `stream`): 'error: MESSAGE' and, when there is one, 'hint:
    WHAT TO DO'; a file name or a value the message quotes shows no control character
    (screen.py). On a terminal, wrapped between words to its width (screen.columns: $COLUMNS,
    else that terminal's); in a file or a pipe, one line each, for grep."""
    stream = stream or sys.stderr
    text = f"error: {printable(error.message)}"
    if error.hint:
        text += f"\nhint: {printable(error.hint)}"
    if width := columns(stream):
        text = wrap(text, width, indent="  ")
    print(text, file=stream)


class Stderr(io.TextIOWrapper):
    """Standard error as `rpd` (__main__.py) writes it. A write refused for want of space (a log
    on a full disk, the size limit) does not stop the command where it happened (a send's
    progress line stopped the send mid-run, and its report file was never written): the first
    such refusal is kept in `unsaid`, stderr is /dev/null from then on, and the exit says it
    (`exit_status_said`). A write to a terminal gone (EIO, after a hang-up) is /dev/null's too,
    unsaid: the hang-up's own exit (129) says the run stopped (it was 120)."""

    unsaid: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except OSError as error:
            self._refused(error)
            return len(text)

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as error:
            self._refused(error)

    def _refused(self, error: OSError) -> None:
        if error.errno not in NO_SPACE and error.errno not in (errno.EPIPE, errno.EIO):
            raise error
        # What is still buffered, and all that follows, goes where it cannot fail again (the
        # last flush, as the interpreter exits, would: exit 120).
        os.dup2(os.open(os.devnull, os.O_WRONLY), self.fileno())
        if error.errno == errno.EPIPE:  # its reader is gone: rpd stops, exit 141 (handle_errors)
            raise error
        if error.errno == errno.EIO:  # its terminal is gone (SIGHUP): no one is left to tell
            return
        self.unsaid = self.unsaid or error


def exit_status_said(status: int) -> int:
    """`status`, or USAGE (an environment error, SPEC 6) for a command that ended as it would
    (0 or 1) while what it had to say on stderr was refused for want of space: the one way
    left to tell that its report and errors were never seen."""
    unsaid = getattr(sys.stderr, "unsaid", None)
    return ExitStatus.USAGE if unsaid is not None and status in (0, 1) else status
