"""How far a send is, and how long the rest will take: events done against the (estimated) total,
at the pace rpd is allowed.

The total is known exactly once a first pass over the input counted it or every file is read;
before that, when the input's size is known, it is estimated from the bytes each event took so far
(the reader hands out whole lines, so the bytes read and the events taken from it move together).
The time left is the events left at the slower of two paces: the one seen lately, and the one the
plan's rate limit allows for the requests an event has needed lately (a first burst is faster than
the limit lets a run go on). "Lately" is since a `Mark` the caller keeps (about the last half
minute): the first events of a backfill each need a search (5 a second), the later ones of the same
users none, and a pace taken over the whole run would stay as slow as the start. The events skipped
as already done are not in the pace: a resumed run skips those it did before at thousands a second,
a pace its sending never keeps (it said `0:00:25 left`, then minutes); until it sends one, no time
left is told.
"""

from __future__ import annotations

from dataclasses import dataclass

from rudder_pipedrive_cli.core.intake import ALREADY_DONE
from rudder_pipedrive_cli.core.tally import Tally, estimated_seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """Where a run was at one moment: what the pace since then is measured from."""

    elapsed: float = 0.0
    done: int = 0  # events done, not counting those skipped as already done (`worked`)
    allowed_s: float = 0.0  # seconds the plan's rate limit allowed for the requests made by then


def worked(tally: Tally) -> int:
    """Events done, but those skipped as already done (done by an earlier run, or the same
    messageId earlier in the input): what the pace is measured in."""
    return tally.read - tally.skips.get(ALREADY_DONE.reason, 0)


def mark(tally: Tally, *, elapsed: float, plan: str) -> Mark:
    return Mark(elapsed=elapsed, done=worked(tally), allowed_s=estimated_seconds(tally, plan))


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    done: int  # events with an outcome
    total: int | None  # events in the input: exact, estimated, or unknown (stdin)
    exact: bool  # the total is counted, not estimated
    rate: float  # events done per second so far
    eta: float | None  # seconds left, when a total is known and an event is done

    @property
    def share(self) -> float | None:
        """The share of the events done (0 to 1), when a total is known."""
        if self.total is None:
            return None
        return min(self.done / self.total, 1.0) if self.total else 1.0


def estimate(
    tally: Tally,
    *,
    taken: int,
    bytes_read: int,
    total_bytes: int | None,
    elapsed: float,
    plan: str,
    since: Mark | None = None,
    limit: int | None = None,
    counted: int | None = None,
) -> Estimate:
    """`taken`: events taken from the reader (done or in flight); `bytes_read` of `total_bytes`;
    the pace is measured `since` a mark (default: the start); `limit`: --limit's, whose reading
    stops at its Nth event (bad lines on the way, not counted by it, taken beyond); `counted`:
    the items a first pass over the same input took (limit and filters alike), the total."""
    done = tally.read
    total: int | None = None
    exact = False
    if counted is not None and counted >= taken:  # fewer: the input grew since; estimated
        total, exact = counted, True
    elif total_bytes is not None:
        if bytes_read >= total_bytes:
            total, exact = taken, True
        elif taken and bytes_read:
            total = max(taken, round(total_bytes * taken / bytes_read))
        if limit is not None and total is not None and not exact:
            total = min(total, max(limit, taken))
    rate = done / elapsed if elapsed > 0 else 0.0
    eta: float | None = None
    went = worked(tally)
    base = since if since is not None and since.done < went else Mark()
    lately = went - base.done
    if total is not None and lately and elapsed > base.elapsed:
        seen = (elapsed - base.elapsed) / lately
        allowed = (estimated_seconds(tally, plan) - base.allowed_s) / lately
        eta = max(total - done, 0) * max(seen, allowed)
    return Estimate(done=done, total=total, exact=exact, rate=rate, eta=eta)
