"""Shared by the tests of rpd's HTTP engine: fake time, scripted transports, tiny requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from fakes import FakeClock

from rudder_pipedrive_cli.core.protocol import ApiRequest
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.http.client import PipedriveClient

TOKEN = "tok-Zq8-DISTINCTIVE-7f3e91c2-secret"
SENT_AT = datetime(2026, 11, 28, 13, 0, 5, 750000, tzinfo=UTC)
R = TypeVar("R")


Step = httpx.Response | Exception


@dataclass
class Script:
    """A MockTransport handler answering with `steps` in order, recording each request."""

    steps: list[Step]
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        step = self.steps[len(self.seen) - 1]
        if isinstance(step, Exception):
            raise step
        return step


def ok(data: Any = None, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"success": True, "data": data, "additional_data": None},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


def error(status: int, message: str = "failed", **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"success": False, "error": message, "data": None},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


def edge_403() -> httpx.Response:
    return httpx.Response(
        403, text="<html><body>Forbidden</body></html>", headers={"content-type": "text/html"}
    )


def client_for(
    script: Callable[[httpx.Request], httpx.Response],  # a `Script`, mostly
    time: FakeClock,
    *,
    plan: str = "unlimited",
    max_retries: int = 6,
    tally: Tally | None = None,
    stopping: asyncio.Event | None = None,
) -> PipedriveClient:
    return PipedriveClient(
        token=TOKEN,
        base_url="https://acme.pipedrive.com",
        plan=plan,
        max_retries=max_retries,
        tally=tally,
        transport=httpx.MockTransport(script),
        clock=time,
        sleep=time.sleep,
        random=lambda: 0.5,
        now=lambda: SENT_AT,
        stopping=stopping,
    )


def run(coroutine: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coroutine)


def get(path: str = "/api/v2/persons/7", endpoint: str = "/api/v2/persons/{id}") -> ApiRequest:
    return ApiRequest(method="GET", path=path, endpoint=endpoint, stage="get person")


def search(term: str = "u-1") -> ApiRequest:
    return ApiRequest(
        method="GET",
        path="/api/v2/itemSearch/field",
        endpoint="/api/v2/itemSearch/field",
        stage="find person",
        query={"term": term, "entity_type": "person", "field": "abc", "match": "exact"},
    )


def write(method: Any = "POST", body: dict[str, Any] | None = None) -> ApiRequest:
    if method == "PUT":
        return ApiRequest(
            method="PUT",
            path="/v1/persons/3/merge",
            endpoint="/v1/persons/{id}/merge",
            stage="merge persons",
            body={"merge_with_id": 4},
        )
    if method == "PATCH":
        return ApiRequest(
            method="PATCH",
            path="/api/v2/persons/3",
            endpoint="/api/v2/persons/{id}",
            stage="update person",
            body=body or {"name": "Ada"},
        )
    return ApiRequest(
        method="POST",
        path="/api/v2/persons",
        endpoint="/api/v2/persons",
        stage="create person",
        body=body or {"name": "Ada"},
    )


async def send_with(client: PipedriveClient, request: ApiRequest) -> Any:
    async with client:
        return await client.send(request)
