"""An answer's body is read up to MAX_ANSWER_BYTES and for ANSWER_DEADLINE_S at most, over real
loopback HTTP: past either, it is no Pipedrive answer (a proxy's or a wrong base_url's), and is
not read on. An endless body was read for ever, a 400 MB one took a send to 4.2 GB, and a body
that trickled in (a byte within each read's timeout) held its event, and the run, for ever."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from helpers_http import run, write
from loopback import serve_in_thread

from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiResponse, Outcome
from rudder_pipedrive_cli.http.client import ANSWER_DEADLINE_S, PipedriveClient
from rudder_pipedrive_cli.http.runner import run_plans

CONFIG = PlanConfig(user_id_field="fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48", create_persons=True)
MOST = 4096  # the client's limit in these tests


def padded(data: object, size: int) -> bytes:
    """Pipedrive's success envelope holding `data`, padded to exactly `size` bytes."""
    bare = orjson.dumps({"success": True, "data": data, "pad": ""})
    return bare[:-2] + b"x" * (size - len(bare)) + b'"}'


class Server(ThreadingHTTPServer):
    size: int  # the body of a POST's answer
    stalled: threading.Event | None = None  # a POST's answer stops half way until it is set
    seen: list[str]


class Handler(BaseHTTPRequestHandler):
    """GET: a success envelope whose body never ends (chunked); POST: a person of `size` bytes."""

    server: Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append(f"GET {self.path.split('?')[0]}")
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        chunk = b'{"success": true, "data": {"items": []}, "pad": "' + b"x" * 1000
        try:
            while True:  # until the client stops reading and closes the connection
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                chunk = b"x" * 1000
        except OSError:
            self.close_connection = True

    def do_POST(self) -> None:
        self.server.seen.append(f"POST {self.path}")
        self.rfile.read(int(self.headers["content-length"]))
        body = padded({"id": 7, "name": "Ann"}, self.server.size)
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.server.stalled is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.server.stalled.wait()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.seen, httpd.size = [], 0
    serve_in_thread(httpd)
    try:
        yield httpd
    finally:
        if httpd.stalled is not None:
            httpd.stalled.set()
        httpd.shutdown()
        httpd.server_close()


def client_of(
    server: Server, timeout: float = 30.0, answer_deadline: float = ANSWER_DEADLINE_S
) -> PipedriveClient:
    async def quick(seconds: float) -> None:
        return None

    return PipedriveClient(
        token="sandbox-token",
        base_url=f"http://127.0.0.1:{server.server_address[1]}",
        plan="unlimited",
        max_retries=0,
        sleep=quick,
        timeout=timeout,
        most_answer_bytes=MOST,
        answer_deadline=answer_deadline,
    )


def test_a_search_answer_that_never_ends_fails_its_event_and_creates_no_person(
    server: Server,
) -> None:
    event = parse_event(
        {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "Ann"}},
        "test:1",
    )
    outcomes: list[Outcome] = []

    async def scenario() -> None:
        async with client_of(server) as client:
            await run_plans(
                [event],
                start=lambda e: plan_event(e, CONFIG, IdentityStore()),
                keys=lambda e: e.identities,
                send=client.send,
                done=lambda _e, outcome: outcomes.append(outcome),
            )

    run(scenario())
    (outcome,) = outcomes
    assert server.seen == ["GET /api/v2/itemSearch/field"]
    assert (outcome.status, outcome.reason, outcome.retryable) == (
        "failed",
        "lookup person: Pipedrive's answer is malformed (HTTP 200: larger than 4,096 bytes); "
        "not taken as no records: retry later",
        True,
    )


async def create(
    server: Server, timeout: float = 30.0, answer_deadline: float = ANSWER_DEADLINE_S
) -> ApiResponse:
    async with client_of(server, timeout, answer_deadline) as client:
        return await client.send(write("POST"))


def test_a_create_answered_past_the_limit_is_an_unknown_outcome(server: Server) -> None:
    # Created or not, the answer does not say: reconciled, never repeated blindly.
    server.size = MOST + 1
    response = run(create(server))
    assert (response.status, response.error, response.data) == (
        0,
        "HTTP 201 with a malformed answer (larger than 4,096 bytes)",
        None,
    )
    assert server.seen == ["POST /api/v2/persons"]


def test_an_answer_of_the_limit_is_read_whole(server: Server) -> None:
    server.size = MOST
    response = run(create(server))
    assert (response.status, response.data, response.malformed) == (
        201,
        {"id": 7, "name": "Ann"},
        "",
    )


def test_a_create_whose_answer_stalls_half_way_is_an_unknown_outcome(server: Server) -> None:
    # Each read's timeout (an hour here) never passes while bytes keep coming, or, as here, while
    # the connection stays open: only the deadline on the whole answer ends the wait.
    server.size, server.stalled = MOST, threading.Event()
    response = run(create(server, timeout=3600.0, answer_deadline=0.5))
    assert (response.status, response.error, response.data) == (
        0,
        "ReadTimeout: no whole answer in 0.5 s",
        None,
    )
