"""What a plan may know before it asks Pipedrive: the identity cache, one type (`IdentityStore`).

Plans read it; they never write it. They report what they learned in their `Outcome`, and the
runner applies that with `IdentityStore.learn` after the event: the one store, in memory or over
the replay state's tables (io/state.py).
Events that share an identity run in input order, so each sees what the previous one learned.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.protocol import EMPTY, ApiRequest, Learned, Outcome, PdId
from rudder_pipedrive_cli.core.recency import newest
from rudder_pipedrive_cli.core.rules import KINDS

# A chain of merges longer than this is taken as a loop in corrupt data, not followed further.
MAX_MERGE_HOPS = 64
# The userIds `IdentityStore.unfound` keeps: a thousand chains of MAX_MERGE_HOPS looked along.
UNFOUND = 1 << 16


def persons_named(known: IdentityStore, *users: str | None) -> list[PdId]:
    """The persons the cache says these userIds name. Only once a merge or re-key is known may
    two userIds name one person; before that nothing needs looking up."""
    if not known.merges:
        return []
    return [p for user in users if user is not None and (p := known.person_id(user)) is not None]


def aliased_to(aliases: Mapping[str, str], key: str) -> Iterator[str]:
    """The userIds the input aliases `key` to, in turn: a chain of aliases, without cycles."""
    return _aliased_on(aliases, key, {key})


def _aliased_on(aliases: Mapping[str, str], last: str, seen: set[str]) -> Iterator[str]:
    """`aliased_to` on from `last`, the userIds in `seen` (`last` among them) walked so far."""
    target = aliases.get(last)
    while target is not None and target not in seen and len(seen) <= MAX_MERGE_HOPS:
        seen.add(target)
        yield target
        target = aliases.get(target)


# The chains `Walked` keeps (the longest, most recently walked): about 65 userIds each at most.
WALKED = 4096


class Walked:
    """The chains the first pass walked (`alias_into`), each from its start: a previousId aliased
    again and again (an anonymousId at every login) walks its chain on from where it ended, not
    from its start, up to MAX_MERGE_HOPS lookups each time in a table that may be SQLite's
    (200,000 aliases of 1,000 previousIds: 2 minutes). A chain walked is still the start of its
    chain as long as no link along it changes: `alias_into` writes a link only at a chain's end
    (its previousId, or a userId no alias leads on from), but in a loop, which it says (`forget`).
    At most WALKED chains, the oldest walked forgotten first; a chain of one or two userIds is
    not kept (walking it costs as little)."""

    __slots__ = ("_chains",)

    def __init__(self) -> None:
        self._chains: dict[str, tuple[str, ...]] = {}

    def chain(self, aliases: Mapping[str, str], key: str) -> tuple[str, ...]:
        """`key` and the userIds the input aliases it to, in turn (`aliased_to`)."""
        chains = self._chains
        walked = chains.pop(key, None)
        if walked is None:
            found = (key, *aliased_to(aliases, key))
        else:
            found = (*walked, *_aliased_on(aliases, walked[-1], set(walked)))
        if len(found) > 2:
            if len(chains) >= WALKED:
                del chains[next(iter(chains))]
            chains[key] = found
        return found

    def forget(self) -> None:
        """A link along a chain changed: none walked is known to be the start of its chain."""
        self._chains.clear()


def alias_into(
    aliases: MutableMapping[str, str], previous_id: str, user_id: str, walked: Walked
) -> None:
    """Note the input's alias `previous_id` -> `user_id` in `aliases`, where the aliases before
    it are: a chain from each userId through the ones its person went to, to the one whose person
    its events end with once the input's aliases have run (`aliased_to`). The alias merges the
    person its previousId's chain ends at into `user_id`'s (or re-keys it there), so that end now
    leads on to `user_id`: a -> b, then a -> c, chain a to b to c, b's person going with a's;
    a -> b, then b -> c, a to b to c; a -> b, c -> d, then a -> c, a to b to c to d (c's person
    is d's only if c -> d found one). Each link goes in input order, as the merges it stands
    for, and is written once, at a chain's end (an alias of two userIds one person already
    writes nothing): a chain's first person still there is the furthest its merges got
    (`find`). `walked`: the chains walked so far, of this `aliases` (`Walked`)."""
    away = previous_id  # most aliases: a new previousId, to a userId no alias named before
    looped = False
    if previous_id in aliases:
        chain = walked.chain(aliases, previous_id)
        away = chain[-1]
        # Still leading on: a chain cut at MAX_MERGE_HOPS, not linked on; else a loop a state
        # kept by an older rpd holds (its first alias of each previousId), linked on at its end.
        if away in aliases:
            if len(chain) > MAX_MERGE_HOPS:
                return
            looped = True
    # Linked to the userId itself, not its chain's end: its own aliases before this one may not
    # have moved its person (neither found, they failed), so its person is where this one's goes,
    # and the chain walks on from there to where the later ones took it.
    into = walked.chain(aliases, user_id)[-1] if user_id in aliases else user_id
    if away != into and away != user_id:
        if looped:  # a link that was there changes: chains through it with it
            walked.forget()
        aliases[away] = user_id


def ahead_of(
    aliases: Mapping[str, str], direct: Mapping[str, Sequence[str]], key: str, event: Event
) -> Iterator[str]:
    """The userIds to look for `key`'s person at, in turn, for an `event` of `key`: `key`'s chain
    (`aliased_to`), unless the planning pass read the event (`AliasesRead`, which knows where it
    stands among the input's aliases). Then the order depends on nothing that differs between a
    first run and a rerun without the state (the input, not what Pipedrive holds), so that both
    take one person: at `key` and at each userId along its chain that comes before the last of
    its own aliases (`AliasesRead.among`), first the userIds along its chain that an event before
    this one named (not an alias: an alias creates no person), in chain order, as a first run
    found their persons there; then where its own aliases after the event lead, the last first
    (each alias of it takes its person, wherever the ones before took it, to its userId: a
    first run found none of them, so the person it had is where the last of them that ran took
    it), each walked on the same way; then the rest of its chain. Elsewhere the chain goes on.
    alias a -> b (neither found), track a, identify b, alias a -> c: the rerun's track looks at
    c first, where a -> c re-keyed the track's person, not at b's own person (b named after); and
    the next hop the same way: alias a -> b, track x, alias x -> a, alias a -> c: the track looks
    at a, then c, then b. Walked as they are asked for (`find` stops at the first person found),
    about MAX_MERGE_HOPS userIds at most."""
    read = getattr(event, "among_aliases", None) if key == event.user_id else None
    if read is None:
        return aliased_to(aliases, key)
    at, aliases_read = read
    return _looked_on(aliases, direct, key, aliases_read.among(key, at), (at, aliases_read), {key})


def _looked_on(
    aliases: Mapping[str, str],
    direct: Mapping[str, Sequence[str]],
    user: str,
    among: tuple[int, tuple[str, ...]] | None,
    read: tuple[int, AliasesRead],
    seen: set[str],
) -> Iterator[str]:
    """`ahead_of` on from `user` (its place among its own aliases `among`, as `AliasesRead.among`
    gives it for the event read at `read`), the userIds in `seen` (`user` among them) given."""
    at, aliases_read = read
    if among is not None:
        before, named = among
        for name in named:
            if name not in seen:
                seen.add(name)
                yield name
        own = direct.get(user, ())
        for later in range(len(own) - 1, before - 1, -1):
            if len(seen) > MAX_MERGE_HOPS:
                return
            if (ahead := own[later]) not in seen:
                seen.add(ahead)
                yield ahead
                yield from _looked_on(
                    aliases, direct, ahead, aliases_read.among(ahead, at), read, seen
                )
    for target in aliased_to(aliases, user):  # then its chain, each hop taken the same way
        if len(seen) > MAX_MERGE_HOPS:
            return
        if target not in seen:
            seen.add(target)
            yield target
            if (hop := aliases_read.among(target, at)) is not None:
                yield from _looked_on(aliases, direct, target, hop, read, seen)
                return


class AliasesRead:
    """What the planning pass (send's, dry-run's) reads of the input's aliases, in input order, for
    `ahead_of`: where each previousId aliased twice or more (its own aliases, `direct`, from the
    first pass: `index.input_aliases`) has its aliases, and where an event that may make its
    person (`names`; an alias makes none) first names each userId the aliases lead to, counted in
    events read. Each event with a userId is marked with where it was read and this
    (`Event.among_aliases`), so that its look-ahead
    knows, at any userId along its chain, where it stands among that userId's aliases (`among`):
    what the pass reads after it does not change that. The pass must read the items the first
    pass read: a resumed run that reads objects its first pass did not (or the reverse) is given
    no `direct`."""

    __slots__ = (
        "_aliases", "_at", "_at_get", "_direct", "_named", "_named_get", "_names", "_read",
    )  # fmt: skip

    def __init__(
        self,
        direct: Mapping[str, Sequence[str]],
        aliases: Mapping[str, str],
        tables: Tables = dict,
        names: Callable[[Event], bool] | None = None,
    ) -> None:
        self._direct, self._aliases = direct, aliases
        self._names = names
        self._read = 0  # the events with a userId read so far
        # Where the aliases of each previousId aliased twice or more were read, in turn.
        self._at: MutableMapping[str, list[int]] = tables()
        # The userIds the aliases lead to: where an event that may make its person (`names`)
        # first named each, -1 until one does.
        self._named: MutableMapping[str, int] = tables()
        for targets in direct.values():
            for target in targets:
                self._named[target] = -1
        self._bind()

    @classmethod
    def of(
        cls,
        direct: Mapping[str, Sequence[str]],
        aliases: Mapping[str, str],
        tables: Tables,
        names: Callable[[Event], bool] | None = None,
    ) -> AliasesRead | None:
        """One for a run whose input aliases a previousId twice or more, else None: no event
        stands among two aliases of a userId, and none needs reading (most inputs). `names`:
        whether an event other than an alias may make its userId's person (plans.makes_a_person:
        not a skip rule's, an invalid one, one whose traits name no person); None, any may. One
        that cannot names no person a first run found there after it: a page view of u-b before
        the track looking along u-a -> u-b -> u-c put u-b's person first, one made only later."""
        if any(len(targets) > 1 for targets in direct.values()):
            return cls(direct, aliases, tables, names)
        return None

    def _bind(self) -> None:
        self._named_get = table_get(self._named, self._bind)
        self._at_get = table_get(self._at, self._bind)

    def __call__(self, event: Event) -> None:
        """Note `event`, the next planned one in input order."""
        user = event.user_id
        if user is None:
            return
        at = self._read
        self._read = at + 1
        event.among_aliases = (at, self)
        if event.type != "alias":
            if self._named_get(user) == -1 and (self._names is None or self._names(event)):
                self._named[user] = at
        elif (previous := event.previous_id) is not None and len(
            self._direct.get(previous, ())
        ) > 1:  # `input_aliases` noted it
            kept = self._at_get(previous)
            if kept is None:
                self._at[previous] = [at]
            else:
                kept.append(at)
                self._at[previous] = kept

    def among(self, user: str, at: int) -> tuple[int, tuple[str, ...]] | None:
        """Where the event read at `at` stands among `user`'s own aliases, when `user` has two or
        more and the event comes before the last: how many come before it, and the userIds along
        `user`'s chain an event before it named; else None (its chain alone)."""
        own = self._direct.get(user)
        if own is None or len(own) < 2:
            return None
        before = bisect_left(self._at_get(user) or (), at)
        if before >= len(own):
            return None
        named = self._named_get
        chain = aliased_to(self._aliases, user)
        return before, tuple(
            target for target in chain if (first := named(target)) is not None and -1 < first < at
        )


def identities_of(
    event: Event, known: IdentityStore, aliases: Mapping[str, str]
) -> frozenset[tuple[str, str]]:
    """The (kind, key) identities an event is about, asked only while one is held back or when it
    failed and may yet succeed: its userId, previousId, groupId and id (a messageId repeated is
    one event to the journal), the userIds the input aliases its userIds to (a rerun may take
    one's person for theirs, plans/common.aliased_away: their later events wait as theirs do),
    and the persons its userIds name once merges are known."""
    user_id, previous_id, group_id = event.user_id, event.previous_id, event.group_id
    found = [("event", event.id)]
    for user in (user_id, previous_id):
        if user is not None:
            found.append(("person", user))
            if user in aliases:
                found += [("person", target) for target in aliased_to(aliases, user)]
    if group_id is not None:
        found.append(("org", group_id))
    found += [("person_id", str(person)) for person in persons_named(known, user_id, previous_id)]
    return frozenset(found)


# What track events create for a person (leads, and what track rules make: TrackRules.creates)
# is made exactly once by an origin rpd writes into it (SPEC 4 track rules): the origins known of
# a person's records of each kind are kept per `origins_key`, leads under the person's id as they
# always were.
TRACK_KINDS = tuple(kind for kind in KINDS if kind not in ("lead", "skip"))


def origins_key(kind: str, person: PdId) -> PdId:
    """Where a plan's `Ctx.lead_origins` (and the state) keep the origins of a person's `kind`s."""
    return person if kind == "lead" else f"{kind}:{person!r}"


def origins_kind(key: PdId) -> str:
    """The kind whose origins `origins_key` keeps under `key`."""
    if isinstance(key, str):
        kind, colon, _person = key.partition(":")
        if colon and kind in TRACK_KINDS:
            return kind
    return "lead"


class Added(frozenset[str]):
    """An outcome's `lead_origins` value that is a delta, not a list: the origins of records this
    event created, to add where the person's list is known complete (`Origins.add`), never to be
    taken as the whole list."""

    __slots__ = ()


class Table(Protocol):
    """One table of an `IdentityStore`: a dict, io/scratch.py's bounded `SpillTable`, or rows of
    the replay state (io/state_identities.py)."""

    def get(self, key: Any, default: Any = None, /) -> Any: ...

    def __setitem__(self, key: Any, value: Any, /) -> None: ...

    def pop(self, key: Any, default: Any, /) -> Any: ...


class Origins(Protocol):
    """`IdentityStore.leads`: the origins of a person's records of one kind, by `origins_key`, for
    the persons whose list is complete; `OriginSets` in memory, the replay state's rows
    (io/state_identities.py's `LeadRows`). Each answer and write costs the same whatever the
    number of origins, except `get` and `put`, which take or give the whole list."""

    def get(self, key: PdId, /) -> AbstractSet[str] | None:
        """The whole list, None when it is not known complete."""

    def has(self, key: PdId, origin: str, /) -> bool | None:
        """Whether `origin` is in the list, None when it is not known complete."""

    def add(self, key: PdId, origins: Iterable[str], /) -> bool:
        """Add `origins` where the list is known complete; False (nothing added) where not."""

    def put(self, key: PdId, origins: Iterable[str], /) -> None:
        """A complete listing: the list is these origins (and those already known)."""

    def pop(self, key: PdId, /) -> None:
        """The list is no longer known complete (the origins known stay: made is made)."""


class OriginSets:
    """`Origins` in one memory table (a dict, or a bounded io/scratch.py `SpillTable`), as the
    replay state keeps them: a person's list known complete is a `set`, grown in place and put
    back (a bounded table keeps what it was given last); one no longer complete keeps the origins
    known as a `frozenset` (an origin rpd made or saw stays made: a later listing that lacks it,
    a record a user deleted, adds to them, never takes them away)."""

    __slots__ = ("_table",)

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self._table = table

    def get(self, key: PdId) -> frozenset[str] | None:
        """A copy (the table's set grows in place: a value read must not change after), asked
        only on merges and at start-up, never per track event (`has`)."""
        found = self._table.get(key)
        return frozenset(found) if type(found) is set else None

    def has(self, key: PdId, origin: str) -> bool | None:
        found = self._table.get(key)
        return origin in found if type(found) is set else None

    def add(self, key: PdId, origins: Iterable[str]) -> bool:
        found = self._table.get(key)
        if type(found) is not set:
            return False
        found.update(origins)
        self._table[key] = found
        return True

    def put(self, key: PdId, origins: Iterable[str]) -> None:
        found = self._table.get(key)
        self._table[key] = {*(found or ()), *origins}

    def pop(self, key: PdId) -> None:
        found = self._table.get(key)
        if found is not None:
            self._table[key] = frozenset(found)


# Makes one memory table of an `IdentityStore`: `dict`, or a mapping whose memory is bounded
# (io/scratch.py's SpillTable).
Tables = Callable[[], MutableMapping[Any, Any]]


def _in_memory(table: Any) -> MutableMapping[Any, Any] | None:
    """A bounded table's memory (io/scratch.py's SpillTable) while it holds all its keys: a dict
    that answers as the table does, with no call of ours. None for any other table."""
    hot = getattr(table, "hot", None)
    return None if hot is None or table.moved else hot


def table_get(table: Any, rebind: Callable[[], None]) -> Callable[[Any], Any]:
    """`table.get`; for a bounded table while all its keys are in memory, its memory's `get`
    (`_in_memory`), `rebind` called when keys first move out (to take `table.get` again)."""
    hot = _in_memory(table)
    if hot is None:
        lookup: Callable[[Any], Any] = table.get
    else:
        lookup = hot.get
        table.on_move = rebind
    return lookup


def settled(table: MutableMapping[Any, Any]) -> MutableMapping[Any, Any]:
    """A table nobody writes any more (the input's aliases once the first pass has read them),
    for reading: a bounded one that holds all its keys in memory as that memory (`_in_memory`),
    so that `in` and `get` (a plan's, about every event) are no call of ours; else as it is."""
    hot = _in_memory(table)
    return table if hot is None else hot


class IdentityStore:
    """What a run knows about identities, and the one place that takes in what an outcome taught
    (`learn`). Plans read it (as `IdentityStore`) by its lookups: `person_id(userId)` (after any
    merge it went through), `org_id(groupId)`, `lead_origins(origins_key)` (the `origin_id`s of
    a person's leads, deals, activities or notes; None when nobody has looked yet),
    `has_origin(origins_key, origin)` (whether one is there, None when nobody has looked yet),
    `person_org(person)` (its organization as last learned, in this run or, with the replay
    state, an earlier one), `org_this_run(person)` (as this run learned it: group links again a
    person an earlier run linked, Pipedrive may have moved it since), `pending_create`,
    `merging_into`, `held_back` (each asked only while `pending` or `holding` says there may be
    one), `survivor(person)` (the person merges known done moved it into, else itself) and
    `times_at((kind, record))` (field recency: None when no time is known); `merges` says
    whether two userIds may name one person. Its tables are made by `tables` (dicts by
    default; bounded ones for a CLI run, io/scratch.py), except those given in `stored`: the
    replay state (io/state.py) gives the rows of its file for all but this run's memberships and
    identities held back (in memory always), and `merges` and `pending` as the file says.
    """

    # One listing of the account's records of some kinds behind the cache (`list_origins`): set
    # on the instance, so it outlasts the replay state's re-reading of its namespace (__init__).
    _listed: Mapping[PdId, set[str]] = {}
    _listed_kinds: frozenset[str] = frozenset()
    # kind -> the origins on any of the account's records of that kind that listing saw, whoever
    # holds them now: a track whose origin is there is done, on whatever person (`list_origins`).
    account_origins: Mapping[str, frozenset[str]] = {}

    def __init__(
        self,
        tables: Tables = dict,
        stored: Mapping[str, Any] | None = None,
        *,
        merges: bool = False,
        pending: bool = False,
        rekeyed: bool = False,
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
        leads = given.get("leads")  # by core/index.py's origins_key
        self.leads: Origins = OriginSets(tables()) if leads is None else leads
        # Field recency: stored values are never changed in place, only replaced.
        self.times: Table = table("times")
        # Person: organization. `memberships` as last learned (with the replay state, its rows,
        # kept across runs); `run_memberships` as this run learned them (without the replay
        # state, the same table).
        self.memberships: Table = table("memberships")
        self.run_memberships = tables() if "memberships" in given else self.memberships
        # Identities held back (an event of theirs failed).
        self.held: MutableMapping[tuple[str, str], bool] = tables()
        # (kind, record): the identities it holds since an external id wrote one into its identity
        # field (Learned.holders), and whether one is known (the guard of `owned`).
        self.holders: Table = table("holders")
        # The userIds searched for along an alias chain this run and found on no person (most
        # recently noted last), at most UNFOUND: `find`'s walk along a chain takes one as not
        # found, no search, after the cache and a pending create (an event's own userId is
        # searched: another process may have made it, and its "not found" would create it
        # again), while nothing this run did may have made it findable:
        # a person learned for it (created, re-keyed or merged there, found, or forgotten: the
        # cache may lose it while Pipedrive holds it) or a create of it left pending takes it
        # out (`learn`). One forgotten for room is searched again. Never kept across runs:
        # another may have made it findable since.
        self.unfound: dict[str, None] = {}
        self.rekeyed = rekeyed
        # Whether `learn` ever wrote to `held` / the pending tables: the guards of the lookups every
        # event makes (a bounded table's truth value is a Python call; most runs write neither).
        self.holding = False
        self.pending = pending
        self.merges = merges  # a merge or re-key is known: two userIds may name one person
        self.person_id: Callable[[str], PdId | None]
        self.org_id: Callable[[str], PdId | None]
        self.lead_origins: Callable[[PdId], AbstractSet[str] | None]
        self.has_origin: Callable[[PdId, str], bool | None]
        self.person_org: Callable[[PdId], PdId | None]
        self.org_this_run: Callable[[PdId], PdId | None]
        # Field recency by (kind, record), with no call of ours: None when no time is known.
        self.times_at: Callable[[tuple[str, PdId]], Mapping[str, str] | None]
        self._bind()

    def _bind(self) -> None:
        """The lookups, the tables' own: no call of ours between a plan and its answer. Once a
        merge or re-key is known, `person_id` follows merges (`_survivor_of`)."""
        bind = self._bind
        self._person_of = table_get(self.persons, bind)
        self._merged_into = table_get(self.merged, bind)
        self.person_id = self._survivor_of if self.merges else self._person_of
        self.org_id = table_get(self.orgs, bind)
        listed = bool(self._listed_kinds)
        self.lead_origins = self._listed_origins if listed else self.leads.get
        self.has_origin = self._listed_has if listed else self.leads.has
        self.person_org = table_get(self.memberships, bind)
        self.org_this_run = table_get(self.run_memberships, bind)
        self.times_at = table_get(self.times, bind)

    def list_origins(self, origins: Mapping[PdId, set[str]], kinds: Iterable[str]) -> None:
        """Put one listing of the account's records of `kinds` (leads, deals, activities, notes)
        behind the cache: a person whose records of a listed kind the cache does not know has
        them in `origins` (by `origins_key`), so no track lists them again person by person
        (SPEC 5, leads). Every kind not listed is the cache's alone. `account_origins` holds
        them by kind, for a track whose person is not the one holding its record (SPEC 4:
        exactly once, with or without the state file): re-keyed, or merged, to another userId,
        its own person created again by a rerun without the state."""
        self._listed, self._listed_kinds = origins, frozenset(kinds)
        by_kind: dict[str, set[str]] = {}
        for key, found in origins.items():
            by_kind.setdefault(origins_kind(key), set()).update(found)
        self.account_origins = {kind: frozenset(found) for kind, found in by_kind.items()}
        self._bind()

    def _listed_origins(self, key: PdId) -> AbstractSet[str] | None:  # `lead_origins` once listed
        cached = self.leads.get(key)
        if cached is not None or origins_kind(key) not in self._listed_kinds:
            return cached
        return frozenset(self._listed.get(key, ()))

    def _listed_has(self, key: PdId, origin: str) -> bool | None:  # `has_origin` once listed
        cached = self.leads.has(key, origin)
        if cached is not None or origins_kind(key) not in self._listed_kinds:
            return cached
        return origin in self._listed.get(key, ())

    def _learn_origins(self, taught: Mapping[PdId, frozenset[str] | None]) -> None:
        """What an outcome taught of persons' records, by `origins_key` (a person created: each
        kind, one call for all): None, its list is no longer complete; `Added`, the origins of
        records it created, added only where the list is known complete (the account's listing
        included: then that list, with them, is the cache's); else a complete listing."""
        leads = self.leads
        for key, origins in taught.items():
            if origins is None:
                leads.pop(key)
            elif type(origins) is not Added:
                leads.put(key, origins)
            elif not leads.add(key, origins) and origins_kind(key) in self._listed_kinds:
                leads.put(key, self._listed.get(key, set()) | origins)

    def merging(self) -> None:
        """From now on, two userIds may name one person: `person_id` follows merges."""
        self.merges = True
        self._bind()

    def _survivor_of(self, user_id: str) -> PdId | None:  # `person_id` once merges are known
        person: PdId | None = self._person_of(user_id)
        if person is None or self._merged_into(person) is None:  # most: merged into none, no call
            return person
        return self.survivor(person)

    def survivor(self, person: PdId) -> PdId:
        """The person `person` is now, by the merges known done: itself when it was merged into
        none (a merge left unknown, `merging_into`, is not one)."""
        merged_into = self._merged_into
        for _ in range(MAX_MERGE_HOPS):  # u-a into u-b, then u-b into u-c: u-a is u-c
            into = merged_into(person)
            if into is None:
                return person
            person = into
        return person

    def cached_for(self, kind: str, key: str) -> PdId | None:
        """The record cached for identity `key` ("person": after merges, "org") that still holds
        it (`owned`). `known_ref`, once an event, reads the two itself behind `rekeyed`."""
        return self.owned(kind, key, self.person_id(key) if kind == "person" else self.org_id(key))

    def owned(self, kind: str, key: str, record: PdId | None) -> PdId | None:
        """`record`, cached for identity `key`, unless an external id has since written another
        identity into its identity field and no alias has named `key` its own since
        (Learned.holders): Pipedrive no longer finds it for `key`, so it is searched as a run
        without the cache would (None), where taking it would write `key`'s traits onto the
        other identity's record (issue: identify person_id 6 with userId u-9, then an identify
        of u-5, person 6's before). A person `key` is cached for, merged into `record` since,
        is asked the same: its mark went nowhere with the merge."""
        if record is None or not self.rekeyed:
            return record
        held = self.holders.get((kind, record))
        if held is not None and key not in held:
            return None
        cached = self._person_of(key) if kind == "person" and self.merges else record
        if cached is not None and cached != record:
            held = self.holders.get((kind, cached))
            return record if held is None or key in held else None
        return record

    def _note_unfound(self, out: Learned) -> None:
        """Take in the userIds `out` searched for in vain (`unfound`), unless it or an earlier
        event learned a person of one, or left a create of it pending: taken in after those, the
        note would say more than the search did (`_unnote` takes those out as they come)."""
        unfound = self.unfound
        for key in out.unfound:
            slot = ("person", key)
            if slot in out.identities or slot in out.pending_creates:
                continue
            if self.person_id(key) is not None or self.pending_create(*slot) is not None:
                continue
            unfound.pop(key, None)  # noted last: the last forgotten for room
            if len(unfound) >= UNFOUND:
                del unfound[next(iter(unfound))]
            unfound[key] = None

    def _unnote(self, out: Learned) -> None:
        """Out of `unfound`: each userId `out` learned a person of (found, created, re-keyed or
        merged there) or forgot one of (the cache may no longer say where it is), or left a
        create of pending: it may be found now, so it is searched again."""
        unfound = self.unfound
        for kind, key in (*out.identities, *out.pending_creates):
            if kind == "person":
                unfound.pop(key, None)

    def pending_create(self, kind: str, key: str) -> str | None:
        return self.pending_creates.get((kind, key)) if self.pending else None

    def merging_into(self, person_id: PdId) -> PdId | None:
        return self.pending_merges.get(person_id) if self.pending else None

    def held_back(self, kind: str, key: str) -> bool:
        return self.held.get((kind, key), False) if self.holding else False

    def learn(self, outcome: Outcome) -> None:
        """Take in what `outcome` taught (`apply`); most outcomes taught nothing."""
        if (out := outcome.learned) is not None:
            self.apply(out)

    def apply(self, out: Learned) -> None:
        """Take in what an event taught, or what a write about to be sent leaves pending
        (`left_pending`): the one set of rules, whether the tables are in memory or the replay
        state's (io/state.py, which makes this one batch)."""
        if recency := out.recency:  # its dicts are the outcome's own: stored, not copied
            times = self.times
            for record, written in recency.items():
                # `times_at` read each time: a write here may move keys out of a bounded table
                # for the first time, which binds it again (to a lookup that finds them there).
                before = self.times_at(record)
                times[record] = written if before is None else newest(before, written)
        identities, merged = out.identities, out.merged
        if out.unfound:  # an event that looked along a chain of aliases in vain
            self._note_unfound(out)
        # Most that teach something teach identities or field times only:
        if not (identities or merged or out.lead_origins or out.held_back or out.memberships
                or out.pending_creates or out.pending_merges):  # fmt: skip
            return
        if not self.merges and (merged or len(identities) > 1):
            # Two userIds name one person: an alias's merge, or its re-key (no merge).
            ids = [p for (kind, _), p in identities.items() if kind == "person" and p is not None]
            if merged or len(set(ids)) < len(ids):
                self.merging()
        if out.lead_origins:
            self._learn_origins(out.lead_origins)
        # The rest in this order, the one set of rules whether the tables are in memory or the
        # replay state's: identities held back; identities (a pending create of one whose record
        # is now known is settled); pending creates; memberships; merges; pending merges (a
        # merge known done is settled).
        pending_creates, pending_merges = out.pending_creates, out.pending_merges
        pending = self.pending or pending_creates or pending_merges  # truthy: may be pending
        if out.holders:
            self.rekeyed = True
            for record, held in out.holders.items():
                self.holders[record] = held
        if out.held_back:
            self.holding = True
            for slot in out.held_back:
                self.held[slot] = True
        if self.unfound:  # a person learned (or forgotten), a create left pending: findable
            self._unnote(out)
        for slot, pd_id in identities.items():
            table = self.persons if slot[0] == "person" else self.orgs
            if pd_id is None:
                table.pop(slot[1], None)
            else:
                table[slot[1]] = pd_id
                if pending and slot not in pending_creates:
                    self.pending_creates.pop(slot, None)
        if not (pending_creates or out.memberships or merged or pending_merges):
            return  # most outcomes teach identities and field times only
        tables: list[tuple[Any, Mapping[Any, Any]]] = [
            (self.pending_creates, pending_creates), (self.memberships, out.memberships),
            (self.merged, merged), (self.pending_merges, pending_merges),
        ]  # fmt: skip
        if self.run_memberships is not self.memberships:  # the replay state's: this run's too
            tables.append((self.run_memberships, out.memberships))
        for table, taught in tables:
            for name, value in taught.items():  # None forgets
                if value is None:
                    table.pop(name, None)
                else:
                    table[name] = value
        values = (*pending_creates.values(), *pending_merges.values())
        self.pending = self.pending or values.count(None) < len(values)  # one is not None
        for gone in merged if pending else ():
            self.pending_merges.pop(gone, None)

    def left_pending(self, request: ApiRequest, sent_at: str) -> Learned | None:
        """What a write about to be sent leaves pending until its event's outcome says how it
        went (for `apply`; None: nothing): its create, sent at `sent_at` unless one of that
        identity is pending already (reconciliation looks for records created at or after the
        first send), or its merge, into the survivor being sent. A state journals it before the
        write is sent (io/state.py `begin_write`): the in-flight row is found again only by this
        event, while after a kill -9 another event (another file) may meet the identity first,
        search, miss the new record (index lag) and create it again."""
        creates, merges = request.creates, request.merges
        if creates is not None and self.pending_create(*creates) is not None:
            creates = None  # a repeat keeps the first send's time
        if creates is None and merges is None:
            return None
        return Learned(
            pending_creates=EMPTY if creates is None else {creates: sent_at},
            pending_merges=EMPTY if merges is None else dict([merges]),
        )
