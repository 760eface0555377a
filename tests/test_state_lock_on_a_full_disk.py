"""The pid file a writing run leaves beside its state file (STATE.lock, for others' messages) on
a full disk: its write failed after the file was made, and the error was swallowed, so an empty
(or cut) STATE.lock stayed beside the state for good, `rpd state clear` leaving it too. It is
now removed, and a send says the full disk then, exit 2, before SQLite needs room as well. No
run waits on such a file: the lock is a `flock` on the state file itself."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from process_support import ROOT, rpd_process

from rudder_pipedrive_cli.io import state_file
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_file import StateUnusable

CONFIG = str(ROOT / "config.example.toml")
EVENTS = str(ROOT / "examples" / "events.ndjson")
FULL = [
    "error: disk full: state file s.sqlite",
    "hint: free space on its disk, then rerun the same command: it resumes where this run "
    "stopped (what it sent is recorded)",
]


def test_a_send_whose_pid_file_cannot_be_written_whole_says_the_full_disk_and_leaves_none(
    tmp_path: Path,
) -> None:
    # `ulimit -f 1`: the pid's first digit is written, the rest refused (EFBIG, as SQLite's
    # first page would be): a cut s.sqlite.lock stayed.
    run = rpd_process(
        tmp_path,
        *("send", EVENTS, "--config", CONFIG, "--sandbox", "--state", "s.sqlite"),
        file_size=1,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert (run.returncode, run.stderr.decode().splitlines()[-2:]) == (2, FULL)
    assert [(p.name, p.stat().st_size) for p in tmp_path.iterdir()] == [("s.sqlite", 0)]


def refuse_pid_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write of the state's pid file refused ENOSPC once its file is made."""
    write = os.write

    def refused(handle: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{handle}").endswith(".lock"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(handle, data)

    monkeypatch.setattr(state_file.os, "write", refused)


def test_a_pid_file_refused_for_want_of_space_is_removed_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite"
    refuse_pid_writes(monkeypatch)
    with pytest.raises(StateUnusable) as refused:
        ReplayState.open(path, "ns")
    assert [refused.value.message, f"hint: {refused.value.hint}"] == [
        f"disk full: state file {path}",
        FULL[1],
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]


def test_a_state_file_that_cannot_be_made_for_want_of_space_says_the_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk without a free inode: it was 'cannot open state file ...: No space left on device',
    # hint 'check the directory's permissions', which were fine.
    opened = os.open

    def no_room(name: str, *args: int) -> int:
        if str(name).endswith(".sqlite"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(name))
        return opened(name, *args)

    monkeypatch.setattr(state_file.os, "open", no_room)
    path = tmp_path / "s.sqlite"
    with pytest.raises(StateUnusable) as refused:
        ReplayState.open(path, "ns")
    assert [refused.value.message, f"hint: {refused.value.hint}"] == [
        f"disk full: state file {path}",
        FULL[1],
    ]
    assert list(tmp_path.iterdir()) == []


def test_clear_on_a_full_disk_goes_on_and_leaves_no_cut_pid_file(tmp_path: Path) -> None:
    # Clearing is how room is made: it goes on, where a cut s.sqlite.lock stayed behind it.
    ReplayState.open(tmp_path / "s.sqlite", "ns").close()
    run = rpd_process(
        tmp_path,
        *("state", "clear", "--yes", "--state", "s.sqlite"),
        file_size=1,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert (run.returncode, run.stderr) == (0, b"")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_pid_file_an_older_run_left_blocks_no_run(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Path(f"{path}.lock").write_bytes(b"")
    with ReplayState.open(path, "ns"):
        assert Path(f"{path}.lock").read_text() == str(os.getpid())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]
