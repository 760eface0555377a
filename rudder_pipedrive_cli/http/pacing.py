"""Pacing requests under Pipedrive's burst limits (SPEC 1, 5), corrected by the server's headers.

Pipedrive counts requests per token in a rolling 2-second window (the plan sets its size) and
search requests in a separate one of 10. A token bucket that refills continuously would overrun a
rolling window (a full burst, then the refill, lands in the same 2 seconds), so each window here
is a sliding log of send times: a request may go when fewer than `limit` were sent in the last
`window` seconds (plus a small margin). A send is logged when it is cleared to go and moved to
when it actually left the socket, since a busy client may write it a while later. The
`x-ratelimit-*` headers of every response correct the local view: another client spending the
same token, or a plan smaller than configured, shows up there first.

`RollingWindow` is pure (times are passed in); `Pacer` adds the injectable clock and sleep.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from rudder_pipedrive_cli.core.costs import BURST_LIMITS, SEARCH_LIMIT, WINDOW_S
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.protocol import ApiRequest

LARGEST_LIMIT = max(limit for limit in BURST_LIMITS.values() if limit is not None)
# Requests reach the server a little after we send them, and not all equally late: counting each
# send as occupying its slot this much longer than the window keeps jitter from causing 429s.
# Each 429 widens it by a step (up to a ceiling): the jitter was larger than we allowed for.
SLACK_S = 0.1
SLACK_STEP_S = 0.05
MAX_SLACK_S = 0.3


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
    """At most `limit` sends in any WINDOW_S seconds, plus holds imposed by the server."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.span = WINDOW_S + SLACK_S
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
        bisect.insort(self.sent, now)

    def restamp(self, reserved: float, sent: float) -> None:
        """A send counted at `reserved` actually left at `sent` (later): move it there."""
        i = bisect.bisect_left(self.sent, reserved)
        if i < len(self.sent) and self.sent[i] == reserved:
            del self.sent[i]
        bisect.insort(self.sent, sent)

    def hold(self, now: float, seconds: float) -> None:
        """Send nothing for `seconds` (after a 429 or the edge's 403)."""
        self.hold_until = max(self.hold_until, now + seconds)

    def widen(self) -> None:
        """A 429 came although we kept count: allow more for the jitter of arrival times."""
        self.span = min(self.span + SLACK_STEP_S, WINDOW_S + MAX_SLACK_S)

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


def stopped(stopping: asyncio.Event | None) -> bool:
    """Whether the run was told to stop: no request is tried again then."""
    return stopping is not None and stopping.is_set()


async def backed_off(nap: Awaitable[None], stopping: asyncio.Event | None) -> None:
    """`nap` (a retry's back-off: up to 30 s, a 429's up to `rate_wait_cap`; the pacer's wait,
    a 429's hold as long), ended as soon as `stopping` is set: a stop waited it out, silent,
    then tried no attempt more anyway (http/retry.py) or sent into the hold (`Pacer.acquire`)."""
    if stopping is None:
        await nap
        return
    napping = asyncio.ensure_future(nap)
    woken = asyncio.ensure_future(stopping.wait())
    try:
        done, _ = await asyncio.wait((napping, woken), return_when=asyncio.FIRST_COMPLETED)
    finally:
        napping.cancel()
        woken.cancel()
    if napping in done:
        napping.result()  # a sleep's own error is raised, not left unread


@dataclass(slots=True, kw_only=True)
class Ticket:
    """One paced request: when it was counted, and in which windows."""

    at: float
    windows: list[RollingWindow]
    done: bool = False


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

    def _windows(self, request: ApiRequest) -> list[RollingWindow]:
        windows = [self.burst] if self.burst is not None else []
        if request.is_search and self.search is not None:
            windows.append(self.search)
        return windows

    async def acquire(
        self, request: ApiRequest, stopping: asyncio.Event | None = None
    ) -> Ticket | None:
        """Return when `request` may be sent, and count it as sent now.

        Under load the request may leave some time later: call `sent(ticket)` when it has, so
        its slot frees up a window after it reached the server, not a window after now.
        None, not to be sent, once `stopping` (the run's stop) is set while it must wait: a
        wait under way (a 429's hold: up to a minute) ends then, not when it would.
        """
        windows = self._windows(request)
        while True:
            now = self.clock()
            wait = max((w.delay(now) for w in windows), default=0.0)
            if wait <= 0:
                for window in windows:
                    window.record(now)
                return Ticket(at=now, windows=windows)
            if stopped(stopping):
                return None
            await backed_off(self.sleep(wait), stopping)

    def sent(self, ticket: Ticket) -> None:
        """The request of `ticket` has left (first call only; later ones change nothing)."""
        if ticket.done:
            return
        ticket.done = True
        now = self.clock()
        if now > ticket.at:
            for window in ticket.windows:
                window.restamp(ticket.at, now)

    def _described(self, request: ApiRequest, headers: RateHeaders) -> RollingWindow | None:
        """The window a response's headers describe.

        A search answer describes the search window (10 on every plan), unless its limit says
        otherwise: a search refused because the burst window was full carries that window's.
        """
        if request.is_search and headers.limit in (None, SEARCH_LIMIT):
            return self.search
        return self.burst

    def observe(self, request: ApiRequest, headers: RateHeaders) -> None:
        """Apply a response's rate-limit headers to the window they describe."""
        window = self._described(request, headers)
        if window is not None:
            window.observe(headers, self.clock())

    def _adopt(self, request: ApiRequest, headers: RateHeaders) -> None:
        """Unpaced (`--plan unlimited`) and refused with a limit: the account has one after all.
        From now on pace by the window the 429 describes, so the run is not one 429 after
        another until it stops. A limit above every plan's (the sandbox's unlimited plan says
        10,000) paces nothing: it is not adopted."""
        if headers.limit is None or not 0 < headers.limit <= LARGEST_LIMIT:
            return
        if request.is_search and headers.limit == SEARCH_LIMIT:
            if self.search is None:
                self.search = RollingWindow(SEARCH_LIMIT)
        elif self.burst is None:
            self.burst = RollingWindow(headers.limit)
        self.observe(request, headers)

    def hold(
        self,
        request: ApiRequest,
        headers: RateHeaders,
        seconds: float,
        *,
        widen: bool = False,
        everything: bool = False,
    ) -> None:
        """Send nothing through the window that refused `request` for `seconds`.

        `everything`: hold every window (the edge blocked us). `widen` (a 429): also widen the
        refusing window's margin, since arrivals jittered more than it allowed for.
        """
        self._adopt(request, headers)
        described = self._described(request, headers)
        now = self.clock()
        for window in (self.burst, self.search):
            if window is not None and (everything or window is described):
                window.hold(now, seconds)
                if widen:
                    window.widen()
