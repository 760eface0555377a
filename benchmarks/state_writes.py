"""How fast the replay state records outcomes: batched commits against a commit per event.

    python benchmarks/state_writes.py [--events N] [--repeat R] [--cpu]

Each event checks the journal, then is recorded with what it taught (a person id, and for one
event in four an organization membership and a lead origin). Two workloads:

- outcomes only (events with no write: unchanged, skipped, failed lookups), and
- with a write (each event also calls `begin_write`, which always commits before returning).

Each runs with the default batching (`BATCH_SIZE` events or `BATCH_SECONDS`) and with
`batch_size=1`, a commit per event; the best events/s of R repeats is printed, with the ratio.
With --cpu, per second of this process's CPU time rather than of the wall clock: steadier on a
shared machine, and it leaves out the waits for the disk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rudder_pipedrive_cli.core.protocol import ApiRequest, Learned, Outcome
from rudder_pipedrive_cli.io.state import BATCH_SIZE, ReplayState
from rudder_pipedrive_cli.io.state_accounts import namespace_key

NAMESPACE = namespace_key("https://api.pipedrive.com", "benchmark-token")


def outcome(number: int) -> Outcome:
    if number % 4:
        return Outcome(
            status="sent", learned=Learned(identities={("person", f"user-{number}"): number})
        )
    return Outcome(
        status="sent",
        learned=Learned(
            identities={("person", f"user-{number}"): number},
            lead_origins={number: frozenset({f"rpd:msg-{number:09d}"})},
            memberships={number: number % 300},
        ),
    )


def run(
    events: int, batch_size: int, with_write: bool, clock: Callable[[], float] = time.perf_counter
) -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.sqlite"
        started = clock()
        with ReplayState.open(path, NAMESPACE, batch_size=batch_size) as state:
            for number in range(events):
                event_id = f"msg-{number:09d}"
                state.journal_status(event_id)
                if with_write:
                    request = ApiRequest(
                        method="PATCH",
                        path=f"/api/v2/persons/{number}",
                        endpoint="/api/v2/persons/{id}",
                        stage="update person",
                        body={"name": "x"},
                    )
                    state.begin_write(event_id, request, "2026-01-02T03:04:05Z")
                state.record_outcome(event_id, f"in.ndjson:{number}", outcome(number))
        return events / (clock() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", action="store_true", help="per second of CPU time")
    args = parser.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    for label, with_write in (("outcomes only", False), ("with a write", True)):
        batched = max(run(args.events, BATCH_SIZE, with_write, clock) for _ in range(args.repeat))
        single = max(run(args.events, 1, with_write, clock) for _ in range(args.repeat))
        print(
            f"{label:14} batch of {BATCH_SIZE}: {batched:9,.0f} events/s   "
            f"commit per event: {single:9,.0f} events/s   ratio {batched / single:4.1f}x"
        )


if __name__ == "__main__":
    main()
