"""Start-up: `rpd --help` and `rpd dry-run` on 10 events, against a bare `import typer, rich`.

    python -m benchmarks.startup [--repeat R]

Each command runs R times in a fresh interpreter (as a user's shell starts it, with bytecode
caches as an installed rpd has them), interleaved with the baseline so a busy machine slows all
three alike. Printed: the median wall time of each and its ratio to the baseline, and the
ratios of CPU time (user + system), which a busy machine disturbs less. Target: both within 2x
of the baseline (issue 14, item 13).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.verdict import check, result
from benchmarks.workload import write_events

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0
BASELINE = [sys.executable, "-c", "import typer, rich"]


def commands(events: Path) -> dict[str, list[str]]:
    rpd = [sys.executable, "-m", "rudder_pipedrive_cli"]
    config = str(ROOT / "config.example.toml")
    return {
        "baseline": BASELINE,
        "help": [*rpd, "--help"],
        # As a first try runs it: the plan and the summary printed (to /dev/null here).
        "dry_run": [*rpd, "dry-run", str(events), "--config", config],
    }


def environment(work: Path) -> dict[str, str]:
    """As an installed rpd runs: with bytecode caches (pip compiles on install), kept in `work`
    rather than beside the sources; PYTHONDONTWRITEBYTECODE would compile rpd on every start."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return env | {
        "PYTHONPATH": str(ROOT),
        "PYTHONPYCACHEPREFIX": str(work / "pycache"),
        "COLUMNS": "80",
    }


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, env=environment(cwd))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: a dry-run where some events would fail
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def measure(repeat: int, *, warm: bool = True) -> dict[str, Any]:
    """Each command `repeat` times, interleaved; `warm`, each run once before, unmeasured."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        events = work / "events.ndjson"
        write_events(events, 10, compress=False)
        runs = commands(events)
        walls: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        if warm:  # once each, unmeasured: bytecode written, disk cache warm
            for command in runs.values():
                timed(command, work)
        for _ in range(repeat):
            for name, command in runs.items():
                seconds, cpu = timed(command, work)
                walls[name].append(seconds)
                cpus[name].append(cpu)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    return {
        "repeat": repeat,
        "baseline_s": round(wall["baseline"], 4),
        "help_s": round(wall["help"], 4),
        "dry_run_s": round(wall["dry_run"], 4),
        "help_ratio": round(wall["help"] / wall["baseline"], 3),
        "dry_run_ratio": round(wall["dry_run"] / wall["baseline"], 3),
        "baseline_cpu_s": round(cpu["baseline"], 4),
        "help_cpu_ratio": round(cpu["help"] / cpu["baseline"], 3),
        "dry_run_cpu_ratio": round(cpu["dry_run"] / cpu["baseline"], 3),
    }


def run(quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    # --quick: each command once, its bytecode written as it runs (a smoke run's figures are not
    # read, and a warm-up would start three more interpreters).
    figures = measure(1, warm=False) if quick else measure(21)
    return result(
        "start-up: rpd --help and rpd dry-run on 10 events, fresh interpreters",
        bound="imports: what a command loads before its first line of output",
        figures=figures,
        baseline={"import_typer_rich_s": figures["baseline_s"]},
        targets=[
            check(
                "rpd --help / bare import",
                figures["help_ratio"],
                at_most=TARGET_RATIO,
                baseline=figures["baseline_s"],
            ),
            check(
                "rpd dry-run 10 events / bare import",
                figures["dry_run_ratio"],
                at_most=TARGET_RATIO,
                baseline=figures["baseline_s"],
            ),
            check(
                "rpd dry-run 10 events / bare import, CPU time",
                figures["dry_run_cpu_ratio"],
                at_most=TARGET_RATIO,
                baseline=figures["baseline_cpu_s"],
            ),
        ],
        seconds=time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args(argv)
    figures = measure(args.repeat)
    print(f"median of {figures['repeat']} fresh interpreters each:")
    print(f"  python -c 'import typer, rich'  {figures['baseline_s']:.3f} s")
    help_s, help_ratio = figures["help_s"], figures["help_ratio"]
    print(f"  rpd --help                      {help_s:.3f} s  ({help_ratio:.2f}x)")
    print(
        f"  rpd dry-run (10 events)         {figures['dry_run_s']:.3f} s  "
        f"({figures['dry_run_ratio']:.2f}x)"
    )
    print(
        f"CPU time against the baseline's {figures['baseline_cpu_s']:.3f} s (steadier on a busy "
        f"machine): --help {figures['help_cpu_ratio']:.2f}x, dry-run "
        f"{figures['dry_run_cpu_ratio']:.2f}x"
    )
    return figures


if __name__ == "__main__":
    main()
