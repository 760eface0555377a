"""Requests and API tokens per event against the fewest a replay can make (SPEC 5).

    python -m benchmarks.efficiency [--quick]

A first replay of U users (each an identify that creates the person and T tracks that each
create a lead) to an empty sandbox, then a second replay, with the same state file, of new
events for the same users (an identify that changes a trait, T new tracks). The fewest requests:

- first replay: per user one search and one create, one lead per track, and the field catalog
  (4 listings: person, organization and deal fields, lead labels);
- second replay: one write per event (the identify's PATCH, a lead per track), no lookup (the
  state knows every person and their leads) and no catalog (SPEC 3 caches it in the state).

Targets: requests and tokens within 5% of the minimum on both; no lookup on the second.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.delivery import LOOKUPS, SEARCH, sandbox, send, total, write_users
from benchmarks.send_efficiency import CATALOG_REQUESTS
from benchmarks.verdict import check, main_for, result
from rudder_pipedrive_cli.core.costs import token_cost

TRACKS = 4
WITHIN = 1.05


def tokens(requests: dict[str, int]) -> int:
    return sum(n * token_cost(key) for key, n in requests.items())


def replay_figures(
    events: int, requests: dict[str, int], minimum: dict[str, int], spent: int
) -> dict[str, Any]:
    least, least_tokens = total(minimum), tokens(minimum)
    return {
        "events": events,
        "requests": total(requests),
        "minimum_requests": least,
        "requests_ratio": round(total(requests) / least, 4),
        "tokens": spent,
        "minimum_tokens": least_tokens,
        "tokens_ratio": round(spent / least_tokens, 4),
        "requests_per_event": round(total(requests) / events, 3),
        "tokens_per_event": round(spent / events, 2),
        "lookups": total(requests, LOOKUPS),
        "beyond_minimum": {
            key: n - minimum.get(key, 0)
            for key, n in sorted(requests.items())
            if n != minimum.get(key, 0)
        },
    }


def run(quick: bool) -> dict[str, Any]:
    """Benchmark 3: requests and tokens per event against the minimum, first and second replay."""
    started = time.perf_counter()
    users = 2 if quick else 300
    with tempfile.TemporaryDirectory() as folder, sandbox("unlimited") as url:
        work = Path(folder)
        first_path, second_path = work / "first.ndjson", work / "second.ndjson"
        first_events = write_users(first_path, users, TRACKS, rounds=False)
        second_events = write_users(second_path, users, TRACKS, rounds=False, replay=1)
        first = send(url, first_path, work, plan="unlimited")["report"]
        second = send(url, second_path, work, plan="unlimited")["report"]
    first_min = {
        SEARCH: users,
        "POST /api/v2/persons": users,
        "POST /v1/leads": users * TRACKS,
    } | CATALOG_REQUESTS
    # No catalog: SPEC 3 caches the field listings in the state, so a rerun need not list them.
    second_min = {"PATCH /api/v2/persons/{id}": users, "POST /v1/leads": users * TRACKS}
    figures: dict[str, Any] = {
        "users": users,
        "tracks_per_user": TRACKS,
        "first_replay": replay_figures(first_events, first["requests"], first_min, first["tokens"]),
        "second_replay": replay_figures(
            second_events, second["requests"], second_min, second["tokens"]
        ),
        "outcomes": {"first": first["events"], "second": second["events"]},
    }
    targets = []
    for name in ("first_replay", "second_replay"):
        replay = figures[name]
        label = name.replace("_", " ")
        targets.append(
            check(
                f"{label}: requests / minimum",
                replay["requests_ratio"],
                at_most=WITHIN,
                baseline=replay["minimum_requests"],
            )
        )
        targets.append(
            check(
                f"{label}: API tokens / minimum",
                replay["tokens_ratio"],
                at_most=WITHIN,
                baseline=replay["minimum_tokens"],
            )
        )
    targets.append(check("second replay: lookups", figures["second_replay"]["lookups"], at_most=0))
    return result(
        "efficiency: requests and API tokens per event against the minimum",
        bound="the API's daily token budget: every token spent is one the replay needs",
        figures=figures,
        baseline={"first_replay_minimum": first_min, "second_replay_minimum": second_min},
        targets=targets,
        seconds=time.perf_counter() - started,
    )


if __name__ == "__main__":
    main_for(run, __doc__)
