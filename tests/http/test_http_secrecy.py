"""SPEC 8: the API token never shows in a repr, an exception, a traceback or a log line."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

import httpx
import pytest
from fakes import FakeClock
from helpers_http import TOKEN, Script, client_for, edge_403, error, get, run, write

from rudder_pipedrive_cli.core.errors import RpdError
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.sandbox import Sandbox


def _everything_said(error_: BaseException) -> str:
    said = [str(error_), repr(error_), *traceback.format_exception(error_)]
    if isinstance(error_, RpdError):
        said += [error_.message, error_.hint]
    return "\n".join(said)


@pytest.mark.parametrize(
    "steps",
    [
        [error(401, "unauthorized access")],
        [error(403, "forbidden")],
        [edge_403()] * 4,
        [error(429, x_ratelimit_remaining="5")],
        [httpx.ConnectError("connection refused")] * 3,
        [httpx.ReadError("connection reset")] * 3,
        [error(503)] * 3,
    ],
    ids=["401", "json-403", "edge-403", "daily-429", "connect", "read", "5xx"],
)
def test_the_token_is_in_no_error_and_no_log(
    steps: list[httpx.Response | Exception], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(Script(steps), FakeClock(1000.0), max_retries=2)

    async def scenario() -> None:
        async with client:
            await client.send(get())

    with pytest.raises(Exception) as caught:
        run(scenario())
    assert TOKEN not in _everything_said(caught.value)
    assert TOKEN not in caplog.text
    assert caplog.records  # the client and httpx did log: there was something to check


def test_an_unknown_write_carries_no_token() -> None:
    response = run(_send(client_for(Script([httpx.ReadError("reset")]), FakeClock(1000.0))))
    assert response.unknown and TOKEN not in repr(response)


async def _send(client: PipedriveClient) -> ApiResponse:
    async with client:
        return await client.send(write("POST"))


def test_the_client_repr_hides_the_token() -> None:
    client = PipedriveClient(token=TOKEN, base_url="https://acme.pipedrive.com")
    assert TOKEN not in repr(client) and TOKEN not in str(client)
    assert "acme.pipedrive.com" in repr(client)


def test_no_log_line_over_real_http_holds_the_token(
    make_sandbox: Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = make_sandbox(token=TOKEN, fail_reset=1.0, fault_seed=1)
    request = ApiRequest(
        method="POST",
        path="/api/v2/persons",
        endpoint="/api/v2/persons",
        stage="create person",
        body={"name": "Ada"},
    )

    async def scenario() -> ApiResponse:
        async with PipedriveClient(token=TOKEN, base_url=sandbox.url, plan="unlimited") as client:
            return await client.send(request)

    assert run(scenario()).unknown
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # the wire was logged
    assert TOKEN not in caplog.text


def test_a_long_token_is_redacted_from_decoded_strings_only() -> None:
    # Review: redacting the raw bytes turned a number equal to the token into broken JSON and
    # missed a token the server escaped ("\/").
    from rudder_pipedrive_cli.http.client import envelope

    token = "1234567890123456/x"
    content = (
        b'{"success": true, "data": {"id": 1234567890123456, "name": "1234567890123456\\/X",'
        b' "items": ["a", "1234567890123456/x"]}}'
    )
    answer = envelope(200, content, True, "", token)
    assert answer.data == {
        "id": 1234567890123456,
        "name": "[token redacted]",
        "items": ["a", "[token redacted]"],
    }
