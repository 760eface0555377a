"""Dry-run: plan every event against a responder and say what a replay would request."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.errors import public_warning
from rudder_pipedrive_cli.core.intake import Finished, IdSet, Intake
from rudder_pipedrive_cli.core.known import Learner
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome
from rudder_pipedrive_cli.core.rootcause import RootCauses
from rudder_pipedrive_cli.core.tally import Tally


@dataclass(slots=True, kw_only=True)  # immutable by convention: see protocol.py
class Planned:
    item: Intake
    outcome: Outcome
    requests: tuple[ApiRequest, ...]

    @property
    def planned_status(self) -> str:
        return "planned" if self.outcome.status == "sent" else self.outcome.status

    def record(self) -> dict[str, Any]:
        """The NDJSON line of SPEC 6, ready for orjson (tuples are JSON arrays)."""
        item, outcome = self.item, self.outcome
        return {
            "source": item.source,
            "id": item.id,
            "type": item.kind,
            "outcome": "planned" if outcome.status == "sent" else outcome.status,
            "reason": outcome.reason,
            "warnings": outcome.warnings,
            "dropped": outcome.dropped,
            "requests": [request_record(r) for r in self.requests],
        }


def request_record(request: ApiRequest) -> dict[str, Any]:
    query = request.query
    return {
        "method": request.method,
        "path": request.path,
        "query": query if type(query) is dict else dict(query),
        "body": request.body,
        "note": request.note,
    }


def preview(
    items: Iterable[Intake],
    config: PlanConfig,
    respond: Callable[[ApiRequest], ApiResponse],
    known: Learner,
    tally: Tally,
    journal_status: Callable[[str], str | None] | None = None,
    finished_ids: IdSet | None = None,
) -> Iterator[Planned]:
    """Plan each event in input order; what an event would create is known to the next ones.

    Events an earlier run finished (`journal_status`: the replay state's journal) show as
    skipped, as a rerun of `rpd send` would skip them; so does a repeat of an event this dry-run
    already finished (the same messageId again), as send's journal skips it, with a state file
    or without one. `finished_ids` keeps those ids (default: a set).
    """
    recorder = _Recorder(respond, tally)
    finished = Finished(journal_status, finished_ids)
    roots = RootCauses()  # as send explains and counts failures that earlier ones caused
    for item in items:
        requests: list[ApiRequest] = []
        if item.decided is not None or item.event is None:
            outcome = item.decided or Outcome(status="failed", reason="not an event")
        elif item.id in finished:
            outcome = Outcome(status="skipped", reason="already done")
        else:
            recorder.requests = requests
            outcome = drive(plan_event(item.event, config, known), recorder)
            known.learn(outcome)
            finished.add(item.id, outcome.status)
        explained = roots.explain(item.event, outcome)
        outcome = explained.outcome
        # The summary groups by reason in words without event data, as send's report does
        # (one line per cause, not one per userId); each event's full reason is in its record.
        tally.add_outcome(
            item.kind,
            outcome.status,
            dropped=outcome.dropped,
            warnings=tuple(public_warning(text) for text in outcome.warnings),
            reason=outcome.public_reason,
            root=explained.root,
        )
        yield Planned(item=item, outcome=outcome, requests=tuple(requests))


class _Recorder:
    """The `send` of a dry-run plan: note the request, count it, answer it offline. One for the
    run (a closure per event was a cost in the profile); `requests` is the current event's."""

    __slots__ = ("requests", "respond", "tally")

    def __init__(self, respond: Callable[[ApiRequest], ApiResponse], tally: Tally) -> None:
        self.requests: list[ApiRequest] = []
        self.respond = respond
        self.tally = tally

    def __call__(self, request: ApiRequest) -> ApiResponse:
        self.requests.append(request)
        self.tally.add_request(request)
        return self.respond(request)
