"""Pipedrive unreachable (issue 13 item 11; SPEC 6 exit 4): after UNREACHABLE_FAILURES connection
failures in a row with no answer between them, send stops taking events, ends those in flight,
keeps its state, prints the report and says so; events read but not finished are counted as not
attempted (not failed, not dead-lettered) and a rerun sends them, duplicating nothing."""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from e2e_support import (
    assert_report_adds_up,
    assert_resumed,
    identify,
    rpd_send,
    write_events,
)

from rudder_pipedrive_cli.http.client import UNREACHABLE_FAILURES, UNREACHABLE_HINT
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
EVENTS = 200


def free_port() -> int:
    """A loopback port nothing listens on once the probe is closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable_error(url: str) -> re.Pattern[str]:
    return re.compile(
        rf"error: Pipedrive is unreachable at {re.escape(url)}: {UNREACHABLE_FAILURES} "
        r"connection failures in a row over \d+\.\d s, no answer between them \(last: "
        r"ConnectError: [^\n]*\)\n"
        rf"hint: {re.escape(UNREACHABLE_HINT)}\n$"
    )


def test_the_unreachable_hint_fits_every_command() -> None:
    # map-fields, check and init stop the same way: the hint was a send's alone ("rerun the
    # same command to resume (events not attempted are sent then...").
    assert UNREACHABLE_HINT == (
        "check the network and base_url / company_domain, then rerun the same command (a send "
        "resumes: events not attempted are sent then; writes left in flight are reconciled, not "
        "repeated)"
    )


def journal_and_inflight(state: Path) -> tuple[int, int]:
    with sqlite3.connect(state) as db:
        journaled = db.execute("SELECT count(*) FROM journal").fetchone()[0]
        inflight = db.execute("SELECT count(*) FROM inflight").fetchone()[0]
    return int(journaled), int(inflight)


def test_a_dead_port_stops_the_run_with_exit_4_and_nothing_dead_lettered(tmp_path: Path) -> None:
    # Before: 7 attempts per event, each dead-lettered; 3,000 events took hours.
    url = f"http://127.0.0.1:{free_port()}"
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(EVENTS)],
    )
    state = tmp_path / "state.sqlite"
    run = rpd_send(
        None, tmp_path, events, state=state, args=("--base-url", url, "--max-retries", "3")
    )

    assert run.exit_code == 4, run.stderr
    assert unreachable_error(url).search(run.stderr), run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    left = run.report["events"]["not_attempted"]
    # The events in flight and those read ahead: nothing else was read.
    assert 0 < left <= 8 * 4
    assert run.report["events"] == {
        "read": left,
        "sent": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "not_attempted": left,
    }
    assert run.report["requests"] == {} and run.report["tokens"] == 0
    assert run.report["dead_letter"] is None and not run.dead_letter.exists()
    assert f"not attempted: {left} events were read but not finished" in run.stderr
    assert journal_and_inflight(state) == (0, 0)  # lookups only: no write was begun


def test_pipedrive_stopped_mid_run_stops_it_and_the_rerun_resumes(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", port=free_port(), latency_ms=20)
    url = sandbox.url
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(EVENTS)],
    )
    state = tmp_path / "state.sqlite"

    def stop_after_some_persons() -> None:
        while sandbox.stats()["requests"].get("POST /api/v2/persons", 0) < 20:
            threading.Event().wait(0.005)
        sandbox.stop()

    stopper = threading.Thread(target=stop_after_some_persons, daemon=True)
    stopper.start()
    run = rpd_send(sandbox, tmp_path, events, state=state)
    stopper.join(timeout=10)

    assert run.exit_code == 4, run.stderr
    assert unreachable_error(url).search(run.stderr), run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    counts = run.report["events"]
    sent, left = counts["sent"], counts["not_attempted"]
    assert counts == {
        "read": sent + left,
        "sent": sent,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "not_attempted": left,
    }
    assert sent >= 20 - 8 and left > 0 and sent + left < EVENTS
    assert not run.dead_letter.exists()
    # What the run finished is journaled; a create cut off mid-way stays in flight.
    journaled, inflight = journal_and_inflight(state)
    assert journaled == sent and inflight <= 8

    sandbox.start()  # the same port, the same data
    assert_resumed(sandbox, tmp_path, events, state, done=sent)
    assert journal_and_inflight(state) == (EVENTS, 0)
