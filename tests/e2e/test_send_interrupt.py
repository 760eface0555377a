"""Ctrl-C, SIGTERM and SIGHUP during `rpd send` (SPEC 5, 6; issue 13 item 12): no new events
start, those in flight finish, the report is printed and written (events read ahead but not
started counted as not attempted), exit 130 (143 for SIGTERM, 129 for SIGHUP); a rerun with the
same state sends the rest, duplicating nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from anyio._backends import _asyncio as backend
from anyio._core import _sockets as sockets
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    STALE_REPORT,
    TOKEN,
    SendRun,
    assert_resumed,
    assert_stopped_while_starting,
    holdings,
    identify,
    rpd_send,
    write_events,
)
from process_support import answers_held
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli import send_cmd
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.replies import server_error

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
EVENTS = 120
FIELDS = "GET /api/v2/personFields"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def start_send(
    sandbox: Sandbox,
    tmp_path: Path,
    events: Path,
    report: str = "report.json",
    dead_letter: str = "failed.ndjson",
    stderr: int = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """`rpd send` as a subprocess (so it can be sent signals), report.json (or `report`),
    failed.ndjson (or `dead_letter`) and state.sqlite in `tmp_path`; its stderr to `stderr`."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env["PIPEDRIVE_API_TOKEN"] = TOKEN
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "send", str(events)]
    command += ["--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url, "--plan", "unlimited"]
    command += ["--concurrency", "4", "--report", str(tmp_path / report)]
    command += ["--state", str(tmp_path / "state.sqlite")]
    command += ["--dead-letter", str(tmp_path / dead_letter)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, cwd=tmp_path)


def acted_on(
    sandbox: Sandbox,
    key: str | None,
    count: int,
    start: Callable[[], subprocess.Popen[bytes]],
    act: Callable[[subprocess.Popen[bytes]], object],
) -> tuple[subprocess.Popen[bytes], bytes, bytes]:
    """The process (a send) `start()` starts, `act` on once the sandbox has served `count`
    requests of `key` ("METHOD /template"; None: of any kind): from that one on, the answers
    wait for it (however late the test acts; the latency of those after them leaves rpd the
    time to hear a signal); and its stdout and stderr."""

    def served() -> int:
        requests = sandbox.stats()["requests"]
        return sum(requests.values()) if key is None else requests.get(key, 0)

    with answers_held(sandbox, key, count) as release:
        process = start()
        try:
            wait_for(lambda: served() >= count)
            act(process)
            release()
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return process, stdout, stderr


# Each stop signal, its exit and the words its stop's line says it in.
EVERY_STOP = pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGTERM, 143, "terminated (SIGTERM)"),
        (signal.SIGHUP, 129, "hung up (SIGHUP)"),
    ],
)


@EVERY_STOP
def test_a_stop_signal_before_the_first_event_says_nothing_was_sent(
    make_sandbox: MakeSandbox,
    tmp_path: Path,
    signum: signal.Signals,
    exit_code: int,
    said: str,
) -> None:
    sandbox = make_sandbox(plan="unlimited", latency_ms=400)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    (tmp_path / "report.json").write_bytes(STALE_REPORT)  # an earlier run's
    process, stdout, stderr = acted_on(  # while the field listings are fetched, before any event
        sandbox,
        FIELDS,
        1,
        lambda: start_send(sandbox, tmp_path, events),
        lambda process: process.send_signal(signum),
    )

    assert (process.returncode, stdout, stderr.decode()) == (
        exit_code,
        b"",
        f"{said} while starting (reading the config, the state or the account's fields): no "
        "event was sent; rerun the same command to start again\n",
    )
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert_stopped_while_starting(report, exit_code, said)
    assert not any(key.startswith("POST") for key in sandbox.stats()["requests"])


@pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [
        (signal.SIGINT, 130, "interrupted"),
        # Issue 13 item 12: SIGTERM killed rpd mid-write with no report (9 writes in flight).
        (signal.SIGTERM, 143, "terminated (SIGTERM)"),
        # The terminal or ssh session closed: it was death where it was, exit 129, no report.
        (signal.SIGHUP, 129, "hung up (SIGHUP)"),
    ],
)
def test_a_stop_signal_finishes_what_is_in_flight_prints_the_report_and_exits(
    make_sandbox: MakeSandbox,
    tmp_path: Path,
    signum: signal.Signals,
    exit_code: int,
    said: str,
) -> None:
    sandbox = make_sandbox(plan="unlimited", latency_ms=150)
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(EVENTS)],
    )
    report = tmp_path / "report.json"
    state = tmp_path / "state.sqlite"
    process, stdout, stderr = acted_on(
        sandbox,
        "POST /api/v2/persons",
        4,
        lambda: start_send(sandbox, tmp_path, events),
        lambda process: process.send_signal(signum),
    )
    text = stderr.decode()

    assert process.returncode == exit_code, text
    assert stdout == b""
    assert "Events" in text and "Requests" in text
    assert text.rstrip().endswith(
        f"{said}: no new events were started and those in flight were finished; "
        "rerun the same command to resume"
    )
    written = orjson.loads(report.read_bytes())
    sent = written["events"]["sent"]
    left = written["events"]["not_attempted"]
    assert 4 <= sent < EVENTS and left > 0
    # Every event that started finished: each is a person, none is half done or failed; those
    # read ahead and not started are not attempted (not failed, not dead-lettered).
    assert written["events"] == {
        "read": sent + left,
        "sent": sent,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "not_attempted": left,
    }
    assert f"not attempted: {left} events were read but not finished when the run stopped" in text
    assert not (tmp_path / "failed.ndjson").exists()
    held = holdings(sandbox)
    assert held.user_ids() == {f"u-{n}": 1 for n in range(sent)}
    assert written["requests"] == sandbox.stats()["requests"]
    with sqlite3.connect(state) as db:  # nothing left in flight: the writes were finished
        assert db.execute("SELECT count(*) FROM inflight").fetchone() == (0,)

    sandbox.set_faults(latency_ms=0)
    assert_resumed(sandbox, tmp_path, events, state, done=sent)


def dead_lettered(path: Path) -> list[str]:
    """The userIds of the dead letters at `path`, in their order."""
    return [orjson.loads(line)["event"]["userId"] for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("terminal_gone", [False, True], ids=["stderr piped", "terminal gone"])
def test_a_sighup_mid_send_dead_letters_every_failed_event_reports_and_exits_129(
    make_sandbox: MakeSandbox, tmp_path: Path, terminal_gone: bool
) -> None:
    """SIGHUP killed a send where it was: exit 129, no report, and failed events the state had
    recorded missing from the dead letters. Now it stops as SIGTERM does. With its terminal gone
    (a pty whose other end was closed, as when an ssh session drops), what it says there fails
    with EIO: that is /dev/null's, and the exit stays 129 (a write raising EIO ended it 70)."""
    sandbox = make_sandbox(plan="unlimited", latency_ms=150)
    # Even users are named (created), odd ones nameless (each fails, a dead letter).
    users = [
        identify(f"m-{n}", f"u-{n}", **({"name": f"User {n}"} if n % 2 == 0 else {}))
        for n in range(EVENTS)
    ]
    events = write_events(tmp_path / "events.ndjson", users)
    state = tmp_path / "state.sqlite"
    parent, child = os.openpty() if terminal_gone else (-1, subprocess.PIPE)

    def hang_up(process: subprocess.Popen[bytes]) -> None:
        if terminal_gone:
            os.close(parent)  # from now on its writes to the terminal fail with EIO
        process.send_signal(signal.SIGHUP)

    try:
        process, stdout, stderr = acted_on(  # held at the 4th person's creation: u-6
            sandbox,
            "POST /api/v2/persons",
            4,
            lambda: start_send(sandbox, tmp_path, events, stderr=child),
            hang_up,
        )
    finally:
        if terminal_gone:
            os.close(child)
    text = (stderr or b"").decode()

    assert (process.returncode, stdout) == (129, b""), text
    if not terminal_gone:
        assert text.rstrip().endswith(
            "hung up (SIGHUP): no new events were started and those in flight were finished; "
            "rerun the same command to resume"
        )
    written = orjson.loads((tmp_path / "report.json").read_bytes())
    assert written["stopped"] == {"exit": 129, "reason": "hung up (SIGHUP)"}
    counts = written["events"]
    # u-1, u-3 and u-5 were started before u-6, whose creation was held: at least 3 failed.
    assert counts["failed"] >= 3 and counts["sent"] >= 4 and counts["not_attempted"] > 0
    failed = dead_lettered(tmp_path / "failed.ndjson")
    assert len(failed) == counts["failed"]
    assert all(int(user.removeprefix("u-")) % 2 == 1 for user in failed)
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(0, counts["sent"] * 2, 2)}
    with sqlite3.connect(state) as db:  # nothing left in flight: the writes were finished
        assert db.execute("SELECT count(*) FROM inflight").fetchone() == (0,)

    sandbox.set_faults(latency_ms=0)
    resumed = rpd_send(sandbox, tmp_path, events, state=state, name="resume")
    assert resumed.exit_code == 1, resumed.stderr  # the nameless fail again
    assert resumed.report is not None
    assert resumed.report["events"]["failed"] == EVENTS // 2
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(0, EVENTS, 2)}


SEARCH = ("GET", "/api/v2/itemSearch/field")  # an identify's first request: its lookup


def answered_500(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, method: str, path: str) -> None:
    """Every request of `method path` the sandbox serves answered HTTP 500 (counted as ever)."""
    api = sandbox.app._api

    def failing(asked: str, at: str, *rest: Any) -> Any:
        answer = api(asked, at, *rest)
        return server_error(500) if (asked, at) == (method, path) else answer

    monkeypatch.setattr(sandbox.app, "_api", failing)


def back_offs_signalled(
    monkeypatch: pytest.MonkeyPatch, signum: signal.Signals, said: list[str]
) -> None:
    """Each client's back-off (every command's: none passes a sleep of its own) sends rpd
    `signum` as it begins, then lasts until the run's stop ends it, or for a minute (a hang
    guard only: before, it was waited out), and says which in `said`."""

    async def signalled(seconds: float) -> None:
        said.append("back-off begun")
        os.kill(os.getpid(), signum)
        await asyncio.sleep(60)
        said.append("back-off waited out")

    monkeypatch.setitem(PipedriveClient.__init__.__kwdefaults__, "sleep", signalled)


def stopped_in_a_back_off(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Sandbox,
    tmp_path: Path,
    signum: signal.Signals,
    failing: tuple[str, str],
    events: list[dict[str, Any]],
    *args: str,
) -> tuple[SendRun, list[str]]:
    """`rpd send` of `events` (with `args`), each `failing` request (method, path) answered 500,
    signalled `signum` as its first back-off begins; and what its back-offs said."""
    backed_off: list[str] = []
    answered_500(monkeypatch, sandbox, *failing)
    back_offs_signalled(monkeypatch, signum, backed_off)
    path = write_events(tmp_path / "events.ndjson", events)
    return rpd_send(sandbox, tmp_path, path, args=("--concurrency", "1", *args)), backed_off


@EVERY_STOP
def test_a_stop_during_a_back_off_ends_it_and_the_run(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
    exit_code: int,
    said: str,
) -> None:
    # A stop during a request's back-off (up to 30 s; a 429's Retry-After up to 60 s) waited it
    # out, silent, though no attempt followed it: it ends the back-off, and the run, at once.
    user = [identify("m-1", "u-1", name="Ann")]
    run, backed_off = stopped_in_a_back_off(monkeypatch, sandbox, tmp_path, signum, SEARCH, user)

    assert (run.exit_code, run.exception) == (exit_code, None), run.stderr
    assert backed_off == ["back-off begun"]  # ended by the stop, not waited out
    assert run.stderr.splitlines()[-1] == (
        f"{said}: no new events were started and those in flight were finished; rerun the same "
        "command to resume"
    )
    assert run.report is not None
    assert run.report["stopped"] == {"exit": exit_code, "reason": said}
    assert run.report["failed_by_reason"] == {
        "GET /api/v2/itemSearch/field: HTTP 500 after 1 attempt": {"events": 1, "later_events": 0}
    }
    assert [letter["event"]["messageId"] for letter in run.dead_letters] == ["m-1"]
    assert sandbox.stats()["requests"]["GET /api/v2/itemSearch/field"] == 1
    assert sandbox.state()["persons"] == []


@pytest.mark.parametrize(
    ("output", "named", "served", "warning"),
    [
        ("report", True, "POST /api/v2/persons", "the report"),
        ("dead_letter", False, "GET /api/v2/itemSearch/field", "dead letters"),
    ],
    ids=["report", "dead letters"],
)  # fmt: skip
def test_an_output_the_disk_refuses_leaves_a_stop_signal_its_exit(
    make_sandbox: MakeSandbox,
    tmp_path: Path,
    output: str,
    named: bool,
    served: str,
    warning: str,
) -> None:
    """SIGTERM, then a --report (or dead letters, as they are closed) the disk refuses: its error
    is a warning and the exit stays 143 with what to do (it was exit 2, the advice to resume not
    said; the state's journal holds the failed events, which the rerun tries again)."""
    sandbox = make_sandbox(plan="unlimited", latency_ms=150)
    # Named users are created; nameless ones fail, each a dead letter.
    users = [
        identify(f"m-{n}", f"u-{n}", **({"name": f"User {n}"} if named else {}))
        for n in range(EVENTS if named else 20)
    ]
    events = write_events(tmp_path / "events.ndjson", users)
    process, _, stderr = acted_on(  # the run held at its fourth event's request
        sandbox,
        served,
        4,
        lambda: start_send(sandbox, tmp_path, events, **{output: "/dev/full"}),
        lambda process: process.send_signal(signal.SIGTERM),
    )
    lines = stderr.decode().splitlines()

    assert process.returncode == 143, lines
    said = lines.index(f"warning: cannot write {warning} to /dev/full: No space left on device")
    if output == "report":  # the last before the stop's line (dead letters': as they close)
        assert said == len(lines) - 2
    assert lines[-1] == (
        "terminated (SIGTERM): no new events were started and those in flight were finished; "
        "rerun the same command to resume"
    )


def test_a_sigterm_while_the_report_is_made_still_writes_it_then_exits_143(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SPEC 6: exit 143 after the report. A SIGTERM that came as the run ended, while its report
    # was made (kept in the state, printed, written), raised there: exit 143 with no report.
    made = send_cmd.without_token  # the first step of the report

    def sigterm_then(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        made(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(send_cmd, "without_token", sigterm_then)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events)
    assert run.exit_code == 143
    assert run.report is not None and run.report["events"]["sent"] == 1
    assert run.stderr.strip().endswith(
        "terminated (SIGTERM): no new events were started and those in flight were finished; "
        "rerun the same command to resume"
    )


def test_a_sigterm_while_the_dead_letters_are_closed_still_writes_the_report_then_exits_143(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dead letters are closed just before the report is made: a SIGTERM there raised with
    # no report, as one during the report did.
    close = send_cmd.DeadLetters.close

    def sigterm_then(self: send_cmd.DeadLetters) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        close(self)

    monkeypatch.setattr(send_cmd.DeadLetters, "close", sigterm_then)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events)
    assert run.exit_code == 143
    assert run.report is not None and run.report["events"]["sent"] == 1


def test_a_sigterm_inside_a_connection_attempt_while_starting_exits_143(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx connects through an anyio task group, which wraps what is raised in its body in a
    # BaseExceptionGroup: a SIGTERM there (the first connection, a listing before any event)
    # reached no `except KeyboardInterrupt`, and the send ended in a traceback, exit 1, no
    # report (seen once under faults, 15 ms latency and concurrency 64 on a loaded machine; the
    # traceback found by SIGTERMs at seeded random times). The signal lands in the group's body.
    scope = sockets.move_on_after
    signalled: list[float] = []

    def sigterm_then(delay: float | None) -> Any:
        if not signalled:
            signalled.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)
        return scope(delay)

    monkeypatch.setattr(sockets, "move_on_after", sigterm_then)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    (tmp_path / "run-report.json").write_bytes(STALE_REPORT)
    run = rpd_send(sandbox, tmp_path, events)
    assert signalled
    assert (run.exit_code, run.exception) == (143, None)
    assert_stopped_while_starting(run.report, 143, "terminated (SIGTERM)")
    assert run.stderr == (
        "terminated (SIGTERM) while starting (reading the config, the state or the account's "
        "fields): no event was sent; rerun the same command to start again\n"
    )
    assert sandbox.state()["persons"] == []


def test_a_sigterm_inside_a_connection_task_leaves_no_traceback_after_its_line(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The SIGTERM in the connection attempt's own task (anyio's connect_tcp): exit 143 and the
    # line, then asyncio's "Task exception was never retrieved" and a traceback (no -v), as the
    # request's task, left with the SIGTERM in its error, was collected.
    connect = backend.AsyncIOBackend.connect_tcp.__func__  # type: ignore[attr-defined]
    signalled: list[float] = []

    async def sigterm_then(cls: Any, *args: Any, **kwargs: Any) -> Any:
        if not signalled:
            signalled.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)
        return await connect(cls, *args, **kwargs)

    monkeypatch.setattr(backend.AsyncIOBackend, "connect_tcp", classmethod(sigterm_then))
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events)
    gc.collect()  # the task's unread error is said as it is collected
    assert signalled
    assert (run.exit_code, run.exception) == (143, None)
    assert_stopped_while_starting(run.report, 143, "terminated (SIGTERM)")
    assert run.stderr.startswith("terminated (SIGTERM) while starting")
    assert [record.getMessage() for record in caplog.records if record.name == "asyncio"] == []


def swallowed_sigterm(signum: signal.Signals = signal.SIGTERM) -> None:
    """A SIGTERM (or Ctrl-C) whose `Terminated` is swallowed on its way, as in a finalizer
    (`Exception ignored in`) or a task whose error nobody reads: seen under load, the send went
    on."""
    with contextlib.suppress(KeyboardInterrupt):
        os.kill(os.getpid(), signum)


STOPS = pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
)


def stop_before(monkeypatch: pytest.MonkeyPatch, name: str, stop: Callable[[], None]) -> None:
    """`stop()` (a signal raised, or one swallowed on its way) each time send_cmd calls `name`,
    before it runs."""
    called = getattr(send_cmd, name)

    def stop_then(*args: Any, **kwargs: Any) -> Any:
        stop()
        return called(*args, **kwargs)

    monkeypatch.setattr(send_cmd, name, stop_then)


@STOPS
def test_a_stop_swallowed_while_starting_still_stops_before_any_event(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
    exit_code: int,
    said: str,
) -> None:
    # The field listings, before the first pass: the send went on and sent everything (a
    # swallowed Ctrl-C too, once the SIGTERM was heard); and stopped after the state's run was
    # begun, `state show` said of it "did not finish", as of a run killed.
    stop_before(monkeypatch, "with_catalog", lambda: swallowed_sigterm(signum))
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    (tmp_path / "run-report.json").write_bytes(STALE_REPORT)
    run = rpd_send(sandbox, tmp_path, events)
    assert (run.exit_code, run.exception) == (exit_code, None)
    assert_stopped_while_starting(run.report, exit_code, said)
    assert run.stderr == (
        f"{said} while starting (reading the config, the state or the account's fields): no "
        "event was sent; rerun the same command to start again\n"
    )
    assert sandbox.state()["persons"] == []
    db = sqlite3.connect(tmp_path / "state.sqlite")
    try:  # no run begun: nothing of it to finish
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (0,)
    finally:
        db.close()


def test_a_stop_while_starting_whose_report_cannot_be_written_says_so_in_a_line(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The report's folder made a file after the path was checked: a line says the report was
    # not written, under -q too; the stop's line and exit follow, no traceback (exit 70).
    (tmp_path / "out").mkdir()

    def folder_gone_then_ctrl_c() -> None:
        (tmp_path / "out").rmdir()
        (tmp_path / "out").write_bytes(b"")
        raise KeyboardInterrupt

    stop_before(monkeypatch, "with_catalog", folder_gone_then_ctrl_c)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events, name="out/run", args=("-q",))
    assert (run.exit_code, run.exception, run.report) == (130, None, None)
    assert run.stderr == (
        f"warning: cannot write the report to {tmp_path}/out/run-report.json: File exists\n"
        "interrupted while starting (reading the config, the state or the account's fields): no "
        "event was sent; rerun the same command to start again\n"
    )


FIRST_PASS_EVENTS = [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(5)]


def stop_in_the_first_pass(
    monkeypatch: pytest.MonkeyPatch, signum: signal.Signals, *, swallowed: bool = False
) -> None:
    """The signal as the first pass takes its third item (of FIRST_PASS_EVENTS), raised there
    by the handler, or (`swallowed`) lost on its way and the pass read to its end."""
    first_pass = send_cmd.input_aliases

    def stop_then(items: Any, *args: Any) -> Any:
        def taken() -> Any:
            for n, item in enumerate(items):
                if n == 2:
                    swallowed_sigterm(signum) if swallowed else os.kill(os.getpid(), signum)
                yield item

        return first_pass(taken(), *args)

    monkeypatch.setattr(send_cmd, "input_aliases", stop_then)


def assert_stopped_in_the_first_pass(
    run: Any,
    tmp_path: Path,
    sandbox: Sandbox,
    exit_code: int,
    said: str,
    read: int,
    where: str = "in the first pass over the input",
) -> None:
    """The report counts the `read` items of the pass as read, not attempted, and is kept in the
    state as a finished run's; the stop's line comes last; no event was sent."""
    assert (run.exit_code, run.exception) == (exit_code, None), run.stderr
    assert run.report is not None
    assert run.report["events"] == {
        "read": read,
        "sent": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "not_attempted": read,
    }
    assert run.report["stopped"] == {"exit": exit_code, "reason": said}
    lines = run.stderr.splitlines()
    assert lines[-2:] == [
        f"not attempted: {read} events were read but not finished when the run stopped (not "
        "failed, not dead-lettered; the rest of the input was not read): a rerun of the same "
        "command sends them",
        f"{said} {where}: no event was sent by this run; rerun the same command to start again",
    ]
    assert "while starting" not in run.stderr
    assert not any(key.startswith("POST") for key in sandbox.stats()["requests"])
    with sqlite3.connect(tmp_path / "state.sqlite") as db:  # begun and finished, with its report
        rows = db.execute("SELECT finished_at IS NOT NULL FROM runs").fetchall()
    assert rows == [(1,)]


@STOPS
@pytest.mark.parametrize(
    ("swallowed", "read"), [(False, 3), (True, 5)], ids=["raised", "swallowed"]
)
def test_a_stop_signal_in_the_first_pass_ends_with_the_report_then_its_exit(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
    exit_code: int,
    said: str,
    swallowed: bool,
    read: int,
) -> None:
    # SPEC 6: 130/143 after the report. A stop in the first pass (minutes over a large bucket)
    # said only "while starting (... a first pass over the input)", with no report, where
    # credentials refused there end with it. Swallowed on its way (a finalizer, a task's unread
    # error), the stop is still heard once the pass ends (the send went on and sent everything):
    # it ends the same way, before any event.
    stop_in_the_first_pass(monkeypatch, signum, swallowed=swallowed)
    events = write_events(tmp_path / "events.ndjson", FIRST_PASS_EVENTS)
    run = rpd_send(sandbox, tmp_path, events)
    assert_stopped_in_the_first_pass(run, tmp_path, sandbox, exit_code, said, read=read)

    monkeypatch.undo()
    assert_resumed(sandbox, tmp_path, events, tmp_path / "state.sqlite", done=0)


@STOPS
def test_a_stop_while_the_identity_index_is_listed_ends_with_the_report_then_its_exit(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
    exit_code: int,
    said: str,
) -> None:
    # After the first pass, the identity index is listed (minutes on a big account). A stop
    # there said "while starting (reading the config, the state or the account's fields)", with
    # no report, though the pass had read every event: now it ends as a stop in the pass does.
    stop_before(monkeypatch, "prepare", lambda: os.kill(os.getpid(), signum))
    events = write_events(tmp_path / "events.ndjson", FIRST_PASS_EVENTS)
    run = rpd_send(sandbox, tmp_path, events)
    assert_stopped_in_the_first_pass(
        run, tmp_path, sandbox, exit_code, said, read=5, where="while listing the identity index"
    )

    monkeypatch.undo()
    assert_resumed(sandbox, tmp_path, events, tmp_path / "state.sqlite", done=0)


@STOPS
def test_a_stop_during_a_back_off_of_the_identity_index_listing_ends_it_there(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signum: signal.Signals,
    exit_code: int,
    said: str,
) -> None:
    # The listings before the first event (cli/account.py account_client) share no stop event
    # with the run's: none is needed, the signal's handler (sigterm_as_ctrl_c) raises where
    # their back-off waits, so the listing ends there, its persons asked once.
    listing = ("GET", "/api/v2/persons")
    run, backed_off = stopped_in_a_back_off(
        monkeypatch, sandbox, tmp_path, signum, listing, FIRST_PASS_EVENTS, "--identities", "index"
    )
    assert_stopped_in_the_first_pass(
        run, tmp_path, sandbox, exit_code, said, read=5, where="while listing the identity index"
    )
    assert backed_off == ["back-off begun"]
    assert sandbox.stats()["requests"]["GET /api/v2/persons"] == 1


@pytest.mark.parametrize(
    ("step", "exit_code", "last"),
    [
        (
            "print_send_report",  # in the report: held until it is written, then the exit
            143,
            "terminated (SIGTERM) in the first pass over the input: no event was sent by this "
            "run; rerun the same command to start again",
        ),
        ("say", 130, "interrupted"),  # after the report, as the stop's line is said
    ],
    ids=["in-the-report", "after-the-report"],
)
def test_a_ctrl_c_as_a_first_pass_stop_ends_keeps_its_report(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    exit_code: int,
    last: str,
) -> None:
    # A SIGTERM in the first pass, then a Ctrl-C as its report is made or after it (the hold
    # took SIGTERM alone): the Ctrl-C reached the stop-while-starting handler, which wrote a
    # report of nothing over the pass's ("stopped": 130, "interrupted") and said "interrupted
    # while starting", though the state kept the pass's run and its report.
    stop_in_the_first_pass(monkeypatch, signal.SIGTERM)
    stop_before(monkeypatch, step, lambda: os.kill(os.getpid(), signal.SIGINT))
    events = write_events(tmp_path / "events.ndjson", FIRST_PASS_EVENTS)
    run = rpd_send(sandbox, tmp_path, events)
    assert (run.exit_code, run.exception) == (exit_code, None), run.stderr
    assert run.report is not None
    assert run.report["events"]["not_attempted"] == 3
    assert run.report["stopped"] == {"exit": 143, "reason": "terminated (SIGTERM)"}
    assert run.stderr.splitlines()[-1] == last
    assert "while starting" not in run.stderr


def test_a_stop_in_a_resumed_runs_first_pass_says_the_rerun_reads_on(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As credentials refused there say (FIRST_PASS_RERUN): the rerun skips the objects earlier
    # runs finished, it does not start again from the first.
    root = tmp_path / "backup"
    root.mkdir()
    write_events(root / "a.ndjson", [identify("m-a", "u-a", name="A")])
    first = rpd_send(sandbox, tmp_path, root, name="first")
    assert first.exit_code == 0, first.stderr
    write_events(root / "b.ndjson", FIRST_PASS_EVENTS)  # arrived since
    stop_in_the_first_pass(monkeypatch, signal.SIGINT)
    run = rpd_send(sandbox, tmp_path, root)
    assert run.exit_code == 130, run.stderr
    assert run.stderr.splitlines()[-1] == (
        "interrupted in the first pass over the input: no event was sent by this run; rerun the "
        "same command to read on from the objects not yet finished"
    )
    assert run.report is not None and run.report["events"]["not_attempted"] == 3

    monkeypatch.undo()
    again = rpd_send(sandbox, tmp_path, root, name="again")
    assert again.exit_code == 0, again.stderr
    assert again.report is not None and again.report["events"]["sent"] == 5
    assert holdings(sandbox).user_ids() == {"u-a": 1} | {f"u-{n}": 1 for n in range(5)}


def test_a_stop_in_the_first_pass_of_a_sandbox_run_without_state_does_not_promise_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a stop mid-run says (NO_STATE_RERUN): a rerun starts a new, empty sandbox.
    stop_in_the_first_pass(monkeypatch, signal.SIGINT)
    events = write_events(tmp_path / "events.ndjson", FIRST_PASS_EVENTS)
    command = ["send", str(events), "--sandbox", "--config", str(EXAMPLE_CONFIG)]
    result = CliRunner().invoke(app, command, env=dict(CLEAN_ENV))
    assert result.exit_code == 130, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "interrupted in the first pass over the input: no event was sent by this run; --sandbox "
        "keeps no state, so a rerun starts over in a new, empty sandbox"
    )


def test_a_sigterm_swallowed_after_the_last_event_still_exits_143_after_the_report(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once the run's own handlers are removed (asyncio.run's end, before the report's hold):
    # the send exited 0 as if never signalled.
    drive_all = send_cmd.drive_all

    def then_sigterm(*args: Any, **kwargs: Any) -> Any:
        stopped = drive_all(*args, **kwargs)
        swallowed_sigterm()
        return stopped

    monkeypatch.setattr(send_cmd, "drive_all", then_sigterm)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events)
    assert (run.exit_code, run.exception) == (143, None)
    assert run.report is not None and run.report["events"]["sent"] == 1


def test_a_sigterm_as_the_last_event_ends_is_not_lost(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A SIGTERM after the event loop's last turn, before its handlers were removed, was heard by
    # nobody: the loop never read it again, and the send exited as if never signalled.
    loop_class = asyncio.SelectorEventLoop  # asyncio.run's on Unix
    remove = loop_class.remove_signal_handler
    signalled: list[int] = []

    def sigterm_then(self: asyncio.AbstractEventLoop, signum: int) -> bool:
        if not signalled:
            signalled.append(signum)
            os.kill(os.getpid(), signal.SIGTERM)
        return remove(self, signum)  # type: ignore[arg-type]

    monkeypatch.setattr(loop_class, "remove_signal_handler", sigterm_then)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events)
    assert signalled
    assert run.exit_code == 143
    assert run.report is not None and run.report["events"]["sent"] == 1


def test_a_stop_while_the_report_is_written_never_says_nothing_was_sent(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Review: events a second signal cancelled are never counted, though their writes may have
    # reached Pipedrive; a third signal while the report was printed then said "no event was
    # sent; rerun the same command to start again". The events began: it says what stopped.
    def second_signal(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # the events in flight cancelled, none of them counted

    def third_signal(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(send_cmd, "drive_all", second_signal)
    monkeypatch.setattr(send_cmd, "print_send_report", third_signal)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events)
    assert run.exit_code == 130
    assert "no event was sent" not in run.stderr
    assert run.stderr.strip().endswith("interrupted")


def test_a_stop_of_a_sandbox_run_without_state_does_not_promise_a_resume(tmp_path: Path) -> None:
    # `send --sandbox` keeps no state, and a rerun starts a new, empty sandbox: it said "rerun
    # the same command to resume".
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(EVENTS * 3)],
    )
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "send", str(events), "--sandbox"]
    command += ["--config", str(EXAMPLE_CONFIG)]  # the growth plan's pace: 40 requests in 2 s
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline().decode()
        assert first.startswith("sandbox: Pipedrive emulator at http://127.0.0.1:")
        stats = first.split(" at ")[1].strip() + "/_sandbox/stats"

        def persons() -> int:
            answer = httpx.get(stats, headers={"x-api-token": "sandbox-token"}).json()
            return int(answer["requests"].get("POST /api/v2/persons", 0))

        wait_for(lambda: persons() >= 4)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130
    assert (
        stderr.decode()
        .rstrip()
        .endswith(
            "interrupted: no new events were started and those in flight were finished; --sandbox "
            "keeps no state, so a rerun starts over in a new, empty sandbox"
        )
    )


def test_state_show_during_a_send_says_its_run_is_in_progress(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """`rpd state show` while a send holds the state file: its run is in progress (it said "did
    not finish"), and the show neither waits for the send nor breaks it; once the send is done,
    the run's summary."""
    sandbox = make_sandbox(plan="unlimited")
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(EVENTS // 3)],
    )
    state = tmp_path / "state.sqlite"
    show = ["state", "show", "--state", str(state)]
    env = {**CLEAN_ENV, "COLUMNS": "200"}

    def last_run() -> str:
        result = CliRunner().invoke(app, show, env=env)
        assert result.exit_code == 0, result.output
        (row,) = [line for line in result.output.splitlines() if "last run" in line]
        return row.split("│")[2].strip()

    def in_progress(process: subprocess.Popen[bytes]) -> None:
        with sqlite3.connect(state) as db:
            started.extend(db.execute("SELECT started_at FROM runs").fetchone())
        assert last_run() == f"started {started[0]}, in progress (pid {process.pid})"

    started: list[str] = []  # the send waits for its first creates' answers until then
    process, _, stderr = acted_on(
        sandbox,
        "POST /api/v2/persons",
        1,
        lambda: start_send(sandbox, tmp_path, events),
        in_progress,
    )

    assert process.returncode == 0, stderr.decode()
    with sqlite3.connect(state) as db:
        (finished,) = db.execute("SELECT finished_at FROM runs").fetchone()
    assert last_run() == f"{started[0]} to {finished}: read 40, sent 40"


def sigterm_as_the_report_is_made(
    *args: object, made: Callable[..., None] = send_cmd.without_token
) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    made(*args)


def ctrl_c_as_the_fields_are_listed(*_args: object, **_kwargs: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.usefixtures("on_a_terminal")
@pytest.mark.parametrize(
    ("step", "stop", "exit_code", "said"),
    [
        (
            "without_token",
            sigterm_as_the_report_is_made,
            143,
            [
                "terminated (SIGTERM): no new events were started and those in flight were",
                "  finished; rerun the same command to resume",
            ],
        ),
        (
            "with_catalog",
            ctrl_c_as_the_fields_are_listed,
            130,
            [
                "interrupted while starting (reading the config, the state or the account's",
                "  fields): no event was sent; rerun the same command to start again",
            ],
        ),
    ],
)
def test_a_stop_wrapped_on_a_terminal_goes_on_indented(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    stop: Callable[..., None],
    exit_code: int,
    said: list[str],
) -> None:
    # At 80 columns the line went on in column 1, as if its end were a line of its own.
    monkeypatch.setattr(send_cmd, step, stop)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events, args=("-q",))
    assert (run.exit_code, run.stderr.splitlines()) == (exit_code, said)
