"""A userId searched for in vain along an alias chain is not searched for again along one in the
run, only as an event's own userId (core/identity_cache.py `IdentityStore.unfound`): an
anonymousId aliased at every login walked its chain on each alias, every userId along it one
itemSearch (200,000 aliases over 1,000 previousIds: 2,345,000 searches, days at Pipedrive's 10
searches a 2 s). Whatever this run or another process made findable since is found, the cache
first (SPEC 5: no second person), a create left pending is reconciled, not taken as none."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ONE, USER_ID_FIELD, alias, identify, rpd_send, write_events
from test_dry_run_against_send import send

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.replies import Answer

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
SEARCH = "GET /api/v2/itemSearch/field"
# anon's chain: anon -> u-0 -> u-1 -> u-2 -> u-3 (the first pass links each alias at its end).
LOGINS = [
    identify("m-0", "anon", name="Visitor"),
    *(alias(f"m-{n + 1}", "anon", f"u-{n}") for n in range(4)),
]

# anon's identify searches u-0 and u-1 along its chain in vain; u-1's identify then creates it.
CREATED_BETWEEN = [
    identify("m-0", "anon", name="Visitor"),
    identify("m-1", "u-1", name="One"),
    alias("m-2", "anon", "u-0"),
    alias("m-3", "anon", "u-1"),
]


def searched(requests: list[Any]) -> list[str]:
    return [r.query["term"] for r in requests if r.method == "GET" and "itemSearch" in r.path]


def persons(sandbox: Sandbox) -> list[tuple[int, str, str]]:
    return [
        (p["id"], p["name"], p["custom_fields"][USER_ID_FIELD]) for p in sandbox.state()["persons"]
    ]


def test_a_userid_searched_in_vain_along_a_chain_is_not_searched_again(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The identify walks anon's chain (no person holds anon): each of u-0 to u-3 searched,
    none found. Each alias searches its own userId (another process may have made its person
    since), not the rest of the chain again, and re-keys anon's person there: before the memo,
    each walked the rest again (15 searches)."""
    events = write_events(tmp_path / "in.ndjson", LOGINS)

    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 0, run.stderr
    assert [searched(sent[f"{events}:{n}"]["requests"]) for n in range(1, 6)] == [
        ["anon", "u-3", "u-2", "u-1", "u-0"],  # its aliases after it, the last first
        ["u-0"],
        ["u-1"],
        ["u-2"],
        ["u-3"],
    ]
    assert sandbox.stats()["requests"][SEARCH] == 9
    assert persons(sandbox) == [(1, "Visitor", "u-3")]


def test_a_userid_this_run_created_after_none_was_found_is_found_not_created_again(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """u-1, searched in vain along anon's chain, is created by its identify, unseen by search
    for the whole run (its index lags): its later events take that person (the cache), the
    alias to it merges anon's person into it, and no second person holds u-1."""
    sandbox = make_sandbox(plan="unlimited", index_lag_ms=600_000)
    events = write_events(
        tmp_path / "in.ndjson", [*CREATED_BETWEEN, identify("m-4", "u-1", name="One again")]
    )

    run = rpd_send(sandbox, tmp_path, events, args=("--identities", "search", *ONE))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None and run.report["by_type"] == {
        "identify": {"sent": 3},
        "alias": {"sent": 2},
    }
    # anon, u-1 and u-0 along anon's chain; u-1's identify and u-0's alias their own again
    assert sandbox.stats()["requests"][SEARCH] == 5
    assert sandbox.state()["merges"] == [{"merged_id": 1, "survivor_id": 2}]
    assert persons(sandbox) == [(2, "One again", "u-1")]


@pytest.mark.usefixtures("no_waits")
def test_a_create_left_pending_after_none_was_found_is_reconciled_not_made_twice(
    monkeypatch: pytest.MonkeyPatch, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """u-1's create (its userId searched in vain along anon's chain, not searched again) lands
    but every answer to it and to the listing that would reconcile it is lost: it is left
    pending, the event failed and u-1's later events held back. The rerun (same state) settles
    it by the listing, takes that person and creates none."""
    sandbox = make_sandbox(plan="unlimited")
    handle = sandbox.app.handle
    losing = [True]

    def dropping(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        answer = handle(method, target, headers, body)
        created = method == "POST" and b'"u-1"' in body  # u-1's person, made
        listed = method == "GET" and "updated_since" in target  # the listing reconciling it
        lost = created or listed
        return replace(answer, drop=True) if losing[0] and lost else answer

    monkeypatch.setattr(sandbox.app, "handle", dropping)
    events = write_events(tmp_path / "in.ndjson", CREATED_BETWEEN)
    state = tmp_path / "state.sqlite"

    args = ("--identities", "search", "--max-retries", "1", *ONE)
    first = rpd_send(sandbox, tmp_path, events, state=state, args=args, name="first")

    assert first.exit_code == 1, first.stderr
    assert [
        (letter["event"]["messageId"], letter["error"]["stage"]) for letter in first.dead_letters
    ] == [
        ("m-1", "reconcile person"),
        ("m-2", "order"),
        ("m-3", "order"),
    ]
    assert first.report is not None and first.report["by_type"] == {
        "identify": {"sent": 1, "failed": 1},
        "alias": {"failed": 2},
    }
    assert sandbox.stats()["requests"][SEARCH] == 4  # anon, u-1, u-0; u-1's identify u-1
    assert persons(sandbox) == [(1, "Visitor", "anon"), (2, "One", "u-1")]
    losing[0] = False

    rerun = rpd_send(sandbox, tmp_path, events, state=state, args=args, name="rerun")

    assert rerun.exit_code == 0, rerun.stderr
    assert persons(sandbox) == [(2, "One", "u-1")]
    assert sandbox.state()["merges"] == [{"merged_id": 1, "survivor_id": 2}]


def test_a_userid_another_process_created_after_none_was_found_is_found_not_created_again(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """anon's identify searches u-1 and u-0 along its chain in vain; another process (the live
    RudderStack destination, a web form) then creates u-1's person while rpd runs. u-1's
    identify searches again and takes that person: a note taken as "none" for the rest of the
    run made a second person with u-1."""
    handle = sandbox.app.handle
    made, field = [False], USER_ID_FIELD.encode()

    def beside(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        answer = handle(method, target, headers, body)
        if method == "POST" and target.startswith("/api/v2/persons") and not made[0]:
            made[0] = True  # anon's person made: another process makes u-1's
            other = b'{"name": "Signed up", "custom_fields": {"%s": "u-1"}}' % field
            handle("POST", "/api/v2/persons", headers, other)
        return answer

    monkeypatch.setattr(sandbox.app, "handle", beside)
    logins = [LOGINS[0], identify("m-9", "u-1", name="One"), *LOGINS[1:3]]
    events = write_events(tmp_path / "in.ndjson", logins)

    run = rpd_send(sandbox, tmp_path, events, args=("--identities", "search", *ONE))

    assert run.exit_code == 0, run.stderr
    assert made == [True]
    # anon's person 1 re-keyed to u-0 by its alias, then merged into u-1's by the next one
    assert sandbox.state()["merges"] == [{"merged_id": 1, "survivor_id": 2}]
    assert persons(sandbox) == [(2, "One", "u-1")]  # before: (2, "Signed up"), (3, "One")
