"""One mixed workload sent to fresh sandboxes in several ways ends in the same CRM up to ids,
organization links included (SPEC 5): undisturbed and sequential; at concurrency 64 killed
(SIGKILL, SIGTERM) at fixed points between persons' group events and their later deals, then
resumed; with the field listings failing on the first try, then rerun; and as a backup folder
backfilled in day windows with a late deal, the rerun its warning names included. Every report
adds up (dead letters = failed), and a rerun with the same state sends nothing. A compact form of
the differential harness (until now only in /tmp) that found organization links lost after a kill.
The events' timestamps follow input order, so recency and input order agree."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from differential_support import Way, backup, undisturbed, workload
from process_support import answers_held
from resume_support import (
    finish,
    sandbox_idle,
    served_at_least,
    signal_when,
    start_send,
    wait_for,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox, routes
from rudder_pipedrive_cli.sandbox.replies import ApiError

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py


class Unlisted(dict[str, Any]):
    """The sandbox's fields, whose listings fail (HTTP 503)."""

    def __getitem__(self, entity: str) -> Any:
        raise ApiError(503, "field listings are unavailable")


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The undisturbed way: sequential, one run (and the rerun that must send nothing)."""
    view = undisturbed(tmp_path_factory.mktemp("undisturbed"))
    counts = {kind: len(records) for kind, records in view.items()}
    assert counts == {
        **{"persons": 23, "organizations": 4, "leads": 8, "deals": 29},
        **{"activities": 9, "notes": 12, "merges": 1},
    }
    # All but the 8 deals made before their person's group and the merged person's (no group).
    assert sum('"org":"g-' in deal for deal in view["deals"]) == 20
    return view


def test_killed_between_group_events_and_deals_then_resumed(
    make_sandbox: MakeSandbox, tmp_path: Path, expected: dict[str, list[str]]
) -> None:
    sandbox = make_sandbox(plan="unlimited", latency_ms=3)
    way = Way(sandbox, tmp_path, write_events(tmp_path / "w.ndjson", workload()))
    # Each run is stopped once the sandbox has served that many more organization, deal or
    # person writes than before it: after some group events, before the deals of those persons.
    for key, more, signum in (
        ("POST /api/v2/organizations", 2, signal.SIGKILL),
        ("POST /api/v2/deals", 3, signal.SIGTERM),
        ("PATCH /api/v2/persons/{id}", 4, signal.SIGKILL),
        ("POST /api/v2/deals", 3, signal.SIGKILL),
    ):
        assert wait_for(sandbox_idle), "the last run's requests still in the sandbox"
        count = sandbox.stats()["requests"].get(key, 0) + more
        # That write's answer and all after it wait for the signal: the run stops there, however
        # late the test is (at 64 events in flight and 3 ms latency, a test 0.3 s late found the
        # run ended, or an earlier run gone past the next one's point).
        with answers_held(sandbox, key, more):
            process = start_send(way.command("--concurrency", "64"), tmp_path)
            stopped = signal_when(process, served_at_least(sandbox, count, key), signum)
        assert stopped, f"the run ended before {count} {key}"
        ended = finish(process, None)
        assert ended.exit_code == (-9 if signum is signal.SIGKILL else 143), ended.stderr[-2000:]
    way.send("--concurrency", "64")
    assert way.converged() == expected


def test_field_listings_failing_on_the_first_try_then_a_rerun(
    make_sandbox: MakeSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    expected: dict[str, list[str]],
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    way = Way(sandbox, tmp_path, write_events(tmp_path / "w.ndjson", workload()))
    monkeypatch.setattr(routes, "FIELDS", Unlisted())
    first = way.send("--max-retries", "0")
    # Each listing stands alone: the track rules' pipelines and stages are still listed, and
    # this workload maps no value a field's type converts, so only its nameless person fails.
    assert first.report is not None and first.report["failed_by_reason"] == {
        "cannot create person without a name": {"events": 1, "later_events": 0}
    }
    assert first.stderr.count("HTTP 503 after 1 attempt; the values of its fields will") == 3
    monkeypatch.undo()
    way.send()
    assert way.converged() == expected


def test_a_backfill_in_day_windows_with_a_late_deal(
    make_sandbox: MakeSandbox, tmp_path: Path, expected: dict[str, list[str]]
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    events = workload()
    late = next(e for e in events if e["messageId"] == "u-9-deal")  # u-9 keeps its group
    assert late["timestamp"] < "2026-10-02"
    way = Way(sandbox, tmp_path, backup(tmp_path / "backup", events, late["messageId"]))
    way.send("--since", "2026-10-01", "--until", "2026-10-02")
    second = way.send("--since", "2026-10-02", "--until", "2026-10-03")
    warning = "warning: 1 late event before --since left out: rerun with --since 2026-10-01"
    assert warning in second.stderr.splitlines()
    rerun = way.send("--since", "2026-10-01")
    assert rerun.report is not None and rerun.report["events"]["sent"] == 1
    assert way.converged() == expected
