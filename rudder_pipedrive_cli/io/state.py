"""The replay store (SPEC 5) of one namespace in the state file: the identity store
(core/identity_cache.py) over its rows, identities, merges, memberships, pending creates and
merges, lead origins and field recency (io/state_identities.py); the journal, the writes in
flight, runs, field listings and objects read (here); and the identity index
(io/state_index.py).
io/state_file.py keeps the file safe; its tables are in io/state_schema.py.

One file holds any number of namespaces, one per Pipedrive account and token
(io/state_accounts.py), so a sandbox and a production account never see each other's ids.

Outcomes and what they taught are written into one open transaction (io/state_store.py) that is
committed every `batch_size` events or `batch_seconds`, on `flush()` and on close; a kill loses at
most that batch, which only means those events run again (their writes in flight were committed
by `begin_write`, and the deletion of those rows belongs to the lost batch, so the rerun reconciles
instead of repeating a create). `begin_write` commits before it returns.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from rudder_pipedrive_cli.core.fields import rfc3339
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.index import IndexRows
from rudder_pipedrive_cli.core.protocol import ApiRequest, Learned, Outcome
from rudder_pipedrive_cli.io.catalog_cache import CachedFields
from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, Closing, Spill
from rudder_pipedrive_cli.io.state_accounts import (
    ACCOUNT,
    account_namespace,
    alias_key,
    normalised_url,
    place_of,
    token_fingerprint,
    url_key,
)
from rudder_pipedrive_cli.io.state_aliases import AliasRows
from rudder_pipedrive_cli.io.state_file import (
    FileLock,
    Guarded,
    check_in_place,
    open_file,
    transaction,
)
from rudder_pipedrive_cli.io.state_identities import (
    LeadRows,
    RecencyRows,
    has_holders,
    has_merges,
    has_pending,
    identity_rows,
)
from rudder_pipedrive_cli.io.state_index import IndexTable
from rudder_pipedrive_cli.io.state_schema import (
    ALIASES_TABLE,
    INDEX_MARKS,
    INDEX_TABLE,
    OBJECTS_TABLE,
    RECENCY_TABLE,
    RULE_SKIPPED,
    SOURCE_FILES,
    TABLES,
    VACUUM_DUE,
    split_source,
)
from rudder_pipedrive_cli.io.state_store import Store
from rudder_pipedrive_cli.io.state_summary import NamespaceSummary, namespaces, summaries

# Measured with benchmarks/state_writes.py (20,000 events): a commit per event records ~22k
# outcomes/s, batches of 10 ~37k, 100 ~49k, 500 ~53k. 100 takes most of the gain while a kill
# loses (re-runs, reconciled) at most 100 outcomes; events with a write commit at `begin_write`.
BATCH_SIZE = 100
BATCH_SECONDS = 1.0
JOURNAL_STATUS = "SELECT status FROM journal WHERE ns = ? AND event_id = ?"
# Every table that holds rows of a namespace: what clearing one deletes and moving one moves
# (of those the file has: an older file lacks some).
NAMESPACED = (*TABLES, "objects_done", ALIASES_TABLE, RECENCY_TABLE, INDEX_TABLE, INDEX_MARKS)


def read_as(version: str, skips: str) -> str:
    """How objects_done keeps an object's version (its ETag or size) read under skip rules: with
    their digest after it, so that a lookup under other rules finds no row (state_schema.py);
    under none, the version alone, as every row was before the digest."""
    return f"{version} skips:{skips}" if skips else version


def utc_stamp() -> str:
    """Now, as RFC 3339 UTC to the second: the stamps of state rows and of writes in flight."""
    return rfc3339(datetime.now(UTC))


class ReplayState(IdentityStore, Closing):
    """The replay state of one namespace in one file: the `IdentityStore` (core/identity_cache.py)
    over its rows (io/state_identities.py), and the journal, writes in flight, runs and listings.
    Its public methods and its rows take the mutex; its other tables assume it taken.

    Open it with `ReplayState.open(...)` and use it as a context manager. Writable opens take an
    exclusive lock for their lifetime; a read-only open (dry-run, `state show`) takes none, never
    writes and, when the file is absent, behaves as an empty state. What a read-only state learns
    stays in memory, bounded by `cache_entries` per table (the rest in a temporary file), as do
    the memberships as this run learned them and its failures. `summary()` and `clear(None)`
    cover every namespace of the file.
    """

    def __init__(self, store: Store, lock: FileLock | None, cache_entries: int) -> None:
        """Use `ReplayState.open`."""
        self.path = store.db.path
        self.readonly = store.readonly
        self._store = store
        self._db = store.db
        self._mutex = store.mutex
        self._lock = lock
        self._closed = False
        self._spill = Spill(cache_entries)
        self._cache_entries = cache_entries
        self._use(store.ns)
        # The writes in flight (event id, method, endpoint, path) this state began or handed out.
        self._begun: set[tuple[str, str, str, str]] = set()
        self._run: int | None = None  # the id of the run started and not finished
        # The events earlier runs left writes in flight for that this run has not yet ended
        # failed (one ended done has none left): bounded by what is in flight (`left_to_settle`).
        self._left: set[str] = set()
        # Those of them this run read and a skip rule took (`left_by_rule`): not outside the run.
        self._ruled: set[str] = set()
        # The ids of the source files' names this state journaled under (`_file_id`).
        self._files: dict[str, int] = {}
        # A file from before revision 2 read-only: its rule skips read as forgotten already
        # (state_schema.FORGOTTEN), and the finished objects of a namespace that has any.
        forgets = store.revision < 2
        self._journal_sql = JOURNAL_STATUS + (f" AND NOT {RULE_SKIPPED}" if forgets else "")
        self._rule_skipped: dict[str, bool] | None = {} if forgets else None

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
        store = Store(
            Guarded(connection, path),
            namespace,
            readonly=lock is None,
            batch_size=batch_size,
            batch_seconds=batch_seconds,
            clock=clock,
            now=now,
        )
        return cls(store, lock, cache_entries)

    @property
    def namespace(self) -> str:
        return self._store.ns

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is buffered (an interrupted run keeps what it learned), then unlock."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            try:
                if self._db.failure is None:  # after a failure, what was committed stays
                    self._store.commit()
            finally:
                self._db.close()
                self._spill.close()
                if self._lock is not None:
                    self._lock.release()

    # -- IdentityStore ---------------------------------------------------------------------------

    def apply(self, out: Learned) -> None:
        """`IdentityStore.apply`, as one outcome of the open batch (in memory when read-only)."""
        with self._mutex:
            if not self.readonly:
                self._store.open_batch()
            IdentityStore.apply(self, out)
            self._store.buffered()

    # -- journal and writes in flight -------------------------------------------------------------

    def journal_status(self, event_id: str) -> str | None:
        """The latest outcome of the event: "sent", "unchanged", "skipped" (done) or "failed"."""
        row = self._store.row(self._journal_sql, event_id)
        return None if row is None else str(row[0])

    def record_outcome(self, event_id: str, source: str, outcome: Outcome) -> None:
        """Journal the outcome, learn from it, forget its writes in flight: one transaction.

        A failed event keeps its writes in flight: one may have been applied before the failure
        (a create whose answer was lost, then a reconciling lookup that failed), so the retry is
        handed them by `pending_write` and reconciles instead of repeating them.
        """
        store = self._store
        with self._mutex:  # as store.writing() does, without its generator: once per event
            store.writable()
            store.open_batch()
            name, place = split_source(source)
            self._db.execute(
                "INSERT OR REPLACE INTO journal (ns, event_id, status, reason, file, place, "
                "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                # The reason without event data: the state keeps no personal data (SPEC 8).
                (
                    store.ns,
                    event_id,
                    outcome.status,
                    outcome.redacted_reason,
                    self._files.get(name) or self._file_id(name),
                    place,
                    store.now(),
                ),
            )
            if (out := outcome.learned) is not None:
                IdentityStore.apply(self, out)
            if outcome.status != "failed":
                self._db.execute(
                    "DELETE FROM inflight WHERE ns = ? AND event_id = ?", (store.ns, event_id)
                )
            else:  # planned by this run, and left to settle by its rerun
                self._left.discard(event_id)
            self._begun = {write for write in self._begun if write[0] != event_id}
            store.buffered()

    def _file_id(self, name: str) -> int:
        """The id of a source file's name in `source_files`, added in the open batch if new."""
        self._db.execute(f"INSERT OR IGNORE INTO {SOURCE_FILES} (name) VALUES (?)", (name,))
        row = self._db.execute(f"SELECT id FROM {SOURCE_FILES} WHERE name = ?", (name,))
        self._files[name] = file = int(row.fetchone()[0])
        return file

    def begin_write(self, event_id: str, request: ApiRequest, sent_at: str) -> None:
        """Record a write about to be sent, durably (committed, with the buffer) before returning,
        and the create or merge it is as pending (`IdentityStore.left_pending`: a repeat of the
        same create keeps the first `sent_at`, which reconciliation looks for records from)."""
        store = self._store
        with self._mutex:  # as store.writing(commit=True) does, without its generator
            store.writable()
            store.open_batch()
            key = _write_key(event_id, request)
            self._db.execute(
                "INSERT OR IGNORE INTO inflight (ns, event_id, method, endpoint, path, sent_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (store.ns, *key, sent_at),
            )
            self._begun.add(key)
            if (pending := self.left_pending(request, sent_at)) is not None:
                IdentityStore.apply(self, pending)
            store.commit()

    def pending_write(self, event_id: str, request: ApiRequest) -> str | None:
        """The `sent_at` of this write if an earlier run left it in flight; handed out once.

        The row stays until the event's outcome is recorded as done: if this run's reconciliation
        fails or the run dies first, the next run must reconcile it again, never resend blindly.
        Writes begun by this state object are not returned: the plan that sent them already knows
        their outcome (or got an unknown answer from the transport and reconciles it). A
        read-only state hands them out too (once, in memory): dry-run shows the rerun
        reconciling them.
        """
        key = _write_key(event_id, request)
        with self._mutex:
            if key in self._begun:
                return None
            row = self._db.execute(
                "SELECT sent_at FROM inflight WHERE ns = ? AND event_id = ? AND method = ? "
                "AND endpoint = ? AND path = ?",
                (self._store.ns, *key),
            ).fetchone()
            if row is None:
                return None
            self._begun.add(key)
            return str(row[0])

    def left_to_settle(self) -> int:
        """How many events an earlier run left writes in flight for that this run did not plan
        (not in its input, or left out by its filters): only a run of their input settles them.
        Meant for a run that ended every event it read (each planned one ends done, its writes
        forgotten, or failed); one the journal has done (a namespace moved into another) is not
        counted, as no run would plan it again."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT DISTINCT event_id FROM inflight AS i WHERE ns = ? AND NOT EXISTS "
                "(SELECT 1 FROM journal AS j WHERE j.ns = i.ns AND j.event_id = i.event_id "
                "AND j.status != 'failed')",
                (self._store.ns,),
            )
            return sum(1 for (event_id,) in rows if event_id in self._left)

    def ruled_out(self, event_id: str) -> None:
        """Note an event this run read that a skip rule took (not journaled: core/intake.py
        RULE_SKIPPED). Writes an earlier run left in flight for it stay, to be reconciled by a
        run whose rules send it (they may be in Pipedrive), and are said apart from those of
        events outside the run (`left_by_rule`): sending the same input again does not settle
        them."""
        with self._mutex:
            if event_id in self._left:
                self._left.discard(event_id)
                self._ruled.add(event_id)

    def left_by_rule(self) -> int:
        """How many events this run read and a skip rule took have writes an earlier run left
        in flight (`ruled_out`)."""
        return len(self._ruled)

    # -- objects read to the end ------------------------------------------------------------------

    # The objects of a bucket or backup folder read to the end with every event done (SPEC 2,
    # resume), by name and version, and the skip rules they were read under (`read_as`); their
    # table is created on first use.

    def object_finished(self, name: str, version: str, skips: str = "") -> bool:
        """Whether an earlier run finished this version of the object (io/objects.py) under the
        skip rules `skips` (core/rules.py `TrackRules.skips`): one read under others is read
        again, as the events a rule skipped are not journaled (those done are, and stay done)."""
        try:
            if (skipped := self._rule_skipped) is not None:  # a file from before revision 2
                ns = self._store.ns
                if ns not in skipped:
                    rule_skips = "SELECT 1 FROM journal WHERE ns = ? AND " + RULE_SKIPPED
                    skipped[ns] = self._store.row(rule_skips) is not None
                if skipped[ns]:
                    return False
            row = self._store.row(
                "SELECT 1 FROM objects_done WHERE ns = ? AND name = ? AND version = ?",
                name,
                read_as(version, skips),
            )
        except sqlite3.OperationalError:  # no such table: nothing finished yet
            return False
        return row is not None

    def finish_object(self, name: str, version: str, skips: str = "") -> None:
        """Record the object as finished under the skip rules `skips`, with the outcomes of its
        events (one batch)."""
        store = self._store
        with store.writing():
            self._db.execute(OBJECTS_TABLE)
            self._db.execute(
                "INSERT OR REPLACE INTO objects_done (ns, name, version, finished_at) "
                "VALUES (?, ?, ?, ?)",
                (store.ns, name, read_as(version, skips), store.now()),
            )

    def input_aliases(self) -> AliasRows:
        """The input's aliases send's first passes found (core/index.py `input_aliases`), kept so
        that a resumed run knows those of the objects it no longer reads (io/state_aliases.py)."""
        return AliasRows(self._store)

    # -- runs (when each started and finished, and its counts) and the field listing cache ------

    def start_run(self) -> None:
        store = self._store
        with store.writing(commit=True):
            self._run = self._db.execute(
                "INSERT INTO runs (ns, started_at) VALUES (?, ?)", (store.ns, store.now())
            ).lastrowid
            self._left = {
                str(event_id)
                for (event_id,) in self._db.execute(
                    "SELECT DISTINCT event_id FROM inflight WHERE ns = ?", (store.ns,)
                )
            }

    def finish_run(self, counts: Mapping[str, Any]) -> None:
        if self._run is None:
            raise RuntimeError("finish_run() without start_run()")
        with self._mutex:
            with self._store.writing(commit=True):
                self._db.execute(
                    "UPDATE runs SET finished_at = ?, counts_json = ? WHERE id = ?",
                    (self._store.now(), orjson.dumps(dict(counts)).decode(), self._run),
                )
                self._run = None
            if self._lock is not None:  # once a run, not once an event
                check_in_place(self._db, self._lock)

    def get_fields(self, entity: str) -> CachedFields | None:
        """Each entity's last field listing (io/catalog_cache.py), and when it was fetched."""
        row = self._store.row(
            "SELECT fetched_at, payload_json FROM fields WHERE ns = ? AND entity = ?", entity
        )
        return (
            None if row is None else CachedFields(fetched_at=row[0], payload=orjson.loads(row[1]))
        )

    def put_fields(self, entity: str, payload: Any) -> None:
        store = self._store
        with store.writing(commit=True):
            self._db.execute(
                "INSERT OR REPLACE INTO fields (ns, entity, fetched_at, payload_json) "
                "VALUES (?, ?, ?, ?)",
                (store.ns, entity, store.now(), orjson.dumps(payload).decode()),
            )

    @property
    def unused_bytes(self) -> int:
        """What the file holds that it no longer uses while its compaction after an upgrade is
        due (`state_file.vacuum`: refused for want of room), else 0."""
        if self._lock is None:
            return 0
        query = self._db.execute
        if query("SELECT 1 FROM meta WHERE key = ?", (VACUUM_DUE,)).fetchone() is None:
            return 0
        free: int = query("PRAGMA freelist_count").fetchone()[0]
        page_size: int = query("PRAGMA page_size").fetchone()[0]
        return free * page_size

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
            self._store.writable()
            self._store.commit()
            with transaction(self._db):
                for old in self._keyed_on_url(base_url, fingerprint):
                    self._move(old, namespace)
                self._db.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [
                        (alias_key(base_url, fingerprint), namespace),
                        (url_key(namespace), normalised_url(base_url)),
                    ],
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

    def use_remembered(self, base_url: str, token: str) -> list[str]:
        """Use the namespace a send with this URL and token used (`accounts_for`) when there is
        one; returns the namespaces found (with none or several, the namespace stays)."""
        with self._mutex:
            found = self.accounts_for(base_url, token)
            if len(found) == 1:
                self._use(found[0])
            return found

    def _use(self, namespace: str) -> None:
        """Read (or write) this namespace: what was read or learned under another holds for it
        only."""
        store, spill = self._store, self._spill
        store.ns = namespace
        stored: dict[str, object] = {
            **identity_rows(store, spill, self._cache_entries),
            "leads": LeadRows(store, spill),
            "times": RecencyRows(store, spill),
        }
        IdentityStore.__init__(
            self,
            spill.table,
            stored,
            merges=has_merges(store),
            pending=has_pending(store),
            rekeyed=has_holders(store),
        )

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
        for table in filter(self._store.has_table, NAMESPACED):  # a row `new` holds stays
            self._db.execute(f"UPDATE OR IGNORE {table} SET ns = ? WHERE ns = ?", (new, old))
            self._db.execute(f"DELETE FROM {table} WHERE ns = ?", (old,))

    # -- the identity index ----------------------------------------------------------------------

    def index_rows(self) -> IndexRows:
        """The identity index's rows (core/index.py), kept in this namespace for later runs."""
        return IndexTable(self._store)

    # -- the whole file ---------------------------------------------------------------------------

    def summary(self) -> list[NamespaceSummary]:
        """Every namespace in the file, sorted: what `rpd state show` prints."""
        with self._mutex:
            return summaries(self._db)

    def clear(self, namespace: str | None = None) -> list[NamespaceSummary]:
        """Delete one namespace, or all of them; returns what was there. Deleted pages are zeroed
        (the journal holds event sources and user ids), and a full clear also shrinks the file."""
        with self._mutex:
            self._store.writable()
            cleared = [s for s in self.summary() if namespace in (None, s.namespace)]
            self._store.commit()
            self._db.execute("PRAGMA secure_delete = ON")
            with transaction(self._db):
                for table in filter(self._store.has_table, NAMESPACED):
                    if namespace is None:
                        self._db.execute(f"DELETE FROM {table}")
                    else:
                        self._db.execute(f"DELETE FROM {table} WHERE ns = ?", (namespace,))
                # The names of the files only the journal rows deleted came from.
                self._db.execute(
                    f"DELETE FROM {SOURCE_FILES} WHERE id NOT IN (SELECT file FROM journal)"
                )
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
            self._use(self.namespace)
            self._begun = set()
            self._files = {}
            self._run = None
            return cleared

    def flush(self) -> None:
        """Commit what is buffered."""
        with self._mutex:
            self._store.commit()


def _write_key(event_id: str, request: ApiRequest) -> tuple[str, str, str, str]:
    return (event_id, request.method, request.endpoint, request.path)
