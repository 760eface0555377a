"""What runs left in the state file beside the events: the runs themselves, the field listings
they cached, and the objects they read to the end."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from rudder_pipedrive_cli.io.state_schema import OBJECTS_TABLE
from rudder_pipedrive_cli.io.state_store import Store


class Runs:
    """The runs table of one namespace: when each run started and finished, and its counts."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.current: int | None = None  # the id of the run started and not finished

    def start(self) -> None:
        store = self._store
        cursor = store.db.execute(
            "INSERT INTO runs (ns, started_at) VALUES (?, ?)", (store.ns, store.now())
        )
        self.current = cursor.lastrowid

    def finish(self, counts: Mapping[str, Any]) -> None:
        if self.current is None:
            raise RuntimeError("finish_run() without start_run()")
        self._store.db.execute(
            "UPDATE runs SET finished_at = ?, counts_json = ? WHERE id = ?",
            (self._store.now(), orjson.dumps(dict(counts)).decode(), self.current),
        )
        self.current = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedFields:
    fetched_at: str
    payload: Any


class FieldListings:
    """The fields table of one namespace: each entity's last field listing (io/catalog_cache.py)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, entity: str) -> CachedFields | None:
        row = self._store.db.execute(
            "SELECT fetched_at, payload_json FROM fields WHERE ns = ? AND entity = ?",
            (self._store.ns, entity),
        ).fetchone()
        return (
            None if row is None else CachedFields(fetched_at=row[0], payload=orjson.loads(row[1]))
        )

    def put(self, entity: str, payload: Any) -> None:
        store = self._store
        store.db.execute(
            "INSERT INTO fields (ns, entity, fetched_at, payload_json) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (ns, entity) DO UPDATE SET fetched_at = excluded.fetched_at, "
            "payload_json = excluded.payload_json",
            (store.ns, entity, store.now(), orjson.dumps(payload).decode()),
        )


class ObjectsDone:
    """The objects of a bucket or backup folder read to the end with every event done (SPEC 2,
    resume), by name and version (io/objects.py); the table is created on first use."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def finished(self, name: str, version: str) -> bool:
        try:
            row = self._store.db.execute(
                "SELECT 1 FROM objects_done WHERE ns = ? AND name = ? AND version = ?",
                (self._store.ns, name, version),
            ).fetchone()
        except sqlite3.OperationalError:  # no such table: nothing finished yet
            return False
        return row is not None

    def finish(self, name: str, version: str) -> None:
        store = self._store
        store.db.execute(OBJECTS_TABLE)
        store.db.execute(
            "INSERT INTO objects_done (ns, name, version, finished_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (ns, name) DO UPDATE SET version = excluded.version, "
            "finished_at = excluded.finished_at",
            (store.ns, name, version, store.now()),
        )
