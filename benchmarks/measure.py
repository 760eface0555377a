"""Run one `rpd` command in this process and report its wall time and peak memory as JSON.

    python -m benchmarks.measure RESULT.json -- dry-run FILE --format ndjson -o /dev/null

Benchmarks start it in a fresh subprocess per measurement, so peak RSS belongs to that command
alone (interpreter and imports included). It reports wall `seconds`, `cpu_s` (user + system CPU
of the command, imports excluded), `peak_mb` and the command's `exit` status.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]


def measured(args: list[str], work: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `rpd ARGS` through this module in a fresh process (`env` added to the environment);
    its seconds, cpu_s, peak_mb and exit status."""
    result = work / "measure.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.measure", str(result), "--", *args],
        check=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    figures: dict[str, Any] = orjson.loads(result.read_bytes())
    return figures


def status_mb(field: str) -> float:
    """A memory figure of this process in MB from /proc/self/status (VmHWM, VmRSS); elsewhere the
    peak from `ru_maxrss`."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def peak_mb() -> float:
    """This process's peak RSS since it started (Linux's VmHWM). Not `ru_maxrss`: Linux carries
    the parent's peak into it across fork and exec (a child of a 300 MB parent reads 300 MB)."""
    return status_mb("VmHWM")


def main() -> None:
    from rudder_pipedrive_cli.cli.main import app  # here: measured() callers need not load rpd

    out, separator, *args = sys.argv[1:]
    if separator != "--":
        raise SystemExit("usage: python -m benchmarks.measure RESULT.json -- RPD-ARGS...")
    started = resource.getrusage(resource.RUSAGE_SELF)
    cpu_at_start = started.ru_utime + started.ru_stime
    start = time.perf_counter()
    code = 0
    try:
        app(args, prog_name="rpd")
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of the command (imports excluded) hold better than wall time on a busy machine.
    cpu = usage.ru_utime + usage.ru_stime - cpu_at_start
    Path(out).write_bytes(
        orjson.dumps({"seconds": seconds, "cpu_s": cpu, "peak_mb": peak_mb(), "exit": code})
    )


if __name__ == "__main__":
    main()
