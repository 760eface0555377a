"""When to try a request again, and how long to wait first (SPEC 5), as tenacity policies.

The client raises `Retry` from an attempt that should be repeated; everything else (a response,
`AuthRefused`, `RateLimitStop`) ends the loop. Two kinds of waits:
- failures (network errors, 5xx): exponential backoff with jitter, at most `max_retries` of them;
- rate limits (429, the edge's HTML 403): wait as long as the server says (`Retry-After`,
  `x-ratelimit-reset`), plus a little jitter. They do not spend `max_retries`; instead, being
  refused again right after waiting a whole window (`RATE_LIMIT_STRIKES` times), or being asked
  to wait longer than `rate_wait_cap`, means the budget is spent, and the run stops.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from rudder_pipedrive_cli.core.costs import WINDOW_S
from rudder_pipedrive_cli.core.errors import RateLimitStop
from rudder_pipedrive_cli.http.pacing import Sleep, backed_off, stopped

DEFAULT_MAX_RETRIES = 6
RATE_LIMIT_STRIKES = 3
RESUME_HINT = "rerun the same command later to resume"


class Retry(Exception):
    """This attempt did not get a usable answer; try again after a wait."""

    def __init__(
        self, reason: str, *, status: int | None = None, rate_wait: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.rate_wait = rate_wait  # set for rate limits: the wait before jitter


@dataclass(slots=True)
class Attempts:
    """What happened so far to one logical request."""

    sent: int = 0
    unconnected: int = 0  # attempts that made no connection (http/client.py `UNCONNECTED`)
    unanswered: int = 0  # attempts that got no answer at all (those, timeouts, resets)
    failures: int = 0
    limited: int = 0
    strikes: int = 0
    last_wait: float = 0.0
    last: Retry | None = None

    def failed(self, reason: str, status: int | None = None) -> Retry:
        self.failures += 1
        self.limited = self.strikes = 0
        self.last = Retry(reason, status=status)
        return self.last

    def refused(self, reason: str, status: int, hint: float | None, *, cap: float) -> Retry:
        """A rate-limit answer: the `Retry` to raise, or `RateLimitStop` when it keeps coming."""
        if self.limited and self.last_wait >= WINDOW_S:
            self.strikes += 1
        if self.strikes >= RATE_LIMIT_STRIKES:
            # A 429 that outlasts every burst window is most likely the daily budget, though
            # another client sharing the token's limit looks the same (a budget 429 that says so,
            # with requests left in the window, stops at once: client.py); a 403 from the edge
            # (HTML, no rate headers) proves less: the edge may block for other reasons.
            what = (
                "Pipedrive keeps refusing requests for the rate limit (the daily budget is "
                "likely spent, or another client shares this token's limit)"
                if status == 429
                else "Pipedrive's edge keeps refusing requests (the daily budget may be spent)"
            )
            raise RateLimitStop(
                f"{what} (HTTP {status} again after waiting {self.last_wait:g}s)",
                hint=RESUME_HINT,
            )
        if hint is not None and hint > cap:
            # No burst window lasts that long: the server says come back much later.
            raise RateLimitStop(
                f"API rate limit reached (HTTP {status}): Pipedrive asks to wait {hint:g}s",
                hint=RESUME_HINT,
            )
        wait = hint if hint is not None else WINDOW_S
        if self.limited:
            wait = max(wait, WINDOW_S)
        self.limited += 1
        self.last = Retry(reason, status=status, rate_wait=wait)
        return self.last


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many failures to retry and how long to wait: sleep and randomness injectable."""

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    rate_wait_cap: float = 60.0
    rate_jitter: float = 0.25
    sleep: Sleep = field(default=asyncio.sleep)
    random: Callable[[], float] = field(default=random.random)

    def retrying(
        self,
        attempts: Attempts,
        on_retry: Callable[[Retry, float], None],
        stopping: asyncio.Event | None = None,
    ) -> AsyncRetrying:
        """A tenacity loop for one logical request whose progress is kept in `attempts`. Once
        `stopping` is set (the run's stop: Ctrl-C, SIGTERM), a failed attempt is the last: no
        back-off, no attempt more (each up to the answer deadline), the request fails with it;
        a back-off under way when it is set ends then (`backed_off`), not when it would."""

        def stop(state: RetryCallState) -> bool:
            return attempts.failures > self.max_retries or stopped(stopping)

        def wait(state: RetryCallState) -> float:
            rate_wait = _retry_of(state).rate_wait
            if rate_wait is not None:  # as long as the server says, plus a little jitter
                attempts.last_wait = rate_wait
                return rate_wait + self.random() * self.rate_jitter
            # Exponential backoff with 'equal jitter': half fixed, half random.
            ceiling = min(
                self.backoff_cap, self.backoff_base * 2.0 ** max(attempts.failures - 1, 0)
            )
            attempts.last_wait = ceiling / 2 + self.random() * ceiling / 2
            return attempts.last_wait

        def before_sleep(state: RetryCallState) -> None:
            on_retry(_retry_of(state), state.upcoming_sleep)

        async def sleep(seconds: float) -> None:
            await backed_off(self.sleep(seconds), stopping)

        return AsyncRetrying(
            sleep=sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type(Retry),
            before_sleep=before_sleep,
        )


def _retry_of(state: RetryCallState) -> Retry:
    error = state.outcome.exception() if state.outcome is not None else None
    if not isinstance(error, Retry):  # the loop retries nothing else
        raise TypeError(f"unexpected retry outcome: {error!r}")
    return error
