"""A 2xx answer that is not Pipedrive's success envelope, over real loopback HTTP: the client says
why (ApiResponse.malformed), and the plan fails the event, retryably, with no create sent
(issue 13 item 3: taken as "not found", such an answer made a second person)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers_http import run
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
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
    seen: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.seen.append(f"GET {self.path.split('?')[0]}")
        content, kind = self.server.answer
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
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
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
    # --lookups` and `send` said the identity fields did not exist.
    content, kind, why = SHAPES[shape]
    server.answer = (content, kind)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "rpd.toml"
    config.write_text(
        f'[pipedrive]\nbase_url = "http://127.0.0.1:{server.server_address[1]}"\n'
        f'plan = "unlimited"\n\n[identity]\nuser_id_field = "{CONFIG.user_id_field}"\n'
    )
    result = CliRunner().invoke(
        app, ["map-fields", "--config", str(config)], env={"PIPEDRIVE_API_TOKEN": "t-1"}
    )
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
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
