"""run_plans: input order per identity, concurrency across identities, bounded read-ahead, stops."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from fakes import FakePipedrive
from helpers_http import get, run
from hypothesis import given, settings
from hypothesis import strategies as st

from rudder_pipedrive_cli.core.errors import RAISED_BY, AuthRefused, PlanFailure, RateLimitStop
from rudder_pipedrive_cli.core.events import EVERY
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan, Planned
from rudder_pipedrive_cli.http.runner import SAME_STOP_WITHIN, drive_all, run_plans


@dataclass(frozen=True)
class Item:
    index: int
    kind: str
    keys: frozenset[str]
    requests: int = 2


def user_stories(users: int, seed: int) -> list[Item]:
    """identify -> track -> alias -> track per user, the users' stories shuffled together."""
    rng = random.Random(seed)
    stories = [
        [
            ("identify", {f"u:{u}"}),
            ("track", {f"u:{u}"}),
            ("alias", {f"u:anon-{u}", f"u:{u}"}),
            ("track", {f"u:{u}"}),
        ]
        for u in range(users)
    ]
    order = [u for u in range(users) for _ in range(4)]
    rng.shuffle(order)
    items: list[Item] = []
    for u in order:
        kind, keys = stories[u].pop(0)
        items.append(Item(len(items), kind, frozenset(keys), requests=rng.randint(1, 3)))
    return items


def persons(count: int) -> dict[int, str]:
    """The persons of a fake Pipedrive that the plans of `count` items (`Recorder.plan`) get."""
    return {index: f"u:{index}" for index in range(count)}


class Recorder:
    """A fake world: plans whose requests take seeded random time, and a log of what happened."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.log: list[tuple[str, int]] = []
        self.running = 0
        self.max_running = 0
        self.known: dict[str, int] = {}
        self.seen: dict[int, dict[str, int | None]] = {}
        self.outcomes: dict[int, Outcome] = {}

    def start(self, item: Item) -> Plan:
        self.log.append(("start", item.index))
        self.seen[item.index] = {key: self.known.get(key) for key in item.keys}
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        return self.plan(item)

    def plan(self, item: Item) -> Plan:
        for _ in range(item.requests):
            response = yield get(f"/api/v2/persons/{item.index}")
            if response.failed is not None:  # the transport gave up
                raise response.failed
            assert response.status == 200
        return Outcome(status="sent")

    async def send(self, request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(self.rng.uniform(0, 0.002))
        return ApiResponse(status=200)

    def done(self, item: Item, outcome: Outcome) -> None:
        assert item.index not in self.outcomes, "done twice"
        self.log.append(("done", item.index))
        self.outcomes[item.index] = outcome
        self.running -= 1
        for key in item.keys:
            self.known[key] = item.index

    def position(self, what: str, index: int) -> int:
        return self.log.index((what, index))


def test_events_sharing_an_identity_take_effect_in_input_order() -> None:
    items = user_stories(users=40, seed=7)
    world = Recorder(seed=3)
    run(
        run_plans(
            items,
            start=world.start,
            keys=lambda i: i.keys,
            send=world.send,
            done=world.done,
            concurrency=32,
        )
    )
    assert sorted(world.outcomes) == [i.index for i in items]
    for later in items:
        for earlier in items[: later.index]:
            if earlier.keys & later.keys:
                assert world.position("done", earlier.index) < world.position("start", later.index)
        # Each plan started knowing what the last earlier event with its keys learned.
        for key in later.keys:
            holders = [i.index for i in items[: later.index] if key in i.keys]
            assert world.seen[later.index][key] == (holders[-1] if holders else None)
    assert world.max_running > 1


def test_concurrency_is_a_ceiling() -> None:
    items = [Item(i, "track", frozenset({f"u:{i}"})) for i in range(60)]
    world = Recorder()
    run(
        run_plans(
            items,
            start=world.start,
            keys=lambda i: i.keys,
            send=world.send,
            done=world.done,
            concurrency=5,
        )
    )
    assert world.max_running == 5 and len(world.outcomes) == 60


def test_one_hot_identity_runs_one_at_a_time() -> None:
    items = [Item(i, "track", frozenset({"u:hot"})) for i in range(30)]
    world = Recorder()
    run(
        run_plans(
            items,
            start=world.start,
            keys=lambda i: i.keys,
            send=world.send,
            done=world.done,
            concurrency=8,
        )
    )
    assert world.max_running == 1
    assert [i for what, i in world.log if what == "done"] == list(range(30))


def test_read_ahead_is_bounded_on_a_large_input() -> None:
    pulled = finished = ahead = 0

    def items() -> Iterator[Item]:
        nonlocal pulled, ahead
        for i in range(100_000):
            pulled += 1
            ahead = max(ahead, pulled - finished)
            yield Item(i, "track", frozenset({f"u:{i % 500}"}), requests=1)

    async def send(request: ApiRequest) -> ApiResponse:
        await asyncio.sleep(0)
        return ApiResponse(status=200)

    def plan(item: Item) -> Plan:
        yield get()
        return Outcome(status="sent")

    def done(item: Item, outcome: Outcome) -> None:
        nonlocal finished
        finished += 1

    run(run_plans(items(), start=plan, keys=lambda i: i.keys, send=send, done=done, concurrency=8))
    assert finished == 100_000
    assert ahead == 8 * 4


def test_stop_takes_no_new_items_and_lets_running_ones_finish() -> None:
    world = Recorder()
    stop = asyncio.Event()
    pulled = 0

    def items() -> Iterator[Item]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield Item(i, "track", frozenset({f"u:{i}"}))

    def done(item: Item, outcome: Outcome) -> None:
        world.done(item, outcome)
        if len(world.outcomes) == 10:
            stop.set()

    run(
        run_plans(
            items(),
            start=world.start,
            keys=lambda i: i.keys,
            send=world.send,
            done=done,
            concurrency=4,
            stop=stop,
        )
    )
    started = [i for what, i in world.log if what == "start"]
    assert sorted(started) == sorted(world.outcomes)  # every started item finished
    assert 10 <= len(started) <= 10 + 4 - 1
    assert pulled <= len(started) + 4 * 4


@pytest.mark.parametrize("fatal", [AuthRefused("refused"), RateLimitStop("budget")])
def test_auth_and_rate_limit_stops_end_the_run_after_running_plans_finish(
    fatal: Exception,
) -> None:
    world = Recorder()
    items = [Item(i, "track", frozenset({f"u:{i}"})) for i in range(200)]

    async def send(request: ApiRequest) -> ApiResponse:
        if request.path == "/api/v2/persons/20":  # item 20's requests
            world.log.append(("fatal", 20))
            raise fatal
        return await world.send(request)

    with pytest.raises(type(fatal)):
        run(
            run_plans(
                items,
                start=world.start,
                keys=lambda i: i.keys,
                send=send,
                done=world.done,
                concurrency=6,
            )
        )
    cut = world.position("fatal", 20)
    assert all(what != "start" for what, _ in world.log[cut:])
    started = {i for what, i in world.log if what == "start"}
    assert set(world.outcomes) == started - {20}  # the others finished and were reported
    assert len(started) < 200


def test_a_plan_failure_fails_only_its_event() -> None:
    items = [Item(i, "track", frozenset({"u:1"})) for i in range(3)]
    outcomes: dict[int, Outcome] = {}

    async def send(request: ApiRequest) -> ApiResponse:
        if request.path == "/api/v2/persons/1":  # item 1's requests
            raise PlanFailure(
                "POST /v1/leads: HTTP 503 after 7 attempts",
                stage="create lead",
                status=503,
                retryable=True,
            )
        return ApiResponse(status=200)

    def start(item: Item) -> Planned:
        if item.index == 2:  # decided without a request: its outcome
            return Outcome(status="failed", reason="cannot create person without a name")
        return Recorder().plan(item)

    run(
        run_plans(
            items,
            start=start,
            keys=lambda i: i.keys,
            send=send,
            done=lambda i, o: outcomes.__setitem__(i.index, o),
        )
    )
    assert outcomes[0] == Outcome(status="sent")
    assert outcomes[1] == Outcome(
        status="failed",
        reason="POST /v1/leads: HTTP 503 after 7 attempts",
        stage="create lead",
        http_status=503,
        retryable=True,
    )
    assert outcomes[2] == Outcome(status="failed", reason="cannot create person without a name")


def test_an_async_iterator_is_read_too() -> None:
    world = Recorder()

    async def items() -> AsyncIterator[Item]:
        for i in range(20):
            await asyncio.sleep(0)
            yield Item(i, "track", frozenset({f"u:{i % 3}"}))

    run(
        run_plans(
            items(), start=world.start, keys=lambda i: i.keys, send=world.send, done=world.done
        )
    )
    assert sorted(world.outcomes) == list(range(20))


def test_drive_all_runs_everything_in_its_own_loop() -> None:
    world = Recorder()
    sender = FakePipedrive(persons(12))
    items = [Item(i, "track", frozenset({f"u:{i % 4}"})) for i in range(12)]
    interrupted = drive_all(
        items,
        start=world.start,
        keys=lambda i: i.keys,
        sender=sender,
        done=world.done,
        handle_sigint=False,
    )
    assert interrupted is None and sender.closed and len(world.outcomes) == 12


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_in_drive_all_stops_taking_events_and_reports_it(
    signum: signal.Signals,
) -> None:
    world = Recorder()
    sender = FakePipedrive(persons(500), interrupt_after=5, signum=signum)
    items = [Item(i, "track", frozenset({f"u:{i}"})) for i in range(500)]
    left: list[int] = []

    def on_sigterm(number: int, frame: object) -> None:
        raise AssertionError("the run's own handler hears SIGTERM while it runs")

    # The caller's Ctrl-C handler: Python's default, or SIG_IGN when the tests run in the
    # background of a shell without job control (which starts them with SIGINT ignored).
    caller_int = signal.getsignal(signal.SIGINT)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        interrupted = drive_all(
            items,
            start=world.start,
            keys=lambda i: i.keys,
            sender=sender,
            done=world.done,
            concurrency=2,
            left=lambda item: left.append(item.index),
        )
        # The caller's handler is back (asyncio would leave SIGTERM at its default: death).
        assert signal.getsignal(signal.SIGTERM) is on_sigterm
    finally:
        signal.signal(signal.SIGTERM, previous)
    started = {i for what, i in world.log if what == "start"}
    assert interrupted is signum and sender.closed
    assert set(world.outcomes) == started and len(started) < 500
    # Read ahead (at most concurrency * 4 at once), not started: left for a rerun, never lost.
    assert left and set(left).isdisjoint(started) and len(left) <= 8
    assert sorted(set(left) | started) == list(range(len(left) + len(started)))
    assert signal.getsignal(signal.SIGINT) is caller_int  # the caller's, back


class SignalledTwice(FakePipedrive):
    """A run's sender that signals this process twice: both as its `interrupt_after`th request
    goes out (`at_once`: `timeout` signals rpd, then its whole process group, rpd in it), or the
    second at the first request after the run heard the first (a second Ctrl-C)."""

    def __init__(self, signum: signal.Signals, *, at_once: bool, stop: asyncio.Event) -> None:
        super().__init__(persons(500), interrupt_after=2, signum=signum)
        self.at_once, self.heard, self.again = at_once, stop, True

    async def send(self, request: ApiRequest) -> ApiResponse:
        if self.at_once and len(self.seen) + 1 == self.interrupt_after:
            os.kill(os.getpid(), self.signum)  # the first of two; FakePipedrive's is the second
        elif not self.at_once and self.heard.is_set() and self.again:
            self.again = False
            os.kill(os.getpid(), self.signum)
        return await super().send(request)


def drive_signalled_twice(
    signum: signal.Signals, *, at_once: bool, within: float = SAME_STOP_WITHIN
) -> tuple[Recorder, object]:
    """500 items of 10 requests each, one at a time, driven to their end or their stop."""
    world, stop = Recorder(), asyncio.Event()
    sender = SignalledTwice(signum, at_once=at_once, stop=stop)
    caller = {number: signal.getsignal(number) for number in RAISED_BY}
    try:
        interrupted = drive_all(
            [Item(i, "track", frozenset({f"u:{i}"}), requests=10) for i in range(500)],
            start=world.start,
            keys=lambda i: i.keys,
            sender=sender,
            done=world.done,
            concurrency=1,
            stop=stop,
            same_stop_within=within,
        )
    except KeyboardInterrupt as stopped:
        return world, stopped
    finally:
        for number, handler in caller.items():
            signal.signal(number, handler)
    return world, interrupted


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_heard_twice_at_once_is_one_stop_that_finishes_what_is_in_flight(
    signum: signal.Signals,
) -> None:
    """`timeout 1h rpd send ...` sends its SIGTERM to rpd and again to its process group: the
    loop heard both in one turn and took the second for a second Ctrl-C, cancelling the events
    in flight ('terminated (SIGTERM) twice: events in flight were cancelled mid-way')."""
    world, interrupted = drive_signalled_twice(signum, at_once=True)
    assert interrupted is signum
    assert set(world.outcomes) == {0} and world.outcomes[0] == Outcome(status="sent")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_stop_signal_after_the_first_was_heard_cancels_what_is_in_flight(
    signum: signal.Signals,
) -> None:
    """A second Ctrl-C; a SIGTERM again after SAME_STOP_WITHIN (0 here: any later one)."""
    world, stopped = drive_signalled_twice(signum, at_once=False, within=0.0)
    assert type(stopped) is RAISED_BY[signum]
    assert world.outcomes == {}  # item 0, cancelled mid-way


def test_a_second_ctrl_c_cancels_however_soon_it_comes() -> None:
    world, stopped = drive_signalled_twice(signal.SIGINT, at_once=False, within=3600.0)
    assert type(stopped) is KeyboardInterrupt
    assert world.outcomes == {}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_sigterm_or_sighup_heard_again_turns_later_but_soon_is_the_same_stop(
    signum: signal.Signals,
) -> None:
    """`timeout` signals rpd, then its process group: the second SIGTERM may be heard turns of the
    loop after the first (1 run in 3 of `timeout` over a slow sandbox cancelled the events in
    flight: 'terminated (SIGTERM) twice'). Within SAME_STOP_WITHIN it is that one stop."""
    world, interrupted = drive_signalled_twice(signum, at_once=False, within=3600.0)
    assert interrupted is signum
    assert set(world.outcomes) == {0} and world.outcomes[0] == Outcome(status="sent")


@settings(max_examples=40, deadline=None)
@given(
    # EVERY is the key of an alias: ordered against every other item.
    key_sets=st.lists(
        st.frozensets(st.sampled_from(["a", "b", "c", "d", EVERY]), max_size=3), max_size=40
    ),
    concurrency=st.integers(min_value=1, max_value=12),
    read_ahead=st.integers(min_value=1, max_value=16),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_any_mix_of_identities_keeps_order_and_finishes_everything(
    key_sets: list[frozenset[str]], concurrency: int, read_ahead: int, seed: int
) -> None:
    items = [Item(i, "track", keys, requests=1 + i % 3) for i, keys in enumerate(key_sets)]
    world = Recorder(seed=seed)
    run(
        run_plans(
            items,
            start=world.start,
            keys=lambda i: i.keys,
            send=world.send,
            done=world.done,
            concurrency=concurrency,
            read_ahead=read_ahead,
        )
    )
    assert sorted(world.outcomes) == list(range(len(items)))
    assert world.max_running <= concurrency
    for later in items:
        for earlier in items[: later.index]:
            if earlier.keys & later.keys or EVERY in earlier.keys | later.keys:
                assert world.position("done", earlier.index) < world.position("start", later.index)


CREATE = ApiRequest("POST", "/api/v2/persons", "/api/v2/persons", "create person", None, {})
LISTING = ApiRequest("GET", "/api/v2/persons", "/api/v2/persons", "reconcile person")


def resending_plan() -> Plan:
    """A write whose answer is lost, reconciled and sent again up to 7 times (WriteOnce's loop)."""
    for _ in range(7):
        answer = yield CREATE
        if answer.failed is not None:
            raise answer.failed
        if answer.status:
            return Outcome(status="sent")
        listed = yield LISTING
        if listed.failed is not None:
            raise listed.failed
    raise PlanFailure("create person: outcome unknown after 7 attempts", retryable=True)


@pytest.mark.parametrize("stopped_while", ["the write", "its reconciliation"])
def test_a_stop_sends_nothing_more_for_a_write_whose_answer_was_lost(stopped_while: str) -> None:
    """The stop comes while the write (or the listing after its lost answer) is under way: that
    request ends as it would, and the plan then hears the stop, not the server (before: the write
    was reconciled and sent again, each attempt bounded only by the 120 s answer deadline)."""
    stop = asyncio.Event()
    sent: list[str] = []
    outcomes: list[Outcome] = []

    async def send(request: ApiRequest) -> ApiResponse:
        sent.append(request.stage)
        if request.stage == (
            "create person" if stopped_while == "the write" else "reconcile person"
        ):
            stop.set()  # Ctrl-C while this request waits for its answer
        return ApiResponse(status=0 if request.method == "POST" else 200, data=[])

    run(
        run_plans(
            [1, 2],
            start=lambda _item: resending_plan(),
            keys=lambda _item: frozenset({"u:1"}),
            send=send,
            done=lambda _item, outcome: outcomes.append(outcome),
            concurrency=1,
            stop=stop,
        )
    )
    asked = {
        "the write": ["create person"],
        "its reconciliation": ["create person", "reconcile person"],
    }
    assert sent == asked[stopped_while]  # the second item is never started either
    assert outcomes == [
        Outcome(
            status="failed",
            reason="create person: outcome unknown when the run was stopped; left in flight, "
            "the next run reconciles it",
            stage="create person",
            retryable=True,
        )
    ]
