"""A track rule changed between runs on one state reaches the events an earlier run skipped by
rule (SPEC 4 `skip`, SPEC 5 state): a rule's skip depends on the config, as a `--type` filter's
does, so it is not journaled as done, and a finished object (a folder's file, a bucket's object)
read under other skip rules is read again; events sent already stay done, nothing twice."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
from e2e_support import (
    CLEAN_ENV,
    TOKEN,
    SendRun,
    assert_report_adds_up,
    example_without_rules,
    identify,
    rpd_send,
    write_events,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.protocol import ApiRequest
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.sandbox import Sandbox


def rules_config(tmp_path: Path, create: str) -> Path:
    """config.example.toml with one rule: track events "X" become `create`."""
    path = tmp_path / f"{create}.toml"
    path.write_text(f'{example_without_rules()}\n[[track]]\nevents = ["X"]\ncreate = "{create}"\n')
    os.chmod(path, 0o600)
    return path


def track(message_id: str, event: str) -> dict[str, Any]:
    return {"type": "track", "messageId": message_id, "userId": "u-1", "event": event}


EVENTS = [
    identify("m-0", "u-1", name="Ada Lovelace"),
    track("m-1", "X"),
    track("m-2", "Y"),  # no rule: a lead
    track("m-3", "X"),
]


DEAL_RULE = "track #1 (deal)"
LEAD = ApiRequest(
    method="POST", path="/v1/leads", endpoint="/v1/leads", stage="create lead", body={"title": "X"}
)


def inflight_events(state: Path) -> list[str]:
    with sqlite3.connect(state) as db:
        return [row[0] for row in db.execute("SELECT DISTINCT event_id FROM inflight")]


def assert_counts(run: SendRun, *, sent: int, skipped: int, reasons: dict[str, int]) -> None:
    """The run read the four events, ended well, sent `sent` and skipped the rest for `reasons`."""
    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"] == {
        "read": 4,
        "sent": sent,
        "unchanged": 0,
        "skipped": skipped,
        "failed": 0,
    }
    assert run.report["skipped_by_reason"] == reasons


def deal_origins(sandbox: Sandbox) -> list[str]:
    return sorted(deal["origin_id"] for deal in sandbox.state()["deals"])


def test_a_skip_rule_changed_to_a_deal_rule_makes_the_deals_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Found by playing (hunt25): the second run said "already done" for the events the first
    skipped by rule, and made no deal."""
    events = write_events(tmp_path / "in.ndjson", EVENTS)
    skip, deal = rules_config(tmp_path, "skip"), rules_config(tmp_path, "deal")
    args = ("--concurrency", "1")

    first = rpd_send(sandbox, tmp_path, events, config=skip, args=args, name="skip")
    assert_counts(first, sent=2, skipped=2, reasons={"track rule: skip": 2})
    assert deal_origins(sandbox) == []

    second = rpd_send(sandbox, tmp_path, events, config=deal, args=args, name="deal")
    assert_counts(second, sent=2, skipped=2, reasons={"already done": 2})
    assert deal_origins(sandbox) == ["rpd:m-1", "rpd:m-3"]

    third = rpd_send(sandbox, tmp_path, events, config=deal, args=args, name="again")
    assert_counts(third, sent=0, skipped=4, reasons={"already done": 4})
    assert deal_origins(sandbox) == ["rpd:m-1", "rpd:m-3"]
    assert [lead["origin_id"] for lead in sandbox.state()["leads"]] == ["rpd:m-2"]


def test_a_rerun_with_the_skip_rule_unchanged_says_its_events_skipped_by_the_rule(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "in.ndjson", EVENTS)
    skip = rules_config(tmp_path, "skip")
    first = rpd_send(sandbox, tmp_path, events, config=skip, name="one")
    assert first.exit_code == 0, first.stderr

    again = rpd_send(sandbox, tmp_path, events, config=skip, name="two")

    assert_counts(again, sent=0, skipped=4, reasons={"already done": 2, "track rule: skip": 2})
    assert deal_origins(sandbox) == []


def test_a_folder_finished_under_a_skip_rule_is_read_again_under_another(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Its files were recorded finished (every event done) and never read again: the events
    the skip rule took were out of reach of any later rule."""
    folder = tmp_path / "backup"
    folder.mkdir()
    write_events(folder / "a.json", EVENTS[:2])
    write_events(folder / "b.json", EVENTS[2:])
    skip, deal = rules_config(tmp_path, "skip"), rules_config(tmp_path, "deal")
    args = ("--concurrency", "1")
    first = rpd_send(sandbox, tmp_path, folder, config=skip, args=args, name="skip")
    assert first.exit_code == 0, first.stderr
    resumed = rpd_send(sandbox, tmp_path, folder, config=skip, args=args, name="resumed")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming: 2 objects finished by an earlier run not read again" in resumed.stderr
    assert resumed.report is not None and resumed.report["events"]["read"] == 0
    # dry-run reads the objects a send would: none under the skip rule, all under the deal rule
    command = ["dry-run", str(folder), "--base-url", sandbox.url, "-f", "ndjson"]
    command += ["--state", str(tmp_path / "state.sqlite")]
    env = {**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN}
    unchanged = CliRunner().invoke(app, [*command, "--config", str(skip)], env=env)
    assert unchanged.exit_code == 0, unchanged.stderr
    assert "resuming: 2 objects finished by an earlier run not read again" in unchanged.stderr
    assert unchanged.stdout == ""
    preview = CliRunner().invoke(app, [*command, "--config", str(deal)], env=env)
    assert preview.exit_code == 0, preview.stderr
    assert "resuming" not in preview.stderr
    planned = [orjson.loads(line) for line in preview.stdout.splitlines()]
    assert [(plan["id"], plan["outcome"], plan["reason"]) for plan in planned] == [
        ("m-0", "skipped", "already done"),
        ("m-1", "planned", ""),
        ("m-2", "skipped", "already done"),
        ("m-3", "planned", ""),
    ]
    assert [plan["rule"] for plan in planned[1:]] == [DEAL_RULE, "no rule (lead)", DEAL_RULE]
    assert planned[3]["requests"][-1]["path"] == "/api/v2/deals"

    second = rpd_send(sandbox, tmp_path, folder, config=deal, args=args, name="deal")

    assert "resuming" not in second.stderr
    assert_counts(second, sent=2, skipped=2, reasons={"already done": 2})
    assert deal_origins(sandbox) == ["rpd:m-1", "rpd:m-3"]
    third = rpd_send(sandbox, tmp_path, folder, config=deal, args=args, name="again")
    assert third.exit_code == 0, third.stderr
    assert "resuming: 2 objects finished by an earlier run not read again" in third.stderr
    assert third.report is not None and third.report["events"]["read"] == 0
    assert deal_origins(sandbox) == ["rpd:m-1", "rpd:m-3"]


def test_a_repeat_of_a_message_id_a_skip_rule_took_is_already_done_in_that_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """One messageId is one event (issue 20): its first line decides, as dry-run plans it, and
    as a run without a state has it. With a journal, which no longer keeps a rule's skip, the
    run remembers it itself; the rerun again."""
    events = write_events(tmp_path / "in.ndjson", [*EVENTS[:2], track("m-1", "Y"), EVENTS[3]])
    skip = rules_config(tmp_path, "skip")
    args = ("--concurrency", "1")
    for name in ("one", "two"):
        run = rpd_send(sandbox, tmp_path, events, config=skip, args=args, name=name)
        reasons = {"track rule: skip": 2, "already done": 1}
        if name == "one":
            assert_counts(run, sent=1, skipped=3, reasons=reasons)
        else:  # the identify done
            assert_counts(run, sent=0, skipped=4, reasons={**reasons, "already done": 2})
    assert sandbox.state()["leads"] == []


def test_writes_left_in_flight_for_an_event_a_skip_rule_took_are_said_as_the_rule_s(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Found by playing (rev25a): a run killed while m-1's lead was posted, then rerun with m-1's
    name skipped, said 'outside this run' of m-1, read by that run, and 'send it again', which
    the same run did without settling it. The write stays for a rule that sends m-1: it may be
    in Pipedrive, so that run reconciles it (no lead twice)."""
    events = write_events(tmp_path / "in.ndjson", EVENTS)
    skip, lead = rules_config(tmp_path, "skip"), rules_config(tmp_path, "lead")
    args = ("--concurrency", "1")
    first = rpd_send(sandbox, tmp_path, events, config=skip, args=args, name="skip")
    assert_counts(first, sent=2, skipped=2, reasons={"track rule: skip": 2})
    state = tmp_path / "state.sqlite"
    with sqlite3.connect(state) as db:
        (namespace,) = db.execute("SELECT DISTINCT ns FROM runs").fetchone()
    with ReplayState.open(state, namespace) as replay_state:  # as a lead rule's killed run left
        replay_state.begin_write("m-1", LEAD, "2026-01-02T03:04:05Z")

    again = rpd_send(sandbox, tmp_path, events, config=skip, args=args, name="again")

    assert_counts(again, sent=0, skipped=4, reasons={"already done": 2, "track rule: skip": 2})
    assert again.stderr.endswith(
        "warning: 1 event a skip rule took has writes an earlier run left in flight (perhaps "
        "made in Pipedrive): a run whose rules send it settles them\n"
    )
    assert again.report is not None and again.report["left_by_rule"] == 1
    assert "left_to_settle" not in again.report
    assert inflight_events(state) == ["m-1"]

    leads = rpd_send(sandbox, tmp_path, events, config=lead, args=args, name="lead")

    assert_counts(leads, sent=2, skipped=2, reasons={"already done": 2})
    assert "left_by_rule" not in leads.report  # type: ignore[operator]
    assert "warning" not in leads.stderr
    assert inflight_events(state) == []
    origins = sorted(lead["origin_id"] for lead in sandbox.state()["leads"])
    assert origins == ["rpd:m-1", "rpd:m-2", "rpd:m-3"]
