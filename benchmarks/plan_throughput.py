"""Planning throughput: `rpd dry-run --format ndjson -o /dev/null` against a bare orjson loop.

    python -m benchmarks.plan_throughput [--sizes 20000,200000] [--repeat 2]

For each size it writes that many realistic events, times a bare `orjson.loads` loop over the
same lines (the floor of any reader), then runs the dry-run in a fresh subprocess and prints
events/s, the ratio to the bare loop, and the dry-run's peak memory. Targets (issue 2): at least
100,000 events/s, at least 0.2 of the bare loop, and peak memory that does not grow with input
size (the larger size is 10x the smaller).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.workload import write_events

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.example.toml"


def bare_rate(path: Path) -> float:
    loads = orjson.loads
    start = time.perf_counter()
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            loads(line)
            count += 1
    return count / (time.perf_counter() - start)


def measure(args: list[str], folder: Path) -> dict[str, Any]:
    result = folder / "measure.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.measure", str(result), "--", *args],
        check=True,
        cwd=ROOT,
    )
    measured: dict[str, Any] = orjson.loads(result.read_bytes())
    return measured


def run(size: int, repeat: int, folder: Path) -> dict[str, Any]:
    path = folder / f"events-{size}.ndjson"
    write_events(path, size, compress=False)
    bare = max(bare_rate(path) for _ in range(repeat))
    args = ["dry-run", str(path), "--config", str(CONFIG), "--format", "ndjson"]
    args += ["-o", "/dev/null", "-q"]
    runs = [measure(args, folder) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    rate = size / best["seconds"]
    return {
        "events": size,
        "events_per_s": round(rate),
        "bare_per_s": round(bare),
        "ratio": round(rate / bare, 3),
        "peak_mb": round(max(r["peak_mb"] for r in runs), 1),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            results.append(run(size, args.repeat, Path(folder)))
    print(f"{'events':>9} {'dry-run ev/s':>13} {'bare ev/s':>11} {'ratio':>6} {'peak MB':>8}")
    for r in results:
        print(
            f"{r['events']:>9} {r['events_per_s']:>13,} {r['bare_per_s']:>11,} "
            f"{r['ratio']:>6.3f} {r['peak_mb']:>8.1f}"
        )
    if len(results) > 1:
        growth = results[-1]["peak_mb"] / results[0]["peak_mb"]
        print(f"peak memory, largest vs smallest input: {growth:.2f}x")
    return results


if __name__ == "__main__":
    main()
