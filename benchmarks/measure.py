"""Run one `rpd` command in this process and report its wall time and peak memory as JSON.

    python -m benchmarks.measure RESULT.json -- dry-run FILE --format ndjson -o /dev/null

Benchmarks start it in a fresh subprocess per measurement, so peak RSS belongs to that command
alone (interpreter and imports included).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import orjson

from rudder_pipedrive_cli.cli.main import app


def main() -> None:
    out, separator, *args = sys.argv[1:]
    if separator != "--":
        raise SystemExit("usage: python -m benchmarks.measure RESULT.json -- RPD-ARGS...")
    start = time.perf_counter()
    code = 0
    try:
        app(args, prog_name="rpd")
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(out).write_bytes(
        orjson.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, "exit": code})
    )


if __name__ == "__main__":
    main()
