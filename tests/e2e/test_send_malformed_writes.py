"""A write answered 2xx with a body that is not Pipedrive's envelope (a proxy's or the edge's page,
a cut body) says nothing of whether it was applied. QA: a PATCH, a lead and a merge a proxy
answered 200 with its own page (never passing them on) were reported sent and journalled as done,
so the rerun skipped them: the update, the lead and the merge were lost for good. Now each event
fails retryably and is dead-lettered, and sending it again does its write once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_support import alias, holdings, identify, rpd_send, track, write_events

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.app import SandboxApp
from rudder_pipedrive_cli.sandbox.replies import Answer

PAGE = Answer(
    status=200,
    body=b"<html><body><h1>Service temporarily unavailable</h1></body></html>",
    content_type="text/html; charset=utf-8",
)
# One event at a time, and one retry: what is asked, and in which order, does not vary.
ARGS = ("--concurrency", "1", "--max-retries", "1")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """While `proxy["on"]`, every write gets the proxy's own page (200) and never reaches the
    sandbox; lookups pass."""
    state = {"on": False}
    handle = SandboxApp.handle

    def answer(app: SandboxApp, method: str, target: str, headers: Any, body: bytes) -> Answer:
        if state["on"] and method != "GET" and not target.startswith("/_sandbox/"):
            return PAGE
        return handle(app, method, target, headers, body)

    monkeypatch.setattr(SandboxApp, "handle", answer)
    return state


def test_writes_a_proxy_answered_with_its_page_fail_and_are_sent_by_the_rerun(
    proxy: dict[str, bool], sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    people = [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(1, 5)]
    first = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", people), args=ARGS)
    assert first.exit_code == 0, first.stderr
    events = write_events(
        tmp_path / "b.ndjson",
        [
            identify("m-5", "u-1", name="Ann"),  # a PATCH of a person the state knows
            track("m-6", "u-2", "Signed Up"),  # a lead
            alias("m-7", "u-3", "u-4"),  # a merge
        ],
    )
    before = holdings(sandbox).state

    proxy["on"] = True
    second = rpd_send(sandbox, tmp_path, events, args=ARGS, state=state, name="second")
    assert second.exit_code == 1, second.stderr
    assert second.report is not None
    assert second.report["events"] == {
        "read": 3, "sent": 0, "unchanged": 0, "skipped": 0, "failed": 3
    }  # fmt: skip
    assert [(letter["source"].rsplit(":", 1)[1], letter["error"]) for letter in
            second.dead_letters] == [
        ("1", {
            "reason": "PATCH /api/v2/persons/{id}: HTTP 200 with a malformed answer (not JSON) "
                      "after 2 attempts",
            "stage": "update person", "status": 200, "retryable": True,
        }),
        ("2", {
            "reason": "create lead: outcome unknown after 2 attempts (no lead with rpd:m-6 "
                      "appeared); retry later",
            "stage": "create lead", "status": None, "retryable": True,
        }),
        ("3", {
            "reason": "merge persons: outcome unknown after 2 attempts (person 3 is still "
                      "there); retry later",
            "stage": "merge persons", "status": None, "retryable": True,
        }),
    ]  # fmt: skip
    assert holdings(sandbox).state == before  # the proxy passed nothing on

    proxy["on"] = False
    third = rpd_send(sandbox, tmp_path, second.dead_letter, args=ARGS, state=state, name="third")
    assert third.exit_code == 0, third.stderr
    assert third.report is not None and third.report["events"]["sent"] == 3
    again = rpd_send(sandbox, tmp_path, events, args=ARGS, state=state, name="again")
    assert again.report is not None and again.report["events"]["skipped"] == 3
    held = holdings(sandbox)
    assert held.person("u-1")["name"] == "Ann"
    assert held.origin_ids() == {"rpd:m-6": 1}
    assert held.lead("rpd:m-6")["person_id"] == held.person("u-2")["id"]
    assert held.merges == [{"merged_id": 3, "survivor_id": 4}]
    assert held.user_ids() == {"u-1": 1, "u-2": 1, "u-4": 1}
