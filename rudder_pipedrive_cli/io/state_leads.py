"""The lead origins of the state file: the `origin_id`s of the records (leads, deals, activities,
notes) a person's listings found or rpd created, and which persons' listings are complete."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from rudder_pipedrive_cli.core.protocol import PdId
from rudder_pipedrive_cli.io.scratch import Spill
from rudder_pipedrive_cli.io.state_schema import encode_id
from rudder_pipedrive_cli.io.state_store import Store


class LeadOrigins:
    """The lead_origins and leads_listed tables of one namespace (IdentityCache.lead_origins). What
    a read-only state learns stays in bounded tables, never in the file."""

    def __init__(self, store: Store, spill: Spill) -> None:
        self._store = store
        self._learned: MutableMapping[str, frozenset[str]] = spill.table()
        # Persons whose stored list is no longer complete (person -> True).
        self._unlisted: MutableMapping[str, bool] = spill.table()

    def reset(self) -> None:
        self._learned.clear()
        self._unlisted.clear()

    def of(self, person_id: PdId) -> frozenset[str] | None:
        store, person = self._store, encode_id(person_id)
        listed = store.db.execute(
            "SELECT 1 FROM leads_listed WHERE ns = ? AND person_id = ?", (store.ns, person)
        ).fetchone()
        learned = self._learned.get(person)
        if self._unlisted.get(person) or (listed is None and learned is None):
            return None
        stored = frozenset(
            row[0]
            for row in store.db.execute(
                "SELECT origin_id FROM lead_origins WHERE ns = ? AND person_id = ?",
                (store.ns, person),
            )
        )
        return stored | (learned or frozenset())

    def learn(self, origins_of: Mapping[PdId, frozenset[str] | None]) -> None:
        """Add what the listings found (None: the person's list is no longer complete)."""
        if not origins_of:
            return
        leads = {
            encode_id(person): origins
            for person, origins in origins_of.items()
            if origins is not None
        }
        unlisted = [encode_id(person) for person, origins in origins_of.items() if origins is None]
        if self._store.readonly:
            for person in unlisted:
                self._unlisted[person] = True
                self._learned.pop(person, None)
            for person, origins in leads.items():
                self._unlisted.pop(person, None)
                self._learned[person] = self._learned.get(person, frozenset()) | origins
            return
        store = self._store
        store.db.executemany(  # its stored origins stay true; the list is just not complete
            "DELETE FROM leads_listed WHERE ns = ? AND person_id = ?",
            [(store.ns, person) for person in unlisted],
        )
        store.db.executemany(
            "INSERT OR IGNORE INTO leads_listed (ns, person_id) VALUES (?, ?)",
            [(store.ns, person) for person in leads],
        )
        store.db.executemany(
            "INSERT OR IGNORE INTO lead_origins (ns, person_id, origin_id) VALUES (?, ?, ?)",
            [
                (store.ns, person, origin)
                for person, origins in leads.items()
                for origin in sorted(origins)
            ],
        )
