"""A 2xx answer that is not Pipedrive's success envelope, over real loopback HTTP: the client says
why (ApiResponse.malformed), and the plan fails the event, retryably, with no create sent
(issue 13 item 3: taken as "not found", such an answer made a second person)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fakes import FakeClock
from helpers_http import Script, client_for, ok, run, send_with, write
from loopback import serve_in_thread
from typer.testing import CliRunner, Result

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import Event, parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.http.client import PipedriveClient, envelope
from rudder_pipedrive_cli.http.runner import run_plans

CONFIG = PlanConfig(user_id_field="fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48", create_persons=True)
JSON = "application/json"

# body, content type, what the client says of it
SHAPES: dict[str, tuple[bytes, str, str]] = {
    "success false": (b'{"success": false}', JSON, '"success" is not true'),
    "html page": (b"<html><body>Service busy</body></html>", "text/html", "not JSON"),
    "empty body": (b"", JSON, "an empty body"),
    "success without data": (b'{"success": true}', JSON, 'no "data"'),
    "truncated json": (b'{"success": true, "data": [', JSON, "not valid JSON"),
    "a bare list": (b"[]", JSON, "a list, not an object"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_client_says_why_a_body_is_not_an_envelope(shape: str) -> None:
    content, kind, why = SHAPES[shape]
    response = envelope(200, content, "json" in kind, "2026-11-28T10:00:05Z")
    assert response.malformed == why


def test_a_success_envelope_is_not_malformed() -> None:
    body = b'{"success": true, "data": null, "additional_data": null}'
    assert envelope(200, body, True, "").malformed == ""


class Server(ThreadingHTTPServer):
    answer: tuple[bytes, str] = (b"", JSON)
    me: bytes = b""  # GET /v1/users/me's answer, when not `answer`
    seen: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.seen.append(f"GET {self.path.split('?')[0]}")
        content, kind = self.server.answer
        if self.server.me and self.path == "/v1/users/me":
            content, kind = self.server.me, JSON
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def do_POST(self) -> None:
        self.server.seen.append(f"POST {self.path}")
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.seen = []
    serve_in_thread(httpd)
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def send_one(server: Server, event: Event) -> Outcome:
    outcomes: list[Outcome] = []
    known = IdentityStore()

    async def quick(seconds: float) -> None:
        return None

    async def scenario() -> None:
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        async with PipedriveClient(
            token="sandbox-token", base_url=base_url, plan="unlimited", tally=Tally(), sleep=quick
        ) as client:
            await run_plans(
                [event],
                start=lambda e: plan_event(e, CONFIG, known),
                keys=lambda e: e.identities,
                send=client.send,
                done=lambda _e, outcome: outcomes.append(outcome),
            )

    run(scenario())
    (outcome,) = outcomes
    return outcome


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_malformed_search_answer_over_http_creates_no_person(server: Server, shape: str) -> None:
    content, kind, why = SHAPES[shape]
    server.answer = (content, kind)
    event = parse_event(
        {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "Ann"}},
        "test:1",
    )
    outcome = send_one(server, event)
    assert server.seen == ["GET /api/v2/itemSearch/field"]
    assert (outcome.status, outcome.reason, outcome.stage, outcome.retryable) == (
        "failed",
        f"lookup person: Pipedrive's answer is malformed (HTTP 200: {why}); not taken as no "
        "records: retry later",
        "lookup person",
        True,
    )


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_malformed_field_listing_is_no_account_without_fields(
    server: Server, shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QA: an HTML page, an empty or cut body answering the field listings (200) was read as an
    # account without fields: `map-fields` listed nothing and exited 0, and `check`, `dry-run
    # --lookups` and `send` said the identity fields did not exist. Exit 4, as its words say
    # "retry later" (it was 1: SPEC 6 has no such code for a command without events).
    content, kind, why = SHAPES[shape]
    server.answer = (content, kind)
    monkeypatch.chdir(tmp_path)
    result = invoke_at(server, tmp_path, "map-fields")
    assert (result.exit_code, result.stdout, result.stderr) == (
        4,
        "",
        f"error: list fields: Pipedrive's answer is malformed (HTTP 200: {why}); not taken as "
        "no records: retry later\nhint: try again later\n",
    )
    # Each listing stands alone, as in a send: all four were tried, and all malformed.
    assert server.seen == [
        "GET /api/v2/personFields",
        "GET /api/v2/organizationFields",
        "GET /api/v2/dealFields",
        "GET /v1/leadLabels",
    ]


def invoke_at(server: Server, folder: Path, *command: str) -> Result:
    """`rpd COMMAND` with a config in `folder` pointing at `server`."""
    config = folder / "rpd.toml"
    config.write_text(
        f'[pipedrive]\nbase_url = "http://127.0.0.1:{server.server_address[1]}"\n'
        f'plan = "unlimited"\n\n[identity]\nuser_id_field = "{CONFIG.user_id_field}"\n'
    )
    return CliRunner().invoke(
        app, [*command, "--config", str(config)], env={"PIPEDRIVE_API_TOKEN": "t-1"}
    )


ME = b'{"success": true, "data": {"id": 1, "name": "Ann", "company_id": 7}}'
HTML = SHAPES["html page"][:2]
MALFORMED = (
    "list {}: Pipedrive's answer is malformed (HTTP 200: not JSON); not taken as no records: "
    "retry later"
)


def test_check_and_init_stop_on_listings_answered_with_an_html_page_exit_4(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """users/me answers as Pipedrive does, every listing with an HTML page (a proxy's): check
    makes each listing a failed check of its own and init writes nothing; both exit 4, as their
    words say "retry later" (it was 1, a code for failed events: SPEC 6)."""
    server.answer, server.me = HTML, ME
    monkeypatch.chdir(tmp_path)
    fields, labels = MALFORMED.format("fields"), MALFORMED.format("lead labels")
    checked = invoke_at(server, tmp_path, "check")
    assert (checked.exit_code, checked.stderr) == (4, "")
    assert checked.stdout.splitlines() == [
        f"ok    config: {tmp_path / 'rpd.toml'} is valid",
        'ok    token: accepted: Ann, company "?"',
        f"FAIL  pipedrive: {fields}; not checked: identity.user_id_field",
        "      hint: try again later",
        f"FAIL  pipedrive: {fields}",
        "      hint: try again later",
        f"FAIL  pipedrive: {fields}",
        "      hint: try again later",
        f"FAIL  pipedrive: {labels}",
        "      hint: try again later",
        "warn  identity.group_id_field: not set: only events with external ids can be replayed",
        "      hint: set it to the key of a searchable organization custom field (`rpd "
        "map-fields --entity organizations`)",
        "info  plan unlimited: no pacing (for the sandbox; a real account has limits)",
        "4 of 7 checks failed (1 with a warning)",
    ]
    made = invoke_at(server, tmp_path, "init", "-o", str(tmp_path / "new.toml"))
    assert (made.exit_code, made.stdout, made.stderr) == (
        4,
        "",
        f"error: {fields}\nhint: try again later\n",
    )
    assert not (tmp_path / "new.toml").exists()


def test_check_and_map_fields_of_a_server_answering_html_everywhere_both_exit_4(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """users/me answered with an HTML page too (base_url names a web site, not the API, or a
    portal answers in its place): the token's row fails, naming base_url to check. No check of
    the config failed, the request did, with the answer map-fields stopped on with exit 4
    (exits.request_failed: not Pipedrive's answer, retryable): check exits 4 too, not 2 (the
    two disagreed on one server). It said 'answered HTTP 200', not what was wrong with that."""
    server.answer = HTML
    monkeypatch.chdir(tmp_path)
    checked = invoke_at(server, tmp_path, "check")
    assert (checked.exit_code, checked.stderr) == (4, "")
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert checked.stdout.splitlines()[1:3] == [
        "FAIL  token: /v1/users/me answered HTTP 200, not Pipedrive's answer (not JSON)",
        f"      hint: is {url} right (base_url, company_domain) and reachable? then try again",
    ]
    listed = invoke_at(server, tmp_path, "map-fields")
    assert (listed.exit_code, listed.stderr.splitlines()) == (
        4,
        [f"error: {MALFORMED.format('fields')}", "hint: try again later"],
    )


def test_a_dry_run_whose_lookups_answer_html_plans_the_event_failing_exit_1(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its listings are warned of, as a send's are, and a lookup's malformed answer fails the
    event that needs it (retryable), as in the send: a dry-run's exit 1, some events would fail
    (SPEC 6), not a stop."""
    server.answer, server.me = HTML, ME
    monkeypatch.chdir(tmp_path)
    events = tmp_path / "in.ndjson"
    events.write_text(
        '{"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "Ada"}}\n'
    )
    planned = invoke_at(server, tmp_path, "dry-run", "--lookups", str(events))
    assert planned.exit_code == 1, planned.output
    lookup = MALFORMED.replace("list {}", "lookup person")
    assert planned.stdout.splitlines()[0] == f"{events}:1  identify  failed  ({lookup})"
    assert planned.stdout.splitlines()[-2:] == ["why events would fail:", f"  1  {lookup}"]
    assert planned.stderr.splitlines() == [
        f"warning: {MALFORMED.format('fields')}; values will be sent without type conversion"
    ]
    assert server.seen[-1] == "GET /api/v2/itemSearch/field"


# --- writes: a 2xx that is not the envelope says nothing of whether the write was applied -------


def shaped(shape: str) -> httpx.Response:
    content, kind, _why = SHAPES[shape]
    return httpx.Response(200, content=content, headers={"content-type": kind})


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_malformed_answer_to_a_create_or_merge_is_an_unknown_outcome(
    shape: str, method: str
) -> None:
    # QA: taken as a success, a lead or a merge a proxy answered (200, its own page) was reported
    # sent and journalled as done though Pipedrive never saw it, and the rerun skipped it.
    script, time = Script([shaped(shape)]), FakeClock(1000.0)
    response = run(send_with(client_for(script, time), write(method)))
    assert (response.status, response.error, response.sent_at) == (
        0,
        f"HTTP 200 with a malformed answer ({SHAPES[shape][2]})",
        "2026-11-28T13:00:05Z",
    )
    assert len(script.seen) == 1 and time.sleeps == []  # never repeated blindly: reconciled


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_malformed_answer_to_an_update_is_sent_again(shape: str) -> None:
    script, time = Script([shaped(shape), ok({"id": 3, "name": "Ada"})]), FakeClock(1000.0)
    response = run(send_with(client_for(script, time), write("PATCH")))
    assert (response.status, response.data, len(script.seen)) == (200, {"id": 3, "name": "Ada"}, 2)


def test_an_update_answered_malformed_every_time_fails_retryably() -> None:
    script, time = Script([shaped("html page")] * 2), FakeClock(1000.0)
    with pytest.raises(PlanFailure) as caught:
        run(send_with(client_for(script, time, max_retries=1), write("PATCH")))
    failure = caught.value
    assert (failure.reason, failure.status, failure.retryable) == (
        "PATCH /api/v2/persons/{id}: HTTP 200 with a malformed answer (not JSON) after 2 attempts",
        200,
        True,
    )
