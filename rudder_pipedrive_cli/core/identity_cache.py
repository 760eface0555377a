"""What a plan may know before it asks Pipedrive: the identity cache, as a read-only view.

Plans read it; they never write it. They report what they learned in their `Outcome`, and the
runner applies that with `IdentityStore.learn` after the event: the one store, in memory or over
the replay state's tables (io/state.py).
Events that share an identity run in input order, so each sees what the previous one learned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Protocol

from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.protocol import Outcome, PdId
from rudder_pipedrive_cli.core.recency import newest

# A chain of merges longer than this is taken as a loop in corrupt data, not followed further.
MAX_MERGE_HOPS = 64


def survivor(person: PdId | None, merged_into: Callable[[PdId], PdId | None]) -> PdId | None:
    """The person `person` ended up as, following merges (u-a into u-b, then u-b into u-c)."""
    for _ in range(MAX_MERGE_HOPS):
        if person is None:
            return None
        into = merged_into(person)
        if into is None:
            return person
        person = into
    return person


def links_persons(outcome: Outcome) -> bool:
    """Whether the outcome has two userIds name one person: an alias's merge, or its re-key
    (the previous person given the new userId, no merge)."""
    seen: set[PdId] = set()
    for (kind, _), pd_id in outcome.identities.items():
        if kind == "person" and pd_id is not None:
            if pd_id in seen:
                return True
            seen.add(pd_id)
    return False


Change = tuple[str, Any, Any]  # (table, key, value): value None forgets the key


def taught(outcome: Outcome, pending: bool) -> list[Change]:
    """What an outcome teaches an identity cache's tables, in the order to apply them: the one
    set of rules of `IdentityStore`, whose tables they name, in memory or over the replay
    state. Tables: "persons" (by userId), "orgs" (by groupId), "merged" (a person merged away:
    the one it went into), "pending_creates" ((kind, key): a create's send time),
    "pending_merges" (a person: the one a merge of it would go into), "memberships" (person:
    organization), "held" ((kind, key)).
    `pending`: whether a create or merge is pending already. Lead origins and field recency
    follow rules of their own (a union, the newest time)."""
    pending_creates, pending_merges = outcome.pending_creates, outcome.pending_merges
    pending = pending or bool(pending_creates or pending_merges)
    changes: list[Change] = []
    add = changes.append  # loops, not comprehensions: no extra frame for every outcome
    for slot in outcome.held_back:
        add(("held", slot, True))
    for slot, pd_id in outcome.identities.items():
        add(("persons" if slot[0] == "person" else "orgs", slot[1], pd_id))
        if pending and pd_id is not None and slot not in pending_creates:
            add(("pending_creates", slot, None))  # its record is known: settled
    for slot, sent_at in pending_creates.items() if pending_creates else ():
        add(("pending_creates", slot, sent_at))
    for person, org in outcome.memberships.items() if outcome.memberships else ():
        add(("memberships", person, org))
    for gone, into in outcome.merged.items() if outcome.merged else ():
        add(("merged", gone, into))
    for person, merging in pending_merges.items() if pending_merges else ():
        add(("pending_merges", person, merging))
    for gone in outcome.merged if pending else ():  # a merge known done is settled
        add(("pending_merges", gone, None))
    return changes


def persons_named(known: IdentityCache, *users: str | None) -> list[PdId]:
    """The persons the cache says these userIds name. Only once a merge or re-key is known may
    two userIds name one person; before that nothing needs looking up."""
    if not known.merges:
        return []
    return [p for user in users if user is not None and (p := known.person_id(user)) is not None]


def identities_of(event: Event, known: IdentityCache) -> frozenset[tuple[str, str]]:
    """The (kind, key) identities an event is about, asked only while one is held back or when it
    failed and may yet succeed: its userId, previousId, groupId and id (a messageId repeated is
    one event to the journal), and the persons its userIds name once merges are known."""
    user_id, previous_id, group_id = event.user_id, event.previous_id, event.group_id
    found = [("event", event.id)]
    if user_id is not None:
        found.append(("person", user_id))
    if previous_id is not None:
        found.append(("person", previous_id))
    if group_id is not None:
        found.append(("org", group_id))
    found += [("person_id", str(person)) for person in persons_named(known, user_id, previous_id)]
    return frozenset(found)


class IdentityCache(Protocol):
    def person_id(self, user_id: str) -> PdId | None:
        """The person cached for `user_id`, after any merge it went through."""
        ...

    def org_id(self, group_id: str) -> PdId | None: ...

    def lead_origins(self, person_id: PdId) -> frozenset[str] | None:
        """The `origin_id`s of the person's leads, or None when nobody has looked yet."""
        ...

    def person_org(self, person_id: PdId) -> PdId | None:
        """The organization the person is known to belong to, or None when not known."""
        ...

    @property
    def merges(self) -> bool:
        """Whether any merge or re-key is known: only then may two userIds name one person."""
        ...

    def pending_create(self, kind: str, key: str) -> str | None:
        """When a create of this identity whose outcome stays unknown was sent, or None."""
        ...

    def merging_into(self, person_id: PdId) -> PdId | None:
        """The person a merge of this one whose outcome stays unknown was into, or None."""
        ...

    def held_back(self, kind: str, key: str) -> bool:
        """Whether an event about this identity failed earlier in this run."""
        ...

    @property
    def holding(self) -> bool: ...  # any identity held back: only then ask `held_back`

    @property
    def pending(self) -> bool: ...  # any create or merge pending: only then ask about one

    def recency(self, kind: str, record: PdId) -> Mapping[str, str]:
        """Per field of the record ("person" or "org", id), the time of the event whose value
        rpd last wrote there (core/recency.py); empty when none is known."""
        ...


class Learner(IdentityCache, Protocol):
    """An identity cache that can take in what an event learned (`IdentityStore`, and what wraps
    one: core/index.py's ListedOrigins)."""

    def learn(self, outcome: Outcome) -> None: ...


class Lookup(Protocol):
    """One table of an `IdentityStore`: a dict, io/scratch.py's bounded `SpillTable`, or rows of
    the replay state (io/state_identities.py). A table's truth value may be True when it is empty,
    never False when it holds something: it only guards lookups."""

    def get(self, key: Any, default: Any = None, /) -> Any: ...

    def __setitem__(self, key: Any, value: Any, /) -> None: ...


class Table(Lookup, Protocol):
    def pop(self, key: Any, default: Any, /) -> Any: ...


# Makes one memory table of an `IdentityStore`: `dict`, or a mapping whose memory is bounded
# (io/scratch.py's SpillTable).
Tables = Callable[[], MutableMapping[Any, Any]]
STORED = ("persons", "orgs", "merged", "pending_creates", "pending_merges", "leads", "times")


class IdentityStore:
    """What a run knows about identities (`IdentityCache`), and the one place that takes in what
    an outcome taught (`learn`, by `taught`'s rules). Its tables are made by `tables` (dicts by
    default; bounded ones for a CLI run, io/scratch.py), except those given in `stored`: the
    replay state (io/state.py) gives the rows of its file for the tables named in `STORED`, and
    `merges` and `pending` as the file says. Memberships and identities held back are memory
    tables always: they hold for this run only.
    """

    def __init__(
        self,
        tables: Tables = dict,
        stored: Mapping[str, Any] | None = None,
        *,
        merges: bool = False,
        pending: bool = False,
    ) -> None:
        given = stored or {}

        def table(name: str) -> Any:
            found = given.get(name)
            return tables() if found is None else found

        self.persons: Table = table("persons")
        self.orgs: Table = table("orgs")
        self.merged: Table = table("merged")  # a person merged: the one it went into
        # The names of Outcome's: pending creates (their send time), pending merges (the person
        # each would go into).
        self.pending_creates: Table = table("pending_creates")
        self.pending_merges: Table = table("pending_merges")
        self.leads: Table = table("leads")  # by core/index.py's origins_key
        # Field recency: stored values are never changed in place, only replaced.
        self.times: Lookup = table("times")
        self.memberships: MutableMapping[PdId, PdId] = tables()  # person: organization
        self.held: MutableMapping[tuple[str, str], bool] = (
            tables()
        )  # identities held back (an event of theirs failed)
        # Whether `learn` ever wrote to `held` / the pending tables: the guards of the lookups every
        # event makes (a bounded table's truth value is a Python call; most runs write neither).
        self.holding = False
        self.pending = pending
        self.person_id: Callable[[str], PdId | None]
        self.org_id: Callable[[str], PdId | None]
        self.lead_origins: Callable[[PdId], frozenset[str] | None]
        self.person_org: Callable[[PdId], PdId | None]
        self._times: Callable[[tuple[str, PdId]], Mapping[str, str] | None]
        self.merges = merges  # a merge or re-key is known: two userIds may name one person
        self._bind()

    def _bind(self) -> None:
        """The lookups, the tables' own: no call of ours between a plan and its answer. Once a
        merge or re-key is known, `person_id` follows merges (`_survivor_of`)."""
        self.person_id = self._survivor_of if self.merges else self._lookup(self.persons)
        self.org_id = self._lookup(self.orgs)
        self.lead_origins = self._lookup(self.leads)
        self.person_org = self._lookup(self.memberships)
        self._times = self._lookup(self.times)

    def _lookup(self, table: Any) -> Callable[[Any], Any]:
        """`table.get`; for a bounded table (io/scratch.py's SpillTable) while all its keys are
        in memory, its memory's `get`, bound again when keys first move out."""
        hot = getattr(table, "hot", None)
        if hot is None or table.moved:
            lookup: Callable[[Any], Any] = table.get
        else:
            lookup = hot.get
            table.on_move = self._bind
        return lookup

    def merging(self) -> None:
        """From now on, two userIds may name one person: `person_id` follows merges."""
        self.merges = True
        self.person_id = self._survivor_of

    def _survivor_of(self, user_id: str) -> PdId | None:  # `person_id` once merges are known
        return survivor(self.persons.get(user_id), self.merged.get)

    def pending_create(self, kind: str, key: str) -> str | None:
        return self.pending_creates.get((kind, key)) if self.pending else None

    def merging_into(self, person_id: PdId) -> PdId | None:
        return self.pending_merges.get(person_id) if self.pending else None

    def held_back(self, kind: str, key: str) -> bool:
        return self.held.get((kind, key), False) if self.holding else False

    def recency(self, kind: str, record: PdId) -> Mapping[str, str]:
        return self._times((kind, record)) or {}

    def learn(self, outcome: Outcome) -> None:
        if not (
            outcome.identities
            or outcome.recency
            or outcome.held_back
            or outcome.lead_origins
            or outcome.memberships
            or outcome.merged
            or outcome.pending_creates
            or outcome.pending_merges
        ):
            return  # most failed, skipped and unchanged events teach nothing
        for record, times in outcome.recency.items():
            before = self._times(record)
            self.times[record] = dict(times) if before is None else newest(before, times)
        if not self.merges and (outcome.merged or links_persons(outcome)):
            self.merging()
        for person, origins in outcome.lead_origins.items():
            if origins is None:
                self.leads.pop(person, None)
            else:
                self.leads[person] = self.leads.get(person, frozenset()) | origins
        for name, key, value in taught(outcome, self.pending):
            table = getattr(self, name)  # the tables `taught` names
            if value is None:
                table.pop(key, None)
                continue
            table[key] = value
            if name == "held":
                self.holding = True
            elif name.startswith("pending"):
                self.pending = True
