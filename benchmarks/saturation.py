"""How much of the growth plan's rate limit `rpd send` uses, and how many 429s it meets.

    python -m benchmarks.saturation [--quick]

U users (an identify that creates the person, then T tracks that each create a lead) go to a
sandbox that enforces the growth plan: 40 requests per rolling 2 s, searches 10 per 2 s, with
the real x-ratelimit headers and 429s. The fastest any client could send the same requests is
set by those windows (each window's first burst is free; send_efficiency.fastest_seconds); the
share used is that time over the measured duration of the send. 429s are the sandbox's count
over every request it served.

Targets: at least 85% of the limit used, under 2% of requests answered 429.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.delivery import sandbox, sandbox_stats, send, total, write_users
from benchmarks.send_efficiency import fastest_seconds
from benchmarks.verdict import check, main_for, result

PLAN = "growth"
TRACKS = 5
MIN_SHARE = 0.85
MAX_429_SHARE = 0.02
# --quick: the fewest users whose requests (2 + TRACKS each, and the catalog) overflow one burst
# window of 40, so the send waits on the limit and the share used is measured (fewer: None).
QUICK_USERS = 6


def run(quick: bool) -> dict[str, Any]:
    """Benchmark 4: share of the growth plan's rate limit used, share of 429s."""
    started = time.perf_counter()
    users = QUICK_USERS if quick else 60
    with tempfile.TemporaryDirectory() as folder, sandbox(PLAN) as url:
        work = Path(folder)
        path = work / "events.ndjson"
        events = write_users(path, users, TRACKS, rounds=False)
        report = send(url, path, work, plan=PLAN)["report"]
        stats = sandbox_stats(url)
    requests: dict[str, int] = report["requests"]
    seconds: float = report["duration_s"]
    fastest = fastest_seconds(requests, PLAN)
    served = sum(stats["requests"].values())
    share = round(fastest / seconds, 3) if fastest and seconds > 0 else None
    figures = {
        "plan": PLAN,
        "events": events,
        "requests": total(requests),
        "searches": requests.get("GET /api/v2/itemSearch/field", 0),
        "duration_s": seconds,
        "fastest_possible_s": round(fastest or 0.0, 2),
        "limit_share_used": share,
        "requests_per_s": round(total(requests) / seconds, 2) if seconds > 0 else None,
        "served": served,
        "served_429": stats["rate_limited"],
        "share_429": round(stats["rate_limited"] / served, 4) if served else None,
        "edge_403": stats["forbidden"],
        "client_retries": report["retries"],
        "outcomes": report["events"],
    }
    return result(
        f"saturation: share of the {PLAN} plan's rate limit used, and 429s",
        bound="the API's rate limits (40 requests and 10 searches per 2 s on growth)",
        figures=figures,
        baseline={"fastest_possible_s": figures["fastest_possible_s"]},
        targets=[
            check(
                "share of the rate limit used",
                share,
                at_least=MIN_SHARE,
                baseline=f"{figures['fastest_possible_s']} s at the limit",
            ),
            check("share of requests answered 429", figures["share_429"], at_most=MAX_429_SHARE),
        ],
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main_for(run, __doc__)
