"""The identity index's tables in the state file (core/index.py's `IndexRows`)."""

from __future__ import annotations

from collections.abc import Iterable

from rudder_pipedrive_cli.core.index import id_order
from rudder_pipedrive_cli.core.protocol import PdId
from rudder_pipedrive_cli.io.state_schema import INDEX_MARKS, INDEX_TABLE, decode_id, encode_id
from rudder_pipedrive_cli.io.state_store import Store


class IndexTable:
    """The identity index's rows of one namespace (core/index.py's `IndexRows`), in its own
    tables, written inside the state's open batch. A read-only state reads them (dry-run's
    estimates) and never writes them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._db = store.db
        self._ns = store.ns
        # Not in a file older than the index, nor read-only where its rows are to be forgotten.
        self._stored = store.has_table(INDEX_MARKS) and not store.outdated

    def ids(self, kind: str, value: str) -> list[PdId]:
        if not self._stored:
            return []
        with self._store.mutex:
            rows = self._db.execute(
                f"SELECT pd_id FROM {INDEX_TABLE} WHERE ns = ? AND kind = ? AND value = ?",
                (self._ns, kind, value),
            ).fetchall()
        return sorted((decode_id(row[0]) for row in rows), key=id_order)

    def put(self, kind: str, rows: Iterable[tuple[PdId, str | None]]) -> None:
        rows = list(rows)
        keep = [(self._ns, kind, encode_id(r), v) for r, v in rows if v is not None]
        gone = [(self._ns, kind, encode_id(r)) for r, v in rows if v is None]
        with self._store.writing():
            self._db.executemany(
                f"INSERT OR REPLACE INTO {INDEX_TABLE} (ns, kind, pd_id, value) "
                "VALUES (?, ?, ?, ?)",
                keep,
            )
            self._db.executemany(
                f"DELETE FROM {INDEX_TABLE} WHERE ns = ? AND kind = ? AND pd_id = ?", gone
            )

    def add(self, kind: str, record: PdId, value: str) -> None:
        with self._store.writing():
            self._db.execute(
                f"INSERT OR IGNORE INTO {INDEX_TABLE} (ns, kind, pd_id, value) VALUES (?, ?, ?, ?)",
                (self._ns, kind, encode_id(record), value),
            )

    def drop(self, kind: str, record: PdId) -> None:
        self.put(kind, [(record, None)])

    def since(self, kind: str, field_key: str) -> str | None:
        if not self._stored:
            return None
        with self._store.mutex:
            row = self._db.execute(
                f"SELECT since FROM {INDEX_MARKS} WHERE ns = ? AND kind = ? AND field_key = ?",
                (self._ns, kind, field_key),
            ).fetchone()
        return str(row[0]) if row is not None and row[0] else None

    def mark(self, kind: str, field_key: str, since: str) -> None:
        with self._store.writing():
            self._db.execute(
                f"INSERT OR REPLACE INTO {INDEX_MARKS} (ns, kind, field_key, since) "
                "VALUES (?, ?, ?, ?)",
                (self._ns, kind, field_key, since),
            )

    def forget(self, kind: str) -> None:
        with self._store.writing():
            self._db.execute(
                f"DELETE FROM {INDEX_TABLE} WHERE ns = ? AND kind = ?", (self._ns, kind)
            )

    def size(self, kind: str) -> int:
        if not self._stored:
            return 0
        with self._store.mutex:
            row = self._db.execute(
                f"SELECT count(*) FROM {INDEX_TABLE} WHERE ns = ? AND kind = ?", (self._ns, kind)
            ).fetchone()
        return int(row[0])
