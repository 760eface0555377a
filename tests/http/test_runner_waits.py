"""http/runner.py's waiting table (issue 18): which earlier items each item waits for is kept
only for the items in flight, however many identities the input holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from helpers_http import get, run

from rudder_pipedrive_cli.core.events import EVERY
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan
from rudder_pipedrive_cli.http.runner import Waits, run_plans

ITEMS = 20_000


def test_the_waiting_table_holds_what_is_in_flight_not_every_identity_seen() -> None:
    """20,000 items, each about a new userId and a new messageId (and every 1,000th an alias,
    which waits for all before it): at most read_ahead items and their keys are remembered."""
    waits = Waits()
    largest = 0

    def items() -> Iterator[frozenset[str]]:
        for n in range(ITEMS):
            yield frozenset({EVERY} if n % 1000 == 999 else {f"u:user-{n}", f"e:msg-{n}"})

    async def send(request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(0)
        return ApiResponse(status=200)

    def plan(keys: frozenset[str]) -> Plan:
        yield get()
        return Outcome(status="sent")

    finished = 0

    def done(keys: frozenset[str], outcome: Outcome) -> None:
        nonlocal finished, largest
        finished += 1
        largest = max(largest, len(waits))

    flow = run_plans(
        items(), start=plan, keys=lambda k: k, send=send, done=done, read_ahead=32, waits=waits
    )
    run(flow)
    assert finished == ITEMS
    assert 0 < largest <= 32 * 3  # per item read and not finished: itself and its two keys
    assert len(waits) == 0  # all finished: nothing left


def test_an_item_waits_for_the_last_unfinished_holder_of_each_key_and_for_a_barrier() -> None:
    waits = Waits()
    first, second, alias, third = (asyncio.Event() for _ in range(4))
    assert waits.enter(frozenset({"u:a"}), first) == []
    assert waits.enter(frozenset({"u:a", "u:b"}), second) == [first]
    assert set(waits.enter(frozenset({EVERY}), alias)) == {first, second}
    assert waits.enter(frozenset({"u:c"}), third) == [alias]  # after the alias, whatever keys
    for keys, event in ((frozenset({"u:a"}), first), (frozenset({"u:a", "u:b"}), second)):
        event.set()
        waits.leave(keys, event)
    alias.set()
    waits.leave(frozenset({EVERY}), alias)
    assert len(waits) == 2  # third and its key
    third.set()
    waits.leave(frozenset({"u:c"}), third)
    assert len(waits) == 0
    assert waits.enter(frozenset({"u:c"}), asyncio.Event()) == []  # nothing left to wait for
