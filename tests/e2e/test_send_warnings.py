"""Warnings in a send (SPEC 4 "record a warning"): the event still goes, without what was left
out, and the summary counts them in words without the event data they quote (which only dry-run
shows: SPEC 8). Over loopback HTTP against the sandbox."""

from __future__ import annotations

from pathlib import Path

from e2e_support import (
    PLAN_FIELD,
    assert_report_adds_up,
    holdings,
    identify,
    rpd_send,
    track,
    write_config,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import LEAD_LABELS

HOT = next(label["id"] for label in LEAD_LABELS if label["name"] == "Hot")
GONE_LABEL = "00000000-0000-4000-8000-000000000000"


def test_warnings_are_reported_and_the_events_still_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    events = [
        identify("w-1", "u-1", name="Ann", visible_to=42),
        identify("w-2", "u-2", name="Bob", visible_to=42),
        track("w-3", "u-1", "Trial", label_ids=[HOT.upper(), GONE_LABEL, "Lukewarm"]),
    ]
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "events.ndjson", events))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"]["sent"] == 3
    # Counted in words that hold no event data (SPEC 8): only dry-run quotes the values.
    assert "\n".join(
        [
            "warnings:",  # ties in the order of their text, whatever ended first
            "  2  a lead label is not a label of this account; dropped",
            "  2  visible_to is not one of 1, 3, 5, 7; dropped",
        ]
    ) in "\n".join(line.rstrip() for line in run.stderr.splitlines())
    assert "Lukewarm" not in run.stderr
    assert "42" not in run.stderr.split("warnings:")[1]
    held = holdings(sandbox)
    assert [person.get("visible_to") for person in held.persons] == [3, 3]  # the default
    assert held.lead("rpd:w-3")["label_ids"] == [HOT]


INVALID = [  # a mapped enum label that is no option, and a currency that is no 3-letter code
    identify("v-1", "u-1", name="Ann", plan="Starter"),
    track("v-2", "u-2", "Trial", revenue=5, currency="US Dollars")
    | {"context": {"traits": {"name": "Bob"}}},
]


def test_invalid_values_fail_their_events_by_default(sandbox: Sandbox, tmp_path: Path) -> None:
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "events.ndjson", INVALID))

    assert run.exit_code == 1, run.stderr
    letters = sorted((d["source"].rsplit(":", 1)[1], d["error"]) for d in run.dead_letters)
    assert letters == [
        (
            "1",
            {
                "reason": "cannot convert plan = Starter for field Plan (enum): expected one of "
                "Free, Pro, Enterprise",
                "stage": "validate",
                "status": None,
                "retryable": False,
            },
        ),
        (
            "2",
            {
                "reason": "currency = US Dollars is not a 3-letter currency code",
                "stage": "validate",
                "status": None,
                "retryable": False,
            },
        ),
    ]
    assert holdings(sandbox).persons == [] and holdings(sandbox).leads == []


def test_with_on_invalid_drop_the_values_are_left_out_and_the_events_go(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write_config(tmp_path, on_invalid='"drop"')
    events = write_events(tmp_path / "events.ndjson", INVALID)
    run = rpd_send(sandbox, tmp_path, events, config=config)

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"]["sent"] == 2
    assert "\n".join(
        [
            "warnings:",
            "  1  cannot convert plan for field Plan (enum); dropped",
            "  1  currency is not a 3-letter currency code; the lead's value is left out",
        ]
    ) in "\n".join(line.rstrip() for line in run.stderr.splitlines())
    assert "Starter" not in run.stderr and "US Dollars" not in run.stderr  # event data (SPEC 8)
    held = holdings(sandbox)
    assert held.person("u-1")["custom_fields"][PLAN_FIELD] is None
    assert held.lead("rpd:v-2")["value"] is None  # not in another currency
