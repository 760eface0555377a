"""What the replay state costs and saves, in Pipedrive API tokens and lookups (SPEC 5).

    python benchmarks/resume_cost.py [--users 300] [--tracks 3] [--kill-at 0.5] [--repeat 3]
                                      [--json]

(a) Resume: the same file replayed once straight through, and `--repeat` times killed (SIGKILL)
    when the sandbox has served `--kill-at` of the straight run's requests, then rerun with the
    same state to the end. Printed: tokens (the sandbox's `x-token-cost` sum) and requests of
    each, what each interruption added, by endpoint, and the median added tokens.
(b) Cache: after a first replay, a second file of NEW tracks for the same users, sent with that
    replay's state, and with a fresh state (two identical sandboxes). Printed: itemSearch lookups,
    lead listings and tokens of each.

`rpd send` runs as a subprocess (`python -m rudder_pipedrive_cli send ...`), the sandbox in this
process on loopback with plan unlimited, so pacing never waits and the figures are counts, not
timings. Each user: identify, group (one of users/10 organizations), then `--tracks` tracks;
the users' events interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from rudder_pipedrive_cli.io.config import KEYS
from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "config.example.toml"
TOKEN = "sandbox-token"
STAMP = "2026-10-01T09:00:00Z"
SEARCH = "GET /api/v2/itemSearch/field"
LISTING = "GET /v1/leads"


def events(users: int, tracks: int, *, prefix: str, stories: bool) -> list[dict[str, Any]]:
    """Each user's identify and group (with `stories`) and tracks; the users' events shuffled
    together (seeded), as in a real archive."""
    groups = max(1, users // 10)
    per_user: list[list[dict[str, Any]]] = []
    for n in range(users):
        base = {"userId": f"u-{n}", "timestamp": STAMP}
        story = [
            base | {"type": "identify", "messageId": f"u-{n}-i", "traits": {"name": f"User {n}"}},
            base
            | {
                "type": "group",
                "messageId": f"u-{n}-g",
                "groupId": f"g-{n % groups}",
                "traits": {"name": f"Group {n % groups}"},
            },
        ]
        story = story if stories else []
        story += [
            base
            | {
                "type": "track",
                "messageId": f"u-{n}-{prefix}{k}",
                "event": f"{prefix} {k}",
                "properties": {"revenue": n + k, "currency": "EUR"},
                "context": {"traits": {"name": f"User {n}"}},
            }
            for k in range(tracks)
        ]
        per_user.append(story)
    turns = [n for n, story in enumerate(per_user) for _ in story]
    random.Random(0).shuffle(turns)  # users' events mixed; each user's in its order
    return [per_user[n].pop(0) for n in turns]


def write_events(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def write_config(directory: Path, sandbox: Sandbox) -> Path:
    text = EXAMPLE_CONFIG.read_text()
    for key, value in (("base_url", f'"{sandbox.url}"'), ("plan", '"unlimited"')):
        line = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(line, f"{key} = {value}", 1)
    path = directory / f"rpd-{sandbox.url.rsplit(':', 1)[1]}.toml"
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def start(file: Path, sandbox: Sandbox, state: Path, directory: Path) -> subprocess.Popen[bytes]:
    unset = {key.env for key in KEYS} | {"RPD_CONFIG"}
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env["PIPEDRIVE_API_TOKEN"] = TOKEN
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "send", str(file), "-q"]
    command += ["--config", str(write_config(directory, sandbox)), "--state", str(state)]
    command += ["--concurrency", "8", "--dead-letter", str(directory / "failed.ndjson")]
    return subprocess.Popen(
        command, env=env, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def send(file: Path, sandbox: Sandbox, state: Path, directory: Path) -> None:
    process = start(file, sandbox, state, directory)
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"rpd send exited {process.returncode}: {stderr.decode()[-2000:]}")


def served(sandbox: Sandbox) -> int:
    return sum(sandbox.stats()["requests"].values())


def kill_at(process: subprocess.Popen[bytes], reached: Callable[[], bool]) -> bool:
    """SIGKILL once `reached()` holds; False when the run ended first."""
    while process.poll() is None and not reached():
        time.sleep(0.002)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


@dataclass(frozen=True, slots=True)
class Spent:
    tokens: int
    requests: Counter[str]

    @classmethod
    def of(cls, sandbox: Sandbox, since: Spent | None = None) -> Spent:
        stats = sandbox.stats()
        spent = cls(tokens=stats["tokens"], requests=Counter(stats["requests"]))
        if since is None:
            return spent
        return cls(tokens=spent.tokens - since.tokens, requests=spent.requests - since.requests)

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def resume_cost(work: Path, users: int, tracks: int, share: float, repeat: int) -> dict[str, Any]:
    file = write_events(work / "events.ndjson", events(users, tracks, prefix="t", stories=True))
    with Sandbox(SandboxOptions(plan="unlimited")) as straight:
        send(file, straight, work / "straight.sqlite", work)
        through = Spent.of(straight)
    kills: list[dict[str, Any]] = []
    for attempt in range(repeat):
        with Sandbox(SandboxOptions(plan="unlimited")) as broken:
            state = work / f"resumed-{attempt}.sqlite"
            # The sandbox's threads print a traceback for each connection the kill resets.
            with contextlib.redirect_stderr(io.StringIO()):
                process = start(file, broken, state, work)
                if not kill_at(process, lambda: served(broken) >= share * through.total):
                    raise SystemExit("the run ended before the kill: use a larger --users")
                at_kill = Spent.of(broken)
                send(file, broken, state, work)
                resumed = Spent.of(broken)
            origins = Counter(lead["origin_id"] for lead in broken.state()["leads"])
            statuses = broken.stats()["statuses"]
        extra = resumed.requests.copy()
        extra.subtract(through.requests)
        kills.append(
            {
                "killed_at": {"tokens": at_kill.tokens, "requests": at_kill.total},
                "resumed_total": {"tokens": resumed.tokens, "requests": resumed.total},
                "added_tokens": resumed.tokens - through.tokens,
                "added_requests": {key: n for key, n in sorted(extra.items()) if n},
                # Exactly-once, checked: leads made twice, and requests refused (a request cut
                # short by the kill arrives incomplete and is refused, not applied).
                "duplicate_leads": sum(n - 1 for n in origins.values()),
                "refused": {code: n for code, n in statuses.items() if code.startswith("4")},
            }
        )
    return {
        "events": users * (2 + tracks),
        "straight": {"tokens": through.tokens, "requests": through.total},
        "kills": kills,
        "median_added_tokens": statistics.median(kill["added_tokens"] for kill in kills),
    }


def cache_savings(work: Path, users: int, tracks: int) -> dict[str, Any]:
    first = write_events(work / "first.ndjson", events(users, tracks, prefix="t", stories=True))
    later = write_events(work / "later.ndjson", events(users, tracks, prefix="n", stories=False))
    figures: dict[str, Any] = {"new_tracks": users * tracks}
    for name, fresh in (("with_state", False), ("fresh_state", True)):
        with Sandbox(SandboxOptions(plan="unlimited")) as sandbox:
            state = work / f"{name}.sqlite"
            send(first, sandbox, state, work)
            before = Spent.of(sandbox)
            send(later, sandbox, work / f"{name}-fresh.sqlite" if fresh else state, work)
            spent = Spent.of(sandbox, before)
        figures[name] = {
            "itemSearch": spent.requests[SEARCH],
            "lead_listings": spent.requests[LISTING],
            "leads_created": spent.requests["POST /v1/leads"],
            "tokens": spent.tokens,
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--tracks", type=int, default=3)
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3, help="interrupted replays to measure")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        resume = resume_cost(work, args.users, args.tracks, args.kill_at, args.repeat)
        cache = cache_savings(work, args.users, args.tracks)
    if args.json:
        print(orjson.dumps({"resume": resume, "cache": cache}, option=orjson.OPT_INDENT_2).decode())
        return
    straight = resume["straight"]
    print(f"(a) {resume['events']} events, SIGKILL at {args.kill_at:.0%} of the requests, resumed")
    print(f"    straight through : {straight['tokens']:>7} tokens {straight['requests']:>6} req")
    for kill in resume["kills"]:
        total = kill["resumed_total"]
        print(
            f"    killed + resumed : {total['tokens']:>7} tokens {total['requests']:>6} req  "
            f"added {kill['added_tokens']:>4} ({kill['added_tokens'] / straight['tokens']:+.2%}) "
            f"{kill['added_requests']}; duplicate leads {kill['duplicate_leads']}, "
            f"refused {kill['refused']}"
        )
    median = resume["median_added_tokens"]
    print(f"    median added     : {median:>7} tokens ({median / straight['tokens']:+.2%})")
    print(f"(b) {cache['new_tracks']} new tracks for the same {args.users} users")
    for name in ("with_state", "fresh_state"):
        row = cache[name]
        print(
            f"    {name:<12}: {row['itemSearch']:>5} itemSearch  {row['lead_listings']:>5} "
            f"lead listings  {row['leads_created']:>5} leads  {row['tokens']:>7} tokens"
        )
    saved = cache["fresh_state"]["itemSearch"] - cache["with_state"]["itemSearch"]
    tokens = cache["fresh_state"]["tokens"] - cache["with_state"]["tokens"]
    print(f"    the cache saved {saved} lookups and {tokens} tokens")


if __name__ == "__main__":
    main()
