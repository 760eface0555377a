"""The identity index (SPEC 5, issue 15): identities resolved by listing the account, not by
searching each one. Pure: listing pages in, identity-to-id maps out.

An itemSearch costs 20 API tokens and Pipedrive allows 10 a 2 s window; a page of 500 persons
(`GET /api/v2/persons?custom_fields=USER_ID_FIELD&limit=500`) costs 10, in the general window.
The index maps each identity value (a string, SPEC 4) to the ids of the records holding it; two
records with one value are ambiguous as two search hits are (the plans take the lowest id and
warn). Its rows live in an `IndexRows`: `MemoryIndexRows` for a run without a state file, the
state file's own table otherwise (io/state_index.py), so later runs reuse it.

Freshness: the index must be as safe as a search (whose own index lags by seconds): "not in
the index" as "not found", and a record found in it as one found, not one someone has since given
another identity. So a lookup, found or not, when the index was last refreshed more than
`MAX_AGE_S` ago (on this run's clock), refreshes it first with `updated_since` (on Pipedrive's
clock: the send time of the listing before, as reconciliation has it) and looks again. Records
rpd creates go in as they are made (`learn`); a merged-away person goes out.

Unlike the identity cache (core/identity_cache.py), which plans only read, a plan's refresh feeds
the index at once: it mirrors Pipedrive, not this run's decisions, so what a listing says holds
whichever event asked for it, and the events that come after should not list it again.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any, Literal, Protocol

from rudder_pipedrive_cli.core.events import Event, identity_value
from rudder_pipedrive_cli.core.fields import text
from rudder_pipedrive_cli.core.identity_cache import TRACK_KINDS as TRACK_KINDS
from rudder_pipedrive_cli.core.identity_cache import (
    IdentityStore,
    Tables,
    Walked,
    alias_into,
    origins_kind,
    settled,
    table_get,
)
from rudder_pipedrive_cli.core.identity_cache import origins_key as origins_key
from rudder_pipedrive_cli.core.intake import DONE
from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome, PdId
from rudder_pipedrive_cli.core.rules import TrackRules

Way = Literal["search", "index"]
MAX_AGE_S = 10.0  # a refresh before a create when the last one is older than this (SPEC 5)
PAGE = 500  # records a listing page holds at most
# Unknown account size: from this many identities to resolve on, the index pays off (SPEC 5).
AUTO_FROM = 200
SEARCH_TOKENS = 20
PAGE_TOKENS = 10  # a page of persons or organizations
ORIGIN_PREFIX = "rpd:"


def identity_of(record: Mapping[str, Any], field_key: str) -> str | None:
    """The identity value a listed record holds in `field_key`, as a string (SPEC 4); None when
    it holds none. Some field types answer `{"value": ...}`. Text is taken as it is, spaces and
    all, as itemSearch's exact match takes it: a record keyed 'u-1 ' is not u-1's by search, so
    not by index either (the way taken must not change which person is updated)."""
    custom = record.get("custom_fields")
    value = custom.get(field_key) if isinstance(custom, Mapping) else None
    if isinstance(value, Mapping):
        value = value.get("value")
    if type(value) is str:
        return value or None
    return identity_value(value)


def record_key(value: Any) -> PdId | None:
    """An id from an answer: ints stay ints, dry-run placeholders stay strings."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return value


def identity_rows(
    records: Iterable[Mapping[str, Any]], field_key: str
) -> list[tuple[PdId, str | None]]:
    """(id, identity value or None) of each listed record that has an id. A record the listing
    shows deleted (`is_deleted`, as an updated_since listing after a delete may) holds none: a
    search never finds it, so neither may the index."""
    rows: list[tuple[PdId, str | None]] = []
    for record in records:
        found = record_key(record.get("id"))
        if found is not None:
            deleted = record.get("is_deleted") is True
            rows.append((found, None if deleted else identity_of(record, field_key)))
    return rows


class IndexRows(Protocol):
    """Where an index's rows live: one row per record (kind, id) with its identity value."""

    def ids(self, kind: str, value: str) -> list[PdId]:
        """The ids of the records holding `value`, lowest first."""

    def put(self, kind: str, rows: Iterable[tuple[PdId, str | None]]) -> None:
        """Each record's current value (None: it holds none, so it is dropped)."""

    def add(self, kind: str, record: PdId, value: str) -> None:
        """A record rpd made: kept unless the record is known already."""

    def drop(self, kind: str, record: PdId) -> None: ...

    def since(self, kind: str, field_key: str) -> str | None:
        """The Pipedrive-clock time from which a refresh of the index of `field_key` lists
        records; None when no build of it for that field completed."""

    def mark(self, kind: str, field_key: str, since: str) -> None:
        """The index of `kind` holds what `field_key` held as listed from `since` on ("": a
        build of it has begun, not ended)."""

    def forget(self, kind: str) -> None:
        """Drop every row of `kind` (a build starts from none)."""

    def size(self, kind: str) -> int: ...


class MemoryIndexRows:
    """An index kept for one run (no state file), in tables that `tables` makes: dicts by
    default, bounded ones for a CLI run (io/scratch.py's SpillTable), so an account of millions
    of records keeps a fixed budget in memory. Per kind: each record's value, and each value's
    ids (a tuple, lowest first: a stored value is replaced, never changed in place)."""

    def __init__(self, tables: Tables = dict) -> None:
        self.tables = tables
        self.kinds: dict[str, _KindRows] = {}
        self.marks: dict[str, tuple[str, str]] = {}

    def _rows(self, kind: str) -> _KindRows:
        rows = self.kinds.get(kind)
        if rows is None:
            rows = self.kinds[kind] = _KindRows(self.tables(), self.tables())
        return rows

    def ids(self, kind: str, value: str) -> list[PdId]:
        rows = self.kinds.get(kind)
        return [] if rows is None else list(rows.by_value.get(value, ()))

    def put(self, kind: str, rows: Iterable[tuple[PdId, str | None]]) -> None:
        held = self._rows(kind)
        for record, value in list(rows):
            held.drop(record)
            if value is not None:
                held.values[record] = value
                ids = list(held.by_value.get(value, ()))
                insort(ids, record, key=id_order)  # not a sort each time: a value many hold
                held.by_value[value] = tuple(ids)
                held.count += 1

    def add(self, kind: str, record: PdId, value: str) -> None:
        if record not in self._rows(kind).values:
            self.put(kind, [(record, value)])

    def drop(self, kind: str, record: PdId) -> None:
        rows = self.kinds.get(kind)
        if rows is not None:
            rows.drop(record)

    def since(self, kind: str, field_key: str) -> str | None:
        mark = self.marks.get(kind)
        return mark[1] if mark is not None and mark[0] == field_key and mark[1] else None

    def mark(self, kind: str, field_key: str, since: str) -> None:
        self.marks[kind] = (field_key, since)

    def forget(self, kind: str) -> None:
        rows = self.kinds.get(kind)
        if rows is not None:
            rows.values.clear()
            rows.by_value.clear()
            rows.count = 0

    def size(self, kind: str) -> int:
        rows = self.kinds.get(kind)
        return 0 if rows is None else rows.count


@dataclass(slots=True)
class _KindRows:
    """One kind's rows in a `MemoryIndexRows`; `count` is how many records hold a value."""

    values: MutableMapping[PdId, str]
    by_value: MutableMapping[str, tuple[PdId, ...]]
    count: int = 0

    def drop(self, record: PdId) -> None:
        old = self.values.pop(record, None)
        if old is None:
            return
        self.count -= 1
        ids = tuple(r for r in self.by_value.get(old, ()) if r != record)
        if ids:
            self.by_value[old] = ids
        else:
            self.by_value.pop(old, None)


def id_order(record: PdId) -> tuple[int, int, str]:
    return (0, record, "") if isinstance(record, int) else (1, 0, record)


@dataclass(slots=True)
class IndexStats:
    """What the index cost a run: listing pages, and how many of its listings were refreshes."""

    pages: int = 0
    refreshes: int = 0
    lead_pages: int = 0
    # Pages of the account's deals, activities and notes listed (by kind), when they were.
    track_pages: dict[str, int] = field(default_factory=dict)


class IndexWait(ApiRequest):
    """Not sent to Pipedrive: a lookup's wait for the listing of `kind` in flight
    (`IdentityIndex.awaited`), answered by the shell that runs plans side by side once a listing
    of that kind ends or fails, or at `until` (the index's clock), whichever comes first."""

    __slots__ = ("kind", "until")

    def __init__(self, kind: str, until: float, stage: str, note: str) -> None:
        super().__init__("GET", "", "wait", stage, None, None, note)
        self.kind, self.until = kind, until


class IdentityIndex:
    """The index of the kinds ("person", "org") whose identity field is given in `fields`."""

    def __init__(
        self,
        rows: IndexRows,
        fields: Mapping[str, str],
        *,
        clock: Callable[[], float],
    ) -> None:
        self.rows = rows
        self.fields = {kind: key for kind, key in fields.items() if key}
        self.clock = clock
        self.stats = IndexStats()
        # This run's clock when the last listing of each kind that ended was started, and when
        # the last one was started, ended or not.
        self._listed_at: dict[str, float] = {}
        self._begun_at: dict[str, float] = {}
        # Told the kind of each listing that ends (or fails): the shell that runs plans side by
        # side and answers their `IndexWait` (http/index_waits.py). None: no plan waits (dry-run
        # and the synchronous driver run one plan at a time, so none is ever in flight).
        self.notify: Callable[[str], None] | None = None

    def covers(self, kind: str) -> bool:
        return self.since(kind) is not None

    def lookup(self, kind: str, key: str) -> list[PdId]:
        return self.rows.ids(kind, key)

    def since(self, kind: str) -> str | None:
        """Where a refresh of `kind` lists from (Pipedrive's clock); None: build it first."""
        field_key = self.fields.get(kind)
        return None if field_key is None else self.rows.since(kind, field_key)

    def due(self, kind: str, *, found: bool = False) -> bool:
        """Whether a refresh of `kind` is due: the last listing of it that ended was started
        more than MAX_AGE_S ago (or by an earlier run). While one is in flight, another event
        that misses waits for it where a shell answers waits (`awaited`), else makes its own
        (it must not take an older index as "not found"), at most once per event. A lookup
        that `found` its identity, in an index this run listed, takes it while a listing begun
        under MAX_AGE_S ago is in flight: a record someone re-keyed meanwhile is rare, where
        each event in flight listing again what that one lists (all rpd updated since) is not."""
        if not self.covers(kind):
            return False
        last = self._listed_at.get(kind)
        if last is not None and found:
            last = max(last, self._begun_at.get(kind, last))
        return last is None or self.clock() - last > MAX_AGE_S

    def awaited(self, kind: str) -> float | None:
        """Until when (this run's clock) a lookup that misses, its refresh due, may wait for the
        listing of `kind` in flight instead of making its own: one begun after the last that
        ended, under MAX_AGE_S ago, so that once it ends the index is as fresh as `due` asks
        (the lookup asks `due` again then; a record made after that listing began is left to
        the next refresh, as after any listing). None: no such listing, or no shell waits."""
        begun, listed = self._begun_at.get(kind), self._listed_at.get(kind)
        if self.notify is None or begun is None or (listed is not None and begun <= listed):
            return None
        until = begun + MAX_AGE_S
        return until if self.clock() < until else None

    def begin(self, kind: str, started: float) -> str | None:
        """Start a listing of `kind` at `started` (this run's clock): a refresh from the time
        returned when the index of its field was built, else (None) a build, which starts from no
        rows."""
        self._begun_at[kind] = max(started, self._begun_at.get(kind, started))
        since = self.since(kind)
        if since is None:
            self.rows.mark(kind, self.fields[kind], "")
            self.rows.forget(kind)
        return since

    def take(self, kind: str, records: Iterable[Mapping[str, Any]]) -> None:
        """One page of a listing of `kind`."""
        self.rows.put(kind, identity_rows(records, self.fields[kind]))
        self.stats.pages += 1

    def end(self, kind: str, sent_at: str, *, refresh: bool, started: float) -> None:
        """A listing of `kind` whose first page was sent at `sent_at` on Pipedrive's clock is
        complete: the next refresh lists from then on (without a send time, a refresh keeps
        the time it listed from, and a build does not count as made)."""
        if sent_at:
            self.rows.mark(kind, self.fields[kind], sent_at)
        self._listed_at[kind] = max(started, self._listed_at.get(kind, started))
        self.stats.refreshes += refresh
        if self.notify is not None:
            self.notify(kind)

    def failed(self, kind: str, started: float) -> None:
        """The listing of `kind` begun at `started` failed: a lookup waits for it no more."""
        if self._begun_at.get(kind) == started:
            listed = self._listed_at.get(kind)
            if listed is None:
                del self._begun_at[kind]
            else:
                self._begun_at[kind] = listed
        if self.notify is not None:
            self.notify(kind)

    def learn(self, outcome: Outcome) -> None:
        """What an event made: its new records go in, persons merged away go out, and a record
        an update gave another identity is found by that one only.

        The `Learned` the identity cache applies (`IdentityStore.apply`), by its own rules: the
        cache keeps which record this run takes for an identity (overwritten, forgotten on None,
        a pending create settled), the index what each record's identity field holds in
        Pipedrive. So an identity resolved to a record it lists already teaches it nothing (an
        alias's re-key names a person under two userIds; the one written is in `updates`), a
        forgotten one (None) names no record (`find` drops a gone one once searched), a merge
        deletes the person merged away (the cache maps it to the survivor), and the pending,
        held-back, membership, origin, recency and holder tables have no row here."""
        if (learned := outcome.learned) is None:
            return
        for (kind, key), record in learned.identities.items():
            if record is not None and self.covers(kind):
                self.rows.add(kind, record, key)
        for person in learned.merged:
            self.rows.drop("person", person)
        for kind, record, body in learned.updates:
            custom = body.get("custom_fields")
            if isinstance(custom, Mapping) and self.covers(kind):
                value = identity_value(custom.get(self.fields[kind]))
                if value is not None:
                    self.rows.put(kind, [(record, value)])


# --- choosing a way (auto) and estimating both -------------------------------------------------


def pages(records: int) -> int:
    """Listing pages for that many records (an empty listing is one page too)."""
    return max(1, math.ceil(records / PAGE))


def choose(unknown: int, account: int | None) -> Way:
    """`auto`'s choice for `unknown` identities to resolve (SPEC 5): the index when searching
    them would cost more tokens than listing the account (`account` records, when known), or,
    the account's size unknown, from AUTO_FROM identities on."""
    if account is None:
        return "index" if unknown >= AUTO_FROM else "search"
    return "index" if unknown * SEARCH_TOKENS > pages(account) * PAGE_TOKENS else "search"


def worth_counting(account: int | None) -> int:
    """How many unknown identities settle `choose` for an account of that size: counting
    further changes nothing."""
    if account is None:
        return AUTO_FROM
    return pages(account) * PAGE_TOKENS // SEARCH_TOKENS + 1


def account_listing_pays(persons_to_list: int, account_persons: int) -> bool:
    """Whether one listing of the account's records of a kind (leads and archived leads, or
    deals, activities or notes) costs fewer API tokens than listing the records of
    `persons_to_list` persons one by one, a page each. The account's record count is not known
    before listing: it is taken as about one a person. A page costs the same either way (the
    same endpoints' `x-token-cost`), so the pages decide."""
    return persons_to_list > pages(account_persons)


def rpd_origins(
    records: Iterable[Mapping[str, Any]], origins: Callable[[Mapping[str, Any]], set[str]]
) -> dict[PdId, set[str]]:
    """person id -> the origins rpd gave the person's records (`rpd:` + event identity), read
    from each record by `origins`; a record with none, or with no person, is not kept."""
    found: dict[PdId, set[str]] = {}
    for record in records:
        person = record_key(record.get("person_id"))
        mine = {o for o in origins(record) if o.startswith(ORIGIN_PREFIX)}
        if mine and person is not None:
            found.setdefault(person, set()).update(mine)
    return found


def counts_by_kind(rows: Iterable[tuple[PdId, int]]) -> dict[str, int]:
    """Counts kept per `origins_key` (persons listed, origins known), added up by kind: lead,
    deal, activity, note, each present."""
    counts = dict.fromkeys(("lead", *TRACK_KINDS), 0)
    for key, count in rows:
        counts[origins_kind(key)] += count
    return counts


# --- the first pass over the input (auto) -----------------------------------------------------

# Distinct identities a first pass keeps to count; past this many the count is a lower bound
# (every choice is made long before), and memory stays bounded.
SURVEY_CAP = 100_000
# The external ids that name a person: identify needs no user_id_field for one (SPEC 4).
PERSON_EXTERNAL_IDS = frozenset({"person_id", "curr_person_id", "prev_person_id"})


@dataclass(slots=True)
class Survey:
    """What send's first pass over its files counts for `auto` (SPEC 5): the userIds and groupIds
    no external id resolves (of the events that resolve any: not a page, nor a track its rule
    skips), and the userIds of track events by the kind of record their rule
    creates (whose leads, deals, activities or notes may need listing). Also whether any of those
    events that the journal (`journal_status`, the replay state's) has not done names every
    person it looks up by an external id (`external`): with user_id_field unset, send sends
    them, and refuses to start without one (every event would fail). Each count keeps at most
    `cap` identities (dry-run's, 0: only `external`).
    An alias's previousId is kept apart (`aliased`, with its alias events' ids): one that never
    was a person (an anonymousId) is never resolved, and `unknown` counts it only while one of
    those events is not done (`alias_journal`, asked after the pass, for those few only), so a
    rerun with nothing to do does not refresh the index for it. Those ids are kept up to `cap`
    in all (`alias_ids`), as each count keeps its identities: they grew with the input (an
    anonymousId aliased at each login: 400,000 aliases of 1,000 previousIds kept 400,000 ids).
    A previousId whose ids no longer fit keeps None, its aliases taken as not done (counted
    while no person has it: at worst a refresh of the index for nothing)."""

    rules: TrackRules = field(default_factory=TrackRules)
    persons: set[str] = field(default_factory=set)
    orgs: set[str] = field(default_factory=set)
    tracked: dict[str, set[str]] = field(default_factory=dict)
    external: bool = False
    cap: int = SURVEY_CAP
    journal_status: Callable[[str], str | None] | None = None
    aliased: dict[str, list[str] | None] = field(default_factory=dict)
    alias_journal: Callable[[str], str | None] | None = None
    alias_ids: int = 0  # the ids `aliased` keeps: at most `cap`

    def add(self, event: Event) -> None:
        kind = None
        if event.type == "track":  # what it creates by the first rule its name matches
            name = text(event.raw.get("event"))
            rule = None if name is None else self.rules.match(name)
            kind = "lead" if rule is None else rule.create
            if name is None or kind == "skip":  # unnamed (failed), or skipped by its rule
                return
        elif event.type not in ("identify", "group", "alias"):  # page, screen: skipped
            return
        external = event.external
        user = event.user_id
        if "person_id" in external or "curr_person_id" in external:
            user = None
        # Only an alias looks its previousId up.
        previous = event.previous_id if event.type == "alias" else None
        if "prev_person_id" in external:
            previous = None
        if (
            not self.external
            and user is None
            and previous is None
            and not PERSON_EXTERNAL_IDS.isdisjoint(external)
        ):  # no userId to look up: it goes without user_id_field, unless an earlier run did it
            status = self.journal_status
            self.external = status is None or status(event.id) not in DONE
        group = event.group_id if event.type == "group" and "org_id" not in external else None
        for found, into in ((user, self.persons), (group, self.orgs)):
            if found is not None and len(into) < self.cap:
                into.add(found)
        if previous is not None and (previous in self.aliased or len(self.aliased) < self.cap):
            self._aliased(previous, event.id)
        if kind is not None and user is not None:
            tracked = self.tracked.setdefault(kind, set())
            if len(tracked) < self.cap:
                tracked.add(user)

    def _aliased(self, previous: str, id: str) -> None:
        """Keep the id of an alias of `previous`, while the ids kept are fewer than `cap`; else
        none of its aliases' ids (None: not all known to be done)."""
        aliased = self.aliased
        ids = aliased.get(previous, [])
        if ids is None:
            return
        if self.alias_ids < self.cap:
            ids.append(id)
            aliased[previous] = ids
            self.alias_ids += 1
        else:
            aliased[previous] = None
            self.alias_ids -= len(ids)

    def unknown(self, kind: str, known: IdentityStore, enough: int | None = None) -> int:
        """The identities of `kind` the identity cache does not resolve either, counted up to
        `enough` (a choice needs no more); a previousId only an alias names, only while one of
        its aliases is not done."""
        cached = known.person_id if kind == "person" else known.org_id
        unknown: Iterable[str] = (key for key in self.orgs if cached(key) is None)
        if kind == "person":
            unknown = chain(
                (key for key in self.persons if cached(key) is None),
                (
                    key
                    for key in self.aliased
                    if key not in self.persons and cached(key) is None and not self.done(key)
                ),
            )
        return sum(1 for _ in islice(unknown, enough))

    def done(self, previous: str) -> bool:
        """Whether the journal holds every alias naming `previous` as done."""
        status, ids = self.alias_journal, self.aliased[previous]
        return status is not None and ids is not None and all(status(id) in DONE for id in ids)


def input_aliases(
    items: Iterable[Event],
    survey: Survey | None = None,
    aliases: MutableMapping[str, str] | None = None,
    direct: MutableMapping[str, list[str]] | None = None,
) -> MutableMapping[str, str]:
    """Where the alias events among `items` that will be planned lead each userId they name
    (`alias_into`: every alias of a previousId, in input order, and chains of them): what send's
    first pass over its files gives the plans (PlanConfig.aliases), so a replay without the
    state duplicates nothing an alias moved.
    The same pass counts, in `survey`, the identities `--identities auto` weighs. The aliases go
    into `aliases` (a new dict by default; for the CLI, the replay state's, which a resumed run
    reads those of its finished objects from, else a bounded table), returned to be read from
    then on (`settled`: a bounded table that holds them all in memory, as that memory).
    `direct`, when given, gets each previousId's own aliases, in input order, whatever
    `alias_into` links (PlanConfig.aliases_of, `settled` by the caller): a list grown in place and
    put back (a bounded table keeps what it was given last), not a tuple copied (100,000 aliases of
    one previousId were 5e9 userIds copied). Read with `table_get`, a bounded table's memory while
    it holds all its keys, and noted here, not in a function of its own: its `get` and the call
    were a fifth of what noting an alias cost (2,000 aliases, each of its own previousId)."""
    aliases = {} if aliases is None else aliases
    walked = Walked()
    own_get: Callable[[str], list[str] | None] = dict[str, list[str]]().get  # `direct`'s, given one

    def bind() -> None:
        nonlocal own_get
        own_get = table_get(direct, bind)

    if direct is not None:
        bind()
    for item in items:
        event = to_plan(item)
        if event is None:
            continue
        if survey is not None:
            survey.add(event)
        if event.type == "alias" and event.previous_id is not None and event.user_id is not None:
            alias_into(aliases, event.previous_id, event.user_id, walked)
            if direct is not None:  # each previousId's own aliases (`ahead_of`)
                own = own_get(event.previous_id)
                if own is None:
                    direct[event.previous_id] = [event.user_id]
                else:
                    own.append(event.user_id)
                    direct[event.previous_id] = own
    return settled(aliases)


def to_plan(item: Event) -> Event | None:
    """The event `item` is when it will be planned: not input that is not an event, nor an event
    a filter decided."""
    return item.event if item.decided is None else None


def surveyed(items: Iterable[Event], survey: Survey) -> Iterator[Event]:
    """`items` as they come, those that will be planned noted in `survey` on their way: dry-run
    notes, as it plans them, what send's first pass does (`input_aliases`)."""
    for item in items:
        if (event := to_plan(item)) is not None:
            survey.add(event)
        yield item
