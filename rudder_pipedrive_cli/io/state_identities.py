"""The identities table of the state file, and the creates and merges it holds as pending."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from rudder_pipedrive_cli.core.identity_cache import links_persons, taught
from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome, PdId
from rudder_pipedrive_cli.io.scratch import Lru, Spill
from rudder_pipedrive_cli.io.state_schema import (
    MERGED,
    PENDING_CREATE,
    PENDING_MERGE,
    decode_id,
    encode_id,
)
from rudder_pipedrive_cli.io.state_store import Store

Row = tuple[str, str, PdId | None]  # kind, key, what the table will say (None: no row)
_UNKNOWN: Any = object()  # not in the cache or the overlay: ask the file


def row_of(table: str, key: Any) -> tuple[str, str]:
    """The (kind, key) of the identities row holding an entry of one of `taught`'s tables."""
    if table == "pending_creates":
        return PENDING_CREATE[key[0]], key[1]
    if table in ("merged", "pending_merges"):
        return MERGED if table == "merged" else PENDING_MERGE, encode_id(key)
    return table[:-1], key  # persons, orgs: "person", "org"


class Identities:
    """The identities table of one namespace: the person of a userId, the organization of a
    groupId, the person a merged one went into (MERGED), and the creates and merges whose outcome
    stays unknown (SPEC 5): the send time of a create by its identity (PENDING_CREATE), the
    person a merge was into by the person merged (PENDING_MERGE), marked when the write begins
    (`begin`), settled by an outcome. Besides, what holds for this run only and is never stored:
    memberships and the identities held back.

    Answers go through a bounded read cache that every write keeps true (the state is its
    namespace's only writer). What a read-only state learns shadows the file in a bounded overlay
    (None = forgotten), never written to it.
    """

    def __init__(self, store: Store, spill: Spill, cache_entries: int) -> None:
        self._store = store
        self._cache: Lru[tuple[str, str], PdId | None] = Lru(cache_entries)
        self._overlay: MutableMapping[tuple[str, str], PdId | None] = spill.table()
        # Memberships (person -> org) are trusted within this run only: the skipped link PATCH
        # is safe while nothing else moves the person; a later run links again, as one without
        # a state would.
        self._members: MutableMapping[str, PdId] = spill.table()
        # Identities of events that failed in this run (Outcome.held_back): kept for the run
        # only, as the next run retries those events first.
        self._held: MutableMapping[tuple[str, str], bool] = spill.table()
        self.holding = False  # whether `_held` holds any: the guard of `held_back`
        self.merges = False  # whether a merge is known: only then does a person need following
        self.reset()

    def reset(self) -> None:
        """Read the namespace afresh (another one, or after a clear): what was read or learned
        under the previous one holds for it only."""
        self._cache.clear()
        self._overlay.clear()
        self._members.clear()
        self.merges = self._has_merges()
        # Whether a create or merge is pending: only then is one looked for.
        self.pending = self.has_kind(*PENDING_CREATE.values(), PENDING_MERGE)

    def get(self, kind: str, key: str) -> PdId | None:
        slot = (kind, key)
        if self._overlay:
            learned = self._overlay.get(slot, _UNKNOWN)
            if learned is not _UNKNOWN:
                return learned  # type: ignore[no-any-return]
        cached = self._cache.get(slot, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached  # type: ignore[no-any-return]
        row = self._store.db.execute(
            "SELECT pd_id FROM identities WHERE ns = ? AND kind = ? AND key = ?",
            (self._store.ns, kind, key),
        ).fetchone()
        found = None if row is None else decode_id(row[0])
        self._cache.put(slot, found)
        return found

    def has_kind(self, *kinds: str) -> bool:
        marks = ", ".join("?" for _ in kinds)
        row = self._store.db.execute(
            f"SELECT 1 FROM identities WHERE ns = ? AND kind IN ({marks}) LIMIT 1",
            (self._store.ns, *kinds),
        ).fetchone()
        return row is not None

    def _has_merges(self) -> bool:
        """Whether two userIds may name one person: a merge is known, or a person is cached for
        two userIds (an alias re-keyed it)."""
        if self.has_kind(MERGED):
            return True
        row = self._store.db.execute(
            "SELECT 1 FROM identities WHERE ns = ? AND kind = 'person' "
            "GROUP BY pd_id HAVING COUNT(*) > 1 LIMIT 1",
            (self._store.ns,),
        ).fetchone()
        return row is not None

    def member_of(self, person: PdId) -> PdId | None:
        return self._members.get(encode_id(person))

    def held_back(self, kind: str, key: str) -> bool:
        return self.holding and (kind, key) in self._held

    def pending_create(self, kind: str, key: str) -> str | None:
        sent_at = self.get(PENDING_CREATE[kind], key) if self.pending else None
        return None if sent_at is None else str(sent_at)

    def merging_into(self, person: PdId) -> PdId | None:
        return self.get(PENDING_MERGE, encode_id(person)) if self.pending else None

    def begin(self, request: ApiRequest, sent_at: str) -> None:
        """Left to settle until the event's outcome says how it went: the in-flight row is found
        again only by this event, while after a kill -9 another event (another file) may meet
        the identity first, search, miss the new record (index lag) and create it again."""
        self.pending = self.pending or request.creates is not None or request.merges is not None
        if request.creates is not None:  # a create keeps the first send's time
            kind, key = request.creates
            self.mark(PENDING_CREATE[kind], key, sent_at, keep=True)
        if request.merges is not None:  # a merge: the survivor of the one being sent
            person, into = request.merges
            self.mark(PENDING_MERGE, encode_id(person), into, keep=False)

    def learn(self, outcome: Outcome) -> None:
        """Take in what an outcome taught (core/identity_cache.py's `taught`, the rules every
        store follows): memberships and identities held back for this run, the rest as rows."""
        rows: dict[tuple[str, str], PdId | None] = {}  # the last word on each row
        for table, key, value in taught(outcome, self.pending):
            if table == "held":
                self._held[key] = True
                self.holding = True
            elif table == "memberships":
                self._members[encode_id(key)] = value
            else:
                rows[row_of(table, key)] = value
                self.pending = self.pending or (table.startswith("pending") and value is not None)
        if not self.merges and (outcome.merged or links_persons(outcome)):
            self.merges = True  # a re-key: seen again at the next open by _has_merges
        self.put([(kind, key, pd_id) for (kind, key), pd_id in rows.items()])

    def put(self, rows: list[Row]) -> None:
        """Write the rows (in the open batch), or into the overlay of a read-only state."""
        if self._store.readonly:
            self._overlay.update({(kind, key): pd_id for kind, key, pd_id in rows})
            return
        store = self._store
        stamp = store.now()
        for kind, key, pd_id in rows:  # what the table will say
            self._cache.put((kind, key), pd_id)
        store.db.executemany(
            "DELETE FROM identities WHERE ns = ? AND kind = ? AND key = ?",
            [(store.ns, kind, key) for kind, key, pd_id in rows if pd_id is None],
        )
        store.db.executemany(
            "INSERT INTO identities (ns, kind, key, pd_id, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (ns, kind, key) DO UPDATE SET pd_id = excluded.pd_id, "
            "updated_at = excluded.updated_at",
            [
                (store.ns, kind, key, encode_id(pd_id), stamp)
                for kind, key, pd_id in rows
                if pd_id is not None
            ],
        )

    def mark(self, kind: str, key: str, value: PdId, *, keep: bool) -> None:
        """Write one row now; `keep`: an existing row keeps its value."""
        self._cache.discard((kind, key))  # read again: a kept mark keeps its first value
        conflict = "NOTHING" if keep else "UPDATE SET pd_id = excluded.pd_id"
        self._store.db.execute(
            "INSERT INTO identities (ns, kind, key, pd_id, updated_at) VALUES (?, ?, ?, ?, ?) "
            f"ON CONFLICT (ns, kind, key) DO {conflict}",
            (self._store.ns, kind, key, encode_id(value), self._store.now()),
        )
