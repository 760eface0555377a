"""tests/process_support.py answers_held, which the kill and signal tests stand on: a held answer
waits for the block's end or its release, every held answer goes however the block ends (a test
failing midway must not leave the sandbox's threads waiting, or the suite hangs for its whole
budget), and the sandbox is as it was after it (the sandbox's own methods, not copies)."""

from __future__ import annotations

import threading
import time

import pytest
from process_support import answers_held

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.app import SandboxApp
from rudder_pipedrive_cli.sandbox.replies import Answer

ME = "GET /v1/users/me"
HEADERS = {"x-api-token": "sandbox-token"}


def ask(sandbox: Sandbox) -> tuple[threading.Thread, list[Answer]]:
    """GET /v1/users/me asked of the sandbox's app in a thread of its own (as its server asks
    it), once the request is applied and counted (its answer held or not); the list holds its
    answer once it came."""
    answers: list[Answer] = []
    thread = threading.Thread(
        target=lambda: answers.append(sandbox.app.handle("GET", "/v1/users/me", HEADERS, b""))
    )
    before = sandbox.app.requests[ME]
    thread.start()
    while sandbox.app.requests[ME] == before:
        time.sleep(0.001)
    return thread, answers


def joined(thread: threading.Thread) -> None:
    thread.join(timeout=30)
    assert not thread.is_alive(), "an answer still held after answers_held's block"


def test_a_held_answer_waits_for_its_release(sandbox: Sandbox) -> None:
    with answers_held(sandbox, ME) as release:
        thread, answers = ask(sandbox)
        assert (answers, thread.is_alive()) == ([], True)  # applied and counted, its answer held
        release()
        joined(thread)
    assert [answer.status for answer in answers] == [200]


def test_a_block_a_failure_ends_lets_every_held_answer_go(sandbox: Sandbox) -> None:
    asked: list[tuple[threading.Thread, list[Answer]]] = []
    with pytest.raises(RuntimeError, match="the test failed midway"), answers_held(sandbox, None):
        asked.append(ask(sandbox))
        raise RuntimeError("the test failed midway")
    [(thread, answers)] = asked
    joined(thread)
    assert [answer.status for answer in answers] == [200]


def test_the_sandbox_has_its_own_methods_again_after_the_block(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Put back as copies on the instance, the methods hid any patched on the class later (as
    test_send_wire_contract patches handle) from a sandbox that outlives the block."""
    with answers_held(sandbox, ME), answers_held(sandbox, None):
        pass
    assert {"_api", "handle"}.isdisjoint(vars(sandbox.app))

    seen: list[str] = []
    handle = SandboxApp.handle

    def recording(app: SandboxApp, method: str, target: str, *rest: object) -> Answer:
        seen.append(f"{method} {target}")
        return handle(app, method, target, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(SandboxApp, "handle", recording)
    assert sandbox.app.handle("GET", "/v1/users/me", HEADERS, b"").status == 200
    assert seen == ["GET /v1/users/me"]
