"""Serving a test's own HTTP server on a thread: stopped at once, not after half a second."""

from __future__ import annotations

import threading
from socketserver import BaseServer

# serve_forever looks for shutdown() between polls: at its default 0.5 s, each server a test
# stopped cost it half a second of teardown (the S3 proxy and moto's server: 1 s a test).
POLL_S = 0.01


def serve_in_thread(server: BaseServer) -> threading.Thread:
    """Start serving `server` on a daemon thread; `server.shutdown()` returns within POLL_S."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
    )
    thread.start()
    return thread
