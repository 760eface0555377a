"""Peak memory of `rpd dry-run` and `rpd send` as inputs and identities grow (issue 18).

    python -m benchmarks.memory [--quick] [--sizes 100000,1000000] [--send-sizes 10000,100000]
                                [--cache-entries N]

Two workloads of each size (benchmarks.workload's events): every userId distinct, and 5,000
users. Each command runs in a fresh process (benchmarks.measure), so its peak RSS is its own,
interpreter and imports included. `send` goes to a sandbox in another process (plan unlimited,
with a state file), so the records the sandbox keeps do not count. Targets: with every userId
distinct, the largest input's peak within 1.3x of the smallest's, and dry-run under 150 MB. What
grows with identities (the identity cache, what a dry-run would create, alias groups, the ids
a dry-run finished) is held in bounded tables (`--cache-entries` per table, io/scratch.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.delivery import CONFIG, sandbox
from benchmarks.measure import measured
from benchmarks.send_efficiency import TOKEN
from benchmarks.verdict import check, result
from benchmarks.workload import write_events

GROWTH_LIMIT = 1.3  # largest input's peak RSS / smallest input's, every userId distinct
DRY_RUN_LIMIT_MB = 150.0  # dry-run's peak at the largest input, every userId distinct
WORKLOADS = {"distinct": 0, "5000_users": 5000}  # name: users (0: every userId distinct)
SIZES = (100_000, 1_000_000)
# A send to the sandbox runs at a few hundred events/s on a shared 2-core machine: 1,000,000
# events would take over an hour, so the send figures are at the largest size that ends in
# about ten minutes.
SEND_SIZES = (10_000, 100_000)
# `python -m benchmarks` runs every benchmark in a few minutes: smaller sizes, still 10x apart.
RUNNER_SIZES, RUNNER_SEND_SIZES = (20_000, 200_000), (1_000, 10_000)
QUICK_SIZES = (500, 5_000)
QUICK_SEND_SIZES = (50, 500)


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
    figures["growth"] = growth
    return result(
        "memory: peak RSS as inputs and distinct userIds grow",
        bound="flat by design: NDJSON is streamed, what grows per identity is in bounded tables",
        figures=figures,
        baseline={
            "smallest_input_mb": {
                command: next(iter(figures[command]["distinct"].values())) for command in growth
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
    args = parser.parse_args(argv)
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
    document = verdict(figures, time.perf_counter() - started)
    print(f"{'command':<8} {'workload':<11} {'events':>9} {'peak MB':>8}")
    for command in ("dry_run", "send"):
        for name, peaks in figures[command].items():
            for size, peak in peaks.items():
                print(f"{command:<8} {name:<11} {int(size):>9,} {peak:>8.1f}")
    print(orjson.dumps(document["targets"], option=orjson.OPT_INDENT_2).decode())
    return document


if __name__ == "__main__":
    main()
