"""Chains of aliases: an anonymousId aliased at every login, and what looking along them costs.

    python -m benchmarks.alias_chains [--aliases 200000] [--previous 1000]
                                      [--send-aliases 5000] [--send-previous 100]

Writes an identify of each previousId (its person), then `--aliases` alias events, login round
by login round: previousId `anon-P` to a new userId `u-P-J` at each login J. The first pass links
each previousId's chain on at its end (core/identity_cache.py `alias_into`), up to MAX_MERGE_HOPS
userIds, so every alias's userId, not found, is looked for along the userIds its chain leads to
(plans/common.py `find`, `aliased_away`): up to 64 lookups an alias, each an itemSearch in a
send (Pipedrive allows about 10 a 2 s).

Prints the searches planned and the time of `rpd dry-run` on it (no state file), and the
itemSearch requests and time of `rpd send --identities search` against `rpd sandbox --plan
unlimited` on a smaller size (`--send-aliases` over `--send-previous`; 0: no send).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks.delivery import CONFIG, SEARCH, sandbox, sandbox_stats, send

SEARCHED = b'"path":"/api/v2/itemSearch/field"'


def write_chains(path: Path, aliases: int, previous: int) -> int:
    """The input: `previous` identifies, then `aliases` aliases round by round; its events."""
    lines = []
    for p in range(previous):
        event = {"type": "identify", "messageId": f"id-{p}", "userId": f"anon-{p}",
                 "timestamp": "2026-10-01T00:00:00Z",
                 "traits": {"name": f"Visitor {p}"}}  # fmt: skip
        lines.append(orjson.dumps(event))
    for n in range(aliases):
        login, p = divmod(n, previous)
        second = 60 + n  # one a second, in input order
        event = {"type": "alias", "messageId": f"al-{n}", "previousId": f"anon-{p}",
                 "userId": f"u-{p}-{login}",
                 "timestamp": f"2026-10-01T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:"
                              f"{second % 60:02d}Z"}  # fmt: skip
        lines.append(orjson.dumps(event))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def dry_run(events: Path, work: Path) -> tuple[int, float, float]:
    """`rpd dry-run` of `events` (no state): the searches it plans, its seconds and CPU seconds
    (the figure that holds on a busy machine)."""
    out = work / "plan.ndjson"
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", str(events), "-c",
               str(CONFIG), "--format", "ndjson", "-o", str(out), "-q",
               "--state", str(work / "none.sqlite")]  # fmt: skip
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, cwd=work)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    searches = 0
    with out.open("rb") as lines:
        for line in lines:
            searches += line.count(SEARCHED)
    out.unlink()
    return searches, seconds, cpu_s


def planned(events: Path, aliases: int, previous: int) -> Path:
    """Write the input of `aliases` over `previous` to `events`, dry-run it, say what it took."""
    count = write_chains(events, aliases, previous)
    searches, seconds, cpu_s = dry_run(events, events.parent)
    print(f"dry-run {aliases} aliases over {previous} previousIds ({count} events): "
          f"{searches} searches planned, {seconds:.1f} s ({cpu_s:.1f} CPU s)")  # fmt: skip
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aliases", type=int, default=200_000)
    parser.add_argument("--previous", type=int, default=1000)
    parser.add_argument("--send-aliases", type=int, default=5000)
    parser.add_argument("--send-previous", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rpd-chains-") as folder:
        work = Path(folder)
        if args.aliases:
            planned(work / "chains.ndjson", args.aliases, args.previous)
        if args.send_aliases:
            events = planned(work / "send.ndjson", args.send_aliases, args.send_previous)
            with sandbox("unlimited") as url:
                figures = send(url, events, work, plan="unlimited", concurrency=args.concurrency,
                               extra=("--identities", "search"))  # fmt: skip
                requests = sandbox_stats(url)["requests"]
            report = figures["report"]
            counts = report["by_type"]  # every event sent: the same persons by fewer requests
            print(f"send {args.send_aliases} aliases over {args.send_previous} previousIds: "
                  f"{requests.get(SEARCH, 0)} itemSearch requests, {sum(requests.values())} "
                  f"requests, {figures['seconds']:.1f} s ({figures['cpu_s']:.1f} CPU s); "
                  f"{counts}")  # fmt: skip


if __name__ == "__main__":
    main()
