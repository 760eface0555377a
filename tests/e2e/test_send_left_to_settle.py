"""Writes an earlier run left in flight for events outside this run (SPEC 5): only a run of
their input settles them, so a send of other files, or with filters that leave them out, says
so at its end (even under -q) and in its --report JSON, and exits as it would without them."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import assert_report_adds_up, group, holdings, identify, rpd_send, write_events

from rudder_pipedrive_cli.cli import send_cmd
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

WARNING = "warning: 1 event outside this run has writes left to settle: send it again\n"


def inflight_events(state: Path) -> list[str]:
    with sqlite3.connect(state) as db:
        return [row[0] for row in db.execute("SELECT DISTINCT event_id FROM inflight")]


def leave_a_write_in_flight(make_sandbox: MakeSandbox, tmp_path: Path) -> tuple[Sandbox, Path]:
    """A send of events.ndjson whose answers are all lost: m-3's organization is found made,
    but the PATCH linking u-1's person to it stays unknown, so m-3 fails with its writes left in
    flight. The faults end after it; the sandbox and events.ndjson are returned."""
    sandbox = make_sandbox(plan="unlimited", fault_seed=5)
    events = write_events(
        tmp_path / "events.ndjson",
        [identify("m-1", "u-1", name="One"), group("m-3", "u-1", "g-1", name="Org One")],
    )
    sandbox.set_faults(fail_reset=1.0)
    lost = rpd_send(sandbox, tmp_path, events, args=("--max-retries", "1"), name="lost")
    assert lost.exit_code == 1, lost.stderr
    assert lost.report is not None and lost.report["by_type"]["group"] == {"failed": 1}
    assert "left_to_settle" not in lost.report  # its own failed event: the report says it
    assert "outside this run" not in lost.stderr
    assert inflight_events(tmp_path / "state.sqlite") == ["m-3"]
    sandbox.set_faults(fail_reset=0.0)
    return sandbox, events


def test_a_send_of_other_files_says_the_writes_it_leaves_to_settle(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox, events = leave_a_write_in_flight(make_sandbox, tmp_path)
    other = write_events(tmp_path / "other.ndjson", [identify("m-9", "u-2", name="Two")])

    run = rpd_send(sandbox, tmp_path, other, name="other")

    assert run.exit_code == 0, run.stderr
    assert run.stderr.endswith(WARNING)
    assert run.report is not None
    assert run.report["left_to_settle"] == 1
    assert_report_adds_up(run.report)
    quiet = rpd_send(sandbox, tmp_path, other, args=("-q",), name="quiet")
    assert (quiet.exit_code, quiet.stderr) == (0, WARNING)  # a cron's -q run hears it too

    again = rpd_send(sandbox, tmp_path, events, name="again")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["by_type"] == {"group": {"sent": 1}, "identify": {"skipped": 1}}
    assert "left_to_settle" not in again.report
    assert "outside this run" not in again.stderr
    assert inflight_events(tmp_path / "state.sqlite") == []
    held = holdings(sandbox)
    assert held.user_ids() == {"u-1": 1, "u-2": 1}
    assert held.group_ids() == {"g-1": 1}
    assert held.group_of(held.person("u-1")["org_id"]) == "g-1"


def test_an_event_its_filters_leave_out_is_outside_the_run(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox, events = leave_a_write_in_flight(make_sandbox, tmp_path)

    run = rpd_send(sandbox, tmp_path, events, args=("--type", "identify"), name="identifies")

    assert run.exit_code == 0, run.stderr
    assert run.stderr.endswith(WARNING)
    assert run.report is not None and run.report["left_to_settle"] == 1


def test_an_event_this_run_failed_again_is_not_outside_it(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Its failure is the report's and its dead letter's: the rerun of this input settles it.
    sandbox, events = leave_a_write_in_flight(make_sandbox, tmp_path)
    sandbox.set_faults(fail_reset=1.0)

    run = rpd_send(sandbox, tmp_path, events, args=("--max-retries", "0"), name="again")

    assert run.exit_code == 1, run.stderr
    assert run.report is not None and run.report["by_type"]["group"] == {"failed": 1}
    assert "left_to_settle" not in run.report
    assert "outside this run" not in run.stderr
    assert inflight_events(tmp_path / "state.sqlite") == ["m-3"]


def test_a_run_stopped_before_its_events_ended_does_not_say_it(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C before any event started: the events it did not plan may be its own, and its line
    # says to rerun the same command, which plans them.
    sandbox, events = leave_a_write_in_flight(make_sandbox, tmp_path)
    monkeypatch.setattr(send_cmd, "drive_all", lambda *_args, **_kwargs: signal.SIGINT)

    run = rpd_send(sandbox, tmp_path, events, name="stopped")

    assert run.exit_code == 130, run.stderr
    assert run.stderr.splitlines()[-1].startswith("interrupted: no new events were started")
    assert run.report is not None and "left_to_settle" not in run.report
    assert "outside this run" not in run.stderr
