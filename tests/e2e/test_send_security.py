"""SPEC 8 around `rpd send`: the token never shows, http:// only to loopback, a warning for a
token in a config others can read, and a refused token is exit 3 in one or two lines."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from e2e_support import (
    EXAMPLES,
    assert_report_adds_up,
    assert_stopped_while_starting,
    identify,
    rpd_send,
    track,
    write_config,
    write_events,
)
from loopback import serve_in_thread

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
SECRET = "tok-9f8e7d6c5b4a-SECRET"


def exhaust_budget(sandbox: Sandbox, *, leave: int) -> None:
    """Spend all but `leave` tokens of today's budget (SandboxOptions has no budget knob)."""
    from rudder_pipedrive_cli.sandbox.limits import _DAY_S

    limiter = sandbox.app.limiter
    limiter.day = int(sandbox.app.clock() // _DAY_S)
    limiter.spent = limiter.budget - leave


def every_output(tmp_path: Path, *texts: str) -> str:
    """The given texts and every file the runs left under tmp_path (report, dead letters, state
    file, its WAL), as one string to search for the token."""
    parts = list(texts)
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


@pytest.mark.usefixtures("no_waits")  # its retries go on at once (-v still says each): 2 s waited
def test_the_token_never_appears_in_output_reports_dead_letters_or_state(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", token=SECRET, fail_5xx=0.2, fault_seed=1)
    no_create = write_config(tmp_path, name="no-create.toml", create_persons="false")

    # A verbose run where events fail (dead letters) and requests are retried.
    failing = rpd_send(
        sandbox,
        tmp_path,
        EXAMPLES / "events.ndjson",
        config=no_create,
        token=SECRET,
        args=("-v", "--max-retries", "1"),
        name="failing",
    )
    assert failing.exit_code == 1, failing.stderr
    assert failing.dead_letters
    retried = [line for line in failing.stderr.splitlines() if line.startswith("debug: ")]
    assert retried and all("; retrying in " in line for line in retried)  # -v shows retries
    assert failing.report is not None
    assert_report_adds_up(failing.report)

    # A verbose run that succeeds.
    sandbox.set_faults(fail_5xx=0.0)
    ok = rpd_send(
        sandbox, tmp_path, EXAMPLES / "events.ndjson", token=SECRET, args=("-v",), name="ok"
    )
    assert ok.exit_code == 0, ok.stderr

    # A verbose run stopped by an error, which -v prints with its traceback.
    limited = make_sandbox(plan="growth", token=SECRET)
    exhaust_budget(limited, leave=100)
    stopped = rpd_send(
        limited,
        tmp_path,
        EXAMPLES / "events.ndjson",
        token=SECRET,
        args=("-v", "--plan", "growth"),
        name="stopped",
    )
    assert stopped.exit_code == 4, stopped.stderr
    assert "Traceback (most recent call last)" in stopped.stderr

    outputs = [run.stdout + run.stderr for run in (failing, ok, stopped)]
    assert SECRET not in every_output(tmp_path, *outputs)


def test_a_token_in_the_events_is_never_shown_or_written(
    make_sandbox: MakeSandbox, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # QA: an event whose type was the token showed it in the report's table, its skip reason,
    # the --report JSON and the state's record of the run; failed events holding it (a trait, an
    # external id, a line that is no JSON) wrote it into the dead letters.
    sandbox = make_sandbox(plan="unlimited", token=SECRET)
    held = {"type": "person_id", "id": SECRET}
    events = tmp_path_factory.mktemp("input") / "events.ndjson"  # not among the outputs searched
    events.write_bytes(
        orjson.dumps({"type": SECRET.upper(), "messageId": "m-1", "userId": "u-1"})
        + b"\n"
        + orjson.dumps(
            {
                "type": "identify",
                "messageId": "m-2",
                "userId": "u-2",
                "traits": {"note": SECRET},
                "context": {"externalId": [held]},
            }
        )
        + f"\n{SECRET}\n".encode()
    )
    run = rpd_send(sandbox, tmp_path, events, token=SECRET, args=("-v",))
    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert "unsupported type: [token redacted]" in run.stderr
    assert run.report["by_type"]["[token redacted]"] == {"skipped": 1}
    letters = [orjson.loads(line) for line in run.dead_letter.read_bytes().splitlines()]
    assert letters[0]["error"]["reason"] == (
        "its traits.note holds the API token: correct the event (it is not sent)"
    )
    assert [letter["event"] for letter in letters] == [
        {
            "type": "identify",
            "messageId": "m-2",
            "userId": "u-2",
            "traits": {"note": "[token redacted]"},
            "context": {"externalId": [{"type": "person_id", "id": "[token redacted]"}]},
        },
        "[token redacted]",
    ]
    assert SECRET.lower() not in every_output(tmp_path, run.stdout + run.stderr).lower()


def test_dead_letters_of_events_holding_the_token_fail_again_when_sent(
    make_sandbox: MakeSandbox, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Review: a dead letter holds "[token redacted]" in the token's place; sent again, that text
    # went into Pipedrive (a person's role, a lead's campaign). It fails again instead, saying
    # what to put back. A page holding the token is skipped as any page is: nothing of it but
    # its messageId is kept.
    sandbox = make_sandbox(plan="unlimited", token=SECRET)
    events = tmp_path_factory.mktemp("input") / "events.ndjson"
    leaked = {
        "type": "identify",
        "messageId": "m-1",
        "userId": "u-1",
        "traits": {"name": "One", "role": f"x{SECRET}"},
    }
    page = {"type": "page", "messageId": "m-2", "userId": "u-2", "properties": {"url": SECRET}}
    events.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in (leaked, page)))
    first = rpd_send(sandbox, tmp_path, events, token=SECRET, name="first")
    assert first.exit_code == 1, first.stderr
    assert first.report is not None
    assert (first.report["events"]["failed"], first.report["events"]["skipped"]) == (1, 1)

    again = rpd_send(sandbox, tmp_path, first.dead_letter, token=SECRET, name="again")

    assert again.exit_code == 1, again.stderr
    (letter,) = again.dead_letters
    assert letter["error"]["reason"] == (
        "its traits.role holds [token redacted], a dead letter's stand-in for the API token: put "
        "the value back or remove it (it is not sent)"
    )
    assert sandbox.state()["persons"] == []
    assert SECRET.lower() not in every_output(tmp_path, again.stdout + again.stderr).lower()


def test_an_event_whose_identities_hold_the_token_is_refused_before_it_is_planned(
    make_sandbox: MakeSandbox, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Noticed in a hostile pass: a messageId or userId that is (or holds) the token was sent and
    # kept as it is in the state file (journal, identity cache, writes in flight). Such an event
    # is now failed before it is planned, its reason naming the key, never the token; so is one
    # holding it anywhere else (a trait, an anonymousId: see the test above), for the user to
    # find the leak rather than have it sent into Pipedrive.
    sandbox = make_sandbox(plan="unlimited", token=SECRET)
    events = tmp_path_factory.mktemp("input") / "events.ndjson"  # not among the outputs searched
    refused = [
        {"type": "identify", "messageId": SECRET, "userId": "u-1"},
        {"type": "identify", "messageId": "m-2", "userId": f"user-{SECRET.lower()}"},
        {"type": "identify", "messageId": "m-3", "traits": {"userId": SECRET}},
        {"type": "group", "messageId": "m-4", "userId": "u-4", "groupId": SECRET},
        {"type": "alias", "messageId": "m-5", "userId": "u-5", "previousId": SECRET},
    ]
    anonymous = {"type": "identify", "messageId": "m-6", "anonymousId": SECRET}
    fine = {"type": "identify", "messageId": "m-7", "userId": "u-7", "traits": {"name": "Seven"}}
    events.write_bytes(
        b"".join(orjson.dumps(event) + b"\n" for event in [*refused, anonymous, fine])
    )

    run = rpd_send(sandbox, tmp_path, events, token=SECRET, args=("-v",))

    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert run.report["events"] == {
        "read": 7,
        "sent": 1,
        "unchanged": 0,
        "skipped": 0,
        "failed": 6,
    }
    writes = {key: n for key, n in run.report["requests"].items() if not key.startswith("GET ")}
    assert writes == {"POST /api/v2/persons": 1}
    letters = [orjson.loads(line) for line in run.dead_letter.read_bytes().splitlines()]
    assert [(letter["source"], letter["error"]["reason"]) for letter in letters] == [
        (f"{events}:1", "its messageId holds the API token: correct the event (it is not sent)"),
        (f"{events}:2", "its userId holds the API token: correct the event (it is not sent)"),
        (f"{events}:3", "its userId holds the API token: correct the event (it is not sent)"),
        (f"{events}:4", "its groupId holds the API token: correct the event (it is not sent)"),
        (f"{events}:5", "its previousId holds the API token: correct the event (it is not sent)"),
        (f"{events}:6", "its anonymousId holds the API token: correct the event (it is not sent)"),
    ]
    assert letters[0]["event"] == {
        "type": "identify",
        "messageId": "[token redacted]",
        "userId": "u-1",
    }
    held = sandbox.state()
    assert [person["name"] for person in held["persons"]] == ["Seven"]
    assert held["organizations"] == []
    assert SECRET.lower() not in every_output(tmp_path, run.stdout + run.stderr).lower()


def test_http_to_a_non_loopback_host_is_refused(tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="One")])

    run = rpd_send(None, tmp_path, events, token=SECRET, args=("--base-url", "http://example.com"))

    assert run.exit_code == 2
    assert run.stderr.splitlines() == [
        "error: command line: base_url http://example.com uses http:// to a non-loopback host: "
        "the token "
        "would travel in clear text",
        "hint: use https://, or http:// only for 127.0.0.1, ::1 or localhost",
    ]
    assert run.stdout == ""
    assert_stopped_while_starting(run.report, 2, run.stderr.splitlines()[0][7:])


def test_a_base_url_carrying_the_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="One")])
    url = f"https://api.pipedrive.com/?api_token={SECRET}"

    run = rpd_send(None, tmp_path, events, token=SECRET, args=("--base-url", url))

    assert run.exit_code == 2
    assert run.stderr.splitlines() == [
        "error: command line: base_url for api.pipedrive.com holds credentials, a query or a "
        "fragment",
        "hint: give only scheme://host[:port][/path]; the token goes in api_token or "
        "PIPEDRIVE_API_TOKEN and is sent in the x-api-token header",
    ]
    assert SECRET not in every_output(tmp_path, run.stdout, run.stderr)  # the report's too
    assert_stopped_while_starting(run.report, 2, run.stderr.splitlines()[0][7:])


def test_a_token_in_a_config_others_can_read_is_warned_about(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", token=SECRET)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="One")])
    config = write_config(tmp_path, api_token=f'"{SECRET}"')
    warning = (
        f"warning: {config} holds an API token and is readable by other users: run "
        f"`chmod 600 {config}` or use $PIPEDRIVE_API_TOKEN instead"
    )

    private = rpd_send(sandbox, tmp_path, events, config=config, token=None, name="private")
    os.chmod(config, 0o644)
    shared = rpd_send(sandbox, tmp_path, events, config=config, token=None, name="shared")

    assert private.exit_code == shared.exit_code == 0, shared.stderr
    assert "readable by other users" not in private.stderr
    assert warning in " ".join(shared.stderr.split())
    assert SECRET not in shared.stderr


def test_a_refused_token_is_exit_3_with_a_short_error(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "e.ndjson",
        [identify("m-1", "u-1", name="One"), track("m-2", "u-1", "Signed Up")],
    )

    run = rpd_send(sandbox, tmp_path, events, token="not-the-token")

    assert run.exit_code == 3
    assert run.stderr.splitlines() == [
        "error: Pipedrive refused the API token (401)",
        "hint: check $PIPEDRIVE_API_TOKEN, the token sent (it wins over [pipedrive] api_token)",
    ]
    assert "not-the-token" not in run.stderr
    assert sandbox.state()["persons"] == []


class _Echo400:
    """A loopback server that answers everything 400, repeating the request's headers (token
    included) in its error, as a proxy or a wrong base_url might. `shout`: the token in upper
    case; `me`: `/v1/users/me` answers 200 with the token as the user's name."""

    def __init__(self, *, shout: bool = False, me: bool = False) -> None:
        self.shout, self.me = shout, me

    def __enter__(self) -> str:
        shout, me = self.shout, self.me
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                token = str(self.headers.get("x-api-token"))
                token = token.upper() if shout else token
                status, answer = (
                    400,
                    {
                        "success": False,
                        "error": "Unknown token " + token,
                        "error_info": "" if shout else str(dict(self.headers)),
                        "data": None,
                    },
                )
                if me and self.path.startswith("/v1/users/me"):
                    status, answer = 200, {"success": True, "data": {"id": 1, "name": token}}
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PATCH = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve_in_thread(self.server)
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_repeating_the_token_never_gets_it_into_output_or_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rudder_pipedrive_cli.cli.main import app

    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    with _Echo400() as url:
        run = rpd_send(None, tmp_path, events, token=SECRET, args=("--base-url", url, "-v"))
        config = tmp_path / "echo.toml"
        config.write_text(f'[pipedrive]\nbase_url = "{url}"\n')
        env = {"PIPEDRIVE_API_TOKEN": SECRET, "RPD_CONFIG": "", "NO_COLOR": "1"}
        others = [
            CliRunner().invoke(app, [*command, "--config", str(config)], env=env)
            for command in (["check"], ["map-fields"], ["dry-run", str(events), "--lookups"])
        ]
    assert run.exit_code == 1
    assert "Unknown token [token redacted]" in run.stderr  # the answer is shown, the token not
    # check: the token's row failed (users/me answered 400), a check made that failed: exit 2;
    # each refused listing is a row of its own. map-fields: every listing refused for good (a
    # 400, no rerun mends it: exit 2, SPEC 6); dry-run plans the event, which fails (exit 1).
    assert [other.exit_code for other in others] == [2, 2, 1]
    texts = [run.stdout, run.stderr] + [other.output for other in others]
    assert SECRET not in every_output(tmp_path, *texts)


def test_event_data_of_a_failed_event_goes_to_its_dead_letter_only(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SPEC 8: names and emails go to dead letters (and dry-run output), nowhere else: not the
    summary, the report or the state, though a failure's reason quotes the bad value."""
    email = "jane.doe@example.com"
    events = write_events(
        tmp_path / "events.ndjson",
        [identify("m-1", "u-1", name="Jane Doe", plan=email)],  # not an option of the enum
    )
    run = rpd_send(sandbox, tmp_path, events, args=("-v",))

    assert run.exit_code == 1
    (letter,) = run.dead_letters
    assert email in letter["error"]["reason"]  # the full reason, where the user asked for it
    assert "  1  cannot convert plan for field Plan (enum)\n" in run.stderr  # without the value
    elsewhere = every_output(tmp_path, run.stdout, run.stderr)
    for asked_for in (run.dead_letter, events):  # the dead letters and the input itself
        elsewhere = elsewhere.replace(asked_for.read_bytes().decode("latin-1"), "")
    assert email not in elsewhere
    assert "Jane Doe" not in elsewhere


def test_a_short_token_is_redacted_from_errors_only_never_from_data(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", token="10")  # "10" is also an id and in every date
    events = [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(12)]
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "e.ndjson", events), token="10")
    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["events"]["sent"] == 12


def test_a_token_echoed_in_another_case_or_in_answer_data_is_redacted(tmp_path: Path) -> None:
    # QA: only an exact echo in the error text was redacted; `check` printed an upper-cased
    # echo, and a user name holding the token.
    from typer.testing import CliRunner

    from rudder_pipedrive_cli.cli.main import app

    config = tmp_path / "echo.toml"
    env = {"PIPEDRIVE_API_TOKEN": SECRET, "RPD_CONFIG": "", "NO_COLOR": "1"}
    texts = []
    # check: besides the refused listings (each a row of its own) a check it made failed (the
    # token's row where users/me is refused too, else the unset user_id_field): exit 2; and
    # map-fields, every listing refused for good (a 400): exit 2 too (SPEC 6).
    for echo in (_Echo400(shout=True), _Echo400(me=True)):
        with echo as url:
            config.write_text(f'[pipedrive]\nbase_url = "{url}"\n')
            for command in (["check"], ["map-fields"], ["check", "-v"]):
                result = CliRunner().invoke(app, [*command, "--config", str(config)], env=env)
                assert result.exit_code == 2
                texts.append(result.output)
    shown = "\n".join(texts)
    assert "Unknown token [token redacted]" in shown
    assert "accepted: [token redacted]" in shown
    assert SECRET.upper() not in shown and SECRET not in shown
