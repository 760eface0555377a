"""The field recency table of the state file (core/recency.py): per record and field, the time of
the event whose value rpd last wrote."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from rudder_pipedrive_cli.core.recency import newest
from rudder_pipedrive_cli.io.state_schema import RECENCY_TABLE
from rudder_pipedrive_cli.io.state_store import Store


class FieldRecency:
    """The field recency table (IdentityCache.recency) of one namespace; in memory for a read-only
    state, whose file is never written (and may be older than the table)."""

    def __init__(
        self, store: Store, *, memory: MutableMapping[tuple[str, str], dict[str, str]] | None
    ) -> None:
        self._store = store
        self._memory = memory  # None: writable, the table holds it all
        self._stored = store.has_table(RECENCY_TABLE)

    def times(self, kind: str, record: str) -> dict[str, str]:
        found: dict[str, str] = {}
        if self._stored:
            found = dict(
                self._store.db.execute(
                    f"SELECT field, stamp FROM {RECENCY_TABLE} "
                    "WHERE ns = ? AND kind = ? AND pd_id = ?",
                    (self._store.ns, kind, record),
                ).fetchall()
            )
        learned = None if self._memory is None else self._memory.get((kind, record))
        if learned is not None:
            found = newest(found, learned)
        return found

    def learn(self, kind: str, record: str, times: Mapping[str, str]) -> None:
        """Keep the later time of each field (inside the caller's open batch when writable)."""
        if self._memory is not None:
            self._memory[(kind, record)] = newest(self._memory.get((kind, record), {}), times)
            return
        self._store.db.executemany(
            f"INSERT INTO {RECENCY_TABLE} (ns, kind, pd_id, field, stamp) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ns, kind, pd_id, field) "
            "DO UPDATE SET stamp = max(stamp, excluded.stamp)",
            [(self._store.ns, kind, record, name, at) for name, at in times.items()],
        )
