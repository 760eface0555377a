"""A write refused as larger than the process may make (`ulimit -f`: EFBIG, "File too large";
Python ignores SIGXFSZ, so the write fails instead of the process dying) is an environment
error naming what could not be written, exit 2 (SPEC 6), as a full disk is: it was "internal
error: OSError (a bug in rpd)", exit 70."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from process_support import ROOT, rpd_process

CONFIG = str(ROOT / "config.example.toml")
LIMIT = 4096  # bytes: the plan of the events below is several times larger


def write_events(tmp_path: Path) -> str:
    path = tmp_path / "in.ndjson"
    events = (
        {"type": "identify", "messageId": f"m-{n}", "userId": f"u-{n}", "traits": {"name": "Ada"}}
        for n in range(40)
    )
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    return str(path)


def dry_run(
    tmp_path: Path, *args: str, stdout: int | None = None, unbuffered: str = ""
) -> tuple[int, list[str]]:
    run = rpd_process(
        tmp_path,
        *("dry-run", write_events(tmp_path), "--config", CONFIG, "-q", *args),
        file_size=LIMIT,
        env={"PYTHONUNBUFFERED": unbuffered},
        stdout=stdout,
        stderr=subprocess.PIPE,
    )
    return run.returncode, run.stderr.decode().splitlines()


def test_an_output_over_the_file_size_limit_is_an_error_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "plan.ndjson"
    code, stderr = dry_run(tmp_path, "-f", "ndjson", "-o", str(out))
    assert (code, stderr) == (
        2,
        [
            f"error: cannot write --output {out}: File too large",
            "hint: choose another --output path",
        ],
    )


# PYTHONUNBUFFERED=1 (or -u), set in many container images, makes stdout's binary layer the raw
# file, whose write may take part of what it is given and tell so only by the count it returns:
# the output was cut at the limit (a full disk alike) without a word, exit 0.
@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_standard_output_over_the_file_size_limit_is_an_environment_error(
    tmp_path: Path, unbuffered: str
) -> None:
    with (tmp_path / "plan.out").open("wb") as sink:
        code, stderr = dry_run(
            tmp_path, "-f", "ndjson", stdout=sink.fileno(), unbuffered=unbuffered
        )
    assert (code, stderr) == (
        2,
        [
            "error: cannot write the output: File too large (over the largest file this "
            "process may write: `ulimit -f`)",
            "hint: write the output elsewhere (or raise the limit), then run it again",
        ],
    )


# SQLite tells EFBIG as a full disk (its -shm not grown, at the open) or as a disk I/O error (a
# page of the -wal not written): the send said 'disk full: ... free space on its disk' or
# 'could not be read or written ... check its disk', where the disk had room.
@pytest.mark.parametrize("limit", [LIMIT, 65536])
def test_a_state_file_over_the_file_size_limit_says_the_limit(tmp_path: Path, limit: int) -> None:
    state = tmp_path / "state.sqlite"
    run = rpd_process(
        tmp_path,
        *("send", write_events(tmp_path), "--config", CONFIG, "--sandbox", "-q"),
        *("--state", str(state)),
        file_size=limit,
        stderr=subprocess.PIPE,
    )
    assert (run.returncode, run.stderr.decode().splitlines()) == (
        2,
        [
            f"error: state file {state} cannot grow: over the largest file this process may "
            f"write (`ulimit -f`: {limit:,} bytes)",
            "hint: raise the limit, then rerun the same command: it resumes where this run "
            "stopped (what it sent is recorded)",
        ],
    )
