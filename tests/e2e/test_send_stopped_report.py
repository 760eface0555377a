"""What stopped a send, in its --report JSON (`"stopped"`): a scheduler reading the report of a
run that ended with an error tells it from one that finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_support import identify, rpd_send, write_events

from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_file import StateUnusable
from rudder_pipedrive_cli.sandbox import Sandbox

REFUSED = "cannot write the state file s.sqlite: the disk is full"


def test_a_run_whose_state_cannot_keep_its_report_says_it_stopped_in_the_report(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The state refused the run's end (a full disk) after every event was sent: exit 2, and the
    # --report file, written after, read as a run that finished (no "stopped").
    def refused(state: ReplayState, document: dict[str, Any]) -> None:
        raise StateUnusable(REFUSED, hint="free some space, then rerun the same command")

    monkeypatch.setattr(ReplayState, "finish_run", refused)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])

    run = rpd_send(sandbox, tmp_path, events, state=tmp_path / "s.sqlite")

    assert run.exit_code == 2, run.stderr
    assert run.report is not None and run.report["events"]["sent"] == 1
    assert run.report["stopped"] == {"exit": 2, "reason": REFUSED}
