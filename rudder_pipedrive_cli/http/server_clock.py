"""Pipedrive's clock as seen from here, so a send time compares with Pipedrive's record times.

Reconciling a write whose outcome is unknown lists records updated since it was sent (SPEC 5).
Pipedrive stamps `update_time` with its own clock; a laptop or VM whose clock runs a few seconds
ahead, or steps forward during a run (an NTP correction, a resumed VM), would list from a moment
after the record was made, miss it, and create it again. So once an answer has come, send times
are Pipedrive's time, carried forward by this machine's monotonic clock, which never steps:

    Date <= Pipedrive's time when it answered, and the answer arrived after that, so
    Date + (monotonic now - monotonic on arrival) <= Pipedrive's time now.

Every answer's `Date` (to the second) gives such a lower bound; the largest is used. A send time
computed from it is never later than Pipedrive's time of sending, so the listing starts early
enough (the plans' slack covers the rest). Before any answer, it is this machine's wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from rudder_pipedrive_cli.core.fields import rfc3339


def utc_now() -> datetime:
    return datetime.now(UTC)


class ServerClock:
    def __init__(
        self,
        now: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._now = now
        self._monotonic = monotonic
        # Pipedrive's time at monotonic 0, bounded from below; None before any Date.
        self.origin: datetime | None = None
        self._last_date = ""  # a Date changes once a second: most answers repeat the last one

    def observe(self, date: str | None) -> None:
        """Take in an answer's `Date` header, just as the answer arrived."""
        if not date or date == self._last_date:
            return
        self._last_date = date
        try:
            theirs = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        if theirs.tzinfo is None:  # not a valid HTTP date (those are GMT)
            return
        bound = theirs - timedelta(seconds=self._monotonic())
        if self.origin is None or bound > self.origin:
            self.origin = bound

    def now(self) -> datetime:
        if self.origin is None:
            return self._now()
        return self.origin + timedelta(seconds=self._monotonic())

    def stamp(self) -> str:
        """Now on Pipedrive's clock, RFC 3339 UTC to the second (rounded down)."""
        return rfc3339(self.now())
