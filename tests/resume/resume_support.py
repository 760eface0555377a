"""What the resume tests share: `rpd send` against a sandbox in the test process, as a real
subprocess where it is killed or signalled (`start_send`, `Rig.start`) and in-process where it
runs to its end (`run_send`, `Rig.send`), a replay workload, and the sandbox's state in a
normalised view that two runs of the same file can be compared by (RudderStack identities, never
Pipedrive ids).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from short_waits import short_wait
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.io.config import KEYS
from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import GROUP_ID_FIELD, USER_ID_FIELD

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "config.example.toml"
# `rpd` with its retries' waits a hundredth as long (tests/short_waits.py)
RPD = (sys.executable, str(ROOT / "tests" / "short_waits.py"))
TOKEN = "sandbox-token"

ROLE_FIELD = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
PLAN_FIELD = "2166d04123ea6d974ed242877a8d769fe934c896"
INDUSTRY_FIELD = "defb159c0eed85085c8281ba35dedef9760c65bd"
EMPLOYEES_FIELD = "30ad8f346a94dd54e680b1f9410672d8c6253b5b"
SOURCE_FIELD = "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e"
CAMPAIGN_FIELD = "0ad278b60b7e6b783e51a7f5b9cef17d732fe978"
PLANS = ("Free", "Pro", "Enterprise")
INDUSTRIES = ("Software", "Retail", "Finance")

Event = dict[str, Any]


# ---- running rpd --------------------------------------------------------------------------------


def write_config(directory: Path, sandbox: Sandbox, *, name: str = "rpd.toml") -> Path:
    """config.example.toml pointed at the sandbox (base_url), plan unlimited, mode 600; without
    its [[track]] rules (tests/e2e/test_send_track_rules.py resumes those), so every track is a
    lead and no run lists pipelines, stages or activity types."""
    text = EXAMPLE_CONFIG.read_text().split("\n[[track]]", 1)[0]
    for key, value in (("base_url", f'"{sandbox.url}"'), ("plan", '"unlimited"')):
        # The first such line: [pipedrive]'s (a [fields.persons] key is also named plan).
        line = next(line for line in text.splitlines() if line.startswith(f"{key} = "))
        text = text.replace(line, f"{key} = {value}", 1)
    path = directory / name
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def send_command(
    events: Path,
    config: Path,
    *,
    state: Path | None,
    report: Path,
    concurrency: int = 8,
    extra: tuple[str, ...] = (),
) -> list[str]:
    command = [*RPD, "send", str(events)]
    command += ["--config", str(config), "--concurrency", str(concurrency)]
    command += ["--report", str(report), "--dead-letter", str(report.with_suffix(".failed"))]
    if state is not None:
        command += ["--state", str(state)]
    return command + list(extra)


def rpd_env(token: str = TOKEN) -> dict[str, str]:
    """This process's environment without any rpd setting, and the token."""
    unset = {key.env for key in KEYS} | {"RPD_CONFIG"}
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env["PIPEDRIVE_API_TOKEN"] = token
    return env


def start_send(command: list[str], cwd: Path, token: str = TOKEN) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        env=rpd_env(token),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@dataclass(frozen=True, slots=True)
class Finished:
    exit_code: int
    stderr: str
    report: dict[str, Any] | None


def finish(process: subprocess.Popen[bytes], report: Path | None, timeout: float = 60) -> Finished:
    try:
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    document = orjson.loads(report.read_bytes()) if report and report.exists() else None
    return Finished(exit_code=process.returncode, stderr=stderr.decode(), report=document)


def run_send(command: list[str], cwd: Path, token: str = TOKEN) -> Finished:
    """`command` run to its end: an `RPD` command in this process (no process is signalled,
    so one of its own would add only its interpreter's start-up), any other as a process."""
    report = Path(command[command.index("--report") + 1])
    report.unlink(missing_ok=True)
    if tuple(command[: len(RPD)]) != RPD:
        return finish(start_send(command, cwd, token), report)
    env: dict[str, str | None] = {key.env: None for key in KEYS}
    env |= {"RPD_CONFIG": None, "PIPEDRIVE_API_TOKEN": token}
    defaults = PipedriveClient.__init__.__kwdefaults__
    sleep = defaults["sleep"]
    defaults["sleep"] = short_wait  # as tests/short_waits.py runs rpd
    try:
        with contextlib.chdir(cwd):
            result = CliRunner().invoke(app, command[len(RPD) :], env=env)
    finally:
        defaults["sleep"] = sleep
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a process would have said it as an internal error, exit 70
    document = orjson.loads(report.read_bytes()) if report.exists() else None
    return Finished(exit_code=result.exit_code, stderr=result.stderr, report=document)


def wait_for(condition: Callable[[], bool], *, timeout: float = 30.0) -> bool:
    """Poll until `condition()` holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def kill_when(
    process: subprocess.Popen[bytes], condition: Callable[[], bool], timeout: float = 30.0
) -> bool:
    """SIGKILL the process as soon as `condition()` holds; False when it ended on its own first."""
    if not signal_when(process, condition, signal.SIGKILL, timeout):
        return False
    process.wait()
    return True


def signal_when(
    process: subprocess.Popen[bytes],
    condition: Callable[[], bool],
    signum: signal.Signals,
    timeout: float = 30.0,
) -> bool:
    """Send `signum` as soon as `condition()` holds (`finish` then reads how the process ended);
    False when it ended on its own first."""
    reached = wait_for(lambda: process.poll() is not None or condition(), timeout=timeout)
    assert reached, "neither the condition nor the end of the run came in time"
    if process.poll() is not None:
        return False
    process.send_signal(signum)
    return True


def requests_served(sandbox: Sandbox) -> int:
    return sum(sandbox.stats()["requests"].values())


def sandbox_idle() -> bool:
    """A condition: no sandbox of this process is handling a request. A run killed with requests
    in flight leaves some in the server, sent before the kill and applied (and counted) after it:
    a count taken before they end is short, and the next run's stop point, counted from it, can
    be reached by them before that run has even set its signal handlers (SIGTERM then ends it
    -15, not 143). A killed run's connections are closed, so its handler threads end."""
    return not any(t.name.endswith("(process_request_thread)") for t in threading.enumerate())


def served_at_least(sandbox: Sandbox, count: float, key: str | None = None) -> Callable[[], bool]:
    """A condition: the sandbox has served `count` requests (of `key`, "METHOD /template")."""
    if key is None:
        return lambda: requests_served(sandbox) >= count
    return lambda: sandbox.stats()["requests"].get(key, 0) >= count


def journal(state: Path) -> dict[str, str]:
    """Event id -> latest status, over every namespace of the state file (read in place)."""
    with sqlite3.connect(f"{state.resolve().as_uri()}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT event_id, status FROM journal").fetchall())


def inflight_count(state: Path) -> int:
    with sqlite3.connect(f"{state.resolve().as_uri()}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM inflight").fetchone()[0])


@dataclass(frozen=True, slots=True)
class Rig:
    """A sandbox, a config pointing at it and a state file: `rpd send` runs against them."""

    sandbox: Sandbox
    directory: Path
    state: Path | None
    token: str = TOKEN

    @classmethod
    def make(cls, sandbox: Sandbox, directory: Path, state: Path | None, token: str = TOKEN) -> Rig:
        directory.mkdir(parents=True, exist_ok=True)
        write_config(directory, sandbox)
        return cls(sandbox=sandbox, directory=directory, state=state, token=token)

    def command(self, events: list[Event], name: str, *extra: str) -> list[str]:
        file = write_events(self.directory / f"{name}.ndjson", events)
        config = self.directory / "rpd.toml"
        report = self.directory / f"{name}-report.json"
        return send_command(file, config, state=self.state, report=report, extra=extra)

    def send(self, events: list[Event], name: str, *extra: str) -> Finished:
        return run_send(self.command(events, name, *extra), self.directory, self.token)

    def start(self, events: list[Event], name: str, *extra: str) -> subprocess.Popen[bytes]:
        return start_send(self.command(events, name, *extra), self.directory, self.token)


# ---- events -------------------------------------------------------------------------------------

STAMP = "2026-10-01T09:00:00Z"


def identify(message_id: str, user_id: str, **traits: Any) -> Event:
    return {
        "type": "identify",
        "messageId": message_id,
        "userId": user_id,
        "timestamp": STAMP,
        "traits": traits,
    }


def group(message_id: str, user_id: str, group_id: str, **traits: Any) -> Event:
    return {
        "type": "group",
        "messageId": message_id,
        "userId": user_id,
        "groupId": group_id,
        "timestamp": STAMP,
        "traits": traits,
        "context": {"traits": {"name": f"Person {user_id}"}},
    }


def track(message_id: str, user_id: str, name: str, **properties: Any) -> Event:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": user_id,
        "event": name,
        "timestamp": STAMP,
        "properties": properties,
        "context": {"traits": {"name": f"Person {user_id}"}},
    }


def alias(message_id: str, previous_id: str, user_id: str, **traits: Any) -> Event:
    return {
        "type": "alias",
        "messageId": message_id,
        "previousId": previous_id,
        "userId": user_id,
        "timestamp": STAMP,
        "traits": traits,
    }


def user_story(n: int, *, tracks: int, groups: int, prefix: str = "t") -> list[Event]:
    """One user: identify, group, then `tracks` tracks with value, source and campaign."""
    user = f"u-{n}"
    story = [
        identify(
            f"{user}-i",
            user,
            name=f"User {n}",
            email=f"{user}@example.com",
            role=f"role-{n % 5}",
            plan=PLANS[n % 3],
        ),
        group(
            f"{user}-g",
            user,
            f"g-{n % groups}",
            name=f"Group {n % groups}",
            industry=INDUSTRIES[n % groups % 3],
            employees=10 * (n % groups) + 5,
        ),
    ]
    story += [
        track(
            f"{user}-{prefix}{k}",
            user,
            f"Step {k}",
            revenue=n + k,
            currency="EUR",
            source=f"src-{k}",
            campaign=f"camp-{n % 4}",
        )
        for k in range(tracks)
    ]
    return story


def tracks_only(users: int, *, tracks: int, prefix: str) -> list[Event]:
    """New tracks (new message ids) for users a replay already knows."""
    return [
        track(f"u-{n}-{prefix}{k}", f"u-{n}", f"Later {k}", revenue=k, currency="USD")
        for k in range(tracks)
        for n in range(users)
    ]


def interleave(stories: list[list[Event]]) -> list[Event]:
    """Round-robin over the stories, so users' events mix in the file as in a real archive."""
    events: list[Event] = []
    for step in range(max(len(story) for story in stories)):
        events += [story[step] for story in stories if step < len(story)]
    return events


def workload(users: int, *, tracks: int, groups: int, merges: int, rekeys: int) -> list[Event]:
    """Users' stories interleaved, then aliases: `merges` users merged into the next one (both
    exist: PUT merge, then a track on the survivor) and `rekeys` users re-keyed to a new id."""
    assert 2 * merges + rekeys <= users
    events = interleave([user_story(n, tracks=tracks, groups=groups) for n in range(users)])
    for k in range(merges):
        previous, current = f"u-{2 * k}", f"u-{2 * k + 1}"
        events.append(alias(f"merge-{k}", previous, current, role="merged"))
        events.append(track(f"merge-{k}-t", current, "After merge", revenue=1, currency="EUR"))
    for k in range(rekeys):
        n = 2 * merges + k
        events.append(alias(f"rekey-{k}", f"u-{n}", f"u-{n}-new", role="rekeyed"))
    return events


def write_events(path: Path, events: list[Event]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return path


# ---- the sandbox's state, normalised --------------------------------------------------------


def normalised(state: dict[str, Any]) -> dict[str, list[Any]]:
    """Persons by userId, organizations by groupId, leads by origin_id, merges by the survivor's
    userId: sorted lists, so a record made twice shows twice and no Pipedrive id shows at all."""
    orgs = {o["id"]: o["custom_fields"][GROUP_ID_FIELD] for o in state["organizations"]}
    users = {p["id"]: p["custom_fields"][USER_ID_FIELD] for p in state["persons"]}
    persons = [
        (
            p["custom_fields"][USER_ID_FIELD],
            p["name"],
            [e["value"] for e in p["emails"]],
            p["custom_fields"][ROLE_FIELD],
            p["custom_fields"][PLAN_FIELD],
            orgs.get(p["org_id"]),
        )
        for p in state["persons"]
    ]
    organizations = [
        (
            o["custom_fields"][GROUP_ID_FIELD],
            o["name"],
            o["custom_fields"][INDUSTRY_FIELD],
            o["custom_fields"][EMPLOYEES_FIELD],
        )
        for o in state["organizations"]
    ]
    leads = [
        (
            lead["origin_id"],
            lead["title"],
            orjson.dumps(lead["value"], option=orjson.OPT_SORT_KEYS).decode(),
            lead.get(SOURCE_FIELD),
            lead.get(CAMPAIGN_FIELD),
            users.get(lead["person_id"]),
        )
        for lead in state["leads"]
    ]
    merges = [users.get(m["survivor_id"]) for m in state["merges"]]
    return {
        "persons": sorted(persons, key=repr),
        "organizations": sorted(organizations, key=repr),
        "leads": sorted(leads, key=repr),
        "merges": sorted(merges, key=repr),
    }


def census(state: dict[str, Any]) -> dict[str, Counter[str]]:
    """How many persons per userId, organizations per groupId, leads per origin_id, merges per
    survivor's userId: what "exactly once" is about."""
    view = normalised(state)
    return {
        name: Counter(str(row[0]) if isinstance(row, tuple) else str(row) for row in rows)
        for name, rows in view.items()
    }
