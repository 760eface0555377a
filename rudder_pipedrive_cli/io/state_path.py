"""What a state path names, checked before the state file is opened (no sqlite3 here: an offline
dry-run checks its --state without loading a database): a file, a folder, a device, a path under
a file, or a state file that is gone beside the -wal that holds its journal."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.io.paths import STATE_DIR, STATE_FILE


def check_state_path(path: Path) -> None:
    """A state path must be a regular file, or not exist yet (rpd creates it): not a directory,
    not a device such as /dev/null, where SQLite fails in ways that say nothing useful, and not
    a path under a file."""
    try:
        os.stat(path)
    except OSError as error:  # a symlink loop was "no state at" it, or exit 70 (resolve)
        under = under_a_file(path) if error.errno == errno.ENOTDIR else None
        if under is not None:  # was "no state at" it (state show), or no state (dry-run)
            raise under from None
        if error.errno not in (errno.ENOENT, errno.ENOTDIR):  # a loop, a name too long
            raise UsageError(
                f"--state {path}: {error.strerror}", hint="give --state a file path it can reach"
            ) from None
    if path.is_dir():
        raise UsageError(f"--state {path} is a directory", hint="give --state the state file")
    if path.exists() and not path.is_file():
        raise UsageError(
            f"--state {path} is not a regular file",
            hint="give --state a file path (rpd creates it if it is not there)",
        )


def under_a_file(path: Path) -> UsageError | None:
    """What to say of a state path under a file (a --state under the events file): the nearest
    of the folders it names exists as something else; else None."""
    folder = nearest_there(path)
    if folder is None or os.path.isdir(folder):
        return None
    return UsageError(
        f"cannot open state file {path}: {folder} is a file, not a folder",
        hint="give --state a path under folders, not under a file (rpd makes the "
        "folders that are missing)",
    )


def nearest_there(path: Path) -> Path | None:
    """The nearest of the folders a path names that is there (a folder or not): the one a
    missing folder is made in, or the state file's own folder. A folder rpd may not look into
    counts as not there (os.path, not Path, whose exists raises on EACCES)."""
    return next((folder for folder in path.parents if os.path.exists(folder)), None)


def folder_refused(path: Path) -> UsageError:
    """What to say of a state file not there yet that its folder refused (EACCES, EPERM, as the
    default `.rpd/state.sqlite` beside a config in a read-only folder): the folder rpd could not
    create or write in, and --state, since the default place is beside the config. It was
    'Permission denied' and 'check the directory's permissions', naming no folder."""
    folder = nearest_there(path) or Path()
    missing = next((f for f in path.parents if f.parent == folder != f), None)
    what = (
        f"cannot write in folder {folder}" if missing is None else f"cannot create folder {missing}"
    )
    default = path.name == STATE_FILE and path.parent.name == STATE_DIR
    return UsageError(
        f"cannot open state file {path}: {what} (permission denied)",
        hint=(
            f"the state goes in {STATE_DIR}/ beside the config by default (in the working "
            "directory without one): "
            if default
            else f"check {folder}'s permissions, or "
        )
        + "give --state PATH a file in a folder you can write to",
    )


def beside(path: Path, suffix: str) -> Path:
    """The file kept beside the real state file (symlinks resolved): SQLite's -wal and -shm,
    rpd's .lock."""
    real = path.resolve()
    return real.with_name(real.name + suffix)


def check_not_orphaned(path: Path) -> None:
    """A state file that is gone beside a -wal that holds writes is refused: a run killed, then
    its file deleted (`rm`), leaves the journal of what it sent in that -wal, which SQLite deletes
    without a word when it makes a new file, so a rerun would create leads and deals again. An
    empty -wal (or a -shm alone) holds nothing: no state, as with neither."""
    wal = beside(path, "-wal")
    try:
        if path.exists() or not (held := wal.stat().st_size):
            return
    except OSError:  # no -wal: nothing to lose
        return
    raise UsageError(
        f"state file {path} is not there, but {wal.name} beside it holds {held:,} bytes of its "
        "journal, which SQLite would discard",
        hint="restore the state file beside it, or `rpd state clear --state "
        f"{path}` removes {wal.name} to start over (events already sent are then found by their "
        "lookups, not created again)",
    )


def leftovers(path: Path) -> list[Path]:
    """The -wal and -shm a state file that is not there left beside it (`rpd state clear`)."""
    if path.exists():
        return []
    return [name for suffix in ("-wal", "-shm") if (name := beside(path, suffix)).exists()]
