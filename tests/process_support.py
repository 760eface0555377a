"""rpd in a process of its own (`python -m rudder_pipedrive_cli`: the streams __main__.py sets
up), with no rpd settings from the environment, optionally under a file size limit; and a
sandbox that holds its answers from a given request on while a test signals such a process."""

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

from rudder_pipedrive_cli.sandbox import Sandbox

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
def answers_held(
    sandbox: Sandbox, key: str | None, more: float = 1, *, only: bool = False
) -> Iterator[Callable[[], None]]:
    """From the `more`-th request of `key` ("METHOD /template"; None: of any kind) the sandbox
    serves from now on, every request is applied and counted as ever and its answer held until
    the block ends (or the function it gives is called): a run killed or signalled at that point
    is still there, however late the signal lands. A latency alone raced it: a test process
    that acted later than the latency (a loaded machine) found the run past that point (no write
    left in flight, the run over, or the next run's point passed by this one). `only`: the
    answers of `key`'s requests alone are held, the others' go (two such holds, nested, release
    one step of a run while another stays held)."""
    app, release, this = sandbox.app, threading.Event(), threading.local()
    api, handle = app._api, app.handle
    # What the instance had of its own (an outer answers_held's), put back at the end: none, so
    # the class's methods again, or one a test patches on the class later would not be called.
    own = {name: vars(app)[name] for name in ("_api", "handle") if name in vars(app)}

    def served() -> int:
        return sum(app.requests.values()) if key is None else app.requests[key]

    with app.lock:
        at, reached = served() + more, False

    def counted(*args: Any, **kwargs: Any) -> Any:  # under the app's lock
        nonlocal reached
        before = served()
        answer = api(*args, **kwargs)
        reached |= served() >= at
        this.held = reached and (not only or served() > before)
        return answer

    def holding(*args: Any, **kwargs: Any) -> Any:
        this.held = False
        answer = handle(*args, **kwargs)
        if this.held:
            release.wait()
        return answer

    app._api, app.handle = counted, holding  # type: ignore[method-assign]
    try:
        yield release.set
    finally:
        for name in ("_api", "handle"):
            vars(app).pop(name, None)
        vars(app).update(own)
        release.set()
