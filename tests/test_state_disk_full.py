"""A state file on a disk with no room left for SQLite's -shm file (WAL's index, made as the state
is opened) is said as a full disk: it was 'could not be read or written (SQLite: disk I/O
error)', hint 'check its disk', though nothing was wrong with the disk but its room."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rudder_pipedrive_cli.io.state_file import state_failure

SQLITE_IOERR_SHMSIZE = 4874  # sqlite3.h: SQLITE_IOERR | (19 << 8)


def test_no_room_for_the_shm_file_is_a_full_disk() -> None:
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = SQLITE_IOERR_SHMSIZE  # as SQLite sets it
    failure = state_failure(Path("rpd/state.sqlite"), error)
    assert failure is not None
    assert (failure.message, failure.hint) == (
        "disk full: state file rpd/state.sqlite",
        "free space on its disk, then rerun the same command: it resumes where this run stopped "
        "(what it sent is recorded)",
    )
