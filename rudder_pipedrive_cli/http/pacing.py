"""Pacing requests under Pipedrive's burst limits (SPEC 1, 5), corrected by the server's headers.

Pipedrive counts requests per token in a rolling 2-second window (the plan sets its size) and
search requests in a separate one of 10. A token bucket that refills continuously would overrun a
rolling window (a full burst, then the refill, lands in the same 2 seconds), so each window here
is a sliding log of send times: a request may go when fewer than `limit` were sent in the last
`window` seconds. The `x-ratelimit-*` headers of every response correct the local view: another
client spending the same token, or a plan smaller than configured, shows up there first.

`RollingWindow` is pure (times are passed in); `Pacer` adds the injectable clock and sleep.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.protocol import ApiRequest

WINDOW_S = 2.0
BURST_LIMITS: Mapping[str, int | None] = {
    "lite": 20,
    "growth": 40,
    "premium": 100,
    "ultimate": 120,
    "unlimited": None,
}
SEARCH_LIMIT = 10
# Requests reach the server a little after we send them, and not all equally late: counting each
# send as occupying its slot this much longer than the window keeps jitter from causing 429s.
SLACK_S = 0.05


def burst_limit(plan: str) -> int | None:
    """Requests per burst window for a plan name, None for no limit."""
    try:
        return BURST_LIMITS[plan.strip().lower()]
    except KeyError:
        names = ", ".join(BURST_LIMITS)
        raise UsageError(f"unknown plan {plan!r}", hint=f"use one of: {names}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateHeaders:
    """The `x-ratelimit-*` headers of one response; None where absent or unreadable."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    retry_after: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> RateHeaders:
        return cls(
            limit=_int(headers.get("x-ratelimit-limit")),
            remaining=_int(headers.get("x-ratelimit-remaining")),
            reset=_seconds(headers.get("x-ratelimit-reset")),
            retry_after=_seconds(headers.get("retry-after")),
        )

    @property
    def wait_hint(self) -> float | None:
        """How long the server asks us to wait: the larger of Retry-After and the window reset."""
        hints = [h for h in (self.retry_after, self.reset) if h is not None]
        return max(hints) if hints else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _seconds(value: str | None) -> float | None:
    # Retry-After may also be an HTTP date; Pipedrive sends seconds, and a date is ignored here.
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


class RollingWindow:
    """At most `limit` sends in any `window` seconds, plus holds imposed by the server."""

    def __init__(self, limit: int, window: float = WINDOW_S, slack: float = SLACK_S) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.span = window + slack
        self.sent: deque[float] = deque()
        self.hold_until = 0.0

    def _expire(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - self.span:
            self.sent.popleft()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next send may go (0 when it may go now)."""
        self._expire(now)
        wait = self.hold_until - now
        if len(self.sent) >= self.limit:
            wait = max(wait, self.sent[len(self.sent) - self.limit] + self.span - now)
        return max(wait, 0.0)

    def record(self, now: float) -> None:
        self.sent.append(now)

    def hold(self, now: float, seconds: float) -> None:
        """Send nothing for `seconds` (after a 429 or the edge's 403)."""
        self.hold_until = max(self.hold_until, now + seconds)

    def observe(self, headers: RateHeaders, now: float) -> None:
        """Correct the local view from a response's headers.

        The server has seen at most what we sent, so it normally reports more room than we count.
        When it reports less, someone else spends this token (or our sends reached it late): its
        extra requests are counted as if sent by us, expiring when the server says its window
        frees up (`x-ratelimit-reset`, which Pipedrive rounds up to whole seconds).
        """
        if headers.limit is not None and headers.limit > 0:
            self.limit = headers.limit
        if headers.remaining is None:
            return
        self._expire(now)
        missing = self.limit - len(self.sent) - max(headers.remaining, 0)
        if missing <= 0:
            return
        frees_at = now + (headers.reset if headers.reset is not None else self.span)
        for _ in range(missing):
            bisect.insort(self.sent, min(frees_at - self.span, now))


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """Waits before each request until every window it counts in has room.

    All requests count in the plan's burst window; search requests also in the search window.
    """

    def __init__(
        self,
        plan: str = "growth",
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        limit = burst_limit(plan)
        self.burst = RollingWindow(limit) if limit is not None else None
        self.search = RollingWindow(SEARCH_LIMIT) if limit is not None else None
        self.clock = clock
        self.sleep = sleep
        self.waited = 0.0

    def _windows(self, request: ApiRequest) -> list[RollingWindow]:
        windows = [self.burst] if self.burst is not None else []
        if request.is_search and self.search is not None:
            windows.append(self.search)
        return windows

    async def acquire(self, request: ApiRequest) -> None:
        """Return when `request` may be sent, and count it as sent."""
        windows = self._windows(request)
        while True:
            now = self.clock()
            wait = max((w.delay(now) for w in windows), default=0.0)
            if wait <= 0:
                for window in windows:
                    window.record(now)
                return
            self.waited += wait
            await self.sleep(wait)

    def observe(self, request: ApiRequest, headers: RateHeaders) -> None:
        """Apply a response's rate-limit headers to the window that limited that request."""
        windows = self._windows(request)
        if windows:
            windows[-1].observe(headers, self.clock())

    def hold(self, request: ApiRequest, seconds: float) -> None:
        """Hold back every request that counts where `request` was refused."""
        now = self.clock()
        for window in self._windows(request):
            window.hold(now, seconds)
