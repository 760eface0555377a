"""A stop (Ctrl-C, SIGTERM) ends the retries of a write whose answer was lost (SPEC 5/6): the
write is neither reconciled nor sent again by the stopped run but left in flight, and the next
run reconciles it. Before, each in-flight create was reconciled and sent again up to
`unknown_tries` (7) times, each bounded only by the 120 s answer deadline: against a server
trickling every create's answer, a Ctrl-C took 624 s to exit 130."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from process_support import answers_held
from resume_support import (
    Rig,
    census,
    finish,
    identify,
    inflight_count,
    journal,
    served_at_least,
    signal_when,
)

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

PERSON_CREATE, PERSON_LISTING = "POST /api/v2/persons", "GET /api/v2/persons"
# Search does not see the new person: the rerun finds it only by reconciling the write.
INDEX_LAG_MS = 600_000


@pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
)
def test_a_stop_leaves_a_write_whose_answer_was_lost_in_flight_for_the_next_run(
    make_sandbox: MakeSandbox, tmp_path: Path, signum: signal.Signals, exit_code: int, said: str
) -> None:
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, tmp_path / "state.sqlite")
    assert rig.state is not None
    event = [identify("m-1", "u-1", name="One")]
    # The create is applied and its connection dropped (its answer lost), once the run is told
    # to stop while the answer is held.
    rig.sandbox.set_faults(index_lag_ms=INDEX_LAG_MS, fail_reset=1.0)
    with answers_held(rig.sandbox, PERSON_CREATE) as release:
        stopped = rig.start(event, "stopped")
        assert signal_when(stopped, served_at_least(rig.sandbox, 1, PERSON_CREATE), signum)
        release()
        ended = finish(stopped, tmp_path / "stopped-report.json")

    assert ended.exit_code == exit_code, ended.stderr
    # Its words said those in flight were finished, where this one's write was left in flight.
    assert ended.stderr.splitlines()[-1] == (
        f"{said}: no new events were started and those in flight were finished or left in "
        "flight (see the dead letters); rerun the same command to resume and reconcile them"
    )
    assert ended.report is not None
    events = ended.report["events"]
    assert (events["read"], events["sent"], events["failed"]) == (1, 0, 1)
    assert ended.report["failed_by_reason"] == {
        "create person: outcome unknown when the run was stopped; left in flight, the next run "
        "reconciles it": {"events": 1, "later_events": 0}
    }
    assert ended.report["stopped"]["exit"] == exit_code
    requests = Counter(rig.sandbox.stats()["requests"])
    assert (requests[PERSON_CREATE], requests[PERSON_LISTING]) == (1, 0)
    assert inflight_count(rig.state) == 1
    assert journal(rig.state) == {"m-1": "failed"}

    rig.sandbox.set_faults(fail_reset=0.0)
    rerun = rig.send(event, "rerun")

    assert rerun.exit_code == 0, rerun.stderr
    assert rerun.report is not None
    assert (rerun.report["events"]["read"], rerun.report["events"]["sent"]) == (1, 1)
    assert census(rig.sandbox.state())["persons"] == Counter({"u-1": 1})
    requests = Counter(rig.sandbox.stats()["requests"])
    assert (requests[PERSON_CREATE], requests[PERSON_LISTING]) == (1, 1)
    assert inflight_count(rig.state) == 0
