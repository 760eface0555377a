"""A state file that cannot be opened for writing says what to look at: a read-only file was
told to 'check the directory's permissions', which were fine (the file's own were not)."""

from __future__ import annotations

import errno
from pathlib import Path

from rudder_pipedrive_cli.io.state_file import open_refused


def refused(code: int) -> OSError:
    return OSError(code, "refused")


def test_a_state_file_there_but_not_writable_names_its_own_permissions(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"")
    assert open_refused(state, refused(errno.EACCES)) == (
        f"the file is read-only to you: check its permissions (chmod u+w {state}), "
        "or use another --state"
    )


def test_a_state_file_not_there_yet_names_its_directory(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    assert open_refused(state, refused(errno.EACCES)) == (
        "check the directory's permissions, or use another --state"
    )


def test_a_read_only_file_system_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"")
    assert open_refused(state, refused(errno.EROFS)) == (
        "give --state a path on a disk rpd can write to"
    )
