"""More ways of sending the differential replay's workload (differential_support.py), each to a
fresh sandbox, that must end in the CRM of the undisturbed way up to ids (SPEC 5): identities by
the index (the undisturbed way searches); the input split across files, and all of it given
twice in one run; a backup folder sent in hour windows across midnight; and at concurrency 64
under faults (5xx, 429s, answers lost after the write), killed with SIGKILL then SIGTERM at
seeded request counts, then resumed. Every report adds up (dead letters = failed), and a rerun
sends nothing."""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from differential_support import Way, assert_adds_up, backup, undisturbed, workload
from process_support import answers_held
from resume_support import (
    finish,
    requests_served,
    run_send,
    served_at_least,
    signal_when,
    start_send,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
CRM = dict[str, list[str]]
SENT = 104  # the workload's events that write: all but 8 skipped tracks, a repeat, a failure


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> CRM:
    return undisturbed(tmp_path_factory.mktemp("undisturbed"))


def test_identities_by_the_index(make_sandbox: MakeSandbox, tmp_path: Path, expected: CRM) -> None:
    # The undisturbed way searches (`auto`, few identities); the workload's merge and re-key move
    # identities that the index must follow as search does.
    events = write_events(tmp_path / "w.ndjson", workload())
    way = Way(make_sandbox(plan="unlimited"), tmp_path, events)
    run = way.send("--identities", "index", "--concurrency", "64")
    assert run.report is not None and run.report["identities"] == "index"
    assert run.report["events"]["sent"] == SENT
    assert way.converged() == expected


def test_split_across_files_and_given_twice_in_one_run(
    make_sandbox: MakeSandbox, tmp_path: Path, expected: CRM
) -> None:
    events = workload()
    cuts = [0, len(events) // 3, 2 * len(events) // 3, len(events)]
    parts = [
        write_events(tmp_path / f"part-{k}.ndjson", events[cuts[k] : cuts[k + 1]]) for k in range(3)
    ]
    way = Way(make_sandbox(plan="unlimited"), tmp_path, parts[0])
    command = way.command("--concurrency", "64")
    at = command.index(str(parts[0])) + 1
    command[at:at] = [str(part) for part in (*parts[1:], *parts)]
    run = run_send(command, tmp_path)
    assert run.exit_code == 1, run.stderr[-2000:]
    assert_adds_up(run, tmp_path / "run-1.failed")
    assert run.report is not None
    # Each file given again is read once, where first given, and said (io/readers.py).
    for part in parts:
        assert f"{part} is given twice: read once" in " ".join(run.stderr.split())
    assert run.report["events"] == {
        **{"read": len(events), "sent": SENT, "unchanged": 0},
        **{"skipped": len(events) - SENT - 1, "failed": 1},
    }
    assert way.converged() == expected


def test_a_backup_folder_in_hour_windows_across_midnight(
    make_sandbox: MakeSandbox, tmp_path: Path, expected: CRM
) -> None:
    folder = backup(tmp_path / "backup", workload(), late="")
    way = Way(make_sandbox(plan="unlimited"), tmp_path, folder)
    hours = ["2026-10-01T23:00:00Z", "2026-10-02T00:00:00Z", "2026-10-02T01:00:00Z"]
    windows = [("--until", hours[0])]
    windows += [("--since", since, "--until", until) for since, until in pairwise(hours)]
    windows += [("--since", hours[-1])]
    sent = 0
    for window in windows:
        report = way.send(*window).report
        assert report is not None
        sent += report["events"]["sent"]
    assert sent == SENT  # each event sent in exactly one window
    assert way.converged() == expected


def test_killed_at_seeded_request_counts_under_faults_then_resumed(
    make_sandbox: MakeSandbox, tmp_path: Path, expected: CRM
) -> None:
    faults = {"fail_5xx": 0.05, "fail_429": 0.02, "fail_reset": 0.05, "fault_seed": 17}
    sandbox = make_sandbox(plan="unlimited", latency_ms=3, **faults)
    way = Way(sandbox, tmp_path, write_events(tmp_path / "w.ndjson", workload()))
    draw = random.Random(17)
    for signum, most in ((signal.SIGKILL, 80), (signal.SIGTERM, 50)):
        more = draw.randint(25, most)
        count = requests_served(sandbox) + more
        with answers_held(sandbox, None, more):  # from there on, until the signal
            command = way.command("--concurrency", "64", "--identities", "index")
            process = start_send(command, tmp_path)
            assert signal_when(process, served_at_least(sandbox, count), signum), count
        ended = finish(process, tmp_path / f"run-{way.runs}.json")
        if signum is signal.SIGKILL:
            assert ended.exit_code == -9
        else:  # SPEC 6: the report, then 143; what was read and not started is counted
            assert ended.exit_code == 143, ended.stderr[-2000:]
            assert_adds_up(ended, tmp_path / f"run-{way.runs}.failed")
    for _ in range(3):  # under faults a request may fail its retries: the rerun sends it
        report = way.send("--concurrency", "64", "--identities", "index").report
        assert report is not None
        if report["events"]["failed"] == 1:  # the nameless person's track only
            break
    sandbox.set_faults(fail_5xx=0.0, fail_429=0.0, fail_reset=0.0)
    assert way.converged() == expected
