"""The daily token budget runs out mid-replay (SPEC 1, 6): the run stops, prints its report,
says to rerun, exits 4; the rerun with the same state finishes the job without duplicates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from e2e_support import EXAMPLES, assert_report_adds_up, holdings, rpd_send
from test_send_examples import ALL_EXAMPLES, assert_example_holdings
from test_send_security import exhaust_budget

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py


def test_a_spent_budget_stops_with_the_report_and_exit_4_then_a_rerun_resumes(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="growth")
    # The field catalog (40), what the track rules name (30) and a few events.
    exhaust_budget(sandbox, leave=330)

    stopped = rpd_send(sandbox, tmp_path, *ALL_EXAMPLES, args=("--plan", "growth"), name="stop")

    assert stopped.exit_code == 4, stopped.stderr
    lines = stopped.stderr.splitlines()
    assert lines[-2].startswith("error: daily API token budget spent (HTTP 429")
    assert lines[-1] == "hint: rerun the same command later to resume"
    assert "Events" in stopped.stderr and "Requests" in stopped.stderr  # the report came first
    report = stopped.report
    assert report is not None
    assert_report_adds_up(report)
    # The 34 example events were all read (ahead); those not finished are not attempted.
    assert report["events"]["read"] == 34
    assert 0 < report["events"]["not_attempted"] < 34
    assert report["events"]["failed"] == 0
    assert report["rate_limited"] == sandbox.stats()["rate_limited"] >= 1
    assert all(n == 1 for n in holdings(sandbox).user_ids().values())

    exhaust_budget(sandbox, leave=100_000)  # a new day
    resumed = rpd_send(sandbox, tmp_path, *ALL_EXAMPLES, args=("--plan", "growth"), name="resume")

    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.report is not None
    done_before = report["events"]["sent"] + report["events"]["skipped"]
    assert resumed.report["events"]["skipped"] >= done_before
    assert resumed.report["events"]["read"] == 34
    assert resumed.report["events"]["failed"] == 0
    assert_example_holdings(holdings(sandbox))


def test_the_report_counts_only_the_tokens_pipedrive_charged(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="growth")
    # The field catalog (40) and what the track rules name (30), then the first search is refused.
    exhaust_budget(sandbox, leave=80)
    spent_before = sandbox.stats()["tokens"]

    run = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", args=("--plan", "growth"))

    assert run.exit_code == 4, run.stderr
    assert run.report is not None
    assert run.report["rate_limited"] >= 1
    assert run.report["tokens"] == sandbox.stats()["tokens"] - spent_before


def test_a_report_that_cannot_be_written_does_not_hide_why_the_run_stopped(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """The run's own stop stays the exit (4: rerun later) and its message the last; the report
    that could not be written is said before it (it replaced both: exit 2, and only the advice
    to choose another --report path)."""
    sandbox = make_sandbox(plan="growth")
    exhaust_budget(sandbox, leave=330)

    stopped = rpd_send(
        sandbox, tmp_path, *ALL_EXAMPLES, args=("--plan", "growth", "--report", "/dev/full")
    )

    assert stopped.exit_code == 4, stopped.stderr
    lines = stopped.stderr.splitlines()
    assert lines[-3] == "warning: cannot write the report to /dev/full: No space left on device"
    assert lines[-2].startswith("error: daily API token budget spent (HTTP 429")
    assert lines[-1] == "hint: rerun the same command later to resume"
