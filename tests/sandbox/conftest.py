"""Fixtures for the sandbox's own tests: a settable clock and authenticated clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from fakes import FakeClock
from sandbox_support import START, TOKEN

from rudder_pipedrive_cli.sandbox import Sandbox


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def client_for() -> Iterator[Callable[..., httpx.Client]]:
    """`client_for(sandbox, token=TOKEN)`: a keep-alive client with the token header."""
    clients: list[httpx.Client] = []

    def make(sandbox: Sandbox, token: str | None = TOKEN) -> httpx.Client:
        headers = {"x-api-token": token} if token else {}
        client = httpx.Client(base_url=sandbox.url, headers=headers, timeout=5.0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def api(sandbox: Sandbox, client_for: Callable[..., httpx.Client]) -> httpx.Client:
    return client_for(sandbox)


@pytest.fixture
def timed(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock, client_for: Callable[..., httpx.Client]
) -> httpx.Client:
    """A client of an unlimited sandbox whose clock the test controls."""
    return client_for(make_sandbox(clock=clock))
