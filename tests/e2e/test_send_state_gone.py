"""A state file deleted, moved or replaced while a send runs. In WAL, the state's mode, SQLite
goes on writing to the file wherever it went and says nothing: a send whose file was deleted
ended 0 with no state left and no word of it, its journal written to a file nobody can read; a
moved file ended without the run (its last changes left in a -wal at the old path), and a file
put in its place was read with this run's -wal as if its own."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import EXAMPLES, holdings, rpd_send
from test_send_examples import ALL_EXAMPLES
from test_send_security import exhaust_budget

from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.sandbox import Sandbox

EVENTS = EXAMPLES / "events.ndjson"
MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py


def gone_after_the_first_event(
    monkeypatch: pytest.MonkeyPatch, path: Path, away: Callable[[Path], None]
) -> None:
    """`away(path)` once the run has journaled its first event."""
    record = ReplayState.record_outcome
    done: list[Path] = []

    def recorded(self: ReplayState, event_id: str, source: str, outcome: Outcome) -> None:
        record(self, event_id, source, outcome)
        if not done:
            away(path)
            done.append(path)

    monkeypatch.setattr(ReplayState, "record_outcome", recorded)


def test_a_state_file_deleted_during_a_send_is_said_lost_and_the_rerun_creates_nothing_again(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "st.sqlite"
    gone_after_the_first_event(monkeypatch, path, Path.unlink)

    run = rpd_send(sandbox, tmp_path, EVENTS, state=path)

    assert run.exit_code == 2
    assert run.stderr.splitlines()[-2:] == [
        f"error: state file {path} was deleted during the run: the journal of this run is lost "
        "with it",
        "hint: rerun the same command to start a new one: it checks every event against "
        "Pipedrive again, and its lookups still prevent duplicates",
    ]
    assert run.report is not None and run.report["events"]["failed"] == 0  # the report came first
    assert not path.exists()
    assert Path(f"{path}-wal").read_bytes() == b""  # no journal left to refuse the rerun
    before = holdings(sandbox)
    made = (before.user_ids(), before.group_ids(), before.origin_ids(), len(before.merges))

    monkeypatch.undo()
    rerun = rpd_send(sandbox, tmp_path, EVENTS, state=path, name="rerun")

    assert rerun.exit_code == 0, rerun.stderr
    after = holdings(sandbox)  # found by its lookups, each one: nothing made twice
    assert (after.user_ids(), after.group_ids(), after.origin_ids(), len(after.merges)) == made
    assert set(made[0].values()) == set(made[1].values()) == set(made[2].values()) == {1}


@pytest.mark.parametrize("how", ["moved", "replaced"])
def test_a_state_file_moved_or_replaced_during_a_send_keeps_the_run_where_it_went(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    path, elsewhere, other = tmp_path / "st.sqlite", tmp_path / "moved.sqlite", tmp_path / "o.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE mine (x)")
    connection.commit()
    connection.close()

    def away(state: Path) -> None:
        state.rename(elsewhere)
        if how == "replaced":
            other.rename(state)

    gone_after_the_first_event(monkeypatch, path, away)

    run = rpd_send(sandbox, tmp_path, EVENTS, state=path)

    assert run.exit_code == 2
    assert run.stderr.splitlines()[-2:] == [
        f"error: state file {path} was moved or deleted during the run",
        f"hint: put it back at {path}, or rerun the same command with --state where it is now: "
        "it resumes where this run stopped",
    ]
    assert Path(f"{path}-wal").read_bytes() == b""  # all of the run is in the moved file
    if how == "replaced":  # never read with this run's -wal as if its own
        with sqlite3.connect(path) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
        connection.close()
        assert tables == [("mine",)]
    monkeypatch.undo()
    rerun = rpd_send(sandbox, tmp_path, EVENTS, state=elsewhere, name="rerun")

    assert rerun.exit_code == 0, rerun.stderr
    assert rerun.report is not None
    assert rerun.report["events"]["sent"] == 0  # each one journaled as done


def moved_away(state: Path) -> None:
    state.rename(state.with_name("moved.sqlite"))


@pytest.mark.parametrize(
    ("away", "said"),
    [
        (
            Path.unlink,
            "was deleted during the run: the journal of this run is lost with it; rerun the same "
            "command to start a new one: it checks every event against Pipedrive again, and its "
            "lookups still prevent duplicates",
        ),
        (
            moved_away,
            "was moved or deleted during the run; put it back at {path}, or rerun the same "
            "command with --state where it is now: it resumes where this run stopped",
        ),
    ],
    ids=["deleted", "moved"],
)
def test_a_send_stopped_early_whose_state_file_went_says_both_and_what_to_do_with_it(
    make_sandbox: MakeSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    away: Callable[[Path], None],
    said: str,
) -> None:
    # The run's own stop stays the exit (4: rerun later, still true) and its words the last; the
    # state's loss is said too, where it went unsaid (only the first stop was kept), with what to
    # do about it: "rerun the same command later to resume" alone would start a new journal at
    # the path, every event checked again on a budget already spent, the moved file unused.
    sandbox = make_sandbox(plan="growth")
    exhaust_budget(sandbox, leave=330)
    path = tmp_path / "st.sqlite"
    gone_after_the_first_event(monkeypatch, path, away)

    stopped = rpd_send(sandbox, tmp_path, *ALL_EXAMPLES, args=("--plan", "growth"), state=path)

    assert stopped.exit_code == 4, stopped.stderr
    lines = stopped.stderr.splitlines()
    assert f"warning: state file {path} {said.format(path=path)}" in lines
    assert lines[-2].startswith("error: daily API token budget spent (HTTP 429")
    assert lines[-1] == "hint: rerun the same command later to resume"
