"""Pacing seen from the sandbox (SPEC 5): a replay under a real plan's limits meets no 429, the
field listings fetched before the events included (they spend the same burst window)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from e2e_support import EXAMPLES, assert_report_adds_up, rpd_send

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py


def test_a_lite_plan_replay_meets_no_429_catalog_included(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Lite: 20 requests per 2 s. The 4 listings, then 41 requests for the events' first burst:
    # a pacer that did not count the listings would send 20 more at once and meet 429s.
    sandbox = make_sandbox(plan="lite")

    run = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", args=("--plan", "lite"))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    stats = sandbox.stats()
    assert stats["rate_limited"] == 0
    assert run.report["rate_limited"] == 0
    assert run.report["retries"] == 0
    assert run.report["requests"] == stats["requests"]
