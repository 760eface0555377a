"""How fast `EventReader` streams NDJSON, against a bare `for line in f: orjson.loads(line)` loop.

    python -m benchmarks.read_throughput [--lines N] [--repeat R] [--gzip]

Writes N realistic events (identify, group, alias, track, page; ~600 bytes each) to a temporary
file, then reads it R times each way and prints the best lines/s of each and their ratio. The
reader also sniffs the layout, tracks sources and makes each line the `Event` the core plans
(identities resolved), so the ratio is the price of that work.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from benchmarks.workload import write_events
from rudder_pipedrive_cli.io.readers import EventReader


def bare_loop(path: Path, compress: bool) -> int:
    count = 0
    loads = orjson.loads
    with gzip.open(path, "rb") if compress else open(path, "rb") as f:
        for line in f:
            loads(line)
            count += 1
    return count


def reader_loop(path: Path, compress: bool) -> int:
    return sum(1 for item in EventReader([str(path)]) if item.decided is None)


def best_rate(run: Callable[[Path, bool], int], path: Path, compress: bool, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        count = run(path, compress)
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gzip", action="store_true", help="compress the file first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("events.ndjson.gz" if args.gzip else "events.ndjson")
        write_events(path, args.lines, compress=args.gzip)
        size = path.stat().st_size
        bare = best_rate(bare_loop, path, args.gzip, args.repeat)
        ours = best_rate(reader_loop, path, args.gzip, args.repeat)
    print(f"file: {args.lines} lines, {size / 1e6:.1f} MB{' gzip' if args.gzip else ''}")
    print(f"bare orjson loop: {bare:12,.0f} lines/s")
    print(f"EventReader:      {ours:12,.0f} lines/s")
    print(f"ratio:            {ours / bare:12.2f}")


if __name__ == "__main__":
    main()
