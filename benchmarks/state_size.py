"""Where a state file's bytes go: each table and index, its rows and bytes per event, the free
pages, and what VACUUM would take back (and how long it takes).

    python -m benchmarks.state_size [FILE ...] [--events N ...] [--vacuum]

For each FILE (a state a send left, e.g. `rpd send ... --state s.sqlite` against `rpd sandbox`),
or else a state filled with N events as benchmarks/state_open.py fills one (journal, a person
each, a lead origin for one in four), a copy is measured (SQLite's backup, so the file's -wal is
folded in and a running send is not disturbed): SQLite's `dbstat` table gives each b-tree's pages
and the bytes of its rows (payload) and left empty (unused). Events are the journal's rows. With
--vacuum the copy is also vacuumed: its size after, and the time VACUUM took.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path

from benchmarks.state_open import fill

PER_OBJECT = """
SELECT name, count(*), sum(pgsize), sum(payload), sum(unused) FROM dbstat
GROUP BY name ORDER BY sum(pgsize) DESC, name
"""


def pragma(connection: sqlite3.Connection, name: str) -> int:
    return int(connection.execute(f"PRAGMA {name}").fetchone()[0])


def file_bytes(connection: sqlite3.Connection) -> int:
    return pragma(connection, "page_count") * pragma(connection, "page_size")


def rows_of(connection: sqlite3.Connection) -> dict[str, int]:
    """Each table's row count (an index has its table's), and the schema's entries."""
    counts = {
        "sqlite_schema": int(connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    }
    for name, table in connection.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
    ).fetchall():
        counts[name] = int(connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    return counts


def report(copy: Path, label: str, vacuum: bool) -> None:
    connection = sqlite3.connect(copy, isolation_level=None)
    events = int(connection.execute("SELECT count(*) FROM journal").fetchone()[0])
    per = max(events, 1)
    total = file_bytes(connection)
    free = pragma(connection, "freelist_count") * pragma(connection, "page_size")
    print(f"{label}: {total:,} bytes, {events:,} events journaled, {total / per:,.1f} bytes/event")
    print(
        f"  {'table or index':30} {'rows':>9} {'bytes':>12} {'share':>6} {'B/event':>8} "
        f"{'payload':>12} {'unused':>10}"
    )
    rows = rows_of(connection)
    for name, _pages, size, payload, unused in connection.execute(PER_OBJECT).fetchall():
        print(
            f"  {name:30} {rows.get(name, 0):>9,} {size:>12,} {size / total:>6.1%} "
            f"{size / per:>8.1f} {payload:>12,} {unused:>10,}"
        )
    print(f"  {'free pages':30} {'':>9} {free:>12,} {free / total:>6.1%} {free / per:>8.1f}")
    if vacuum:
        started = time.perf_counter()
        connection.execute("VACUUM")
        took = time.perf_counter() - started
        after = file_bytes(connection)
        print(
            f"  VACUUM: {after:,} bytes ({after / per:,.1f} bytes/event, "
            f"{1 - after / total:.1%} less) in {took:.2f} s"
        )
    connection.close()


def measured(source: Path, directory: str) -> Path:
    """A copy of the state (its -wal folded in), made with SQLite's backup."""
    copy = Path(directory) / "copy.sqlite"
    copy.unlink(missing_ok=True)
    original = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    with closing(original), closing(sqlite3.connect(copy)) as target:
        original.backup(target)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="state files to measure")
    parser.add_argument("--events", type=int, nargs="+", default=[20_000])
    parser.add_argument("--vacuum", action="store_true", help="also VACUUM the copy, timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for path in args.files:
            report(measured(path, directory), str(path), args.vacuum)
        if args.files:
            return
        for events in args.events:
            filled = Path(directory) / f"filled-{events}.sqlite"
            fill(filled, events)
            report(measured(filled, directory), f"filled with {events:,} events", args.vacuum)


if __name__ == "__main__":
    main()
