"""The HTTP shell: keep-alive, one response per request with an exact Content-Length, clean stop."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions

HEADERS = {"x-api-token": "sandbox-token", "content-type": "application/json"}


def connect(sandbox: Sandbox) -> http.client.HTTPConnection:
    url = urlsplit(sandbox.url)
    assert url.hostname is not None and url.port is not None
    return http.client.HTTPConnection(url.hostname, url.port, timeout=5)


def test_keep_alive_serves_many_requests_on_one_connection(sandbox: Sandbox) -> None:
    conn = connect(sandbox)
    sockets = []
    for i in range(3):
        conn.request(
            "POST", "/api/v2/persons", body=orjson.dumps({"name": f"P{i}"}), headers=HEADERS
        )
        response = conn.getresponse()
        body = response.read()
        sockets.append(conn.sock)
        assert (response.status, response.version) == (200, 11)
        assert response.headers["connection"] == "keep-alive"
        assert int(response.headers["content-length"]) == len(body)
        assert orjson.loads(body)["data"]["id"] == i + 1
    assert sockets[0] is sockets[1] is sockets[2]
    conn.close()


def test_connection_close_is_honoured(sandbox: Sandbox) -> None:
    conn = connect(sandbox)
    conn.request("GET", "/v1/users/me", headers={**HEADERS, "connection": "close"})
    response = conn.getresponse()
    response.read()
    assert response.headers["connection"] == "close"
    conn.close()


def test_stop_closes_idle_keep_alive_connections_and_frees_the_port(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    port = urlsplit(sandbox.url).port
    conn = connect(sandbox)
    conn.request("GET", "/v1/users/me", headers=HEADERS)
    conn.getresponse().read()
    sandbox.stop()
    assert conn.sock is not None
    conn.sock.settimeout(5)
    assert conn.sock.recv(1) == b""  # the server closed its side
    conn.close()
    assert port is not None
    with Sandbox(SandboxOptions(port=port)) as again:
        assert again.url == f"http://127.0.0.1:{port}"


def test_a_reset_is_a_tcp_reset_without_any_response(sandbox: Sandbox) -> None:
    sandbox.set_faults(fail_reset=1.0)
    url = urlsplit(sandbox.url)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        body = orjson.dumps({"name": "A"})
        head = (
            f"POST /api/v2/persons HTTP/1.1\r\nHost: x\r\nx-api-token: sandbox-token\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert received == b""
    assert [p["name"] for p in sandbox.state()["persons"]] == ["A"]


def test_the_url_is_known_before_and_while_serving() -> None:
    sandbox = Sandbox(SandboxOptions())
    url = sandbox.url
    with sandbox.start():
        assert sandbox.url == url
        assert url.startswith("http://127.0.0.1:")


def test_an_emulator_bug_is_a_500_and_serving_goes_on(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    conn = connect(sandbox)
    with monkeypatch.context() as patch:
        patch.setattr(sandbox.app, "handle", broken)
        conn.request("GET", "/v1/users/me", headers=HEADERS)
        response = conn.getresponse()
        assert (response.status, orjson.loads(response.read())["error"]) == (
            500,
            "Internal server error",
        )
    conn.request("GET", "/v1/users/me", headers=HEADERS)
    assert conn.getresponse().status == 200
    conn.close()


def test_a_bad_content_length_is_a_400_and_closes(sandbox: Sandbox) -> None:
    url = urlsplit(sandbox.url)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(b"POST /api/v2/persons HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in received


def test_one_sandbox_can_serve_a_whole_module(module_sandbox: Sandbox) -> None:
    module_sandbox.reset()
    conn = connect(module_sandbox)
    conn.request("GET", "/v1/users/me", headers=HEADERS)
    assert conn.getresponse().status == 200
    conn.close()
    assert module_sandbox.stats()["requests"] == {"GET /v1/users/me": 1}


def test_concurrent_keep_alive_clients_get_distinct_ids(sandbox: Sandbox) -> None:
    def create(n: int) -> list[int]:
        with httpx.Client(base_url=sandbox.url, headers=HEADERS) as client:
            return [
                client.post("/api/v2/persons", json={"name": f"P{n}-{i}"}).json()["data"]["id"]
                for i in range(25)
            ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [i for batch in pool.map(create, range(8)) for i in batch]
    assert sorted(ids) == list(range(1, 201))
    assert len(sandbox.state()["persons"]) == 200
    assert sandbox.stats()["requests"] == {"POST /api/v2/persons": 200}
