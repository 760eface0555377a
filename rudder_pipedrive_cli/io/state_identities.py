"""The replay state's rows as tables of its `IdentityStore` (core/identity_cache.py): identities,
merges, memberships and the creates and merges left pending (the identities table), lead origins,
field recency.

Each is a `Table` of one namespace: `get`, `__setitem__`, `pop`, written inside the state's open
batch. A read-only state (dry-run) never writes its file: what the run learns is kept in a bounded
memory table over the file's rows (None there: forgotten), so the store reads as one thing
whichever state it stands on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

import orjson

from rudder_pipedrive_cli.core.identity_cache import Table
from rudder_pipedrive_cli.core.protocol import PdId
from rudder_pipedrive_cli.core.recency import newest
from rudder_pipedrive_cli.io.scratch import Lru, Spill
from rudder_pipedrive_cli.io.state_schema import (
    HOLDER,
    MEMBER,
    MERGED,
    RECENCY_TABLE,
    decode_id,
    encode_id,
    pending_kinds,
)
from rudder_pipedrive_cli.io.state_store import Store

_UNKNOWN: Any = object()  # not in memory: ask the file


class _Rows:
    """What the three tables share: the store, and the memory a read-only state learns into."""

    def __init__(self, store: Store, spill: Spill) -> None:
        self._store = store
        self._learned: MutableMapping[Any, Any] | None = spill.table() if store.readonly else None

    def _memory(self, key: Any) -> Any:
        """What this run learned of `key` on a read-only state (None: forgotten), else _UNKNOWN."""
        learned = self._learned
        return _UNKNOWN if learned is None else learned.get(key, _UNKNOWN)


class IdentityRows(_Rows):
    """One kind of row of the identities table: the person of a userId ("person"), the
    organization of a groupId ("org"), the person a merged one went into (MERGED), a person's
    organization (MEMBER), the send time of a create left unknown (PENDING_CREATE, by its
    identity) and the person a merge left unknown was into (PENDING_MERGE, by the person
    merged), SPEC 5. `row` gives a key's (kind, key) row.
    Answers go through a bounded read cache that every write keeps true (the state is its
    namespace's only writer)."""

    def __init__(
        self,
        store: Store,
        spill: Spill,
        cache_entries: int,
        row: Callable[[Any], tuple[str, str]],
        codec: tuple[Callable[[Any], str], Callable[[str], Any]] = (encode_id, decode_id),
    ) -> None:
        super().__init__(store, spill)
        self._row = row
        self._encode, self._decode = codec  # a value as its row's text, and back
        self._cache: Lru[tuple[str, str], Any] = Lru(cache_entries)

    def get(self, key: Any, default: Any = None) -> Any:
        slot = self._row(key)
        found = self._memory(slot)
        if found is _UNKNOWN:
            found = self._cache.get(slot, _UNKNOWN)
        if found is _UNKNOWN:
            row = self._store.row(
                "SELECT pd_id FROM identities WHERE ns = ? AND kind = ? AND key = ?", *slot
            )
            found = None if row is None else self._decode(row[0])
            self._cache.put(slot, found)
        return default if found is None else found

    def __setitem__(self, key: Any, value: Any) -> None:
        slot, store = self._row(key), self._store
        if self._learned is not None:
            self._learned[slot] = value
            return
        self._cache.put(slot, value)
        with store.mutex:
            if value is None:
                store.db.execute(
                    "DELETE FROM identities WHERE ns = ? AND kind = ? AND key = ?",
                    (store.ns, *slot),
                )
                return
            store.db.execute(
                "INSERT OR REPLACE INTO identities (ns, kind, key, pd_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (store.ns, *slot, self._encode(value), store.now()),
            )

    def pop(self, key: Any, default: Any = None) -> Any:
        found = self.get(key, default)
        self[key] = None
        return found


def identity_rows(store: Store, spill: Spill, cache_entries: int) -> dict[str, Table]:
    """The identities table as the `IdentityStore` tables it holds, by the store's names."""
    pending_create, pending_merge = pending_kinds(store.schema)
    rows = {
        "persons": lambda user_id: ("person", user_id),
        "orgs": lambda group_id: ("org", group_id),
        "merged": lambda person: (MERGED, encode_id(person)),
        "memberships": lambda person: (MEMBER, encode_id(person)),
        "pending_creates": lambda slot: (pending_create[slot[0]], slot[1]),
        "pending_merges": lambda person: (pending_merge, encode_id(person)),
    }
    tables: dict[str, Table] = {
        name: IdentityRows(store, spill, cache_entries, row) for name, row in rows.items()
    }
    tables["holders"] = IdentityRows(store, spill, cache_entries, holder_row, HELD)
    return tables


def holder_row(slot: tuple[str, PdId]) -> tuple[str, str]:
    return HOLDER[slot[0]], encode_id(slot[1])


# A record's identities (Learned.holders) as its row's text, a JSON array, and back.
HELD = (lambda held: orjson.dumps(held).decode(), lambda text: tuple(orjson.loads(text)))


def has_kind(store: Store, *kinds: str) -> bool:
    marks = ", ".join("?" for _ in kinds)
    sql = f"SELECT 1 FROM identities WHERE ns = ? AND kind IN ({marks}) LIMIT 1"
    return store.row(sql, *kinds) is not None


def has_pending(store: Store) -> bool:
    """Whether a create or merge is pending: only then is one looked for."""
    pending_create, pending_merge = pending_kinds(store.schema)
    return has_kind(store, *pending_create.values(), pending_merge)


def has_holders(store: Store) -> bool:
    """Whether an external id wrote an identity into a record (`IdentityStore.owned`)."""
    return has_kind(store, *HOLDER.values())


def has_merges(store: Store) -> bool:
    """Whether two userIds may name one person: a merge is known, or a person is cached for two
    userIds (an alias re-keyed it)."""
    if has_kind(store, MERGED):
        return True
    sql = (
        "SELECT 1 FROM identities WHERE ns = ? AND kind = 'person' "
        "GROUP BY pd_id HAVING COUNT(*) > 1 LIMIT 1"
    )
    return store.row(sql) is not None


class LeadRows(_Rows):
    """The lead_origins and leads_listed tables (`IdentityStore.leads`, core/identity_cache.py's
    `Origins`): the `origin_id`s of the records (leads, deals, activities, notes) a person's
    listings found or rpd created, by core/index.py's `origins_key`, for persons whose listing is
    complete (leads_listed). `has` and `add` cost one row whatever the person's number of
    origins. On a read-only state, what the run learned is a set per person in memory over the
    file's rows (a frozenset: no longer complete, the origins learned staying true, as the
    file's do)."""

    def _listed(self, person: str) -> bool:
        if self._store.outdated:  # its marks are to be forgotten (state_schema.FORGOTTEN)
            return False
        sql = "SELECT 1 FROM leads_listed WHERE ns = ? AND person_id = ?"
        return self._store.row(sql, person) is not None

    def get(self, person_id: PdId, default: Any = None) -> Any:
        store, person = self._store, encode_id(person_id)
        learned = self._memory(person)
        if type(learned) is frozenset:
            return default  # no longer complete
        with store.mutex:
            if learned is _UNKNOWN and not self._listed(person):
                return default
            stored = frozenset(
                row[0]
                for row in store.db.execute(
                    "SELECT origin_id FROM lead_origins WHERE ns = ? AND person_id = ?",
                    (store.ns, person),
                )
            )
        return stored if learned is _UNKNOWN else stored | learned

    def has(self, person_id: PdId, origin: str) -> bool | None:
        store, person = self._store, encode_id(person_id)
        learned = self._memory(person)
        if type(learned) is frozenset:
            return None
        if learned is not _UNKNOWN and origin in learned:
            return True
        with store.mutex:  # one row: (listed complete, origin there)
            listed, there = store.db.execute(
                "SELECT EXISTS (SELECT 1 FROM leads_listed WHERE ns = ?1 AND person_id = ?2), "
                "EXISTS (SELECT 1 FROM lead_origins "
                "WHERE ns = ?1 AND person_id = ?2 AND origin_id = ?3)",
                (store.ns, person, origin),
            ).fetchone()
        if learned is _UNKNOWN and (store.outdated or not listed):
            return None
        return bool(there)

    def add(self, person_id: PdId, origins: Iterable[str]) -> bool:
        store, person = self._store, encode_id(person_id)
        if self._learned is not None:
            learned = self._memory(person)
            if type(learned) is frozenset:
                return False
            if learned is _UNKNOWN:
                if not self._listed(person):
                    return False
                learned = set()
            learned.update(origins)
            self._learned[person] = learned
            return True
        with store.mutex:
            if not self._listed(person):
                return False
            self._insert(person, origins)
        return True

    def put(self, person_id: PdId, origins: Iterable[str]) -> None:
        """A complete listing: the person's stored origins stay (true still), these join them."""
        store, person = self._store, encode_id(person_id)
        if self._learned is not None:
            learned = self._memory(person)
            self._learned[person] = {*(() if learned is _UNKNOWN else learned), *origins}
            return
        with store.mutex:
            store.db.execute(
                "INSERT OR IGNORE INTO leads_listed (ns, person_id) VALUES (?, ?)",
                (store.ns, person),
            )
            self._insert(person, origins)

    def _insert(self, person: str, origins: Iterable[str]) -> None:
        store = self._store
        store.db.executemany(
            "INSERT OR IGNORE INTO lead_origins (ns, person_id, origin_id) VALUES (?, ?, ?)",
            [(store.ns, person, origin) for origin in sorted(origins)],
        )

    def pop(self, person_id: PdId) -> None:
        """The person's list is no longer complete, while its stored origins stay true."""
        store, person = self._store, encode_id(person_id)
        if self._learned is not None:
            learned = self._memory(person)
            self._learned[person] = frozenset(() if learned is _UNKNOWN else learned)
            return
        with store.mutex:
            store.db.execute(
                "DELETE FROM leads_listed WHERE ns = ? AND person_id = ?", (store.ns, person)
            )


class RecencyRows(_Rows):
    """The field recency table (`IdentityStore.times`, core/recency.py): per record, ("person" or
    "org", id), and field, the time of the event whose value rpd last wrote. A file older than
    the table reads as knowing no times."""

    def __init__(self, store: Store, spill: Spill) -> None:
        super().__init__(store, spill)
        self._stored = store.has_table(RECENCY_TABLE)

    def get(self, key: tuple[str, PdId], default: Any = None) -> Any:
        kind, record = key[0], encode_id(key[1])
        store, found = self._store, {}
        if self._stored:
            with store.mutex:
                found = dict(
                    store.db.execute(
                        f"SELECT field, stamp FROM {RECENCY_TABLE} "
                        "WHERE ns = ? AND kind = ? AND pd_id = ?",
                        (store.ns, kind, record),
                    ).fetchall()
                )
        learned = self._memory((kind, record))
        if learned is not _UNKNOWN:
            found = newest(found, learned)
        return found or default

    def __setitem__(self, key: tuple[str, PdId], times: Mapping[str, str]) -> None:
        """Keep the later time of each field."""
        kind, record, store = key[0], encode_id(key[1]), self._store
        if self._learned is not None:
            self._learned[(kind, record)] = times
            return
        with store.mutex:
            store.db.executemany(
                f"INSERT INTO {RECENCY_TABLE} (ns, kind, pd_id, field, stamp) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ns, kind, pd_id, field) "
                "DO UPDATE SET stamp = max(stamp, excluded.stamp)",
                [(store.ns, kind, record, name, at) for name, at in times.items()],
            )
