"""Which events must take effect in input order (SPEC 5): the keys the runner orders them by.

Two events sharing a key run one after the other, in input order; events sharing none may run
at once. An event's own identities (`Event.identities`: userId, previousId, groupId, external
ids; `EVERY` for an alias) are not always enough once persons have been merged, since two ids
then name one person:
- within the run, an alias links its two userIds: every later event of either holds the key of
  the linked group, so `identify u-b` and `identify u-a` after `alias u-a -> u-b` keep their
  order (both write the same person);
- across runs, the identity cache knows which person a userId names now (after merges): each
  userId also gives the key of its cached person, as a `person_id` external id would;
- an event's id is a key too: the journal takes two events with one id as one;
- an event with an external id orders against every other (`EVERY`), as an alias does: it names
  a record by its Pipedrive id, and which userId or groupId names that record is known only once
  looked up (an identify naming person 6 with userId u-9 re-keys u-5's person to u-9, and u-5's
  next identify, run beside it, could find person 6 before the re-key and write u-9's person).

Keys are computed as events are read, in input order, so the links are those of earlier aliases
only, as the input says. Extra keys only ever add waiting; they never let events overlap.
"""

from __future__ import annotations

from collections.abc import Mapping

from rudder_pipedrive_cli.core.events import EVERY, Event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore, Tables, persons_named


class OrderKeys:
    def __init__(
        self, known: IdentityStore, aliases: Mapping[str, str] | None = None, tables: Tables = dict
    ) -> None:
        self.known = known
        # userId -> another in its alias group (union-find); one entry per alias, so a bounded
        # table (io/scratch.py) for a CLI run.
        self._parent = tables()
        # The input's aliases, known before its first event (send's first pass): a replay may
        # find a userId's person under the userId it is aliased to (plans/common.aliased_away),
        # so the events of both keep their input order from the start.
        for previous, user in (aliases or {}).items():
            self._link(previous, user)

    def __call__(self, event: Event) -> frozenset[str]:
        keys = event.identities  # a new set: the keys are made in it, frozen once
        # Two events with one id (a messageId repeated for another user) are one event to the
        # journal: the second must start after the first is journaled, to be skipped as done.
        keys.add("e:" + event.id)
        users = (event.user_id, event.previous_id)
        for user in users:
            if user is not None:
                keys.add("u:" + self._group(user))
        if self.known.merges:  # else no two userIds name one person (`persons_named`)
            keys.update(f"p:{person}" for person in persons_named(self.known, *users))
        if event.external:
            keys.add(EVERY)
        if event.type == "alias" and event.user_id is not None and event.previous_id is not None:
            self._link(event.previous_id, event.user_id)
        return frozenset(keys)

    def _link(self, previous_id: str, user_id: str) -> None:
        previous, current = self._group(previous_id), self._group(user_id)
        if previous != current:
            self._parent[previous] = current

    def _group(self, user: str) -> str:
        """The userId that stands for `user`'s alias group (with path halving)."""
        parent = self._parent
        if not parent:
            return user
        above = parent.get(user)
        while above is not None:
            higher = parent.get(above)
            if higher is not None:
                parent[user] = higher
            user, above = above, higher
        return user
