"""Identities by search or by index (issue 15), side by side, and the cost of send's first pass.

    python -m benchmarks.identity_index [--quick]

1. A sandbox on the premium plan with its rate limits on (100 requests and 10 searches per 2 s),
   holding 600 persons; 1,200 identify events for 1,200 userIds, the first 600 of them those
   persons; a fresh state. `rpd send --identities search`, then, against a second such sandbox,
   `rpd send --identities index`. For each: requests, searches, API tokens (the send's report)
   and duration; then the index way's ratios to the search way's, and the persons each sandbox
   ends with (exactly one per userId). Targets: index tokens <= 0.35 of search's, searches
   <= 1%, duration <= 0.5.
2. The first pass `send` makes over its files (the input's aliases, and the identities
   `--identities auto` weighs) against `rpd dry-run` of the same input, both in this process:
   target at most 15% of the dry-run's time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.delivery import CONFIG, SEARCH, sandbox, send, total
from benchmarks.send_efficiency import TOKEN
from benchmarks.verdict import check, main_for, result
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.index import Survey, input_aliases
from rudder_pipedrive_cli.core.intake import intake
from rudder_pipedrive_cli.io.readers import EventReader

PLAN = "premium"
USER_ID_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
MAX_TOKENS = 0.35
MAX_SEARCHES = 0.01
MAX_DURATION = 0.5
MAX_FIRST_PASS = 0.15
SEED_PACE_S = 0.025  # 40 creates a second, under premium's 50
SETTLE_S = 2.1  # after the seed: an empty burst window (2 s) for the send
# --quick: 4 userIds (2 existing), under one window's 10 searches and 100 requests with the seed:
# no wait for an empty window; and a first pass over 20 events.
QUICK_USERS, QUICK_PASS = 4, 20


def identify(n: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"idx-{n}",
        "userId": f"idx-user-{n}",
        "timestamp": "2026-10-01T09:00:00Z",
        "traits": {"name": f"Index User {n}", "email": f"idx-{n}@example.com", "role": "Dev"},
    }


def seed(url: str, existing: int, settle_s: float) -> None:
    """`existing` persons made by another client, paced under the plan's burst window, then
    `settle_s` without a request."""
    with httpx.Client(base_url=url, headers={"x-api-token": TOKEN}, timeout=30) as client:
        for n in range(existing):
            body = {"name": f"Existing {n}", "custom_fields": {USER_ID_FIELD: f"idx-user-{n}"}}
            while True:
                response = client.post("/api/v2/persons", json=body)
                if response.status_code != 429:
                    response.raise_for_status()
                    break
                time.sleep(float(response.headers.get("retry-after", "1")))
            time.sleep(SEED_PACE_S)
    time.sleep(settle_s)


def persons_per_user(url: str) -> dict[str, int]:
    response = httpx.get(f"{url}/_sandbox/state", headers={"x-api-token": TOKEN}, timeout=30)
    response.raise_for_status()
    counts: dict[str, int] = {}
    for person in response.json()["persons"]:
        user = str(person["custom_fields"].get(USER_ID_FIELD))
        counts[user] = counts.get(user, 0) + 1
    return counts


def one_way(
    way: str, events: Path, users: int, existing: int, work: Path, settle_s: float
) -> dict[str, Any]:
    with sandbox(PLAN) as url:
        seed(url, existing, settle_s)
        run = send(url, events, work, plan=PLAN, state=f"state-{way}", extra=("--identities", way))
        counts = persons_per_user(url)
    report = run["report"]
    requests: dict[str, int] = report["requests"]
    one_each = sorted(counts) == sorted(f"idx-user-{n}" for n in range(users)) and set(
        counts.values()
    ) == {1}
    return {
        "identities": report["identities"],
        "requests": total(requests),
        "searches": requests.get(SEARCH, 0),
        "tokens": report["tokens"],
        "duration_s": report["duration_s"],
        "index": report.get("identity_index"),
        "persons": sum(counts.values()),
        "one_person_per_user_id": one_each,
        "outcomes": report["events"],
    }


def first_pass_share(path: Path, work: Path) -> dict[str, Any]:
    """Seconds of send's first pass over `path`, and of `rpd dry-run` of it (in this process)."""
    from typer.testing import CliRunner

    from rudder_pipedrive_cli.cli.main import app

    started = time.perf_counter()
    survey = Survey()
    input_aliases(
        intake(EventReader([str(path)]), EventFilter.from_options(None, None, None), None), survey
    )
    first = time.perf_counter() - started
    started = time.perf_counter()
    args = ["dry-run", str(path), "--config", str(CONFIG), "--format", "ndjson"]
    args += ["-o", str(work / "plan.ndjson"), "-q", "--state", str(work / "none.sqlite")]
    done = CliRunner().invoke(app, args, env={"PIPEDRIVE_API_TOKEN": ""})
    dry_run = time.perf_counter() - started
    if done.exit_code != 0:
        raise RuntimeError(f"rpd dry-run exited {done.exit_code}: {done.stderr}")
    return {
        "events": sum(1 for _ in path.open("rb")),
        "first_pass_s": round(first, 3),
        "dry_run_s": round(dry_run, 3),
        "share": round(first / dry_run, 3),
        "identities_counted": len(survey.persons),
    }


def run(quick: bool) -> dict[str, Any]:
    """Identities by search against by index; the first pass against a dry-run."""
    started = time.perf_counter()
    users = QUICK_USERS if quick else 1200
    existing = users // 2
    settle_s = 0.0 if quick else SETTLE_S
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        events = work / "events.ndjson"
        events.write_bytes(b"".join(orjson.dumps(identify(n)) + b"\n" for n in range(users)))
        search = one_way("search", events, users, existing, work, settle_s)
        index = one_way("index", events, users, existing, work, settle_s)
        big = work / "pass.ndjson"
        count = QUICK_PASS if quick else 100_000
        big.write_bytes(
            b"".join(
                orjson.dumps(identify(n % 5_000) | {"messageId": f"p-{n}"}) + b"\n"
                for n in range(count)
            )
        )
        first_pass = first_pass_share(big, work)

    def ratio(name: str) -> float | None:
        return round(index[name] / search[name], 4) if search[name] else None

    ratios = {name: ratio(name) for name in ("requests", "searches", "tokens", "duration_s")}
    both_right = search["one_person_per_user_id"] and index["one_person_per_user_id"]
    return result(
        "identities: by index against by search (premium plan, 1,200 userIds, 600 existing)",
        bound="search: 10 itemSearch calls per 2 s and 20 tokens each; index: the burst window",
        figures={
            "users": users,
            "existing": existing,
            "search": search,
            "index": index,
            "ratios": ratios,
            "first_pass": first_pass,
        },
        baseline={"search": search},
        targets=[
            check("index tokens / search tokens", ratios["tokens"], at_most=MAX_TOKENS),
            check("index searches / search searches", ratios["searches"], at_most=MAX_SEARCHES),
            check("index duration / search duration", ratios["duration_s"], at_most=MAX_DURATION),
            check(
                "both ways: one person per userId (1 = yes)",
                1.0 if both_right else 0.0,
                at_least=1.0,
            ),
            check("first pass / dry-run time", first_pass["share"], at_most=MAX_FIRST_PASS),
        ],
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main_for(run, __doc__)
