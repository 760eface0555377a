"""The one place that maps outcomes and errors to exit codes and renders errors (SPEC 6)."""

from __future__ import annotations

import enum
import sys
from typing import TextIO

from rudder_pipedrive_cli.cli.screen import columns, printable, wrap
from rudder_pipedrive_cli.core.errors import (
    AuthRefused,
    RpdError,
    StoppedEarly,
    Terminated,
)


class ExitStatus(enum.IntEnum):
    OK = 0
    EVENTS_FAILED = 1
    USAGE = 2
    AUTH_REFUSED = 3
    STOPPED_EARLY = 4  # state saved, rerun to resume: daily budget, rate limit, unreachable
    INTERNAL = 70  # a bug in rpd (EX_SOFTWARE): not one of SPEC 6's codes, so never mistaken
    INTERRUPTED = 130
    TERMINATED = 143  # 128 + SIGTERM, after the report (SPEC 6)
    PIPE_CLOSED = 141  # 128 + SIGPIPE: the reader of stdout went away (`rpd dry-run ... | head`)


def exit_status_for(error: BaseException) -> ExitStatus:
    if isinstance(error, Terminated):
        return ExitStatus.TERMINATED
    if isinstance(error, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if isinstance(error, AuthRefused):
        return ExitStatus.AUTH_REFUSED
    if isinstance(error, StoppedEarly):
        return ExitStatus.STOPPED_EARLY
    # Any other of rpd's errors (UsageError, ConfigError) is a usage error; a PlanFailure outside
    # any event fails as events do.
    return ExitStatus.USAGE if isinstance(error, RpdError) else ExitStatus.EVENTS_FAILED


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
