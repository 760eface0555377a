"""What opening the replay state costs: the lock, the schema check and SQLite's `quick_check`,
which reads every page so that a damaged file is found before the first request.

    python benchmarks/state_open.py [--events N ...] [--repeat R]

For each size, a state file is filled with N events (journal, a person each, a lead origin for
one in four), then opened for writing R times; the best time of a writable open (with its
`quick_check`) and of `PRAGMA quick_check` alone on that file are printed, with the file's size.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import account_namespace

NAMESPACE = account_namespace("12345", "benchmark-token")


def fill(path: Path, events: int) -> None:
    with ReplayState.open(path, NAMESPACE, batch_size=1000) as state:
        for number in range(events):
            origins = {number: frozenset({f"rpd:msg-{number:09d}"})} if number % 4 == 0 else {}
            state.record_outcome(
                f"msg-{number:09d}",
                f"events.ndjson:{number + 1}",
                Outcome(
                    status="sent",
                    learned=Learned(
                        identities={("person", f"user-{number}"): number}, lead_origins=origins
                    ),
                ),
            )


def best(seconds: list[float]) -> str:
    return f"{min(seconds) * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'events':>9}  {'file':>8}  {'open (writable)':>15}  {'quick_check':>11}")
    for events in args.events:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "state.sqlite"
            fill(path, events)
            opens, checks = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                ReplayState.open(path, NAMESPACE).close()
                opens.append(time.perf_counter() - started)
                connection = sqlite3.connect(path)
                started = time.perf_counter()
                connection.execute("PRAGMA quick_check(1)").fetchone()
                checks.append(time.perf_counter() - started)
                connection.close()
            size = f"{path.stat().st_size / 2**20:.1f} MB"
            print(f"{events:>9,}  {size:>8}  {best(opens):>15}  {best(checks):>11}")


if __name__ == "__main__":
    main()
