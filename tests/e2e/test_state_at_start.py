"""What a command says of its state file before it reads an event: a state file emptied or
deleted beside the -wal that holds its journal, a --state under a file, a base URL that is not
Pipedrive's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import Result
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    EXAMPLES,
    TOKEN,
    assert_stopped_while_starting,
    rpd_send,
)
from loopback import serve_in_thread
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import account_namespace
from rudder_pipedrive_cli.sandbox import Sandbox

EVENTS = EXAMPLES / "events.ndjson"


def emptied_after_a_killed_run(tmp_path: Path) -> tuple[Path, bytes]:
    """A state file as a killed run leaves it (its journal in the -wal, not yet checkpointed into
    the file), then emptied (`: > FILE`): the file and what its -wal holds."""
    live = tmp_path / "live.sqlite"
    with ReplayState.open(live, account_namespace("1", TOKEN)) as state:
        state.record_outcome("e1", "in.ndjson:1", Outcome(status="sent"))
        state.flush()
        path = tmp_path / "st.sqlite"
        shutil.copyfile(live, path)
        shutil.copyfile(f"{live}-wal", f"{path}-wal")
    path.write_bytes(b"")
    return path, Path(f"{path}-wal").read_bytes()


def refusal(path: Path, wal: bytes) -> list[str]:
    return [
        f"error: state file {path} is damaged (it is empty, but st.sqlite-wal beside it holds "
        f"{len(wal):,} bytes of its journal, which SQLite would discard); nothing in it can be "
        "read",
        f"hint: `rpd state clear --state {path}` starts over (events already sent are then found "
        "by their lookups, not created again), or restore a copy of the file",
    ]


def deleted_after_a_killed_run(tmp_path: Path) -> tuple[Path, bytes]:
    """A state file as a killed run leaves it, then deleted (`rm FILE`): its -wal and -shm stay."""
    path, wal = emptied_after_a_killed_run(tmp_path)
    path.unlink()
    Path(f"{path}-shm").write_bytes(b"\0" * 32768)
    return path, wal


def orphan_refusal(path: Path, wal: bytes) -> list[str]:
    return [
        f"error: state file {path} is not there, but st.sqlite-wal beside it holds "
        f"{len(wal):,} bytes of its journal, which SQLite would discard",
        f"hint: restore the state file beside it, or `rpd state clear --state {path}` removes "
        "st.sqlite-wal to start over (events already sent are then found by their lookups, not "
        "created again)",
    ]


# A state file after a killed run, emptied or deleted beside its -wal: what each is refused with,
# and the file it leaves (None: none).
LOST = {
    "emptied": (emptied_after_a_killed_run, refusal, b""),
    "deleted": (deleted_after_a_killed_run, orphan_refusal, None),
}


def left(path: Path) -> tuple[bytes | None, bytes]:
    """The state file's bytes (None: not there) and its -wal's."""
    return (path.read_bytes() if path.exists() else None, Path(f"{path}-wal").read_bytes())


@pytest.mark.parametrize("how", LOST)
def test_a_state_lost_beside_its_journal_is_refused_by_send(
    sandbox: Sandbox, tmp_path: Path, how: str
) -> None:
    # Before: SQLite deleted the -wal on open (or when it made the file again) and the send
    # started over from an empty state, exit 0: the journal of what had been sent was lost.
    lose, refused, file_left = LOST[how]
    path, wal = lose(tmp_path)

    run = rpd_send(sandbox, tmp_path, EVENTS, state=path)

    assert (run.exit_code, run.stderr.splitlines()) == (2, refused(path, wal))
    assert left(path) == (file_left, wal)
    assert sandbox.stats()["requests"] == {}


@pytest.mark.parametrize("how", LOST)
def test_a_state_lost_beside_its_journal_is_refused_by_dry_run_and_show(
    tmp_path: Path, how: str
) -> None:
    # Before, for a deleted file: dry-run planned without a state, state show said "no state at".
    lose, refused, file_left = LOST[how]
    path, wal = lose(tmp_path)
    for command in (
        ["dry-run", str(EVENTS), "--config", str(EXAMPLE_CONFIG), "--state", str(path)],
        ["state", "show", "--state", str(path)],
    ):
        result = CliRunner().invoke(app, command, env=CLEAN_ENV)
        assert (result.exit_code, result.stderr.splitlines()) == (2, refused(path, wal)), command
        assert result.stdout == ""
        assert left(path) == (file_left, wal)


def test_an_empty_state_file_alone_is_an_empty_state(sandbox: Sandbox, tmp_path: Path) -> None:
    # rpd leaves one itself when killed before its first write (it writes SQLite's header before
    # any -wal exists), and `rpd state clear` under a hard link's other name: nothing was lost.
    path = tmp_path / "st.sqlite"
    path.write_bytes(b"")
    Path(f"{path}-wal").write_bytes(b"")  # an empty -wal holds nothing either

    run = rpd_send(sandbox, tmp_path, EVENTS, state=path)

    assert run.exit_code == 0, run.stderr
    assert run.report is not None and run.report["events"]["sent"] > 0


def test_a_state_path_under_a_file_names_that_file(sandbox: Sandbox, tmp_path: Path) -> None:
    # Before: "cannot open state file …: File exists" (or "Not a directory" a folder deeper),
    # hinted "check the directory's permissions": mkdir's words for the events file in the way.
    events = tmp_path / "events.ndjson"
    shutil.copyfile(EVENTS, events)
    for state in (events / "st.sqlite", events / "runs" / "st.sqlite"):
        run = rpd_send(sandbox, tmp_path, events, state=state)

        assert (run.exit_code, run.stderr.splitlines()) == (
            2,
            [
                f"error: cannot open state file {state}: {events} is a file, not a folder",
                "hint: give --state a path under folders, not under a file (rpd makes the "
                "folders that are missing)",
            ],
        )
        assert events.read_bytes() == EVENTS.read_bytes()
    assert sandbox.stats()["requests"] == {}


def wrong_base_url(url: str) -> list[str]:
    return [
        f"base_url {url} is not Pipedrive's API: /v1/users/me answered HTTP 404 there",
        "hint: give base_url (--base-url, $RPD_BASE_URL) the origin only, with no path: "
        "https://COMPANY.pipedrive.com or https://api.pipedrive.com; rpd adds /v1 and /api/v2 "
        "itself",
    ]


def test_a_base_url_with_a_path_stops_send_before_any_event(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Before: a warning that /v1/users/me answered HTTP 404, then 21 events failed with "lookup
    # person refused: HTTP 404" (exit 1), each on /api/v2/api/v2/itemSearch/field. A path rpd
    # adds itself (/api/v2) is now refused as the URL is read (test_a_base_url_ending_in_an_api_
    # path_is_refused_before_any_request): another is known wrong only by its 404.
    url = f"{sandbox.url}/crm"

    run = rpd_send(None, tmp_path, EVENTS, args=("--base-url", url))

    message, hint = wrong_base_url(url)
    assert (run.exit_code, run.stderr.splitlines()) == (2, [f"error: {message}", hint])
    assert not run.dead_letter.exists()
    assert_stopped_while_starting(run.report, 2, message)
    assert sum(sandbox.stats()["requests"].values()) == 1  # /crm/v1/users/me alone


def test_check_says_the_same_of_a_base_url_with_a_path(sandbox: Sandbox) -> None:
    # Before: the 404 was the token's failed check, with four listings failing after it.
    url = f"{sandbox.url}/crm"
    command = ["check", "--config", str(EXAMPLE_CONFIG), "--base-url", url]

    result = CliRunner().invoke(app, command, env=CLEAN_ENV | {"PIPEDRIVE_API_TOKEN": TOKEN})

    message, hint = wrong_base_url(url)
    assert (result.exit_code, result.stderr) == (2, "")
    assert result.stdout.splitlines() == [
        f"ok    config: {EXAMPLE_CONFIG} is valid",
        f"FAIL  pipedrive: {message}",
        f"      {hint}",
        "1 of 2 checks failed",
    ]


NO_ROUTE = b'{"success": false, "error": "no route"}'


@contextmanager
def gateway_without_users_me(sandbox: Sandbox, said: bytes = NO_ROUTE) -> Iterator[str]:
    """A loopback gateway, at an origin, that forwards every request to the sandbox but answers
    `/v1/users/me` with 404 and the body `said` (a proxy in front of Pipedrive that routes only
    what it knows)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            if self.path.split("?")[0] == "/v1/users/me":
                self.send_response(404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(said)))
                self.end_headers()
                self.wfile.write(said)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            answer = httpx.request(
                self.command, sandbox.url + self.path, content=body, headers=headers
            )
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(key, value)
            self.send_header("content-length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_gateway_at_an_origin_without_users_me_still_sends(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # A 404 for /v1/users/me at an origin is not the path slip: as before the 404 stopped sends
    # (e3ccf2e), the state stays keyed on the URL and every event is sent. With that change this
    # was exit 2, hinting to drop a path the URL does not have.
    with gateway_without_users_me(sandbox) as url:
        run = rpd_send(None, tmp_path, EVENTS, args=("--base-url", url))

    assert run.exit_code == 0, run.stderr
    assert run.stderr.splitlines()[0] == (
        f"warning: /v1/users/me answered HTTP 404 no route; the state is kept for {url} until it "
        "can say"
    )
    assert run.report is not None
    assert run.report["events"]["failed"] == 0 and run.report["events"]["sent"] > 0
    assert not run.dead_letter.exists()
    assert sandbox.state()["persons"]


def test_check_through_a_gateway_at_an_origin_fails_only_the_token_row(sandbox: Sandbox) -> None:
    # As send: not "not Pipedrive's API" (the listings answer), the token's check fails alone.
    with gateway_without_users_me(sandbox) as url:
        command = ["check", "--config", str(EXAMPLE_CONFIG), "--base-url", url]
        result = CliRunner().invoke(app, command, env=CLEAN_ENV | {"PIPEDRIVE_API_TOKEN": TOKEN})

    assert (result.exit_code, result.stderr) == (2, "")
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        f"ok    config: {EXAMPLE_CONFIG} is valid",
        "FAIL  token: /v1/users/me answered HTTP 404 no route",
        "      hint: check base_url / company_domain",
    ]
    assert [line for line in lines if line.startswith("FAIL")] == [lines[1]]  # listings answer
    assert lines[-1] == "1 of 15 checks failed"


def test_check_says_an_empty_404_s_status_once(sandbox: Sandbox) -> None:
    # Before: "answered HTTP 404 HTTP 404", the client's stand-in for Pipedrive's missing words
    # after the status the message already gave.
    with gateway_without_users_me(sandbox, said=b"") as url:
        command = ["check", "--config", str(EXAMPLE_CONFIG), "--base-url", url]
        result = CliRunner().invoke(app, command, env=CLEAN_ENV | {"PIPEDRIVE_API_TOKEN": TOKEN})

    assert (result.exit_code, result.stderr) == (2, "")
    lines = result.stdout.splitlines()
    assert lines[1:3] == [
        "FAIL  token: /v1/users/me answered HTTP 404",
        "      hint: check base_url / company_domain",
    ]
    assert lines[-1] == "1 of 15 checks failed"


def dry_run_lookups(url: str, tmp_path: Path, *args: str) -> Result:
    """`rpd dry-run EVENTS --lookups --base-url URL` with a state file (none there yet)."""
    command = ["dry-run", str(EVENTS), "--config", str(EXAMPLE_CONFIG), "--lookups"]
    command += ["--base-url", url, "--state", str(tmp_path / "state.sqlite"), *args]
    return CliRunner().invoke(app, command, env=CLEAN_ENV | {"PIPEDRIVE_API_TOKEN": TOKEN})


def test_dry_run_lookups_stop_as_send_at_a_base_url_with_a_path(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Before: each event was planned "failed (lookup person refused: HTTP 404 ...)", exit 1,
    # where the send it previews stops before any event with exit 2.
    url = f"{sandbox.url}/crm"

    result = dry_run_lookups(url, tmp_path)

    message, hint = wrong_base_url(url)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"error: {message}", hint]
    assert sandbox.stats()["requests"] == {"GET (unknown)": 1}  # /crm/v1/users/me alone
    assert not (tmp_path / "state.sqlite").exists()


def test_dry_run_lookups_go_on_through_a_gateway_at_an_origin(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # As send: a 404 for users/me at an origin stops nothing; it is counted once in the estimate.
    # Plan unlimited: the example's growth pacing of its searches was a second of waiting.
    with gateway_without_users_me(sandbox) as url:
        result = dry_run_lookups(url, tmp_path, "-f", "json", "--plan", "unlimited")

    assert result.exit_code == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["events"]["failed"] == 0
    assert report["requests"]["GET /v1/users/me"] == 1


def test_state_clear_removes_what_a_deleted_state_left(sandbox: Sandbox, tmp_path: Path) -> None:
    # Before: "no state at" the path, and the -wal stayed: every send went on refusing.
    path, _ = deleted_after_a_killed_run(tmp_path)
    Path(f"{path}.lock").write_text("4242")  # the killed run's pid, for others' messages
    command = ["state", "clear", "--state", str(path)]

    refused = CliRunner().invoke(app, command, env=CLEAN_ENV)
    assert (refused.exit_code, refused.stderr.splitlines()[0]) == (
        2,
        f"error: refusing to clear {path} without confirmation",
    )
    result = CliRunner().invoke(app, [*command, "--yes"], env=CLEAN_ENV)

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"no state at {path}: removed st.sqlite-wal and st.sqlite-shm left beside it"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.sqlite"]
    assert rpd_send(sandbox, tmp_path, EVENTS, state=path).exit_code == 0


def test_an_empty_wal_left_by_a_deleted_state_is_no_state(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "st.sqlite"
    Path(f"{path}-wal").write_bytes(b"")

    run = rpd_send(sandbox, tmp_path, EVENTS, state=path)

    assert run.exit_code == 0, run.stderr
    assert run.report is not None and run.report["events"]["sent"] > 0


def test_show_and_dry_run_of_a_state_path_under_a_file_name_that_file(tmp_path: Path) -> None:
    # Before: state show said "no state at" the path, dry-run planned without a state, exit 0.
    events = tmp_path / "events.ndjson"
    shutil.copyfile(EVENTS, events)
    for state in (events / "st.sqlite", events / "runs" / "st.sqlite"):
        for command in (
            ["dry-run", str(events), "--config", str(EXAMPLE_CONFIG), "--state", str(state)],
            ["state", "show", "--state", str(state)],
        ):
            result = CliRunner().invoke(app, command, env=CLEAN_ENV)

            assert (result.exit_code, result.stderr.splitlines(), result.stdout) == (
                2,
                [
                    f"error: cannot open state file {state}: {events} is a file, not a folder",
                    "hint: give --state a path under folders, not under a file (rpd makes the "
                    "folders that are missing)",
                ],
                "",
            ), command
    assert events.read_bytes() == EVENTS.read_bytes()
