"""The input's aliases kept in the replay state, as send's first pass notes them (core/index.py
`input_aliases`, by `core.identity_cache.alias_into`): one row per alias that links a chain's
end to another's, userId -> the userId its person's events lead to next (for most aliases its
previousId -> its userId). A resumed run reads no finished object again (SPEC 2), so what the
aliases in those objects moved is known from here."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, MutableMapping

from rudder_pipedrive_cli.io.state_schema import ALIASES_SCHEMA, ALIASES_TABLE
from rudder_pipedrive_cli.io.state_store import Store

PAGE = 1000  # rows read at once when iterating
# A meta key, + the namespace: a first pass that read every object, finished or not, kept its
# aliases here; only then may a later first pass leave the finished objects unread.
COMPLETE = "input_aliases_complete:"


class AliasRows(MutableMapping[str, str]):
    """The aliases of the store's namespace (the one it has at each call). Writes go into the
    state's open batch, so an alias is committed no later than the finished object it came from
    (the first pass writes it before any event is sent). A file older than the table reads as
    holding none; the first write creates it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stored = store.has_table(ALIASES_TABLE)

    def __getitem__(self, previous_id: str) -> str:
        row = None
        if self._stored:
            row = self._store.row(
                f"SELECT user_id FROM {ALIASES_TABLE} WHERE ns = ? AND previous_id = ?", previous_id
            )
        if row is None:
            raise KeyError(previous_id)
        return str(row[0])

    def __setitem__(self, previous_id: str, user_id: str) -> None:
        store = self._store
        with store.writing():
            if not self._stored:
                store.db.execute(ALIASES_SCHEMA)
                self._stored = True
            store.db.execute(
                f"INSERT OR REPLACE INTO {ALIASES_TABLE} (ns, previous_id, user_id) "
                "VALUES (?, ?, ?)",
                (store.ns, previous_id, user_id),
            )

    def __delitem__(self, previous_id: str) -> None:
        self[previous_id]  # KeyError when there is none, as a dict
        store = self._store
        with store.writing():
            store.db.execute(
                f"DELETE FROM {ALIASES_TABLE} WHERE ns = ? AND previous_id = ?",
                (store.ns, previous_id),
            )

    def __iter__(self) -> Iterator[str]:
        return (previous_id for previous_id, _ in self._rows())

    def items(self) -> ItemsView[str, str]:
        """One read of each row (OrderKeys links them all when a run starts), not one a key."""
        return _Items(self)

    def _rows(self) -> Iterator[tuple[str, str]]:
        """Every row, by previousId, a page at a time: bounded memory whatever the table holds,
        and no cursor left open across a write."""
        store, after, above = self._store, "", ">="  # from the first, "" too
        while self._stored:
            with store.mutex:
                page = store.db.execute(
                    f"SELECT previous_id, user_id FROM {ALIASES_TABLE} "
                    f"WHERE ns = ? AND previous_id {above} ? ORDER BY previous_id LIMIT ?",
                    (store.ns, after, PAGE),
                ).fetchall()
            yield from page
            if len(page) < PAGE:
                return
            after, above = page[-1][0], ">"

    @property
    def complete(self) -> bool:
        """Whether the aliases of every object finished in this namespace are here. Not in a
        file an older rpd finished objects in (it kept no aliases), nor after a run without a
        first pass (standard input among its inputs) that finished some."""
        store = self._store
        with store.mutex:
            row = store.db.execute(
                "SELECT 1 FROM meta WHERE key = ?", (COMPLETE + store.ns,)
            ).fetchone()
        return row is not None

    @complete.setter
    def complete(self, complete: bool) -> None:
        """Said once a first pass over every object kept their aliases (committed with them),
        or unsaid by a run that finishes objects without one."""
        store = self._store
        with store.writing(commit=True):
            if complete:
                store.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')",
                    (COMPLETE + store.ns,),
                )
            else:
                store.db.execute("DELETE FROM meta WHERE key = ?", (COMPLETE + store.ns,))

    def __len__(self) -> int:
        if not self._stored:
            return 0
        return int(self._store.row(f"SELECT count(*) FROM {ALIASES_TABLE} WHERE ns = ?")[0])


class _Items(ItemsView[str, str]):
    _mapping: AliasRows

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self._mapping._rows()
