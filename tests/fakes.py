"""The tests' one fake clock (time that moves only when a test moves it) and one fake Pipedrive
(persons, searches and merges answered in process, for what the sandbox cannot do: a kill -9
right after a write was applied; and a run's sender that stops it after some requests)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse


class FakeClock:
    """Seconds that move only when a test sets `now`, calls `advance`, or sleeps on the clock
    (`await clock.sleep(s)`: each sleep is recorded in `sleeps` and moves the clock); given a
    `step`, each reading is `step` seconds after the one before. `then` runs at the reading
    numbered `at` (another client acting while rpd runs). `wall` is the wall clock beside it (a
    datetime, by default `now` seconds after the epoch): `advance` moves it too, and a test may
    step it alone (an NTP correction)."""

    def __init__(
        self,
        now: float = 0.0,
        *,
        step: float = 0.0,
        at: int = -1,
        then: Callable[[], object] | None = None,
        wall: datetime | None = None,
    ) -> None:
        self.now = now
        self.step, self.at, self.then = step, at, then
        self.wall = wall if wall is not None else datetime.fromtimestamp(now, UTC)
        self.readings = 0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        self.readings += 1
        if self.readings == self.at and self.then is not None:
            self.then()
        if self.step:
            self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Killed(BaseException):
    """kill -9 after the server applied a write."""


class FakePipedrive:
    """A small scripted Pipedrive of persons, answering `ApiRequest`s in process: searches (with an
    index that may lag behind merges), gets, patches and merges, some merges refused or followed
    by a kill -9 (`Killed`). Also a run's sender (`drive_all`'s: `async with` it, `await
    send(request)`), which sends this process `signum` as its `interrupt_after`th request goes
    out (a Ctrl-C during the run), and raises `stop` at every request when a test sets it (a
    refused token, a spent budget)."""

    def __init__(
        self,
        persons: dict[int, str],
        *,
        interrupt_after: int | None = None,
        signum: signal.Signals = signal.SIGINT,
    ) -> None:
        self.persons = dict(persons)  # id -> userId
        self.interrupt_after, self.signum = interrupt_after, signum
        self.closed = False  # the sender's context was left
        self.seen: list[str] = []
        self.refuse_merge: set[tuple[int, int]] = set()
        self.kill_after_merge: set[tuple[int, int]] = set()
        self.index: dict[int, str] = {}  # persons search still finds once gone (its index lags)
        self.stop: Exception | None = None

    def __call__(self, request: ApiRequest) -> ApiResponse:
        self.seen.append(f"{request.method} {request.path}")
        if self.stop is not None:
            raise self.stop
        if request.path == "/api/v2/itemSearch/field":
            term = request.query["term"]
            indexed = {**self.index, **self.persons}
            hits = [{"id": i, "name": "x"} for i, u in indexed.items() if u == term]
            return ApiResponse(status=200, data=hits, additional_data={})
        if request.method == "PUT" and request.path.endswith("/merge"):
            gone = int(request.path.split("/")[3])
            into = int(request.body["merge_with_id"])
            if (gone, into) in self.refuse_merge:
                return ApiResponse(status=400, error="merge refused")
            if gone not in self.persons or into not in self.persons:
                return ApiResponse(status=404, error="not found")
            del self.persons[gone]
            if (gone, into) in self.kill_after_merge:
                raise Killed()
            return ApiResponse(status=200, data={"id": into})
        if request.method == "GET" and request.path.startswith("/api/v2/persons/"):
            pid = int(request.path.rsplit("/", 1)[1])
            if pid in self.persons:
                return ApiResponse(status=200, data={"id": pid})
            return ApiResponse(status=404, error="not found")
        if request.method == "PATCH" and request.path.startswith("/api/v2/persons/"):
            pid = int(request.path.rsplit("/", 1)[1])
            if pid not in self.persons:
                return ApiResponse(status=404, error="not found")
            return ApiResponse(status=200, data={"id": pid, **(request.body or {})})
        raise AssertionError(f"unexpected {request}")

    async def __aenter__(self) -> FakePipedrive:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.closed = True

    async def send(self, request: ApiRequest) -> ApiResponse:
        answer = self(request)  # counted in `seen` before another plan sends
        if len(self.seen) == self.interrupt_after:
            os.kill(os.getpid(), self.signum)
        await asyncio.sleep(0)  # answered later, as over the network: other plans go on
        return answer
