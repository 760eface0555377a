"""The journal of the state file (each event's latest outcome) and its writes in flight."""

from __future__ import annotations

from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome
from rudder_pipedrive_cli.io.state_store import Store


class Journal:
    """The journal of one namespace: per event, its latest outcome, "sent", "unchanged", "skipped"
    (done) or "failed", with the reason and the event's source."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def status(self, event_id: str) -> str | None:
        row = self._store.db.execute(
            "SELECT status FROM journal WHERE ns = ? AND event_id = ?", (self._store.ns, event_id)
        ).fetchone()
        return None if row is None else str(row[0])

    def record(self, event_id: str, source: str, outcome: Outcome) -> None:
        store = self._store
        store.db.execute(
            "INSERT INTO journal (ns, event_id, status, reason, source, finished_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ns, event_id) DO UPDATE SET "
            "status = excluded.status, reason = excluded.reason, source = excluded.source, "
            "finished_at = excluded.finished_at",
            # The reason without event data: the state keeps no personal data (SPEC 8).
            (store.ns, event_id, outcome.status, outcome.redacted_reason, source, store.now()),
        )


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
