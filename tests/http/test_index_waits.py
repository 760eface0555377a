"""http/index_waits.py: send's sender answers a lookup's wait for the index's refresh in flight
(core/index.py `IndexWait`) itself, never sending it, and passes every other request on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import FakeClock, FakePipedrive

from rudder_pipedrive_cli.core.errors import RateLimitStop
from rudder_pipedrive_cli.core.index import IdentityIndex, IndexWait, MemoryIndexRows
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.http.index_waits import WAITED, IndexWaits, waiting


def test_a_wait_ends_when_a_listing_of_its_kind_ends_and_is_never_sent() -> None:
    clock = FakeClock(5.0)
    index = IdentityIndex(MemoryIndexRows(), {"person": "key"}, clock=clock)
    pipedrive = FakePipedrive({1: "u-1"})
    wait = IndexWait("person", 1_000.0, "index persons", "wait")
    get = ApiRequest("GET", "/api/v2/persons/1", "/api/v2/persons/{id}", "get person")

    async def main() -> list[Any]:
        async with IndexWaits(pipedrive, index) as sender:
            waiter = asyncio.ensure_future(sender.send(wait))
            await asyncio.sleep(0)
            assert not waiter.done()
            assert index.notify is not None
            index.notify("org")  # another kind's listing: still waiting
            await asyncio.sleep(0)
            assert not waiter.done()
            index.notify("person")
            past = await sender.send(IndexWait("person", 4.0, "index persons", "wait"))
            return [await waiter, past, await sender.send(get)]

    assert asyncio.run(main()) == [WAITED, WAITED, ApiResponse(status=200, data={"id": 1})]
    assert pipedrive.seen == ["GET /api/v2/persons/1"] and pipedrive.closed
    assert index.notify is None  # no plan waits once the sender is closed


def test_without_an_index_the_sender_is_the_client_itself() -> None:
    pipedrive = FakePipedrive({})
    assert waiting(pipedrive, None) is pipedrive


def test_a_request_that_stops_the_run_ends_every_wait() -> None:
    # The plan whose listing page stopped the run is closed: its listing neither ends nor fails,
    # and the events in flight that waited for it waited out their 10 s before the run stopped.
    clock = FakeClock(5.0)
    index = IdentityIndex(MemoryIndexRows(), {"person": "key"}, clock=clock)
    page = ApiRequest("GET", "/api/v2/persons", "/api/v2/persons", "index persons")
    pipedrive = FakePipedrive({})  # every request stops the run
    pipedrive.stop = RateLimitStop("the daily budget is spent")

    async def main() -> list[Any]:
        async with IndexWaits(pipedrive, index) as sender:
            index.begin("person", clock())  # another event's build, in flight
            until = index.awaited("person")
            assert until == 15.0
            waiter = asyncio.ensure_future(sender.send(IndexWait("person", until, "", "wait")))
            await asyncio.sleep(0)
            assert not waiter.done()
            with pytest.raises(RateLimitStop):
                await sender.send(page)
            for _ in range(3):  # the wait's own turns of the loop, no time
                await asyncio.sleep(0)
            return [waiter.done() and waiter.result(), index.awaited("person")]

    assert asyncio.run(main()) == [WAITED, None]  # and no event in flight waits any more
