"""Delivery under injected faults (SPEC 5): 5xx, spurious 429s, connection resets after the write
was applied, and a search index that lags. Nothing is lost, nothing is duplicated, and the report
counts the retries and 429 waits the sandbox served."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    ROLE_FIELD,
    alias,
    assert_report_adds_up,
    group,
    holdings,
    identify,
    rpd_send,
    track,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

# The sandbox's faults come from its seed: a retry or a 429 waited out in no time meets the same
# faults (the report counts the waits; their lengths are tests/http's, on fake clocks).
pytestmark = pytest.mark.usefixtures("no_waits")

USERS = 24
GROUPS = 4


def mixed_events() -> list[dict[str, Any]]:
    """Per user: identify, track, group, track; every third user is then aliased to a new id."""
    events: list[dict[str, Any]] = []
    for n in range(USERS):
        user = f"u-{n}"
        events += [
            identify(f"{user}-1", user, name=f"User {n}", email=f"{user}@example.com", role="r1"),
            track(f"{user}-2", user, "Trial Started", revenue=n, currency="EUR"),
            group(f"{user}-3", user, f"g-{n % GROUPS}", name=f"Group {n % GROUPS}"),
            track(f"{user}-4", user, "Plan Upgraded", revenue=10 * n, currency="USD"),
        ]
        if n % 3 == 0:
            events.append(alias(f"{user}-5", user, f"{user}-new", role="r2"))
    return events


def assert_exactly_once(sandbox: Sandbox) -> None:
    held = holdings(sandbox)
    expected_users = {f"u-{n}-new" if n % 3 == 0 else f"u-{n}": 1 for n in range(USERS)}
    assert held.user_ids() == expected_users
    assert held.group_ids() == {f"g-{n}": 1 for n in range(GROUPS)}
    assert held.origin_ids() == {f"rpd:u-{n}-{k}": 1 for n in range(USERS) for k in (2, 4)}
    for n in range(USERS):
        person = held.person(f"u-{n}-new" if n % 3 == 0 else f"u-{n}")
        assert held.group_of(person["org_id"]) == f"g-{n % GROUPS}"
        assert person["custom_fields"][ROLE_FIELD] == ("r2" if n % 3 == 0 else "r1")
        leads = [lead for lead in held.leads if lead["person_id"] == person["id"]]
        assert sorted(lead["title"] for lead in leads) == ["Plan Upgraded", "Trial Started"]
    assert held.merges == []  # re-keys only: each alias's new id had no person yet


def test_faults_lose_and_duplicate_nothing(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sandbox = make_sandbox(
        plan="unlimited",
        fail_5xx=0.1,
        fail_429=0.04,
        fail_reset=0.1,
        index_lag_ms=300,
        fault_seed=11,
    )
    events = write_events(tmp_path / "events.ndjson", mixed_events())

    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "16"), name="first")

    report = run.report
    assert report is not None
    assert_report_adds_up(report)
    stats = sandbox.stats()
    assert stats["resets"] > 0
    served_5xx = sum(n for status, n in stats["statuses"].items() if status.startswith("5"))
    assert served_5xx > 0
    assert report["rate_limited"] == stats["rate_limited"] > 0
    # Every 429 is waited out and retried; a 5xx or a reset is retried unless it answered a
    # create or a merge, whose outcome the plan reconciles instead of repeating it.
    assert report["rate_limited"] < report["retries"]
    assert report["retries"] <= report["rate_limited"] + served_5xx + stats["resets"]
    # The client counts every attempt that reached the sandbox, faults included.
    assert report["requests"] == stats["requests"]
    assert report["tokens"] == stats["tokens"]
    # A create answered 5xx three times running is given up on for this run (bounded
    # reconciliation): it fails as retryable, and so do the later events of that user that
    # needed it (a track cannot create a person without a name). A rerun of the same input
    # sends them all. Nothing is lost.
    assert report["events"]["read"] == len(mixed_events())
    assert report["events"]["sent"] + report["events"]["failed"] == len(mixed_events())
    assert len(run.dead_letters) == report["events"]["failed"]
    for attempt in range(3):
        if run.exit_code == 0:
            break
        assert run.exit_code == 1, run.stderr
        run = rpd_send(sandbox, tmp_path, events, name=f"rerun-{attempt}")
    assert run.exit_code == 0, run.stderr
    assert_exactly_once(sandbox)


def test_only_429s_every_retry_is_a_429_wait(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sandbox = make_sandbox(plan="unlimited", fail_429=0.1, fault_seed=3)
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(12)],
    )

    run = rpd_send(sandbox, tmp_path, events)

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    stats = sandbox.stats()
    assert run.report["rate_limited"] == stats["rate_limited"] > 0
    assert run.report["retries"] == stats["rate_limited"]
    assert run.report["requests"] == stats["requests"]
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(12)}
    line = f"retries: {stats['rate_limited']}; 429 waits: {stats['rate_limited']};"
    assert line in run.stderr
    # The requests table's API tokens add up to the total: a refused 429 costs none (QA: each
    # row charged every attempt).
    rows = re.findall(r"│ ((?:GET|POST|PATCH|PUT) \S+)\s*│\s*(\d+) │\s*(\d+) │", run.stderr)
    assert {key: int(count) for key, count, _ in rows} == stats["requests"]
    assert sum(int(tokens) for _, _, tokens in rows) == run.report["tokens"] == stats["tokens"]


def test_lost_answers_to_creates_are_reconciled_not_repeated(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Every write is applied and its answer dropped: each create must be found, never re-sent;
    # the (idempotent) PATCH linking the person is sent again until retries run out.
    sandbox = make_sandbox(plan="unlimited", fault_seed=5)
    events = write_events(
        tmp_path / "events.ndjson",
        [
            identify("m-1", "u-1", name="One"),
            track("m-2", "u-1", "Trial Started", revenue=5, currency="EUR"),
            group("m-3", "u-1", "g-1", name="Org One"),
        ],
    )
    sandbox.set_faults(fail_reset=1.0)

    run = rpd_send(sandbox, tmp_path, events, args=("--max-retries", "1"))

    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["by_type"] == {
        "group": {"failed": 1},
        "identify": {"sent": 1},
        "track": {"sent": 1},
    }
    (letter,) = run.dead_letters
    assert letter["error"] == {
        "reason": "PATCH /api/v2/persons/{id}: RemoteProtocolError: Server disconnected without "
        "sending a response. after 2 attempts",
        "stage": "link person",
        "status": None,
        "retryable": True,
    }
    held = holdings(sandbox)
    assert held.user_ids() == {"u-1": 1}
    assert held.origin_ids() == {"rpd:m-2": 1}
    assert held.group_ids() == {"g-1": 1}
    requests = run.report["requests"]
    assert requests["POST /api/v2/persons"] == 1
    assert requests["POST /v1/leads"] == 1
    assert requests["POST /api/v2/organizations"] == 1
    assert requests["PATCH /api/v2/persons/{id}"] == 2
    assert run.report["retries"] == 1
    assert requests == sandbox.stats()["requests"]


def test_a_create_left_unknown_is_settled_before_the_next_event_of_that_identity_creates(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """A create's answer is lost and the listing that would settle it fails too: the event fails
    (retryable), and the next event of the same userId or groupId must not search (the index
    lags) and create a second record. It lists first, as the retry will (QA found duplicates)."""
    sandbox = make_sandbox(
        plan="unlimited", fail_5xx=0.3, fail_reset=0.3, index_lag_ms=1500, fault_seed=11
    )
    events = []
    for n in range(60):
        for k in range(2):
            events.append(identify(f"p-{n}-{k}", f"w-{n}", name=f"W {n}"))
            events.append(group(f"g-{n}-{k}", f"w-{n}", f"G-{n}", name=f"Org {n}"))
    source = write_events(tmp_path / "events.ndjson", events)
    args = ("--concurrency", "1", "--max-retries", "0")

    first = rpd_send(sandbox, tmp_path, source, args=args, name="first")

    assert first.report is not None
    assert_report_adds_up(first.report)
    reasons = [letter["error"] for letter in first.dead_letters]
    assert any(r["stage"].startswith("reconcile") and r["retryable"] for r in reasons)
    held = holdings(sandbox)
    assert max(held.user_ids().values()) == 1
    assert max(held.group_ids().values()) == 1

    # The outage ends; resumed with the same state, the failed events settle their creates (the
    # index still lags) and nothing more is made.
    sandbox.set_faults(fail_5xx=0.0, fail_reset=0.0)
    again = rpd_send(sandbox, tmp_path, source, name="again")
    assert again.report is not None
    assert again.report["events"]["failed"] == 0
    held = holdings(sandbox)
    assert held.user_ids() == {f"w-{n}": 1 for n in range(60)}
    assert held.group_ids() == {f"G-{n}": 1 for n in range(60)}


def test_max_retries_bounds_the_tries_of_a_write_left_unknown(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: Any
) -> None:
    # QA: `--max-retries 1` still tried a create whose outcome stayed unknown 7 times.
    from rudder_pipedrive_cli.cli import send_cmd

    seen: list[int] = []
    real = send_cmd.Replay

    def recording(**fields: Any) -> Any:
        seen.append(fields["config"].unknown_tries)
        return real(**fields)

    monkeypatch.setattr(send_cmd, "Replay", recording)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="One")])
    run = rpd_send(sandbox, tmp_path, events, args=("--max-retries", "1"))
    assert run.exit_code == 0, run.stderr
    assert seen == [2]
