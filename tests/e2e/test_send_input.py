"""What `rpd send` does with hostile input (issue 13): an oversized line is one failed,
dead-lettered item with its source, and every other line is still sent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    TOKEN,
    assert_report_adds_up,
    holdings,
    identify,
    rpd_send,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox


def test_a_line_over_max_item_bytes_is_dead_lettered_and_the_rest_sent(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    large = identify("m-2", "u-2", name="Two", bio="x" * 5000)
    lines = [identify("m-1", "u-1", name="One"), large, identify("m-3", "u-3", name="Three")]
    source = tmp_path / "events.ndjson"
    source.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))

    run = rpd_send(sandbox, tmp_path, source, args=("--max-item-bytes", "4096"))

    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"] == {
        "read": 3,
        "sent": 2,
        "unchanged": 0,
        "skipped": 0,
        "failed": 1,
    }
    assert run.dead_letters == [
        {
            "event": None,
            "error": {
                "reason": "line larger than --max-item-bytes (4 KiB): split it into smaller "
                "lines or raise --max-item-bytes, then send its file again (a dead letter "
                "cannot hold it)",
                "stage": "read",
                "status": None,
                "retryable": False,
            },
            "source": f"{source}:2",
        }
    ]
    assert holdings(sandbox).user_ids() == {"u-1": 1, "u-3": 1}


def test_a_named_pipe_is_read_once_as_standard_input_is(sandbox: Sandbox, tmp_path: Path) -> None:
    """A named pipe (`<(zcat ...)` too) can be read only once: send's first pass (the input's
    aliases, the identities to count) read it whole, and the run itself then waited for ever
    for a writer (SIGTERM did not end it). It is read as standard input is: once, no first pass."""
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "send", str(fifo), "-q"]
    command += ["--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url, "--plan", "unlimited"]
    command += ["--report", str(report), "--state", str(tmp_path / "state.sqlite")]
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    process = subprocess.Popen(
        command, env={**env, "PIPEDRIVE_API_TOKEN": TOKEN}, stderr=subprocess.PIPE
    )
    try:
        with open(fifo, "wb") as writer:  # opens once rpd opens the fifo to read it
            writer.write(orjson.dumps(identify("m-1", "u-1", name="One")) + b"\n")
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert orjson.loads(report.read_bytes())["events"]["sent"] == 1
    assert holdings(sandbox).user_ids() == {"u-1": 1}


@pytest.mark.parametrize("data", [b"", b"\n  \n\n"])
def test_an_input_with_no_events_is_said_in_one_warning_and_exits_0(
    sandbox: Sandbox, tmp_path: Path, data: bytes
) -> None:
    # `rpd send empty.ndjson` ended with "0 of 0 events", exit 0, and never said why.
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(data)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])

    run = rpd_send(sandbox, tmp_path, empty, events)

    assert run.exit_code == 0  # SPEC 6: no event failed
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {empty} holds no events"]  # the first pass says nothing
    assert run.report is not None
    assert (run.report["events"]["read"], run.report["events"]["sent"]) == (1, 1)
    assert holdings(sandbox).user_ids() == {"u-1": 1}
