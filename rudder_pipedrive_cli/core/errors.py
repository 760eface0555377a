"""Errors the core and its drivers share. Each carries a message and, where useful, a hint."""

from __future__ import annotations

import signal


class RpdError(Exception):
    """Base of rpd's own errors: a one-line message and an optional hint on what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RpdError):
    """Bad command-line usage, input or config: exit 2."""


class ConfigError(UsageError):
    """The config is invalid: exit 2."""


class AuthRefused(RpdError):
    """Pipedrive refused the token (401, or a JSON 403): exit 3."""


class StoppedEarly(RpdError):
    """The run cannot go on now but a rerun can: stop taking events, keep state, exit 4."""


class RateLimitStop(StoppedEarly):
    """The daily budget is spent, or the edge blocked us: stop, keep state, exit 4."""


class ReadingRefused(StoppedEarly):
    """The object store refused the credentials, or could not be reached for an object's every
    try: no later object can be read, exit 4. Its hint says what to mend and to rerun; what
    that rerun does is the command's to add."""


class Unreachable(StoppedEarly):
    """Pipedrive has not answered for a run of connection failures: stop, keep state, exit 4."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (where Ctrl-C raises KeyboardInterrupt, this): exit 143."""


class HungUp(KeyboardInterrupt):
    """SIGHUP (its terminal or ssh session closed), handled as Ctrl-C is: exit 129."""


# What each stop signal raises where Python's code runs (Ctrl-C's is Python's own).
RAISED_BY: dict[signal.Signals, type[KeyboardInterrupt]] = {
    signal.SIGINT: KeyboardInterrupt,
    signal.SIGTERM: Terminated,
    signal.SIGHUP: HungUp,
}


def signal_of(stop: BaseException) -> signal.Signals:
    """The signal a stop came from (`RAISED_BY`): Ctrl-C's SIGINT for a plain KeyboardInterrupt."""
    return next(
        (signum for signum, raised in RAISED_BY.items() if type(stop) is raised), signal.SIGINT
    )


def stop_in(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM `error` is, or holds: anyio's task groups (httpx connects through
    one) wrap what is raised in their body in a BaseExceptionGroup, which no `except
    KeyboardInterrupt` catches (a SIGTERM there ended a send in a traceback, exit 1, no report).
    None when it is neither."""
    while isinstance(error, BaseExceptionGroup):
        stops = error.split(KeyboardInterrupt)[0]
        if stops is None:
            return None
        error = stops.exceptions[0]
    return error if isinstance(error, KeyboardInterrupt) else None


def after_attempts(tries: int) -> str:
    """How a request or a write given up says how often it was tried: `after 1 attempt` (as
    under --max-retries 0), `after 7 attempts`."""
    return f"after {tries} attempt" + ("" if tries == 1 else "s")


class PlanFailure(Exception):
    """Raised inside a plan (or by a transport) to fail the current event, not the run.

    `redacted` is the reason in words holding no event data, for a reason that quotes some (a
    trait's value, a userId, Pipedrive's words about the record): send's summary and the replay
    state show it, the dead letter the full reason (SPEC 8). None: the reason holds none.
    """

    def __init__(
        self,
        reason: str,
        *,
        stage: str = "",
        status: int | None = None,
        retryable: bool = False,
        redacted: str | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage
        self.status = status
        self.retryable = retryable
        self.redacted = redacted
        self.hint = hint  # what to do, when one outside any event stops a command


class NeverConnected(PlanFailure):
    """A request no attempt of which made a connection (refused, no route, a name that does not
    resolve, timed out connecting): it never reached Pipedrive, where a reset or an answer lost
    after connecting may have. Raised by the client (http/client.py `UNCONNECTED`); a send stops
    on one before its first event (Pipedrive unreachable), all else takes it as a PlanFailure."""


class Warned(str):
    """A warning: its text, which may quote event data (dry-run shows it), and `redacted`, the same
    in words holding none: what send's summary counts (SPEC 8). A plain `str` warning counts as
    `UNSHOWN`, so a warning that was never given redacted words cannot leak event data."""

    redacted: str

    def __new__(cls, text: str, redacted: str | None = None) -> Warned:
        made = super().__new__(cls, text)
        made.redacted = text if redacted is None else redacted
        return made


UNSHOWN = "a warning that quotes event data (`rpd dry-run` on the same input shows it)"


def redacted_warning(text: str) -> str:
    return text.redacted if isinstance(text, Warned) else UNSHOWN
