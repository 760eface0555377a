"""Standard error or output on a full disk (a log file's disk, /dev/full) in a real process
(`python -m rudder_pipedrive_cli`, whose streams __main__.py sets up): what can still be done is
done, and the exit says the environment failed (2, SPEC 6), never 1 ("some events failed") or
a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from process_support import ROOT, rpd_process

CONFIG = str(ROOT / "config.example.toml")
EVENTS = str(ROOT / "examples" / "events.ndjson")
FULL = Path("/dev/full")  # every write to it fails with ENOSPC

pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")


def rpd(cwd: Path, *args: str, stdout: int | None = None, stderr: int | None = None) -> int:
    return rpd_process(cwd, *args, stdout=stdout, stderr=stderr).returncode


def test_a_send_whose_stderr_is_on_a_full_disk_writes_its_report_file_and_exits_2(
    tmp_path: Path,
) -> None:
    # Printing the report failed; the report file, written after it, was never written, and the
    # error about it failed in turn: exit 1, as if events had failed. A progress line failing
    # so stopped a longer send mid-run.
    report = tmp_path / "report.json"
    args = ["send", EVENTS, "--config", CONFIG, "--sandbox", "--report", str(report)]
    with FULL.open("wb") as full:
        code = rpd(tmp_path, *args, "--dead-letter", "failed.ndjson", stderr=full.fileno())
    assert code == 2
    events = json.loads(report.read_text())["events"]
    assert events["read"] == 25
    assert events["read"] == sum(events[key] for key in ("sent", "unchanged", "skipped"))


def test_a_dry_run_whose_stderr_is_on_a_full_disk_writes_its_plan_and_exits_2(
    tmp_path: Path,
) -> None:
    plan = tmp_path / "plan.ndjson"
    with FULL.open("wb") as full, plan.open("wb") as out:
        code = rpd(
            tmp_path,
            *("dry-run", EVENTS, "--config", CONFIG, "-f", "ndjson"),
            stdout=out.fileno(),
            stderr=full.fileno(),
        )
    assert code == 2
    assert len(plan.read_text().splitlines()) == 25


@pytest.mark.parametrize("args", [(), ("--help",), ("--version",), ("send", "--help")])
def test_help_or_version_to_a_full_disk_is_said_exit_2(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    # It was a traceback, exit 1.
    err = tmp_path / "stderr.txt"
    with FULL.open("wb") as full, err.open("wb") as said:
        code = rpd(tmp_path, *args, stdout=full.fileno(), stderr=said.fileno())
    assert (code, err.read_text().splitlines()) == (
        2,
        [
            "error: cannot write the output: No space left on device (the disk is full)",
            "hint: free some space (or write the output elsewhere), then run it again",
        ],
    )


def test_a_stream_without_a_descriptor_is_kept_as_it_is() -> None:
    import io

    from rudder_pipedrive_cli.__main__ import whole_writes
    from rudder_pipedrive_cli.cli.exits import Stderr

    stream = io.TextIOWrapper(io.BytesIO())
    assert whole_writes(stream, Stderr) is stream


@pytest.mark.parametrize(
    ("quiet", "hint"),
    [
        ((), "the report above is complete; choose another --report path next time"),
        # -q prints no report: there is none above to point to
        (("-q",), "choose another --report path next time"),
    ],
)
def test_a_report_file_on_a_full_disk_is_said_after_the_run_exit_2(
    tmp_path: Path, quiet: tuple[str, ...], hint: str
) -> None:
    args = ["send", EVENTS, "--config", CONFIG, "--sandbox", "--report", str(FULL), *quiet]
    done = rpd_process(tmp_path, *args, "--state", "state.sqlite", capture_output=True)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines()[-2:] == [
        f"error: cannot write the report to {FULL}: No space left on device",
        f"hint: {hint}",
    ]
