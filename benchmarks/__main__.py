"""Run every benchmark, print a table of figures against targets, write benchmarks/results.json.

    python -m benchmarks [--quick] [--only planning,memory,...] [--out PATH]

Each benchmark compares against its own baseline measured in the same run (ratios hold on a
noisy shared machine, absolute times do not):

1. planning: `rpd dry-run` against a bare orjson loop over the same NDJSON;
2. memory: peak RSS of dry-run and send at two input sizes, 10x apart;
3. efficiency: requests and API tokens per event against the minimum, first and second replay;
4. saturation: share of the growth plan's rate limit used, and of 429s;
5. unthrottled: events/s at concurrency 1, 8 and 32 with 20 ms latency, plan unlimited;
6. objects: events/s and peak RSS reading a backup from S3 (moto on loopback) against a folder.
7. startup: `rpd --help` and `rpd dry-run` on 10 events against a bare `import typer, rich`.
8. identity_index: identities by index against by search (tokens, searches, duration), and the
   cost of send's first pass against a dry-run.

`--quick` runs tiny sizes (a smoke run: the shape of the results, not the figures).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import (
    efficiency,
    identity_index,
    memory,
    object_read,
    plan_throughput,
    saturation,
    startup,
    unthrottled,
)

BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "planning": plan_throughput.run,
    "memory": memory.run,
    "efficiency": efficiency.run,
    "saturation": saturation.run,
    "unthrottled": unthrottled.run,
    "objects": object_read.run,
    "startup": startup.run,
    "identity_index": identity_index.run,
}
RESULTS = Path(__file__).resolve().parent / "results.json"
VERDICT = {True: "met", False: "NOT MET", None: "n/a"}


def show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def table(results: dict[str, dict[str, Any]]) -> str:
    header = ("benchmark", "figure", "measured", "baseline", "target", "verdict")
    rows = [header]
    for name, outcome in results.items():
        for target in outcome["targets"]:
            rows.append(
                (
                    name,
                    target["figure"],
                    show(target["measured"]),
                    show(target["baseline"]),
                    target["target"],
                    VERDICT[target["met"]],
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    chosen = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in chosen:
        print(f"running {name}...", flush=True)
        results[name] = BENCHMARKS[name](args.quick)
    document = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick,
        "command": "python -m benchmarks" + (" --quick" if args.quick else ""),
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "benchmarks": results,
    }
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    temporary.replace(args.out)
    print()
    print(table(results))
    print(f"\n{args.out} written in {document['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
