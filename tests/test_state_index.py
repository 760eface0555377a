"""The identity index's own table in the state file (issue 15): kept per namespace for later
runs, read by a read-only open, cleared by `rpd state clear`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rudder_pipedrive_cli.core.index import IdentityIndex
from rudder_pipedrive_cli.io.state import ReplayState

KEY = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"


def build(state: ReplayState, rows: list[tuple[int, str]], at: str) -> IdentityIndex:
    index = IdentityIndex(state.index_rows(), {"person": KEY}, clock=lambda: 0.0)
    index.begin("person", 0.0)
    index.take("person", [{"id": i, "custom_fields": {KEY: v}} for i, v in rows])
    index.end("person", at, refresh=False, started=0.0)
    return index


def test_the_index_is_kept_per_namespace_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, "a#1") as state:
        build(state, [(3, "u-1"), (2, "u-1"), (4, "u-2")], "2026-12-01T10:00:00Z")
    with ReplayState.open(path, "b#2") as other:
        assert not IdentityIndex(other.index_rows(), {"person": KEY}, clock=lambda: 0).covers(
            "person"
        )
    with ReplayState.open(path, "a#1", readonly=True) as again:
        index = IdentityIndex(again.index_rows(), {"person": KEY}, clock=lambda: 0.0)
        assert index.covers("person")
        assert index.since("person") == "2026-12-01T10:00:00Z"
        assert index.lookup("person", "u-1") == [2, 3]
        assert again.index_rows().size("person") == 3


def test_a_build_starts_from_no_rows_and_state_clear_forgets_the_index(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, "a#1") as state:
        build(state, [(1, "u-1")], "2026-12-01T10:00:00Z")
        rows = state.index_rows()
        rows.mark("person", KEY, "")  # as if a build of another field had begun
        build(state, [(2, "u-2")], "2026-12-01T11:00:00Z")
        assert (rows.ids("person", "u-1"), rows.ids("person", "u-2")) == ([], [2])
        state.clear("a#1")
        assert rows.size("person") == 0
        assert rows.since("person", KEY) is None


def test_a_read_only_open_of_a_file_without_the_index_tables_reads_an_empty_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, "a#1"):
        pass
    with sqlite3.connect(path) as db:  # as a file written before the index existed
        db.execute("DROP TABLE identity_index")
        db.execute("DROP TABLE identity_index_marks")
    with ReplayState.open(path, "a#1", readonly=True) as state:
        rows = state.index_rows()
        assert (rows.ids("person", "u-1"), rows.since("person", KEY), rows.size("person")) == (
            [],
            None,
            0,
        )
