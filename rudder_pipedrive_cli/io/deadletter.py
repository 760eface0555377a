"""The dead-letter file: every failed event, as valid rpd input (SPEC 5)."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from itertools import chain, count
from pathlib import Path
from typing import IO, Any

import orjson

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.config import REDACTED, TokenPattern


def default_dead_letter_path(now: float | None = None) -> Path:
    """`rpd-failed-YYYYmmdd-HHMMSS.ndjson`, numbered (`-2`, `-3`...) past the names files have: a
    run started in the second another one started neither adds its failures to that one's file
    nor, re-sending it (`rpd send rpd-failed-*.ndjson`), is refused for writing into its input."""
    stem = time.strftime("rpd-failed-%Y%m%d-%H%M%S", time.localtime(now))
    names = chain([f"{stem}.ndjson"], (f"{stem}-{number}.ndjson" for number in count(2)))
    return Path(next(name for name in names if not os.path.lexists(name)))


def dead_letter_record(item: Event, outcome: Outcome) -> dict[str, Any]:
    """SPEC 5's record; an item read from a dead letter (sent again) says where it was first
    read too, as `origin`, which reading the record again keeps (core/wrappers.py)."""
    record = {
        "event": item.raw,
        "error": {
            "reason": outcome.reason,
            "stage": outcome.stage,
            "status": outcome.http_status,
            "retryable": outcome.retryable,
        },
        "source": item.source,
    }
    origin = getattr(item, "origin", None)
    if origin is not None:
        record["origin"] = origin
    return record


def dead_letter_line(record: dict[str, Any]) -> bytes:
    """The record as one NDJSON line. orjson writes at most 255 levels of nesting and reading
    accepts up to 1,024: deeper events go through the standard library, and an event too deep
    even for it is left out with the reason saying so (it is still counted and listed)."""
    try:
        return orjson.dumps(record) + b"\n"
    except orjson.JSONEncodeError:
        pass
    try:
        return json.dumps(record, ensure_ascii=False).encode() + b"\n"
    except RecursionError:
        error = {**record["error"], "reason": record["error"]["reason"] + TOO_DEEP}
        return orjson.dumps({**record, "event": None, "error": error}) + b"\n"


TOO_DEEP = "; the event is nested too deeply to be written here: find it at its source"


Opener = Callable[[str, int], int]


def owner_only(name: str, flags: int) -> int:
    """open()'s opener for a file of personal data (SPEC 8): one it makes is readable and writable
    by its owner only, as the state is; one that exists keeps the mode it has. A named pipe no
    process reads is refused after READER_WAIT (`read_now`): `dry-run -o PIPE` waited for ever."""
    return read_now(name, flags, 0o600)


def open_output(
    path: Path, mode: str, what: str, hint: str, opener: Opener | None = None
) -> IO[bytes]:
    """An output file (dead letters, report, dry-run output), created with its folders; one rpd
    cannot write is a usage error: "cannot write WHAT PATH: why", then `hint`. One of rpd's own
    descriptors (/dev/stdout, /dev/fd/N) is written at its end, not truncated: opened again,
    "w" emptied the file the shell's `>>` gave it (`--report /dev/stdout >> runs.log` kept the
    last run's report alone), and `>` emptied it already."""
    if mode.startswith("w") and _a_descriptor(path):
        mode = "a" + mode[1:]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, mode, opener=opener)
    except OSError as error:
        raise output_error(path, what, hint, error) from None


def output_error(path: Path, what: str, hint: str, error: OSError) -> UsageError:
    return UsageError(f"cannot write {what} {path}: {error.strerror or error}", hint=hint)


DEAD_LETTERS = ("dead letters to", "choose another --dead-letter path; rerun to resume")


class DeadLetters:
    """Appends records to `path`, creating the file only when the first failure arrives.
    `renamed`, given when `path` is rpd's own default name: the file is then made new, and one
    that appeared since the name was chosen (a run started in the same second) is left alone for
    a name `renamed` gives."""

    def __init__(
        self,
        path: Path,
        token: TokenPattern | None = None,
        renamed: Callable[[], Path] | None = None,
    ) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[bytes] | None = None
        self._token = token  # the API token (Secret.pattern): never written, even as event data
        self._renamed = renamed
        self.a_file = True  # False: a pipe, /dev/stdout: its name reads no letters back

    def add(self, item: Event, outcome: Outcome) -> None:
        line = dead_letter_line(dead_letter_record(item, outcome))
        if self._token is not None and self._token.search(text := line.decode()):
            # An event that holds the token (a trait copied from a config, say): written with
            # REDACTED in its place (SPEC 8), which JSON text takes as it is.
            line = self._token.sub(REDACTED, text).encode()
        if self._handle is None:
            self._handle = self._open()
            if _ends_mid_line(self._handle):
                # An earlier run stopped mid-record (a full disk): the new records start on a
                # line of their own, so they and the earlier whole ones all read back. The cut
                # record is kept as it is (one bad line when read), never trimmed away.
                line = b"\n" + line
        try:
            self._handle.write(line)
        except OSError as error:
            raise output_error(self.path, *DEAD_LETTERS, error) from None
        self.count += 1

    def flush(self) -> None:
        """Hand what is written to the system: a record that is the only trace of its input (a
        line that is no event, in an object recorded finished) outlives a kill of the process."""
        if self._handle is not None:
            try:
                self._handle.flush()
            except OSError as error:
                raise output_error(self.path, *DEAD_LETTERS, error) from None

    def _open(self) -> IO[bytes]:
        while self._renamed is not None:
            try:
                return open(self.path, "xb+", opener=owner_only)
            except FileExistsError:
                self.path = self._renamed()
            except OSError as error:
                raise output_error(self.path, *DEAD_LETTERS, error) from None
        # + : read its end (_ends_mid_line), which a pipe (/dev/stdout, >(gzip ...), a fifo)
        # cannot be read back for: opened "ab+", one stopped the send at its first dead letter.
        regular = _regular_or_new(self.path)
        self.a_file = regular and not _a_descriptor(self.path)
        if regular:
            return open_output(self.path, "ab+", *DEAD_LETTERS, owner_only)
        return open_output(self.path, "ab", *DEAD_LETTERS, read_now)

    def close(self) -> None:
        """Close the file; what could not be flushed (a full disk) is a `UsageError`, and the
        file then counts as not written (`written` is None): its records may be incomplete."""
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()
            except OSError as error:
                self.count = 0
                raise output_error(self.path, *DEAD_LETTERS, error) from None

    @property
    def written(self) -> str | None:
        return str(self.path) if self.count else None


READER_WAIT = 10.0  # seconds a named pipe's reader may take to open it (one starting late)


def read_now(name: str, flags: int, mode: int = 0o666) -> int:
    """open()'s opener for what may be no regular file: a named pipe no process reads is refused
    after READER_WAIT, where the open waited for a reader forever, mid-run and deaf to SIGTERM
    (Python opens again after a signal); what is opened is written as ever, waiting when the
    reader lags. A file it makes has `mode` (less the umask): by default open()'s own."""
    waited = 0.0
    while True:
        try:
            handle = os.open(name, flags | os.O_NONBLOCK, mode)
        except OSError as error:
            if error.errno != errno.ENXIO or not _named_pipe(Path(name)):
                raise
            if waited >= READER_WAIT:  # no read end open
                raise OSError(errno.ENXIO, "no process reads this named pipe", name) from None
            time.sleep(0.05)
            waited += 0.05
            continue
        os.set_blocking(handle, True)
        return handle


def _a_descriptor(path: Path) -> bool:
    """Whether `path` names one of rpd's open descriptors (/dev/stdout, /dev/fd/N, /proc/...):
    led to a regular file (`--dead-letter /dev/stdout > failed.ndjson`), it is written as one,
    but a later `rpd send` of that name reads its own descriptor, not the letters."""
    name = os.path.abspath(path)
    return name in ("/dev/stdout", "/dev/stderr") or name.startswith(("/dev/fd/", "/proc/"))


def _regular_or_new(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:  # not there yet (or not to be looked at: opening it says why)
        return True


def _ends_mid_line(handle: IO[bytes]) -> bool:
    """Whether the file open for appending is not empty and does not end with a newline."""
    try:
        size = os.fstat(handle.fileno()).st_size
        return size > 0 and os.pread(handle.fileno(), 1, size - 1) != b"\n"
    except OSError:  # not a regular file (a pipe, /dev/stdout): nothing to look at
        return False


NOTHING_SENT = "nothing was sent"  # what a refusal before the run spared: send's words
NOTHING_PLANNED = "nothing was planned"  # dry-run's: it never sends


def check_output_path(
    path: Path,
    option: str,
    inputs: tuple[str, ...] = (),
    keep: Mapping[str, Path | None] | None = None,
    untouched: str = NOTHING_SENT,
) -> None:
    """Refuse, before anything is sent, a path rpd could not write or must not write to: a
    directory, an input, or a file it must keep (`keep`: what it is -> its path), such as the
    replay state, the config or another output of the same run. `untouched` says what the
    refusal spared: a send's NOTHING_SENT, a dry-run's NOTHING_PLANNED."""
    if path == Path("-"):  # a file named `-`, which `rpd send -` would take for standard input
        raise UsageError(
            f"{option} - would be a file named '-' (as an input, - is standard input)",
            hint=f"give {option} a file name",
        )
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory", hint=f"give {option} a file path")
    for name in inputs:
        if name != "-" and path.exists() and Path(name).exists() and path.samefile(name):
            raise UsageError(  # one line: what is wrong, and what to do
                f"{option} {path} is one of the input files, and writing there would destroy "
                f"the events it holds: give {option} another file ({untouched})"
            )
    refuse_inside_input_folders(path, option, inputs, untouched)
    for what, other in (keep or {}).items():
        if other is not None and same_file(path, other):
            raise UsageError(
                f"{option} {path} is also {what}: rpd would overwrite it",
                hint=f"choose another {option} path",
            )
    try:
        probe_writable(path)
    except OSError as error:  # found now, not after everything was sent (issue 14 item 9)
        hint = f"choose another {option} path; {untouched}"
        raise output_error(path, option, hint, error) from None


def refuse_inside_input_folders(
    path: Path, option: str, inputs: tuple[str, ...], untouched: str = NOTHING_SENT
) -> None:
    """A file rpd writes (an output, the state) must not be where an input folder's listing
    finds it: that run or the next would read it as events."""
    for name in inputs:
        if name != "-" and os.path.isdir(name) and _listed_below(path, Path(name)):
            raise UsageError(
                f"{option} {path} is inside the input folder {name}: a run over that folder "
                "would read it as events",
                hint=f"give {option} a path outside {name} ({untouched})",
            )


def _listed_below(path: Path, folder: Path) -> bool:
    """Whether a backup folder's listing would hold `path` (io/objects.py leaves hidden names
    out: `.rpd/state.sqlite` is not read)."""
    try:
        below = path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):  # elsewhere, or a loop of links
        return False
    return not any(part.startswith(".") for part in below.parts)


def probe_writable(path: Path) -> None:
    """Raise the OSError that writing `path` would meet, changing nothing: an existing file is
    opened for appending (nothing written), a new one (and its missing folders) is made and
    removed again. (A full disk shows only when writing: that stays an error after the report.)
    A file made there meanwhile (a run started in the same second, on the default name, or its
    own probe) is probed as it then is: it is no reason to refuse; one removed since it was seen
    (that probe's) is looked for again, not made anew and left behind, empty."""
    while True:
        if not path.exists() and not path.is_symlink():  # a link that leads nowhere: as below
            if _made_and_removed(path):
                return
        elif _opened_to_append(path):
            return


def _opened_to_append(path: Path) -> bool:
    """Open the file at `path` to append, writing nothing: False when it is gone (removed since it
    was seen). A link that leads nowhere is followed and fails as writing would. A named pipe is
    not opened, only asked whether it may be written: opened and closed, it told its reader the
    end (`cat dead.fifo > failed.ndjson` exited), and the first dead letter's open then waited
    for a reader forever, deaf to SIGTERM."""
    if _named_pipe(path):
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return True
    if path.is_symlink():
        path.open("ab").close()
        return True
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
    except FileNotFoundError:
        return False
    return True


def _named_pipe(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(path.stat().st_mode)
    except OSError:  # not there, or a link that leads nowhere: opening it says so
        return False


def _made_and_removed(path: Path) -> bool:
    """Make the new file `path` (and its missing folders) and remove it again: False when a file
    was made there since it was looked for (left as it is, and the folders with it)."""
    missing = [folder for folder in path.parents if not folder.exists()]
    made: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        try:
            path.open("xb").close()
        except FileExistsError:
            made.clear()  # they hold that file now
            return False
        path.unlink()
        return True
    finally:
        for folder in reversed(made):
            folder.rmdir()


def same_file(one: Path, other: Path) -> bool:
    """Whether two paths name one file, existing (through links) or yet to be made. A path that
    cannot be followed (a loop of links) names no file here: opening it then says why."""
    try:
        if one.exists() and other.exists():
            return one.samefile(other)
        return one.resolve() == other.resolve()
    except (OSError, RuntimeError):
        return False
