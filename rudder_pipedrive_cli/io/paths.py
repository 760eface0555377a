"""Where rpd keeps its files by default: known without loading what reads or writes them (a
command that only needs the path, e.g. to see whether a state exists, loads no sqlite3); and
which refusals of a write mean there is no room for it, for the state's files and every output."""

from __future__ import annotations

import errno
from pathlib import Path

# A full disk, the user's quota, or a file grown past the size limit (`ulimit -f`: Python
# ignores SIGXFSZ, so the write fails with EFBIG instead of the process dying).
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

STATE_DIR = ".rpd"
STATE_FILE = "state.sqlite"


def default_state_path(config_path: Path | None) -> Path:
    """`.rpd/state.sqlite` beside the config file, or in the working directory without one."""
    base = config_path.parent if config_path is not None else Path()
    return base / STATE_DIR / STATE_FILE
