"""Peak memory of `rpd dry-run` and `rpd send` as inputs and identities grow (issue 18).

    python -m benchmarks.memory [--quick] [--sizes 100000,1000000] [--send-sizes 10000,100000]
                                [--cache-entries N] [--index-persons 20000,200000]

Two workloads of each size (benchmarks.workload's events): every userId distinct, and 5,000
users. Each command runs in a fresh process (benchmarks.measure), so its peak RSS is its own,
interpreter and imports included. `send` goes to a sandbox in another process (plan unlimited,
with a state file), so the records the sandbox keeps do not count. Targets: with every userId
distinct, the largest input's peak within 1.3x of the smallest's, and dry-run under 150 MB. What
grows with identities (the identity cache, what a dry-run would create, alias groups, the ids
a dry-run finished) is held in bounded tables (`--cache-entries` per table, io/scratch.py).

`--index-persons` (none by default) measures the identity index of a send without a state file
(`--sandbox`): a sandbox in another process is seeded with that many persons, each with its own
userId, and a fresh process lists them into the index as send does (core/index.py through the
HTTP client) and looks every userId up in a scattered order, once with the index in plain dicts
(as before issue 18's remainder) and once in bounded tables. It prints each process's peak RSS,
what it had before the listing, and the seconds of listing and the microseconds per lookup.
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.delivery import CONFIG, ROOT, sandbox
from benchmarks.measure import measured, peak_mb
from benchmarks.send_efficiency import TOKEN
from benchmarks.verdict import check, result
from benchmarks.workload import write_events
from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES

GROWTH_LIMIT = 1.3  # largest input's peak RSS / smallest input's, every userId distinct
DRY_RUN_LIMIT_MB = 150.0  # dry-run's peak at the largest input, every userId distinct
WORKLOADS = {"distinct": 0, "5000_users": 5000}  # name: users (0: every userId distinct)
SIZES = (100_000, 1_000_000)
# A send to the sandbox runs at a few hundred events/s on a shared 2-core machine: 1,000,000
# events would take over an hour, so the send figures are at the largest size that ends in
# about ten minutes.
SEND_SIZES = (10_000, 100_000)
# `python -m benchmarks` runs every benchmark in a few minutes: smaller send sizes, still 10x
# apart. Dry-run's are issue 18's own (a minute for both workloads): a smaller input than
# 100,000 distinct userIds has not yet filled the fixed budget (10,000 entries per table, the
# filters made when keys first move out), so 20,000 against 200,000 measured the budget filling
# (41 against 56 MB, 1.37x) rather than growth (54.5 MB at 100,000, 56.2 at 1,000,000).
RUNNER_SIZES, RUNNER_SEND_SIZES = SIZES, (1_000, 10_000)
# --quick: a smoke run, each command's every figure (both workloads) at two sizes; each is a
# fresh process, whose start-up is most of its time at any size this small.
QUICK_SIZES = QUICK_SEND_SIZES = (10, 100)
INDEX_PERSONS = (20_000, 200_000)  # --index-persons: persons in the account, 10x apart
INDEX_ROWS = ("dicts", "bounded")  # the index in plain dicts (before), in bounded tables (after)
USER_ID_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"  # config.example.toml's
SEED_THREADS = 4
LOOKUP_STEP = 7919  # a prime: the lookups' order jumps across the account


def events_file(work: Path, size: int, users: int) -> Path:
    path = work / f"events-{size}-{users}.ndjson"
    if not path.exists():
        write_events(path, size, compress=False, users=users)
    return path


def dry_run_peak(path: Path, work: Path, extra: list[str]) -> float:
    args = ["dry-run", str(path), "--config", str(CONFIG), "--format", "ndjson", "-q"]
    args += ["-o", "/dev/null", "--state", str(work / "no-state.sqlite"), *extra]
    peak: float = measured(args, work)["peak_mb"]
    return peak


def send_peak(url: str, path: Path, work: Path, extra: list[str]) -> float:
    """`rpd send` with a new state file; some events fail (a track of a userId never
    identified), which is part of the workload: their dead letters are written too."""
    name = path.stem
    args = ["send", str(path), "--config", str(CONFIG), "--base-url", url, "--plan", "unlimited"]
    args += ["--state", str(work / f"state-{name}.sqlite"), "-q", *extra]
    args += ["--dead-letter", str(work / f"failed-{name}.ndjson")]
    figures = measured(args, work, {"PIPEDRIVE_API_TOKEN": TOKEN})
    if figures["exit"] not in (0, 1):
        raise RuntimeError(f"rpd send exited {figures['exit']} on {path}")
    peak: float = figures["peak_mb"]
    return peak


def measure(
    sizes: tuple[int, ...], send_sizes: tuple[int, ...], extra: list[str]
) -> dict[str, Any]:
    figures: dict[str, Any] = {"dry_run": {}, "send": {}}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for size in sizes:
            for name, users in WORKLOADS.items():
                path = events_file(work, size, users)
                peak = dry_run_peak(path, work, extra)
                figures["dry_run"].setdefault(name, {})[str(size)] = round(peak, 1)
                path.unlink()
        if send_sizes:
            with sandbox("unlimited") as url:
                for size in send_sizes:
                    for name, users in WORKLOADS.items():
                        path = events_file(work, size, users)
                        peak = send_peak(url, path, work, extra)
                        figures["send"].setdefault(name, {})[str(size)] = round(peak, 1)
    return figures


def seed_persons(url: str, start: int, stop: int) -> None:
    """Persons `start` to `stop` - 1 made by another client, userId `u-N` each."""

    def make(first: int) -> None:
        with httpx.Client(base_url=url, headers={"x-api-token": TOKEN}, timeout=30) as client:
            for n in range(first, stop, SEED_THREADS):
                body = {"name": f"Person {n}", "custom_fields": {USER_ID_FIELD: f"u-{n}"}}
                client.post("/api/v2/persons", json=body).raise_for_status()

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(make, range(start, start + SEED_THREADS)))


def scattered(count: int) -> Iterator[int]:
    """0 to `count` - 1, each once, far from sorted (as distinct users' events arrive), without
    a list of them all in memory: the multiples of a step coprime with `count`, modulo `count`."""
    step = next(n for n in itertools.count(LOOKUP_STEP) if math.gcd(n, count) == 1)
    return (k * step % count for k in range(count))


def index_child(url: str, persons: int, rows: str, entries: int) -> dict[str, Any]:
    """In this (fresh) process: list the account's persons into the identity index as a send
    without a state file does, then look every userId up in a shuffled order."""
    from rudder_pipedrive_cli.core.identity_cache import Tables
    from rudder_pipedrive_cli.core.index import IdentityIndex, MemoryIndexRows
    from rudder_pipedrive_cli.core.plans.common import PERSON, index_listing, probe_steps
    from rudder_pipedrive_cli.core.tally import Tally
    from rudder_pipedrive_cli.http.blocking import BlockingClient
    from rudder_pipedrive_cli.io.scratch import Spill

    options = {"token": TOKEN, "base_url": url, "plan": "unlimited", "tally": Tally()}
    with Spill(entries) as spill, BlockingClient(**options) as client:
        tables: Tables = dict if rows == "dicts" else spill.table
        index = IdentityIndex(MemoryIndexRows(tables), {"person": USER_ID_FIELD}, clock=time.time)
        before = peak_mb()
        started = time.perf_counter()
        client.exchange(probe_steps(index_listing(index, PERSON)))
        listed = time.perf_counter() - started
        started = time.perf_counter()
        found = sum(len(index.lookup("person", f"u-{n}")) == 1 for n in scattered(persons))
        looked = time.perf_counter() - started
        size = index.rows.size("person")
    return {
        "peak_mb": round(peak_mb(), 1),
        "before_listing_mb": round(before, 1),
        "listing_s": round(listed, 2),
        "lookup_us": round(looked / max(1, persons) * 1e6, 2),
        "found": found,
        "indexed": size,
    }


def index_peaks(counts: tuple[int, ...], entries: int | None) -> dict[str, Any]:
    """For each account size: the index-building process's figures, index in dicts and bounded."""
    figures: dict[str, Any] = {}
    with sandbox("unlimited") as url:
        seeded = 0
        for count in counts:
            seed_persons(url, seeded, count)
            seeded = count
            for rows in INDEX_ROWS:
                command = [sys.executable, "-m", "benchmarks.memory", "--index-child", url]
                command += ["--index-persons", str(count), "--index-rows", rows]
                if entries is not None:
                    command += ["--cache-entries", str(entries)]
                done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
                child = orjson.loads(done.stdout)
                if (child["found"], child["indexed"]) != (count, count):
                    raise RuntimeError(f"the index of {count} persons found {child}")
                figures.setdefault(rows, {})[str(count)] = child
    return figures


INDEX_COLUMNS = ("peak_mb", "before_listing_mb", "listing_s", "lookup_us")


def print_index(figures: dict[str, Any]) -> None:
    """One line per index process: where its rows were, the account's size, its figures."""
    print("index in   persons  peak MB  before  list s  lookup us")
    for rows, runs in figures.items():
        for count, run in runs.items():
            shown = "{:>8.1f} {:>7.1f} {:>7.2f} {:>10.2f}".format(*map(run.get, INDEX_COLUMNS))
            print(f"{rows:<8} {int(count):>9,} {shown}")


def verdict(figures: dict[str, Any], seconds: float) -> dict[str, Any]:
    targets = []
    growth: dict[str, float] = {}
    for command in ("dry_run", "send"):
        peaks = figures[command].get("distinct")
        if not peaks:
            continue
        small, large = next(iter(peaks.values())), list(peaks.values())[-1]
        growth[command] = round(large / small, 3)
        targets.append(
            check(
                f"{command}, every userId distinct: peak RSS at the largest input / smallest",
                growth[command],
                at_most=GROWTH_LIMIT,
                baseline=f"{small} MB",
            )
        )
    if figures["dry_run"]:
        targets.append(
            check(
                "dry_run, every userId distinct: peak RSS at the largest input",
                list(figures["dry_run"]["distinct"].values())[-1],
                at_most=DRY_RUN_LIMIT_MB,
                unit=" MB",
            )
        )
    index = figures.get("index")
    if index:
        peaks = [run["peak_mb"] for run in index["bounded"].values()]
        growth["index"] = round(peaks[-1] / peaks[0], 3)
        targets.append(
            check(
                "identity index without a state file, bounded: peak RSS at the largest account "
                "/ smallest",
                growth["index"],
                at_most=GROWTH_LIMIT,
                baseline=f"{peaks[0]} MB",
            )
        )
    figures["growth"] = growth
    return result(
        "memory: peak RSS as inputs and distinct userIds grow",
        bound="flat by design: NDJSON is streamed, what grows per identity is in bounded tables",
        figures=figures,
        baseline={
            "smallest_input_mb": {
                command: next(iter(figures[command]["distinct"].values()))
                for command in growth
                if command != "index"
            }
        },
        targets=targets,
        seconds=seconds,
    )


def run(quick: bool) -> dict[str, Any]:
    """Benchmark 2 of `python -m benchmarks`, at the runner's sizes (`main` has issue 18's)."""
    started = time.perf_counter()
    sizes = QUICK_SIZES if quick else RUNNER_SIZES
    send_sizes = QUICK_SEND_SIZES if quick else RUNNER_SEND_SIZES
    return verdict(measure(sizes, send_sizes, []), time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--sizes", help="dry-run sizes, comma-separated (default 100000,1000000)")
    parser.add_argument("--send-sizes", help="send sizes; '' for none (default 10000,100000)")
    parser.add_argument("--cache-entries", type=int, help="passed to rpd (default: rpd's)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="distinct,5000_users")
    parser.add_argument(
        "--index-persons",
        default="",
        help="account sizes for the identity index without a state file (default: none; "
        "20000,200000 for issue 18's figures)",
    )
    parser.add_argument("--index-child", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--index-rows", choices=INDEX_ROWS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.index_child:  # one measurement, in the fresh process index_peaks started
        child = index_child(
            args.index_child,
            int(args.index_persons),
            args.index_rows,
            args.cache_entries or CACHE_ENTRIES,
        )
        print(orjson.dumps(child).decode())
        return child
    chosen = args.workloads.split(",")
    for name in list(WORKLOADS):
        if name not in chosen:
            del WORKLOADS[name]

    def sizes(
        text: str | None, default: tuple[int, ...], quick: tuple[int, ...]
    ) -> tuple[int, ...]:
        if text is None:
            return quick if args.quick else default
        return tuple(int(size) for size in text.split(",") if size)

    extra = [] if args.cache_entries is None else ["--cache-entries", str(args.cache_entries)]
    started = time.perf_counter()
    figures = measure(
        sizes(args.sizes, SIZES, QUICK_SIZES),
        sizes(args.send_sizes, SEND_SIZES, QUICK_SEND_SIZES),
        extra,
    )
    index_counts = sizes(args.index_persons, (), ())
    if args.quick and not args.index_persons:
        index_counts = ()
    if index_counts:
        figures["index"] = index_peaks(index_counts, args.cache_entries)
    document = verdict(figures, time.perf_counter() - started)
    print(f"{'command':<8} {'workload':<11} {'events':>9} {'peak MB':>8}")
    for command in ("dry_run", "send"):
        for name, peaks in figures[command].items():
            for size, peak in peaks.items():
                print(f"{command:<8} {name:<11} {int(size):>9,} {peak:>8.1f}")
    if "index" in figures:
        print_index(figures["index"])
    print(orjson.dumps(document["targets"], option=orjson.OPT_INDENT_2).decode())
    return document


if __name__ == "__main__":
    main()
