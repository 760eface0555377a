"""Pipedrive unreachable (issue 13 item 11; SPEC 6 exit 4): after UNREACHABLE_FAILURES connection
failures in a row with no answer between them, send stops taking events, ends those in flight,
keeps its state, prints the report and says so; events read but not finished are counted as not
attempted (not failed, not dead-lettered) and a rerun sends them, duplicating nothing."""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path

import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    TOKEN,
    assert_report_adds_up,
    assert_resumed,
    holdings,
    identify,
    rpd_send,
    write_events,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.account import INTERACTIVE_RETRIES
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.cli.send_catalog import listed_with
from rudder_pipedrive_cli.core.catalog import Catalog
from rudder_pipedrive_cli.core.errors import NeverConnected, PlanFailure, Unreachable
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.http.blocking import BlockingClient
from rudder_pipedrive_cli.http.client import UNREACHABLE_FAILURES, UNREACHABLE_HINT, Reachability
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.replies import Answer

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
EVENTS = 200

# A connection refused or reset is retried at once (the back-off's lengths are tests/http's, on
# fake clocks): the stops, their words and counts are the same; a streak's seconds are not
# asserted. A try's timeout is still waited in full.
pytestmark = pytest.mark.usefixtures("no_waits")


def free_port() -> int:
    """A loopback port nothing listens on once the probe is closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable_error(url: str) -> re.Pattern[str]:
    return re.compile(
        rf"error: Pipedrive is unreachable at {re.escape(url)}: {UNREACHABLE_FAILURES} "
        r"connection failures in a row over \d+\.\d s, no answer between them \(last: "
        r"ConnectError: [^\n]*\)\n"
        rf"hint: {re.escape(UNREACHABLE_HINT)}\n$"
    )


def test_the_unreachable_hint_fits_every_command() -> None:
    # map-fields, check and init stop the same way: the hint was a send's alone ("rerun the
    # same command to resume (events not attempted are sent then...").
    assert UNREACHABLE_HINT == (
        "check the network and base_url / company_domain, then rerun the same command (a send "
        "resumes: events not attempted are sent then; writes left in flight are reconciled, not "
        "repeated)"
    )


def journal_and_inflight(state: Path) -> tuple[int, int]:
    with sqlite3.connect(state) as db:
        journaled = db.execute("SELECT count(*) FROM journal").fetchone()[0]
        inflight = db.execute("SELECT count(*) FROM inflight").fetchone()[0]
    return int(journaled), int(inflight)


def test_a_dead_port_stops_the_send_at_its_first_request_and_the_rerun_sends_all(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Before: the account's and the field listing's failures were warnings, then the events met
    # the dead port until 20 connection failures in a row stopped the run (52 s by default).
    # Now the first request that never connected stops it there: nothing read, nothing begun.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(EVENTS)],
    )
    state = tmp_path / "state.sqlite"
    run = rpd_send(
        None, tmp_path, events, state=state, args=("--base-url", url, "--max-retries", "1", "-q")
    )

    assert run.exit_code == 4, run.stderr
    assert re.fullmatch(
        rf"error: Pipedrive is unreachable at {re.escape(url)}: 2 connection failures in a row "
        r"over \d+\.\d s, no answer between them \(last: ConnectError: [^\n]*\)\n"
        rf"hint: {re.escape(UNREACHABLE_HINT)}\n",
        run.stderr,
    ), run.stderr
    assert run.report is not None
    assert run.report["identities"] is None  # stopped before it chose how to resolve them
    assert run.report["events"] == {
        "read": 0,
        "sent": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert run.report["requests"] == {} and run.report["tokens"] == 0
    assert run.report["dead_letter"] is None and not run.dead_letter.exists()
    # Its counts are an empty input's: what stopped it is said, as the state's last run says.
    stopped = run.report["stopped"]
    assert (
        stopped["exit"] == 4 and stopped["reason"] == run.stderr.splitlines()[0][len("error: ") :]
    )
    shown = CliRunner().invoke(app, ["state", "show", "--state", str(state)], env=CLEAN_ENV)
    assert re.search(r"last run +│ \S+ to \S+: stopped early \(exit 4\) +│", shown.output), (
        shown.output
    )
    assert journal_and_inflight(state) == (0, 0)

    sandbox = make_sandbox(plan="unlimited", port=port)  # Pipedrive up at last
    assert_resumed(sandbox, tmp_path, events, state, done=0)
    assert journal_and_inflight(state) == (EVENTS, 0)


def test_the_account_request_before_any_event_is_asked_as_check_asks_it(tmp_path: Path) -> None:
    # Before: with the default --max-retries (6) the account's request was tried 7 times, about
    # 25 s of back-off, before a dead base_url (the sandbox not started) stopped the send. It is
    # tried as check and map-fields try theirs (INTERACTIVE_RETRIES): nothing is sent yet.
    url = f"http://127.0.0.1:{free_port()}"
    events = write_events(tmp_path / "events.ndjson", [identify("m-0", "u-0", name="User 0")])
    state = tmp_path / "state.sqlite"
    run = rpd_send(None, tmp_path, events, state=state, args=("--base-url", url, "-q"))

    assert run.exit_code == 4, run.stderr
    tries = INTERACTIVE_RETRIES + 1
    assert re.match(
        rf"error: Pipedrive is unreachable at {re.escape(url)}: {tries} connection failures in a "
        r"row over \d+\.\d s",
        run.stderr,
    ), run.stderr
    assert journal_and_inflight(state) == (0, 0)


LISTINGS = ("/v1/users/me", "Fields", "/leadLabels", "/pipelines", "/stages", "/activityTypes")


def listings_dropped(sandbox: Sandbox) -> Sandbox:
    """`sandbox` closing the connection of each listing (the account's too) without an answer,
    as `fail_reset` drops a write's: connected, then the answer lost."""
    handle = sandbox.app.handle

    def dropping(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        answer = handle(method, target, headers, body)
        listing = method == "GET" and any(part in target for part in LISTINGS)
        return replace(answer, drop=True) if listing else answer

    sandbox.app.handle = dropping  # type: ignore[method-assign]
    return sandbox


def sends_listing(url: str) -> Callable[[], Catalog]:
    """A send's field listing (`listed_with`) at `url`, each request tried once."""
    reach = Reachability()
    lists = partial(BlockingClient, token=TOKEN, base_url=url, max_retries=0, reach=reach)
    return listed_with(lists, PlanConfig(), partial(reach.unreachable, url))


def test_a_proxy_that_cannot_be_reached_is_named_in_the_stop_and_its_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: 'Pipedrive is unreachable at URL', hint 'check the network and base_url /
    # company_domain', both right: a send through a proxy connects to the proxy alone, so a
    # connection never made is the proxy's (one that cannot reach Pipedrive answers 502).
    for name in ("https_proxy", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    url = "https://acme.pipedrive.com"
    events = write_events(tmp_path / "events.ndjson", [identify("m-0", "u-0", name="User 0")])
    run = rpd_send(None, tmp_path, events, args=("--base-url", url, "-q"))

    assert run.exit_code == 4, run.stderr
    tries = INTERACTIVE_RETRIES + 1
    assert re.fullmatch(
        rf"error: Pipedrive is unreachable at {re.escape(url)} through the proxy in \$HTTPS_PROXY: "
        rf"{tries} connection failures in a row over \d+\.\d s, no answer between them \(last: "
        r"ConnectError: [^\n]*\(through the proxy in \$HTTPS_PROXY\)\)\n"
        r"hint: check the proxy in \$HTTPS_PROXY, the network and base_url / company_domain, "
        r"then rerun the same command \(a send resumes: [^\n]*\)\n",
        run.stderr,
    ), run.stderr
    assert run.report is not None and run.report["events"]["read"] == 0


def test_a_send_s_listing_that_never_connected_stops_it(tmp_path: Path) -> None:
    # The account's request comes first and stops a send at a dead port; this one stops a send
    # whose account answered and whose listing then met a closed port.
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as stopped:
        sends_listing(url)()
    assert re.fullmatch(
        rf"Pipedrive is unreachable at {re.escape(url)}: \d+ connection failures in a row "
        r"over \d+\.\d s, no answer between them \(last: ConnectError: [^\n]*\)",
        stopped.value.message,
    ), stopped.value.message
    assert stopped.value.hint == UNREACHABLE_HINT


def test_a_send_s_listing_whose_answer_was_lost_is_a_failed_listing(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = listings_dropped(make_sandbox(plan="unlimited"))
    with pytest.raises(PlanFailure) as failed:
        sends_listing(sandbox.url)()
    assert not isinstance(failed.value, NeverConnected)
    assert failed.value.reason == (
        "GET /api/v2/personFields: RemoteProtocolError: Server disconnected without sending a "
        "response. after 1 attempt"
    )


def test_listings_whose_answers_are_lost_are_warned_and_the_send_goes_on(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Connected, then the connection closed without an answer: Pipedrive may be there, so the
    # send goes on without the listings, as before.
    sandbox = listings_dropped(make_sandbox(plan="unlimited"))
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(10)],
    )
    run = rpd_send(sandbox, tmp_path, events, args=("--max-retries", "1"))

    assert run.exit_code == 0, run.stderr
    assert (
        "warning: GET /api/v2/personFields: RemoteProtocolError: Server disconnected without "
        "sending a response. after 2 attempts; values will be sent without type conversion\n"
    ) in run.stderr
    assert run.report is not None and run.report["events"]["sent"] == 10
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(10)}


def dry_run_lookups(url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    """`rpd dry-run --lookups` of ten identifies at `url` in-process: its exit and stderr."""
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(10)],
    )
    command = ["dry-run", str(events), "--config", str(EXAMPLE_CONFIG), "--lookups"]
    command += ["--base-url", url, "--plan", "unlimited", "-o", str(tmp_path / "plan"), *args]
    result = CliRunner().invoke(app, command, env={**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN})
    return result.exit_code, result.stderr


@pytest.mark.parametrize("state", [(), ("--state", "state.sqlite")])
def test_dry_run_lookups_at_a_dead_port_stops_with_the_send_s_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: tuple[str, ...]
) -> None:
    # Before: 'error: GET /api/v2/personFields: ConnectError: ... after 3 attempts' (with a
    # state, after the account's 3 attempts, its failure unsaid), hint 'check the network and
    # base_url / company_domain (or --base-url), then try again': the send's stop in other words.
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    if state:
        ReplayState.open(tmp_path / "state.sqlite", "").close()
    code, stderr = dry_run_lookups(url, tmp_path, *state)

    assert code == 4, stderr
    tries = INTERACTIVE_RETRIES + 1  # the first request's: the account's with a state
    assert re.fullmatch(
        rf"error: Pipedrive is unreachable at {re.escape(url)}: {tries} connection failures in a "
        r"row over \d+\.\d s, no answer between them \(last: ConnectError: [^\n]*\)\n"
        rf"hint: {re.escape(UNREACHABLE_HINT)}\n",
        stderr,
    ), stderr


def test_dry_run_lookups_whose_listings_answers_are_lost_plans_as_the_send_goes_on(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Before: stopped at the first listing, exit 4, no plan ('error: GET /api/v2/personFields:
    # RemoteProtocolError: ...'), where the send warns and sends every event (the test above).
    sandbox = listings_dropped(make_sandbox(plan="unlimited"))
    code, stderr = dry_run_lookups(sandbox.url, tmp_path, "--format", "ndjson")

    warned = [line for line in stderr.splitlines() if line.startswith(("warning", "error"))]
    assert (code, warned) == (
        0,
        [
            "warning: GET /api/v2/personFields: RemoteProtocolError: Server disconnected without "
            "sending a response. after 3 attempts; values will be sent without type conversion",
            "warning: track #2.pipeline = 'Sales' (and 2 more) cannot be resolved without the "
            "listings: the events of those track rules fail (retryable)",
        ],
    )
    planned = [orjson.loads(line) for line in (tmp_path / "plan").read_bytes().splitlines()]
    assert [record["outcome"] for record in planned] == ["planned"] * 10


def test_pipedrive_stopped_mid_run_stops_it_and_the_rerun_resumes(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", port=free_port(), latency_ms=20)
    url = sandbox.url
    events = write_events(
        tmp_path / "events.ndjson",
        [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(EVENTS)],
    )
    state = tmp_path / "state.sqlite"

    def stop_after_some_persons() -> None:
        while sandbox.stats()["requests"].get("POST /api/v2/persons", 0) < 20:
            threading.Event().wait(0.005)
        sandbox.stop()

    stopper = threading.Thread(target=stop_after_some_persons, daemon=True)
    stopper.start()
    run = rpd_send(sandbox, tmp_path, events, state=state)
    stopper.join(timeout=10)

    assert run.exit_code == 4, run.stderr
    assert unreachable_error(url).search(run.stderr), run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    counts = run.report["events"]
    sent, left = counts["sent"], counts["not_attempted"]
    assert counts == {
        "read": sent + left,
        "sent": sent,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "not_attempted": left,
    }
    assert sent >= 20 - 8 and left > 0 and sent + left < EVENTS
    assert not run.dead_letter.exists()
    # What the run finished is journaled; a create cut off mid-way stays in flight.
    journaled, inflight = journal_and_inflight(state)
    assert journaled == sent and inflight <= 8

    sandbox.start()  # the same port, the same data
    assert_resumed(sandbox, tmp_path, events, state, done=sent)
    assert journal_and_inflight(state) == (EVENTS, 0)
