"""Unthrottled delivery: events/s of `rpd send` against a sandbox with no rate limits and 20 ms
of latency on every answer, at concurrency 1, 8 and 32.

    python -m benchmarks.unthrottled [--quick]

Each user has an identify that creates the person and a track that creates a lead (3 requests:
search, create, lead), listed round by round so that consecutive events belong to different
users and may run concurrently. At concurrency 1 every request waits its 20 ms, so the rate at 1
is the baseline: latency bounds it. Target: at 32, at least 20x the rate at 1.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.delivery import sandbox, send, total, write_users
from benchmarks.verdict import check, main_for, result

LATENCY_MS = 20
TRACKS = 1
MIN_SPEEDUP = 20.0
# Users per run: enough for a few seconds at each concurrency.
USERS = {1: 40, 8: 240, 32: 800}
QUICK_USERS = {1: 1, 8: 8, 32: 32}  # one user per concurrent slot


def run(quick: bool) -> dict[str, Any]:
    """Benchmark 5: events/s at concurrency 1, 8 and 32 with 20 ms latency, plan unlimited."""
    started = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    with sandbox("unlimited", latency_ms=LATENCY_MS) as url:
        for concurrency, users in (QUICK_USERS if quick else USERS).items():
            with tempfile.TemporaryDirectory() as folder:
                work = Path(folder)
                path = work / "events.ndjson"
                events = write_users(path, users, TRACKS, rounds=True)
                measured = send(url, path, work, plan="unlimited", concurrency=concurrency)
            report = measured["report"]
            seconds: float = report["duration_s"]
            runs[str(concurrency)] = {
                "events": events,
                "requests": total(report["requests"]),
                "duration_s": seconds,
                "events_per_s": round(events / seconds, 1),
                "requests_per_s": round(total(report["requests"]) / seconds, 1),
                "cpu_s": round(measured["cpu_s"], 2),
                "failed": report["events"]["failed"],
            }
    base = runs["1"]["events_per_s"]
    speedup = {c: round(r["events_per_s"] / base, 2) for c, r in runs.items()}
    figures = {"latency_ms": LATENCY_MS, "by_concurrency": runs, "speedup_vs_1": speedup}
    return result(
        f"unthrottled delivery: plan unlimited, {LATENCY_MS} ms latency",
        bound="latency at low concurrency; the client's CPU (one process, 2 cores shared with "
        "the sandbox) at 32",
        figures=figures,
        baseline={"events_per_s_at_concurrency_1": base},
        targets=[
            check(
                "events/s at concurrency 32 / at 1",
                speedup["32"],
                at_least=MIN_SPEEDUP,
                baseline=f"{base} events/s at 1",
            )
        ],
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main_for(run, __doc__)
