"""The identity index's tables in the state file (core/index.py's `IndexRows`)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from rudder_pipedrive_cli.core.index import id_order
from rudder_pipedrive_cli.core.protocol import PdId
from rudder_pipedrive_cli.io.state_file import Guarded
from rudder_pipedrive_cli.io.state_schema import INDEX_MARKS, INDEX_TABLE, decode_id, encode_id

if TYPE_CHECKING:
    from rudder_pipedrive_cli.io.state import ReplayState


class IndexTable:
    """The identity index's rows of one namespace (core/index.py's `IndexRows`), in its own
    tables, written inside the state's open batch. A read-only state reads them (dry-run's
    estimates) and never writes them."""

    def __init__(self, state: ReplayState) -> None:
        self._state = state
        db = state._db
        self._db = db
        self._ns = state.namespace
        self._stored = (
            db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (INDEX_MARKS,)
            ).fetchone()
            is not None
        )

    def ids(self, kind: str, value: str) -> list[PdId]:
        if not self._stored:  # a read-only open of a file older than the index
            return []
        with self._state._mutex:
            rows = self._db.execute(
                f"SELECT pd_id FROM {INDEX_TABLE} WHERE ns = ? AND kind = ? AND value = ?",
                (self._ns, kind, value),
            ).fetchall()
        return sorted((decode_id(row[0]) for row in rows), key=id_order)

    def put(self, kind: str, rows: Iterable[tuple[PdId, str | None]]) -> None:
        rows = list(rows)
        keep = [(self._ns, kind, encode_id(r), v) for r, v in rows if v is not None]
        gone = [(self._ns, kind, encode_id(r)) for r, v in rows if v is None]
        with self._writing():
            self._db.executemany(
                f"INSERT OR REPLACE INTO {INDEX_TABLE} (ns, kind, pd_id, value) "
                "VALUES (?, ?, ?, ?)",
                keep,
            )
            self._db.executemany(
                f"DELETE FROM {INDEX_TABLE} WHERE ns = ? AND kind = ? AND pd_id = ?", gone
            )

    def add(self, kind: str, record: PdId, value: str) -> None:
        with self._writing():
            self._db.execute(
                f"INSERT OR IGNORE INTO {INDEX_TABLE} (ns, kind, pd_id, value) VALUES (?, ?, ?, ?)",
                (self._ns, kind, encode_id(record), value),
            )

    def drop(self, kind: str, record: PdId) -> None:
        self.put(kind, [(record, None)])

    def since(self, kind: str, field_key: str) -> str | None:
        if not self._stored:
            return None
        with self._state._mutex:
            row = self._db.execute(
                f"SELECT since FROM {INDEX_MARKS} WHERE ns = ? AND kind = ? AND field_key = ?",
                (self._ns, kind, field_key),
            ).fetchone()
        return str(row[0]) if row is not None and row[0] else None

    def mark(self, kind: str, field_key: str, since: str) -> None:
        with self._writing():
            self._db.execute(
                f"INSERT OR REPLACE INTO {INDEX_MARKS} (ns, kind, field_key, since) "
                "VALUES (?, ?, ?, ?)",
                (self._ns, kind, field_key, since),
            )

    def forget(self, kind: str) -> None:
        with self._writing():
            self._db.execute(
                f"DELETE FROM {INDEX_TABLE} WHERE ns = ? AND kind = ?", (self._ns, kind)
            )

    def size(self, kind: str) -> int:
        if not self._stored:
            return 0
        with self._state._mutex:
            row = self._db.execute(
                f"SELECT count(*) FROM {INDEX_TABLE} WHERE ns = ? AND kind = ?", (self._ns, kind)
            ).fetchone()
        return int(row[0])

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        state = self._state
        with state._mutex:
            state._writable()
            state._open_batch()
            yield
            state._buffered()


def clear_index(db: sqlite3.Connection | Guarded, namespace: str | None) -> None:
    """Delete the identity index of one namespace, or of all (`rpd state clear`)."""
    for table in (INDEX_TABLE, INDEX_MARKS):
        exists = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if exists is None:
            continue
        if namespace is None:
            db.execute(f"DELETE FROM {table}")
        else:
            db.execute(f"DELETE FROM {table} WHERE ns = ?", (namespace,))
