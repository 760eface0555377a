"""Event ids a run has finished, kept so that memory stays flat however long the input is.

A dry-run without a replay state still skips a repeated messageId as send's journal does
(`core.intake.Finished`), so it must remember every id it planned. The latest ids stay in a set;
older ones move to SQLite's private temporary database (an unnamed file that SQLite deletes when
the connection closes, its page cache bounded), and a fixed-size bitmap of their hashes answers
most "not seen" questions without a query.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when ids first move out: a short dry-run needs no sqlite3
    import sqlite3

RECENT = 8192  # ids kept in memory before they move to the temporary database
FILTER_BITS = 1 << 23  # 1 MiB: a hash bit per id moved; a clear bit means "not there"
CACHE_KIB = 1024  # SQLite's page cache for the temporary database


class ScratchIds:
    """A set of strings (`in`, `add`) whose memory does not grow with its size."""

    __slots__ = ("_bits", "_db", "_filter", "_recent", "_recent_limit")

    def __init__(self, recent: int = RECENT, filter_bits: int = FILTER_BITS) -> None:
        self._db: sqlite3.Connection | None = None
        self._bits = filter_bits
        self._filter = bytearray((filter_bits + 7) // 8)
        self._recent: set[str] = set()
        self._recent_limit = recent

    def __contains__(self, event_id: str) -> bool:
        if event_id in self._recent:
            return True
        db = self._db
        if db is None:
            return False
        bit = hash(event_id) % self._bits
        if not self._filter[bit >> 3] & (1 << (bit & 7)):
            return False
        found = db.execute("SELECT 1 FROM ids WHERE id = ?", (event_id,)).fetchone()
        return found is not None

    def add(self, event_id: str) -> None:
        recent = self._recent
        recent.add(event_id)
        if len(recent) >= self._recent_limit:
            self._move(recent)
            recent.clear()

    def _move(self, ids: set[str]) -> None:
        db = self._db
        if db is None:
            import sqlite3

            db = self._db = sqlite3.connect("", isolation_level=None)  # "": temporary, private
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            db.execute("PRAGMA journal_mode = OFF")  # scratch: nothing to roll back to
            db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        bits, size = self._filter, self._bits
        for event_id in ids:
            bit = hash(event_id) % size
            bits[bit >> 3] |= 1 << (bit & 7)
        db.execute("BEGIN")  # in key order: the B-tree takes a sorted batch faster
        db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", ((i,) for i in sorted(ids)))
        db.execute("COMMIT")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ScratchIds:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
