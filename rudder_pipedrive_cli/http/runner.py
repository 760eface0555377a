"""Running many plans at once while events that share an identity keep their input order (SPEC 5).

Each item waits for the last earlier item holding each of its keys; since that one waited for
the ones before it, every earlier holder of a shared key has finished (and `done` has been called
for it, so the cache has learned from it) before a later one starts. Items sharing no key run
concurrently up to `concurrency`. An item holding `EVERY` (an alias) waits for every earlier
item, and every later item waits for it. At most `read_ahead` items are read but not finished,
and the key table forgets a key when its last holder finishes, so memory stays flat on any input
size.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from rudder_pipedrive_cli.core.driver import gave_up, heard_failure, raised
from rudder_pipedrive_cli.core.errors import RAISED_BY, PlanFailure
from rudder_pipedrive_cli.core.events import EVERY
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Planned

T = TypeVar("T")
Send = Callable[[ApiRequest], Awaitable[ApiResponse]]


class Sender(Protocol):
    async def send(self, request: ApiRequest) -> ApiResponse: ...


# The end of the reason of an event whose write a stop left in flight (`stopped_unknown`): the
# stop's line says so (cli/send_cmd.py), not that the events in flight were finished.
LEFT_UNKNOWN = (
    "outcome unknown when the run was stopped; left in flight, the next run reconciles it"
)


def stopped_unknown(stage: str) -> PlanFailure:
    """What a plan hears for the request it asks after the write of `stage` lost its answer,
    once the run is stopping: no more is sent for it (a reconciling listing, the write again)."""
    return PlanFailure(f"{stage}: {LEFT_UNKNOWN}", stage=stage, retryable=True)


async def drive_async(plan: Planned, send: Send, stopping: asyncio.Event | None = None) -> Outcome:
    """`core.driver.drive` with an async `send`, whose `PlanFailure` (the transport gave up) the
    plan hears as an answer (`gave_up`): it fails this event only. The same loop (httpx's model):
    a shared step would cost a call per request. An outcome (no request needed) is returned.

    Once `stopping` is set, a plan that had a write's answer lost (status 0: unknown) sends nothing
    more: it hears `stopped_unknown` instead, so the write stays in flight for the next run
    (its send is journalled) rather than be reconciled and sent again, up to `unknown_tries`
    times, each bounded only by the answer deadline: a stop waited 10 minutes for them."""
    if type(plan) is Outcome:
        return plan
    request, answer = None, None
    lost: str = ""  # the stage of the write whose answer was lost, if any
    try:
        while True:
            try:
                request = plan.send(answer)  # type: ignore[arg-type]  # None starts it
            except StopIteration as stop:
                outcome: Outcome = stop.value
                return outcome
            except Exception as error:  # a bug fails its event, not the whole run (`raised`)
                return raised(error, "" if request is None else request.stage)
            if lost and stopping is not None and stopping.is_set():
                answer = gave_up(stopped_unknown(lost), request.stage)
            else:
                try:
                    answer = await send(request)
                except PlanFailure as failure:
                    answer = gave_up(failure, request.stage)
            if answer.failed is not None:
                return heard_failure(plan, answer, request.stage)
            if not (lost or answer.status):  # a write's answer lost: its outcome unknown
                lost = request.stage
    finally:
        # After AuthRefused, RateLimitStop or a cancellation: end the plan now.
        plan.close()


class _End:
    """What a puller returns when the items are exhausted."""


END = _End()


async def read_in_thread(items: Iterable[T], ahead: int = 64) -> AsyncIterator[T]:
    """`items`, read by a daemon thread, so a source that blocks (stdin waiting for its producer)
    never stalls the event loop: events already read are sent, and Ctrl-C is heard at once."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    room = threading.Semaphore(ahead)  # the thread reads at most `ahead` items ahead

    def hand_over(kind: str, value: Any) -> bool:
        room.acquire()
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop has closed: the run is over
            return False
        return True

    def produce() -> None:
        try:
            for item in items:
                if not hand_over("item", item):
                    return
            hand_over("end", None)
        except BaseException as error:  # handed to the loop, raised there
            hand_over("error", error)

    threading.Thread(target=produce, name="rpd-reader", daemon=True).start()
    while True:
        kind, value = await queue.get()
        room.release()
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


def _puller(
    items: AsyncIterator[T] | Iterable[T], stop: asyncio.Event
) -> Callable[[], Awaitable[T | _End]]:
    if isinstance(items, AsyncIterator):
        source = items

        async def pull_async() -> T | _End:
            # An async source may wait a long time (stdin): a stop must not wait for it.
            pending = asyncio.ensure_future(anext(source))
            stopped = asyncio.ensure_future(stop.wait())
            finished, _ = await asyncio.wait(
                {pending, stopped}, return_when=asyncio.FIRST_COMPLETED
            )
            stopped.cancel()
            if pending not in finished:
                pending.cancel()
                return END
            try:
                return pending.result()
            except StopAsyncIteration:
                return END

        return pull_async
    iterator: Iterator[T] = iter(items)

    async def pull() -> T | _End:
        return next(iterator, END)

    return pull


class Waits:
    """Which earlier items each item waits for (SPEC 5's ordering), holding only what is in
    flight: the last unfinished holder of each key, and every unfinished item (for an item
    holding `EVERY`). A key is forgotten when its last holder finishes, so the table never
    grows with the identities seen so far, only with the items read and not finished."""

    __slots__ = ("_barrier", "_last_holder", "_unfinished")

    def __init__(self) -> None:
        self._last_holder: dict[str, asyncio.Event] = {}
        self._barrier: asyncio.Event | None = None  # the last item holding EVERY
        self._unfinished: set[asyncio.Event] = set()

    def enter(self, keys: frozenset[str], finished: asyncio.Event) -> list[asyncio.Event]:
        """Take in an item (its `finished` set when it ends); the earlier items it waits for."""
        if EVERY in keys:
            earlier = list(self._unfinished)
            self._last_holder.clear()
            self._barrier = finished
        else:
            holders = self._last_holder
            earlier = [e for k in keys if (e := holders.get(k))]
            barrier = self._barrier
            earlier += [barrier] if barrier is not None and not barrier.is_set() else []
            for key in keys:
                holders[key] = finished
        self._unfinished.add(finished)
        return list({id(e): e for e in earlier}.values())

    def leave(self, keys: frozenset[str], finished: asyncio.Event) -> None:
        """The item ended (`finished` is set): forget the keys it was the last holder of."""
        self._unfinished.discard(finished)
        holders = self._last_holder
        for key in keys:
            if holders.get(key) is finished:
                del holders[key]
        if self._barrier is finished:
            self._barrier = None

    def __len__(self) -> int:
        """Keys and items remembered: bounded by the items in flight."""
        return len(self._last_holder) + len(self._unfinished)


async def run_plans(
    items: AsyncIterator[T] | Iterable[T],
    *,
    start: Callable[[T], Planned],
    keys: Callable[[T], frozenset[str]],
    send: Send,
    done: Callable[[T, Outcome], None],
    concurrency: int = 8,
    stop: asyncio.Event | None = None,
    read_ahead: int | None = None,
    left: Callable[[T], None] | None = None,
    waits: Waits | None = None,
) -> None:
    """Run `start(item)`'s plan (or take its outcome, when it needs no request) for every item
    against `send`; call `done(item, outcome)` for each.

    `stop` set (Ctrl-C, SIGTERM): read no more items and start none, let running plans finish,
    return. Any other exception (AuthRefused, RateLimitStop, Unreachable, a bug) stops the run the
    same way, then is raised once the running plans have finished. An item read but not finished
    (never started, or its plan ended by such an exception) gets no `done` call but `left(item)`:
    a rerun takes it.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    stop = stop if stop is not None else asyncio.Event()
    slots = asyncio.Semaphore(read_ahead if read_ahead is not None else concurrency * 4)
    running = asyncio.Semaphore(concurrency)
    waits = waits if waits is not None else Waits()  # holds at most read_ahead items
    tasks: set[asyncio.Task[None]] = set()
    fatal: list[BaseException] = []

    def halted() -> bool:
        return stop.is_set() or bool(fatal)

    async def run(
        item: T, item_keys: frozenset[str], after: list[asyncio.Event], finished: asyncio.Event
    ) -> None:
        finished_item = False
        try:
            for earlier in after:
                await earlier.wait()
            async with running:
                if halted():
                    return
                outcome = await drive_async(start(item), send, stop)
                finished_item = True
                done(item, outcome)
        except Exception as error:
            if not fatal:
                fatal.append(error)
        finally:
            if not finished_item and left is not None:
                left(item)
            finished.set()
            waits.leave(item_keys, finished)
            slots.release()

    pull = _puller(items, stop)
    try:
        while True:
            await slots.acquire()
            if halted() or isinstance(item := await pull(), _End):  # no item read once halted
                slots.release()
                break
            item_keys = keys(item)
            finished = asyncio.Event()
            after = waits.enter(item_keys, finished)
            task = asyncio.create_task(run(item, item_keys, after, finished))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    except Exception as error:
        fatal.append(error)
    while tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    if fatal:
        raise fatal[0]


# A SIGTERM or SIGHUP heard again within this many seconds of the first is that stop sent twice
# (`timeout` signals rpd, then its whole process group; the loop may hear them turns apart).
SAME_STOP_WITHIN = 2.0


def drive_all(
    items: AsyncIterator[T] | Iterable[T],
    *,
    start: Callable[[T], Planned],
    keys: Callable[[T], frozenset[str]],
    sender: AbstractAsyncContextManager[Sender],
    done: Callable[[T, Outcome], None],
    concurrency: int = 8,
    handle_sigint: bool = True,
    left: Callable[[T], None] | None = None,
    stop: asyncio.Event | None = None,
    same_stop_within: float = SAME_STOP_WITHIN,
) -> signal.Signals | None:
    """`run_plans` in its own event loop, for the CLI. Returns the signal that stopped the run
    (SIGINT for Ctrl-C, SIGTERM, SIGHUP), None when it ran to its end.

    The first Ctrl-C, SIGTERM or SIGHUP stops taking new events and lets running plans finish; a
    second one (not heard in the first's turn of the loop, nor, for a SIGTERM or SIGHUP like the
    first, within `same_stop_within` seconds of it) cancels them and raises KeyboardInterrupt
    (Terminated, HungUp: RAISED_BY). `stop`
    is the event they set, if the caller shares it (the client's: no request is retried once it
    is set).
    """
    run_stop = stop if stop is not None else asyncio.Event()
    stopped_by: list[signal.Signals] = []
    heard: list[signal.Signals] = []  # every signal, heard by the loop or not (its last turn)

    async def main() -> None:
        stop = run_stop
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        installed: dict[signal.Signals, Any] = {}
        # The first stop's loop turn: the signals the loop hears in it are that one stop, sent
        # twice by one sender (`timeout` signals rpd, then its whole process group), not a second.
        first: list[bool] = []
        began: list[float] = []  # when the first stop was heard

        def on_signal(signum: signal.Signals) -> None:
            stopped_by.append(signum)
            if first:
                return
            # A program's SIGTERM or SIGHUP again, soon: the same sender's second (a second
            # Ctrl-C is a person's, SIGINT; a program that means to cancel sends SIGKILL).
            soon = began and loop.time() - began[0] < same_stop_within
            if soon and signum is not signal.SIGINT and signum is stopped_by[0]:
                return
            if stop.is_set() and task is not None:
                task.cancel()
            else:
                began.append(loop.time())
                first.append(True)
                loop.call_soon(first.clear)
            stop.set()

        # Windows event loops have no signal handlers: there Ctrl-C stays a KeyboardInterrupt.
        main_thread = threading.current_thread() is threading.main_thread()
        if handle_sigint and main_thread and sys.platform != "win32":
            for signum in RAISED_BY:
                previous = signal.getsignal(signum)
                try:
                    loop.add_signal_handler(signum, on_signal, signum)
                except RuntimeError:
                    continue
                installed[signum] = previous
                # The loop hears a signal on its next turn: one after its last is kept here.
                signal.signal(signum, lambda got, _frame: heard.append(signal.Signals(got)))
        try:
            async with sender as opened:
                await run_plans(
                    items,
                    start=start,
                    keys=keys,
                    send=opened.send,
                    done=done,
                    concurrency=concurrency,
                    stop=stop,
                    left=left,
                )
        finally:
            for signum, previous in installed.items():
                loop.remove_signal_handler(signum)
                # asyncio leaves SIGTERM and SIGHUP at their default (death without a report):
                # put back what the caller had, so a signal while the report is written is
                # heard too.
                if previous is not None:  # None: a handler not set from Python
                    signal.signal(signum, previous)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        raise RAISED_BY[stopped_by[-1] if stopped_by else signal.SIGINT] from None
    signals = stopped_by or heard
    return signals[0] if signals else None
