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
from dataclasses import dataclass, replace

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
        outcome its record and dead letter tell (a knock-on's reason names its root)."""
        if outcome.status != "failed":
            tally.add_outcome(event.kind, outcome)
            return outcome
        root = self.failed(tally, event, outcome)
        return (
            outcome
            if root is None
            else replace(outcome, reason=root.told, redacted=root.told_redacted)
        )

    def failed(self, tally: Tally, event: Event, outcome: Outcome) -> Root | None:
        """Count a failed event's end, a knock-on under its root; the root whose words its
        reason takes (`Root.told`) when it failed for want of the person its root did not make,
        else None (its reason is its own). Only a failure of an event with a userId may have a
        root or be one. An alias is about two users and never creates: its reason is its own,
        unless it waits for a failure of either."""
        user, retold = event.user_id, None
        if user is None or not event.id:
            root = None
        elif event.type == "alias":
            root_of = self._root_of
            root = (
                root_of(user) or root_of(event.previous_id or "")
                if outcome.stage == WAITING_STAGE
                else None
            )
        elif (root := self._root_of(user)) is None:
            if self._count < MAX_ROOTS:
                why, redacted = f"its {event.type} failed earlier", outcome.redacted_reason
                told = f"no person for {user}: {why} ({outcome.reason})"
                self._roots[user] = Root(
                    redacted, told, f"no person for its userId: {why} ({redacted})"
                )
                self._count += 1
        elif (stage := outcome.stage) == WAITING_STAGE:
            pass  # its reason says so already: grouped only
        elif stage in NO_PERSON_STAGES and outcome.http_status is None:
            retold = root
        else:
            root = None  # a cause of its own
        tally.add_outcome(event.kind, outcome, "" if root is None else root.redacted)
        return retold
