"""A state file of schema 1 (each journal row's source spelled out) read as it is and upgraded
to schema 2 (the source's file name kept once) when first opened for writing, and the file
names a clear leaves no journal row for forgotten with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from test_state import JOURNALED, NS, OTHER_NS, SOURCE, STAMP, rows

from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_schema import REVISION, SCHEMA

JOURNAL_1 = """CREATE TABLE journal (
    ns TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    source TEXT NOT NULL, finished_at TEXT NOT NULL, PRIMARY KEY (ns, event_id)
) WITHOUT ROWID"""
SELECTED = (
    f"SELECT ns, event_id, status, reason, {SOURCE}, finished_at FROM {JOURNALED} "
    "ORDER BY ns, event_id"
)
ROWS_1 = [
    (NS, "e1", "sent", "", "in.ndjson:1", "2026-01-01T00:00:00Z"),
    (NS, "e2", "failed", "HTTP 500", "s3://b/gw/k.json.gz:7#2", "2026-01-01T00:00:01Z"),
    (NS, "e3", "skipped", "anonymous", "in.ndjson:2", "2026-01-01T00:00:02Z"),
    (NS, "e4", "unchanged", "", "-", "2026-01-01T00:00:03Z"),
]


def schema_1_file(path: Path) -> None:
    """A state file as rpd wrote it at schema 1: its journal spells each source out."""
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in SCHEMA.split(";"):
        connection.execute(statement)
    connection.execute("DROP TABLE journal")
    connection.execute("DROP TABLE source_files")
    connection.execute(JOURNAL_1)
    connection.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    connection.execute(f"PRAGMA user_version = {REVISION}")
    connection.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?)", ROWS_1)
    connection.close()


def test_a_schema_1_file_is_read_as_it_is_and_upgraded_when_first_written(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    schema_1_file(path)
    before = path.read_bytes()
    with ReplayState.open(path, NS, readonly=True) as state:  # a dry-run: nothing changes
        assert [state.journal_status(f"e{n}") for n in range(1, 6)] == [
            "sent",
            "failed",
            "skipped",
            "unchanged",
            None,
        ]
    assert path.read_bytes() == before
    with ReplayState.open(path, NS, now=lambda: STAMP) as state:
        assert state.journal_status("e1") == "sent"  # done before the upgrade: still skipped
        assert state.journal_status("e2") == "failed"
        state.record_outcome("e2", "s3://b/gw/k.json.gz:7#2", Outcome(status="sent"))
        state.record_outcome("e5", "in.ndjson:3", Outcome(status="sent"))
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
    assert rows(path, SELECTED) == [
        ROWS_1[0],
        (NS, "e2", "sent", "", "s3://b/gw/k.json.gz:7#2", STAMP),
        *ROWS_1[2:],
        (NS, "e5", "sent", "", "in.ndjson:3", STAMP),
    ]
    assert rows(path, "SELECT id, name FROM source_files ORDER BY id") == [
        (1, "-"),
        (2, "in.ndjson:"),
        (3, "s3://b/gw/k.json.gz:"),
    ]
    assert rows(path, "SELECT name FROM pragma_table_info('journal')") == [
        ("ns",),
        ("event_id",),
        ("status",),
        ("reason",),
        ("file",),
        ("place",),
        ("finished_at",),
    ]
    assert rows(path, "PRAGMA freelist_count") == [(0,)]  # the old journal's pages given back


def test_clearing_a_namespace_forgets_the_file_names_only_its_journal_held(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, OTHER_NS) as state:
        state.record_outcome("e1", "shared.ndjson:1", Outcome(status="sent"))
    with ReplayState.open(path, NS) as state:
        state.record_outcome("e1", "shared.ndjson:1", Outcome(status="sent"))
        state.record_outcome("e2", "/home/ada/private.ndjson:1", Outcome(status="sent"))
        state.clear(NS)
        assert rows(path, "SELECT name FROM source_files") == [("shared.ndjson:",)]
        state.record_outcome("e3", "/home/ada/private.ndjson:2", Outcome(status="sent"))
    assert rows(path, f"SELECT ns, event_id, {SOURCE} FROM {JOURNALED} ORDER BY ns") == [
        (OTHER_NS, "e1", "shared.ndjson:1"),
        (NS, "e3", "/home/ada/private.ndjson:2"),
    ]


def test_the_elements_of_a_json_document_keep_their_file_s_name_once(tmp_path: Path) -> None:
    # A JSON array's or whole-file batch's events are FILE#N (io/readers.py): cut at the last
    # colon, each row kept the whole path ('' and '/data/export.json#1'), or from a colon in it.
    path = tmp_path / "state.sqlite"
    sources = [
        "/data/export.json#1",
        "/data/export.json#2",
        "C:\\exports\\all.json#1#2",
        "C:\\exports\\all.json#2",
        "s3://b/k:12.ndjson.gz:7#2",
        "a:b.ndjson:12",
        "-",
    ]
    with ReplayState.open(path, NS, now=lambda: STAMP) as state:
        for number, source in enumerate(sources):
            state.record_outcome(f"e{number}", source, Outcome(status="sent"))
    assert rows(path, "SELECT name FROM source_files ORDER BY id") == [
        ("/data/export.json",),
        ("C:\\exports\\all.json",),
        ("s3://b/k:12.ndjson.gz:",),
        ("a:b.ndjson:",),
        ("-",),
    ]
    assert rows(path, f"SELECT {SOURCE} FROM {JOURNALED} ORDER BY event_id") == [
        (source,) for source in sources
    ]
