"""Reading input files into raw items (SPEC 2): gzip and layout are sniffed, never trusted by name.

Each path (or `-` for stdin) is opened in binary. Gzip is recognised by its magic bytes. The
decompressed content is then NDJSON (streamed line by line, memory stays flat) or one JSON
document (loaded whole), decided from its first non-blank lines:
- the first non-blank character is `[`: a JSON array document;
- the first non-blank line is a complete JSON value: NDJSON (a one-line object file is the same
  either way);
- otherwise the second non-blank line decides: a complete JSON object starting in the first
  column means NDJSON whose first line is broken; anything else (a pretty-printed object goes on
  with `"key": ...`, or with an indented element) means one JSON document, such as an event or a
  `{"batch": [...]}` body spread over lines. A file of one broken line is NDJSON.

Sources: `FILE:LINE` (1-based physical lines), `FILE:LINE#N` for the N-th event of a batch on a
line, `FILE#N` for the N-th element of an array or of a whole-file batch, `FILE` for a whole-file
single event; stdin is named `-`. Bad input never stops the run: each bad line, value, file or
stream becomes one `RawItem` with a one-line `error`. With `strict`, the first such item, or the
first value `parse_event` refuses, raises `UsageError` instead.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, BinaryIO

import orjson

from rudder_pipedrive_cli.core.envelopes import RawItem, unwrap
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.events import EventError, parse_event

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
BUFFER_SIZE = 1 << 18
STRICT_HINT = "fix the input or run without --strict to dead-letter bad lines and continue"

# What reading a damaged file or stream raises: truncated gzip (EOFError), corrupt gzip
# (gzip.BadGzipFile is an OSError, zlib.error), and I/O errors.
READ_ERRORS = (EOFError, OSError, zlib.error)


class EventReader:
    """Iterate the raw items of `paths` in order; `bytes_read` / `total_bytes` drive progress."""

    def __init__(
        self, paths: Sequence[str], *, strict: bool = False, stdin: BinaryIO | None = None
    ) -> None:
        self.paths = tuple(paths)
        self.strict = strict
        self._stdin = stdin
        self._finished_bytes = 0
        self._current: _RawSource | None = None
        self.total_bytes: int | None = (
            None if STDIN in self.paths else sum(_file_size(path) for path in self.paths)
        )

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far across files, as stored: the lines handed out of a plain file
        (so progress moves event by event, not a read buffer at a time), the compressed bytes
        read of a gzip file."""
        source = self._current
        if source is None:
            return self._finished_bytes
        consumed = source.consumed if source.consumed is not None else source.count
        return self._finished_bytes + consumed

    def __iter__(self) -> Iterator[RawItem]:
        for path in self.paths:
            items = self._read_path(path)
            yield from _strict(items) if self.strict else items

    def _read_path(self, path: str) -> Iterator[RawItem]:
        try:
            inner = self._open(path)
        except OSError as exc:
            yield RawItem(source=path, error=f"cannot read file: {exc.strerror or exc}")
            return
        source = self._current = _RawSource(inner)
        try:
            yield from _read_stream(source, path)
        finally:
            self._finished_bytes += source.count
            self._current = None
            if path != STDIN:
                inner.close()

    def _open(self, path: str) -> BinaryIO:
        if path == STDIN:
            if self._stdin is not None:
                return self._stdin
            # The unbuffered file under stdin: a read returns what the producer has written so
            # far, and no buffer lock is held by a reader thread waiting at shutdown.
            return getattr(sys.stdin.buffer, "raw", sys.stdin.buffer)
        return open(path, "rb", buffering=0)


def require_readable(paths: Sequence[str]) -> None:
    """Every input file opens: a mistyped path is a usage error before anything is read or sent,
    not a phantom failed event (with a dead letter holding no event) after the other files were
    replayed. A file that goes away during the run is still a failed item (`_read_path`)."""
    for path in paths:
        if path == STDIN:
            continue
        try:
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            # A regular file is opened to see that it can be read. A named pipe is not: that
            # open would be the reader its writer waits for, and closing it would lose the data.
            if stat.S_ISREG(mode):
                with open(path, "rb", buffering=0):
                    pass
        except OSError as exc:
            raise UsageError(
                f"cannot read {path}: {exc.strerror or exc}",
                hint="check the path (nothing was read or sent)",
            ) from None


def _read_stream(source: _RawSource, name: str) -> Iterator[RawItem]:
    number = 0  # the last physical line read, so a read error can say where it happened
    try:
        stream: io.BufferedIOBase = io.BufferedReader(source, BUFFER_SIZE)
        if source.head(len(GZIP_MAGIC)) == GZIP_MAGIC:
            # Iterated directly, not behind another buffer: a buffer's large reads would drop the
            # lines decompressed just before a truncated or corrupt part.
            stream = gzip.GzipFile(fileobj=stream, mode="rb")
        else:
            source.consumed = 0  # lines are the stored bytes: count them as they are handed out
        lines = enumerate(stream, 1)
        consumed: list[bytes] = []
        content: list[tuple[int, bytes]] = []
        layout: str | None = None
        for number, line in lines:
            if number == 1 and line.startswith(BOM):
                line = line[len(BOM) :]
            consumed.append(line)
            source.advance(len(line))
            if line.isspace() or not line:
                continue
            content.append((number, line))
            layout = _layout(content)
            if layout is not None:
                break
        if not content:
            return
        if layout == "document":
            rest = stream.read()
            source.advance(len(rest))
            yield from _document(b"".join(consumed) + rest, name)
            return
        loads, sniffed = orjson.loads, content[-1][0]
        for number, line in chain(content, lines):
            if number > sniffed:  # the sniffed lines were counted above
                source.advance(len(line))
            try:
                value = loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.isspace():
                    yield _bad_line(f"{name}:{number}", line, exc)
                continue
            # The common case, a bare event, skips the general unwrapping.
            if type(value) is dict and type(value.get("type")) is str:
                yield RawItem(source=f"{name}:{number}", value=value)
            else:
                yield from unwrap(value, f"{name}:{number}")
    except READ_ERRORS as exc:
        yield RawItem(source=f"{name}:{number + 1}", error=_read_error(exc))


def _layout(content: list[tuple[int, bytes]]) -> str | None:
    """The layout the first non-blank lines show: document, ndjson, or None to read one more."""
    first = content[0][1]
    if first.lstrip().startswith(b"["):
        return "document"
    if _decodes(first):
        return "ndjson"
    if len(content) == 1:
        return None
    # An NDJSON line starts at its first column; a pretty-printed document indents what it nests
    # (`{"batch": [` then `  {"type": ...}` is one document, though its second line decodes).
    second = content[1][1]
    return "ndjson" if second.startswith(b"{") and _decodes(second) else "document"


def _decodes(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _document(data: bytes, name: str) -> Iterator[RawItem]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield RawItem(source=name, error=_json_error(data, exc, whole=True))
        return
    if isinstance(value, list):
        for number, element in enumerate(value, 1):
            yield from unwrap(element, f"{name}#{number}")
    else:
        yield from unwrap(value, name)


def _bad_line(source: str, line: bytes, exc: orjson.JSONDecodeError) -> RawItem:
    content = line.rstrip(b"\r\n")
    try:
        orjson.loads(content)  # again without the line ending, which orjson counts as a new line
    except orjson.JSONDecodeError as again:
        exc = again
    text = content.decode("utf-8", errors="replace")
    return RawItem(source=source, error=_json_error(content, exc, whole=False), text=text)


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


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return f"truncated gzip stream: {exc}"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip stream: {exc}"
    assert isinstance(exc, OSError)
    return f"cannot read file: {exc.strerror or exc}"


def _strict(items: Iterable[RawItem]) -> Iterator[RawItem]:
    """Raise on the first item that is not an event, including a value `parse_event` refuses."""
    for item in items:
        error = item.error
        if not error:
            try:
                parse_event(item.value, item.source)
            except EventError as exc:
                error = str(exc)
        if error:
            raise UsageError(f"{item.source}: {error}", hint=STRICT_HINT)
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

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self._read = getattr(inner, "read1", inner.read)
        self._pending = b""
        self.count = 0
        self.consumed: int | None = None  # bytes of lines handed out, for a plain file

    def advance(self, size: int) -> None:
        if self.consumed is not None:
            self.consumed += size

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
