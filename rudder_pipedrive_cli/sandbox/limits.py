"""Pipedrive's rate limits, per token: a rolling burst window, a search window, a daily budget.

Pure: every call takes `now` (epoch seconds). A request that passes the windows is recorded in
them and charged its token cost; a refused one is not (so waiting `x-ratelimit-reset` seconds is
enough to get through again).

A client that keeps sending while refused is blocked by the edge: after more than
`EDGE_STRIKES` 429s within one window, every request gets an HTML 403 for `EDGE_BLOCK_S`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rudder_pipedrive_cli.core.costs import DAILY_TOKENS, PLANS, SEARCH_LIMIT, WINDOW_S

EDGE_STRIKES = 20
EDGE_BLOCK_S = 10.0
# What an unlimited sandbox reports: plausible headers, never a refusal.
UNLIMITED_BURST = 10_000
_DAY_S = 86_400


Refusal = Literal["", "burst", "search", "daily", "edge"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    refused: Refusal
    headers: Mapping[str, str]


class _Window:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stamps: deque[float] = deque()

    def used(self, now: float) -> int:
        while self.stamps and self.stamps[0] <= now - WINDOW_S:
            self.stamps.popleft()
        return len(self.stamps)

    def headers(self, now: float) -> dict[str, str]:
        used = self.used(now)
        remaining = max(self.limit - used, 0)
        reset = math.ceil(self.stamps[0] + WINDOW_S - now) if self.stamps else 0
        if remaining == 0:
            reset = max(reset, 1)
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
        }


class Limiter:
    def __init__(self, plan: str, seats: int) -> None:
        self.plan = PLANS[plan]
        self.budget = DAILY_TOKENS * self.plan.multiplier * seats if self.plan else 0
        self.clear()

    def clear(self) -> None:
        self.burst = _Window(self.plan.burst if self.plan else UNLIMITED_BURST)
        self.search = _Window(SEARCH_LIMIT if self.plan else UNLIMITED_BURST)
        self.spent = 0
        self.day = -1
        self.strikes = _Window(EDGE_STRIKES)  # the 429s served in the last window
        self.blocked_until = 0.0

    def admit(self, *, now: float, search: bool, cost: int) -> Verdict:
        window = self.search if search else self.burst
        if self.plan is None:
            return self._admitted(window, now, search, cost)
        if now < self.blocked_until:
            return Verdict(refused="edge", headers={})
        full = next((w for w in (self.burst, window) if w.used(now) >= w.limit), None)
        if full is not None:
            return self._refuse(
                "search" if full is self.search else "burst", full.headers(now), now
            )
        today = int(now // _DAY_S)
        if today != self.day:
            self.day, self.spent = today, 0
        if self.spent + cost > self.budget:
            headers = window.headers(now)
            headers["x-ratelimit-reset"] = str(math.ceil((today + 1) * _DAY_S - now))
            return self._refuse("daily", headers, now)
        return self._admitted(window, now, search, cost)

    def _admitted(self, window: _Window, now: float, search: bool, cost: int) -> Verdict:
        self.burst.stamps.append(now)
        if search:
            self.search.stamps.append(now)
        self.spent += cost
        return Verdict(refused="", headers=self._clamped(window.headers(now)))

    def unadmit(self, *, search: bool, cost: int) -> None:
        """Take back the request `admit` let through last: answered with a fault's 429, it was
        never served, so it leaves the windows and the day's budget as a real 429 does."""
        self.burst.stamps.pop()
        if search:
            self.search.stamps.pop()
        self.spent -= cost

    def _clamped(self, headers: dict[str, str]) -> dict[str, str]:
        if self.plan is None and headers["x-ratelimit-remaining"] == "0":
            headers["x-ratelimit-remaining"] = "1"
        return headers

    def _refuse(self, reason: Refusal, headers: Mapping[str, str], now: float) -> Verdict:
        if self.strikes.used(now) >= EDGE_STRIKES:  # this 429 would be one more than the edge takes
            self.blocked_until = now + EDGE_BLOCK_S
            self.strikes.stamps.clear()
            return Verdict(refused="edge", headers={})
        self.strikes.stamps.append(now)
        return Verdict(refused=reason, headers=headers)

    def headers(self, *, now: float, search: bool) -> dict[str, str]:
        """Headers for an answer that was not counted (a fault, an introspection call)."""
        return self._clamped((self.search if search else self.burst).headers(now))
