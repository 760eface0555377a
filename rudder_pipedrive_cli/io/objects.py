"""Objects in a bucket (S3, GCS, Azure Blob, S3-compatible) or a local backup folder (SPEC 2).

One code path for every store, through fsspec's filesystem interface (`info`, `ls`, `find`,
`open`): S3 is rpd's own small client with those methods (io/s3.py, on the standard library:
s3fs's stack cost more memory to import than a whole local run), gcsfs and adlfs are optional
extras, and a local folder is fsspec's local filesystem. This module lists a PATH (only the day
folders the window can touch, see core/backups.py), and streams the chosen objects' bytes
in order on a thread of its own, a bounded number of chunks ahead of the reader: the next object
is being fetched while the current one is read and sent, and memory stays flat (nothing is
downloaded whole). A transient read error (timeout, 5xx, reset: an OSError that is not "missing"
or "denied") is retried with backoff: the object is opened and read again from its start, and
the bytes already handed out are skipped, so no event is read twice; the tries are counted
since the object last gave new bytes (a long read may be cut many times). A missing or unreadable
object is a failed item named by its URL; one that fails mid-way, a failed item at its line.

Resume: the reader counts the items each object gave and the outcomes that come back
(`item_done`); once an object is read to its end and every item of it ended sent, unchanged or
skipped, `on_finished(name, version)` records it (io/state.py), and a later run skips it unread.
An object with a failed item is not recorded: the rerun reads it again, and the journal skips
its events that were done. But for input that is no event whatever the config (a line not JSON,
not UTF-8, a value not an object: core/events.py `fails_again`), which would fail again: it
stays in the dead letters of the run that read it.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import re
import socket
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from rudder_pipedrive_cli.core.backups import StoredObject, Window, is_day_folder
from rudder_pipedrive_cli.core.errors import ReadingRefused, UsageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from fsspec import AbstractFileSystem

# URL scheme -> the extra that installs its fsspec implementation, and that package.
SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}
PACKAGES = {"gcs": "gcsfs", "azure": "adlfs"}  # S3 is io/s3.py, on the standard library
URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
CHUNK = 1 << 20  # one read from a store, and one entry of the read-ahead queue
READ_AHEAD = 8  # chunks fetched ahead of the reader, across object boundaries
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before each new try of a failed object
ETAG = "etag:"  # how a version that is an ETag begins (`_version`)
HEX_ETAG = re.compile(r"[0-9A-Fa-f]+(-[0-9]+)?")  # S3's: an MD5, or a multipart one's and -N
STOP_WAIT = 1.0  # seconds a stopped reader waits for the feed's read in progress to end
# Errors that no retry mends: the object is gone, not allowed, or not an object; and a folder's
# link loop (ELOOP, which has no class of its own).
PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)

Resolver = Callable[[str], "tuple[AbstractFileSystem, str]"]


def url_scheme(path: str) -> str | None:
    """The bucket scheme of `path` (`s3`, `gs`, `az`, ...), None for anything else."""
    match = URL.match(path)
    if match is None:
        return None
    scheme = match.group(1).lower()
    return scheme if scheme in SCHEMES else None


def is_object_path(path: str) -> bool:
    """A bucket URL or a local folder: read as objects, not as one file."""
    return url_scheme(path) is not None or (path != "-" and os.path.isdir(path))


def source_name(path: str) -> str:
    """`path` as its events' sources name it: a file name's bytes that are not UTF-8 (held as
    surrogates, which no JSON, SQLite or UTF-8 output can write) as `\\xNN`. A listed object
    is named so from the start (`StoredObject.name`): its sources, the ledger of finished
    objects and the state's record of it all hold one name the state can store."""
    try:
        path.encode()
    except UnicodeEncodeError:
        return os.fsencode(path).decode(errors="backslashreplace")
    return path


def resolve(path: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem of a bucket URL or local folder, and the path within it. Credentials and
    endpoints come from each provider's own environment and config (AWS_PROFILE,
    AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_CONNECTION_STRING, ...)."""
    scheme = url_scheme(path)
    if scheme is not None and not path.split("://", 1)[1].strip("/"):
        raise UsageError(
            f"cannot read {path}: it names no bucket",
            hint=f"give the bucket, and a prefix if you like: {scheme}://BUCKET/PREFIX/ "
            "(nothing was read or sent)",
        )
    if scheme is not None and SCHEMES[scheme] == "s3":  # neither fsspec nor botocore imported
        from rudder_pipedrive_cli.io.s3 import S3FileSystem

        return S3FileSystem.from_environment(), path.split("://", 1)[1].strip("/")
    import fsspec

    if scheme is None:  # `..`, `.` and `//` resolved: a folder's files have one name each
        local = fsspec.filesystem("file")
        return local, local._strip_protocol(os.path.abspath(path))
    extra = SCHEMES[scheme]
    try:
        # A new instance each time: fsspec's cache would keep an endpoint or credentials from
        # an earlier call in this process. No listings cache: it would keep every entry listed
        # (about 1.1 KB an object) for the life of the process, though each is listed once.
        fs, root = fsspec.core.url_to_fs(path, skip_instance_cache=True, use_listings_cache=False)
    except ImportError:
        raise UsageError(
            f"reading {scheme}:// needs rpd's optional {extra} extra ({PACKAGES[extra]})",
            hint=f"pip install 'rudder_pipedrive_cli[{extra}]'",
        ) from None
    return fs, root


def hear_retries(fs: AbstractFileSystem, retried: Callable[[], object] | None) -> None:
    """Hand `retried` to a store that tries its own calls again: io/s3.py's listings and HEADs
    (its `retried`), so that the report's store retries count them beside the feed's object
    reads. fsspec's stores (gcsfs, adlfs) retry inside their libraries, which tell no one."""
    if retried is not None and hasattr(fs, "retried"):
        fs.retried = retried


def list_objects(
    fs: AbstractFileSystem,
    root: str,
    display: str,
    window: Window,
    not_files: list[tuple[str, str]] | None = None,
) -> list[StoredObject]:
    """Every object under `root` the window can touch (day folders outside it are not listed),
    named `display` + its path below `root`. Hidden names (`.DS_Store`, `.sync`) are left out.
    A folder's entry that is no file (a named pipe, a device, a socket, or a link to one) is
    never opened (a pipe would wait for a writer, /dev/zero never end): it is left out, and
    `not_files` gets its name and what it is, for a warning."""
    root = root.rstrip("/")
    prefix = display.rstrip("/")

    def shown(entry: dict[str, Any]) -> str:
        name = entry["name"].rstrip("/")
        return source_name(prefix + name[len(root) :] if name.startswith(root) else name)

    def stored(entry: dict[str, Any]) -> StoredObject:
        name = entry["name"].rstrip("/")
        size, status = int(entry["size"]), _followed(entry)
        return StoredObject(
            name=shown(entry),
            path=name,
            size=size,
            version=_version(entry, status),
            identity=None if status is None else identity(status),
        )

    found: list[StoredObject] = []

    def add(entry: dict[str, Any]) -> None:
        # Stores and local regular files are "file"; what else a local folder holds is "other".
        kind = _not_a_file(entry["name"]) if entry["type"] == "other" else None
        if kind is None:
            found.append(stored(entry))
        elif not_files is not None:
            not_files.append((shown(entry), kind))

    def every(path: str, below: str) -> None:
        """Each object `fs.find(path)` lists whose name begins with `below`."""
        for entry in fs.find(path, detail=True).values():
            name = entry["name"]
            # A name ending in / is a folder's placeholder (S3's and GCS's consoles make them),
            # no object: opened without its slash, it is not found.
            if name.startswith(below) and not _hidden(name, path) and not name.endswith("/"):
                add(entry)

    def visit(path: str) -> None:
        if is_day_folder(path):
            if window.day_may_touch(path.rpartition("/")[2]):
                every(path, path)
            return
        for entry in fs.ls(path, detail=True):
            name = entry["name"].rstrip("/")
            if _hidden(name, path):
                continue
            if name == path:  # the folder itself, or (named PATH/) a folder below it whose name
                # is empty, keys holding // (a prefix set as rs/): no path names it by itself,
                # so all below it, unpruned by the window.
                if entry["type"] == "directory" and entry["name"] == path + "/":
                    every(path, path + "//")
            elif entry["type"] == "directory":
                visit(name)
            else:
                add(entry)

    info = fs.info(root)
    if info["type"] != "directory":  # a URL naming one object
        return [stored(info)]
    visit(root)
    return found


def _not_a_file(path: str) -> str | None:
    """What a local folder's entry that is not a regular file is (following a link), or None
    for one read as a file, or failing as one when read (a link to a file, a broken link)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # reading it fails, and says so, as a failed item
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):  # not followed: it may lead back up (a loop), or anywhere
        return "a link to a folder"
    return None


def _version(entry: dict[str, Any], status: os.stat_result | None) -> str:
    """What tells one version of an object from another: its ETag, else its size, and a local
    file's mtime too (its `_followed` `status`), in nanoseconds, as make and rsync tell a
    rewritten file: one rewritten with the same size (a corrected backup file) is another
    version. Not a hash of its content: that would read every file of the folder at each run to
    skip them unread."""
    tag = entry.get("ETag") or entry.get("etag")
    if tag:
        return ETAG + _etag_text(str(tag))
    mtime = "" if status is None else f" mtime_ns:{status.st_mtime_ns}"
    return f"size:{entry['size']}{mtime}"


def _followed(entry: dict[str, Any]) -> os.stat_result | None:
    """A folder's file's status, links followed (one stat a file, for its version and its
    identity); None for a store's object, or a file gone (reading it fails, and says so).
    Only fsspec's local filesystem gives an entry its inode; its own `mtime` is a float (not
    every nanosecond) and a link's, not its file's, as its `ino` is."""
    if "ino" not in entry:
        return None
    try:
        return os.stat(entry["name"])
    except OSError:
        return None


def identity(status: os.stat_result) -> tuple[int, int] | None:
    """A local file as one file, whatever names it (a link, a hard link, a bind mount): given
    twice through them, it is read once. None where the filesystem gives no inode (0: some
    FUSE and network mounts), whose files are told apart by name instead."""
    return (status.st_dev, status.st_ino) if status.st_ino else None


def _etag_text(tag: str) -> str:
    """An ETag as one version has one spelling of it, in a listing and in a GET alike: a proxy
    or an S3-compatible store may give it unquoted or quoted, weak (`W/`, a proxy that
    compressed it), its hex upper or lower case. Only a hex one (S3's MD5, `-N` after a
    multipart one's) is lower-cased: other stores' (GCS's, Azure's) are case-sensitive."""
    text = tag.strip()
    text = text.removeprefix("W/").strip('"')
    return text.lower() if HEX_ETAG.fullmatch(text) else text


def _hidden(name: str, below: str) -> bool:
    return any(part.startswith(".") for part in name[len(below) :].split("/"))


class ObjectReadError(OSError):
    """An object that could not be read; the message says which and why."""


class ObjectChanged(ObjectReadError):
    """The object changed between two tries: reading on would mix two versions."""


RERUN = "then rerun the same command"  # how each stop's hint ends
AGAIN = "rerun to read it again"  # an object whose tries ran out
RENEW = f"renew the credentials, {RERUN}"  # what to do when they are refused


class CredentialsRefused(PermissionError):
    """The store refused the credentials themselves (an expired session token, a key it does
    not know), not one object: every object after it would fail alike; `hint` says what to do."""

    hint = RENEW

    def __init__(self, text: str, hint: str | None = None) -> None:
        super().__init__(text)
        if hint is not None:
            self.hint = hint


class AccessRefused(PermissionError):
    """A store's refusal of one object or prefix in its own words (S3's code and message, with
    no credential in them): no retry mends it, the object fails at once and the run reads on;
    `hint` says what to do (at a listing, its hint; of an object, after its words)."""

    def __init__(self, text: str, hint: str) -> None:
        super().__init__(text)
        self.hint = hint


class ClockSkewed(CredentialsRefused):
    """The store refused a request signed at a time too far from its own (S3: 15 minutes):
    this machine's clock is wrong, and every later request would be refused alike."""

    hint = f"set this machine's clock right (NTP), {RERUN}"


class StoreRefused(ObjectReadError):
    """What the feed says of refused credentials (`refused_credentials`), or of a store it could
    not connect to for an object's every try (`UNREACHABLE`): the object's stream stops the run
    there, at its opening or mid-way (`ObjectStream`), with `hint`."""

    def __init__(self, text: str, hint: str) -> None:
        super().__init__(text)
        self.hint = hint


REACH = f"check the network and the store's endpoint, {RERUN}"
# No connection made at all (refused, no route, none in time, a name that does not resolve):
# not the object's fault, so once its tries ran out every later object would fail alike.
UNREACHABLE = frozenset(
    (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT)
)

# Azure's error codes for credentials it does not take (a SAS past its expiry: 403).
AZURE_CREDENTIALS_GONE = frozenset(("AuthenticationFailed", "InvalidAuthenticationInfo"))


def refused_credentials(error: Exception) -> str | None:
    """What to say when the store refused the credentials themselves, not one object, else None:
    S3's `CredentialsRefused` (io/s3.py); gcsfs's HttpError 401 and google-auth's RefreshError;
    azure-core's ClientAuthenticationError, or an HttpResponseError of 401 or 403 whose code says
    so. Those two are optional extras, not imported here: their errors are known by class name.
    GCS's 403, and Azure's 403 of any other code, are no refusal of the credentials
    (`forbidden`)."""
    if isinstance(error, CredentialsRefused):
        return str(error)
    names = {kind.__name__ for kind in type(error).__mro__}
    if "RefreshError" in names:
        return "Google refused to refresh the credentials (RefreshError)"
    if "HttpError" in names and str(getattr(error, "code", "")) == "401":
        return "Google Cloud Storage refused the credentials (HTTP 401)"
    status = getattr(error, "status_code", None)
    code = _azure_code(error)
    if "ClientAuthenticationError" in names or (
        "HttpResponseError" in names and status in (401, 403) and code in AZURE_CREDENTIALS_GONE
    ):
        return f"Azure refused the credentials ({code or f'HTTP {status}'})"
    return None


def forbidden(error: Exception) -> str | None:
    """What to say of a store's 403 that denies one object, with the store's words (one line, at
    most 200 characters), else None: no retry mends it, so the object fails at once, as S3's
    AccessDenied does, and the run reads on.

    GCS: credentials it no longer takes answer 401 (`refused_credentials`); a 403 is a
    permission denied, often of one object (its ACL, a CMEK key the reader may not use). gcsfs
    raises it as a plain `OSError(f"Forbidden: {path}\n{message}")`, no errno, no code
    (gcsfs.retry.validate_response), and knows it again by those first words itself
    (GCSFileSystem._info). Only that plain OSError: a timeout, a reset (OSError's subclasses) or
    an OSError of other words is no 403, and stays transient.

    Azure: a 403 that azure-core raised (an HttpResponseError) for a permission the credentials
    lack, with Azure's code and the first line of its words. AuthorizationPermissionMismatch (a
    role with no data access), AuthorizationFailure (a firewall, a SAS without the permission),
    or any other code but those of credentials gone (`AZURE_CREDENTIALS_GONE`, which
    `refused_credentials` takes first).

    S3: io/s3.py's `AccessRefused`, in S3's words."""
    if isinstance(error, AccessRefused):
        return str(error)
    if type(error) is OSError and str(error).startswith("Forbidden"):
        said = " ".join(str(error).partition("\n")[2].split())[:200]
        return "Google Cloud Storage refused access (HTTP 403)" + (f": {said}" if said else "")
    names = {kind.__name__ for kind in type(error).__mro__}
    if "HttpResponseError" not in names or getattr(error, "status_code", None) != 403:
        return None
    code = _azure_code(error)
    said = " ".join(str(getattr(error, "message", None) or error).partition("\n")[0].split())
    return f"Azure refused access ({code or 'HTTP 403'})" + (f": {said[:200]}" if said else "")


def _azure_code(error: Exception) -> str | None:
    """An Azure HttpResponseError's error code (its answer's x-ms-error-code), if any."""
    code = getattr(error, "error_code", None)
    return getattr(code, "value", code)  # azure-storage's codes are an enum of str


_END = object()  # after an object's last chunk
DIGITS = "0123456789"


class Feed:
    """Fetches `objects` in order on its own thread, at most READ_AHEAD chunks ahead. It waits
    `sleep(seconds)` before each try again; by default, until then or until it is stopped."""

    def __init__(
        self,
        fs: AbstractFileSystem,
        objects: Sequence[StoredObject],
        *,
        sleep: Callable[[float], object] | None = None,
        chunk: int = CHUNK,
        retried: Callable[[], object] | None = None,
    ) -> None:
        self._fs = fs
        self._retried = retried  # hears each object read again (the run's Tally.store_retried)
        self._objects = tuple(objects)
        self._chunk = chunk
        self._queue: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=READ_AHEAD)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread = threading.Thread(target=self._run, name="rpd-object-feed", daemon=True)
        self._read_as: dict[int, str] = {}  # object -> the version its first open gave
        self.retries = 0

    def __enter__(self) -> Feed:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        # Not waited for beyond that: a read of a connection that stalled ends at the store's
        # read timeout (a minute). The feed, a daemon with nothing left to hand over, ends then.
        self._thread.join(STOP_WAIT)

    def stream(self, index: int) -> ObjectStream:
        return ObjectStream(self._queue, index, self._objects[index].name)

    def read_as(self, index: int) -> StoredObject:
        """The object as it was read, once its stream ended: the version its first open gave
        (an S3 GET's ETag: it may be newer than the listing's), else the listing's. A listing
        that gave no ETag gives its size (and mtime) again: what the rerun matches, so it stays."""
        stored = self._objects[index]
        version = self._read_as.pop(index, stored.version)
        if version == stored.version or not stored.version.startswith(ETAG):
            return stored
        return replace(stored, version=version)

    def _put(self, item: tuple[int, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _run(self) -> None:
        index = 0
        try:
            for index, stored in enumerate(self._objects):
                if self._stop.is_set() or not self._fetch(index, stored):
                    return
        except BaseException as error:  # never leave the reader waiting for a dead thread
            self._put((index, ObjectReadError(f"reading stopped: {type(error).__name__}")))
            raise

    def _fetch(self, index: int, stored: StoredObject) -> bool:
        """Put the object's chunks, then _END or the error that ended it; False when stopped."""
        path = stored.path
        handed_out = 0
        tries = 0  # failed in a row since the object last gave new bytes
        moved_on_at = 0  # bytes handed out when it last did
        version: str | None = None  # what its first open gave: what every later one must give
        while True:
            try:
                # No cache in the store's file ("none"): the queue is the read-ahead, and
                # fsspec's default ("readahead") would fetch a block more than each read and keep
                # it, another 1-2 MiB a file.
                with self._fs.open(path, "rb", block_size=self._chunk, cache_type="none") as handle:
                    if version is None:  # it may have changed since it was listed: asking
                        # `info` would cost a request an object, an S3 GET says it for nothing
                        version = self._read_as[index] = _given(handle) or stored.version
                    else:
                        self._check_unchanged(path, version, handle)
                        _skip(handle, handed_out, self._chunk)  # read again from the start
                    while chunk := handle.read(self._chunk):
                        if not self._put((index, chunk)):
                            return False
                        handed_out += len(chunk)
                return self._put((index, _END))
            except Exception as error:
                if self._stop.is_set():  # the reader is gone: no try again, no one to tell
                    return False
                refused = refused_credentials(error)
                if refused is not None:  # no later object can be read: stop here
                    hint = error.hint if isinstance(error, CredentialsRefused) else RENEW
                    self._put((index, StoreRefused(refused, hint)))
                    return False
                looped = isinstance(error, OSError) and error.errno == errno.ELOOP
                if isinstance(error, (*PERMANENT, ObjectChanged)) or forbidden(error) or looped:
                    return self._put((index, ObjectReadError(_why(error))))
                # Timeouts, resets, the store library's own errors (aiohttp's, Google's,
                # Azure's): a transient failure until the tries run out, unless the store says
                # it is not (io/s3.py's S3Error.transient).
                if not getattr(error, "transient", True):
                    return self._put((index, ObjectReadError(_why(error))))
                if handed_out > moved_on_at:  # a long read cut once more: a new fault
                    tries, moved_on_at = 0, handed_out
                if tries >= len(RETRY_DELAYS):
                    tried = f"{tries + 1} tries"
                    if unreachable(error):  # no later object can be read either: stop here
                        gone = f"the store cannot be reached ({_why(error)}, {tried})"
                        self._put((index, StoreRefused(gone, REACH)))
                        return False
                    # Not finished: the rerun reads it again, from its start.
                    failed = f"{_why(error)} ({tried}): {AGAIN}"
                    return self._put((index, ObjectReadError(failed)))
                self._sleep(RETRY_DELAYS[tries])
                if self._stop.is_set():  # stopped while it waited: no one to try again for
                    return False
                tries += 1
                self.retries += 1
                if self._retried is not None:
                    self._retried()

    def _check_unchanged(self, path: str, version: str, handle: Any) -> None:
        """The object read again is the version first read: the ETag its GET answered with
        (S3's objects carry it, io/s3.py), else the one its `info` gives."""
        if (_given(handle) or _version(info := self._fs.info(path), _followed(info))) != version:
            raise ObjectChanged("it changed while being read: rerun to read the new version")


def _given(handle: Any) -> str | None:
    """The version an open object gives: its GET's ETag, where the store's file carries one
    (S3's do, io/s3.py), else None."""
    tag = getattr(handle, "etag", None)
    return _version({"ETag": tag}, None) if tag else None


def unreachable(error: Exception) -> bool:
    """No connection was made at all (`UNREACHABLE`, or a name that does not resolve)."""
    return isinstance(error, socket.gaierror) or (
        isinstance(error, OSError) and error.errno in UNREACHABLE
    )


def _skip(handle: Any, size: int, chunk: int) -> None:
    while size > 0:
        data = handle.read(min(size, chunk))
        if not data:
            raise ObjectChanged("it is shorter than when it was first read")
        size -= len(data)


def _missing(error: FileNotFoundError) -> str:
    """Why a listed object cannot be opened: a folder's link to nothing (said with its target),
    else gone since it was listed (deleted or moved meanwhile: a lifecycle rule, a cleanup)."""
    name = error.filename
    if isinstance(name, str) and os.path.islink(name):
        target = source_name(os.readlink(name))  # a name that is not UTF-8 as `\\xNN`
        return f"it is a link to {target}, which does not exist: fix or remove the link, then rerun"
    return (
        "no such object: deleted or moved since it was listed (nothing of it was read; if it "
        "was moved, send it from its new place)"
    )


def _why(error: Exception) -> str:
    if isinstance(error, ObjectReadError):
        return str(error)
    if isinstance(error, AccessRefused):
        return f"{error}; {error.hint}"
    if (denied := forbidden(error)) is not None:
        return denied
    if isinstance(error, FileNotFoundError):
        return _missing(error)
    if isinstance(error, PermissionError):
        if error.filename is not None:  # the OS refused a local folder's file: no credentials
            return f"{error.strerror or 'Permission denied'} (check the file's permissions)"
        return "access denied (check the credentials)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ObjectStream(io.RawIOBase):
    """The bytes of one object, as the feed hands them over."""

    def __init__(self, chunks: queue.Queue[tuple[int, Any]], index: int, name: str) -> None:
        super().__init__()
        self._chunks = chunks
        self._index = index
        self._name = name
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def opening_error(self) -> ObjectReadError | None:
        """The error that kept the object from giving any byte, or None (the bytes wait)."""
        try:
            self._take()
        except ObjectReadError as error:
            return error
        return None

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._ended:
            self._take()
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _take(self) -> None:
        """The next chunk when none waits: past the end, nothing; a read error is raised once."""
        if self._pending or self._ended:
            return
        payload = self._next()
        if isinstance(payload, ObjectReadError):
            raise payload
        if not self._ended:
            self._pending = payload

    def drain(self) -> None:
        """Pass over what is left of the object (a reader that stopped early), so that the next
        object's chunks come next."""
        self._pending = b""
        while not self._ended:
            self._next()

    def _next(self) -> Any:
        """The next chunk, _END or the error that ended the object (which ends it here)."""
        index, payload = self._chunks.get()
        assert index == self._index, f"object {index} read as {self._index}"  # a bug if not
        if isinstance(payload, StoreRefused):  # the feed stopped: no later object can be read
            self._ended = True
            raise ReadingRefused(f"cannot read {self._name}: {payload}", hint=payload.hint)
        self._ended = payload is _END or isinstance(payload, ObjectReadError)
        return payload


@dataclass(slots=True, kw_only=True)
class _Tally:
    stored: StoredObject
    items: int = 0
    done: int = 0
    clean: bool = True  # no item of it failed
    read: bool = False  # read to its end


@dataclass(slots=True)
class ObjectLedger:
    """Which objects are read to their end with every item done: those `on_finished` records
    (every item ended well), and those `done` counts (any way: what progress shows)."""

    on_finished: Callable[[str, str], None] | None = None
    done: int = 0
    _active: dict[str, _Tally] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, stored: StoredObject) -> _Tally:
        tally = _Tally(stored=stored)
        with self._lock:
            self._active[stored.name] = tally
        return tally

    def read_to_end(self, tally: _Tally, read_as: StoredObject) -> None:
        """The object's stream ended; `read_as`: its version read, which `on_finished` records."""
        with self._lock:
            tally.stored = read_as
            tally.read = True
            self._settle(tally)

    def item_done(self, source: str, ok: bool) -> None:
        if not self._active:
            return
        with self._lock:
            # The object the source names, then a position in it (io/readers.py): `:LINE`, then
            # `#N` for each batch or array it is in (`a:3#2`, `a#4`), or nothing (a whole-file
            # event). `a:2:1` is an item of `a:2`, not of `a`. Looked up by name, a position
            # peeled off at a time: not a scan of every object in flight per event.
            fits: list[_Tally] = []
            name, marks = source, "#:"
            while True:
                if (tally := self._active.get(name)) is not None:
                    fits.append(tally)
                head = name.rstrip(DIGITS)
                if head == name or not head or head[-1] not in marks:
                    break
                marks = "" if head[-1] == ":" else marks  # nothing comes before `:LINE`
                name = head[:-1]
            if not fits:
                return
            # One that fits two (`a:2#1`: in the array `a:2`, or in line 2's batch of `a`) is
            # counted the longer name's, and neither is recorded finished: whose outcome it
            # tells is not known, so a rerun reads both again (the journal skips what was done).
            tally = fits[0]
            tally.done += 1
            tally.clean = tally.clean and ok and len(fits) == 1
            for other in fits[1:]:
                other.clean = False
            self._settle(tally)

    def _settle(self, tally: _Tally) -> None:
        if tally.read and tally.done >= tally.items:
            del self._active[tally.stored.name]
            self.done += 1
            if tally.clean and self.on_finished is not None:
                self.on_finished(ledger_name(tally.stored), tally.stored.version)


def unfinished(
    objects: list[StoredObject], finished: Callable[[str, str], bool] | None
) -> list[StoredObject]:
    """The objects an earlier run did not finish (all, without a state)."""
    if finished is None:
        return objects
    return [stored for stored in objects if not finished(ledger_name(stored), stored.version)]


def ledger_name(stored: StoredObject) -> str:
    """The name the state records a finished object under: its URL, or a folder's file by its
    absolute path, so that a resume finds it however the folder is spelled (`backup`,
    `./backup/`, `/home/me/backup`) while its sources keep the name given."""
    return stored.name if url_scheme(stored.name) is not None else source_name(stored.path)
