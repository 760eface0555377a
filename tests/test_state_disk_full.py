"""What SQLite says of the state file's surroundings, as what the user should do. A disk with no
room left for SQLite's -shm file (WAL's index, made as the state is opened) is a full disk: it
was 'could not be read or written (SQLite: disk I/O error)', hint 'check its disk'. A -shm or
-wal that cannot be opened or written (another user's, a folder in its place) was 'damaged;
nothing in it can be read', hint 'rpd state clear starts over', for a state whose every byte
was fine, or (SQLite falling back to reading only) exit 70, 'internal error: OperationalError'."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rudder_pipedrive_cli.io.state_file import state_failure

RESUMES = "then rerun the same command: it resumes where this run stopped"
BESIDE = (
    "check that you may write state.sqlite-wal and state.sqlite-shm beside it (left by another "
    f"user?), {RESUMES}"
)


@pytest.mark.parametrize(
    ("code", "said", "message", "hint"),
    [
        (
            4874,  # SQLITE_IOERR_SHMSIZE: SQLITE_IOERR | (19 << 8)
            "disk I/O error",
            "disk full: state file rpd/state.sqlite",
            f"free space on its disk, {RESUMES} (what it sent is recorded)",
        ),
        (
            8,  # SQLITE_READONLY
            "attempt to write a readonly database",
            "state file rpd/state.sqlite cannot be written (SQLite: attempt to write a readonly "
            "database)",
            BESIDE,
        ),
        (
            1544,  # SQLITE_READONLY_DIRECTORY: SQLITE_READONLY | (6 << 8), its folder read-only
            "attempt to write a readonly database",
            "state file rpd/state.sqlite cannot be written: SQLite keeps state.sqlite-wal and "
            "state.sqlite-shm beside it, and its folder rpd may not be written to",
            f"make rpd writable for you, or give --state a file in a folder you may write to, "
            f"{RESUMES}",
        ),
        (
            14,  # SQLITE_CANTOPEN
            "unable to open database file",
            "state file rpd/state.sqlite cannot be opened (SQLite: unable to open database file)",
            BESIDE,
        ),
    ],
)
def test_what_sqlite_says_of_the_state_is_said_as_what_to_do(
    code: int, said: str, message: str, hint: str
) -> None:
    error = sqlite3.OperationalError(said)
    error.sqlite_errorcode = code  # as SQLite sets it
    failure = state_failure(Path("rpd/state.sqlite"), error)
    assert failure is not None
    assert (failure.message, failure.hint) == (message, hint)


@pytest.mark.parametrize("gone", ["deleted", "moved"])
def test_a_state_file_moved_or_deleted_during_the_run_is_said_so(tmp_path: Path, gone: str) -> None:
    # SQLite's own error (SQLITE_READONLY_DBMOVED, 1032), raised as it writes to a file no longer
    # at its name: it was 'cannot be written', hint '-wal and -shm beside it', for a file whose
    # -wal and -shm were never at fault. (WAL, the state's mode, does not check on a write.)
    path = tmp_path / "state.sqlite"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("CREATE TABLE t (x)")
    if gone == "deleted":
        path.unlink()
    else:
        path.rename(tmp_path / "elsewhere.sqlite")
    with pytest.raises(sqlite3.OperationalError) as caught:
        connection.execute("INSERT INTO t VALUES (1)")
    connection.close()
    failure = state_failure(path, caught.value)
    assert failure is not None
    assert (failure.message, failure.hint) == (
        f"state file {path} was moved or deleted during the run (SQLite: attempt to write a "
        "readonly database)",
        f"put it back at {path}, or rerun the same command with --state where it is now: it "
        "resumes where this run stopped",
    )
