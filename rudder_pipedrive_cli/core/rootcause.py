"""Failures caused by an earlier failure of the same user (issue 14 item 4), told as such.

7 users' identify failed (a plan that is not an option of the enum field), and so did every later
event of those users: their persons were never made, and a track without a name cannot make one.
The report read "74 cannot create person without a name" above "7 cannot convert plan": the
cause hid under its effects. Here, within one run, the first failure of an event about a userId
is its root; a later event of that userId that fails because it has no person, or that waits for
the root's retry, is a knock-on: its reason says so (`no person for u-1: its identify failed
earlier (cannot convert plan ...)`) and the report counts it under the root's reason.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.identity_cache import table_get
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.tally import Tally

# Where a plan fails for want of a person, decided by rpd itself (no answer from Pipedrive):
# "person not found and create_persons is off", "cannot create person without a name".
NO_PERSON_STAGES = frozenset({"lookup person", "create person"})
# Where a plan fails waiting for an earlier failed event of the same identity (plans/__init__).
WAITING_STAGE = "order"
# Failed userIds remembered per run: past this many, later knock-ons are counted as causes.
MAX_ROOTS = 100_000


@dataclass(frozen=True, slots=True)
class Root:
    """The first failure of a userId, as the later failures it explains tell it (made once)."""

    redacted: str  # its reason in words holding no event data: what its knock-ons count under
    told: str  # a knock-on's reason, which may quote event data: for the dead letter
    told_redacted: str  # a knock-on's reason in words holding none: for the report


class RootCauses:
    """The first failure of each userId in a run, to explain the failures that follow it.

    Events of one userId end in input order (the runner orders them), so the first failure seen
    is the first in the input."""

    def __init__(self, roots: MutableMapping[str, Root] | None = None) -> None:
        # A bounded table for a CLI run (issue 18: io/scratch.py), a dict by default.
        self._roots: MutableMapping[str, Root] = {} if roots is None else roots
        self._count = 0  # roots kept (never removed): cheaper than len() of a bounded table
        self._bind()

    def _bind(self) -> None:
        self._root_of = table_get(self._roots, self._bind)  # a read is no call of ours

    def count(self, tally: Tally, event: Event, outcome: Outcome) -> Outcome:
        """Count an event's end (any intake item) in the tally, a knock-on under its root; the
        outcome its record and dead letter tell (a knock-on's reason names its root). Only a
        failure of an event with a userId may have a root or be one. An alias is about two users
        and never creates: its reason is its own, unless it waits for a failure of either."""
        user = event.user_id
        if outcome.status != "failed" or user is None or not event.id:
            tally.add_outcome(event.kind, outcome)
            return outcome
        root_of, stage = self._root_of, outcome.stage
        if event.type == "alias":
            root = (
                root_of(user) or root_of(event.previous_id or "")
                if stage == WAITING_STAGE
                else None
            )
        elif (root := root_of(user)) is None:
            if self._count < MAX_ROOTS:
                why, redacted = f"its {event.type} failed earlier", outcome.redacted_reason
                told = f"no person for {user}: {why} ({outcome.reason})"
                self._roots[user] = Root(
                    redacted, told, f"no person for its userId: {why} ({redacted})"
                )
                self._count += 1
        elif stage == WAITING_STAGE:
            pass  # its reason says so already: grouped only
        elif stage in NO_PERSON_STAGES and outcome.http_status is None:
            outcome = _with(outcome, root.told, root.told_redacted)
        else:
            root = None  # a cause of its own
        tally.add_outcome(event.kind, outcome, "" if root is None else root.redacted)
        return outcome


def _with(old: Outcome, reason: str, redacted: str) -> Outcome:
    """The outcome with another reason, copied field by field: under half the time of a loop of
    setattr, a quarter of `dataclasses.replace` (which re-runs `__init__`), in a dry-run where
    many events are knock-ons. tests/core/test_rootcause.py checks every field is copied."""
    new = object.__new__(Outcome)
    new.status, new.reason, new.stage = old.status, reason, old.stage
    new.http_status, new.retryable, new.writes = old.http_status, old.retryable, old.writes
    new.warnings, new.dropped, new.held_back = old.warnings, old.dropped, old.held_back
    new.identities, new.lead_origins = old.identities, old.lead_origins
    new.memberships, new.merged, new.recency = old.memberships, old.merged, old.recency
    new.pending_creates, new.pending_merges = old.pending_creates, old.pending_merges
    new.redacted = redacted
    return new
