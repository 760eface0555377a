"""The HTTP shell: a standard-library threading HTTP/1.1 server (keep-alive) around `SandboxApp`.

Each response goes out in one write (status line, headers and body together) with TCP_NODELAY,
so keep-alive clients never wait on Nagle's algorithm. A dropped answer (`fail_reset`) closes the
socket with SO_LINGER 0: the client sees a reset, never a response.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rudder_pipedrive_cli.sandbox.app import SandboxApp
from rudder_pipedrive_cli.sandbox.options import SandboxOptions
from rudder_pipedrive_cli.sandbox.replies import Answer, failure, server_error

# RFC 9110's reason phrases (Python 3.11 still calls 413 "Request Entity Too Large").
_REASONS = {status: status.phrase for status in HTTPStatus} | {413: "Content Too Large"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.app.options.read_timeout_s)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def _serve(self) -> None:
        length = self.headers.get("content-length") or "0"
        if not length.isdigit():
            self._refuse(failure(400, "Invalid Content-Length"))
            return
        if "transfer-encoding" in self.headers:
            self._refuse(failure(411, "Length Required: send the body with a Content-Length"))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        app = self.server.app
        refused = app.screen(self.command, self.path, headers, int(length))
        if refused is not None:
            # A body left unread: the connection cannot carry another request (none: it stays open).
            self.close_connection |= length != "0"
            self.wfile.write(_encode(refused, close=self.close_connection, now=app.clock()))
            return
        body = self.rfile.read(int(length)) if length != "0" else b""
        try:
            answer = app.handle(self.command, self.path, headers, body)
        except Exception:
            # A bug in the emulator answers like a broken Pipedrive would, and keeps serving.
            self.server.handle_error(self.request, self.client_address)
            answer = server_error(500)
        if answer.delay_s:
            time.sleep(answer.delay_s)
        if answer.drop:
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        self.wfile.write(_encode(answer, close=self.close_connection, now=app.clock()))

    def _refuse(self, answer: Answer) -> None:
        self.close_connection = True
        self.wfile.write(_encode(answer, close=True, now=self.server.app.clock()))

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the sandbox's record is `/_sandbox/stats`, not a log on stderr."""


@functools.lru_cache(maxsize=4)
def http_date(second: int) -> str:
    """An HTTP Date for that second (a few answers a second share one: made once)."""
    return formatdate(second, usegmt=True)


def _encode(answer: Answer, *, close: bool, now: float) -> bytes:
    """The whole response. `Date` is the app's clock, the one that stamps update_time, as a real
    server's Date and record times share one clock (clients use it to reconcile)."""
    lines = [
        f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, 'Unknown')}",
        f"Date: {http_date(int(now))}",
        f"Content-Type: {answer.content_type}",
        f"Content-Length: {len(answer.body)}",
        "Connection: close" if close else "Connection: keep-alive",
    ]
    lines += [f"{name}: {value}" for name, value in (answer.headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 stalls a client opening dozens of connections at once (~1 s).
    request_queue_size = 128
    app: SandboxApp

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.client_resets = 0
        if ":" in address[0]:  # an IPv6 address (::1, a loopback base_url accepts)
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or drops its connection is no error of the sandbox: no traceback.
        Anything else is a bug in the emulator and prints one (stderr)."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            with self._connections_lock:
                self.client_resets += 1
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wake every keep-alive handler thread so none outlives the server."""
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class Sandbox:
    """A running emulator: `with Sandbox(opts) as sb:` serves in a background thread."""

    def __init__(self, options: SandboxOptions, *, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self.app = SandboxApp(options, clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        address, port = self._bound().server_address[:2]
        host = str(address)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def beyond_loopback(self) -> bool:
        """Whether the address it listens on lets other machines in (0.0.0.0, a LAN address)."""
        return not ipaddress.ip_address(str(self._bound().server_address[0])).is_loopback

    @property
    def client_resets(self) -> int:
        """Connections a client reset or dropped mid-request (served quietly, no traceback)."""
        return self._server.client_resets if self._server is not None else 0

    def _bound(self) -> _Server:
        if self._server is None:
            self._server = _Server((self.options.host, self.options.port), self.app)
        return self._server

    def start(self) -> Sandbox:
        """Serve in a background thread (a no-op when already serving)."""
        if self._thread is not None:
            return self
        server = self._bound()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.close_connections()
        self._server.server_close()
        self._server = None

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM, then stop cleanly and return (from the main thread).

        The server runs in its background thread and the signal handlers only take note: a
        KeyboardInterrupt raised inside the server's own code (starting a request's thread) was
        swallowed as a failed request ("release unlocked lock") and the sandbox never stopped."""
        signals: list[int] = []
        previous = {
            number: signal.signal(number, lambda received, _frame: signals.append(received))
            for number in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            if on_ready is not None:
                on_ready(self.url)
            while not signals:
                time.sleep(0.05)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            self.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def state(self) -> dict[str, Any]:
        return self.app.state()

    def stats(self) -> dict[str, Any]:
        return self.app.stats()

    def reset(self) -> None:
        self.app.reset()

    def set_faults(self, **changes: Any) -> None:
        """Change faults at run time (tests seed first, then turn faults on): any of
        `FaultSettings`' names (sandbox/faults.py), checked as a new sandbox's are."""
        self.app.set_faults(**changes)
