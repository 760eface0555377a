"""The differential replay's harness (test_resume_differential.py, test_resume_ways.py): one mixed
workload (persons who join and move between organizations, with leads, deals, calls and notes, a
merge, a re-key, a nameless person's failing track and a repeated messageId), a fresh sandbox and
state per way of sending it, and the CRM it ends in as a view without Pipedrive's ids and clock.
The events' timestamps follow input order, so recency and input order agree."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from resume_support import (
    EXAMPLE_CONFIG,
    Event,
    Finished,
    alias,
    group,
    identify,
    interleave,
    run_send,
    send_command,
    track,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions
from rudder_pipedrive_cli.sandbox.seed import GROUP_ID_FIELD, USER_ID_FIELD

USERS = 24
DAY_1 = datetime(2026, 10, 1, tzinfo=UTC)
# Pipedrive's ids and clock, and the links they make (mapped to identities instead).
UNCOMPARED = {"id", "add_time", "update_time", "person_id", "org_id", "lead_id", "deal_id"}
UNCOMPARED |= {"participants", "organization_id"}


def story(n: int) -> list[Event]:
    """User n: an identify, then by n % 3 leads and a skipped page view; a group, then a deal, a
    call and a note (every second one moves to another group, then a deal and a note there); or a
    deal before its group and one after it."""
    user = f"u-{n}"
    events = [identify(f"{user}-i", user, name=f"User {n}", email=f"{user}@example.com")]
    if n % 3 == 1:
        events += [track(f"{user}-lead", user, "Signed Up", revenue=n, currency="EUR")]
        events += [track(f"{user}-view", user, "Page Viewed", url="/x")]
    elif n % 3 == 0:
        events += [
            group(f"{user}-g", user, f"g-{n % 4}", name=f"Group {n % 4}", employees=n),
            track(f"{user}-deal", user, "Demo Requested", campaign=f"c{n}", revenue=n),
            track(f"{user}-call", user, "Call Scheduled", topic=f"t{n}", page="/p"),
            track(f"{user}-note", user, "Support Ticket Opened", priority="low", subject="s"),
        ]
        if n % 2 == 0:
            moved = (n + 1) % 4
            events += [
                group(f"{user}-g2", user, f"g-{moved}", name=f"Group {moved}"),
                track(f"{user}-deal2", user, "Demo Requested", campaign="moved"),
                track(f"{user}-note2", user, "Support Ticket Opened", subject="moved"),
            ]
    else:
        events += [
            track(f"{user}-pre", user, "Demo Requested", campaign="pre"),
            group(f"{user}-g", user, f"g-{n % 4}", name=f"Group {n % 4}"),
            track(f"{user}-post", user, "Demo Requested", campaign="post"),
        ]
    return events


def workload() -> list[Event]:
    events = interleave([story(n) for n in range(USERS)])
    events += [
        alias("merge", "u-1", "u-4", role="merged"),  # both exist: a merge
        track("merge-t", "u-4", "Demo Requested", campaign="after merge"),
        alias("rekey", "u-7", "new-7", role="rekeyed"),
        track("rekey-t", "new-7", "Call Scheduled", topic="rekeyed"),
        {**track("nameless-t", "nobody", "Signed Up"), "context": {"traits": {}}},  # fails
        events[5],  # a repeated messageId
    ]
    # Two days: the windows way splits them.
    step = (timedelta(days=2) - timedelta(minutes=1)) / len(events)
    for k, event in enumerate(events):
        event["timestamp"] = (DAY_1 + k * step).strftime("%Y-%m-%dT%H:%M:%SZ")
    return events


def config(directory: Path, sandbox: Sandbox) -> Path:
    """config.example.toml, its [[track]] rules too (deals, activities, notes, skips), pointed at
    the sandbox, plan unlimited, mode 600."""
    text = EXAMPLE_CONFIG.read_text()
    for key, value in (("base_url", f'"{sandbox.url}"'), ("plan", '"unlimited"')):
        line = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(line, f"{key} = {value}", 1)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rpd.toml"
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def crm(sandbox: Sandbox) -> dict[str, list[str]]:
    """Every record without Pipedrive's ids and clock, its person and organization by userId and
    groupId (an activity's participants too): sorted, so a record made twice shows twice."""
    state = sandbox.state()
    users = {p["id"]: p["custom_fields"].get(USER_ID_FIELD) for p in state["persons"]}
    orgs = {o["id"]: o["custom_fields"].get(GROUP_ID_FIELD) for o in state["organizations"]}

    def seen(record: dict[str, Any]) -> str:
        kept = {key: value for key, value in record.items() if key not in UNCOMPARED}
        kept["person"] = users.get(record.get("person_id"))
        kept["org"] = orgs.get(record.get("org_id", record.get("organization_id")))
        kept["with"] = [users.get(p["person_id"]) for p in record.get("participants") or []]
        return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode()

    kinds = ("persons", "organizations", "leads", "deals", "activities", "notes")
    view = {kind: sorted(map(seen, state[kind])) for kind in kinds}
    view["merges"] = sorted(str(users.get(m["survivor_id"])) for m in state["merges"])
    return view


class Way:
    """A fresh sandbox, a config and a state: sends of `events` (a file or a folder) to them."""

    def __init__(self, sandbox: Sandbox, directory: Path, events: Path) -> None:
        self.sandbox, self.directory, self.events = sandbox, directory, events
        self.config = config(directory, sandbox)
        self.runs = 0

    def command(self, *extra: str) -> list[str]:
        self.runs += 1
        report = self.directory / f"run-{self.runs}.json"
        state = self.directory / "state.sqlite"
        return send_command(self.events, self.config, state=state, report=report, extra=extra)

    def send(self, *extra: str) -> Finished:
        run = run_send(self.command(*extra), self.directory)
        assert run.exit_code in (0, 1), run.stderr[-2000:]  # 1: the nameless event failed
        assert_adds_up(run, self.directory / f"run-{self.runs}.failed")
        return run

    def converged(self) -> dict[str, list[str]]:
        """The CRM once a rerun with the same state sends nothing more, checked by one more."""
        view = crm(self.sandbox)
        again = self.send()
        assert again.report is not None
        assert again.report["events"]["sent"] == 0, again.report["events"]
        assert crm(self.sandbox) == view
        return view


def assert_adds_up(run: Finished, dead_letter: Path) -> None:
    assert run.report is not None, run.stderr[-2000:]
    counts = run.report["events"]
    outcomes = ("sent", "unchanged", "skipped", "failed", "not_attempted")
    assert counts["read"] == sum(counts.get(name, 0) for name in outcomes), counts
    letters = dead_letter.read_bytes().splitlines() if dead_letter.exists() else []
    assert len(letters) == counts["failed"], counts


def backup(root: Path, events: list[Event], late: str) -> Path:
    """The events as a backup folder (SPEC 2): an object per 20 events received at their time,
    but the event `late` (a messageId) received a day later, in the last object."""
    received = [
        (datetime.fromisoformat(e["timestamp"]) + timedelta(days=e["messageId"] == late), e)
        for e in events
    ]
    received.sort(key=lambda pair: pair[0])
    for k in range(0, len(received), 20):
        chunk = received[k : k + 20]
        first, last = (int(chunk[i][0].timestamp()) for i in (0, -1))
        day = chunk[0][0]
        name = f"src/gw/{day:%Y-%m-%d}/{day:%H}/i-1/{first}_{last}_ws-{k}.json.gz"
        lines = [
            {"userId": e["userId"], "payload": e, "createdAt": f"{when:%Y-%m-%dT%H:%M:%SZ}"}
            for when, e in chunk
        ]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(gzip.compress(b"".join(orjson.dumps(x) + b"\n" for x in lines)))
    return root


def undisturbed(directory: Path) -> dict[str, list[str]]:
    """The CRM the workload ends in, sent sequentially in one run (and the rerun that must send
    nothing): what every other way must end in."""
    with Sandbox(SandboxOptions(plan="unlimited")) as sandbox:
        way = Way(sandbox, directory, write_events(directory / "w.ndjson", workload()))
        first = way.send("--concurrency", "1")
        assert first.report is not None and first.report["events"]["failed"] == 1
        return way.converged()
