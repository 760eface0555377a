"""A state file its folder or its owner refuses says what to do about it: the default state
(`.rpd/state.sqlite` beside the config) in a read-only folder was 'cannot open state file
roc/.rpd/state.sqlite: Permission denied', hinted 'check the directory's permissions', naming no
folder and not --state; a read-only state file of another user was hinted `chmod u+w`, which
only its owner may run (a newcomer's walkthrough). Tests run as root, whom no mode refuses: the
refusals are the system calls', made to fail as they do for a user."""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path

import pytest
from e2e_support import EXAMPLES, rpd_send

from rudder_pipedrive_cli.sandbox import Sandbox

EVENTS = EXAMPLES / "events.ndjson"


def refuse(monkeypatch: pytest.MonkeyPatch, call: str, under: Path) -> Path:
    """Folder `under`, made, where os.`call` (mkdir, open) is refused as a folder or a file's
    mode refuses it."""
    under.mkdir()
    real = getattr(os, call)

    def refused(name: str | Path, *args: int, **kwargs: int) -> int:
        if str(name).startswith(f"{under}{os.sep}"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(os, call, refused)
    return under


def refused_before_sending(sandbox: Sandbox, tmp_path: Path, state: Path) -> list[str]:
    """A send on `state` stopped before any request, exit 2: its stderr lines."""
    run = rpd_send(sandbox, tmp_path, EVENTS, state=state)
    assert run.exit_code == 2, run.stderr
    assert sandbox.stats()["requests"] == {}
    return run.stderr.splitlines()


def test_the_default_state_in_a_folder_rpd_cannot_write_names_it_and_offers_state(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    roc = refuse(monkeypatch, "mkdir", tmp_path / "roc")
    state = roc / ".rpd" / "state.sqlite"

    assert refused_before_sending(sandbox, tmp_path, state) == [
        f"error: cannot open state file {state}: cannot create folder {roc / '.rpd'} "
        "(permission denied)",
        "hint: the state goes in .rpd/ beside the config by default (in the working directory "
        "without one): give --state PATH a file in a folder you can write to",
    ]


def test_a_state_folder_there_but_not_writable_is_named(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = refuse(monkeypatch, "open", tmp_path / "runs")
    state = folder / "st.sqlite"

    assert refused_before_sending(sandbox, tmp_path, state) == [
        f"error: cannot open state file {state}: cannot write in folder {folder} "
        "(permission denied)",
        f"hint: check {folder}'s permissions, or give --state PATH a file in a folder you "
        "can write to",
    ]
    assert sorted(p.name for p in folder.iterdir()) == []


def test_a_read_only_state_file_of_another_user_is_not_hinted_chmod(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = refuse(monkeypatch, "open", tmp_path / "shared") / "st.sqlite"
    state.write_bytes(b"")
    owner = os.stat(state).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # the file is another user's

    assert refused_before_sending(sandbox, tmp_path, state) == [
        f"error: cannot open state file {state}: Permission denied",
        f"hint: the file belongs to another user ({pwd.getpwuid(owner).pw_name}): use "
        "--state elsewhere, or ask its owner to let you write it",
    ]
