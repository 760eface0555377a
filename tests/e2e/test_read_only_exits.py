"""The exit codes of the commands that only read Pipedrive (check, map-fields, dry-run --lookups,
init from the account), by SPEC 6, over real loopback HTTP: 4 when Pipedrive is unreachable (a
closed port), keeps failing (5xx, its retries spent) or the daily budget is spent; 3 when it
refuses the token. Each says the one line it said when all of them exited 1, a code for failed
events these commands do not have (as send's stop on a listing before any event now exits:
tests/e2e/test_send_catalog.py). An answer that is not Pipedrive's envelope (an HTML page):
tests/http/test_http_malformed_answers.py."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from test_map_fields import (
    TOKEN,
    GoneFields,
    MakeSandbox,
    clean_env,  # noqa: F401 - autouse fixture: no RPD_* variables, in tmp_path
    invoke,
    write_config,
)
from test_send_security import exhaust_budget

from rudder_pipedrive_cli.cli import account
from rudder_pipedrive_cli.cli.account import INTERACTIVE_RETRIES
from rudder_pipedrive_cli.http.client import UNREACHABLE_HINT
from rudder_pipedrive_cli.sandbox import routes

COMMANDS = {
    "check": ["check"],
    "map-fields": ["map-fields"],
    "dry-run": ["dry-run", "--lookups", "in.ndjson"],
    "init": ["init", "-o", "-"],
}
CONFIG_OK = "ok    config: rpd.toml is valid"

# Retries go on at once (their waits' lengths are tests/http's, on fake clocks): what a command
# says and its exit do not depend on them; a try's timeout is still waited in full.
pytestmark = pytest.mark.usefixtures("no_waits")


def run(command: str, url: str, *, token: str = TOKEN, fields: str = "") -> tuple[int, str]:
    """`rpd COMMAND` against `url` (in tmp_path: clean_env; `fields`: the config's field tables):
    its exit code, and its stdout and stderr as one text (in that order; check writes its rows
    to stdout), a 5xx's drawn status said as 5xx."""
    Path("in.ndjson").write_text(
        '{"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "Ada"}}\n'
    )
    config = write_config(Path("rpd.toml"), url, fields=fields)
    code, out, err = invoke(*COMMANDS[command], "--config", config, token=token)
    assert token not in out + err
    return code, re.sub(r"HTTP 50[0-9]", "HTTP 5xx", out + err)


def free_port() -> int:
    """A loopback port nothing listens on once the probe is closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unreachable_said(command: str, url: str, last: str) -> str:
    """What every command says of Pipedrive unreachable at `url` (the seconds as 9.9): a
    send's words and hint; check in its FAIL row."""
    stop = (
        f"Pipedrive is unreachable at {url}: 3 connection failures in a row over 9.9 s, no "
        f"answer between them (last: {last})"
    )
    if command == "check":
        said = [CONFIG_OK, f"FAIL  pipedrive: {stop}", f"      hint: {UNREACHABLE_HINT}"]
        return "\n".join([*said, "1 of 2 checks failed"]) + "\n"
    return f"error: {stop}\nhint: {UNREACHABLE_HINT}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_pipedrive_unreachable_exits_4_with_the_same_line(command: str) -> None:
    # Before: check said 'FAIL  pipedrive: GET /v1/users/me: ConnectError: All connection
    # attempts failed after 3 attempts' (hint 'is URL right ... and reachable? then try
    # again'), map-fields and init 'error: GET /api/v2/personFields: ConnectError: ...' where
    # send and dry-run --lookups said Pipedrive unreachable: every command now says that.
    url = f"http://127.0.0.1:{free_port()}"
    code, text = run(command, url)
    assert (code, re.sub(r"over \d+\.\d s", "over 9.9 s", text)) == (
        4,
        unreachable_said(command, url, "ConnectError: All connection attempts failed"),
    )


@contextmanager
def never_answering() -> Iterator[tuple[str, Callable[[], int]]]:
    """A loopback server that takes connections and never answers: a listening socket no one
    accepts on (the kernel completes each connection and the request waits in it, unread); its
    URL, and how many connections were made to it (taken from its queue, once they are made)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        taken: list[socket.socket] = []

        def connections() -> int:
            listener.setblocking(False)
            with suppress(BlockingIOError):
                while True:
                    taken.append(listener.accept()[0])
            return len(taken)

        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}", connections
        finally:
            for connection in taken:
                connection.close()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_server_that_never_answers_stops_each_command_at_its_third_try(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: each try waited a send's 30 s for its answer, and the 60 s streak a send rides
    # out stopped the command after some 92 s. Now each waits INTERACTIVE_TIMEOUT (shortened
    # here: 10 s, cli/account.py), and check, map-fields and init stop when the
    # request's third try is unanswered: 3 connections. dry-run --lookups stops where its send
    # would, on a streak of two timeouts after the first (`interactive_reach`), which the
    # back-off's jitter may stretch past the second try: 2 or 3. Every one in a send's words.
    monkeypatch.setattr(account, "INTERACTIVE_TIMEOUT", 0.5)
    with never_answering() as (url, connections):
        code, text = run(command, url)
        made = connections()
    if command == "dry-run":
        assert made in (2, 3), text
        text = text.replace(f"{made} connection failures", "3 connection failures")
    else:
        assert made == INTERACTIVE_RETRIES + 1
    assert (code, re.sub(r"over \d+\.\d s", "over 9.9 s", text)) == (
        4,
        unreachable_said(command, url, "ReadTimeout"),
    )
    streak = re.search(r"in a row over (\d+\.\d) s", text)
    assert streak is not None and float(streak[1]) < 30, text  # not a send's 60 s streak


@pytest.mark.parametrize("command", COMMANDS)
def test_pipedrive_failing_5xx_exits_4_with_the_same_line(
    make_sandbox: MakeSandbox, command: str
) -> None:
    sandbox = make_sandbox(plan="unlimited", token=TOKEN, fail_5xx=1.0)
    failing = "HTTP 5xx after 3 attempts"
    said = {
        "check": [
            CONFIG_OK,
            f"FAIL  pipedrive: GET /v1/users/me: {failing}",
            f"      hint: is {sandbox.url} right (base_url, company_domain) and reachable? then "
            "try again",
            "1 of 2 checks failed",
        ],
        # Each listing stands alone: all four failed, the first is said.
        "map-fields": [f"error: GET /api/v2/personFields: {failing}", "hint: try again later"],
        # Planned without the listings (as a send goes on), its first lookup fails: stopped.
        "dry-run": [
            f"warning: GET /api/v2/personFields: {failing}; values will be sent without type "
            "conversion",
            f"error: GET /api/v2/itemSearch/field: {failing}",
            "hint: try again later",
        ],
        "init": [f"error: GET /api/v2/personFields: {failing}", "hint: try again later"],
    }
    assert run(command, sandbox.url) == (4, "\n".join(said[command]) + "\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_the_daily_budget_spent_exits_4(make_sandbox: MakeSandbox, command: str) -> None:
    sandbox = make_sandbox(plan="growth", token=TOKEN)
    exhaust_budget(sandbox, leave=0)
    code, said = run(command, sandbox.url)  # the config's plan is unlimited: rpd does not pace
    lines = said.splitlines()
    assert code == 4, said
    assert lines[-2].startswith("error: daily API token budget spent (HTTP 429 with "), said
    assert lines[-1] == "hint: rerun the same command later to resume"
    assert lines[:-2] == ([CONFIG_OK] if command == "check" else [])


@pytest.mark.parametrize("command", COMMANDS)
def test_a_refused_token_exits_3(make_sandbox: MakeSandbox, command: str) -> None:
    sandbox = make_sandbox(plan="unlimited", token=TOKEN)
    refused = "Pipedrive refused the API token (401)"
    hint = "check $PIPEDRIVE_API_TOKEN, the token sent (it wins over [pipedrive] api_token)"
    expected = [f"error: {refused}", f"hint: {hint}"]
    if command == "check":
        expected = [
            CONFIG_OK,
            f"FAIL  token: {refused}",
            f"      hint: {hint}",
            "1 of 2 checks failed",
        ]
    assert run(command, sandbox.url, token="tok-not-the-one") == (3, "\n".join(expected) + "\n")


def test_a_listing_refused_404_that_a_mapped_name_needs_stops_dry_run_exit_2(
    make_sandbox: MakeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person fields' listing answers 404 and the config maps a trait to a field by its name,
    which only that listing resolves: dry-run --lookups stops before any event, as send does.
    A 404 is the config's to change (base_url naming another server), no rerun mends it: exit 2
    and no "try again later", as map-fields, check and init say of it (it said 4 with that hint,
    the stop taken as one a rerun later may get past)."""
    sandbox = make_sandbox(plan="unlimited", token=TOKEN)
    monkeypatch.setattr(routes, "FIELDS", GoneFields("person"))
    fields = '[fields.persons]\njob = "Role"\n'
    assert run("dry-run", sandbox.url, fields=fields) == (
        2,
        "error: listing person fields failed: HTTP 404 Not found (Please check "
        "developers.pipedrive.com for more information about Pipedrive API.); without it "
        "fields.persons.job = 'Role' cannot be resolved\n",
    )
