"""Lookups that wait for the identity index's refresh in flight (core/index.py `IndexWait`).

Events run side by side (http/runner.py); when the index is due, the first that misses refreshes
it and the others that miss meanwhile wait for that refresh instead of each listing again every
record updated since. A plan cannot await, so it yields an `IndexWait`, which this sender answers
itself, never sending it: once a listing of that kind ends or fails (the index tells it), or at
the wait's `until`, whichever comes first. Every other request goes to the sender it wraps.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.index import IdentityIndex, IndexWait
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.http.runner import Send, Sender

WAITED = ApiResponse(status=200)  # what a wait is answered with: the lookup looks again


class IndexWaits:
    """`sender` (the Pipedrive client), answering the waits of the plans looking up `index`."""

    def __init__(self, sender: AbstractAsyncContextManager[Sender], index: IdentityIndex) -> None:
        self.sender, self.index = sender, index
        self.listed: dict[str, asyncio.Event] = {}  # kind -> set when a listing of it ends
        self.forward: Send | None = None
        index.notify = self.ended

    def ended(self, kind: str) -> None:
        event = self.listed.pop(kind, None)
        if event is not None:
            event.set()

    def stopped(self) -> None:
        """A request stopped the run (AuthRefused, RateLimitStop, a cancel): its plan is closed,
        and a listing of it would neither end nor fail, its waits waiting out their `until`
        (up to 10 s more before the run stops). Each wait ends, and no plan waits any more."""
        self.index.notify = None
        for kind in list(self.listed):
            self.ended(kind)

    async def __aenter__(self) -> IndexWaits:
        self.forward = (await self.sender.__aenter__()).send
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.index.notify = None
        await self.sender.__aexit__(*exc)

    async def send(self, request: ApiRequest) -> ApiResponse:
        if type(request) is not IndexWait:
            assert self.forward is not None
            try:
                return await self.forward(request)
            except PlanFailure:  # its plan hears it: a listing's fails (`IndexPages`)
                raise
            except BaseException:
                self.stopped()
                raise
        event = self.listed.setdefault(request.kind, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(0.0, request.until - self.index.clock()))
        return WAITED


def waiting(
    sender: AbstractAsyncContextManager[Sender], index: IdentityIndex | None
) -> AbstractAsyncContextManager[Sender]:
    """`sender`, answering the waits of the plans looking up `index`, when there is one."""
    return sender if index is None else IndexWaits(sender, index)
