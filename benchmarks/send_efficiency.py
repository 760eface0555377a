"""How close `rpd send` comes to the fewest requests, and to the plan's rate limit (SPEC 5).

    python benchmarks/send_efficiency.py [--users 200] [--tracks 4] [--plan unlimited]
                                         [--concurrency 8] [--layout grouped|rounds]

Writes N users' events (an identify that creates the person, then `--tracks` tracks, each a lead)
and runs `rpd send` on them in this process against a sandbox of `--plan` started in another
process (so server and client do not share a GIL), then compares:

- requests and API tokens per event with the minimum: one lookup and one create per new identity,
  one write per event (here: 1 search + 1 create per user, 1 lead per track), plus the field
  catalog fetched once per run (4 listings). Target: within 5%.
- events/s (meaningful with `--plan unlimited`: no pacing).
- with a rate-limited plan, the share of the limit used: the fastest a replay of these requests
  could go under the plan's burst window (plan's requests per 2 s) and search window (10 per 2 s),
  against the measured duration (target >= 85%); and 429s as a share of requests (target < 2%),
  from the sandbox's own count.

`--layout grouped` (default) lists each user's events together, `rounds` lists every identify
first, then the tracks round by round (an archive sorted by time looks more like this).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.costs import BURST_LIMITS, SEARCH_LIMIT, WINDOW_S, token_cost

TOKEN = "sandbox-token"
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.example.toml"
CATALOG_REQUESTS = {
    "GET /api/v2/personFields": 1,
    "GET /api/v2/organizationFields": 1,
    "GET /api/v2/dealFields": 1,
    "GET /v1/leadLabels": 1,
}
SEARCH = "GET /api/v2/itemSearch/field"


def user_events(n: int, tracks: int) -> list[dict[str, Any]]:
    user = f"bench-{n}"
    events: list[dict[str, Any]] = [
        {
            "type": "identify",
            "messageId": f"{user}-0",
            "userId": user,
            "timestamp": "2026-10-01T09:00:00Z",
            "traits": {"name": f"User {n}", "email": f"{user}@example.com", "role": "Engineer"},
        }
    ]
    events += [
        {
            "type": "track",
            "messageId": f"{user}-{k}",
            "userId": user,
            "event": f"Step {k}",
            "timestamp": "2026-10-01T09:00:00Z",
            "properties": {"revenue": 10 * k, "currency": "EUR", "campaign": "bench"},
        }
        for k in range(1, tracks + 1)
    ]
    return events


def write_workload(path: Path, users: int, tracks: int, layout: str) -> int:
    per_user = [user_events(n, tracks) for n in range(users)]
    if layout == "grouped":
        events = [event for group in per_user for event in group]
    else:
        events = [group[k] for k in range(tracks + 1) for group in per_user]
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return len(events)


def start_sandbox(plan: str) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "rudder_pipedrive_cli", "sandbox", "--port", "0", "--plan", plan],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("listening on "):
        server.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return server, line.split()[-1]


def sandbox_stats(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/_sandbox/stats", headers={"x-api-token": TOKEN})
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def run_send(url: str, events: Path, plan: str, concurrency: int, work: Path) -> dict[str, Any]:
    report = work / "report.json"
    args = [
        "send",
        str(events),
        "--config",
        str(CONFIG),
        "--base-url",
        url,
        "--plan",
        plan,
        "--concurrency",
        str(concurrency),
        "--report",
        str(report),
        "--state",
        str(work / "state.sqlite"),
        "--dead-letter",
        str(work / "failed.ndjson"),
        "-q",
    ]
    os.environ["PIPEDRIVE_API_TOKEN"] = TOKEN
    try:
        app(args, prog_name="rpd")
    except SystemExit as exit_:
        if exit_.code:
            raise SystemExit(f"rpd send exited {exit_.code}") from None
    result: dict[str, Any] = orjson.loads(report.read_bytes())
    return result


def fastest_seconds(requests: dict[str, int], plan: str) -> float | None:
    """The least time these requests need under the plan's windows, each window's first burst
    being free: max over the windows of (requests beyond one window's worth) / rate."""
    burst = BURST_LIMITS[plan]
    if burst is None:
        return None
    total = sum(requests.values())
    searches = requests.get(SEARCH, 0)
    return max(
        max(total - burst, 0) * WINDOW_S / burst,
        max(searches - SEARCH_LIMIT, 0) * WINDOW_S / SEARCH_LIMIT,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--plan", default="unlimited", choices=sorted(BURST_LIMITS))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--layout", default="grouped", choices=("grouped", "rounds"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        events_path = work / "events.ndjson"
        count = write_workload(events_path, args.users, args.tracks, args.layout)
        server, url = start_sandbox(args.plan)
        try:
            started = time.perf_counter()
            report = run_send(url, events_path, args.plan, args.concurrency, work)
            seconds = time.perf_counter() - started
            stats = sandbox_stats(url)
        finally:
            server.terminate()
            server.wait(timeout=10)

    requests: dict[str, int] = report["requests"]
    sent = sum(requests.values())
    minimum = {
        SEARCH: args.users,
        "POST /api/v2/persons": args.users,
        "POST /v1/leads": args.users * args.tracks,
    } | CATALOG_REQUESTS
    least = sum(minimum.values())
    least_tokens = sum(n * token_cost(key) for key, n in minimum.items())
    print(
        f"workload: {args.users} users x (1 identify + {args.tracks} tracks) = {count} events, "
        f"layout {args.layout}, plan {args.plan}, concurrency {args.concurrency}"
    )
    print(f"events: {report['events']}")
    print(
        f"requests: {sent} ({sent / count:.3f}/event); minimum {least} ({least / count:.3f}/event)"
        f"; ratio {sent / least:.3f}"
    )
    print(
        f"API tokens: {report['tokens']} ({report['tokens'] / count:.2f}/event); minimum "
        f"{least_tokens} ({least_tokens / count:.2f}/event); ratio "
        f"{report['tokens'] / least_tokens:.3f}"
    )
    extra = {k: n - minimum.get(k, 0) for k, n in requests.items() if n != minimum.get(k, 0)}
    print(f"requests beyond the minimum: {extra or 'none'}")
    print(f"duration: {seconds:.2f} s; {count / seconds:.1f} events/s; {sent / seconds:.1f} req/s")
    fastest = fastest_seconds(requests, args.plan)
    served = sum(stats["requests"].values())
    print(
        f"429s served: {stats['rate_limited']} ({100 * stats['rate_limited'] / served:.2f}% of "
        f"{served} requests); edge 403s: {stats['forbidden']}; client retries: "
        f"{report['retries']}"
    )
    if fastest is not None:
        print(
            f"rate limit used: {100 * fastest / seconds:.1f}% (fastest possible under "
            f"{args.plan}: {fastest:.1f} s for {sent} requests, {requests.get(SEARCH, 0)} of them "
            "searches)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
