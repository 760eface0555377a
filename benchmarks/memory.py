"""Peak memory of `rpd dry-run` and `rpd send` at two input sizes, the larger 10x the smaller.

    python -m benchmarks.memory [--quick]

Each command runs in a fresh process (benchmarks.measure), so its peak RSS is its own,
interpreter and imports included. `send` goes to a sandbox in another process (plan unlimited),
so the records the sandbox keeps do not count. Target: the larger input's peak within 30% of
the smaller's (NDJSON is streamed; the identity cache and journal live in the SQLite state).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.delivery import CONFIG, sandbox, send, write_users
from benchmarks.measure import measured
from benchmarks.verdict import check, main_for, result
from benchmarks.workload import write_events

GROWTH_LIMIT = 1.3  # larger input's peak RSS / smaller input's


def dry_run_peak(events: int, work: Path) -> float:
    path = work / f"dry-{events}.ndjson"
    write_events(path, events, compress=False)
    args = ["dry-run", str(path), "--config", str(CONFIG), "--format", "ndjson", "-q"]
    args += ["-o", "/dev/null", "--state", str(work / "no-state.sqlite")]
    figures = measured(args, work)
    peak: float = figures["peak_mb"]
    return peak


def send_peak(url: str, users: int, work: Path) -> tuple[int, float]:
    path = work / f"send-{users}.ndjson"
    events = write_users(path, users, 4, rounds=False)
    figures = send(url, path, work, plan="unlimited", state=f"state-{users}")
    peak: float = figures["peak_mb"]
    return events, peak


def run(quick: bool) -> dict[str, Any]:
    """Benchmark 2: peak RSS of dry-run and send at N and 10N events."""
    started = time.perf_counter()
    dry_sizes = (500, 5_000) if quick else (20_000, 200_000)
    send_users = (20, 200) if quick else (200, 2_000)  # 5 events a user
    figures: dict[str, Any] = {"dry_run": {}, "send": {}}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for size in dry_sizes:
            figures["dry_run"][str(size)] = round(dry_run_peak(size, work), 1)
        with sandbox("unlimited") as url:
            for users in send_users:
                events, peak = send_peak(url, users, work)
                figures["send"][str(events)] = round(peak, 1)
    targets = []
    growth: dict[str, float] = {}
    for command, peaks in figures.items():
        small, large = peaks.values()
        growth[command] = round(large / small, 3)
        targets.append(
            check(
                f"{command}: peak RSS at 10x input / at 1x",
                growth[command],
                at_most=GROWTH_LIMIT,
                baseline=f"{small} MB",
            )
        )
    figures["growth"] = growth
    return result(
        "memory: peak RSS at two input sizes, 10x apart",
        bound="flat by design: NDJSON is streamed, the identity cache is in SQLite",
        figures=figures,
        baseline={
            "smaller_input_mb": {name: next(iter(figures[name].values())) for name in growth}
        },
        targets=targets,
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main_for(run, __doc__)
