"""The writes in flight of the state file (io/state.py keeps the journal, each event's latest
outcome, itself)."""

from __future__ import annotations

from rudder_pipedrive_cli.core.protocol import ApiRequest
from rudder_pipedrive_cli.io.state_store import Store

WriteKey = tuple[str, str, str, str]  # event id, method, endpoint, path


class InFlight:
    """The writes in flight of one namespace: each write of an event recorded before it is sent,
    with its send time, until the event's outcome is done; and which of them this state began."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._begun: set[WriteKey] = set()

    def reset(self) -> None:
        self._begun = set()

    def begin(self, event_id: str, request: ApiRequest, sent_at: str) -> None:
        """Record the write (a repeat keeps the first `sent_at`), in the open batch."""
        self._store.db.execute(
            "INSERT OR IGNORE INTO inflight (ns, event_id, method, endpoint, path, sent_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self._store.ns, event_id, request.method, request.endpoint, request.path, sent_at),
        )
        self._begun.add(_write_key(event_id, request))

    def pending(self, event_id: str, request: ApiRequest) -> str | None:
        """The `sent_at` of a write an earlier run left in flight, handed out once; never one this
        state began."""
        key = _write_key(event_id, request)
        if self._store.readonly or key in self._begun:
            return None
        row = self._store.db.execute(
            "SELECT sent_at FROM inflight WHERE ns = ? AND event_id = ? AND method = ? "
            "AND endpoint = ? AND path = ?",
            (self._store.ns, event_id, request.method, request.endpoint, request.path),
        ).fetchone()
        if row is None:
            return None
        self._begun.add(key)
        return str(row[0])

    def settle(self, event_id: str, status: str) -> None:
        """The event's outcome is recorded: a failed one keeps its writes in flight."""
        if status != "failed":
            self._store.db.execute(
                "DELETE FROM inflight WHERE ns = ? AND event_id = ?", (self._store.ns, event_id)
            )
        self._begun = {write for write in self._begun if write[0] != event_id}

    def count(self) -> int:
        row = self._store.db.execute(
            "SELECT count(*) FROM inflight WHERE ns = ?", (self._store.ns,)
        ).fetchone()
        return int(row[0])


def _write_key(event_id: str, request: ApiRequest) -> WriteKey:
    return (event_id, request.method, request.endpoint, request.path)
