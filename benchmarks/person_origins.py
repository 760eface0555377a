"""CPU time of one person's N track events: each costs the same whatever N (a person's record
origins are asked one at a time and grown by one origin per create, core/identity_cache.py).

    python -m benchmarks.person_origins [--sizes 5000,20000,80000]

For each N (one identify of u1 with a name, then N tracks "Order Completed" of u1, distinct
messageIds), three measurements, each in CPU seconds (steadier than wall time on a shared
machine):

- dry-run: `rpd dry-run --config config.example.toml --format ndjson -o /dev/null -q` in a fresh
  process (benchmarks/measure.py; imports excluded): the plans and the bounded memory tables;
- state: a replay state file written as a send writes it, in this process: per track the journal's
  question, the plan's (`has_origin`) and its outcome (an `Added` origin, `record_outcome`);
- read-only state: the same questions and outcomes over that file opened read-only (a dry-run's
  state: what it learns is kept in memory over the file's rows).

It prints each N's CPU seconds, microseconds per track, and per track added since the previous N
(the dry-run's seconds hold its start: config, catalog): the same at every N when the cost grows
linearly (before, a track of one person cost O(N): 1.4 s at 5,000, 24 s at 20,000).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.measure import ROOT, measured
from rudder_pipedrive_cli.core.identity_cache import Added
from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import namespace_key

NAMESPACE = namespace_key("https://api.pipedrive.com", "benchmark-token")
PERSON = 42
STAMP = "2026-10-01T09:00:00Z"


def write_events(path: Path, tracks: int) -> Path:
    """One identify of u1 with a name, then `tracks` tracks of u1, as the issue's reproduction."""
    lines = [
        {"type": "identify", "userId": "u1", "messageId": "i-1", "traits": {"name": "Ada"}},
        *(
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": f"t-{n}"}
            for n in range(tracks)
        ),
    ]
    path.write_bytes(b"".join(orjson.dumps({**line, "timestamp": STAMP}) + b"\n" for line in lines))
    return path


def dry_run(work: Path, tracks: int) -> float:
    events = write_events(work / f"one-person-{tracks}.ndjson", tracks)
    config = str(ROOT / "config.example.toml")
    args = ["dry-run", "--config", config, "--format", "ndjson", "-o", "/dev/null", "--quiet"]
    args.append(str(events))
    figures = measured(args, work)
    assert figures["exit"] == 0, figures
    return float(figures["cpu_s"])


def tracks_into(state: ReplayState, tracks: int) -> None:
    """What a send asks and records per track of one person whose leads were listed (none)."""
    for n in range(tracks):
        event_id, origin = f"t-{n}", f"rpd:t-{n}"
        state.journal_status(event_id)
        assert state.has_origin(PERSON, origin) is False
        done = Outcome(status="sent", learned=Learned(lead_origins={PERSON: Added((origin,))}))
        state.record_outcome(event_id, f"input.ndjson:{n + 2}", done)


def state_file(work: Path, tracks: int) -> tuple[float, float]:
    """CPU seconds of `tracks` tracks into a state file, then of as many over it read-only."""
    path = work / f"state-{tracks}.sqlite"
    with ReplayState.open(path, NAMESPACE) as state:
        listed = Learned(lead_origins={PERSON: frozenset()})  # listed: none
        state.learn(Outcome(status="sent", learned=listed))
        started = time.process_time()
        tracks_into(state, tracks)
        written = time.process_time() - started
    with ReplayState.open(path, NAMESPACE, readonly=True) as dry:
        started = time.process_time()
        for n in range(tracks):  # other events of the same person, learned in memory
            origin = f"rpd:again-{n}"
            assert dry.has_origin(PERSON, origin) is False
            dry.learn(
                Outcome(status="sent", learned=Learned(lead_origins={PERSON: Added((origin,))}))
            )
        read_only = time.process_time() - started
    return written, read_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,20000,80000", help="track events of the person")
    sizes = [int(size) for size in parser.parse_args().sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        for tracks in sizes:
            rows.append((tracks, dry_run(work, tracks), *state_file(work, tracks)))
    print(f"{'tracks':>8}  {'where':<16}{'CPU s':>8}  {'us/track':>9}  {'us/added track':>14}")
    for column, where in enumerate(("dry-run", "state", "read-only state"), start=1):
        before = (0, 0.0)
        for row in rows:
            tracks, cpu = row[0], row[column]
            added = (cpu - before[1]) / (tracks - before[0]) if before[0] else None
            shown = "" if added is None else f"{added * 1e6:.1f}"
            print(f"{tracks:>8}  {where:<16}{cpu:>8.2f}  {cpu / tracks * 1e6:>9.1f}  {shown:>14}")
            before = (tracks, cpu)


if __name__ == "__main__":
    main()
