"""What the delivery benchmarks share: a sandbox in its own process, and `rpd send` measured in
another (benchmarks.measure), so neither shares the other's interpreter, GIL or memory.

The workload is send_efficiency's: per user an identify that creates the person, then tracks
that each create a lead; every event succeeds, so every request is one a replay needs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.measure import measured
from benchmarks.send_efficiency import TOKEN, user_events

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.example.toml"
SEARCH = "GET /api/v2/itemSearch/field"
LEAD_LIST = "GET /v1/leads"
LOOKUPS = (SEARCH, LEAD_LIST)  # requests that find records rather than write them


@contextmanager
def sandbox(plan: str, latency_ms: int = 0) -> Iterator[str]:
    """`rpd sandbox` on a free loopback port in a subprocess; yields its URL."""
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "sandbox", "--port", "0"]
    command += ["--plan", plan, "--latency-ms", str(latency_ms)]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        yield line.split()[-1]
    finally:
        server.terminate()
        server.wait(timeout=10)


def sandbox_stats(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/_sandbox/stats", headers={"x-api-token": TOKEN}, timeout=10)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def send(
    url: str,
    events: Path,
    work: Path,
    *,
    plan: str,
    concurrency: int = 8,
    state: str = "state",
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`rpd send` of `events` against `url` with the state file `work/STATE.sqlite` (the same
    name again resumes it): the measurement, plus the send's `--report` as "report"."""
    report = work / "report.json"
    args = ["send", str(events), "--config", str(CONFIG), "--base-url", url, "--plan", plan]
    args += ["--concurrency", str(concurrency), "--report", str(report), "-q"]
    args += ["--state", str(work / f"{state}.sqlite")]
    args += ["--dead-letter", str(work / "failed.ndjson"), *extra]
    figures = measured(args, work, {"PIPEDRIVE_API_TOKEN": TOKEN})
    if figures["exit"] != 0:
        raise RuntimeError(f"rpd send exited {figures['exit']} on {events}")
    figures["report"] = orjson.loads(report.read_bytes())
    return figures


def write_users(path: Path, users: int, tracks: int, *, rounds: bool, replay: int = 0) -> int:
    """Each user's identify and tracks (send_efficiency's events). `rounds` lists every identify,
    then the tracks round by round, so consecutive events belong to different users. `replay` > 0
    gives new events (new messageIds, lead titles, traits) for the same users."""
    per_user = [user_events(n, tracks) for n in range(users)]
    if replay:
        for events in per_user:
            for event in events:
                event["messageId"] = f"{event['messageId']}-r{replay}"
                if event["type"] == "track":
                    event["event"] = f"{event['event']} (replay {replay})"
                else:
                    event["traits"]["role"] = f"Engineer {replay}"
    if rounds:
        ordered = [group[k] for k in range(tracks + 1) for group in per_user]
    else:
        ordered = [event for group in per_user for event in group]
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in ordered))
    return len(ordered)


def total(requests: dict[str, int], keys: tuple[str, ...] | None = None) -> int:
    return sum(n for key, n in requests.items() if keys is None or key in keys)
