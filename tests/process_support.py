"""rpd in a process of its own (`python -m rudder_pipedrive_cli`: the streams __main__.py sets
up), with no rpd settings from the environment, optionally under a file size limit; and a
sandbox that holds its answers to one kind of request while a test signals such a process."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.routes import match_route

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


@contextmanager
def answers_held(sandbox: Sandbox, key: str) -> Iterator[Callable[[], None]]:
    """Requests of `key` ("METHOD /template") are applied and counted as ever, and their answers
    held until the block ends (or the function it gives is called): a run killed or signalled
    meanwhile still waits for them,
    however late the signal lands. A latency alone raced it: a test process that acted later
    than the latency (a loaded machine) found the run past that point (no write left in flight,
    or the run over)."""
    app, release = sandbox.app, threading.Event()
    handle = app.handle

    def holding(method: str, target: str, headers: Any, body: bytes) -> Any:
        answer = handle(method, target, headers, body)
        route = match_route(urlsplit(target).path)
        if route is not None and f"{method} {route[0]}" == key:
            release.wait()
        return answer

    app.handle = holding  # type: ignore[method-assign]
    try:
        yield release.set
    finally:
        app.handle = handle  # type: ignore[method-assign]
        release.set()
