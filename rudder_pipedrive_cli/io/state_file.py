"""The state file's safety: its lock, opening it (and what a damaged, foreign or full file says),
the guarded connection every statement goes through, and discarding the file.

Durability: WAL with `synchronous=NORMAL`, so a commit needs no fsync and survives the process
being killed (not a power cut of the last few commits). An exclusive `flock` on the database file
itself (symlinks resolved), held while the state is open for writing, keeps two runs off one file
whatever names they were given; the kernel releases it when the process dies, so no stale locks.
A state path is used resolved (`Path.resolve`, symlinks followed): the file locked, opened and
removed is the real one, so SQLite's -wal and -shm, and the PATH.lock where a running rpd leaves
its pid for others' messages, always sit beside it (`beside`) whatever name a run was given.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import math
import mmap
import os
import pwd
import re
import resource
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.io.paths import NO_SPACE
from rudder_pipedrive_cli.io.state_accounts import ACCOUNT, url_key
from rudder_pipedrive_cli.io.state_path import (
    beside,
    check_not_orphaned,
    check_state_path,
    folder_refused,
    under_a_file,
)
from rudder_pipedrive_cli.io.state_schema import (
    ALIASES_SCHEMA,
    EARLIER_COLUMNS,
    FORGOTTEN,
    INDEX_SCHEMA,
    JOURNAL_SCHEMA,
    OBJECTS_TABLE,
    RECENCY_SCHEMA,
    REVISION,
    SCHEMA,
    SCHEMA_VERSION,
    SOURCE_FILES,
    SOURCE_NAME,
    SOURCE_PLACE,
    TABLES,
    UPGRADE_MARGIN,
    UPGRADE_ROOM,
    UPGRADE_TEMP,
    UPGRADES,
    VACUUM_DUE,
    split_source,
)
from rudder_pipedrive_cli.io.state_summary import NamespaceSummary, summaries


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
        return beside(real, ".lock").read_text().strip() or "unknown"
    return "unknown"


# How long taking the lock waits out a holder that lets go at once: `lock_holder` (`rpd state
# show` beside a starting send) holds it shared for an instant.
LOCK_PATIENCE = (0.01,) * 30


def _flock_soon(handle: int) -> None:
    """Take the exclusive lock, trying again over a moment before BlockingIOError."""
    for pause in (*LOCK_PATIENCE, None):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if pause is None:
                raise
            time.sleep(pause)


class StateInUse(UsageError):
    """The state file is locked by another rpd process (`FileLock.acquire`): exit 2."""


class FileLock:
    """An exclusive `flock` on the database file itself (symlinks resolved), so every name of the
    file, symlink or hard link, meets the same lock; the kernel drops it when the process dies, so
    no stale locks. SQLite's own locks are POSIX record locks, which on Linux never interact with
    `flock`. The owner's pid goes into PATH.lock beside the real file, for others' messages."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.real = state_path.resolve()
        self.path = beside(state_path, ".lock")
        self._handle: int | None = None
        self._wrote = False  # the pid file
        self.full = False  # the pid file could not be written for want of space

    def acquire(self, *, create: bool = True) -> None:
        """Lock the file, creating it (owner-only: the journal holds user ids and event sources,
        and the -wal and -shm files SQLite creates inherit this mode) when `create`."""
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        while True:
            handle = os.open(self.real, flags, 0o600)
            try:
                _flock_soon(handle)
            except BlockingIOError:
                pid = _holder_pid(self.real, handle)
                os.close(handle)
                raise StateInUse(
                    f"state file {self.state_path} is in use by another rpd process (pid {pid})",
                    hint="wait for it to finish, or give another state file with --state FILE",
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
            self._write_pid()
            return

    def _write_pid(self) -> None:
        """This process's pid into the pid file, for others' messages. A folder rpd may not
        write is fine (nothing is made there); a pid that could not be written whole (a full
        disk) is not left behind as an empty or cut file, and `full` says why. An older run's
        file, empty or not, is written over: no run waits on it (the lock is the `flock`)."""
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as error:  # a read-only folder, a folder in its place: nothing made
            self.full = error.errno in NO_SPACE
            return
        data = str(os.getpid()).encode()
        try:
            try:
                while data:  # a short write (`ulimit -f`), then the rest is refused
                    data = data[os.write(handle, data) :]
            finally:
                os.close(handle)
        except OSError as error:
            self.full = error.errno in NO_SPACE
            with contextlib.suppress(OSError):
                self.path.unlink()
            return
        self._wrote = True

    @property
    def links(self) -> int:
        """How many names (hard links) the locked file has."""
        return 0 if self._handle is None else os.fstat(self._handle).st_nlink

    def gone(self) -> str | None:
        """Whether the locked file has left its path while held: "deleted" (it has no name left,
        so what was written to it goes when it is closed), "moved" (renamed, or another file put
        in its place), else None. Two system calls: asked once, at the run's end."""
        if self._handle is None:
            return None
        held = os.fstat(self._handle)
        if held.st_nlink == 0:
            return "deleted"
        try:
            there = os.stat(self.real)
        except OSError:
            return "moved"
        return None if (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino) else "moved"

    def empty(self) -> None:
        """Empty the locked file through the lock's own handle: also once its name is gone."""
        if self._handle is not None:
            os.ftruncate(self._handle, 0)

    def release(self) -> None:
        """Remove the pid file while still holding the lock, then drop the lock."""
        if self._handle is None:
            return
        if self._wrote:  # not what is there when it could not be written (a folder, say)
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._wrote = False
        os.close(self._handle)
        self._handle = None


def lock_holder(path: Path) -> str | None:
    """The pid of the rpd holding the file's lock (a send running on it), else None. It takes
    the lock shared for an instant and never waits, so it neither blocks nor breaks that run."""
    real = path.resolve()
    try:
        handle = os.open(real, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_pid(real, handle)
    except OSError:  # a filesystem without flock (ENOLCK): nothing to tell, `state show` goes on
        return None
    finally:
        os.close(handle)  # which drops the shared lock, if it took it
    return None


def lock_for_writing(path: Path) -> FileLock:
    """Take the lock, and create the file (owner-only) if it is not there yet."""
    lock = FileLock(path)
    try:
        lock.real.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as error:  # acquire holds nothing when it fails: nothing to release
        if error.errno in NO_SPACE:
            raise disk_full(path) from None
        under = under_a_file(path)
        if under is not None:  # mkdir says only "File exists" or "Not a directory"
            raise under from None
        if error.errno in REFUSED and not lock.real.is_file():
            raise folder_refused(path) from None
        raise UsageError(
            f"cannot open state file {path}: {error.strerror or error}",
            hint=open_refused(lock.real, error),
        ) from None
    if lock.full:  # said now, before SQLite needs room too (`rpd state clear` goes on: it frees)
        lock.release()
        raise disk_full(path)
    return lock


# What a folder or a file's mode refuses (EPERM: an attribute, a security module).
REFUSED = (errno.EACCES, errno.EPERM)


def user_name(uid: int) -> str:
    """A user's login name, else its uid (a user the password database does not know)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def open_refused(real: Path, error: OSError) -> str:
    """What to look at when the state file (`real`: links resolved) could not be opened for
    writing: a file that is there refused by its own mode (chmod a-w, a copy from a read-only
    backup), a read-only file system, else the folder that should hold it."""
    if error.errno == errno.EROFS:
        return "give --state a path on a disk rpd can write to"
    if error.errno in REFUSED and real.is_file():
        owner = os.stat(real).st_uid
        if owner != os.geteuid():  # chmod is the owner's (or root's) to run, not this user's
            return (
                f"the file belongs to another user ({user_name(owner)}): use --state elsewhere, "
                "or ask its owner to let you write it"
            )
        return (
            f"the file is read-only to you: check its permissions (chmod u+w {real}), or use "
            "another --state"
        )
    return "check the directory's permissions, or use another --state"


SQLITE_HEADER = b"SQLite format 3\x00"
# What an SQLite file holds before its first write: nothing, or on OS X's msdos disks the one 'S'
# SQLite writes there itself (os_unix.c findInodeInfo), and reads as empty (unixFileSize).
SQLITE_BEFORE_WRITING = (b"", b"S")


def is_sqlite(path: Path) -> bool:
    """Whether the file is an SQLite database (or empty): what `rpd state clear` may remove."""
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_HEADER))
    return head in (*SQLITE_BEFORE_WRITING, SQLITE_HEADER)


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
SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL = 8, 10, 11, 13
SQLITE_CANTOPEN, SQLITE_NOTADB = 14, 26
# The -shm file (WAL's index, beside the state) could not be grown: on a disk with no room left
# for it, SQLite's way of saying that disk is full as rpd opens the state (an extended code).
SQLITE_IOERR_SHMSIZE = SQLITE_IOERR | 19 << 8
# The state file was moved or deleted while this run had it open: SQLite stops writing to a file
# no longer at its name (an extended code of SQLITE_READONLY: no -wal or -shm is at fault).
SQLITE_READONLY_DBMOVED = SQLITE_READONLY | 4 << 8
# Its folder may not be written to: SQLite cannot make the -wal (or -shm) beside it there.
SQLITE_READONLY_DIRECTORY = SQLITE_READONLY | 6 << 8
# A namespace as rpd writes it into every row ("...#" and a 16-hex token fingerprint): how a file
# whose first page (SQLite's header) was destroyed is still known to be rpd's, so clear removes it.
NAMESPACE_MARK = re.compile(rb"#[0-9a-f]{16}")
PAGE_MIN = 512  # SQLite's smallest page: every database file is a whole number of pages


def state_failure(path: Path, error: sqlite3.Error) -> StateUnusable | None:
    """What a failure of SQLite under the state means for the user, or None for a bug in rpd."""
    extended = getattr(error, "sqlite_errorcode", 0)
    code = extended & 0xFF
    if code in (SQLITE_FULL, SQLITE_IOERR) and (limit := size_limit_met(path)) is not None:
        return size_limited(path, limit)
    if code == SQLITE_FULL or extended == SQLITE_IOERR_SHMSIZE:
        return disk_full(path)
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return damaged(path, f"SQLite: {error}")
    if code == SQLITE_IOERR:
        return StateUnusable(
            f"state file {path} could not be read or written (SQLite: {error})",
            hint="check its disk, then rerun the same command: it resumes where this run stopped",
        )
    if extended == SQLITE_READONLY_DBMOVED:
        return moved(path, f" (SQLite: {error})")
    if extended == SQLITE_READONLY_DIRECTORY:  # not another user's -wal: none is there to blame
        folder = path.parent
        return StateUnusable(
            f"state file {path} cannot be written: SQLite keeps {path.name}-wal and "
            f"{path.name}-shm beside it, and its folder {folder} may not be written to",
            hint=f"make {folder} writable for you, or give --state a file in a folder you may "
            "write to, then rerun the same command: it resumes where this run stopped",
        )
    if code in (SQLITE_READONLY, SQLITE_CANTOPEN):
        # The file itself opened (its lock did): its -wal or -shm could not be, and SQLite
        # failed or fell back to reading only. Nothing is damaged: never 'clear it'.
        could_not = "be opened" if code == SQLITE_CANTOPEN else "be written"
        return StateUnusable(
            f"state file {path} cannot {could_not} (SQLite: {error})",
            hint=f"check that you may write {path.name}-wal and {path.name}-shm beside it (left "
            "by another user?), then rerun the same command: it resumes where this run stopped",
        )
    return None


UNCHANGED = "then rerun the same command: the file is as it was, and nothing was sent"


def no_room_to_upgrade(path: Path, stopped: NoRoomToUpgrade | None = None) -> StateUnusable:
    """The upgrade of a file of an earlier schema met a full disk: it is as it was (rolled back).
    Said with the room it takes (`UPGRADE_ROOM`): a plain 'disk full' left the user freeing a
    few MB for a run that needs more than twice the file's size. (Or `ulimit -f` refused it.)
    SQLite's temporary files take room too (`UPGRADE_TEMP`), in their own folder: on the state's
    disk, the two are said together; elsewhere, that folder is said when the state's disk has
    its room now (and was not found short: `its_disk`). It was said as the state's disk alone,
    which may have had gigabytes free. An upgrade that rewrites no journal (from schema 2) takes
    the commit's margin (`UPGRADE_MARGIN`) alone."""
    if (limit := size_limit_met(path)) is not None:
        return size_limited(path, limit)
    its_disk = stopped is not None and stopped.its_disk
    if stopped is not None and not stopped.rewrites:
        return StateUnusable(
            f"disk full: upgrading state file {path} to this rpd's schema needs about "
            f"{math.ceil(UPGRADE_MARGIN / 1_000_000):,} MB free on its disk",
            hint=f"free space there, {UNCHANGED}",
        )
    with contextlib.suppress(OSError):
        size, folder, temp = path.stat().st_size, path.resolve().parent, sqlite_temp_folder()
        needed = math.ceil(size * UPGRADE_ROOM / 1_000_000)
        in_temp = math.ceil(size * UPGRADE_TEMP / 1_000_000)
        if os.stat(temp).st_dev == os.stat(folder).st_dev:
            room = (
                f"{needed + in_temp:,} MB free on its disk, with SQLite's temporary files ({temp})"
            )
        elif its_disk or free_bytes(folder) < needed * 1_000_000:
            room = f"{needed:,} MB free on its disk"
        else:
            return StateUnusable(
                f"disk full: upgrading state file {path} to this rpd's schema needs about "
                f"{in_temp:,} MB free in {temp} for SQLite's temporary files (it has "
                f"{free_bytes(temp) // 1_000_000:,} MB)",
                hint="free space there, or set $SQLITE_TMPDIR to a folder on a disk with room, "
                f"{UNCHANGED}",
            )
        return StateUnusable(
            f"disk full: upgrading state file {path} to this rpd's schema needs about {room}",
            hint=f"free space there, {UNCHANGED}",
        )
    return disk_full(path)


def not_compacted(path: Path, unused: int) -> str:
    """What a send says of a state file whose compaction after its upgrade is still due (a
    VACUUM refused for want of room: `vacuum`), and what that holds unused until then."""
    return (
        f"state file {path} is not compacted yet after its upgrade, for want of room on its disk "
        f"or in SQLite's temporary folder ({sqlite_temp_folder()}): "
        f"{math.ceil(unused / 1_000_000):,} MB of it goes unused until a later send with room "
        "compacts it"
    )


# Where SQLite makes its temporary files (os_unix.c unixTempFileDir): the first of these that is
# a folder it may write in. The upgrade's and its VACUUM's go there, not beside the state.
SQLITE_TEMP_FOLDERS = ("$SQLITE_TMPDIR", "$TMPDIR", "/var/tmp", "/usr/tmp", "/tmp", ".")


def sqlite_temp_folder() -> Path:
    for name in SQLITE_TEMP_FOLDERS:
        folder = os.environ.get(name[1:], "") if name.startswith("$") else name
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK):
            return Path(folder)
    return Path(".")


def free_bytes(folder: Path) -> int:
    """The room left on `folder`'s disk for this process (not the blocks kept for root)."""
    disk = os.statvfs(folder)
    return disk.f_bavail * disk.f_frsize


def disk_full(path: Path) -> StateUnusable:
    return StateUnusable(
        f"disk full: state file {path}",
        hint="free space on its disk, then rerun the same command: it resumes where this "
        "run stopped (what it sent is recorded)",
    )


# The most SQLite writes to a file at once: a page (64 KiB at most) and a WAL frame's header.
MOST_WRITTEN_AT_ONCE = 65536 + 24


def size_limit_met(path: Path) -> int | None:
    """The largest file this process may write (`ulimit -f`), when one of the state's files is
    within a write of it: what refused the write, which SQLite tells only as a full disk or an
    I/O error (EFBIG), not the disk. None without a limit, or with the files well below it."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    sizes = [0]
    for name in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
        with contextlib.suppress(OSError):
            sizes.append(name.stat().st_size)
    return limit if max(sizes) + MOST_WRITTEN_AT_ONCE > limit else None


def size_limited(path: Path, limit: int) -> StateUnusable:
    return StateUnusable(
        f"state file {path} cannot grow: over the largest file this process may write "
        f"(`ulimit -f`: {limit:,} bytes)",
        hint="raise the limit, then rerun the same command: it resumes where this run stopped "
        "(what it sent is recorded)",
    )


def moved(path: Path, detail: str = "") -> StateUnusable:
    """The state file left its path while a run had it open (renamed, or SQLite cannot tell
    renamed from deleted)."""
    return StateUnusable(
        f"state file {path} was moved or deleted during the run{detail}",
        hint=f"put it back at {path}, or rerun the same command with --state where it is "
        "now: it resumes where this run stopped",
    )


def deleted(path: Path) -> StateUnusable:
    """The state file was deleted while a run had it open: what the run wrote went with it."""
    return StateUnusable(
        f"state file {path} was deleted during the run: the journal of this run is lost with it",
        hint="rerun the same command to start a new one: it checks every event against "
        "Pipedrive again, and its lookups still prevent duplicates",
    )


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
    with contextlib.suppress(OSError):
        if path.stat().st_size == 0:  # SQLite would delete its -wal (check_journal_kept)
            return "nothing in it can be read"
    try:
        connection = _connect_readonly(path, "mode=ro")
    except sqlite3.Error:
        return "nothing in it can be read"
    with contextlib.closing(connection):
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
            "SELECT value FROM meta WHERE key = ?", (url_key(namespace),)
        ).fetchone()
        if shown is not None:
            return str(shown[0])
    return f"company {namespace.removeprefix(ACCOUNT).rpartition('#')[0]}"


def check_journal_kept(path: Path) -> None:
    """An empty state file (0 bytes) is an empty state, unless its -wal holds writes.

    rpd itself leaves an empty file only before its first write: killed between creating the
    file and `PRAGMA journal_mode = WAL`, which writes SQLite's header into the file before any
    -wal exists (the schema and every journal entry go after it), or by `rpd state clear` under
    a hard link's other name. But an empty file beside a -wal that holds writes is a journal's
    file emptied after a killed run (`: > FILE`, a full disk): SQLite would delete that -wal
    without a word, and the journal of what was sent with it. It is refused before SQLite
    opens it."""
    real, wal = path.resolve(), beside(path, "-wal")
    try:
        if real.stat().st_size or not (held := wal.stat().st_size):
            return
    except OSError:  # no file yet, or no -wal: nothing to lose
        return
    raise damaged(
        path,
        f"it is empty, but {wal.name} beside it holds {held:,} bytes of its journal, which "
        "SQLite would discard",
    )


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
    """True when the file already holds our schema, False when it is empty; else UsageError.

    A table is rpd's when it has rpd's name and rpd's columns (and maybe more: a later rpd may
    add some). A file is rpd's when one of its tables but `meta` is: names like `meta`, `journal`
    or `fields` are common, and another program's database is not rpd's, whatever its `meta`
    says (`rpd state clear` would remove it). rpd writes its tables and its schema version in one
    transaction, so its own file never holds `meta` alone."""
    try:
        if not connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            # SQLite reads any one byte as an empty file: a file of the user's, never written over
            if not is_sqlite(path):
                raise _foreign(path, "not an SQLite database")
            return False
        tables = {row[0] for row in connection.execute(TABLE_NAMES)}
        expected = _rpd_columns()
        named = tables & expected.keys()
        reshaped = _reshaped(connection, named, expected, earlier=True)
        if not named - {"meta", *reshaped}:  # a mistyped --state, or a file of views only
            raise _foreign(path, "an SQLite database without rpd's tables")
        if "meta" not in tables:  # rpd's, damaged
            raise _unreadable(path, "its meta table is gone")
        row = None
        if "meta" not in reshaped:
            row = connection.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
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
    needed = set(TABLES)
    if version >= JOURNAL_SCHEMA:  # its tables as this rpd writes them, not as schema 1's
        reshaped = _reshaped(connection, named, expected, earlier=False)
        needed.add(SOURCE_FILES)
    if not needed <= tables:  # rpd's, damaged: a table is gone
        raise _unreadable(path, "its tables are not all there")
    if reshaped:  # rpd's, damaged: a table replaced by one of other columns (QA: exit 70)
        raise _unreadable(path, f"its table {reshaped[0]} does not have rpd's columns")
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


TABLE_NAMES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def _reshaped(
    connection: sqlite3.Connection,
    named: set[str],
    expected: dict[str, tuple[str, ...]],
    *,
    earlier: bool,
) -> list[str]:
    """The tables of rpd's names without rpd's columns: now's, or (`earlier`) an earlier
    schema's (`EARLIER_COLUMNS`, a file not yet upgraded)."""
    reshaped = []
    for name in sorted(named):
        columns = set(_columns(connection, name))
        shapes = (expected[name], EARLIER_COLUMNS.get(name) if earlier else None)
        if not any(shape is not None and set(shape) <= columns for shape in shapes):
            reshaped.append(name)
    return reshaped


def _columns(connection: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in connection.execute(f'PRAGMA table_info("{table}")'))


@functools.cache
def _rpd_columns() -> dict[str, tuple[str, ...]]:
    """Every table rpd writes (also those added since schema 1) with its columns, in order."""
    connection = _empty_in_memory()
    for statement in (RECENCY_SCHEMA, OBJECTS_TABLE, ALIASES_SCHEMA, *INDEX_SCHEMA):
        connection.execute(statement)
    names = [row[0] for row in connection.execute(TABLE_NAMES)]
    columns = {name: _columns(connection, name) for name in names}
    connection.close()
    return columns


def _empty_in_memory() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    for statement in SCHEMA.split(";"):
        connection.execute(statement)
    return connection


def connect(path: Path, readonly: bool) -> tuple[sqlite3.Connection, bool]:
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
        connection, exists = _checked(path, "mode=rw" if readonly else None)
    except UsageError:
        # The real file's folder (symlinks resolved), where SQLite keeps the -wal and -shm.
        if not readonly or os.access(path.resolve().parent, os.W_OK):
            raise
        # A folder rpd cannot write (a read-only mount, another user's): SQLite cannot make
        # the -shm a WAL file needs to be read. Read the file as it is instead, unless a run
        # left changes in its -wal (killed): read without them, it would look older than it is.
        wal = beside(path, "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise UsageError(
                f"state file {path} is in a folder rpd cannot write, and its last run left "
                f"changes in {wal.name} that only a writable folder lets SQLite read",
                hint="copy the state file with its -wal to a folder you can write, and use that",
            ) from None
        connection, exists = _checked(path, "mode=ro&immutable=1")
    if readonly and not exists:
        connection.close()
        return _empty_in_memory(), False
    return connection, not exists


def _checked(path: Path, readonly_mode: str | None) -> tuple[sqlite3.Connection, bool]:
    """A connection to the file, writable or (`readonly_mode`) read-only, and whether it holds
    rpd's schema (`_check_schema`); closed again when the file is not one rpd can use."""
    try:
        if readonly_mode is None:
            connection = sqlite3.connect(
                path.resolve(), isolation_level=None, check_same_thread=False
            )
        else:
            connection = _connect_readonly(path, readonly_mode)
    except sqlite3.Error as error:
        raise _unreadable(path, error) from None
    try:
        return connection, _check_schema(connection, path)
    except BaseException:
        connection.close()
        raise


def _connect_readonly(path: Path, mode: str) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?{mode}"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA query_only = ON")
    return connection


class Guarded:
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


def check_in_place(db: Guarded, lock: FileLock) -> None:
    """At a run's end, a state file moved or deleted while the run had it open is said: in WAL,
    its mode, SQLite does not check, and the run wrote on to the file wherever it went (a
    deleted one: nowhere anyone can read). What its -wal, left at the path, holds is first
    moved into the file itself: a moved file then holds the whole run, a file put in its place
    is never read with this run's changes, and a deleted one's -wal, of no use without it, is
    left empty, so it does not refuse the next run (`check_not_orphaned`)."""
    gone = lock.gone()
    if gone is None:
        return
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.failure = deleted(db.path) if gone == "deleted" else moved(db.path)
    raise db.failure


def open_file(path: Path, *, readonly: bool) -> tuple[sqlite3.Connection, FileLock | None]:
    """The state file checked, locked (unless read-only), connected and, when writable, prepared
    (WAL, the schema): an autocommit connection and the lock to release when done."""
    check_state_path(path)
    check_journal_kept(path)
    check_not_orphaned(path)
    if readonly:
        return connect(path, readonly=True)[0], None
    lock = lock_for_writing(path)
    try:
        connection, empty = connect(path, readonly=False)
        try:
            prepare(connection, empty=empty)
        except BaseException:
            connection.close()
            raise
    except BaseException as error:
        lock.release()
        if isinstance(error, NoRoomToUpgrade):
            raise no_room_to_upgrade(path, error) from None
        if isinstance(error, sqlite3.DatabaseError):
            raise (state_failure(path, error) or error) from None
        raise
    return connection, lock


def prepare(connection: sqlite3.Connection, *, empty: bool) -> None:
    """WAL, in a new file the schema, the tables added since schema 1 (field recency), in an
    older file the forgetting of what it holds that rpd would now misread (`FORGOTTEN`), and in a
    file of an earlier schema its upgrade (`upgrade`)."""
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    if empty:
        with transaction(connection):
            for statement in SCHEMA.split(";"):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            connection.execute(f"PRAGMA user_version = {REVISION}")
    connection.execute(RECENCY_SCHEMA)
    for statement in INDEX_SCHEMA:
        connection.execute(statement)
    revision = connection.execute("PRAGMA user_version").fetchone()[0]
    if revision < REVISION:
        with transaction(connection):
            for after in range(revision + 1, REVISION + 1):
                for statement in FORGOTTEN[after]:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {REVISION}")
    upgrade(connection)


class NoRoomToUpgrade(Exception):
    """The upgrade's transaction met a full disk, or found the state's short (`its_disk`) before
    its commit, and was rolled back (`no_room_to_upgrade`); `rewrites`: it rewrote the journal
    (from before JOURNAL_SCHEMA)."""

    def __init__(self, *, its_disk: bool = False, rewrites: bool = True) -> None:
        super().__init__()
        self.its_disk, self.rewrites = its_disk, rewrites


def _full(error: sqlite3.DatabaseError) -> bool:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == SQLITE_FULL


def upgrade(connection: sqlite3.Connection) -> None:
    """A file of an earlier schema brought to this one (`UPGRADES`), in one transaction with its
    version and, when its journal was rewritten (before JOURNAL_SCHEMA), a vacuum due
    (`VACUUM_DUE`), then vacuumed (`vacuum`): the pages the old tables held go back to the disk.
    A vacuum still due (killed, or its disk full) is done now."""
    known = dict(
        connection.execute(
            "SELECT key, value FROM meta WHERE key IN ('schema_version', ?)", (VACUUM_DUE,)
        ).fetchall()
    )
    version = int(known["schema_version"])
    if version < SCHEMA_VERSION:
        connection.create_function(SOURCE_NAME, 1, lambda s: split_source(s)[0], deterministic=True)
        connection.create_function(
            SOURCE_PLACE, 1, lambda s: split_source(s)[1], deterministic=True
        )
        room = Room(connection)
        try:
            with transaction(connection):
                for after in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in UPGRADES[after]:
                        connection.execute(statement)
                connection.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
                if version < JOURNAL_SCHEMA:  # the journal rewritten: its old pages freed
                    connection.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (VACUUM_DUE,)
                    )
                if not room.to_commit(connection):
                    raise NoRoomToUpgrade(its_disk=True, rewrites=version < JOURNAL_SCHEMA)
        except sqlite3.DatabaseError as error:
            if _full(error):
                raise NoRoomToUpgrade(rewrites=version < JOURNAL_SCHEMA) from None
            raise
    if version < JOURNAL_SCHEMA or VACUUM_DUE in known:
        vacuum(connection)


class Room:
    """The state's disk's room as the upgrade begins (its -wal's size then, and the free space),
    to tell before its commit whether the file can take it (`to_commit`). Measured then, not at
    the commit: SQLite holds its temporary files until the transaction ends (a 65 MB statement
    journal for a 63.3 MB file), which on the state's own disk are given back by then."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.name = Path(connection.execute("PRAGMA database_list").fetchone()[2])
        self.wal = beside(self.name, "-wal")
        try:
            self.free: int | None = free_bytes(self.name.parent) + self._wal_size()
        except OSError:  # a disk that does not say its room: SQLite's own failure will say it
            self.free = None

    def _wal_size(self) -> int:
        return self.wal.stat().st_size if self.wal.exists() else 0

    def to_commit(self, connection: sqlite3.Connection) -> bool:
        """Whether the disk has the room the commit takes, its transaction in the -wal by now: the
        file grows to its pages when the -wal is copied into it. Without it, the upgrade
        committed and no more: the -wal could not be copied, so it held the disk full (102.7 MB
        beside a file grown to 96.3 MB, 0 bytes free), and the run stopped at its first state
        write, 'disk full: state file', as every rerun did."""
        pages: int = connection.execute("PRAGMA page_count").fetchone()[0]
        page_size: int = connection.execute("PRAGMA page_size").fetchone()[0]
        if self.free is None:
            return True
        growth = pages * page_size - self.name.stat().st_size
        return self.free >= self._wal_size() + growth + UPGRADE_MARGIN


def vacuum(connection: sqlite3.Connection) -> None:
    """The file vacuumed, and no longer due. On a full disk it stays due, for the next open for
    writing, and the run goes on: the upgrade is done, and the file only holds free pages. The
    -wal is emptied after (it held the upgrade and the copy, 102.7 MB for a 63.3 MB file), so
    its room is the run's, not held until the run ends."""
    try:
        connection.execute("VACUUM")
    except sqlite3.DatabaseError as error:
        if not _full(error):
            raise
    else:
        connection.execute("DELETE FROM meta WHERE key = ?", (VACUUM_DUE,))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection | Guarded) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:  # a failing state has rolled back already (Guarded)
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@dataclass(frozen=True, slots=True, kw_only=True)
class Discarded:
    """What `discard_state` removed: the namespaces it held, or why it could not read them."""

    namespaces: list[NamespaceSummary]
    unreadable: str = ""  # why it was not readable, e.g. "was written by a newer rpd (schema 2)"


def discard_state(path: Path) -> Discarded:
    """Remove a state file, its -wal, -shm and lock file (for `rpd state clear`): the real file,
    symlinks resolved, and under its lock, so never under a running rpd, whatever name that run
    was given; also when the file is unreadable or from a newer rpd. Its name is removed first, so
    a folder that refuses it leaves the state as it was, then the file is emptied, so a hard link
    to it keeps no state either. A directory, or a file that is no SQLite database at all (a
    mistyped --state), is refused, not removed."""
    check_state_path(path)
    if not is_sqlite(path) and not looks_like_state(path):
        raise _foreign(path, "not an SQLite database")
    _check_companions(path)
    with _locked_to_remove(path, create=False) as lock:
        namespaces: list[NamespaceSummary] = []
        unreadable = ""
        try:
            connection, _ = open_file(path, readonly=True)
            with contextlib.closing(Guarded(connection, path)) as db:
                namespaces = summaries(db)
        except ForeignFile:
            raise
        except UsageError as error:
            unreadable = error.message.removeprefix(f"state file {path} ")
        try:
            lock.real.unlink()
        except OSError as error:
            if error.errno not in REFUSED:
                raise
            raise folder_refuses_clear(path, lock.real) from None
        lock.empty()
        _remove(lock.real, "-wal", "-shm")
        return Discarded(namespaces=namespaces, unreadable=unreadable)


def discard_leftovers(path: Path) -> list[Path]:
    """Remove the -wal and -shm a state file that is not there left beside it (a run killed,
    then its file deleted), for `rpd state clear`: under the lock of a file made at the path for
    the moment, so no send starts on that path meanwhile. The names removed."""
    _check_companions(path)
    with _locked_to_remove(path, create=True) as lock:
        if lock.real.stat().st_size:  # a send made the file and finished before the lock
            raise UsageError(
                f"state file {path} was made while clearing",
                hint=f"run `rpd state clear --state {path}` again",
            )
        removed = _remove(lock.real, "-wal", "-shm")
        _remove(lock.real, "")
        return removed


def _check_companions(path: Path) -> None:
    """A directory where the state file's -wal, -shm or .lock should be is refused before
    anything is removed: unlinking it failed after the file itself was gone (exit 70)."""
    for suffix in ("-wal", "-shm", ".lock"):
        name = beside(path, suffix)
        with contextlib.suppress(OSError):  # not there: nothing in the way
            if stat.S_ISDIR(name.lstat().st_mode):
                raise UsageError(
                    f"cannot clear {path}: {name.name} beside it is a directory",
                    hint=f"move that directory away (the name is for the state file's own "
                    f"{suffix} file), then clear again",
                )


@contextlib.contextmanager
def _locked_to_remove(path: Path, *, create: bool) -> Iterator[FileLock]:
    """The state file's lock, held while `rpd state clear` removes what is there."""
    lock = FileLock(path)
    try:
        lock.acquire(create=create)
    except OSError as error:
        if error.errno in REFUSED and not lock.real.exists():  # the lock's file not made there
            raise folder_refuses_clear(path, lock.real) from None
        raise UsageError(
            f"cannot remove state file {path}: {error.strerror or error}",
            # its permissions are not at fault on a read-only mount: they were hinted at
            hint="its file system is mounted read-only: remount it writable, then clear again"
            if error.errno == errno.EROFS
            else "the file is read-only to you: check its permissions (clear empties it before "
            "it removes it)",
        ) from None
    try:
        yield lock
    finally:
        lock.release()


def folder_refuses_clear(path: Path, real: Path) -> UsageError:
    """`rpd state clear` refused by the state's folder (no file made or removed in it, as the
    send's refusal names it): the real file's folder, as --state spells it when it is that one.
    It was 'check the directory's permissions', or exit 70 with the file emptied."""
    folder = path.parent if path.parent.resolve() == real.parent else real.parent
    return UsageError(
        f"cannot clear {path}: cannot write in folder {folder} (permission denied)",
        hint=f"check {folder}'s permissions, then clear again",
    )


def _remove(real: Path, *suffixes: str) -> list[Path]:
    """Remove the real state file (suffix "") and those SQLite keeps beside it: those removed."""
    removed: list[Path] = []
    for suffix in suffixes:
        name = real.with_name(real.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            name.unlink()
            removed.append(name)
    return removed
