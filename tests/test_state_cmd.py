"""`rpd state show|clear`: exact output and exit codes."""

from __future__ import annotations

import errno
import io
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import typer
from rich.console import Console
from typer._click import termui
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli import state_cmd
from rudder_pipedrive_cli.cli.common import NO_CONFIG
from rudder_pipedrive_cli.cli.main import app as rpd
from rudder_pipedrive_cli.cli.state_cmd import state_app
from rudder_pipedrive_cli.core.index import origins_key
from rudder_pipedrive_cli.core.protocol import ApiRequest, Learned, Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import namespace_key
from rudder_pipedrive_cli.io.state_summary import NamespaceSummary, RunSummary

app = typer.Typer()
app.add_typer(state_app, name="state")
runner = CliRunner()
ENV = {"COLUMNS": "100", "RPD_CONFIG": "", "PIPEDRIVE_API_TOKEN": "", "RPD_BASE_URL": ""}
TOKEN = "pd-token-5f0c1e9a7b3d4c2e8f6a"
NS = namespace_key("https://api.pipedrive.com", TOKEN)
SANDBOX_NS = namespace_key("http://127.0.0.1:8787", "sandbox-token")
STAMP = "2026-01-02T03:04:05Z"
LEAD = ApiRequest(
    method="POST", path="/v1/leads", endpoint="/v1/leads", stage="create lead", body={"title": "t"}
)
REPORT = {
    "events": {"read": 3, "sent": 1, "unchanged": 0, "skipped": 0, "failed": 1},
    "requests": {"POST /v1/leads": 1},
    "retries": 2,
}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def fill(path: Path) -> None:
    with ReplayState.open(path, NS, now=lambda: STAMP) as state:
        state.start_run()
        state.record_outcome(
            "e1",
            "in.ndjson:1",
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u1"): 5, ("person", "u2"): 6, ("org", "g"): 9},
                    lead_origins={5: frozenset({"rpd:e1"})},
                    memberships={5: 9},
                ),
            ),
        )
        state.record_outcome(
            "e2",
            "in.ndjson:2",
            Outcome(
                status="failed",
                reason="HTTP 500",
                learned=Learned(pending_creates={("person", "u3"): STAMP}),
            ),
        )
        state.begin_write("e3", LEAD, STAMP)
        state.input_aliases()["u0"] = "u1"  # kept for resumed runs; not shown
        for name in ("s3://b/rs/2026/01/02/a.json.gz", "s3://b/rs/2026/01/02/b.json.gz"):
            state.finish_object(name, "etag")  # a resumed run reads past them
        state.finish_run(REPORT)
    with ReplayState.open(path, SANDBOX_NS, now=lambda: STAMP) as state:
        state.record_outcome("s1", "demo.ndjson:1", Outcome(status="unchanged"))


def test_show_without_a_state_file() -> None:
    result = runner.invoke(app, ["state", "show"], env=ENV)
    assert (result.exit_code, result.output) == (0, "no state at .rpd/state.sqlite\n")
    assert not Path(".rpd").exists()


def test_show_uses_the_directory_of_the_config(tmp_path: Path) -> None:
    config = tmp_path / "jobs" / "rpd.toml"
    config.parent.mkdir()
    config.write_text('[pipedrive]\nplan = "lite"\n')
    result = runner.invoke(app, ["state", "show", "--config", str(config)], env=ENV)
    assert result.output == f"no state at {tmp_path}/jobs/.rpd/state.sqlite\n"


@pytest.mark.parametrize("command", ["show", "clear"])
def test_the_state_commands_read_no_setting_of_the_config_or_the_environment(
    tmp_path: Path, command: str
) -> None:
    # Before: "error: jobs/rpd.toml: unknown key pipedrive.plna" (or "$RPD_PLAN: unknown plan"),
    # exit 2, even with --state: a config send would refuse kept its state from being shown or
    # cleared, though only the config's place says where the state is.
    config = Path("jobs/rpd.toml")
    config.parent.mkdir()
    config.write_text('[pipedrive]\nplna = "lite"\n')
    fill(Path("jobs/.rpd/state.sqlite"))
    args = ["state", command, "--config", str(config)] + (["--yes"] if command == "clear" else [])
    result = runner.invoke(app, args, env=ENV | {"RPD_PLAN": "gold"})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "state at jobs/.rpd/state.sqlite"
        if command == "show"
        else "cleared jobs/.rpd/state.sqlite:"
    )


def test_show_table() -> None:
    fill(Path("s.sqlite"))
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert result.exit_code == 0
    assert result.output == (
        "state at s.sqlite\n"
        "http://127.0.0.1:8787 (token 28cb449547fa309b)\n"
        "┌────────────┬──────────────────────────────────────────┐\n"
        "│ identities │ 0 userIds, 0 groupIds                    │\n"
        "│ leads      │ 0 origin ids known for 0 persons         │\n"
        "│ journal    │ 0 sent, 1 unchanged, 0 skipped, 0 failed │\n"
        "│ in flight  │ 0 writes                                 │\n"
        "│ last run   │ none                                     │\n"
        "└────────────┴──────────────────────────────────────────┘\n"
        "https://api.pipedrive.com (token 7f87dc59a5ac3bce)\n"
        "┌────────────┬────────────────────────────────────────────────────────────────────────┐\n"
        "│ identities │ 2 userIds, 1 groupId, 1 membership                                     │\n"
        "│ leads      │ 1 origin id known for 1 person                                         │\n"
        "│ journal    │ 1 sent, 0 unchanged, 0 skipped, 1 failed                               │\n"
        "│ objects    │ 2 finished, not read again                                             │\n"
        "│ in flight  │ 1 write of 1 event; 1 create or merge to settle                        │\n"
        "│ last run   │ 2026-01-02T03:04:05Z to 2026-01-02T03:04:05Z: read 3, sent 1, failed 1 │\n"
        "└────────────┴────────────────────────────────────────────────────────────────────────┘\n"
    )
    assert TOKEN not in result.output


def test_show_counts_the_origins_of_each_kind_track_rules_make() -> None:
    # Deals, activities and notes are kept beside leads (per person and kind): shown per kind.
    with ReplayState.open(Path("s.sqlite"), NS, now=lambda: STAMP) as state:
        state.record_outcome(
            "e1",
            "in.ndjson:1",
            Outcome(
                status="sent",
                learned=Learned(
                    lead_origins={
                        5: frozenset({"rpd:e1"}),
                        6: frozenset(),
                        origins_key("deal", 5): frozenset({"rpd:e2", "rpd:e3"}),
                        origins_key("note", 5): frozenset({"rpd:e4"}),
                        origins_key("note", 6): frozenset({"rpd:e5"}),
                        origins_key("note", 7): frozenset(),
                    }
                ),
            ),
        )
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert result.exit_code == 0
    assert result.output == (
        "state at s.sqlite\n"
        "https://api.pipedrive.com (token 7f87dc59a5ac3bce)\n"
        "┌────────────┬──────────────────────────────────────────┐\n"
        "│ identities │ 0 userIds, 0 groupIds                    │\n"
        "│ leads      │ 1 origin id known for 2 persons          │\n"
        "│ deals      │ 2 origin ids known for 1 person          │\n"
        "│ notes      │ 2 markers known for 3 persons            │\n"
        "│ journal    │ 1 sent, 0 unchanged, 0 skipped, 0 failed │\n"
        "│ in flight  │ 0 writes                                 │\n"
        "│ last run   │ none                                     │\n"
        "└────────────┴──────────────────────────────────────────┘\n"
    )
    json_result = runner.invoke(
        app, ["state", "show", "--state", "s.sqlite", "-f", "json"], env=ENV
    )
    (namespace,) = orjson.loads(json_result.output)["namespaces"]
    assert (namespace["leads_listed"], namespace["lead_origins"]) == (
        {"lead": 2, "deal": 1, "activity": 0, "note": 3},
        {"lead": 1, "deal": 2, "activity": 0, "note": 2},
    )


def test_show_counts_the_events_of_the_writes_in_flight() -> None:
    # The events a send of other files says are left to settle: writes alone did not say how
    # many events those were, and "2 create or merge to settle" was no English.
    def create(user: str) -> ApiRequest:
        path = "/api/v2/persons"
        return ApiRequest(
            method="POST", path=path, endpoint=path, stage="create person", creates=("person", user)
        )

    with ReplayState.open(Path("s.sqlite"), NS, now=lambda: STAMP) as state:
        state.start_run()
        state.begin_write("e1", create("u1"), STAMP)
        state.begin_write("e1", LEAD, STAMP)
        state.begin_write("e2", create("u2"), STAMP)
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.output.splitlines() if "in flight" in line]
    assert row.split("│")[2].strip() == "3 writes of 2 events; 2 creates or merges to settle"


def test_last_run_counts_are_in_words() -> None:
    # A run stopped by Ctrl-C stores `not_attempted` in its report.
    run = RunSummary(
        started_at=STAMP,
        finished_at=STAMP,
        counts={"events": {"read": 21, "skipped": 1, "failed": 0, "not_attempted": 20}},
    )
    summary = NamespaceSummary(
        namespace=NS,
        base_url="https://api.pipedrive.com",
        fingerprint="7f87dc59a5ac3bce",
        identities={},
        memberships=0,
        leads_listed={},
        lead_origins={},
        journal={},
        inflight=0,
        to_settle=0,
        last_run=run,
    )

    assert state_cmd.last_run_text(summary) == (
        f"{STAMP} to {STAMP}: read 21, skipped 1, not attempted 20"
    )


def test_show_groups_the_thousands_of_a_backfill_s_counts() -> None:
    # A state a million events filled read "1198000 sent" beside "1,200,000 persons".
    run = RunSummary(
        started_at=STAMP,
        finished_at=STAMP,
        counts={"events": {"read": 1_234_567, "sent": 1_198_000, "failed": 1_500}},
    )
    summary = NamespaceSummary(
        namespace=NS,
        base_url="https://api.pipedrive.com",
        fingerprint="7f87dc59a5ac3bce",
        identities={"person": 1_200_000, "org": 34_567},
        memberships=0,
        leads_listed={"lead": 1_000},
        lead_origins={"lead": 1_001},
        journal={"sent": 1_198_000, "unchanged": 34_567, "skipped": 500, "failed": 1_500},
        inflight=0,
        to_settle=0,
        last_run=run,
        objects_finished=12_345,
    )
    shown = io.StringIO()
    Console(file=shown, width=160, color_system=None).print(state_cmd.namespace_table(summary))

    assert [line.split("│")[2].strip() for line in shown.getvalue().splitlines()[1:-1]] == [
        "1,200,000 userIds, 34,567 groupIds",
        "1,001 origin ids known for 1,000 persons",
        "1,198,000 sent, 34,567 unchanged, 500 skipped, 1,500 failed",
        "12,345 finished, not read again",
        "0 writes",
        f"{STAMP} to {STAMP}: read 1,234,567, sent 1,198,000, failed 1,500",
    ]


def test_show_json() -> None:
    fill(Path("s.sqlite"))
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite", "-f", "json"], env=ENV)
    assert result.exit_code == 0
    document = orjson.loads(result.output)
    assert document["path"] == "s.sqlite"
    assert document["namespaces"][1] == {
        "namespace": NS,
        "base_url": "https://api.pipedrive.com",
        "company_id": None,
        "fingerprint": "7f87dc59a5ac3bce",
        "identities": {"person": 2, "org": 1},
        "memberships": 1,
        "leads_listed": {"lead": 1, "deal": 0, "activity": 0, "note": 0},
        "lead_origins": {"lead": 1, "deal": 0, "activity": 0, "note": 0},
        "journal": {"sent": 1, "unchanged": 0, "skipped": 0, "failed": 1},
        "inflight": 1,
        "to_settle": 1,
        "last_run": {
            "started_at": STAMP,
            "finished_at": STAMP,
            "counts": REPORT,
        },
        "objects_finished": 2,
        "inflight_events": 1,
    }
    assert [ns["namespace"] for ns in document["namespaces"]] == [SANDBOX_NS, NS]
    assert document["namespaces"][0]["objects_finished"] == 0


def test_show_json_without_a_state_file() -> None:
    result = runner.invoke(app, ["state", "show", "--format", "json"], env=ENV)
    assert (result.exit_code, orjson.loads(result.output)) == (
        0,
        {"path": ".rpd/state.sqlite", "namespaces": []},
    )


@pytest.mark.parametrize(
    ("folder", "shown"),
    [
        ("d\u00f6", "d\u00f6"),  # what an ASCII stdout cannot encode
        (os.fsdecode(b"d\xff"), "d\\xff"),  # not UTF-8: named as sources name such a file
        ("d\x85", "d\x85"),  # a C1 control: escaped in the JSON, never raw to a terminal
    ],
)
def test_show_json_stays_json_whatever_stdout_can_encode(folder: str, shown: str) -> None:
    # Review: under PYTHONIOENCODING=ascii a state path holding "ö" came out as "d\xf6"
    # (escaped as text is: no JSON), one that is not UTF-8 was exit 70, a C1 control "\x85".
    state = Path(folder) / "s.sqlite"
    state.parent.mkdir()
    fill(state)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "state", "show", "-f", "json"]
    env = {**os.environ, **ENV, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([*command, "--state", str(state)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["path"] == f"{shown}/s.sqlite"
    assert b"\xc2\x85" not in done.stdout


def test_show_rejects_an_unknown_format() -> None:
    result = runner.invoke(app, ["state", "show", "--format", "yaml"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: unknown --format 'yaml'\nhint: use table or json\n",
    )


@pytest.mark.parametrize(
    "tables",
    [
        ["CREATE TABLE notes (text TEXT)"],
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            "INSERT INTO meta VALUES ('v', '3')",
        ],
        ["CREATE TABLE meta (id INTEGER PRIMARY KEY, data BLOB)"],
        ["CREATE TABLE journal (day TEXT, text TEXT)", "CREATE TABLE fields (name TEXT)"],
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            "INSERT INTO meta VALUES ('schema_version', '1')",
            "CREATE TABLE users (id INTEGER, name TEXT)",
        ],
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
            "INSERT INTO meta VALUES ('schema_version', '5')",
        ],
        ["CREATE VIEW answers AS SELECT 42 AS answer"],
    ],
    ids=[
        "no table of rpd's name",
        "meta of key and value",
        "meta of other columns",
        "journal and fields",
        "a meta with rpd's version",
        "a meta with a newer version",
        "views only",
    ],
)
@pytest.mark.parametrize("command", ["show", "clear"])
def test_another_programs_database_with_tables_named_like_rpds_is_left_alone(
    command: str, tables: list[str]
) -> None:
    # QA: `clear --state app.db --yes` deleted another program's SQLite database. And `meta`,
    # `journal` and `fields` are common table names: a database that had one was
    # called a damaged rpd state file, and `clear --yes` removed it. Review: so was one whose
    # `meta` of key and value held a schema version (rpd writes its tables and its version in
    # one transaction: its own file never holds `meta` alone), and a file of views only was an
    # empty state a send would write its tables into.
    with sqlite3.connect("app.db") as other:
        for statement in tables:
            other.execute(statement)
    before = Path("app.db").read_bytes()
    args = ["state", command, "--state", "app.db", "--yes"][: 5 if command == "clear" else 4]
    result = runner.invoke(app, args, env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: app.db is not an rpd state file (an SQLite database without rpd's tables)\n"
        "hint: check --state: this file is not rpd's, and rpd leaves it alone\n",
    )
    assert Path("app.db").read_bytes() == before


def state_altered(*statements: str) -> None:
    """s.sqlite: rpd's state of one identity, then `statements` run on it."""
    with ReplayState.open(Path("s.sqlite"), "ns") as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 1})))
    with sqlite3.connect("s.sqlite") as altered:
        for statement in statements:
            altered.execute(statement)


@pytest.mark.parametrize(
    ("statements", "detail"),
    [
        # QA: a table replaced by one of other columns was an internal error (OperationalError,
        # 70).
        (
            ["DROP TABLE identities", "CREATE TABLE identities (a TEXT)"],
            "its table identities does not have rpd's columns); readable: 0 journal entries",
        ),
        # A table gone (QA: an internal error, exit 70, and clear could not remove it).
        (["DROP TABLE journal"], "its tables are not all there); readable: 1 identity for ns"),
        # One of those made on first use too (a send's first pass would fail on it, exit 70).
        (
            ["CREATE TABLE input_aliases (a TEXT)"],
            "its table input_aliases does not have rpd's columns); readable: 0 journal entries and "
            "1 identity for ns",
        ),
        # Schema 2's file with what only a file of schema 1, not yet upgraded, may hold: a
        # journal spelling each source out, no source_files (a send would fail on it, exit 70).
        (
            [
                "DROP TABLE journal",
                "CREATE TABLE journal (ns TEXT, event_id TEXT, status TEXT, reason TEXT, "
                "source TEXT, finished_at TEXT)",
            ],
            "its table journal does not have rpd's columns); readable: 0 journal entries and "
            "1 identity for ns",
        ),
        (
            ["DROP TABLE source_files"],
            "its tables are not all there); readable: 0 journal entries and 1 identity for ns",
        ),
    ],
    ids=[
        "a table of other columns",
        "a table gone",
        "an aliases table of other columns",
        "a journal of schema 1 in schema 2",
        "the source file names gone",
    ],
)
def test_rpds_own_damaged_file_is_shown_so_and_clear_removes_it(
    statements: list[str], detail: str
) -> None:
    state_altered(*statements)
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        f"error: state file s.sqlite is damaged ({detail}\n"
        "hint: `rpd state clear --state s.sqlite` starts over (events already sent are then found "
        "by their lookups, not created again), or restore a copy of the file\n",
    )
    result = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "--yes"], env=ENV)
    assert result.exit_code == 0, result.output
    assert not Path("s.sqlite").exists()


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE meta ADD COLUMN note TEXT",
        "ALTER TABLE journal ADD COLUMN note TEXT",
        "ALTER TABLE identities ADD COLUMN note TEXT",
    ],
)
def test_a_state_whose_tables_have_more_columns_is_rpds_still(change: str) -> None:
    # Review: a table had to have exactly rpd's columns; one more (a later rpd may add some, as
    # earlier ones added tables under schema 1) made rpd's state damaged, or not rpd's at all.
    state_altered(change)
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "│ identities │ 1 userId" in result.output


@pytest.mark.parametrize("command", ["show", "clear"])
def test_a_file_that_is_no_database_is_left_alone(command: str) -> None:
    # A mistyped --state (the config, an events file) must never be removed.
    Path("events.ndjson").write_text('{"type": "identify"}\n')
    args = ["state", command, "--state", "events.ndjson", "--yes"][: 5 if command == "clear" else 4]
    result = runner.invoke(app, args, env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: events.ndjson is not an rpd state file (not an SQLite database)\n"
        "hint: check --state: this file is not rpd's, and rpd leaves it alone\n",
    )
    assert Path("events.ndjson").read_text() == '{"type": "identify"}\n'
    assert not Path("events.ndjson.lock").exists()


def test_clear_refuses_a_directory() -> None:
    Path("folder").mkdir()
    result = runner.invoke(app, ["state", "clear", "--state", "folder", "--yes"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: --state folder is a directory\nhint: give --state the state file\n",
    )


@pytest.mark.parametrize("command", ["show", "clear"])
def test_a_device_as_state_is_refused(command: str) -> None:
    args = ["state", command, "--state", "/dev/null", "--yes"][: 5 if command == "clear" else 4]
    result = runner.invoke(app, args, env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: --state /dev/null is not a regular file\n"
        "hint: give --state a file path (rpd creates it if it is not there)\n",
    )


@pytest.mark.parametrize("command", ["show", "clear", "send"])
def test_a_symlink_loop_as_state_is_refused(command: str) -> None:
    # QA: `state show` and `state clear` said "no state at loop" (exit 0) and a send was
    # "internal error: RuntimeError", exit 70.
    os.symlink("loop-b", "loop-a")
    os.symlink("loop-a", "loop-b")
    Path("events.ndjson").write_text('{"type": "identify", "userId": "u-1"}\n')
    args = {
        "show": ["state", "show"],
        "clear": ["state", "clear", "--yes"],
        "send": ["send", "events.ndjson", "--base-url", "http://127.0.0.1:9"],
    }[command]
    result = runner.invoke(
        rpd, [*args, "--state", "loop-a"], env={**ENV, "PIPEDRIVE_API_TOKEN": "t" * 40}
    )
    assert (result.exit_code, result.stderr.removeprefix(f"warning: {NO_CONFIG}\n")) == (
        2,
        "error: --state loop-a: Too many levels of symbolic links\n"
        "hint: give --state a file path it can reach\n",
    )


def test_show_an_empty_state_file() -> None:
    with ReplayState.open(Path("s.sqlite"), NS):
        pass
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert (result.exit_code, result.output) == (0, "state at s.sqlite is empty\n")


@pytest.mark.parametrize(
    ("env", "lines"),
    [
        (
            ENV,
            "  http://127.0.0.1:8787 (token 28cb449547fa309b): 0 identities, 1 journal entry, "
            "0 writes in flight\n"
            "  https://api.pipedrive.com (token 7f87dc59a5ac3bce): 3 identities, 2 journal "
            "entries, 1 write in flight\n",
        ),
        # Newcomer, at 80 columns: an account's line went on in the column the next account's
        # started in, so where one ended could not be seen.
        (
            ENV | {"COLUMNS": "80", "TTY_COMPATIBLE": "1"},  # rich: stdout is a terminal
            "  http://127.0.0.1:8787 (token 28cb449547fa309b): 0 identities, 1 journal entry,\n"
            "    0 writes in flight\n"
            "  https://api.pipedrive.com (token 7f87dc59a5ac3bce): 3 identities, 2 journal\n"
            "    entries, 1 write in flight\n",
        ),
    ],
    ids=["pipe", "terminal"],
)
def test_clear_with_yes(env: dict[str, str], lines: str) -> None:
    fill(Path("s.sqlite"))
    result = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "--yes"], env=env)
    assert (result.exit_code, result.output) == (0, "cleared s.sqlite:\n" + lines)
    assert sorted(p.name for p in Path().iterdir()) == []


@pytest.mark.parametrize("filled", [True, False], ids=["a state", "none"])
def test_clear_quiet_says_nothing_but_errors(filled: bool) -> None:
    # -q is "Only errors": a script's `rpd state clear -y -q` printed what it cleared.
    if filled:
        fill(Path("s.sqlite"))
    result = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "-y", "-q"], env=ENV)
    assert (result.exit_code, result.output) == (0, "")
    assert sorted(p.name for p in Path().iterdir()) == []


def test_show_on_a_narrow_terminal_indents_the_wrapped_title_lines() -> None:
    fill(Path("s.sqlite"))
    terminal = ENV | {"COLUMNS": "30", "TTY_COMPATIBLE": "1"}
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=terminal)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:3] == [
        "state at s.sqlite",
        "http://127.0.0.1:8787 (token",
        "  28cb449547fa309b)",
    ]


def test_clear_without_yes_refuses_when_not_interactive() -> None:
    fill(Path("s.sqlite"))
    result = runner.invoke(app, ["state", "clear", "--state", "s.sqlite"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: refusing to clear s.sqlite without confirmation\nhint: pass --yes\n",
    )
    assert Path("s.sqlite").exists()


def test_clear_asks_for_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_cmd, "stdin_is_interactive", lambda: True)
    fill(Path("s.sqlite"))
    kept = runner.invoke(app, ["state", "clear", "--state", "s.sqlite"], input="n\n", env=ENV)
    assert (kept.exit_code, kept.output) == (
        0,
        "Delete the replay state in s.sqlite? [y/N]: n\nkept s.sqlite\n",
    )
    assert Path("s.sqlite").exists()
    cleared = runner.invoke(app, ["state", "clear", "--state", "s.sqlite"], input="y\n", env=ENV)
    assert cleared.exit_code == 0
    assert cleared.output.startswith("Delete the replay state in s.sqlite? [y/N]: y\ncleared ")
    assert not Path("s.sqlite").exists()


def test_end_of_input_at_the_confirmation_keeps_the_state_as_no_does() -> None:
    # Ctrl-D at a terminal (EOF) is no answer, not a stop signal: it said 'interrupted' and
    # exited 130. Now the prompt's line ends, the state is kept as "n" keeps it, and exit 0.
    fill(Path("s.sqlite"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_cmd, "stdin_is_interactive", lambda: True)
        result = runner.invoke(rpd, ["state", "clear", "--state", "s.sqlite"], input="", env=ENV)
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "Delete the replay state in s.sqlite? [y/N]: \nno answer (end of input): kept s.sqlite\n",
        "",
    )
    assert Path("s.sqlite").exists()


@pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGHUP, 129, "hung up"),
    ],
)
def test_a_stop_signal_at_the_confirmation_keeps_the_state_and_exits_by_it(
    monkeypatch: pytest.MonkeyPatch, signum: signal.Signals, exit_code: int, said: str
) -> None:
    # click's prompt turns the stop into its Abort: a SIGTERM there said 'interrupted', 130 (it
    # killed rpd, -15, before SIGTERM was raised as Ctrl-C is).
    monkeypatch.setattr(state_cmd, "stdin_is_interactive", lambda: True)

    def signalled(*_args: object, **_kwargs: object) -> None:  # as the prompt is written
        os.kill(os.getpid(), signum)

    monkeypatch.setattr(termui, "echo", signalled)
    fill(Path("s.sqlite"))
    result = runner.invoke(rpd, ["state", "clear", "--state", "s.sqlite"], input="y\n", env=ENV)
    assert (result.exit_code, result.stdout, result.stderr) == (exit_code, "", f"{said}\n")
    assert Path("s.sqlite").exists()


def test_clear_without_a_state_file() -> None:
    result = runner.invoke(app, ["state", "clear"], env=ENV)
    assert (result.exit_code, result.output) == (0, "no state at .rpd/state.sqlite\n")


def test_clear_removes_a_file_from_a_newer_rpd() -> None:
    fill(Path("s.sqlite"))
    newer = sqlite3.connect("s.sqlite")
    newer.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    newer.commit()
    newer.close()
    result = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "-y"], env=ENV)
    assert (result.exit_code, result.output) == (
        0,
        "removed s.sqlite: it was written by a newer rpd (schema 7)\n",
    )
    assert not Path("s.sqlite").exists()


def test_clear_refuses_while_another_rpd_runs() -> None:
    fill(Path("s.sqlite"))
    with ReplayState.open(Path("s.sqlite"), NS):
        result = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "--yes"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        f"error: state file s.sqlite is in use by another rpd process (pid {os.getpid()})\n"
        "hint: wait for it to finish, or give another state file with --state FILE\n",
    )
    assert Path("s.sqlite").exists()


def test_show_says_in_progress_only_of_the_run_that_holds_the_file() -> None:
    # One run at a time holds the file: the latest; another unfinished one was stopped (killed).
    path = Path("s.sqlite")
    with ReplayState.open(path, SANDBOX_NS, now=lambda: STAMP) as state:
        state.start_run()
    with ReplayState.open(path, NS, now=lambda: "2026-01-02T04:00:00Z") as state:
        state.start_run()
        result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    rows = [line for line in result.output.splitlines() if "last run" in line]
    assert (result.exit_code, rows) == (
        0,
        [
            "│ last run   │ started 2026-01-02T03:04:05Z, did not finish │",
            f"│ last run   │ started 2026-01-02T04:00:00Z, in progress (pid {os.getpid()}) │",
        ],
    )
    after = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert "in progress" not in after.output
    assert after.output.count("did not finish") == 2


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["show"], "no state: --sandbox without --state keeps none (give --state to see a file)\n"),
        (["show", "-f", "json"], '{"path":null,"namespaces":[]}\n'),
        (
            ["clear", "--yes"],
            "no state: --sandbox without --state keeps none (give --state to see a file)\n",
        ),
    ],
)
def test_sandbox_without_state_touches_no_state_file(command: list[str], expected: str) -> None:
    # Like send and dry-run: --sandbox without --state keeps no state, so there is none to clear.
    # Newcomer: nor is an emulator started, which said `sandbox: Pipedrive emulator at URL`.
    fill(Path(".rpd") / "state.sqlite")
    result = runner.invoke(app, ["state", *command, "--sandbox"], env=ENV)
    assert (result.exit_code, result.stdout, result.stderr) == (0, expected, "")
    assert (Path(".rpd") / "state.sqlite").exists()


def test_sandbox_with_state_shows_that_file_and_starts_no_emulator() -> None:
    fill(Path("s.sqlite"))
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite", "--sandbox"], env=ENV)
    plain = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert (result.exit_code, result.stdout, result.stderr) == (0, plain.stdout, "")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A folder and the same folder mounted read-only (a bind mount: needs root; skipped
    where it cannot be made, since root ignores file permissions)."""
    import subprocess

    source, view = tmp_path / "source", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("a read-only bind mount cannot be made here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        yield source, view
    finally:
        subprocess.run(["umount", str(view)], check=False)


def test_a_state_in_a_read_only_folder_is_shown_and_not_removed(
    read_only_folder: tuple[Path, Path],
) -> None:
    # QA: show called a valid state unreadable and advised removing it; clear crashed (exit 70).
    source, view = read_only_folder
    with ReplayState.open(source / "s.sqlite", "ns") as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 1})))
    shown = runner.invoke(app, ["state", "show", "--state", str(view / "s.sqlite")], env=ENV)
    assert shown.exit_code == 0, shown.output
    assert "1 userId, 0 groupIds" in shown.output
    args = ["state", "clear", "--state", str(view / "s.sqlite"), "--yes"]
    cleared = runner.invoke(app, args, env=ENV)
    assert (cleared.exit_code, cleared.output) == (
        2,
        f"error: cannot remove state file {view / 's.sqlite'}: Read-only file system\n"
        "hint: its file system is mounted read-only: remount it writable, then clear again\n",
    )
    assert (source / "s.sqlite").exists()


def refuse_writes(monkeypatch: pytest.MonkeyPatch, folder: Path, *, files: bool = False) -> None:
    """`folder` refuses what one without write permission refuses (tests run as root, whom no
    mode refuses): making or removing a file in it; with `files`, its files refuse to be opened
    for writing instead (read-only to you), the folder itself writable."""
    real_open, real_unlink = os.open, os.unlink

    def inside(name: str | Path) -> bool:
        return Path(name).resolve().parent == folder.resolve()

    def denied(name: str | Path) -> PermissionError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(name))

    def refused_open(name: str | Path, flags: int, *args: int, **kwargs: int) -> int:
        there = os.path.exists(name)
        writing = flags & (os.O_WRONLY | os.O_RDWR)
        if inside(name) and (writing and there if files else flags & os.O_CREAT and not there):
            raise denied(name)
        return real_open(name, flags, *args, **kwargs)

    def refused_unlink(name: str | Path, *args: int, **kwargs: int) -> None:
        if inside(name) and not files:
            raise denied(name)
        real_unlink(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused_open)
    monkeypatch.setattr(os, "unlink", refused_unlink)


def test_clear_in_a_folder_that_refuses_writes_names_it_and_keeps_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It was exit 70 ('internal error: PermissionError'), the file emptied but not removed.
    Path("runs").mkdir()
    fill(Path("runs/s.sqlite"))
    before = Path("runs/s.sqlite").read_bytes()
    refuse_writes(monkeypatch, Path("runs"))
    result = runner.invoke(app, ["state", "clear", "--state", "runs/s.sqlite", "--yes"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: cannot clear runs/s.sqlite: cannot write in folder runs (permission denied)\n"
        "hint: check runs's permissions, then clear again\n",
    )
    assert Path("runs/s.sqlite").read_bytes() == before
    assert sorted(p.name for p in Path("runs").iterdir()) == ["s.sqlite"]


def test_clear_of_a_killed_run_s_leftovers_in_a_folder_that_refuses_writes_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It was 'cannot remove state file runs/s.sqlite: Permission denied', hinted 'check the
    # directory's permissions', naming none (and the file is not there).
    Path("runs").mkdir()
    Path("runs/s.sqlite-wal").write_bytes(b"journal")
    refuse_writes(monkeypatch, Path("runs"))
    result = runner.invoke(app, ["state", "clear", "--state", "runs/s.sqlite", "--yes"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: cannot clear runs/s.sqlite: cannot write in folder runs (permission denied)\n"
        "hint: check runs's permissions, then clear again\n",
    )
    assert Path("runs/s.sqlite-wal").read_bytes() == b"journal"


def test_clear_of_a_state_file_read_only_to_you_names_the_file_not_its_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("runs").mkdir()
    fill(Path("runs/s.sqlite"))
    before = Path("runs/s.sqlite").read_bytes()
    refuse_writes(monkeypatch, Path("runs"), files=True)
    result = runner.invoke(app, ["state", "clear", "--state", "runs/s.sqlite", "--yes"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        "error: cannot remove state file runs/s.sqlite: Permission denied\n"
        "hint: the file is read-only to you: check its permissions (clear empties it before "
        "it removes it)\n",
    )
    assert Path("runs/s.sqlite").read_bytes() == before


def test_a_read_only_state_with_changes_left_in_its_wal_is_not_read_without_them(
    read_only_folder: tuple[Path, Path],
) -> None:
    # Review: read as it is, a state whose killed run left changes in its -wal looked empty,
    # and dry-run planned creates for events already sent.
    source, view = read_only_folder
    path, wal = source / "s.sqlite", source / "s.sqlite-wal"
    with ReplayState.open(path, "ns") as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 1})))
    before = path.read_bytes()
    writer = sqlite3.connect(path)  # a run that commits to the -wal and is then killed
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("INSERT INTO meta (key, value) VALUES ('left', 'in the wal')")
    writer.commit()
    left = wal.read_bytes()
    writer.close()  # (this checkpoints; the kill's files are put back below)
    path.write_bytes(before)
    wal.write_bytes(left)
    (source / "s.sqlite-shm").unlink(missing_ok=True)
    shown = runner.invoke(app, ["state", "show", "--state", str(view / "s.sqlite")], env=ENV)
    assert shown.exit_code == 2
    assert "left changes in s.sqlite-wal" in shown.output


def test_rpds_own_file_without_its_meta_table_is_damaged_not_foreign() -> None:
    with ReplayState.open(Path("s.sqlite"), "ns") as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 1})))
    with sqlite3.connect("s.sqlite") as damaged:
        damaged.execute("DROP TABLE meta")
    shown = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert (shown.exit_code, shown.output.splitlines()[0]) == (
        2,
        "error: state file s.sqlite is damaged (its meta table is gone); readable: 0 journal "
        "entries and 1 identity for ns",
    )
    cleared = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "--yes"], env=ENV)
    assert cleared.exit_code == 0, cleared.output
    assert not Path("s.sqlite").exists()


@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_clear_through_a_link_refuses_while_the_real_file_is_in_use(link: str) -> None:
    Path("real").mkdir()
    fill(Path("real/s.sqlite"))
    make_link = os.symlink if link == "symlink" else os.link
    make_link(
        "real/s.sqlite" if link == "hard link" else Path("real/s.sqlite").resolve(), "l.sqlite"
    )
    with ReplayState.open(Path("real/s.sqlite"), NS):
        result = runner.invoke(app, ["state", "clear", "--state", "l.sqlite", "--yes"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        f"error: state file l.sqlite is in use by another rpd process (pid {os.getpid()})\n"
        "hint: wait for it to finish, or give another state file with --state FILE\n",
    )
    assert sorted(p.name for p in Path("real").iterdir()) == ["s.sqlite"]


def test_clear_through_a_symlink_removes_the_real_file_and_its_companions() -> None:
    Path("real").mkdir()
    fill(Path("real/s.sqlite"))
    # A killed run leaves its -wal and -shm beside the real file.
    Path("real/s.sqlite-wal").write_bytes(b"")
    Path("real/s.sqlite-shm").write_bytes(b"")
    os.symlink(Path("real/s.sqlite").resolve(), "l.sqlite")
    result = runner.invoke(app, ["state", "clear", "--state", "l.sqlite", "--yes"], env=ENV)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("cleared l.sqlite:\n")
    assert list(Path("real").iterdir()) == []
    # The link is the user's: it stays, and the next send through it starts from scratch.
    assert Path("l.sqlite").is_symlink() and not Path("l.sqlite").exists()


def test_clear_through_a_hard_link_leaves_no_state_under_the_other_name() -> None:
    fill(Path("s.sqlite"))
    os.link("s.sqlite", "h.sqlite")
    result = runner.invoke(app, ["state", "clear", "--state", "h.sqlite", "--yes"], env=ENV)
    assert result.exit_code == 0, result.output
    assert not Path("h.sqlite").exists()
    assert Path("s.sqlite").read_bytes() == b""  # an empty file: an empty state
    shown = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert (shown.exit_code, shown.output) == (0, "state at s.sqlite is empty\n")


def test_a_state_whose_header_was_destroyed_is_damaged_and_clear_removes_it() -> None:
    # Issue 13 item 9: the first page zeroed took SQLite's header with it; the rows still say
    # the file is rpd's, so it is damaged (clear removes it), not someone else's file.
    fill(Path("s.sqlite"))
    content = Path("s.sqlite").read_bytes()
    Path("s.sqlite").write_bytes(bytes(4096) + content[4096:])
    damage = "state file s.sqlite is damaged (its header is not SQLite's); nothing in it can be "
    damage += "read"
    shown = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert (shown.exit_code, shown.output) == (
        2,
        f"error: {damage}\n"
        "hint: `rpd state clear --state s.sqlite` starts over (events already sent are then found "
        "by their lookups, not created again), or restore a copy of the file\n",
    )
    cleared = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "--yes"], env=ENV)
    assert (cleared.exit_code, cleared.output) == (
        0,
        "removed s.sqlite: it is damaged (its header is not SQLite's); nothing in it can be read\n",
    )
    assert not Path("s.sqlite").exists()


def test_clear_of_a_damaged_state_on_a_terminal_indents_the_wrapped_line() -> None:
    # Its next line started in column 1, as if it were a line of its own.
    fill(Path("s.sqlite"))
    Path("s.sqlite").write_bytes(bytes(4096) + Path("s.sqlite").read_bytes()[4096:])
    terminal = ENV | {"COLUMNS": "80", "TTY_COMPATIBLE": "1"}  # rich: stdout is a terminal
    cleared = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "--yes"], env=terminal)
    assert (cleared.exit_code, cleared.output) == (
        0,
        "removed s.sqlite: it is damaged (its header is not SQLite's); nothing in it can\n"
        "  be read\n",
    )


def test_show_names_an_account_by_its_url_company_and_token() -> None:
    with ReplayState.open(Path("s.sqlite"), "", now=lambda: STAMP) as state:
        state.use_account("42", "HTTP://LocalHost:8787/.", TOKEN)
        state.record_outcome("e1", "in.ndjson:1", Outcome(status="sent"))
    result = runner.invoke(app, ["state", "show", "--state", "s.sqlite"], env=ENV)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == (
        "http://localhost:8787 (company 42, token 7f87dc59a5ac3bce)"
    )
    shown = runner.invoke(app, ["state", "show", "--state", "s.sqlite", "-f", "json"], env=ENV)
    (account,) = orjson.loads(shown.output)["namespaces"]
    assert (account["namespace"], account["base_url"], account["company_id"]) == (
        "company:42#7f87dc59a5ac3bce",
        "http://localhost:8787",
        "42",
    )


@pytest.mark.parametrize("filled", [True, False], ids=["a state", "leftovers"])
@pytest.mark.parametrize("suffix", ["-wal", "-shm", ".lock"])
def test_clear_refuses_a_directory_where_a_companion_should_be_and_removes_nothing(
    suffix: str, filled: bool
) -> None:
    # Reported: the state file was removed, then IsADirectoryError ended the clear (exit 70),
    # the -wal directory left beside a state gone.
    if filled:
        fill(Path("s.sqlite"))
    else:  # a run killed, then its file deleted, left its -wal (clear removes such leftovers)
        Path("s.sqlite-wal" if suffix != "-wal" else "s.sqlite-shm").write_bytes(b"x")
    Path(f"s.sqlite{suffix}").mkdir()
    before = sorted(p.name for p in Path().iterdir())
    result = runner.invoke(app, ["state", "clear", "--state", "s.sqlite", "--yes"], env=ENV)
    assert (result.exit_code, result.output) == (
        2,
        f"error: cannot clear s.sqlite: s.sqlite{suffix} beside it is a directory\n"
        "hint: move that directory away (the name is for the state file's own "
        f"{suffix} file), then clear again\n",
    )
    assert sorted(p.name for p in Path().iterdir()) == before
    assert not filled or Path("s.sqlite").stat().st_size
