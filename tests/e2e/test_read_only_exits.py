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

from rudder_pipedrive_cli.http.client import UNREACHABLE_HINT
from rudder_pipedrive_cli.sandbox import routes

COMMANDS = {
    "check": ["check"],
    "map-fields": ["map-fields"],
    "dry-run": ["dry-run", "--lookups", "in.ndjson"],
    "init": ["init", "-o", "-"],
}
CONFIG_OK = "ok    config: rpd.toml is valid"
NO_ANSWER = "hint: check the network and base_url / company_domain (or --base-url), then try again"


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


@pytest.mark.parametrize("command", COMMANDS)
def test_pipedrive_unreachable_exits_4_with_the_same_line(command: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    refused = "ConnectError: All connection attempts failed after 3 attempts"
    said = {
        "check": [
            CONFIG_OK,
            f"FAIL  pipedrive: GET /v1/users/me: {refused}",
            f"      hint: is {url} right (base_url, company_domain) and reachable? then try again",
            "1 of 2 checks failed",
        ],
    }
    for other in ("map-fields", "init"):
        said[other] = [f"error: GET /api/v2/personFields: {refused}", NO_ANSWER]
    # dry-run --lookups stops as the send it previews does, in its words (the seconds vary).
    said["dry-run"] = [
        f"error: Pipedrive is unreachable at {url}: 3 connection failures in a row over 9.9 s, "
        "no answer between them (last: ConnectError: All connection attempts failed)",
        f"hint: {UNREACHABLE_HINT}",
    ]
    code, text = run(command, url)
    assert (code, re.sub(r"over \d+\.\d s", "over 9.9 s", text)) == (
        4,
        "\n".join(said[command]) + "\n",
    )


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
