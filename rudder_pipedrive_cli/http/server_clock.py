"""Pipedrive's clock as seen from here, so a send time compares with Pipedrive's record times.

Reconciling a write whose outcome is unknown lists records updated since it was sent (SPEC 5).
Pipedrive stamps `update_time` with its own clock; a laptop or VM whose clock runs a few seconds
ahead would list from a moment after the record was made, miss it, and create it again. Every
answer's `Date` header (to the second) bounds the offset between the clocks from below:

    Date <= Pipedrive's time when it answered, and the local time on arrival >= the local time
    when it answered, so Date - arrival <= Pipedrive's time - local time.

The largest bound seen so far is the offset used: a send time computed with it is never later
than Pipedrive's time of sending, so the listing starts early enough (the plans' slack covers
the rest). With no Date seen yet the offset is 0, the local clock as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from rudder_pipedrive_cli.core.fields import rfc3339


def utc_now() -> datetime:
    return datetime.now(UTC)


class ServerClock:
    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now
        self.offset: timedelta | None = None  # Pipedrive's time minus ours, bounded from below

    def observe(self, date: str | None) -> None:
        """Take in an answer's `Date` header, just as the answer arrived."""
        if not date:
            return
        try:
            theirs = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        if theirs.tzinfo is None:  # not a valid HTTP date (those are GMT)
            return
        bound = theirs - self._now()
        if self.offset is None or bound > self.offset:
            self.offset = bound

    def now(self) -> datetime:
        moment = self._now()
        return moment if self.offset is None else moment + self.offset

    def stamp(self) -> str:
        """Now on Pipedrive's clock, RFC 3339 UTC to the second (rounded down)."""
        return rfc3339(self.now())
