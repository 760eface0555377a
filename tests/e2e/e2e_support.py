"""What the end-to-end tests share: running `rpd send` in-process against a real loopback sandbox,
writing configs and inputs, and reading the sandbox's state by RudderStack identity."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.costs import token_cost
from rudder_pipedrive_cli.io.config import KEYS
from rudder_pipedrive_cli.sandbox import Sandbox, routes, seed
from rudder_pipedrive_cli.sandbox.seed import Field

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_CONFIG = ROOT / "config.example.toml"
TOKEN = "sandbox-token"

USER_ID_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
ROLE_FIELD = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
PLAN_FIELD = "2166d04123ea6d974ed242877a8d769fe934c896"
GROUP_ID_FIELD = "872513dc3f908b99275edf2d09fcc9a467df9fa5"
INDUSTRY_FIELD = "defb159c0eed85085c8281ba35dedef9760c65bd"
EMPLOYEES_FIELD = "30ad8f346a94dd54e680b1f9410672d8c6253b5b"
SOURCE_FIELD = "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e"
CAMPAIGN_FIELD = "0ad278b60b7e6b783e51a7f5b9cef17d732fe978"
HOT = "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"

# The field and label listings every send makes before its first event, one page each.
LISTINGS = {  # what a send with config.example.toml asks before its first event
    "GET /v1/users/me": 1,  # the account: the state's namespace
    "GET /api/v2/personFields": 1,
    "GET /api/v2/organizationFields": 1,
    "GET /api/v2/dealFields": 1,
    "GET /v1/leadLabels": 1,
    # What config.example.toml's track rules name (a pipeline, a stage, an activity type).
    "GET /api/v2/pipelines": 1,
    "GET /api/v2/stages": 1,
    "GET /v1/activityTypes": 1,
}

# One event at a time: records made in the order of the input's lines, so with the ids an input
# names them by (at the default concurrency, which event's create lands first is timing's).
ONE = ("--concurrency", "1")

# The environment a run sees: none of the caller's rpd settings leak in.
CLEAN_ENV: dict[str, str | None] = {key.env: None for key in KEYS}
CLEAN_ENV["RPD_CONFIG"] = None


@dataclass(frozen=True, slots=True)
class SendRun:
    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    dead_letter: Path
    exception: BaseException | None

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        if not self.dead_letter.exists():
            return []
        return [orjson.loads(line) for line in self.dead_letter.read_bytes().splitlines()]


def rpd_send(
    sandbox: Sandbox | None,
    tmp_path: Path,
    *inputs: str | Path,
    config: Path = EXAMPLE_CONFIG,
    token: str | None = TOKEN,
    args: tuple[str, ...] = (),
    state: Path | None = None,
    dead_letter: Path | None = None,
    name: str = "run",
    stdin: bytes | None = None,
) -> SendRun:
    """`rpd send INPUTS --base-url SANDBOX --plan unlimited` in-process; report and dead letters
    go to `tmp_path` (named after `name`), the state to `state` (default: one per test)."""
    report = tmp_path / f"{name}-report.json"
    letters = dead_letter or tmp_path / f"{name}-failed.ndjson"
    command = ["send", *(str(path) for path in inputs), "--config", str(config)]
    if sandbox is not None:
        command += ["--base-url", sandbox.url]
    if "--plan" not in args:
        command += ["--plan", "unlimited"]
    command += ["--report", str(report), "--dead-letter", str(letters)]
    command += ["--state", str(state or tmp_path / "state.sqlite"), *args]
    env = dict(CLEAN_ENV)
    if token is not None:
        env["PIPEDRIVE_API_TOKEN"] = token
    result = CliRunner().invoke(app, command, env=env, input=stdin)
    return SendRun(
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        report=orjson.loads(report.read_bytes()) if report.exists() else None,
        dead_letter=letters,
        exception=result.exception if not isinstance(result.exception, SystemExit) else None,
    )


def write_config(tmp_path: Path, *, name: str = "rpd.toml", **replacements: str) -> Path:
    """config.example.toml with `key = value` lines replaced, written with mode 600."""
    text = EXAMPLE_CONFIG.read_text()
    for key, value in replacements.items():
        lines = [line for line in text.splitlines() if line.startswith(f"{key} = ")]
        assert len(lines) == 1, f"{key} is not a single line of the example config"
        text = text.replace(lines[0], f"{key} = {value}")
    path = tmp_path / name
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def example_without_rules() -> str:
    """config.example.toml without its [[track]] rules: a run that lists only the fields."""
    return EXAMPLE_CONFIG.read_text().split("\n[[track]]", 1)[0]


def add_sandbox_fields(monkeypatch: pytest.MonkeyPatch, entity: str, *added: Field) -> None:
    """Give the sandbox's `entity` more fields for one test: its seed's and its listing's."""
    fields = {**seed.FIELDS, entity: (*seed.FIELDS[entity], *added)}
    monkeypatch.setattr(seed, "FIELDS", fields)
    monkeypatch.setattr(routes, "FIELDS", fields)  # the listing's own reference


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return path


def identify(message_id: str, user_id: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": message_id,
        "userId": user_id,
        "timestamp": "2026-10-01T09:00:00Z",
        "traits": traits,
    }


def track(message_id: str, user_id: str, event: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": user_id,
        "event": event,
        "timestamp": "2026-10-01T09:00:00Z",
        "properties": properties,
    }


def group(message_id: str, user_id: str, group_id: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "messageId": message_id,
        "userId": user_id,
        "groupId": group_id,
        "timestamp": "2026-10-01T09:00:00Z",
        "traits": traits,
    }


def alias(message_id: str, previous_id: str, user_id: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "alias",
        "messageId": message_id,
        "previousId": previous_id,
        "userId": user_id,
        "timestamp": "2026-10-01T09:00:00Z",
        "traits": traits,
    }


@dataclass(frozen=True, slots=True)
class Holdings:
    """The sandbox's state, indexed by the RudderStack identities rpd wrote into it."""

    state: dict[str, Any]

    @property
    def persons(self) -> list[dict[str, Any]]:
        return list(self.state["persons"])

    @property
    def organizations(self) -> list[dict[str, Any]]:
        return list(self.state["organizations"])

    @property
    def leads(self) -> list[dict[str, Any]]:
        return list(self.state["leads"])

    @property
    def merges(self) -> list[dict[str, Any]]:
        return list(self.state["merges"])

    def user_ids(self) -> Counter[str]:
        return Counter(p["custom_fields"][USER_ID_FIELD] for p in self.persons)

    def group_ids(self) -> Counter[str]:
        return Counter(o["custom_fields"][GROUP_ID_FIELD] for o in self.organizations)

    def origin_ids(self) -> Counter[str]:
        return Counter(lead["origin_id"] for lead in self.leads)

    def person(self, user_id: str) -> dict[str, Any]:
        (found,) = [p for p in self.persons if p["custom_fields"][USER_ID_FIELD] == user_id]
        return found

    def org(self, group_id: str) -> dict[str, Any]:
        (found,) = [o for o in self.organizations if o["custom_fields"][GROUP_ID_FIELD] == group_id]
        return found

    def user_of(self, person_id: int) -> str:
        return str(
            next(p for p in self.persons if p["id"] == person_id)["custom_fields"][USER_ID_FIELD]
        )

    def group_of(self, org_id: int | None) -> str | None:
        if org_id is None:
            return None
        return str(
            next(o for o in self.organizations if o["id"] == org_id)["custom_fields"][
                GROUP_ID_FIELD
            ]
        )

    def lead(self, origin_id: str) -> dict[str, Any]:
        (found,) = [lead for lead in self.leads if lead["origin_id"] == origin_id]
        return found


def archive_deal(sandbox: Sandbox, deal_id: int) -> None:
    """Archive a deal as Pipedrive's web app does (the sandbox has no route for it)."""
    with sandbox.app.lock:
        sandbox.app.store.sales.deals[deal_id]["is_archived"] = True


def holdings(sandbox: Sandbox) -> Holdings:
    return Holdings(sandbox.state())


# A report an earlier run left at --report: a send stopped while starting (Ctrl-C, SIGTERM, the
# token refused) wrote none, and a script reading the path after the run took the earlier run's
# 9 sent for this one's.
STALE_REPORT = b'{"events": {"read": 9, "sent": 9}}\n'


def assert_stopped_while_starting(report: dict[str, Any] | None, exit_code: int, said: str) -> None:
    """The --report of a send stopped while starting: nothing read, its stop's exit and words."""
    assert report is not None
    assert report["events"] == {"read": 0, "sent": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    assert (report["identities"], report["dead_letter"]) == (None, None)
    assert report["stopped"] == {"exit": exit_code, "reason": said}


def assert_report_adds_up(report: dict[str, Any]) -> None:
    """SPEC 6's shape, and counts that add up."""
    # failed_by_reason: only when events failed (a cause, then the later events it failed);
    # identity_index, identities_by_search: only when identities went by index (its pages and
    # refreshes; the identities searched for all the same). writes: only when something was
    # written. left_to_settle: only when events outside the run have writes left in flight;
    # left_by_rule: only when events a skip rule took have.
    # stopped: only a run that stopped early (its exit and words).
    by_index = {"identity_index", "identities_by_search"}
    optional = {"failed_by_reason", "writes", "left_to_settle", "left_by_rule", "stopped"}
    optional |= by_index
    assert set(report.get("stopped", {"exit": 4, "reason": ""})) == {"exit", "reason"}
    assert set(report) - optional == {
        "identities",
        "events",
        "by_type",
        "skipped_by_reason",
        "requests",
        "retries",
        "rate_limited",
        "tokens",
        "duration_s",
        "dead_letter",
    }
    events = report["events"]
    assert sum(report["skipped_by_reason"].values()) == events["skipped"]
    # not_attempted: only a run that stopped early (Ctrl-C, SIGTERM, unreachable, the budget).
    assert set(events) - {"not_attempted"} == {"read", "sent", "unchanged", "skipped", "failed"}
    assert events.get("not_attempted", 1) > 0
    outcomes = ("sent", "unchanged", "skipped", "failed")
    assert events["read"] == sum(events[name] for name in outcomes) + events.get("not_attempted", 0)
    for name in outcomes:
        assert events[name] == sum(counts.get(name, 0) for counts in report["by_type"].values())
    for counts in report["by_type"].values():
        assert set(counts) <= set(outcomes)
    assert all(isinstance(n, int) and n > 0 for n in report["requests"].values())
    # Every request is counted; a refused one (429) costs nothing, so only then can tokens be less.
    priced = sum(n * token_cost(key) for key, n in report["requests"].items())
    assert report["tokens"] == priced if report["rate_limited"] == 0 else report["tokens"] < priced
    assert isinstance(report["duration_s"], float | int)
    assert report["identities"] in ("search", "index")
    assert by_index & set(report) == (by_index if report["identities"] == "index" else set())
    assert set(report.get("identities_by_search", ())) <= {"userId", "groupId"}
    assert report.get("left_to_settle", 1) > 0
    assert report.get("left_by_rule", 1) > 0
    causes = report.get("failed_by_reason", {})
    assert bool(causes) == (events["failed"] > 0)
    assert sum(c["events"] + c["later_events"] for c in causes.values()) == events["failed"]


def assert_resumed(sandbox: Sandbox, tmp_path: Path, events: Path, state: Path, done: int) -> None:
    """A rerun with the state after a stopped run of `events` (identifies of u-0..u-N, `done`
    of them finished): it skips those, sends the rest, and each userId has one person."""
    total = len(events.read_bytes().splitlines())
    resumed = rpd_send(sandbox, tmp_path, events, state=state, name="resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.report is not None
    assert resumed.report["events"] == {
        "read": total,
        "sent": total - done,
        "unchanged": 0,
        "skipped": done,
        "failed": 0,
    }
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(total)}
