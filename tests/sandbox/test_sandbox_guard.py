"""The HTTP shell guards itself (issue 13 item 14): the token is checked before a body is read,
bodies are capped (413), a silent client is timed out, a client's reset prints no traceback, and
listening beyond loopback with the default token is warned about."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import orjson
import pytest
from sandbox_support import error, start_cli

from rudder_pipedrive_cli.cli.sandbox_cmd import EXPOSED_WARNING
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]


def raw(sandbox: Sandbox) -> socket.socket:
    url = urlsplit(sandbox.url)
    assert url.hostname is not None and url.port is not None
    return socket.create_connection((url.hostname, url.port), timeout=5)


def receive_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def post_head(length: int, token: str | None = "sandbox-token") -> bytes:
    auth = f"x-api-token: {token}\r\n" if token else ""
    return (
        f"POST /api/v2/persons HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_wrong_token_is_refused_before_the_body_is_read(sandbox: Sandbox) -> None:
    # 1 GB announced, nothing sent: the answer comes at once (reading first would wait forever).
    for token in (None, "wrong"):
        with raw(sandbox) as sock:
            sock.sendall(post_head(1_000_000_000, token))
            status, headers, body = split(receive_all(sock))
        assert (status, headers["connection"]) == ("HTTP/1.1 401 Unauthorized", "close")
        assert orjson.loads(body) == {**error("unauthorized access"), "errorCode": 401}
    assert sandbox.stats()["statuses"] == {"401": 2}


def test_a_body_over_the_cap_is_a_413_without_reading_it(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(max_body_bytes=100)
    with raw(sandbox) as sock:
        sock.sendall(post_head(101))
        status, headers, body = split(receive_all(sock))
    assert (status, headers["connection"]) == ("HTTP/1.1 413 Content Too Large", "close")
    assert orjson.loads(body) == error("Request body too large: at most 100 bytes")
    at_cap = orjson.dumps({"name": "A" * 89})
    assert len(at_cap) == 100
    with raw(sandbox) as sock:
        sock.sendall(post_head(100) + at_cap)
        assert split(sock.recv(65536))[0] == "HTTP/1.1 200 OK"
    assert [p["name"] for p in sandbox.state()["persons"]] == ["A" * 89]
    assert sandbox.stats()["requests"] == {"POST /api/v2/persons": 2}
    assert sandbox.stats()["statuses"] == {"200": 1, "413": 1}


def test_the_default_cap_is_one_mebibyte(sandbox: Sandbox) -> None:
    with raw(sandbox) as sock:
        sock.sendall(post_head(1024 * 1024 + 1))
        status, _, body = split(receive_all(sock))
    assert status == "HTTP/1.1 413 Content Too Large"
    assert orjson.loads(body)["error"] == "Request body too large: at most 1048576 bytes"


def test_a_chunked_body_is_refused_with_411(sandbox: Sandbox) -> None:
    with raw(sandbox) as sock:
        sock.sendall(
            b"POST /api/v2/persons HTTP/1.1\r\nHost: x\r\nx-api-token: sandbox-token\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        status, headers, body = split(receive_all(sock))
    assert (status, headers["connection"]) == ("HTTP/1.1 411 Length Required", "close")
    assert orjson.loads(body) == error("Length Required: send the body with a Content-Length")
    assert sandbox.state()["persons"] == []


def test_a_client_that_stops_sending_is_disconnected(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(read_timeout_s=0.2)
    with raw(sandbox) as sock:
        sock.sendall(post_head(10) + b'{"n')
        assert receive_all(sock) == b""  # closed by the sandbox, well before our 5 s timeout
    assert sandbox.state()["persons"] == []


def test_a_client_reset_prints_no_traceback(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = raw(sandbox)
    sock.sendall(post_head(100) + b'{"name": ')
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a TCP reset mid-body
    deadline = time.monotonic() + 5
    while sandbox.client_resets == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sandbox.client_resets == 1
    assert capsys.readouterr().err == ""
    assert sandbox.state()["persons"] == []


def _run(*args: str) -> tuple[str, str]:
    process, first = start_cli(*args)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    return first, err


def test_listening_beyond_loopback_with_the_default_token_is_warned_about() -> None:
    first, err = _run("--host", "0.0.0.0")
    assert first.startswith("listening on http://0.0.0.0:")
    assert err == EXPOSED_WARNING + "\nsandbox stopped\n"
    assert EXPOSED_WARNING == (
        "warning: the sandbox listens beyond this machine with the default token: anyone who can "
        "reach it can read and change its data; choose a token with --token"
    )


def test_the_warning_is_wrapped_on_an_80_column_terminal() -> None:
    # It was one 154-column line on a terminal, where rpd's other warnings wrap.
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "sandbox", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--host", "0.0.0.0"],
        stdout=subprocess.PIPE,
        stderr=child,
        text=True,
    )
    os.close(child)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("listening on http://0.0.0.0:")
        shown = b""
        while b"--token" not in shown:
            ready, _, _ = select.select([main], [], [], 10)
            assert ready, shown
            shown += os.read(main, 4096)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
        os.close(main)
    assert shown.decode().replace("\r\n", "\n").splitlines() == [
        "warning: the sandbox listens beyond this machine with the default token: anyone",
        "  who can reach it can read and change its data; choose a token with --token",
    ]


@pytest.mark.parametrize("args", [("--host", "0.0.0.0", "--token", "t-9"), ("--host", "localhost")])
def test_no_warning_with_a_token_of_ones_own_or_on_loopback(args: tuple[str, ...]) -> None:
    first, err = _run(*args)
    assert first.startswith("listening on http://")
    assert err == "sandbox stopped\n"


def test_a_refused_request_without_a_body_keeps_the_connection(sandbox: Sandbox) -> None:
    with raw(sandbox) as sock:
        sock.sendall(b"GET /v1/users/me HTTP/1.1\r\nHost: x\r\nx-api-token: wrong\r\n\r\n")
        status, headers, _ = split(sock.recv(65536))
        assert (status, headers["connection"]) == ("HTTP/1.1 401 Unauthorized", "keep-alive")
        sock.sendall(b"GET /v1/users/me HTTP/1.1\r\nHost: x\r\nx-api-token: sandbox-token\r\n\r\n")
        assert split(sock.recv(65536))[0] == "HTTP/1.1 200 OK"
