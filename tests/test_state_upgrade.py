"""A state file of schema 1 (each journal row's source spelled out) read as it is and upgraded
to schema 2 (the source's file name kept once) when first opened for writing, and the file
names a clear leaves no journal row for forgotten with it."""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_state import JOURNALED, NS, OTHER_NS, SOURCE, STAMP, rows
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.io import state_file
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_schema import REVISION, SCHEMA, SCHEMA_VERSION
from rudder_pipedrive_cli.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]

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
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
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


def disks(monkeypatch: pytest.MonkeyPatch, free: dict[Path, int]) -> None:
    """The free bytes `os.statvfs` says of each of these folders' disks (others as they are)."""
    statvfs = os.statvfs

    def said(folder: str | Path) -> os.statvfs_result:
        room = free.get(Path(folder).resolve())
        if room is None:
            return statvfs(folder)
        return os.statvfs_result((4096, 1, room, room, room, 1000, 1000, 1000, 0, 255))

    monkeypatch.setattr(os, "statvfs", said)


def on_a_full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's max_page_count stands in for a full disk (the state's, or its temporary
    folder's): the upgrade's first new page is refused."""
    upgrade = state_file.upgrade

    def refused(connection: sqlite3.Connection) -> None:
        used = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {used}")
        upgrade(connection)

    monkeypatch.setattr(state_file, "upgrade", refused)


def send_on(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Sandbox | None = None,
    events: Path = ROOT / "examples" / "events.ndjson",
) -> Any:
    """`rpd send EVENTS` on the state at `path`, to `sandbox`; without one (`-q`), refused as the
    state opens, no request made (nothing listens at its URL)."""
    for name in ("RPD_CONFIG", "RPD_PLAN", "RPD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    token = "sandbox-token" if sandbox else "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", token)
    monkeypatch.chdir(path.parent)
    config = ROOT / "config.example.toml"
    send = ["send", str(events), "--config", str(config), "--state", str(path)]
    send += [] if sandbox else ["-q"]
    url = sandbox.url if sandbox else "http://127.0.0.1:9"
    return CliRunner().invoke(app, [*send, "--base-url", url, "--plan", "unlimited"])


UNCHANGED = "then rerun the same command: the file is as it was, and nothing was sent"


@pytest.mark.parametrize("found", ["by SQLite", "before the commit"])
def test_an_upgrade_on_a_full_disk_says_the_room_it_takes_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found: str
) -> None:
    # A 63 MB file of schema 1 with 30 MB free: every run said 'disk full: state file', exit 2,
    # no word of the upgrade that takes the room, nor of how much (it took 142 MB).
    # Before the commit: a 63.3 MB file with 130 MB free, whose upgrade's transaction fit (its
    # -wal 102.7 MB), was committed, but copying it into the file (grown to 96.3 MB) met the
    # full disk: the -wal stayed, the disk 100% full, and the run stopped at its first write,
    # 'disk full: state file', as every rerun then did. Now the room is checked before it.
    path = tmp_path / "state.sqlite"
    schema_1_file(path)
    temp = tmp_path / "tmp"  # SQLite's temporary files on the state's disk: their room said too
    temp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))
    if found == "by SQLite":
        on_a_full_disk(monkeypatch)
    disks(monkeypatch, {tmp_path.resolve(): 0 if found == "by SQLite" else 1_000_000})
    result = send_on(path, monkeypatch)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: disk full: upgrading state file {path} to this rpd's schema needs about 2 MB "
        f"free on its disk, with SQLite's temporary files ({temp})",
        f"hint: free space there, {UNCHANGED}",
    ]
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert rows(path, "SELECT * FROM journal ORDER BY event_id") == ROWS_1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite", "tmp"]


def another_disk(tmp_path: Path) -> Path:
    """A folder on another disk than `tmp_path`'s (/dev/shm's memory), where a test puts SQLite's
    temporary files; skipped where there is none."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no folder on another disk (/dev/shm) here")
    if not os.access(shm, os.W_OK | os.X_OK):
        pytest.skip("/dev/shm is not writable here")
    return shm


@pytest.mark.parametrize("where", ["another disk", "the state's disk"])
def test_an_upgrade_whose_temporary_folder_is_full_names_that_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # SQLite's temporary files (the upgrade's: 63 MB for a 63 MB file) go to $SQLITE_TMPDIR,
    # $TMPDIR, /var/tmp or /tmp: with that folder full, it was said as the state's disk, which
    # had 64 GB free ('needs about 143 MB free on its disk').
    path = tmp_path / "state.sqlite"
    schema_1_file(path)
    temp = another_disk(tmp_path) if where == "another disk" else tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))
    on_a_full_disk(monkeypatch)
    disks(monkeypatch, {tmp_path.resolve(): 1_500_000, temp.resolve(): 300_000})
    result = send_on(path, monkeypatch)
    assert result.exit_code == 2, result.stderr
    assert (
        result.stderr.splitlines()
        == {
            "another disk": [
                f"error: disk full: upgrading state file {path} to this rpd's schema needs about "
                f"1 MB free in {temp} for SQLite's temporary files (it has 0 MB)",
                "hint: free space there, or set $SQLITE_TMPDIR to a folder on a disk with room, "
                f"{UNCHANGED}",
            ],
            "the state's disk": [
                f"error: disk full: upgrading state file {path} to this rpd's schema needs about "
                f"2 MB free on its disk, with SQLite's temporary files ({temp})",
                f"hint: free space there, {UNCHANGED}",
            ],
        }[where]
    )
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]


def test_the_upgrade_s_wal_is_emptied_once_it_is_vacuumed(tmp_path: Path) -> None:
    # The -wal kept the upgrade and the VACUUM's copy (102.7 MB for a 63.3 MB file) until the
    # run ended, its room the run's no more.
    path = tmp_path / "state.sqlite"
    schema_1_file(path)
    with ReplayState.open(path, NS):
        assert (tmp_path / "state.sqlite-wal").stat().st_size == 0
    assert rows(path, SELECTED)[:4] == ROWS_1


def test_the_room_an_upgrade_takes_is_said_from_the_file_s_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Measured: a 63,332,352-byte file of schema 1 took 141.7 MB more at its peak (the file grown
    # to 102.3 MB beside a -wal of 102.7 MB), and SQLite's temporary folder was refused with
    # 60 MiB (62.9 MB) free, enough with 64 MiB (67.1 MB).
    path = tmp_path / "state.sqlite"
    with path.open("wb") as handle:
        os.truncate(handle.fileno(), 63_332_352)
    upgrading = f"disk full: upgrading state file {path} to this rpd's schema needs about"
    temp = tmp_path / "tmp"  # on the state's disk: the two rooms, whatever is free
    temp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))
    for free in (0, 143_000_000):
        disks(monkeypatch, {tmp_path.resolve(): free})
        said = state_file.no_room_to_upgrade(path).message
        assert (
            said == f"{upgrading} 213 MB free on its disk, with SQLite's temporary files ({temp})"
        )
    temp = another_disk(tmp_path)
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))
    disks(monkeypatch, {tmp_path.resolve(): 142_000_000, temp.resolve(): 5_000_000})
    said = state_file.no_room_to_upgrade(path).message
    assert said == f"{upgrading} 143 MB free on its disk"
    disks(monkeypatch, {tmp_path.resolve(): 143_000_000, temp.resolve(): 5_000_000})
    said = state_file.no_room_to_upgrade(path).message
    assert said == f"{upgrading} 70 MB free in {temp} for SQLite's temporary files (it has 5 MB)"


class Stopped:
    """The state's connection, but its statement that begins with `at` (its VACUUM) stops with
    `stop`: a disk full by then (SQLite's SQLITE_FULL), or the run killed."""

    def __init__(
        self, connection: sqlite3.Connection, stop: BaseException, at: str = "VACUUM"
    ) -> None:
        self._connection = connection
        self._stop, self._at = stop, at

    def execute(self, sql: str, *parameters: Any) -> sqlite3.Cursor:
        if sql.startswith(self._at):
            raise self._stop
        return self._connection.execute(sql, *parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def disk_full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13  # SQLITE_FULL, as SQLite sets it
    return error


@pytest.mark.parametrize("stop", [disk_full, KeyboardInterrupt])
def test_a_vacuum_the_upgrade_did_not_finish_is_done_at_the_next_open_for_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: Any
) -> None:
    # A VACUUM after the upgrade committed that met a full disk failed the run ('disk full',
    # exit 2, the upgrade done all the same); one killed left the file big for good: at schema 2
    # already, no later open vacuumed it.
    path = tmp_path / "state.sqlite"
    schema_1_file(path)
    upgrade = state_file.upgrade
    monkeypatch.setattr(
        state_file, "upgrade", lambda connection: upgrade(Stopped(connection, stop()))
    )
    if stop is disk_full:  # the run goes on: the upgrade is done
        with ReplayState.open(path, NS, now=lambda: STAMP) as state:
            state.record_outcome("e5", "in.ndjson:3", Outcome(status="sent"))
    else:
        with pytest.raises(KeyboardInterrupt):
            ReplayState.open(path, NS)
    due = "SELECT key, value FROM meta WHERE key <> 'schema_version'"
    assert rows(path, due) == [("vacuum_due", "1")]
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert rows(path, "PRAGMA freelist_count")[0][0] > 0
    journaled = rows(path, SELECTED)
    assert journaled[:4] == ROWS_1  # exactly readable as upgraded

    monkeypatch.setattr(state_file, "upgrade", upgrade)
    with ReplayState.open(path, NS, readonly=True):  # a dry-run vacuums nothing
        pass
    assert rows(path, due) == [("vacuum_due", "1")]
    with ReplayState.open(path, NS) as state:
        assert state.journal_status("e1") == "sent"
    assert rows(path, due) == []
    assert rows(path, "PRAGMA freelist_count") == [(0,)]
    assert rows(path, SELECTED) == journaled


def test_a_send_whose_upgrade_could_not_be_compacted_goes_on_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    # Room for the upgrade but not for its VACUUM (its temporary copy on the state's disk): the
    # run went on without a word, the file holding what it no longer uses (67 MB of a 63.3 MB
    # file's 102.3 MB) until a later run with room.
    path = tmp_path / "state.sqlite"
    schema_1_file(path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("SQLITE_TMPDIR", str(temp))
    upgrade = state_file.upgrade
    monkeypatch.setattr(
        state_file, "upgrade", lambda connection: upgrade(Stopped(connection, disk_full()))
    )
    result = send_on(path, monkeypatch, sandbox)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[:1] == [
        f"warning: state file {path} is not compacted yet after its upgrade, for want of room "
        f"on its disk or in SQLite's temporary folder ({temp}): 1 MB of it goes unused until a "
        "later send with room compacts it",
    ]
    assert rows(path, "SELECT value FROM meta WHERE key = 'vacuum_due'") == [("1",)]


# The identity rows of pending creates and merges as rpd named them at schema 2, by today's.
SCHEMA_2_KINDS = {
    "pending:person": "unsettled:person",
    "pending:org": "unsettled:org",
    "pending:merge": "merging",
}
PENDING_ROWS = "SELECT kind, key, pd_id FROM identities WHERE kind NOT IN ('person', 'org') "


def as_schema_2(path: Path) -> None:
    """The state file at `path` as an rpd of schema 2 wrote it: its pending rows by its names."""
    connection = sqlite3.connect(path, isolation_level=None)
    for new, old in SCHEMA_2_KINDS.items():
        connection.execute("UPDATE identities SET kind = ? WHERE kind = ?", (old, new))
    connection.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    connection.close()


def schema_2_pending_file(path: Path) -> None:
    """A file of schema 2 whose creates of u-1's person and g-1's organization and merge of
    person 6 into 9 were left pending."""
    with ReplayState.open(path, NS, now=lambda: STAMP) as state:
        pending = {("person", "u-1"): STAMP, ("org", "g-1"): STAMP}
        learned = Learned(pending_creates=pending, pending_merges={6: 9})
        state.record_outcome(
            "e1", "in.ndjson:1", Outcome(status="failed", reason="x", learned=learned)
        )
    as_schema_2(path)


def test_a_schema_2_file_s_pending_rows_are_read_by_its_names_until_written(
    tmp_path: Path,
) -> None:
    # A dry-run and `rpd state show` of a file an older rpd left read its pending creates and
    # merges without writing a byte; the first open for writing renames them.
    path = tmp_path / "state.sqlite"
    schema_2_pending_file(path)
    before = path.read_bytes()
    with ReplayState.open(path, NS, readonly=True) as state:
        assert state.pending_create("person", "u-1") == STAMP
        assert state.pending_create("org", "g-1") == STAMP
        assert state.merging_into(6) == 9
        assert state.summary()[0].to_settle == 3
    show = ["state", "show", "--state", str(path)]
    shown = CliRunner().invoke(app, [*show, "-f", "json"])
    assert shown.exit_code == 0, shown.stderr
    assert orjson.loads(shown.stdout)["namespaces"][0]["to_settle"] == 3
    shown = CliRunner().invoke(app, show)
    (row,) = [line for line in shown.stdout.splitlines() if "in flight" in line]
    assert row.split("│")[2].strip() == "0 writes; 3 creates or merges to settle"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite"]

    with ReplayState.open(path, NS) as state:
        assert state.pending_create("person", "u-1") == STAMP
        assert state.merging_into(6) == 9
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    assert rows(path, PENDING_ROWS + "ORDER BY kind, key") == [
        ("pending:merge", "i:6", "i:9"),
        ("pending:org", "g-1", f"s:{STAMP}"),
        ("pending:person", "u-1", f"s:{STAMP}"),
    ]
    assert rows(path, "SELECT key FROM meta WHERE key = 'vacuum_due'") == []


def test_a_run_killed_in_the_renaming_leaves_schema_2_and_its_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows renamed and the file marked schema 3 are one transaction: a run stopped between
    # them leaves a file an older rpd still reads as its own, every pending row by its name.
    path = tmp_path / "state.sqlite"
    schema_2_pending_file(path)
    pending = rows(path, PENDING_ROWS + "ORDER BY kind, key")
    assert [row[0] for row in pending] == ["merging", "unsettled:org", "unsettled:person"]
    upgrade = state_file.upgrade
    mark = "UPDATE meta SET value = ? WHERE key = 'schema_version'"  # after the rows' UPDATE
    monkeypatch.setattr(
        state_file, "upgrade", lambda connection: upgrade(Stopped(connection, Killed(), mark))
    )
    with pytest.raises(Killed):
        ReplayState.open(path, NS)
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
    assert rows(path, PENDING_ROWS + "ORDER BY kind, key") == pending

    monkeypatch.setattr(state_file, "upgrade", upgrade)
    with ReplayState.open(path, NS) as state:
        assert state.pending_create("person", "u-1") == STAMP
    assert [row[0] for row in rows(path, PENDING_ROWS + "ORDER BY kind, key")] == [
        "pending:merge",
        "pending:org",
        "pending:person",
    ]


def test_a_schema_2_file_on_a_full_disk_says_the_little_room_its_renaming_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Renaming its pending rows rewrites no journal: it takes the commit's margin, not 2.25
    # times the file's size (the room an upgrade from schema 1 takes), as it was said.
    path = tmp_path / "state.sqlite"
    schema_2_pending_file(path)
    before = path.read_bytes()
    disks(monkeypatch, {tmp_path.resolve(): 1_000_000})
    result = send_on(path, monkeypatch)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: disk full: upgrading state file {path} to this rpd's schema needs about 4 MB "
        "free on its disk",
        f"hint: free space there, {UNCHANGED}",
    ]
    assert path.read_bytes() == before


class Killed(BaseException):
    """kill -9 as the file is marked schema 3, the rows renamed in the same transaction."""


def test_a_schema_2_file_s_pending_create_is_renamed_and_reconciled_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_sandbox: Any
) -> None:
    # An rpd of schema 2 created u-1's person and lost the answer: the person is in Pipedrive, and
    # its state holds the create pending (by that schema's name), so that this rpd's first send
    # lists the recent persons and finds it, where search (its index lagging) finds none.
    sandbox = make_sandbox(plan="unlimited", index_lag_ms=600_000)
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    one = events_file(tmp_path / "one.ndjson", ("m-1", "u-1", "One"))
    landed = send_on(tmp_path / "lost.sqlite", monkeypatch, sandbox, one)
    assert landed.exit_code == 0, landed.stderr
    path = tmp_path / "state.sqlite"
    zero = events_file(tmp_path / "zero.ndjson", ("m-0", "u-0", "Zero"))
    assert send_on(path, monkeypatch, sandbox, zero).exit_code == 0
    (ns,) = rows(path, "SELECT DISTINCT ns FROM journal")[0]
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executemany(
        "INSERT INTO identities VALUES (?, ?, ?, ?, ?)",
        [
            (ns, "pending:person", "u-1", f"s:{sent_at}", sent_at),
            (ns, "pending:org", "g-1", f"s:{sent_at}", sent_at),
            (ns, "pending:merge", "i:6", "i:9", sent_at),
        ],
    )
    connection.close()
    as_schema_2(path)
    before = Counter(sandbox.stats()["requests"])

    rerun = send_on(path, monkeypatch, sandbox, one)

    assert rerun.exit_code == 0, rerun.stderr
    requests = Counter(sandbox.stats()["requests"]) - before
    assert (requests["GET /api/v2/persons"], requests["POST /api/v2/persons"]) == (1, 0)
    assert sorted(person["name"] for person in sandbox.state()["persons"]) == ["One", "Zero"]
    assert rows(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    assert rows(path, PENDING_ROWS + "ORDER BY kind") == [  # u-1's settled, the others renamed
        ("pending:merge", "i:6", "i:9"),
        ("pending:org", "g-1", f"s:{sent_at}"),
    ]


def events_file(path: Path, *identifies: tuple[str, str, str]) -> Path:
    """An input of identify events, each (messageId, userId, name)."""
    events = [
        {"type": "identify", "messageId": message_id, "userId": user_id, "traits": {"name": name}}
        for message_id, user_id, name in identifies
    ]
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return path
