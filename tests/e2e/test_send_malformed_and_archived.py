"""Issue 13's "what to show", over loopback HTTP against the sandbox's own switches: a malformed
answer to a lookup (`fail_mangle`, each kind) fails the event retryably and never reads as "no
person" (no second person), and the rerun sends it; a lead archived in Pipedrive still counts as
sent, so a replay with a fresh state file creates no second lead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from e2e_support import (
    LISTINGS,
    TOKEN,
    SendRun,
    assert_report_adds_up,
    holdings,
    identify,
    rpd_send,
    track,
)
from e2e_support import write_events as write_input

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

# What rpd makes of each body the sandbox's `mangle_kinds` serves in place of a lookup's answer.
MANGLED = {
    "unsuccessful": '"success" is not true',
    "html": "not JSON",
    "empty": "an empty body",
    "no-data": 'no "data"',
    "v1-shape": '"data" is an object, not a list',
}
# A replay with a fresh state of a person and a lead that Pipedrive holds: found by search,
# updated (the fresh state knows no field times), its leads listed, active and archived.
FOUND_AGAIN = LISTINGS | {
    "GET /api/v2/itemSearch/field": 1,
    "PATCH /api/v2/persons/{id}": 1,
    "GET /v1/leads": 1,
    "GET /v1/leads/archived": 1,
}


def ann_and_her_lead(tmp_path: Path) -> Path:
    return write_input(
        tmp_path / "in.ndjson",
        [identify("m-1", "u-1", name="Ann"), track("m-2", "u-1", "Signed Up")],
    )


def assert_one_person_one_lead(sandbox: Sandbox) -> None:
    held = holdings(sandbox)
    assert held.user_ids() == {"u-1": 1}
    assert held.origin_ids() == {"rpd:m-2": 1}
    assert held.lead("rpd:m-2")["person_id"] == held.person("u-1")["id"]


def assert_found_again(rerun: SendRun, sandbox: Sandbox) -> None:
    """A fresh-state replay of `ann_and_her_lead` found Ann and her lead: no second of either."""
    assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
    assert rerun.report is not None
    assert rerun.report["events"] == {
        "read": 2,
        "sent": 1,
        "unchanged": 0,
        "skipped": 1,
        "failed": 0,
    }
    assert rerun.report["by_type"] == {"identify": {"sent": 1}, "track": {"skipped": 1}}
    assert rerun.report["skipped_by_reason"] == {"already done": 1}
    assert rerun.report["requests"] == FOUND_AGAIN
    assert not rerun.dead_letter.exists()
    assert_one_person_one_lead(sandbox)


@pytest.mark.parametrize("kind", list(MANGLED))
def test_a_malformed_lookup_fails_retryably_and_creates_no_second_person(
    make_sandbox: MakeSandbox, tmp_path: Path, kind: str
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    events = ann_and_her_lead(tmp_path)
    assert rpd_send(sandbox, tmp_path, events, state=tmp_path / "a.sqlite").exit_code == 0
    sandbox.set_faults(fail_mangle=1.0, mangle_kinds=(kind,))

    # A fresh state knows no person: rpd must search, and every search answer is mangled.
    mangled = rpd_send(sandbox, tmp_path, events, state=tmp_path / "b.sqlite", name="mangled")

    assert mangled.exit_code == 1, mangled.stdout + mangled.stderr
    assert mangled.report is not None
    assert_report_adds_up(mangled.report)
    assert mangled.report["events"] == {
        "read": 2,
        "sent": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 2,
    }
    assert mangled.report["requests"] == LISTINGS | {"GET /api/v2/itemSearch/field": 1}
    reason = (
        f"lookup person: Pipedrive's answer is malformed (HTTP 200: {MANGLED[kind]}); "
        "not taken as no records: retry later"
    )
    assert [(letter["source"], letter["error"]) for letter in mangled.dead_letters] == [
        (
            f"{events}:1",
            {"reason": reason, "stage": "lookup person", "status": 200, "retryable": True},
        ),
        (
            f"{events}:2",
            {
                "reason": "an earlier event of userId u-1 failed: this one waits for it "
                "(a rerun tries that one first)",
                "stage": "order",
                "status": None,
                "retryable": True,
            },
        ),
    ]
    assert sandbox.stats()["mangled"] == 1
    assert_one_person_one_lead(sandbox)

    sandbox.set_faults(fail_mangle=0.0)
    rerun = rpd_send(sandbox, tmp_path, events, state=tmp_path / "b.sqlite", name="rerun")

    assert_found_again(rerun, sandbox)


def test_a_lead_archived_in_pipedrive_is_not_created_again_by_a_fresh_state_replay(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = ann_and_her_lead(tmp_path)
    assert rpd_send(sandbox, tmp_path, events, state=tmp_path / "a.sqlite").exit_code == 0
    lead_id = holdings(sandbox).lead("rpd:m-2")["id"]
    archived = httpx.patch(
        f"{sandbox.url}/v1/leads/{lead_id}",
        json={"is_archived": True},
        headers={"x-api-token": TOKEN},
    )
    assert (archived.status_code, archived.json()["data"]["is_archived"]) == (200, True)

    rerun = rpd_send(sandbox, tmp_path, events, state=tmp_path / "b.sqlite", name="rerun")

    assert_found_again(rerun, sandbox)
    assert [(lead["id"], lead["is_archived"]) for lead in holdings(sandbox).leads] == [
        (lead_id, True)
    ]
