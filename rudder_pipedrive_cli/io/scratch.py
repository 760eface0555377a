"""What a run remembers without a state file, in memory that does not grow with the input.

Two shapes, both backed by SQLite's private temporary database (an unnamed file that SQLite
deletes when the connection closes, its page cache bounded), opened only once memory is full:
- `ScratchIds`: the older event ids a dry-run finished. `core.intake.Finished` keeps the latest
  in memory and moves them here in batches, stored sorted; its fixed-size Bloom filter of their
  hashes answers most "not seen" questions without a query, and a query confirms the rest, so
  an id is never taken as "already done" by mistake.
- `SpillTable`: a mapping (the identity cache of `core.identity_cache.IdentityStore`, the
  input's aliases of send's and dry-run's first pass, the identity index's rows, ordering's
  alias groups) that keeps its `entries` most recently written keys in memory and the rest in
  the database, moved out in batches, with the same answers as a dict.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import orjson

if TYPE_CHECKING:  # imported when ids first move out: a short dry-run needs no sqlite3
    import sqlite3

RECENT = 8192  # ids kept in memory before they move to the temporary database
TABLE_FILTER_BITS = 1 << 23  # 1 MiB per SpillTable, allocated when it first moves keys out
CACHE_KIB = 1024  # SQLite's page cache for the temporary database
# The default budget of a `SpillTable`: keys kept in memory (a few hundred bytes each), per table.
CACHE_ENTRIES = 10_000
SPILL_BATCH = 1024  # keys moved out at once (one transaction)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def open_scratch_db() -> sqlite3.Connection:
    """SQLite's private temporary database: deleted when closed, nothing to roll back to."""
    import sqlite3  # here, not at the top: a short dry-run must not import it

    # "": temporary, private. Its users serialize their calls (ReplayState under its mutex).
    db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    db.execute("PRAGMA journal_mode = OFF")
    return db


def _may_hold(bits: bytearray, key: Hashable) -> bool:
    """Whether a one-hash Bloom filter of TABLE_FILTER_BITS (`SpillTable._bits`) may hold `key`:
    a key whose bit (taken from its hash) is clear was never added."""
    bit = hash(key) & (TABLE_FILTER_BITS - 1)
    return bool(bits[bit >> 3] & (1 << (bit & 7)))


class Closing(ABC):
    """A context manager that closes what it holds on exit."""

    __slots__ = ()

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Scratch(Closing):
    """A holder of SQLite's private temporary database (`open_scratch_db`), opened when first
    needed and closed with it."""

    __slots__ = ("_db",)

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None

    def _opened(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_scratch_db()
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class ScratchIds(_Scratch):
    """The older ids of `core.intake.Finished`, moved here `recent` at a time: a set of strings
    (`in`, `move`) whose memory does not grow with its size (`Finished` keeps the filter that
    tells which ids may be here)."""

    __slots__ = ("recent",)

    def __init__(self, recent: int = RECENT) -> None:
        super().__init__()
        self.recent = recent

    def __contains__(self, event_id: str) -> bool:
        if self._db is None:
            return False
        return (
            self._db.execute("SELECT 1 FROM ids WHERE id = ?", (event_id,)).fetchone() is not None
        )

    def move(self, ids: Iterable[str]) -> None:
        """Store `ids` sorted (the B-tree takes them fastest so; ids in input order that grow with
        it sort in one pass), in one statement that reads them from one JSON array."""
        db = self._opened()
        db.execute("CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        batch = sorted(ids)
        if b"\\u0000" in (array := orjson.dumps(batch)):  # SQLite's JSON ends a string at a NUL
            db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", zip(batch))  # (or a false alarm)
        else:
            db.execute("INSERT OR IGNORE INTO ids SELECT value FROM json_each(?)", (array,))


_ABSENT: Any = object()


class Spill(_Scratch):
    """The temporary database that the `SpillTable`s of one run share, opened when first needed;
    `table()` makes one with the run's budget."""

    def __init__(
        self,
        entries: int = CACHE_ENTRIES,
        *,
        batch: int = SPILL_BATCH,
    ) -> None:
        if entries < 1:
            raise ValueError("a cache needs room for at least one entry")
        super().__init__()
        self.entries = entries
        self.batch = max(1, min(batch, entries))
        self._tables = 0

    def table(self) -> SpillTable[Any, Any]:
        self._tables += 1
        return SpillTable(self, f"t{self._tables}")

    def db(self, name: str) -> sqlite3.Connection:
        db = self._opened()
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
        return db


def _key(key: Hashable) -> str:
    """A key as stored: its JSON text, the same for equal keys (str, int, tuples of them); 5 and
    "5" differ. Text (and a value a `bytearray`, `_move_out`): sqlite3 binds those as they are,
    where it first asks a `bytes` parameter for an adapter (two attribute lookups that fail: a
    quarter of a row's cost)."""
    return orjson.dumps(key).decode()


class SpillTable(MutableMapping[K, V]):
    """A dict whose memory is bounded: at least its `spill.entries` most recently written keys
    are held in memory (reads reorder nothing); once `spill.batch` more are, the `batch` written
    longest ago move to the spill's database at once (one transaction, no call of ours per key
    before then) and come back when asked for. Values are stored as pickles: what goes in comes
    out equal, not identical, so a value must not be changed in place once stored (store a new
    one).

    Until keys first move out, `hot` holds them all and its own `get` answers with no call of
    ours (as the identity cache reads it); `on_move` is called once, when that stops being true."""

    def __init__(self, spill: Spill, name: str) -> None:
        self._spill = spill
        self._name = name
        self._full = spill.entries + spill.batch  # keys in memory that move a batch out
        self.hot: OrderedDict[K, V] = OrderedDict()
        self.on_move: Callable[[], None] | None = None
        self._db: sqlite3.Connection | None = None
        # A Bloom filter of the keys ever written to the database (`_may_hold`); empty before.
        self._bits = bytearray()
        self._stored = 0  # keys written to the database, not counting deletions (an upper bound)

    # -- the hot path ------------------------------------------------------------------------------

    def get(self, key: K, default: Any = None) -> Any:
        value = self.hot.get(key, _ABSENT)
        if value is _ABSENT and self._bits:  # keys moved out
            value = self._cold(key)
        return default if value is _ABSENT else value

    def __getitem__(self, key: K) -> V:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:  # no KeyError raised and caught (Mapping's way)
        if key in self.hot:
            return True
        bits = self._bits  # the filter inline: most keys asked of a big table are in none
        if not bits:
            return False
        bit = hash(key) & (TABLE_FILTER_BITS - 1)
        return bool(bits[bit >> 3] & (1 << (bit & 7))) and self._load(key) is not _ABSENT  # type: ignore[arg-type]

    def __setitem__(self, key: K, value: V) -> None:
        hot = self.hot
        hot[key] = value
        hot.move_to_end(key)
        if len(hot) >= self._full:
            self._move_out()

    def setdefault(self, key: K, default: Any = None) -> Any:
        """As a dict's: no KeyError raised and caught for a new key (Mapping's way). The input's
        aliases no longer come this way: `core.identity_cache.alias_into` asks `in` and writes."""
        if key in self:
            return self[key]
        self[key] = default
        return default

    def __delitem__(self, key: K) -> None:
        if self.pop(key, _ABSENT) is _ABSENT:
            raise KeyError(key)

    def pop(self, key: K, default: Any = _ABSENT) -> Any:
        value = self.hot.pop(key, _ABSENT)
        if self._bits and _may_hold(self._bits, key):
            stored = self._load(key)
            if stored is not _ABSENT:
                assert self._db is not None
                self._db.execute(f"DELETE FROM {self._name} WHERE k = ?", (_key(key),))
                value = stored if value is _ABSENT else value
        if value is _ABSENT:
            if default is _ABSENT:
                raise KeyError(key)
            return default
        return value

    def __bool__(self) -> bool:
        """False only when the table is surely empty (a guard before lookups; cheap)."""
        return bool(self.hot) or self._stored > 0

    def __len__(self) -> int:
        return len(self.hot) + sum(1 for _ in self._stored_keys())

    def __iter__(self) -> Iterator[K]:
        yield from list(self.hot)
        yield from self._stored_keys()

    def clear(self) -> None:
        self.hot.clear()
        if self._db is not None:
            self._db.execute(f"DELETE FROM {self._name}")
        self._bits = bytearray()
        self._stored = 0

    @property
    def in_memory(self) -> int:
        """Keys held in memory now (fewer than the budget plus one batch)."""
        return len(self.hot)

    # -- moving out and back -----------------------------------------------------------------------

    def _cold(self, key: K) -> Any:
        if not _may_hold(self._bits, key):
            return _ABSENT
        value = self._load(key)
        if value is not _ABSENT:  # back in memory; its row stays, rewritten when it moves out
            hot = self.hot
            hot[key] = value
            if len(hot) >= self._full:
                self._move_out()
        return value

    def _load(self, key: K) -> Any:
        assert self._db is not None
        row = self._db.execute(f"SELECT v FROM {self._name} WHERE k = ?", (_key(key),)).fetchone()
        return _ABSENT if row is None else pickle.loads(row[0])

    @property
    def moved(self) -> bool:
        """Whether keys ever left `hot` (and it alone may no longer answer)."""
        return bool(self._bits)

    def _move_out(self) -> None:
        """Move the `batch` keys written longest ago to the database, in one transaction."""
        hot = self.hot
        moving = dict(hot.popitem(last=False) for _ in range(self._spill.batch))
        if self._db is None:
            self._db = self._spill.db(self._name)
        # Made at the first move out, or the first since clear().
        bits = self._bits = self._bits or bytearray(TABLE_FILTER_BITS >> 3)
        for bit in map((TABLE_FILTER_BITS - 1).__and__, map(hash, moving)):
            bits[bit >> 3] |= 1 << (bit & 7)
        dumps, protocol = pickle.dumps, pickle.HIGHEST_PROTOCOL
        rows = [(_key(key), bytearray(dumps(value, protocol))) for key, value in moving.items()]
        rows.sort()
        db = self._db
        db.execute("BEGIN")
        db.executemany(f"INSERT OR REPLACE INTO {self._name} (k, v) VALUES (?, ?)", rows)
        db.execute("COMMIT")
        self._stored += len(rows)
        if self.on_move is not None:  # after the move: `moved` says so
            on_move, self.on_move = self.on_move, None
            on_move()

    def _stored_keys(self) -> Iterator[K]:
        """The keys in the database that are not also in memory."""
        if self._db is None:
            return
        hot = self.hot
        for (raw,) in self._db.execute(f"SELECT k FROM {self._name}").fetchall():
            key = _decode_key(orjson.loads(raw))
            if key not in hot:
                yield key


class Lru(Generic[K, V]):
    """A read cache in front of a database that stays the truth: at most `entries` keys, the
    least recently used dropped first (nothing to write back)."""

    __slots__ = ("_entries", "_hot")

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._entries = entries
        self._hot: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, default: Any = None) -> Any:
        value = self._hot.get(key, _ABSENT)
        if value is _ABSENT:
            return default
        self._hot.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        hot = self._hot
        hot[key] = value
        hot.move_to_end(key)
        if len(hot) > self._entries:
            hot.popitem(last=False)


def _decode_key(value: Any) -> Any:
    """A stored key back as the key it was (JSON arrays were tuples)."""
    if isinstance(value, list):
        return tuple(_decode_key(item) for item in value)
    return value
