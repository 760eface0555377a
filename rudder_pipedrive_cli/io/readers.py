"""Reading input files into events (SPEC 2): gzip and layout are sniffed, never trusted by name.

Each path (or `-` for stdin) is opened in binary. Gzip is recognised by its magic bytes. The
decompressed content is one JSON document (loaded whole) when it starts with `[` (unless its first
line is a whole value and another line follows: NDJSON whose first line is a list) or parses as one
whole (an event or a `{"batch": [...]}` body spread over lines); otherwise it is NDJSON, streamed
line by line (memory stays flat), whatever its first line holds. Deciding costs nothing when the
first line is JSON on its own (a one-line object file is the same either way); when it is not,
the lines are held, up to the size cap, to see whether the whole parses.

No line and no document larger than `max_item_bytes` (--max-item-bytes) is held: it becomes one
failed item, and reading goes on after it (a line) or with the next file (a document).
A UTF-8 BOM is dropped at the start of any line (files joined with `cat`).

Sources: `FILE:LINE` (1-based physical lines), `FILE:LINE#N` for the N-th event of a batch on a
line, `FILE#N` for the N-th element of an array or of a whole-file batch, `FILE` for a whole-file
single event; stdin is named `-`. Bad input never stops the run: each bad line, value, file or
stream becomes one failed item (`invalid`) with a one-line reason, as does each value that is not
an event (`Event` refuses it). With `strict`, the first such item raises `UsageError` instead.
Each line is read, parsed and made the `Event` the core plans in one loop, no object between.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import re
import stat
import sys
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, chain
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import orjson

from rudder_pipedrive_cli.core.backups import StoredObject, Window, reading_order
from rudder_pipedrive_cli.core.errors import ReadingRefused, UsageError
from rudder_pipedrive_cli.core.events import Event, EventError, invalid, parse_event
from rudder_pipedrive_cli.core.rules import closest
from rudder_pipedrive_cli.core.wrappers import unwrap
from rudder_pipedrive_cli.io.config import STDIN_SHOWN, stdin_closed
from rudder_pipedrive_cli.io.objects import (
    REACH,
    URL,
    AccessRefused,
    CredentialsRefused,
    Feed,
    ObjectLedger,
    ObjectReadError,
    Resolver,
    forbidden,
    hear_retries,
    identity,
    is_object_path,
    ledger_name,
    list_objects,
    refused_credentials,
    resolve,
    source_name,
    unfinished,
    unreachable,
    url_scheme,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from fsspec import AbstractFileSystem

STDIN = "-"
Listing = tuple["AbstractFileSystem", list[StoredObject]]  # a bucket's or folder's store, objects
# What listing a path within a window found: its store, its root there, the objects, and the
# folder's entries that are no files (`list_objects`); kept by (path, window) in
# `EventReader.listed`, for another reader of the same input not to list it again.
Listed = tuple["AbstractFileSystem", str, list[StoredObject], list[tuple[str, str]]]
Key = str | tuple[int, int]  # what tells an input read before: a name, a local file's identity
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
BUFFER_SIZE = 1 << 18
SCAN_SIZE = 1 << 20  # what `_mentioning` searches at a time
SKIP_CHUNK = 1 << 16
# The largest line or JSON document read (--max-item-bytes): hostile or broken input (a stream
# with no newline, /dev/zero) must not take the memory of the machine.
DEFAULT_MAX_ITEM_BYTES = 32 << 20
STRICT_HINT = "fix the input or run without --strict to dead-letter bad lines and continue"

# What reading a damaged file or stream raises: truncated gzip (EOFError), corrupt gzip
# (gzip.BadGzipFile is an OSError, zlib.error), and I/O errors.
READ_ERRORS = (EOFError, OSError, zlib.error)


class EventReader:
    """Iterate the items of `paths` in order; `bytes_read` / `total_bytes` drive progress.

    A bucket URL or a local folder is listed here, before anything is read (io/objects.py): only
    what `window` can touch, minus the objects `finished` says an earlier run finished. Its
    objects are then read in time order as files are; `item_done` hears each item's outcome, and
    `on_finished` gets each object read to its end whose items all ended well. `warn` hears what
    the user should know (objects outside the backup layout, a file or stdin with no events).
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        strict: bool = False,
        stdin: BinaryIO | None = None,
        max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES,
        window: Window | None = None,
        finished: Callable[[str, str], bool] | None = None,
        on_finished: Callable[[str, str], None] | None = None,
        warn: Callable[[str], None] | None = None,
        resolver: Resolver = resolve,
        sleep: Callable[[float], object] | None = None,
        mentioning: tuple[bytes, ...] = (),
        listed: Mapping[tuple[str, Window], Listed] | None = None,
        retried: Callable[[], object] | None = None,
    ) -> None:
        self.paths = tuple(paths)
        self._retried = retried  # hears each store call tried again (Feed, hear_retries)
        # The listings made (or, from `listed`, another reader's taken): send's first pass
        # reads the main pass's, so that a store gone between the two listings cannot stop it
        # before its first object, where it would stop with no report (and a bucket of
        # thousands of objects is listed once).
        self.listed: dict[tuple[str, Window], Listed] = dict(listed or {})
        self._mentioning = mentioning
        self.strict = strict
        self.max_item_bytes = max_item_bytes
        self._stdin = stdin
        self._sleep = sleep
        self._warn = warn
        self._finished_bytes = 0
        self._current: _RawSource | None = None
        self._ledger = ObjectLedger(on_finished)
        self.objects_total = self.objects_skipped = 0
        # The paths to read in order, each with its listing (None: a file or stdin). What was
        # given before (a path again, a file also given through its folder, a folder within
        # another) is read where it was first given, once: read twice, its failed events were
        # tried twice, and its object's two readings counted each other's events as their own.
        self._inputs: list[tuple[str, Listing | None]] = []
        given: dict[Key, str] = {}  # each object's `_key`, a file's: the path giving it
        taken: set[str] = set()  # the paths as written (a shell's glob may give thousands)
        for path in self.paths:
            if path == STDIN:  # each time: a read takes what the one before left, if anything
                self._inputs.append((path, None))
            elif path in taken:
                self._tell(f"{path} is given twice: read once")
            elif is_object_path(path):
                taken.add(path)
                listing = self._list(path, window or Window(), finished, resolver, given)
                self._inputs.append((path, listing))
            elif (key := _key(path)) in given:
                self._tell(f"{path} was given before, through {given[key]}: read once, there")
            else:
                taken.add(path)
                given[key] = path
                self._inputs.append((path, None))
        # Each file's size now, before any pass reads it: one that ends short of it was cut
        # while rpd read it (`shrunk`).
        self._sizes = {
            path: _file_size(path)
            for path, listing in self._inputs
            if listing is None and path != STDIN
        }
        self.shrunk: UsageError | None = None  # the first file cut short while it was read
        self.total_bytes: int | None = (
            None
            if STDIN in self.paths
            else sum(
                self._sizes.get(path, 0)
                if listing is None
                else sum(stored.size for stored in listing[1])
                for path, listing in self._inputs
            )
        )

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far across files, as stored: the lines handed out of a plain file
        (so progress moves event by event, not a read buffer at a time), the compressed bytes
        read of a gzip file."""
        source = self._current
        if source is None:
            return self._finished_bytes
        return self._finished_bytes + (source.consumed if source.plain else source.count)

    @property
    def objects_done(self) -> int:
        """Objects read to their end whose items all ended (well or not): not those read
        ahead of the sending, whose events are still to be sent."""
        return self._ledger.done

    def item_done(self, source: str, status: str, *, lasting: bool = False) -> None:
        """An item of this reader ended `status` (sent, unchanged, skipped or failed); a failure
        that is `lasting` (core/events.py `fails_again`) does not keep its object unfinished."""
        self._ledger.item_done(source, status != "failed" or lasting)

    def __iter__(self) -> Iterator[Event]:
        # Chained in C: a file's items come from its stream's generator, no level above it.
        items = chain.from_iterable(self._sources())
        return _strict(items) if self.strict else items

    def _tell(self, warning: str) -> None:
        if self._warn is not None:
            self._warn(warning)

    def _sources(self) -> Iterator[Iterable[Event]]:
        """The items of each path in turn; a file is closed once its items were all taken."""
        for path, listing in self._inputs:
            if listing is not None:
                if listing[1]:  # a folder or prefix of empty files is said as an empty file is
                    name = source_name(path)
                    yield self._said_if_empty(self._read_objects(*listing, name), name)
                continue
            try:
                inner = self._open(path)
            except OSError as exc:
                why = f"cannot read file: {exc.strerror or exc}"
                yield [_unread(source_name(path), why)]
                continue
            source = self._current = _RawSource(inner)
            name = source_name(path)
            try:
                items = _read_stream(source, name, self.max_item_bytes, self._mentioning)
                yield self._said_if_empty(items, name, path == STDIN)
                self._read_whole(path, name, inner, source.count)
            finally:
                self._finished_bytes += source.count
                self._current = None
                if path != STDIN:
                    inner.close()

    def _said_if_empty(
        self, items: Iterator[Event], name: str, stdin: bool = False
    ) -> Iterator[Event]:
        """`items`, warning that `name` holds no events when they are none: an empty file ended
        the run with "0 of 0 events" and no word why."""
        if self._warn is None:
            return items
        first = next(items, None)
        if first is None:
            self._warn(f"{STDIN_SHOWN} held no events" if stdin else f"{name} holds no events")
            return iter(())
        return chain((first,), items)

    def _read_whole(self, path: str, name: str, inner: BinaryIO, read: int) -> None:
        """Say a file read to its end short of the size it had when the run began: it was cut
        (truncated, rewritten shorter) while rpd read it, and the events it held past that point
        were never read, nor counted anywhere. Warned at once; a send exits 2 on it (`shrunk`),
        as its 0 or 1 would tell a cron the whole input was replayed."""
        size = self._sizes.get(path, 0)
        if read >= size:  # every file but one cut short, and stdin or a pipe (size 0)
            return
        try:
            now = os.fstat(inner.fileno()).st_size
        except OSError:
            return
        if now >= size:  # not shorter (a gzip with bytes after its end: an item says so)
            return
        what = f"{name} shrank while it was read (from {size:,} bytes to {now:,})"
        lost = f"what it held past byte {read:,} was not read"
        self._tell(f"{what}: {lost}")
        if self.shrunk is None:
            self.shrunk = UsageError(
                f"{what}: the events it held past byte {read:,} were not read or sent",
                hint="send it again once it is whole: what this run sent is not sent twice",
            )

    def _list(
        self,
        path: str,
        window: Window,
        finished: Callable[[str, str], bool] | None,
        resolver: Resolver,
        given: dict[Key, str],
    ) -> Listing:
        if (path, window) not in self.listed:
            self.listed[path, window] = _listed(path, window, resolver, self._retried)
        fs, root, listed, not_files = self.listed[path, window]
        warn = self._warn
        if warn is not None:
            for name, kind in sorted(not_files):
                warn(f"{name} is {kind}, not a file: not read (only a folder's files are)")
        if not listed and window == Window():
            raise UsageError(
                f"cannot read {path}: it holds no {'objects' if url_scheme(path) else 'files'}",
                hint="check the path (nothing was read or sent)",
            )
        timed, others = reading_order(listed, window)
        key = _keys(path, root)
        again = [stored for stored in (*timed, *others) if key(stored) in given]
        if again:
            timed, others = (
                [stored for stored in part if key(stored) not in given] for part in (timed, others)
            )
            earlier, left = given[key(again[0])], len(timed) + len(others)
            self._tell(_given_before(path, again, earlier, left=left))
        given.update((key(stored), path) for stored in (*timed, *others))
        if others and warn is not None:
            noun = "object does" if len(others) == 1 else "objects do"
            warn(
                f"{len(others)} {noun} not follow RudderStack's backup layout "
                f"(SOURCE/gw/YYYY-MM-DD/HOUR/INSTANCE/FIRST_LAST_WORKSPACE.json.gz), e.g. "
                f"{others[0].name}: read in key order after the others, not by time"
            )
        ordered = timed + others
        chosen = unfinished(ordered, finished)
        self.objects_skipped += len(ordered) - len(chosen)
        self.objects_total += len(chosen)
        return fs, chosen

    def _read_objects(
        self, fs: AbstractFileSystem, objects: list[StoredObject], path: str
    ) -> Iterator[Event]:
        empty: list[str] = []  # objects read whole that held no event (0 bytes: a cut upload)
        with Feed(fs, objects, sleep=self._sleep, retried=self._retried) as feed:
            for index, stored in enumerate(objects):
                stream = feed.stream(index)
                tally = self._ledger.start(stored)
                error = stream.opening_error()  # refused credentials stop the run (StoppedEarly)
                if error is not None:
                    tally.items += 1
                    why = f"cannot read object: {error}"
                    yield _unread(stored.name, why)
                else:
                    source = self._current = _RawSource(cast(BinaryIO, stream))
                    try:
                        for item in _read_stream(
                            source, stored.name, self.max_item_bytes, self._mentioning
                        ):
                            tally.items += 1
                            yield item
                    finally:
                        self._finished_bytes += source.count
                        self._current = None
                    stream.drain()
                    if not tally.items:
                        empty.append(stored.name)
                self._ledger.read_to_end(tally, feed.read_as(index))
        # Said of each as of an empty file (all of them: `_said_if_empty` says it of `path`).
        if empty and len(empty) < len(objects):
            some = f"{len(empty)} objects of {path} hold" if empty[1:] else f"{empty[0]} holds"
            self._tell(f"{some} no events" + (f", e.g. {empty[0]}" if empty[1:] else ""))

    def _open(self, path: str) -> BinaryIO:
        if path == STDIN:
            if self._stdin is not None:
                return self._stdin
            # The unbuffered file under stdin: a read returns what the producer has written so
            # far, and no buffer lock is held by a reader thread waiting at shutdown.
            return getattr(sys.stdin.buffer, "raw", sys.stdin.buffer)
        return open(path, "rb", buffering=0)


def _listed(
    path: str, window: Window, resolver: Resolver, retried: Callable[[], object] | None
) -> Listed:
    """What listing `path` finds within `window`, or the error that says why it cannot be;
    `retried` hears each store call tried again (hear_retries), then and while it is read."""
    fs, root = resolver(path)
    hear_retries(fs, retried)
    not_files: list[tuple[str, str]] = []
    try:
        found = list_objects(fs, root, path, window, not_files)
    except FileNotFoundError:
        raise UsageError(
            f"cannot read {path}: no such bucket, prefix or folder",
            hint="check the path (nothing was read or sent)",
        ) from None
    except Exception as error:  # the store's own errors: credentials, network, denied
        raise listing_refused(path, error) from None
    return fs, root, found, not_files


def _given_before(path: str, again: list[StoredObject], earlier: str, left: int) -> str:
    """What to say of the objects of `path` given before it, through `earlier` (`again`), `left`
    others read."""
    if not left:
        return f"{path} was given before, through {earlier}: read once, there"
    some = f"1 object of {path} was" if len(again) == 1 else f"{len(again)} objects of {path} were"
    return f"{some} given before, through {earlier} (e.g. {again[0].name}): each read once, there"


def _key(path: str) -> Key:
    """A local file given by its path as `given` holds it: its `identity`, so that given also
    through a link to it or to its folder, a hard link or a bind mount, it is one input (read
    twice, its failed events were tried twice); else (it cannot be read) its real name."""
    try:
        key = identity(os.stat(path))
    except OSError:
        key = None
    return source_name(os.path.realpath(path)) if key is None else key


def _keys(path: str, root: str) -> Callable[[StoredObject], Key]:
    """The key `given` holds for each object listed from `path` (its store's `root`): a URL's
    `ledger_name`, a folder's file's `identity` from its listing's stat, else (gone, a broken
    link) its real name, its folder's links followed once (not a realpath a file: 5,000 of them
    took 67 ms, more than their listing)."""
    if url_scheme(path) is not None:
        return ledger_name
    real = os.path.realpath(root)

    def key(stored: StoredObject) -> Key:
        if stored.identity is not None:
            return stored.identity
        inside = stored.path.startswith(root)
        return source_name(real + stored.path[len(root) :]) if inside else ledger_name(stored)

    return key


NULL_DEVICE = os.stat(os.devnull).st_rdev


def require_readable(paths: Sequence[str]) -> None:
    """Every input file opens: a mistyped path is a usage error before anything is read or sent,
    not a phantom failed event (with a dead letter holding no event) after the other files were
    replayed. A file that goes away during the run is still a failed item (`EventReader`)."""
    for path in paths:
        if path == STDIN and sys.stdin is None:  # `rpd send - <&-`
            raise stdin_closed("pipe the events in, or give their files (nothing was read or sent)")
        if path == STDIN or url_scheme(path) is not None:
            continue  # a bucket URL is listed before anything is read (EventReader)
        try:
            found = os.stat(path)
            mode = found.st_mode
            if stat.S_ISDIR(mode):  # a backup folder: it must list
                os.listdir(path)
                continue
            # A regular file is opened to see that it can be read. A named pipe is not: that
            # open would be the reader its writer waits for, and closing it would lose the data.
            if stat.S_ISREG(mode):
                with open(path, "rb", buffering=0):
                    pass
            elif (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and found.st_rdev != NULL_DEVICE:
                # /dev/zero would never end; /dev/null reads as empty, as `- < /dev/null` does.
                raise UsageError(
                    f"cannot read {path}: it is a device, not a file of events",
                    hint="give files, folders or bucket URLs, or - for standard input "
                    "(nothing was read or sent)",
                )
        except OSError as exc:
            scheme = URL.match(path)
            if scheme is not None and isinstance(exc, FileNotFoundError):  # https://, ftp://
                raise UsageError(
                    f"cannot read {path}: rpd reads files, folders and bucket URLs (s3://, "
                    f"gs://, az://, abfs://), not {scheme.group(0)} URLs",
                    hint="download it first, then give the file (nothing was read or sent)",
                ) from None
            if isinstance(exc, FileNotFoundError) and any(c in path for c in "*?["):
                # The shell gives a pattern that matches no file as it is: say that, not the
                # path, which the user never typed as one.
                raise UsageError(
                    f"cannot read {path}: no file matches this pattern",
                    hint="check the folder and the pattern (nothing was read or sent)",
                ) from None
            meant = _meant(path) if isinstance(exc, FileNotFoundError) else ""
            raise UsageError(
                f"cannot read {path}: {exc.strerror or exc}",
                hint=f"did you mean {meant}? (nothing was read or sent)"
                if meant
                else "check the path (nothing was read or sent)",
            ) from None


NEIGHBOURS = 1000  # the names beside a missing file looked at for the one meant: a backup
# folder may hold many thousands, and this is said before anything is read
# How alike a name must be to be hinted: names of one folder share their extension, so
# config keys' 0.5 would take failed.ndjson for events.ndjson (0.62); a typo is above 0.9.
ALIKE = 0.8


def _meant(path: str) -> str:
    """The file beside a missing `path` whose name is nearest to its own (a typo: events.ndjosn
    beside events.ndjson), as `path` would name it; "" when none is near."""
    folder, name = os.path.split(path)
    try:
        with os.scandir(folder or ".") as entries:
            names = [entry.name for entry, _ in zip(entries, range(NEIGHBOURS), strict=False)]
    except OSError:
        return ""
    near = closest(name, names, ALIKE)
    return os.path.join(folder, near) if near else ""


def read_once(paths: Sequence[str]) -> bool:
    """Whether an input can be read only once: standard input, or a named pipe (`<(zcat ...)`
    too). Then there is no first pass over the input (its aliases, the identities to resolve),
    which would consume what the run itself is to read."""
    for path in paths:
        if path == STDIN:
            return True
        if url_scheme(path) is None:
            try:
                if stat.S_ISFIFO(os.stat(path).st_mode):
                    return True
            except OSError:  # require_readable said what cannot be read
                continue
    return False


def _read_stream(
    source: _RawSource, name: str, cap: int, mentioning: tuple[bytes, ...] = ()
) -> Iterator[Event]:
    """The items of one stream: a JSON document when it starts with `[` or parses as one whole,
    else NDJSON line by line. No line or document larger than `cap` bytes is held in memory.
    `mentioning`: only the NDJSON lines that hold one of these words, compared lower-cased, are
    read (a pass that wants some events only, e.g. `ALIAS_MENTIONS`), found a block at a time
    (`_mentioning`), the others passed over unparsed."""
    number = 0  # the last physical line read, so a read error can say where it happened
    try:
        stream: io.BufferedIOBase = io.BufferedReader(source, BUFFER_SIZE)
        if source.head(len(GZIP_MAGIC)) == GZIP_MAGIC:
            # Read directly, not behind another buffer: a buffer's large reads would drop the
            # lines decompressed just before a truncated or corrupt part.
            unzipped = gzip.GzipFile(fileobj=stream, mode="rb")
            stream, head = unzipped, unzipped.peek(WIDE_HEAD)[:WIDE_HEAD]
        else:
            source.plain = True  # lines are the stored bytes: count them as they are handed out
            head = source.head(WIDE_HEAD)
        encoding = _wide(head)
        if encoding is not None:  # read as UTF-8; progress by the bytes stored, as for gzip
            source.plain = False
            stream = io.BufferedReader(_Utf8(stream, encoding), BUFFER_SIZE)
        # A line may end in \r\n: two bytes past the cap tell an oversized line from a full one.
        readline, limit = stream.readline, cap + 2
        while True:  # to the first non-blank line, which decides the layout
            first = readline(limit)
            if not first:
                return
            number += 1
            source.consumed += len(first)
            if first.startswith(BOM):
                first = first[len(BOM) :]
            if first.strip() or _oversized(first, cap):  # too large: a failed item, blank or not
                break
        held: list[tuple[int, bytes | None]] = [(number, first)]
        # Values pretty-printed one after another (`jq .`), or what may be one document over the
        # cap: each line not JSON fails with this reason (one for all, said in the report).
        spread: str | None = None
        cut = False
        if _oversized(first, cap):
            _skip_line(first, readline, source)
            if first.lstrip().startswith(b"["):
                yield _unread(name, _too_large("JSON document", cap))
                return
            held = [(number, None)]
        elif first.lstrip().startswith(b"[") and not (
            _decodes(first) and _value_follows(held, readline, limit, cap, source)
        ):
            rest = stream.read(cap + 1 - len(first))
            source.consumed += len(rest)
            if len(first) + len(rest) > cap:
                yield _unread(name, _too_large("JSON document", cap))
                return
            yield from _document(first + rest, name)
            return
        elif not _decodes(first):
            # NDJSON with a broken first line, or a document spread over lines: a document only
            # if the whole parses as one (held up to the cap), else every line is read as a line.
            size = len(first)
            while size <= cap:
                line = readline(limit)
                if not line:
                    data = b"".join(line for _, line in held if line is not None)
                    try:
                        value = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        spread = SPREAD if _one_after_another(data) else None
                        break
                    yield from _document_items(value, name)
                    return
                number += 1
                source.consumed += len(line)
                size += len(line)
                if _oversized(line, cap):
                    _skip_line(line, readline, source)
                    held.append((number, None))
                else:
                    held.append((number, line))
            else:  # past the cap, not tried whole: a document spread over lines, if none decodes
                # (a higher --max-item-bytes reads its events: its object is not finished)
                cut = not any(line is not None and _decodes(line) for _, line in held[1:])
                spread = _cut(cap) if cut else None
        number = held[-1][0]
        for held_number, held_line in held:
            yield from _line(name, held_number, held_line, cap, spread, lasting=not cut)
            cut = False
        del held
        if mentioning:
            yield from _mentioning(stream, source, name, number, cap, mentioning)
            return
        loads = orjson.loads
        # Whether the last line held a wrapper (or no event): the next one is unwrapped first, not
        # made an Event first (a file's lines are of one shape: no exception for each of them).
        wrapped = False
        while line := readline(limit):
            number += 1
            size = len(line)
            source.consumed += size
            if size > cap and _oversized(line, cap):
                _skip_line(line, readline, source)
                yield from _line(name, number, None, cap)
                continue
            try:
                value = loads(line)
                if not wrapped:
                    item = parse_event(value, f"{name}:{number}")  # the common case, a bare event
            except orjson.JSONDecodeError:
                yield from _line(name, number, line, cap, spread)
                continue
            except EventError:  # a wrapper, or a value that is not an event: unwrap says why
                wrapped = True
            if wrapped:
                yield from unwrap(value, f"{name}:{number}")
                wrapped = type(value) is not dict or "type" not in value
            else:
                yield item
    except READ_ERRORS as exc:
        yield _unread(f"{name}:{number + 1}", _read_error(exc))


# The words a line holding an alias event holds: its type in any case, or a JSON escape (which
# may spell it). A first pass that reads only the input's aliases parses no other line.
ALIAS_MENTIONS = (b"alias", b"\\u")


def _mentioning(
    stream: io.BufferedIOBase,
    source: _RawSource,
    name: str,
    number: int,
    cap: int,
    words: tuple[bytes, ...],
) -> Iterator[Event]:
    """The items of the NDJSON lines after line `number` that hold one of `words` (lower case;
    each block compared lower-cased), in order: the bytes are searched a block at a time, and
    only those lines are parsed. A line over `cap` is passed over (the main pass tells of it).
    A word whose first byte has no case (`\\u`) is looked for by that byte in the block itself
    (a one-byte search is memchr's, several times cheaper), then in the rest of its line."""
    rest, skipping, loads = b"", False, orjson.loads
    while chunk := stream.read(SCAN_SIZE):
        source.consumed += len(chunk)
        block, begin = rest + chunk, 0  # its lines in full: from `begin` to `end`
        if skipping:  # the end of a line over the cap
            begin = block.find(b"\n") + 1
            if not begin:
                rest = b""
                continue
            number, skipping = number + 1, False
        end = block.rfind(b"\n", begin) + 1 or begin
        rest = block[end:]
        if len(rest) > cap + 2:
            rest, skipping = b"", True
        lower = block.lower()
        ends: dict[int, int] = {}  # where each line holding a word starts: where it ends
        for word in words:
            cased = word[:1].isalpha()
            scan, probe = (lower, word) if cased else (block, word[:1])
            at = scan.find(probe, begin, end)
            while at >= 0:
                stop = block.find(b"\n", at) + 1  # each line from `begin` to `end` ends in one
                if cased or (at := lower.find(word, at, stop)) >= 0:
                    ends[block.rfind(b"\n", 0, at) + 1] = stop
                at = scan.find(probe, stop, end)
        # Where each line from `begin` on starts, `begin` first (then `end`, and the end of `rest`
        # when it holds a part of a line): a line's number is `number` and how many start at or
        # before it. Lines found by memchr (BytesIO's readline) cost a third of `count`'s byte
        # loop over the block.
        lines = io.BytesIO(block)
        lines.seek(begin)
        starts = list(accumulate(map(len, lines), initial=begin))
        for start in sorted(ends):
            line = block[start : ends[start]]
            if len(line) > cap and _oversized(line, cap):
                continue
            line_number = number + bisect_right(starts, start)
            # A bare event made at once, as the main loop does; anything else as `_line` reads it.
            try:
                item = parse_event(loads(line), f"{name}:{line_number}")
            except (orjson.JSONDecodeError, EventError):
                yield from _line(name, line_number, line, cap)
                continue
            yield item
        number += bisect_right(starts, end) - 1
    if any(word in rest.lower() for word in words) and not _oversized(rest, cap):
        yield from _line(name, number + 1, rest, cap)


def _line(
    name: str,
    number: int,
    line: bytes | None,
    cap: int,
    spread: str | None = None,
    *,
    lasting: bool = True,
) -> Iterator[Event]:
    """The items of one NDJSON line (None: it was larger than `cap`); a blank line has none.
    `spread`: the reason a line not JSON fails with when the file's lines are parts of values
    spread over them (`SPREAD`, `_cut`); `lasting`: whether the line, not JSON, fails whatever
    the config (core/events.py `NoEvent`)."""
    source = f"{name}:{number}"
    if line is None:
        yield _unread(source, _too_large("line", cap))
        return
    if line.startswith(BOM):  # files joined with `cat` carry a BOM at the start of a line
        line = line[len(BOM) :]
    if not line.strip():
        return
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        yield _bad_line(source, line, exc, spread, lasting)
        return
    yield from unwrap(value, source)


def _oversized(line: bytes, cap: int) -> bool:
    return len(line) > cap and len(line.rstrip(b"\r\n")) > cap


def _skip_line(head: bytes, readline: Callable[[int], bytes], source: _RawSource) -> None:
    """Read past the rest of a line whose `head` was read, a chunk at a time (a stream with no
    newline at all, such as /dev/zero, is never held in memory)."""
    chunk = head
    while chunk and not chunk.endswith(b"\n"):
        chunk = readline(SKIP_CHUNK)
        source.consumed += len(chunk)


def _unread(source: str, why: str) -> Event:
    """The failed item of input that could not be read (`why`: an error reading it, a size over
    the cap): not lasting, its object is read again by a rerun, unlike a line that is no event."""
    return invalid(source, None, why, "read", lasting=False)


def _too_large(what: str, cap: int) -> str:
    """Why an item over the cap failed: none of it is held, so its dead letter has no event, and
    the file is what to send again (the dead letter, sent after raising the cap, failed again)."""
    return (
        f"{what} larger than --max-item-bytes ({describe_size(cap)}): "
        "split it into smaller lines or raise --max-item-bytes, "
        "then send its file again (a dead letter cannot hold it)"
    )


def describe_size(size: int) -> str:
    """A byte count as people write it: 32 MiB, 512 KiB, else bytes."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size:,} bytes"


def _value_follows(
    held: list[tuple[int, bytes | None]],
    readline: Callable[[int], bytes],
    limit: int,
    cap: int,
    source: _RawSource,
) -> bool:
    """Whether a non-blank line follows the `held` ones, read into `held` up to it: a first line
    that is a whole value, a list, followed by another is NDJSON whose first line is a list (a
    stray line fails alone), not one JSON document (whose failure would take every event after
    it, unsendable, into one failed item)."""
    while line := readline(limit):
        source.consumed += len(line)
        number = held[-1][0] + 1
        if _oversized(line, cap):
            _skip_line(line, readline, source)
            held.append((number, None))
            return True
        held.append((number, line))
        if line.strip():
            return True
    return False


def _decodes(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _document(data: bytes, name: str) -> Iterator[Event]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield invalid(name, None, _json_error(data, exc, whole=True), "read")
        return
    yield from _document_items(value, name)


def _document_items(value: Any, name: str) -> Iterator[Event]:
    if isinstance(value, list):
        for number, element in enumerate(value, 1):
            yield from unwrap(element, f"{name}#{number}")
    else:
        yield from unwrap(value, name)


def _unreadable(error: UnicodeError) -> tuple[str, int]:
    r"""A line's bytes that are not UTF-8 as `\xff` escapes, not U+FFFD: its dead letter, sent
    again, fails again rather than sending a value the input never held. No JSON holds `\x`;
    after an odd run of backslashes (`\\xff` would be an escaped backslash and "xff"), a SUB
    control character goes first, which no JSON holds either.

    Called at the line's first bad byte, it escapes the rest of the line in one go (a binary
    file has a bad byte in every few: one call for each took 2 s for 4 MB): decoded with
    surrogateescape, a SUB goes after each odd run of backslashes before a bad byte's
    surrogate, and backslashreplace, decoding again, escapes the bad bytes: the same bytes fail
    as when decoded here, the SUBs being whole characters put between two."""
    assert isinstance(error, UnicodeDecodeError)
    data, start = error.object, error.start
    before = start
    while before and data[before - 1] == 0x5C:  # the backslashes just before
        before -= 1
    rest = data[start:].decode("utf-8", "surrogateescape")  # starts with a bad byte's surrogate
    marked = _ODD_BACKSLASHES.sub("\\g<0>\x1a", rest).encode("utf-8", "surrogateescape")
    escaped = marked.decode("utf-8", "backslashreplace")
    return ("\x1a" + escaped if (start - before) % 2 else escaped), len(data)


# An odd run of backslashes (none before it) followed by the surrogate of a bad byte.
_ODD_BACKSLASHES = re.compile(r"(?<!\\)\\(?:\\\\)*(?=[\udc80-\udcff])")


UNREADABLE = "rpd-unreadable"
codecs.register_error(UNREADABLE, _unreadable)


def _bad_line(
    source: str, line: bytes, exc: orjson.JSONDecodeError, spread: str | None, lasting: bool
) -> Event:
    content = line.rstrip(b"\r\n")
    try:
        orjson.loads(content)  # again without the line ending, which orjson counts as a new line
    except orjson.JSONDecodeError as again:
        exc = again
    text = content.decode("utf-8", errors=UNREADABLE)
    reason = _json_error(content, exc, whole=False)
    if spread and reason.startswith("not valid JSON"):  # one reason for all, said in the report
        reason = spread
    return invalid(source, text, reason, "read", lasting=lasting)


SPREAD = (
    "not valid JSON: part of values spread over lines, one after another (as `jq .` prints "
    "them): give one value a line (`jq -c`) or one JSON array"
)


def _cut(cap: int) -> str:
    """Why each line fails of a file whose first line is not JSON, held to the cap, no line after
    it JSON: one document spread over lines (`jq .` of a batch body), not tried whole past it."""
    return (
        "not valid JSON: the file may be one document spread over lines larger than "
        f"--max-item-bytes ({describe_size(cap)}), not read whole: raise --max-item-bytes, "
        "then send its file again"
    )


def _one_after_another(data: bytes) -> bool:
    """Whether `data` (a whole file, within the cap) is two or more JSON values one after
    another: each of its lines then fails as a part of one, not for a mistake of its own."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    decode, start, count, spread = json.JSONDecoder().raw_decode, 0, 0, False
    while start < len(text):
        try:
            _, end = decode(text, start)
            orjson.loads(text[start:end])  # as strict as rpd's reading (no lone surrogates)
        except (ValueError, RecursionError):  # Python's decoder recurses: ~1,000 levels
            return False
        count += 1
        spread = spread or "\n" in text[start:end]
        start = end
        while start < len(text) and text[start].isspace():
            start += 1
    return count > 1 and spread


def _json_error(data: bytes, exc: orjson.JSONDecodeError, *, whole: bool) -> str:
    """A one-line reason; the position is a column in a line, a line and column in a document."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        # orjson reports any bad UTF-8 as "surrogates not allowed" at the start: find the byte.
        line = data.count(b"\n", 0, bad.start) + 1
        column = bad.start - (data.rfind(b"\n", 0, bad.start) + 1) + 1
        where = f"line {line} column {column}" if whole else f"column {column}"
        return f"not valid UTF-8: byte 0x{data[bad.start]:02x} at {where}"
    where = f"line {exc.lineno} column {exc.colno}" if whole else f"column {exc.colno}"
    return f"not valid JSON: {exc.msg} at {where}"


def listing_refused(path: str, error: Exception) -> UsageError | ReadingRefused:
    """`path` could not be listed: a store's refusal names its credentials; a local folder's (a
    subfolder rpd may not open) names the folder refused and its permissions (it was 'access
    denied', and the hint asked for a URL's and a provider's credentials); a store that could
    not be reached stops the command early (exit 4), as Pipedrive unreachable does."""
    if unreachable(error):  # nothing wrong with the URL or the credentials: a rerun may do
        return ReadingRefused(
            f"cannot list {path}: the store cannot be reached ({listing_error(error)})",
            hint=f"{REACH} (nothing was read or sent)",
        )
    if url_scheme(path) is None and isinstance(error, OSError):
        refused = f" ({error.filename})" if error.filename and error.filename != path else ""
        return UsageError(
            f"cannot list {path}: {error.strerror or error}{refused}",
            hint="check the folder's permissions (nothing was read or sent)",
        )
    todo = (
        error.hint
        if isinstance(error, CredentialsRefused | AccessRefused)
        else "check the URL and the provider's credentials"
    )
    return UsageError(
        f"cannot list {path}: {listing_error(error)}", hint=f"{todo} (nothing was read or sent)"
    )


def listing_error(error: Exception) -> str:
    """Why a store could not be listed, in one line (no credentials are ever in it): refused
    credentials, or GCS's or Azure's 403, as an object's read says them (gcsfs's 403 was its API
    path and Google's words run together: `Forbidden: b/BUCKET/o ...`)."""
    refused = refused_credentials(error) or forbidden(error)
    if refused is not None:
        return refused
    if isinstance(error, PermissionError):
        return "access denied"
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, OSError) else f"{type(error).__name__}: {text}"


TRAILING_GARBAGE = (
    "corrupt gzip stream: what follows its last whole member is not gzip (trailing garbage, or a "
    "member whose start is damaged); the lines before were read"
)


TRUNCATED = (
    "truncated gzip stream: it ends mid-way (a copy, download or upload cut short); the lines "
    "before were read: replace it with a whole copy, then rerun"
)


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, ObjectReadError):
        return f"cannot read object: {exc}"
    if isinstance(exc, EOFError):  # not Python's words, which say neither why nor what to do
        return TRUNCATED
    if isinstance(exc, gzip.BadGzipFile) and str(exc).startswith("Not a gzipped file"):
        # Only after a whole member (the stream began with gzip's magic): Python's words, with
        # the next bytes' repr, read as if the file were no gzip at all.
        return TRAILING_GARBAGE
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip stream: {exc}"
    assert isinstance(exc, OSError)
    return f"cannot read file: {exc.strerror or exc}"


# Byte order marks of the encodings read as UTF-8 (`_Utf8`); each as long as a code unit.
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
WIDE_HEAD = 8  # a UTF-32 BOM and the character after it


def _wide(head: bytes) -> str | None:
    """The encoding of a stream in UTF-16 or UTF-32, by its byte order mark and the character
    after it, which must be ASCII in that encoding (JSON starts with `{`, `[` or a blank), or
    none (an empty file): Windows PowerShell's `>` and Out-File, and Notepad's "Unicode", write
    UTF-16. Bytes that only start as a mark does (a line of binary) are read as UTF-8 lines."""
    for bom, encoding in WIDE_BOMS:
        if head.startswith(bom):
            first = head[len(bom) : 2 * len(bom)]
            if not first:
                return encoding
            try:
                return encoding if first.decode(encoding).isascii() else None
            except UnicodeDecodeError:  # a part of a character: the stream is shorter than one
                return None
    return None


class _Utf8(io.RawIOBase):
    """A UTF-16 or UTF-32 stream (with its byte order mark) as UTF-8 bytes. The lines decoded
    before a read error (a truncated gzip) or text that is not the encoding (an odd byte at the
    end) are handed out first, then the error is raised, as an OSError for the latter; a lone
    surrogate passes through, to fail as the line's bad UTF-8."""

    def __init__(self, inner: io.BufferedIOBase, encoding: str) -> None:
        super().__init__()
        self._read = inner.read
        self._decode = codecs.getincrementaldecoder(encoding)("surrogatepass").decode
        self._encoding = encoding
        self._pending = b""
        self._error: BaseException | None = None
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        while not self._pending:
            if self._error is not None:
                raise self._error
            if self._ended:
                return 0
            try:
                chunk = self._read(BUFFER_SIZE)
                text = self._decode(chunk, not chunk)
            except UnicodeDecodeError as exc:
                self._error = OSError(f"not valid {self._encoding.upper()}: {exc.reason}")
                continue
            except READ_ERRORS as exc:
                self._error = exc
                continue
            self._ended = not chunk
            self._pending = text.encode("utf-8", "surrogatepass")
        view = memoryview(buffer).cast("B")
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _strict(items: Iterable[Event]) -> Iterator[Event]:
    """Raise on the first item that is not an event (all the reader decides are failures); a
    dead letter's says where it was first read too: its line here is the record, JSON."""
    for item in items:
        if item.decided is not None:
            where = item.source
            if (origin := getattr(item, "origin", None)) is not None and origin != where:
                where += f" (first read at {origin})"
            raise UsageError(f"{where}: {item.decided.reason}", hint=STRICT_HINT)
        yield item


def _file_size(path: str) -> int:
    """The size of a regular file; 0 for what cannot be read (it yields an error item instead)."""
    try:
        status = os.stat(path)
    except OSError:
        return 0
    return status.st_size if stat.S_ISREG(status.st_mode) else 0


class _RawSource(io.RawIOBase):
    """A raw stream over a file or stdin that counts the bytes it reads and can peek at its head.

    Peeking here rather than with `BufferedReader.peek` matters for pipes: a short first read
    would otherwise hide the gzip magic.
    """

    __slots__ = ("_inner", "_pending", "_read", "consumed", "count", "plain")

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self._read = getattr(inner, "read1", inner.read)
        self._pending = b""
        self.count = 0
        self.consumed = 0  # bytes of lines handed out
        self.plain = False  # they are the file's bytes (not gzip): progress counts them

    def readable(self) -> bool:
        return True

    def head(self, size: int) -> bytes:
        while len(self._pending) < size:
            chunk = self._inner.read(size - len(self._pending))
            if not chunk:
                break
            self._pending += chunk
            self.count += len(chunk)
        return self._pending[:size]

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._pending:
            size = min(len(view), len(self._pending))
            view[:size] = self._pending[:size]
            self._pending = self._pending[size:]
            return size
        # read1 where the stream is buffered: what is available now, not a full buffer's worth
        # (a pipe whose producer pauses must still deliver the lines already written).
        data = self._read(len(view))
        view[: len(data)] = data
        self.count += len(data)
        return len(data)
