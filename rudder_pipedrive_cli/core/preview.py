"""Dry-run: plan every event against a responder and say what a replay would request."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.fields import text
from rudder_pipedrive_cli.core.intake import Finished, IdSet, Intake
from rudder_pipedrive_cli.core.known import Learner
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome
from rudder_pipedrive_cli.core.tally import Tally

# Rate of each plan's burst window, in requests per second, and the search window's.
BURST_PER_SECOND = {"lite": 10.0, "growth": 20.0, "premium": 50.0, "ultimate": 60.0}
SEARCH_PER_SECOND = 5.0


@dataclass(slots=True, kw_only=True)  # immutable by convention: see protocol.py
class Planned:
    item: Intake
    outcome: Outcome
    requests: tuple[ApiRequest, ...]
    rule: str | None = None  # a track event's [[track]] rule (`TrackRules.label`), when rules exist

    @property
    def planned_status(self) -> str:
        return "planned" if self.outcome.status == "sent" else self.outcome.status

    def record(self) -> dict[str, Any]:
        """The NDJSON line of SPEC 6, ready for orjson (tuples are JSON arrays)."""
        item, outcome = self.item, self.outcome
        record = {
            "source": item.source,
            "id": item.id,
            "type": item.kind,
            "outcome": "planned" if outcome.status == "sent" else outcome.status,
            "reason": outcome.reason,
            "warnings": outcome.warnings,
            "dropped": outcome.dropped,
            "requests": [request_record(r) for r in self.requests],
        }
        if self.rule is not None:  # track events, when [[track]] rules are configured
            record["rule"] = self.rule
        return record


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
    rules = config.track_rules if config.track_rules.rules else None
    for item in items:
        rule = None
        if rules is not None and item.kind == "track" and item.event is not None:
            rule = rules.label(text(item.event.raw.get("event")))
            tally.rules[rule] += 1
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
        tally.add_outcome(
            item.kind,
            outcome.status,
            dropped=outcome.dropped,
            warnings=outcome.warnings,
            reason=outcome.reason,
            writes=outcome.writes,
        )
        yield Planned(item=item, outcome=outcome, requests=tuple(requests), rule=rule)


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


def estimated_seconds(tally: Tally, plan: str) -> float:
    """How long the requests would take at the plan's rate limit (0 when unlimited)."""
    rate = BURST_PER_SECOND.get(plan)
    if rate is None:
        return 0.0
    total = sum(tally.requests.values())
    searches = sum(n for key, n in tally.requests.items() if "/itemSearch" in key)
    return max(total / rate, searches / SEARCH_PER_SECOND)
