"""The replay store (SPEC 5): identities, pending creates and merges, the journal, writes in
flight, objects read, runs, the field listing cache and lead origins of one namespace, in the
state file (io/state_file.py keeps the file safe; its tables are in io/state_schema.py).

One file holds any number of namespaces, one per Pipedrive account and token
(io/state_accounts.py), so a sandbox and a production account never see each other's ids.

Outcomes and what they taught are written into one open transaction that is committed every
`batch_size` events or `batch_seconds`, on `flush()` and on close; a kill loses at most that
batch, which only means those events run again (their writes in flight were committed by
`begin_write`, and the deletion of those rows belongs to the lost batch, so the rerun reconciles
instead of repeating a create). `begin_write` commits before it returns.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from rudder_pipedrive_cli.core.fields import rfc3339
from rudder_pipedrive_cli.core.identity_cache import links_persons, survivor
from rudder_pipedrive_cli.core.index import IndexRows
from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome, PdId
from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, Lru, Spill
from rudder_pipedrive_cli.io.state_accounts import (
    ACCOUNT,
    account_namespace,
    alias_key,
    normalised_url,
    place_of,
    token_fingerprint,
    url_key,
)
from rudder_pipedrive_cli.io.state_file import FileLock, Guarded, open_file, transaction
from rudder_pipedrive_cli.io.state_index import IndexTable, clear_index
from rudder_pipedrive_cli.io.state_recency import FieldRecency
from rudder_pipedrive_cli.io.state_schema import (
    MERGED,
    OBJECTS_TABLE,
    PENDING_CREATE,
    PENDING_MERGE,
    RECENCY_TABLE,
    TABLES,
    decode_id,
    encode_id,
)
from rudder_pipedrive_cli.io.state_summary import NamespaceSummary, namespaces, summaries

# Measured with benchmarks/state_writes.py (20,000 events): a commit per event records ~22k
# outcomes/s, batches of 10 ~37k, 100 ~49k, 500 ~53k. 100 takes most of the gain while a kill
# loses (re-runs, reconciled) at most 100 outcomes; events with a write commit at `begin_write`.
BATCH_SIZE = 100
BATCH_SECONDS = 1.0


def utc_stamp() -> str:
    """Now, as RFC 3339 UTC to the second: the stamps of state rows and of writes in flight."""
    return rfc3339(datetime.now(UTC))


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedFields:
    fetched_at: str
    payload: Any


class _Overlay:
    """What a read-only state learned: shadows the file (None = forgotten), never written to it.
    Its tables keep memory bounded (io/scratch.py)."""

    def __init__(self, spill: Spill) -> None:
        self.ids: MutableMapping[tuple[str, str], PdId | None] = spill.table()
        self.leads: MutableMapping[str, frozenset[str]] = spill.table()
        # Persons whose stored list is no longer complete (person -> True).
        self.unlisted: MutableMapping[str, bool] = spill.table()


_UNKNOWN: Any = object()  # not in a cache or overlay: ask the file


@dataclass(slots=True)
class _Batch:
    size: int = 0
    opened_at: float = 0.0


class ReplayState:
    """The replay state of one namespace in one file; implements `IdentityCache`
    (core/identity_cache.py).

    Open it with `ReplayState.open(...)` and use it as a context manager. Writable opens take an
    exclusive lock for their lifetime; a read-only open (dry-run, `state show`) takes none, never
    writes and, when the file is absent, behaves as an empty state. What a read-only state learns
    stays in memory. `summary()` and `clear(None)` cover every namespace of the file.
    """

    def __init__(
        self,
        *,
        path: Path,
        namespace: str,
        connection: sqlite3.Connection,
        lock: FileLock | None,
        batch_size: int,
        batch_seconds: float,
        clock: Callable[[], float],
        now: Callable[[], str],
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.path = path
        self.namespace = namespace
        self.readonly = lock is None
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self._db = Guarded(connection, path)
        self._lock = lock
        self._clock = clock
        self._now = now
        self._mutex = threading.RLock()
        # What is learned in memory only (a read-only state's overlay, this run's failures and
        # memberships) is bounded by `cache_entries` per table, the rest in a temporary file.
        self._spill = Spill(cache_entries)
        # The identities table's answers, most recently used first: a bounded read cache that
        # every write to the table keeps true (this object is its namespace's only writer).
        self._cache: Lru[tuple[str, str], PdId | None] = Lru(cache_entries)
        self._overlay = _Overlay(self._spill)
        self._batch = _Batch()
        self._begun: set[tuple[str, str, str, str]] = set()  # writes this object began
        self._run_id: int | None = None
        self._closed = False
        # Whether any merge is recorded: only then does a cached person need following.
        self._merges = self._has_merges()
        # Whether any create or merge was left pending: only then is a second look worth it.
        self._unsettled = self._has_kind(*PENDING_CREATE.values(), PENDING_MERGE)
        # Identities of events that failed in this run (Outcome.held_back): kept for the run only,
        # as the next run retries those events first.
        self._troubled: MutableMapping[tuple[str, str], bool] = self._spill.table()
        self._recency = self._field_recency(namespace)

    @classmethod
    def open(
        cls,
        path: Path,
        namespace: str,
        *,
        readonly: bool = False,
        batch_size: int = BATCH_SIZE,
        batch_seconds: float = BATCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], str] = utc_stamp,
        cache_entries: int = CACHE_ENTRIES,
    ) -> ReplayState:
        connection, lock = open_file(path, readonly=readonly)
        return cls(
            path=path,
            namespace=namespace,
            connection=connection,
            lock=lock,
            batch_size=batch_size,
            batch_seconds=batch_seconds,
            clock=clock,
            now=now,
            cache_entries=cache_entries,
        )

    # -- context manager ------------------------------------------------------------------------

    def __enter__(self) -> ReplayState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Commit what is buffered (an interrupted run keeps what it learned), then unlock."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            try:
                if self._db.failure is None:  # after a failure, what was committed stays
                    self._commit()
            finally:
                self._db.close()
                self._spill.close()
                if self._lock is not None:
                    self._lock.release()

    # -- IdentityCache -----------------------------------------------------------------------------

    def person_id(self, user_id: str) -> PdId | None:
        person = self._identity("person", user_id)
        if not self._merges:
            return person
        return survivor(person, lambda merged: self._identity(MERGED, encode_id(merged)))

    def org_id(self, group_id: str) -> PdId | None:
        return self._identity("org", group_id)

    def person_org(self, person_id: PdId) -> PdId | None:
        """Memberships are trusted within this run only (the skipped link PATCH is safe while
        nothing else moves the person); a later run links again, as one without a state would."""
        with self._mutex:
            return self._overlay.ids.get(("member", encode_id(person_id)))

    def lead_origins(self, person_id: PdId) -> frozenset[str] | None:
        person = encode_id(person_id)
        with self._mutex:
            listed = self._db.execute(
                "SELECT 1 FROM leads_listed WHERE ns = ? AND person_id = ?",
                (self.namespace, person),
            ).fetchone()
            learned = self._overlay.leads.get(person)
            if self._overlay.unlisted.get(person) or (listed is None and learned is None):
                return None
            stored = frozenset(
                row[0]
                for row in self._db.execute(
                    "SELECT origin_id FROM lead_origins WHERE ns = ? AND person_id = ?",
                    (self.namespace, person),
                )
            )
            return stored | (learned or frozenset())

    @property
    def merges(self) -> bool:
        return self._merges

    def pending_create(self, kind: str, key: str) -> str | None:
        if not self._unsettled:
            return None
        sent_at = self._identity(PENDING_CREATE[kind], key)
        return None if sent_at is None else str(sent_at)

    def held_back(self, kind: str, key: str) -> bool:
        with self._mutex:
            return bool(self._troubled) and (kind, key) in self._troubled

    def recency(self, kind: str, record: PdId) -> Mapping[str, str]:
        with self._mutex:
            return self._recency.times(kind, encode_id(record))

    def merging_into(self, person_id: PdId) -> PdId | None:
        if not self._unsettled:
            return None
        return self._identity(PENDING_MERGE, encode_id(person_id))

    def _has_merges(self) -> bool:
        """Whether two userIds may name one person: a merge is known, or a person is cached for
        two userIds (an alias re-keyed it)."""
        if self._has_kind(MERGED):
            return True
        row = self._db.execute(
            "SELECT 1 FROM identities WHERE ns = ? AND kind = 'person' "
            "GROUP BY pd_id HAVING COUNT(*) > 1 LIMIT 1",
            (self.namespace,),
        ).fetchone()
        return row is not None

    def _has_kind(self, *kinds: str) -> bool:
        marks = ", ".join("?" for _ in kinds)
        row = self._db.execute(
            f"SELECT 1 FROM identities WHERE ns = ? AND kind IN ({marks}) LIMIT 1",
            (self.namespace, *kinds),
        ).fetchone()
        return row is not None

    def _identity(self, kind: str, key: str) -> PdId | None:
        with self._mutex:
            slot = (kind, key)
            if self._overlay.ids:
                learned = self._overlay.ids.get(slot, _UNKNOWN)
                if learned is not _UNKNOWN:
                    return learned  # type: ignore[no-any-return]
            cached = self._cache.get(slot, _UNKNOWN)
            if cached is not _UNKNOWN:
                return cached  # type: ignore[no-any-return]
            row = self._db.execute(
                "SELECT pd_id FROM identities WHERE ns = ? AND kind = ? AND key = ?",
                (self.namespace, kind, key),
            ).fetchone()
            found = None if row is None else decode_id(row[0])
            self._cache.put(slot, found)
            return found

    def learn(self, outcome: Outcome) -> None:
        """Apply what an event taught (identities None = forget), like
        `MemoryIdentityCache.learn`."""
        with self._mutex:
            self._learn(outcome)
            self._buffered()

    def _learn(self, outcome: Outcome) -> None:
        for slot in outcome.held_back:
            self._troubled[slot] = True
        if outcome.recency:
            if not self.readonly:
                self._open_batch()
            for (kind, record), times in outcome.recency.items():
                self._recency.learn(kind, encode_id(record), times)
        ids: list[tuple[str, str, PdId | None]] = [
            (kind, key, pd_id) for (kind, key), pd_id in outcome.identities.items()
        ]
        if not self._merges and links_persons(outcome):
            self._merges = True  # a re-key: seen again at the next open by _has_merges
        if outcome.merged:
            self._merges = True
            ids += [(MERGED, encode_id(gone), into) for gone, into in outcome.merged.items()]
        if self._unsettled:  # a record learned settles a create left unknown for it, and a
            # merge known done one left unknown
            ids += [
                (PENDING_CREATE[kind], key, None)
                for (kind, key), pd_id in outcome.identities.items()
                if pd_id is not None and (kind, key) not in outcome.pending_creates
            ]
            ids += [(PENDING_MERGE, encode_id(gone), None) for gone in outcome.merged]
        if outcome.pending_creates or outcome.pending_merges:
            self._unsettled = True
            ids += [
                (PENDING_CREATE[kind], key, sent_at)
                for (kind, key), sent_at in outcome.pending_creates.items()
            ]
            ids += [
                (PENDING_MERGE, encode_id(person), into)
                for person, into in outcome.pending_merges.items()
            ]
        for person, org in outcome.memberships.items():
            self._overlay.ids[("member", encode_id(person))] = org
        leads = {
            encode_id(person): origins
            for person, origins in outcome.lead_origins.items()
            if origins is not None
        }
        unlisted = [encode_id(p) for p, origins in outcome.lead_origins.items() if origins is None]
        if self.readonly:
            self._overlay.ids.update({(kind, key): pd_id for kind, key, pd_id in ids})
            for person in unlisted:
                self._overlay.unlisted[person] = True
                self._overlay.leads.pop(person, None)
            for person, origins in leads.items():
                self._overlay.unlisted.pop(person, None)
                self._overlay.leads[person] = self._overlay.leads.get(person, frozenset()) | origins
            return
        self._open_batch()
        stamp = self._now()
        for kind, key, pd_id in ids:  # what the table will say
            self._cache.put((kind, key), pd_id)
        self._db.executemany(
            "DELETE FROM identities WHERE ns = ? AND kind = ? AND key = ?",
            [(self.namespace, kind, key) for kind, key, pd_id in ids if pd_id is None],
        )
        self._db.executemany(
            "INSERT INTO identities (ns, kind, key, pd_id, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (ns, kind, key) DO UPDATE SET pd_id = excluded.pd_id, "
            "updated_at = excluded.updated_at",
            [
                (self.namespace, kind, key, encode_id(pd_id), stamp)
                for kind, key, pd_id in ids
                if pd_id is not None
            ],
        )
        self._db.executemany(  # its stored origins stay true; the list is just not complete
            "DELETE FROM leads_listed WHERE ns = ? AND person_id = ?",
            [(self.namespace, person) for person in unlisted],
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO leads_listed (ns, person_id) VALUES (?, ?)",
            [(self.namespace, person) for person in leads],
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO lead_origins (ns, person_id, origin_id) VALUES (?, ?, ?)",
            [
                (self.namespace, person, origin)
                for person, origins in leads.items()
                for origin in sorted(origins)
            ],
        )

    # -- journal and writes in flight -------------------------------------------------------------

    def journal_status(self, event_id: str) -> str | None:
        """The latest outcome of the event: "sent", "unchanged", "skipped" (done) or "failed"."""
        with self._mutex:
            row = self._db.execute(
                "SELECT status FROM journal WHERE ns = ? AND event_id = ?",
                (self.namespace, event_id),
            ).fetchone()
            return None if row is None else str(row[0])

    def record_outcome(self, event_id: str, source: str, outcome: Outcome) -> None:
        """Journal the outcome, learn from it, forget its writes in flight: one transaction.

        A failed event keeps its writes in flight: one may have been applied before the failure
        (a create whose answer was lost, then a reconciling lookup that failed), so the retry is
        handed them by `pending_write` and reconciles instead of repeating them.
        """
        with self._mutex:
            self._writable()
            self._open_batch()
            now = self._now()
            self._db.execute(
                "INSERT INTO journal (ns, event_id, status, reason, source, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ns, event_id) DO UPDATE SET "
                "status = excluded.status, reason = excluded.reason, source = excluded.source, "
                "finished_at = excluded.finished_at",
                # The reason without event data: the state keeps no personal data (SPEC 8).
                (self.namespace, event_id, outcome.status, outcome.redacted_reason, source, now),
            )
            self._learn(outcome)
            if outcome.status != "failed":
                self._db.execute(
                    "DELETE FROM inflight WHERE ns = ? AND event_id = ?",
                    (self.namespace, event_id),
                )
            self._begun = {write for write in self._begun if write[0] != event_id}
            self._buffered()

    def begin_write(self, event_id: str, request: ApiRequest, sent_at: str) -> None:
        """Record a write about to be sent, durably (committed, with the buffer) before returning.

        A repeat of the same write keeps the first `sent_at`: reconciliation looks for records
        created at or after it.
        """
        with self._mutex:
            self._writable()
            self._open_batch()
            self._db.execute(
                "INSERT OR IGNORE INTO inflight (ns, event_id, method, endpoint, path, sent_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (self.namespace, event_id, request.method, request.endpoint, request.path, sent_at),
            )
            # Left to settle until the event's outcome says how it went: the in-flight row is
            # found again only by this event, while after a kill -9 another event (another file)
            # may meet the identity first, search, miss the new record (index lag) and create it
            # again. The first send's time is kept.
            if request.creates is not None:  # a create keeps the first send's time
                kind, key = request.creates
                self._mark(PENDING_CREATE[kind], key, sent_at, keep=True)
            if request.merges is not None:  # a merge: the survivor of the one being sent
                person, into = request.merges
                self._mark(PENDING_MERGE, encode_id(person), into, keep=False)
            self._begun.add(_write_key(event_id, request))
            self._commit()

    def _mark(self, kind: str, key: str, value: PdId, *, keep: bool) -> None:
        self._unsettled = True
        self._cache.discard((kind, key))  # read again: a kept mark keeps its first value
        conflict = "NOTHING" if keep else "UPDATE SET pd_id = excluded.pd_id"
        self._db.execute(
            "INSERT INTO identities (ns, kind, key, pd_id, updated_at) VALUES (?, ?, ?, ?, ?) "
            f"ON CONFLICT (ns, kind, key) DO {conflict}",
            (self.namespace, kind, key, encode_id(value), self._now()),
        )

    def pending_write(self, event_id: str, request: ApiRequest) -> str | None:
        """The `sent_at` of this write if an earlier run left it in flight; handed out once.

        The row stays until the event's outcome is recorded as done: if this run's reconciliation
        fails or the run dies first, the next run must reconcile it again, never resend blindly.
        Writes begun by this state object are not returned: the plan that sent them already knows
        their outcome (or got an unknown answer from the transport and reconciles it).
        """
        with self._mutex:
            key = _write_key(event_id, request)
            if self.readonly or key in self._begun:
                return None
            row = self._db.execute(
                "SELECT sent_at FROM inflight WHERE ns = ? AND event_id = ? AND method = ? "
                "AND endpoint = ? AND path = ?",
                (self.namespace, event_id, request.method, request.endpoint, request.path),
            ).fetchone()
            if row is None:
                return None
            self._begun.add(key)
            return str(row[0])

    def inflight_count(self) -> int:
        with self._mutex:
            row = self._db.execute(
                "SELECT count(*) FROM inflight WHERE ns = ?", (self.namespace,)
            ).fetchone()
            return int(row[0])

    # -- objects read to the end ------------------------------------------------------------------

    def object_finished(self, name: str, version: str) -> bool:
        """Whether an earlier run finished this version of the object (io/objects.py)."""
        with self._mutex:
            try:
                row = self._db.execute(
                    "SELECT 1 FROM objects_done WHERE ns = ? AND name = ? AND version = ?",
                    (self.namespace, name, version),
                ).fetchone()
            except sqlite3.OperationalError:  # no such table: nothing finished yet
                return False
            return row is not None

    def finish_object(self, name: str, version: str) -> None:
        """Record the object as finished, with the outcomes of its events (one batch)."""
        with self._mutex:
            self._writable()
            self._open_batch()
            self._db.execute(OBJECTS_TABLE)
            self._db.execute(
                "INSERT INTO objects_done (ns, name, version, finished_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ns, name) DO UPDATE SET version = excluded.version, "
                "finished_at = excluded.finished_at",
                (self.namespace, name, version, self._now()),
            )
            self._buffered()

    # -- runs and the field listing cache ---------------------------------------------------------

    def start_run(self) -> None:
        with self._mutex:
            self._writable()
            self._open_batch()
            cursor = self._db.execute(
                "INSERT INTO runs (ns, started_at) VALUES (?, ?)", (self.namespace, self._now())
            )
            self._run_id = cursor.lastrowid
            self._commit()

    def finish_run(self, counts: Mapping[str, Any]) -> None:
        with self._mutex:
            self._writable()
            if self._run_id is None:
                raise RuntimeError("finish_run() without start_run()")
            self._open_batch()
            self._db.execute(
                "UPDATE runs SET finished_at = ?, counts_json = ? WHERE id = ?",
                (self._now(), orjson.dumps(dict(counts)).decode(), self._run_id),
            )
            self._run_id = None
            self._commit()

    def get_fields(self, entity: str) -> CachedFields | None:
        with self._mutex:
            row = self._db.execute(
                "SELECT fetched_at, payload_json FROM fields WHERE ns = ? AND entity = ?",
                (self.namespace, entity),
            ).fetchone()
            return (
                None
                if row is None
                else CachedFields(fetched_at=row[0], payload=orjson.loads(row[1]))
            )

    def put_fields(self, entity: str, payload: Any) -> None:
        with self._mutex:
            self._writable()
            self._open_batch()
            self._db.execute(
                "INSERT INTO fields (ns, entity, fetched_at, payload_json) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ns, entity) DO UPDATE SET fetched_at = excluded.fetched_at, "
                "payload_json = excluded.payload_json",
                (self.namespace, entity, self._now(), orjson.dumps(payload).decode()),
            )
            self._commit()

    @property
    def hard_links(self) -> int:
        """How many names the file has, when this state holds its lock (0 read-only)."""
        return 0 if self._lock is None else self._lock.links

    # -- accounts -------------------------------------------------------------------------------

    def use_account(self, company_id: str, base_url: str, token: str) -> None:
        """Key this state on the account (a send, once `GET /v1/users/me` said which): remember
        that this URL and token lead to it, and move into it what an older rpd keyed on this
        URL and token (one namespace per spelling of the URL)."""
        namespace = account_namespace(company_id, token)
        fingerprint = token_fingerprint(token)
        with self._mutex:
            self._writable()
            self._commit()
            with transaction(self._db):
                for old in self._keyed_on_url(base_url, fingerprint):
                    self._move(old, namespace)
                for key, value in (
                    (alias_key(base_url, fingerprint), namespace),
                    (url_key(namespace), normalised_url(base_url)),
                ):
                    self._db.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )
            self._use(namespace)

    def accounts_for(self, base_url: str, token: str) -> list[str]:
        """The namespaces a send with this URL and token (any token when "") used, without asking
        Pipedrive: the account it led to last time, else what an older rpd keyed on the URL."""
        fingerprint = token_fingerprint(token) if token else None
        here = alias_key(base_url, "")
        with self._mutex:
            remembered = {
                str(value)
                for key, value in self._db.execute(
                    "SELECT key, value FROM meta WHERE key >= 'account:' AND key < 'account;'"
                )
                if str(key).rpartition("#")[0] + "#" == here
                and fingerprint in (None, str(key).rpartition("#")[2])
            }
            return sorted(remembered or self._keyed_on_url(base_url, fingerprint))

    def use_namespace(self, namespace: str) -> None:
        """Read (or write) this namespace from now on (dry-run, once `accounts_for` found it)."""
        with self._mutex:
            self._use(namespace)

    def _use(self, namespace: str) -> None:
        self.namespace = namespace
        self._merges = self._has_merges()
        self._unsettled = self._has_kind(*PENDING_CREATE.values(), PENDING_MERGE)
        # What was read or learned under the previous namespace holds for it only.
        self._cache.clear()
        for table in (self._overlay.ids, self._overlay.leads, self._overlay.unlisted):
            table.clear()
        self._recency = self._field_recency(namespace)

    def _field_recency(self, namespace: str) -> FieldRecency:
        """A read-only state keeps what it learns in a bounded table, never in the file."""
        memory = self._spill.table() if self.readonly else None
        return FieldRecency(self._db, namespace, memory=memory)

    def _keyed_on_url(self, base_url: str, fingerprint: str | None) -> list[str]:
        """Namespaces an older rpd keyed on a spelling of this URL (and this token's fingerprint,
        unless None), the most recently run first."""
        place = place_of(base_url)
        found = []
        for namespace in namespaces(self._db):
            url, _, print_ = namespace.rpartition("#")
            if namespace.startswith(ACCOUNT) or not url:
                continue
            if place_of(url) == place and fingerprint in (None, print_):
                found.append(namespace)
        last_run = {
            str(row[0]): int(row[1])
            for row in self._db.execute("SELECT ns, max(id) FROM runs GROUP BY ns")
        }
        return sorted(found, key=lambda namespace: -last_run.get(namespace, 0))

    def _move(self, old: str, new: str) -> None:
        """Everything of namespace `old` into `new`, where `new` holds none of it yet; an event
        journaled failed in one and done in the other stays done (it was sent)."""
        self._db.execute(
            "DELETE FROM journal WHERE ns = ? AND status = 'failed' AND event_id IN "
            "(SELECT event_id FROM journal WHERE ns = ? AND status != 'failed')",
            (new, old),
        )
        self._db.execute(OBJECTS_TABLE)
        for table in (*TABLES, RECENCY_TABLE, "objects_done"):
            self._db.execute(f"UPDATE OR IGNORE {table} SET ns = ? WHERE ns = ?", (new, old))
            self._db.execute(f"DELETE FROM {table} WHERE ns = ?", (old,))

    # -- the identity index ----------------------------------------------------------------------

    def index_rows(self) -> IndexRows:
        """The identity index's rows (core/index.py), kept in this namespace for later runs."""
        return IndexTable(self)

    # -- the whole file ---------------------------------------------------------------------------

    def summary(self) -> list[NamespaceSummary]:
        """Every namespace in the file, sorted: what `rpd state show` prints."""
        with self._mutex:
            return summaries(self._db)

    def clear(self, namespace: str | None = None) -> list[NamespaceSummary]:
        """Delete one namespace, or all of them; returns what was there. Deleted pages are zeroed
        (the journal holds event sources and user ids), and a full clear also shrinks the file."""
        with self._mutex:
            self._writable()
            cleared = [s for s in self.summary() if namespace in (None, s.namespace)]
            self._commit()
            self._db.execute("PRAGMA secure_delete = ON")
            with transaction(self._db):
                self._db.execute(OBJECTS_TABLE)
                for table in (*TABLES, "objects_done"):
                    if namespace is None:
                        self._db.execute(f"DELETE FROM {table}")
                    else:
                        self._db.execute(f"DELETE FROM {table} WHERE ns = ?", (namespace,))
                self._recency.clear(namespace)
                clear_index(self._db, namespace)
                # The accounts remembered: every one, or this namespace's.
                self._db.execute(
                    "DELETE FROM meta WHERE (key >= 'account:' AND key < 'account;' "
                    "OR key >= 'url:' AND key < 'url;') AND (? IS NULL OR value = ? OR key = ?)",
                    (namespace, namespace, None if namespace is None else url_key(namespace)),
                )
            if namespace is None:
                self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("PRAGMA secure_delete = OFF")
            self._overlay = _Overlay(self._spill)
            self._cache.clear()
            self._merges = self._has_merges()
            self._unsettled = self._has_kind(*PENDING_CREATE.values(), PENDING_MERGE)
            self._begun = set()
            self._run_id = None
            return cleared

    # -- batching ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit what is buffered."""
        with self._mutex:
            self._commit()

    def _writable(self) -> None:
        if self.readonly:
            raise RuntimeError(f"state {self.path} is open read-only")

    def _open_batch(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._batch.size = 0
            self._batch.opened_at = self._clock()

    def _buffered(self) -> None:
        if self.readonly:
            return
        self._batch.size += 1
        full = self._batch.size >= self.batch_size
        if full or self._clock() - self._batch.opened_at >= self.batch_seconds:
            self._commit()

    def _commit(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._batch.size = 0


def _write_key(event_id: str, request: ApiRequest) -> tuple[str, str, str, str]:
    return (event_id, request.method, request.endpoint, request.path)
