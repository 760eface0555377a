"""A write refused as larger than the process may make (`ulimit -f`: EFBIG, "File too large";
Python ignores SIGXFSZ, so the write fails instead of the process dying) is an environment
error naming what could not be written, exit 2 (SPEC 6), as a full disk is: it was "internal
error: OSError (a bug in rpd)", exit 70."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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


def limited_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def dry_run(
    tmp_path: Path, *args: str, stdout: int | None = None, unbuffered: str = ""
) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": unbuffered}
    for name in ("RPD_CONFIG", "PIPEDRIVE_API_TOKEN", "RPD_PLAN", "RPD_BASE_URL"):
        env.pop(name, None)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", write_events(tmp_path)]
    run = subprocess.run(
        [*command, "--config", CONFIG, "-q", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
        preexec_fn=limited_file_size,
        timeout=60,
        check=False,
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
