"""The async client behind a blocking interface, for commands that make a few requests in order:
the field catalog, `map-fields`, `check`, and the read-only lookups of `dry-run --lookups`."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, TypeVar

from rudder_pipedrive_cli.core.driver import drive_exchange, gave_up
from rudder_pipedrive_cli.core.errors import PlanFailure, stop_in
from rudder_pipedrive_cli.core.plans.common import malformed
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.http.client import PipedriveClient

T = TypeVar("T")


def _unless_stopped(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's report of a task's unread error, unless the error is the Ctrl-C or SIGTERM the
    command is already stopping on (said in its one line): a request's task left mid-connect
    printed "Task exception was never retrieved" and a traceback after it, without -v."""
    if stop_in(context.get("exception") or Exception()) is None:
        loop.default_exception_handler(context)


class BlockingClient:
    """`with BlockingClient(token=..., base_url=...) as client: client.send(request)`.

    Takes the same keyword arguments as `PipedriveClient`; one event loop serves every call.
    """

    def __init__(self, **client_options: Any) -> None:
        self._runner = asyncio.Runner()
        self._runner.get_loop().set_exception_handler(_unless_stopped)
        self._client = PipedriveClient(**client_options)

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self._runner.run(self._client.aclose())
        finally:
            self._runner.close()

    def send(self, request: ApiRequest) -> ApiResponse:
        return self._runner.run(self._client.send(request))

    def exchange(self, steps: Generator[ApiRequest, ApiResponse, T]) -> T:
        """Run a pure exchange (such as `fetch_catalog()`) to its value (`drive_exchange`)."""
        return drive_exchange(steps, self.answer)

    def answer(self, request: ApiRequest) -> ApiResponse:
        """`send`'s answer as an exchange hears it: a request that failed (retries spent), or a
        2xx that is not Pipedrive's envelope (HTML, an empty or cut body), as a failure (QA: read
        as it was, a field listing was an account without fields, and `map-fields` exited 0)."""
        try:
            response = self.send(request)
        except PlanFailure as failure:
            return gave_up(failure, request.stage)
        if response.malformed:
            return gave_up(malformed(response, request.stage, response.malformed), request.stage)
        return response
