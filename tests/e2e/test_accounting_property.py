"""Every event accounted for (SPEC 4 outcomes, 5 dead letters, 6 report and exit codes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import assert_resumed, identify, rpd_send, write_events

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py


# A send that stops for the rate limit or the daily budget before its first event exited 4 with
# no report, neither printed nor written to --report, where one stopped as unreachable there (and
# one stopped mid-run) reports. Tokens left: none (the account's request), some of the listings',
# all but the identity index's first page (read ahead: its 3 events are read, not attempted).
@pytest.mark.parametrize(("leave", "read"), [(0, 0), (60, 0), (80, 3)])
def test_a_budget_spent_before_the_first_event_is_reported_and_the_rerun_sends_all(
    make_sandbox: MakeSandbox, tmp_path: Path, leave: int, read: int
) -> None:
    from test_send_security import exhaust_budget

    sandbox = make_sandbox(plan="growth")
    exhaust_budget(sandbox, leave=leave)
    events = write_events(
        tmp_path / "events.ndjson", [identify(f"m-{n}", f"u-{n}", name="A") for n in range(3)]
    )
    state = tmp_path / "state.sqlite"
    args = ("--plan", "growth", "--identities", "index")

    stopped = rpd_send(sandbox, tmp_path, events, state=state, args=args, name="stopped")

    assert stopped.exit_code == 4, stopped.stderr
    lines = stopped.stderr.splitlines()
    assert lines[-2].startswith("error: daily API token budget spent (HTTP 429 with ")
    assert lines[-1] == "hint: rerun the same command later to resume"
    assert "Events" in stopped.stderr and "Requests" in stopped.stderr  # the report came first
    assert stopped.report is not None
    assert stopped.report["identities"] is None  # stopped before it chose how to resolve them
    assert stopped.report["events"] == {
        "read": read,
        "sent": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    } | ({"not_attempted": read} if read else {})
    assert stopped.report["rate_limited"] == 1
    assert not stopped.dead_letter.exists()

    exhaust_budget(sandbox, leave=100_000)  # a new day
    assert_resumed(sandbox, tmp_path, events, state, done=0)
