"""kill -9 and SIGTERM at several points of a replay under 5xx, 429s and dropped connections, then
rerun until it completes, and once more (SPEC 5; issue 13's "what to show"): the sandbox ends
exactly as after an undisturbed run of the same file (every record once, its field values too),
each SIGTERM'd run exits 143 with a report that accounts for what it read, and the last reports
account for every event, those finished earlier as skipped "already done"."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from process_support import answers_held
from resume_support import (
    Finished,
    Rig,
    census,
    finish,
    identify,
    inflight_count,
    journal,
    normalised,
    requests_served,
    served_at_least,
    signal_when,
    workload,
)

from rudder_pipedrive_cli.cli.send_cmd import INTERRUPTED_MESSAGE
from rudder_pipedrive_cli.core.intake import DONE
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

USERS, TRACKS, GROUPS, MERGES, REKEYS = 150, 3, 10, 5, 3
# Where the kills land: after this share of the requests an undisturbed run makes, counted on
# the faulty sandbox over all runs so far (its faults and reconciliations add requests, so each
# run gets past the previous kill).
KILL_AT = (
    (0.12, signal.SIGKILL),
    (0.3, signal.SIGTERM),
    (0.5, signal.SIGKILL),
    (0.7, signal.SIGTERM),
    (0.85, signal.SIGKILL),
)
OUTCOMES = ("sent", "unchanged", "skipped", "failed", "not_attempted")
# The interrupted runs with the default cache, and with one so small that nearly every lookup
# of the identity cache misses it and goes to the state file (issue 18: the same answers).
CACHES = {"default-cache": (), "tiny-cache": ("--cache-entries", "2")}


# Both ways to resolve identities (issue 15): by search, and by the index, whose runs must not
# depend on search's lag (the sandbox's index lag is on for them: search would miss records).
WAYS = {"search": 0, "index": 400}
# Three cases, not the full product (each is a minute of kills and reruns): both ways with the
# default cache, and search (whose lookups go through the identity cache most) with the tiny one.
CASES = {
    "search": ("search", "default-cache"),
    "index": ("index", "default-cache"),
    "search-tiny-cache": ("search", "tiny-cache"),
}

# The undisturbed run of each way, made once: the cases of one way send the same file the same
# way (the cache size is the interrupted runs'), so its sandbox ends alike (normalised) and after
# the same number of requests.
UNDISTURBED: dict[str, tuple[dict[str, Any], int]] = {}


@pytest.mark.parametrize(("way", "cache_name"), CASES.values(), ids=CASES.keys())
def test_killed_replays_under_faults_end_as_an_undisturbed_one(
    make_sandbox: MakeSandbox, tmp_path: Path, way: str, cache_name: str
) -> None:
    cache = CACHES[cache_name]
    by = ("--identities", way)
    events = workload(USERS, tracks=TRACKS, groups=GROUPS, merges=MERGES, rekeys=REKEYS)
    # Later identifies with new values for some users no alias touches: the records must end
    # with them however the runs were cut (field values, not only counts).
    events += [
        {
            **identify(f"u-{n}-late", f"u-{n}", email=f"u-{n}@new.example.com", role="late"),
            "timestamp": "2026-10-02T09:00:00Z",
        }
        for n in range(2 * MERGES + REKEYS, USERS, 7)
    ]

    if way not in UNDISTURBED:
        calm = Rig.make(make_sandbox(plan="unlimited"), tmp_path / "calm", tmp_path / "calm.sqlite")
        undisturbed = calm.send(events, "run", *by)
        assert undisturbed.exit_code == 0, undisturbed.stderr
        UNDISTURBED[way] = (normalised(calm.sandbox.state()), requests_served(calm.sandbox))
    expected, full_run = UNDISTURBED[way]
    assert len(expected["persons"]) == USERS - MERGES
    assert len(expected["leads"]) == USERS * TRACKS + MERGES
    assert len(expected["merges"]) == MERGES
    late = len(range(2 * MERGES + REKEYS, USERS, 7))
    assert sum(1 for person in expected["persons"] if person[3] == "late") == late

    faulty = make_sandbox(
        plan="unlimited",
        fail_5xx=0.05,
        fail_429=0.005,
        fail_reset=0.05,
        latency_ms=1,
        index_lag_ms=WAYS[way],
        fault_seed=7,
    )
    state = tmp_path / "state.sqlite"
    rig = Rig.make(faulty, tmp_path / "faulty", state)
    left_in_flight = 0
    for share, signum in KILL_AT:
        report = rig.directory / "run-report.json"
        report.unlink(missing_ok=True)
        at = share * full_run
        # The answers from there on wait for the signal: a test late to send it (a loaded
        # machine) let this run go on past the next run's point, which then stopped at its start.
        with answers_held(faulty, None, at - requests_served(faulty)):
            process = rig.start(events, "run", *by, *cache)
            stopped = signal_when(process, served_at_least(faulty, at), signum)
        assert stopped, f"the run ended before {share:.0%} of the requests"
        ended = finish(process, report)
        if signum is signal.SIGKILL:
            assert ended.exit_code == -signal.SIGKILL and ended.report is None
            left_in_flight += inflight_count(state)
            continue
        # SIGTERM: handled as Ctrl-C, exit 143 after the report; what it read is accounted for.
        assert ended.exit_code == 143, ended.stderr[-2000:]
        # Its words say whether a write was left in flight (a lost answer held at the stop).
        assert ended.stderr.rstrip().endswith(
            tuple(said.format(what="terminated (SIGTERM)") for said in INTERRUPTED_MESSAGE.values())
        )
        assert ended.report is not None
        counts = ended.report["events"]
        assert counts["read"] == sum(counts.get(name, 0) for name in OUTCOMES) < len(events)
    # Several concurrent events each have a write in flight nearly all the time: the kills
    # must have left some, or the reruns prove nothing about reconciling them.
    assert left_in_flight > 0

    runs: list[Finished] = []
    before: dict[str, str] = {}
    while not runs or runs[-1].exit_code != 0:
        assert len(runs) < 5, [run.stderr[-2000:] for run in runs]
        before = journal(state)
        runs.append(rig.send(events, "run", *by, *cache))
        assert runs[-1].exit_code in (0, 1), runs[-1].stderr  # 1: an event failed; rerun
    last = runs[-1]

    assert normalised(faulty.state()) == expected
    stats = faulty.stats()
    assert stats["resets"] > 0 and stats["rate_limited"] > 0
    assert any(status.startswith("5") for status in stats["statuses"])

    # The last report accounts for every event: those an earlier run finished are skipped
    # ("already done"), the rest counted by the outcome the journal now holds for them.
    after = journal(state)
    assert len(after) == len(events) and set(after.values()) <= DONE
    done_before = {event_id for event_id, status in before.items() if status in DONE}
    finished_now = Counter(
        status for event_id, status in after.items() if event_id not in done_before
    )
    assert last.report is not None
    assert last.report["identities"] == way
    assert last.report["events"] == {
        "read": len(events),
        "sent": finished_now["sent"],
        "unchanged": finished_now["unchanged"],
        "skipped": len(done_before) + finished_now["skipped"],
        "failed": 0,
    }
    assert done_before  # the killed runs finished some events, and the last one skipped them
    assert inflight_count(state) == 0

    # The finished input once more: everything is already done, nothing changes.
    served = requests_served(faulty)
    again = rig.send(events, "run", *by, *cache)
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": len(events),
        "sent": 0,
        "unchanged": 0,
        "skipped": len(events),
        "failed": 0,
    }
    assert normalised(faulty.state()) == expected
    assert all(n == 1 for counts in census(faulty.state()).values() for n in counts.values())
    # No event asked Pipedrive anything: the field listings (and their retries) only.
    assert set(again.report["requests"]) <= {
        "GET /v1/users/me",
        "GET /api/v2/personFields",
        "GET /api/v2/organizationFields",
        "GET /api/v2/dealFields",
        "GET /v1/leadLabels",
    }
    assert requests_served(faulty) - served == sum(again.report["requests"].values())
