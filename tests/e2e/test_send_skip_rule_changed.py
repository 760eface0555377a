"""A track rule changed between runs on one state reaches the events an earlier run skipped by
rule (SPEC 4 `skip`, SPEC 5 state): a rule's skip depends on the config, as a `--type` filter's
does, so it is not journaled as done, and a finished object (a folder's file, a bucket's object)
read under other skip rules is read again; events sent already stay done, nothing twice."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from e2e_support import (
    assert_report_adds_up,
    example_without_rules,
    identify,
    rpd_send,
    write_events,
)

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
    assert first.exit_code == 0, first.stderr
    assert first.report is not None
    assert first.report["events"] == {
        "read": 4,
        "sent": 2,
        "unchanged": 0,
        "skipped": 2,
        "failed": 0,
    }
    assert first.report["skipped_by_reason"] == {"track rule: skip": 2}
    assert deal_origins(sandbox) == []

    second = rpd_send(sandbox, tmp_path, events, config=deal, args=args, name="deal")
    assert second.exit_code == 0, second.stderr
    assert second.report is not None
    assert_report_adds_up(second.report)
    assert second.report["events"] == {
        "read": 4,
        "sent": 2,
        "unchanged": 0,
        "skipped": 2,
        "failed": 0,
    }
    assert second.report["skipped_by_reason"] == {"already done": 2}
    assert deal_origins(sandbox) == ["rpd:m-1", "rpd:m-3"]

    third = rpd_send(sandbox, tmp_path, events, config=deal, args=args, name="again")
    assert third.exit_code == 0, third.stderr
    assert third.report is not None
    assert third.report["events"] == {
        "read": 4,
        "sent": 0,
        "unchanged": 0,
        "skipped": 4,
        "failed": 0,
    }
    assert third.report["skipped_by_reason"] == {"already done": 4}
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

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert_report_adds_up(again.report)
    assert again.report["events"] == {
        "read": 4,
        "sent": 0,
        "unchanged": 0,
        "skipped": 4,
        "failed": 0,
    }
    assert again.report["skipped_by_reason"] == {"already done": 2, "track rule: skip": 2}
    assert deal_origins(sandbox) == []
