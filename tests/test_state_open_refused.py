"""A state file that cannot be opened for writing says what to look at: a read-only file was
told to 'check the directory's permissions', which were fine (the file's own were not)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from rudder_pipedrive_cli.io.state_file import open_refused
from rudder_pipedrive_cli.io.state_path import folder_refused


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


def test_a_refused_folder_is_named_relative_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folder rpd could not write in or create, as the path was given (a config's relative
    # folder): the working directory itself is the folder of a bare file name, not one to make.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "roc").mkdir()
    said = {
        given: (error.message, error.hint)
        for given in ("st.sqlite", "roc/.rpd/state.sqlite", "roc/st.sqlite")
        for error in [folder_refused(Path(given))]
    }
    assert said == {
        "st.sqlite": (
            "cannot open state file st.sqlite: cannot write in folder . (permission denied)",
            "check .'s permissions, or give --state PATH a file in a folder you can write to",
        ),
        "roc/.rpd/state.sqlite": (
            "cannot open state file roc/.rpd/state.sqlite: cannot create folder roc/.rpd "
            "(permission denied)",
            "the state goes in .rpd/ beside the config by default (in the working directory "
            "without one): give --state PATH a file in a folder you can write to",
        ),
        "roc/st.sqlite": (
            "cannot open state file roc/st.sqlite: cannot write in folder roc (permission denied)",
            "check roc's permissions, or give --state PATH a file in a folder you can write to",
        ),
    }
