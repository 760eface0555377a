"""A source that blocks (stdin whose producer pauses) must not stall delivery or Ctrl-C."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan
from rudder_pipedrive_cli.http.runner import read_in_thread, run_plans

REQUEST = ApiRequest(method="GET", path="/v1/users/me", endpoint="/v1/users/me", stage="t")


def one_request(_: int) -> Plan:
    yield REQUEST
    return Outcome(status="sent")


def paused_source(release: threading.Event, produced: int = 2) -> Iterator[int]:
    yield from range(produced)
    release.wait(10)  # the producer pauses, as a pipe's writer may
    yield produced


async def answer(_: ApiRequest) -> ApiResponse:
    return ApiResponse(status=200)


def test_items_read_before_a_pause_are_delivered_during_it_and_stop_is_heard() -> None:
    release = threading.Event()
    done: list[int] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(
            run_plans(
                read_in_thread(paused_source(release)),
                start=one_request,
                keys=lambda n: frozenset({str(n)}),
                send=answer,
                done=lambda n, _: done.append(n),
                stop=stop,
            )
        )
        for _ in range(200):  # bounded poll: the two items arrive while the source is paused
            if len(done) == 2:
                break
            await asyncio.sleep(0.01)
        assert done == [0, 1]
        stop.set()  # Ctrl-C while the source still waits
        await asyncio.wait_for(runner, timeout=5)

    asyncio.run(scenario())
    release.set()
    assert done == [0, 1]


def test_an_error_in_the_source_is_raised_in_the_run() -> None:
    def broken() -> Iterator[int]:
        yield 0
        raise ValueError("bad input")

    async def scenario() -> None:
        await run_plans(
            read_in_thread(broken()),
            start=one_request,
            keys=lambda n: frozenset({str(n)}),
            send=answer,
            done=lambda n, _: None,
        )

    with pytest.raises(ValueError, match="bad input"):
        asyncio.run(scenario())
