"""The durable replay state: identity cache, journal, writes in flight (SPEC 5), in SQLite.

One file holds any number of namespaces, one per (base URL, token fingerprint), so a sandbox and a
production account never see each other's ids. The token itself is never stored: only the first
16 hex characters of a salted sha256 (SPEC 8).

Durability: WAL with `synchronous=NORMAL`, so a commit needs no fsync and survives the process
being killed (not a power cut of the last few commits). Outcomes and what they taught are written
into one open transaction that is committed every `batch_size` events or `batch_seconds`, on
`flush()` and on close; a kill loses at most that batch, which only means those events run again
(their writes in flight were committed by `begin_write`, and the deletion of those rows belongs to
the lost batch, so the rerun reconciles instead of repeating a create). `begin_write` commits
before it returns. An exclusive `flock` on the database file itself (symlinks resolved), held while
the state is open for writing, keeps two runs off one file whatever names they were given; the
kernel releases it when the process dies, so no stale locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.fields import rfc3339
from rudder_pipedrive_cli.core.index import IndexRows, counts_by_kind, id_order
from rudder_pipedrive_cli.core.known import links_persons, survivor
from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome, PdId
from rudder_pipedrive_cli.core.recency import newest
from rudder_pipedrive_cli.io.config import is_loopback
from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, Lru, Spill

SCHEMA_VERSION = 1
# Measured with benchmarks/state_writes.py (20,000 events): a commit per event records ~22k
# outcomes/s, batches of 10 ~37k, 100 ~49k, 500 ~53k. 100 takes most of the gain while a kill
# loses (re-runs, reconciled) at most 100 outcomes; events with a write commit at `begin_write`.
BATCH_SIZE = 100
BATCH_SECONDS = 1.0
KINDS = ("person", "org")  # memberships are kept for the run only, never stored
# Identity rows of this kind map a person merged away (key) to the person it went into.
MERGED = "merged"
# Identity rows of these kinds hold the send time of a create of a person or an organization
# whose outcome stays unknown (Outcome.unsettled), as a string id.
UNSETTLED = {"person": "unsettled:person", "org": "unsettled:org"}
# Identity rows of this kind map a person (key) to the one a merge left unknown was into.
MERGING = "merging"
STATUSES = ("sent", "unchanged", "skipped", "failed")

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE identities (
    ns TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, pd_id TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (ns, kind, key)
) WITHOUT ROWID;
CREATE TABLE lead_origins (
    ns TEXT NOT NULL, person_id TEXT NOT NULL, origin_id TEXT NOT NULL,
    PRIMARY KEY (ns, person_id, origin_id)
) WITHOUT ROWID;
CREATE TABLE leads_listed (
    ns TEXT NOT NULL, person_id TEXT NOT NULL, PRIMARY KEY (ns, person_id)
) WITHOUT ROWID;
CREATE TABLE journal (
    ns TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    source TEXT NOT NULL, finished_at TEXT NOT NULL, PRIMARY KEY (ns, event_id)
) WITHOUT ROWID;
CREATE TABLE inflight (
    ns TEXT NOT NULL, event_id TEXT NOT NULL, method TEXT NOT NULL, endpoint TEXT NOT NULL,
    path TEXT NOT NULL, sent_at TEXT NOT NULL, PRIMARY KEY (ns, event_id, method, endpoint, path)
) WITHOUT ROWID;
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, ns TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    counts_json TEXT
);
CREATE TABLE fields (
    ns TEXT NOT NULL, entity TEXT NOT NULL, fetched_at TEXT NOT NULL, payload_json TEXT NOT NULL,
    PRIMARY KEY (ns, entity)
) WITHOUT ROWID;
"""
TABLES = ("identities", "lead_origins", "leads_listed", "journal", "inflight", "runs", "fields")
# Field recency (core/recency.py): per record and field, the time of the event whose value rpd
# last wrote. Added to files of schema 1 when first opened for writing; read as empty until then.
RECENCY_TABLE = "field_recency"
RECENCY_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {RECENCY_TABLE} (
    ns TEXT NOT NULL, kind TEXT NOT NULL, pd_id TEXT NOT NULL, field TEXT NOT NULL,
    stamp TEXT NOT NULL, PRIMARY KEY (ns, kind, pd_id, field)
) WITHOUT ROWID
"""
# Objects of a bucket or backup folder a run read to the end with every event done (SPEC 2,
# resume), by name and version (ETag or size). Created on first use, so that files written
# before it open as they are.
OBJECTS_TABLE = """
CREATE TABLE IF NOT EXISTS objects_done (
    ns TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, finished_at TEXT NOT NULL,
    PRIMARY KEY (ns, name)
) WITHOUT ROWID
"""

# The identity index (core/index.py): one row per listed record with its identity value, and per
# kind the field it was listed by and the Pipedrive-clock time its next refresh lists from.
INDEX_TABLE = "identity_index"
INDEX_MARKS = "identity_index_marks"
INDEX_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {INDEX_TABLE} (
    ns TEXT NOT NULL, kind TEXT NOT NULL, pd_id TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (ns, kind, pd_id)
) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {INDEX_TABLE}_value ON {INDEX_TABLE} (ns, kind, value)",
    f"""CREATE TABLE IF NOT EXISTS {INDEX_MARKS} (
    ns TEXT NOT NULL, kind TEXT NOT NULL, field_key TEXT NOT NULL, since TEXT NOT NULL,
    PRIMARY KEY (ns, kind)
) WITHOUT ROWID""",
)


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(f"rpd-state:{token}".encode()).hexdigest()[:16]


def namespace_key(base_url: str, token: str) -> str:
    """'BASE_URL#FINGERPRINT': how rpd keyed namespaces before it keyed them on the account (one
    per spelling of a URL). Such namespaces are still read, and a send moves them into its
    account's. The token is never stored, only a salted hash prefix of it."""
    return f"{base_url.rstrip('/')}#{token_fingerprint(token)}"


ACCOUNT = "company:"  # the prefix of an account's namespace


def account_namespace(company_id: str, token: str) -> str:
    """'company:ID#FINGERPRINT': one namespace per Pipedrive account (the company id `GET
    /v1/users/me` answers) and token, however the URL that reached it was spelled."""
    return f"{ACCOUNT}{company_id}#{token_fingerprint(token)}"


DEFAULT_PORTS = {"http": 80, "https": 443}


def normalised_url(url: str) -> str:
    """A base URL as shown: scheme and host in lower case, no default port, no `.`, `..` or
    trailing `/` in the path (`HTTP://Acme.pipedrive.com:443/./` is https://acme.pipedrive.com)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = parts.port
    netloc = host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    segments: list[str] = []
    for segment in parts.path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return f"{scheme}://{netloc}" + "".join(f"/{segment}" for segment in segments)


def _place(url: str) -> str:
    """Where a URL leads, for matching spellings without asking Pipedrive: its normalised form
    with any loopback host as 127.0.0.1 (localhost, ::1 and 127.0.0.1 on one port are one
    server)."""
    shown = normalised_url(url)
    host = urlsplit(shown).hostname or ""
    if not is_loopback(host):
        return shown
    written = f"[{host}]" if ":" in host else host
    return shown.replace(f"//{written}", "//127.0.0.1", 1)


# Keys of the meta table that remember accounts: which account a URL and token led to (what
# dry-run, offline, and a send that cannot ask go by) and the URL an account was last reached at.
def _alias_key(base_url: str, fingerprint: str) -> str:
    return f"account:{_place(base_url)}#{fingerprint}"


def _url_key(namespace: str) -> str:
    return f"url:{namespace}"


def utc_stamp() -> str:
    """Now, as RFC 3339 UTC to the second: the stamps of state rows and of writes in flight."""
    return rfc3339(datetime.now(UTC))


def encode_id(pd_id: PdId) -> str:
    """A Pipedrive id as text with a type tag, so 5 and "5" stay distinct and come back as sent."""
    return f"i:{pd_id}" if isinstance(pd_id, int) else f"s:{pd_id}"


def decode_id(text: str) -> PdId:
    tag, _, value = text.partition(":")
    return int(value) if tag == "i" else value


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    started_at: str
    finished_at: str | None
    counts: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceSummary:
    namespace: str
    base_url: str
    fingerprint: str
    identities: Mapping[str, int]  # by kind: person, org
    # By kind (lead, deal, activity, note): persons whose records were listed, origins known.
    leads_listed: Mapping[str, int]
    lead_origins: Mapping[str, int]
    journal: Mapping[str, int]  # by status: sent, unchanged, skipped, failed
    inflight: int
    unsettled: int  # creates whose outcome stayed unknown: the next event of each lists first
    last_run: RunSummary | None
    company_id: str = ""  # the account's; "" in a namespace keyed on a URL (an older rpd)

    def as_json(self) -> dict[str, Any]:
        run = self.last_run
        return {
            "namespace": self.namespace,
            "base_url": self.base_url,
            "company_id": self.company_id or None,
            "fingerprint": self.fingerprint,
            "identities": dict(self.identities),
            "leads_listed": dict(self.leads_listed),
            "lead_origins": dict(self.lead_origins),
            "journal": dict(self.journal),
            "inflight": self.inflight,
            "unsettled": self.unsettled,
            "last_run": None
            if run is None
            else {
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "counts": None if run.counts is None else dict(run.counts),
            },
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedFields:
    fetched_at: str
    payload: Any


def real_path(path: Path) -> Path:
    """The file a state path names, symlinks resolved: what is locked, opened and removed, so that
    SQLite's -wal and -shm always sit beside the real file whatever name a run was given."""
    return path.resolve()


def lock_path(path: Path) -> Path:
    """Where a running rpd leaves its pid for others' messages (the lock itself is on the file)."""
    real = real_path(path)
    return real.with_name(real.name + ".lock")


def _holder_pid(real: Path, handle: int) -> str:
    """The pid of the process holding a `flock` on the file: from /proc/locks (Linux), which sees
    a holder that came in through another name (a hard link), else from its lock file."""
    stat = os.fstat(handle)
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if fields[1:2] == ["FLOCK"] and fields[3:4] == ["WRITE"] and fields[5:6] == [device]:
                return fields[4]
    with contextlib.suppress(OSError):
        return lock_path(real).read_text().strip() or "unknown"
    return "unknown"


class _FileLock:
    """An exclusive `flock` on the database file itself (symlinks resolved), so every name of the
    file, symlink or hard link, meets the same lock; the kernel drops it when the process dies, so
    no stale locks. SQLite's own locks are POSIX record locks, which on Linux never interact with
    `flock`. The owner's pid goes into PATH.lock beside the real file, for others' messages."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.real = real_path(state_path)
        self.path = lock_path(state_path)
        self._handle: int | None = None

    def acquire(self, *, create: bool = True) -> None:
        """Lock the file, creating it (owner-only: the journal holds user ids and event sources,
        and the -wal and -shm files SQLite creates inherit this mode) when `create`."""
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        while True:
            handle = os.open(self.real, flags, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _holder_pid(self.real, handle)
                os.close(handle)
                raise UsageError(
                    f"state file {self.state_path} is in use by another rpd process (pid {pid})",
                    hint="wait for it to finish, or use --state",
                ) from None
            # The file may have been removed (rpd state clear) between open and flock: then the
            # lock is on an orphan, so take it again on the file now at that path.
            try:
                current = os.stat(self.real)
            except FileNotFoundError:
                os.close(handle)
                if not create:
                    raise
                continue
            if current.st_ino != os.fstat(handle).st_ino:
                os.close(handle)
                continue
            self._handle = handle
            with contextlib.suppress(OSError):  # only for messages: a read-only folder is fine
                self.path.write_text(str(os.getpid()))
            return

    @property
    def links(self) -> int:
        """How many names (hard links) the locked file has."""
        return 0 if self._handle is None else os.fstat(self._handle).st_nlink

    def release(self) -> None:
        """Remove the pid file while still holding the lock, then drop the lock."""
        if self._handle is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._handle)
        self._handle = None


def _lock_for_writing(path: Path) -> _FileLock:
    """Take the lock, and create the file (owner-only) if it is not there yet."""
    lock = _FileLock(path)
    try:
        lock.real.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as error:
        lock.release()
        raise UsageError(
            f"cannot open state file {path}: {error.strerror or error}",
            hint="check the directory's permissions, or use another --state",
        ) from None
    return lock


SQLITE_HEADER = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    """Whether the file is an SQLite database (or empty): what `rpd state clear` may remove."""
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_HEADER))
    return head in (b"", SQLITE_HEADER)


def check_state_path(path: Path) -> None:
    """A state path must be a regular file, or not exist yet (rpd creates it): not a directory,
    and not a device such as /dev/null, where SQLite fails in ways that say nothing useful."""
    if path.is_dir():
        raise UsageError(f"--state {path} is a directory", hint="give --state the state file")
    if path.exists() and not path.is_file():
        raise UsageError(
            f"--state {path} is not a regular file",
            hint="give --state a file path (rpd creates it if it is not there)",
        )


class ForeignFile(UsageError):
    """--state names a file that is not rpd's (a mistyped path): never removed, even by clear."""


def _foreign(path: Path, what: str) -> ForeignFile:
    return ForeignFile(
        f"{path} is not an rpd state file ({what})",
        hint="check --state: this file is not rpd's, and rpd leaves it alone",
    )


class StateUnusable(UsageError):
    """The state file cannot be used (damaged, or its disk full): exit 2, with what to do. Raised
    by any state operation, it stops a run at once: events go on only while their writes are
    recorded (SPEC 5), and a run that went on would journal nothing of what it did."""


# SQLite's primary result codes (sqlite3.h) that say the file or its disk failed, not rpd.
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 10, 11, 13, 26
# A namespace as rpd writes it into every row ("...#" and a 16-hex token fingerprint): how a file
# whose first page (SQLite's header) was destroyed is still known to be rpd's, so clear removes it.
NAMESPACE_MARK = re.compile(rb"#[0-9a-f]{16}")
PAGE_MIN = 512  # SQLite's smallest page: every database file is a whole number of pages


def state_failure(path: Path, error: sqlite3.Error) -> StateUnusable | None:
    """What a failure of SQLite under the state means for the user, or None for a bug in rpd."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == SQLITE_FULL:
        return StateUnusable(
            f"disk full: state file {path}",
            hint="free space on its disk, then rerun the same command: it resumes where this "
            "run stopped (what it sent is recorded)",
        )
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return damaged(path, f"SQLite: {error}")
    if code == SQLITE_IOERR:
        return StateUnusable(
            f"state file {path} could not be read or written (SQLite: {error})",
            hint="check its disk, then rerun the same command: it resumes where this run stopped",
        )
    return None


def damaged(path: Path, detail: str) -> StateUnusable:
    return StateUnusable(
        f"state file {path} is damaged ({detail}); {_what_it_held(path)}",
        hint=f"`rpd state clear --state {path}` starts over (events already sent are then found "
        "by their lookups, not created again), or restore a copy of the file",
    )


def _what_it_held(path: Path) -> str:
    """What can still be read from a damaged state file, in a few words."""
    counts: list[str] = []
    accounts: set[str] = set()
    try:
        connection = _connect_readonly(path, "mode=ro")
    except sqlite3.Error:
        return "nothing in it can be read"
    try:
        for table, one, many in (
            ("journal", "journal entry", "journal entries"),
            ("identities", "identity", "identities"),
        ):
            try:
                sql = f"SELECT ns, count(*) FROM {table} GROUP BY ns"
                rows = connection.execute(sql).fetchall()
            except sqlite3.Error:
                continue
            count = sum(int(row[1]) for row in rows)
            counts.append(f"{count} {one if count == 1 else many}")
            accounts.update(_account_shown(connection, str(row[0])) for row in rows)
    finally:
        connection.close()
    if not counts:
        return "nothing in it can be read"
    where = f" for {', '.join(sorted(accounts))}" if accounts else ""
    return f"readable: {' and '.join(counts)}{where}"


def _account_shown(connection: sqlite3.Connection, namespace: str) -> str:
    """A namespace in a few words: the URL its account was reached at, else its company id; a
    namespace an older rpd keyed on a URL is that URL."""
    if not namespace.startswith(ACCOUNT):
        return namespace.rpartition("#")[0] or namespace
    with contextlib.suppress(sqlite3.Error):
        shown = connection.execute(
            "SELECT value FROM meta WHERE key = ?", (_url_key(namespace),)
        ).fetchone()
        if shown is not None:
            return str(shown[0])
    return f"company {namespace.removeprefix(ACCOUNT).rpartition('#')[0]}"


def looks_like_state(path: Path) -> bool:
    """Whether a file without SQLite's header is an rpd state file whose header was destroyed:
    whole SQLite pages, and rows carrying rpd's namespaces."""
    size = path.stat().st_size
    if size < PAGE_MIN or size % PAGE_MIN:
        return False
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return NAMESPACE_MARK.search(data) is not None


def _unreadable(path: Path, detail: str | sqlite3.Error) -> UsageError:
    """A state file SQLite cannot use: damaged, or (no SQLite header) not rpd's at all."""
    if path.is_file() and not is_sqlite(path):
        if looks_like_state(path):
            return damaged(path, "its header is not SQLite's")
        return _foreign(path, "not an SQLite database")
    if isinstance(detail, sqlite3.Error):
        return state_failure(path, detail) or damaged(path, f"SQLite: {detail}")
    return damaged(path, detail)


def _check_schema(connection: sqlite3.Connection, path: Path) -> bool:
    """True when the file already holds our schema, False when it is empty; else UsageError."""
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            return False
        if "meta" not in tables:
            if tables & set(TABLES):  # rpd's, damaged
                raise _unreadable(path, "its meta table is gone")
            raise _foreign(path, "an SQLite database without rpd's tables")  # a mistyped --state
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as error:
        raise _unreadable(path, error) from None
    version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
    if version is None:
        raise _unreadable(path, "its schema version is gone")
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"state file {path} was written by a newer rpd (schema {version})",
            hint="upgrade rpd or use another --state",
        )
    if not set(TABLES) <= tables:  # rpd's, damaged: a table is gone
        raise _unreadable(path, "its tables are not all there")
    # A damaged page (a zeroed block, a torn write) is found now, not by the one query that meets
    # it mid-run. It reads every page once: 70 ms for a state file of 100,000 events (22 MB),
    # 123 ms for the whole writable open (benchmarks/state_open.py).
    try:
        problem = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise _unreadable(path, error) from None
    if problem != "ok":
        raise damaged(path, "SQLite's check found a broken page")
    return True


def _empty_in_memory() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    for statement in SCHEMA.split(";"):
        connection.execute(statement)
    return connection


def _connect(path: Path, readonly: bool) -> tuple[sqlite3.Connection, bool]:
    """An autocommit connection (transactions are explicit) and whether the file is empty.

    Read-only opens are read-write connections with `query_only` on: SQLite refuses every write,
    and on close it removes the -wal and -shm files that a `mode=ro` connection would leave
    behind. (Closing the last connection after a killed run does checkpoint its committed WAL
    into the file: the content stays the same.) An absent or empty file reads as an empty state
    kept in memory.
    """
    if readonly and not path.exists():
        return _empty_in_memory(), False
    try:
        if readonly:
            connection = _connect_readonly(path, "mode=rw")
        else:
            connection = sqlite3.connect(
                real_path(path), isolation_level=None, check_same_thread=False
            )
    except sqlite3.Error as error:
        raise _unreadable(path, error) from None
    try:
        exists = _check_schema(connection, path)
    except UsageError:
        connection.close()
        if not readonly or os.access(path.parent, os.W_OK):
            raise
        # A folder rpd cannot write (a read-only mount, another user's): SQLite cannot make
        # the -shm a WAL file needs to be read. Read the file as it is instead, unless a run
        # left changes in its -wal (killed): read without them, it would look older than it is.
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise UsageError(
                f"state file {path} is in a folder rpd cannot write, and its last run left "
                f"changes in {wal.name} that only a writable folder lets SQLite read",
                hint="copy the state file with its -wal to a folder you can write, and use that",
            ) from None
        try:
            connection = _connect_readonly(path, "mode=ro&immutable=1")
            exists = _check_schema(connection, path)
        except sqlite3.Error as error:
            raise _unreadable(path, error) from None
        except BaseException:
            connection.close()
            raise
    except BaseException:
        connection.close()
        raise
    if readonly and not exists:
        connection.close()
        return _empty_in_memory(), False
    return connection, not exists


def _connect_readonly(path: Path, mode: str) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?{mode}"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA query_only = ON")
    return connection


class _Guarded:
    """The state's connection: a failure of the file or its disk (full, a damaged page, I/O) is
    raised as `StateUnusable`, the open transaction is rolled back, and every later statement
    raises the same, so a run stops at its first failed state write and keeps what was committed
    (writes in flight are committed before they are sent: the rerun reconciles them)."""

    __slots__ = ("_db", "failure", "path")

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self.failure: StateUnusable | None = None

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        """The cursor, its first row read (SQLite runs a statement up to its first row here).
        Its rows are not read ahead here: that cost 1.6 us a statement (measured on a lookup by
        key; a few statements an event), for failures that `quick_check` at open already rules
        out (a damaged page); a full disk and I/O errors on writes all come here."""
        self._check()
        try:
            return self._db.execute(sql, parameters)
        except sqlite3.DatabaseError as error:
            raise self._failed(error) from None

    def executemany(self, sql: str, rows: Any) -> None:
        self._check()
        try:
            self._db.executemany(sql, rows)
        except sqlite3.DatabaseError as error:
            raise self._failed(error) from None

    def close(self) -> None:
        self._db.close()

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _failed(self, error: sqlite3.DatabaseError) -> BaseException:
        failure = state_failure(self.path, error)
        if failure is None:  # not the file's or the disk's doing: a bug in rpd
            return error
        self.failure = failure
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        return failure


class _Overlay:
    """What a read-only state learned: shadows the file (None = forgotten), never written to it.
    Its tables keep memory bounded (io/scratch.py)."""

    def __init__(self, spill: Spill) -> None:
        self.ids: MutableMapping[tuple[str, str], PdId | None] = spill.table()
        self.leads: MutableMapping[str, frozenset[str]] = spill.table()
        # Persons whose stored list is no longer complete (person -> True).
        self.unlisted: MutableMapping[str, bool] = spill.table()


class _FieldRecency:
    """The field recency table (Known.recency) of one namespace; in memory for a read-only
    state, whose file is never written (and may be older than the table)."""

    def __init__(
        self,
        db: sqlite3.Connection | _Guarded,
        namespace: str,
        *,
        memory: MutableMapping[tuple[str, str], dict[str, str]] | None,
    ) -> None:
        self._db = db
        self._ns = namespace
        self._memory = memory  # None: writable, the table holds it all
        self._stored = (
            db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (RECENCY_TABLE,)
            ).fetchone()
            is not None
        )

    def times(self, kind: str, record: str) -> dict[str, str]:
        found: dict[str, str] = {}
        if self._stored:
            found = dict(
                self._db.execute(
                    f"SELECT field, stamp FROM {RECENCY_TABLE} "
                    "WHERE ns = ? AND kind = ? AND pd_id = ?",
                    (self._ns, kind, record),
                ).fetchall()
            )
        learned = None if self._memory is None else self._memory.get((kind, record))
        if learned is not None:
            found = newest(found, learned)
        return found

    def learn(self, kind: str, record: str, times: Mapping[str, str]) -> None:
        """Keep the later time of each field (inside the caller's open batch when writable)."""
        if self._memory is not None:
            self._memory[(kind, record)] = newest(self._memory.get((kind, record), {}), times)
            return
        self._db.executemany(
            f"INSERT INTO {RECENCY_TABLE} (ns, kind, pd_id, field, stamp) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ns, kind, pd_id, field) "
            "DO UPDATE SET stamp = max(stamp, excluded.stamp)",
            [(self._ns, kind, record, name, at) for name, at in times.items()],
        )

    def clear(self, namespace: str | None) -> None:
        if self._memory is not None:
            self._memory.clear()
        if not self._stored:
            return
        if namespace is None:
            self._db.execute(f"DELETE FROM {RECENCY_TABLE}")
        else:
            self._db.execute(f"DELETE FROM {RECENCY_TABLE} WHERE ns = ?", (namespace,))


class _IndexTable:
    """The identity index's rows of one namespace (core/index.py's `IndexRows`), in its own
    tables, written inside the state's open batch. A read-only state reads them (dry-run's
    estimates) and never writes them."""

    def __init__(self, state: ReplayState) -> None:
        self._state = state
        db = state._db
        self._db = db
        self._ns = state.namespace
        self._stored = (
            db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (INDEX_MARKS,)
            ).fetchone()
            is not None
        )

    def ids(self, kind: str, value: str) -> list[PdId]:
        if not self._stored:  # a read-only open of a file older than the index
            return []
        with self._state._mutex:
            rows = self._db.execute(
                f"SELECT pd_id FROM {INDEX_TABLE} WHERE ns = ? AND kind = ? AND value = ?",
                (self._ns, kind, value),
            ).fetchall()
        return sorted((decode_id(row[0]) for row in rows), key=id_order)

    def put(self, kind: str, rows: Iterable[tuple[PdId, str | None]]) -> None:
        rows = list(rows)
        keep = [(self._ns, kind, encode_id(r), v) for r, v in rows if v is not None]
        gone = [(self._ns, kind, encode_id(r)) for r, v in rows if v is None]
        with self._writing():
            self._db.executemany(
                f"INSERT OR REPLACE INTO {INDEX_TABLE} (ns, kind, pd_id, value) "
                "VALUES (?, ?, ?, ?)",
                keep,
            )
            self._db.executemany(
                f"DELETE FROM {INDEX_TABLE} WHERE ns = ? AND kind = ? AND pd_id = ?", gone
            )

    def add(self, kind: str, record: PdId, value: str) -> None:
        with self._writing():
            self._db.execute(
                f"INSERT OR IGNORE INTO {INDEX_TABLE} (ns, kind, pd_id, value) VALUES (?, ?, ?, ?)",
                (self._ns, kind, encode_id(record), value),
            )

    def drop(self, kind: str, record: PdId) -> None:
        self.put(kind, [(record, None)])

    def since(self, kind: str, field_key: str) -> str | None:
        if not self._stored:
            return None
        with self._state._mutex:
            row = self._db.execute(
                f"SELECT since FROM {INDEX_MARKS} WHERE ns = ? AND kind = ? AND field_key = ?",
                (self._ns, kind, field_key),
            ).fetchone()
        return str(row[0]) if row is not None and row[0] else None

    def mark(self, kind: str, field_key: str, since: str) -> None:
        with self._writing():
            self._db.execute(
                f"INSERT OR REPLACE INTO {INDEX_MARKS} (ns, kind, field_key, since) "
                "VALUES (?, ?, ?, ?)",
                (self._ns, kind, field_key, since),
            )

    def forget(self, kind: str) -> None:
        with self._writing():
            self._db.execute(
                f"DELETE FROM {INDEX_TABLE} WHERE ns = ? AND kind = ?", (self._ns, kind)
            )

    def size(self, kind: str) -> int:
        if not self._stored:
            return 0
        with self._state._mutex:
            row = self._db.execute(
                f"SELECT count(*) FROM {INDEX_TABLE} WHERE ns = ? AND kind = ?", (self._ns, kind)
            ).fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        state = self._state
        with state._mutex:
            state._writable()
            state._open_batch()
            yield
            state._buffered()


def clear_index(db: sqlite3.Connection | _Guarded, namespace: str | None) -> None:
    """Delete the identity index of one namespace, or of all (`rpd state clear`)."""
    for table in (INDEX_TABLE, INDEX_MARKS):
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if exists is None:
            continue
        if namespace is None:
            db.execute(f"DELETE FROM {table}")
        else:
            db.execute(f"DELETE FROM {table} WHERE ns = ?", (namespace,))


_UNKNOWN: Any = object()  # not in a cache or overlay: ask the file


@dataclass(slots=True)
class _Batch:
    size: int = 0
    opened_at: float = 0.0


class ReplayState:
    """The replay state of one namespace in one file; implements `Known` (core/known.py).

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
        lock: _FileLock | None,
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
        self._db = _Guarded(connection, path)
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
        # Whether any create or merge was left unsettled: only then is a second look worth it.
        self._unsettled = self._has_kind(*UNSETTLED.values(), MERGING)
        # Identities of events that failed in this run (Outcome.troubled): kept for the run only,
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
        check_state_path(path)
        lock = None if readonly else _lock_for_writing(path)
        try:
            connection, empty = _connect(path, readonly)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if not readonly:
            try:
                _prepare(connection, empty=empty)
            except BaseException as error:
                connection.close()
                if lock is not None:
                    lock.release()
                if isinstance(error, sqlite3.DatabaseError):
                    raise (state_failure(path, error) or error) from None
                raise
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

    # -- Known -----------------------------------------------------------------------------------

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

    def unsettled(self, kind: str, key: str) -> str | None:
        if not self._unsettled:
            return None
        sent_at = self._identity(UNSETTLED[kind], key)
        return None if sent_at is None else str(sent_at)

    def troubled(self, kind: str, key: str) -> bool:
        with self._mutex:
            return bool(self._troubled) and (kind, key) in self._troubled

    def recency(self, kind: str, record: PdId) -> Mapping[str, str]:
        with self._mutex:
            return self._recency.times(kind, encode_id(record))

    def merging_into(self, person_id: PdId) -> PdId | None:
        if not self._unsettled:
            return None
        return self._identity(MERGING, encode_id(person_id))

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
        """Apply what an event taught (identities None = forget), like `MemoryKnown.learn`."""
        with self._mutex:
            self._learn(outcome)
            self._buffered()

    def _learn(self, outcome: Outcome) -> None:
        for slot in outcome.troubled:
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
                (UNSETTLED[kind], key, None)
                for (kind, key), pd_id in outcome.identities.items()
                if pd_id is not None and (kind, key) not in outcome.unsettled
            ]
            ids += [(MERGING, encode_id(gone), None) for gone in outcome.merged]
        if outcome.unsettled or outcome.merging:
            self._unsettled = True
            ids += [
                (UNSETTLED[kind], key, sent_at)
                for (kind, key), sent_at in outcome.unsettled.items()
            ]
            ids += [(MERGING, encode_id(person), into) for person, into in outcome.merging.items()]
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
                (self.namespace, event_id, outcome.status, outcome.public_reason, source, now),
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
                self._mark(UNSETTLED[kind], key, sent_at, keep=True)
            if request.merges is not None:  # a merge: the survivor of the one being sent
                person, into = request.merges
                self._mark(MERGING, encode_id(person), into, keep=False)
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
            with _transaction(self._db):
                for old in self._keyed_on_url(base_url, fingerprint):
                    self._move(old, namespace)
                for key, value in (
                    (_alias_key(base_url, fingerprint), namespace),
                    (_url_key(namespace), normalised_url(base_url)),
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
        here = _alias_key(base_url, "")
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
        self._unsettled = self._has_kind(*UNSETTLED.values(), MERGING)
        # What was read or learned under the previous namespace holds for it only.
        self._cache.clear()
        for table in (self._overlay.ids, self._overlay.leads, self._overlay.unlisted):
            table.clear()
        self._recency = self._field_recency(namespace)

    def _field_recency(self, namespace: str) -> _FieldRecency:
        """A read-only state keeps what it learns in a bounded table, never in the file."""
        memory = self._spill.table() if self.readonly else None
        return _FieldRecency(self._db, namespace, memory=memory)

    def _keyed_on_url(self, base_url: str, fingerprint: str | None) -> list[str]:
        """Namespaces an older rpd keyed on a spelling of this URL (and this token's fingerprint,
        unless None), the most recently run first."""
        place = _place(base_url)
        found = []
        for namespace in self._namespaces():
            url, _, print_ = namespace.rpartition("#")
            if namespace.startswith(ACCOUNT) or not url:
                continue
            if _place(url) == place and fingerprint in (None, print_):
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
        return _IndexTable(self)

    # -- the whole file ---------------------------------------------------------------------------

    def summary(self) -> list[NamespaceSummary]:
        """Every namespace in the file, sorted: what `rpd state show` prints."""
        with self._mutex:
            return [self._namespace_summary(ns) for ns in self._namespaces()]

    def clear(self, namespace: str | None = None) -> list[NamespaceSummary]:
        """Delete one namespace, or all of them; returns what was there. Deleted pages are zeroed
        (the journal holds event sources and user ids), and a full clear also shrinks the file."""
        with self._mutex:
            self._writable()
            cleared = [s for s in self.summary() if namespace in (None, s.namespace)]
            self._commit()
            self._db.execute("PRAGMA secure_delete = ON")
            with _transaction(self._db):
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
                    (namespace, namespace, None if namespace is None else _url_key(namespace)),
                )
            if namespace is None:
                self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("PRAGMA secure_delete = OFF")
            self._overlay = _Overlay(self._spill)
            self._cache.clear()
            self._merges = self._has_merges()
            self._unsettled = self._has_kind(*UNSETTLED.values(), MERGING)
            self._begun = set()
            self._run_id = None
            return cleared

    def _namespaces(self) -> list[str]:
        union = " UNION ".join(f"SELECT DISTINCT ns FROM {table}" for table in TABLES)
        return sorted(row[0] for row in self._db.execute(union))

    def _namespace_summary(self, ns: str) -> NamespaceSummary:
        base_url, _, fingerprint = ns.rpartition("#")
        company_id = ""
        if ns.startswith(ACCOUNT):
            company_id = base_url.removeprefix(ACCOUNT)
            shown = self._db.execute(
                "SELECT value FROM meta WHERE key = ?", (_url_key(ns),)
            ).fetchone()
            base_url = "" if shown is None else str(shown[0])
        identities = dict.fromkeys(KINDS, 0) | dict(
            self._db.execute(
                "SELECT kind, count(*) FROM identities WHERE ns = ? AND kind IN (?, ?) "
                "GROUP BY kind",
                (ns, *KINDS),
            ).fetchall()
        )
        journal = dict.fromkeys(STATUSES, 0) | dict(
            self._db.execute(
                "SELECT status, count(*) FROM journal WHERE ns = ? GROUP BY status", (ns,)
            ).fetchall()
        )

        def count(table: str) -> int:
            sql = f"SELECT count(*) FROM {table} WHERE ns = ?"
            return int(self._db.execute(sql, (ns,)).fetchone()[0])

        def by_kind(table: str) -> dict[str, int]:  # rows are per person and kind (origins_key)
            sql = f"SELECT person_id, count(*) FROM {table} WHERE ns = ? GROUP BY person_id"
            rows = self._db.execute(sql, (ns,))
            return counts_by_kind((decode_id(key), n) for key, n in rows)

        run = self._db.execute(
            "SELECT started_at, finished_at, counts_json FROM runs WHERE ns = ? "
            "ORDER BY id DESC LIMIT 1",
            (ns,),
        ).fetchone()
        return NamespaceSummary(
            namespace=ns,
            base_url=base_url if fingerprint else ns,
            fingerprint=fingerprint,
            company_id=company_id,
            identities=identities,
            leads_listed=by_kind("leads_listed"),
            lead_origins=by_kind("lead_origins"),
            journal=journal,
            inflight=count("inflight"),
            unsettled=int(
                self._db.execute(
                    "SELECT count(*) FROM identities WHERE ns = ? AND kind IN (?, ?, ?)",
                    (ns, *UNSETTLED.values(), MERGING),
                ).fetchone()[0]
            ),
            last_run=None
            if run is None
            else RunSummary(
                started_at=run[0],
                finished_at=run[1],
                counts=None if run[2] is None else orjson.loads(run[2]),
            ),
        )

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


def _prepare(connection: sqlite3.Connection, *, empty: bool) -> None:
    """WAL, in a new file the schema, and the tables added since schema 1 (field recency)."""
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    if empty:
        with _transaction(connection):
            for statement in SCHEMA.split(";"):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
    connection.execute(RECENCY_SCHEMA)
    for statement in INDEX_SCHEMA:
        connection.execute(statement)


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection | _Guarded) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:  # a failing state has rolled back already (_Guarded)
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@dataclass(frozen=True, slots=True, kw_only=True)
class Discarded:
    """What `discard_state` removed: the namespaces it held, or why it could not read them."""

    path: Path
    namespaces: list[NamespaceSummary]
    unreadable: str = ""  # why it was not readable, e.g. "was written by a newer rpd (schema 2)"


def discard_state(path: Path) -> Discarded:
    """Remove a state file, its -wal, -shm and lock file (for `rpd state clear`): the real file,
    symlinks resolved, and under its lock, so never under a running rpd, whatever name that run
    was given; also when the file is unreadable or from a newer rpd. The file is emptied before
    its name is removed, so a hard link to it keeps no state either. A directory, or a file that
    is no SQLite database at all (a mistyped --state), is refused, not removed."""
    check_state_path(path)
    if not is_sqlite(path) and not looks_like_state(path):
        raise _foreign(path, "not an SQLite database")
    lock = _FileLock(path)
    try:
        lock.acquire(create=False)
    except OSError as error:  # a read-only folder: nothing there can be removed either
        raise UsageError(
            f"cannot remove state file {path}: {error.strerror or error}",
            hint="check the directory's permissions",
        ) from None
    try:
        namespaces: list[NamespaceSummary] = []
        unreadable = ""
        try:
            with ReplayState.open(path, "", readonly=True) as state:
                namespaces = state.summary()
        except ForeignFile:
            raise
        except UsageError as error:
            unreadable = error.message.removeprefix(f"state file {path} ")
        real = lock.real
        os.truncate(real, 0)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                real.with_name(real.name + suffix).unlink()
        return Discarded(path=path, namespaces=namespaces, unreadable=unreadable)
    finally:
        lock.release()
