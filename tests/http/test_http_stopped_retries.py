"""A stop (Ctrl-C, SIGTERM: the run's `stop` event, shared with the client) ends a request's
retries (SPEC 6: stop taking new events, finish writes in flight): the attempt under way ends as
it would, then no back-off and no attempt more; the request fails with its last error, retryable,
and its event is failed and dead-lettered as other stopped failures. Before, a GET answered 5xx
or 408, or a PATCH whose answer was lost, was still tried up to max-retries + 1 (7) times after
the stop, each with its back-off and up to the 120 s answer deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest
from fakes import FakeClock
from helpers_http import Script, client_for, error, get, ok, run, send_with, write

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.protocol import Outcome, Plan
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.http.pacing import RateHeaders, Sleep
from rudder_pipedrive_cli.http.runner import drive_all

CASES = {
    "GET 503": (get(), lambda: error(503), "GET /api/v2/persons/{id}: HTTP 503", 503),
    "GET 408": (get(), lambda: error(408), "GET /api/v2/persons/{id}: HTTP 408", 408),
    "PATCH lost": (
        write("PATCH"),
        lambda: httpx.ReadError("connection reset"),
        "PATCH /api/v2/persons/{id}: ReadError: connection reset",
        None,
    ),
}


class Stopping:
    """A transport answering every request with `answer()`, the run's stop set while the first
    waits for its answer (Ctrl-C then)."""

    def __init__(self, answer: Callable[[], httpx.Response | Exception]) -> None:
        self.stop = asyncio.Event()
        self.answer = answer
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        self.stop.set()
        step = self.answer()
        if isinstance(step, Exception):
            raise step
        return step


@pytest.mark.parametrize("case", list(CASES))
def test_a_request_is_not_retried_once_the_run_is_stopped(case: str) -> None:
    request, answer, reason, status = CASES[case]
    stopping, time, tally = Stopping(answer), FakeClock(1000.0), Tally()
    client = client_for(stopping, time, tally=tally, stopping=stopping.stop)
    with pytest.raises(PlanFailure) as caught:
        run(send_with(client, request))
    failure = caught.value
    assert failure.reason == f"{reason} after 1 attempt"  # one request, not seven
    assert (failure.status, failure.retryable) == (status, True)
    assert len(stopping.seen) == 1 and time.sleeps == [] and tally.retries == 0


def test_a_stop_during_the_back_off_sends_no_attempt_more() -> None:
    """Ctrl-C while the client waits to try a GET again: the wait ends as it would, and the
    request fails with the error it had, no attempt more."""
    script, time = Script([error(503), ok({"id": 7})]), FakeClock(1000.0)
    stop = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await time.sleep(seconds)
        stop.set()

    client = client_for(script, time, stopping=stop)
    client.policy = replace(client.policy, sleep=sleep)
    with pytest.raises(PlanFailure) as caught:
        run(send_with(client, get()))
    assert caught.value.reason == "GET /api/v2/persons/{id}: HTTP 503 after 1 attempt"
    assert len(script.seen) == 1 and time.sleeps == [0.375]


def reading_plan() -> Plan:
    answer = yield get()
    if answer.failed is not None:
        raise answer.failed
    return Outcome(status="sent")


def test_a_stopped_run_fails_the_event_whose_request_it_retries_no_more() -> None:
    """Through drive_all, whose stop the client shares (as `rpd send` gives it both): the event
    under way fails retryably with its request's last error, the next one is never started."""
    stopping, time = Stopping(lambda: error(503)), FakeClock(1000.0)
    outcomes: list[Outcome] = []
    signalled = drive_all(
        [1, 2],
        start=lambda _item: reading_plan(),
        keys=lambda _item: frozenset({"u:1"}),
        sender=client_for(stopping, time, stopping=stopping.stop),
        done=lambda _item, outcome: outcomes.append(outcome),
        concurrency=1,
        handle_sigint=False,
        stop=stopping.stop,
    )
    assert signalled is None  # set by the test, not by a signal
    assert [request.url.path for request in stopping.seen] == ["/api/v2/persons/7"]
    assert outcomes == [
        Outcome(
            status="failed",
            reason="GET /api/v2/persons/{id}: HTTP 503 after 1 attempt",
            stage="get person",
            http_status=503,
            retryable=True,
        )
    ]


def stopped_in_a_wait(made: Callable[[asyncio.Event, Sleep], PipedriveClient]) -> list[str]:
    """What a GET sent by the client `made` (given the run's stop and the sleep to wait by) says
    when its wait is one that ends only by the stop, set as the wait begins: the wait, then
    the request's failure. A wait the stop does not end is the 60 s hang guard's TimeoutError."""
    stop = asyncio.Event()
    said: list[str] = []

    async def endless(seconds: float) -> None:
        said.append(f"a wait of {seconds:g} s")
        stop.set()
        await asyncio.Event().wait()
        said.append("waited out")

    async def sent() -> None:
        client = made(stop, endless)
        try:
            await asyncio.wait_for(send_with(client, get()), timeout=60)  # a hang guard only
        except PlanFailure as failure:
            said.append(f"{failure.reason} (retryable={failure.retryable})")

    run(sent())
    return said


@pytest.mark.parametrize(
    ("answer", "reason", "wait"),
    [
        (error(503), "HTTP 503", 0.375),
        # Retry-After as long as a 429 may ask (rate_wait_cap), with its jitter
        (error(429, retry_after="60"), "HTTP 429 (rate limited)", 60.125),
    ],
    ids=["5xx back-off", "429 Retry-After"],
)
def test_a_stop_ends_the_back_off_under_way(
    answer: httpx.Response, reason: str, wait: float
) -> None:
    """Ctrl-C while the client waits to try a GET again (a back-off of up to 30 s, a 429's
    Retry-After up to 60 s): the wait ends at the stop, not when it would, and the request fails
    with the error it had. Before, the wait was waited out, silent, then no attempt followed."""
    script = Script([answer, ok({"id": 7})])

    def made(stop: asyncio.Event, sleep: Sleep) -> PipedriveClient:
        client = client_for(script, FakeClock(1000.0), stopping=stop)
        client.policy = replace(client.policy, sleep=sleep)
        return client

    assert stopped_in_a_wait(made) == [
        f"a wait of {wait:g} s",
        f"GET /api/v2/persons/{{id}}: {reason} after 1 attempt (retryable=True)",
    ]
    assert len(script.seen) == 1


def test_a_stop_ends_the_rate_limit_hold_of_a_request_not_yet_sent() -> None:
    """Ctrl-C while another request's 429 holds every send back (up to 60 s): a request waiting
    for its first try is not sent (the window still refuses it); its wait ends at the stop and
    it fails, retryable. Before, the pacer waited the hold out, silent, then sent it."""
    script = Script([ok({"id": 7})])

    def made(stop: asyncio.Event, sleep: Sleep) -> PipedriveClient:
        client = client_for(script, FakeClock(1000.0), plan="growth", stopping=stop)
        client.pacer.hold(get(), RateHeaders(), 60.0)  # another request's 429 asked so
        client.pacer.sleep = sleep
        return client

    assert stopped_in_a_wait(made) == [
        "a wait of 60 s",
        "GET /api/v2/persons/{id}: held back by the rate limit when the run was stopped; "
        "not sent (retryable=True)",
    ]
    assert script.seen == []


def test_a_stopped_run_sends_a_request_its_window_has_room_for() -> None:
    """The stop ends waits only: a request of an event in flight that may go at once still goes
    (the events in flight are finished), as before."""
    script, stop = Script([ok({"id": 7})]), asyncio.Event()
    stop.set()
    client = client_for(script, FakeClock(1000.0), plan="growth", stopping=stop)
    answer = run(send_with(client, get()))
    assert (answer.status, answer.data) == (200, {"id": 7})
    assert len(script.seen) == 1
