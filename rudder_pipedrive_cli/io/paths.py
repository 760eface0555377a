"""Where rpd keeps its files by default: known without loading what reads or writes them (a
command that only needs the path, e.g. to see whether a state exists, loads no sqlite3)."""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".rpd"
STATE_FILE = "state.sqlite"


def default_state_path(config_path: Path | None) -> Path:
    """`.rpd/state.sqlite` beside the config file, or in the working directory without one."""
    base = config_path.parent if config_path is not None else Path()
    return base / STATE_DIR / STATE_FILE
