"""What the tables of one replay state share (io/state.py): the guarded connection, the namespace
they read and write, one mutex, and the batch, one open transaction committed every `batch_size`
outcomes or `batch_seconds`, on `flush()` and on close."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from rudder_pipedrive_cli.io.state_file import Guarded
from rudder_pipedrive_cli.io.state_schema import REVISION, schema_of


class Store:
    def __init__(
        self,
        db: Guarded,
        namespace: str,
        *,
        readonly: bool,
        batch_size: int,
        batch_seconds: float,
        clock: Callable[[], float],
        now: Callable[[], str],
    ) -> None:
        self.db = db
        self.ns = namespace
        self.readonly = readonly
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.clock = clock
        self.now = now
        # A file an older rpd wrote, open read-only (a dry-run before the first send): read as
        # its first writable open leaves it, without what that open forgets (FORGOTTEN): its
        # index and leads_listed marks before revision 1, its rule skips before 2 (state.py).
        self.revision = min(db.execute("PRAGMA user_version").fetchone()[0], REVISION)
        self.outdated = self.revision < 1
        # The file's schema: one not yet upgraded, open read-only, is read by its own names.
        self.schema = schema_of(db)
        self.mutex = threading.RLock()
        self._size = 0  # outcomes in the open batch
        self._opened_at = 0.0

    def has_table(self, table: str) -> bool:
        """Whether the file has this table (a read-only open of a file older than it has not)."""
        row = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return row is not None

    def row(self, sql: str, *parameters: Any) -> Any:
        """The first row (None: none) of a query of this namespace, under the mutex: `sql`'s
        first parameter is the namespace, then `parameters`."""
        with self.mutex:
            return self.db.execute(sql, (self.ns, *parameters)).fetchone()

    def writable(self) -> None:
        if self.readonly:
            raise RuntimeError(f"state {self.db.path} is open read-only")

    @contextlib.contextmanager
    def writing(self, *, commit: bool = False) -> Iterator[None]:
        """A write that counts as one outcome of the open batch, or (`commit`) is committed with
        it before it returns."""
        with self.mutex:
            self.writable()
            self.open_batch()
            yield
            if commit:
                self.commit()
            else:
                self.buffered()

    def open_batch(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self._size = 0
            self._opened_at = self.clock()

    def buffered(self) -> None:
        if self.readonly:
            return
        self._size += 1
        full = self._size >= self.batch_size
        if full or self.clock() - self._opened_at >= self.batch_seconds:
            self.commit()

    def commit(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self._size = 0
