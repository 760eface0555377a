"""rpd in a process of its own (`python -m rudder_pipedrive_cli`: the streams __main__.py sets
up), with no rpd settings from the environment, optionally under a file size limit."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("RPD_CONFIG", "PIPEDRIVE_API_TOKEN", "RPD_PLAN", "RPD_BASE_URL")


def rpd_process(
    cwd: Path,
    *args: str,
    file_size: int | None = None,
    env: dict[str, str] | None = None,
    **io: Any,
) -> subprocess.CompletedProcess[bytes]:
    """`rpd ARGS` run in `cwd`; `file_size`: the most bytes a file it writes may hold (`ulimit
    -f`); `io`: subprocess.run's stdout / stderr."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for name in SETTINGS:
        environ.pop(name, None)

    def limited() -> None:
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return subprocess.run(
        [sys.executable, "-m", "rudder_pipedrive_cli", *args],
        cwd=cwd,
        env=environ,
        preexec_fn=limited,
        timeout=120,
        check=False,
        **io,
    )
