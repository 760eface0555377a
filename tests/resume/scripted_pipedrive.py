"""A small scripted Pipedrive, and a replay of one event through a real ReplayState with its
journaled writes: enough to follow a merge's marks across a kill -9 without a sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.replay import journaled

USER_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
CONFIG = PlanConfig(user_id_field=USER_FIELD, create_persons=True)
STAMP = "2026-01-02T03:04:05Z"


class Killed(BaseException):
    """kill -9 after the server applied a write."""


class FakePipedrive:
    def __init__(self, persons: dict[int, str]) -> None:
        self.persons = dict(persons)  # id -> userId
        self.seen: list[str] = []
        self.refuse_merge: set[tuple[int, int]] = set()
        self.kill_after_merge: set[tuple[int, int]] = set()
        self.index: dict[int, str] = {}  # persons search still finds once gone (its index lags)

    def __call__(self, request: ApiRequest) -> ApiResponse:
        self.seen.append(f"{request.method} {request.path}")
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


def replay(
    state: ReplayState, raw: dict[str, Any], send: Callable[[ApiRequest], ApiResponse]
) -> Outcome:
    event = parse_event(raw, "f:1")
    plan = journaled(plan_event(event, CONFIG, state), event.id, state, lambda: STAMP)
    outcome = drive(plan, send)
    state.record_outcome(event.id, "f:1", outcome)
    return outcome


def open_state(path: Path) -> ReplayState:
    return ReplayState.open(path, "ns", now=lambda: STAMP)
