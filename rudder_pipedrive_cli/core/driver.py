"""Run a plan against a synchronous `send` function. The async runner mirrors this loop."""

from __future__ import annotations

from collections.abc import Callable

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan


def failed_outcome(failure: PlanFailure, stage: str) -> Outcome:
    return Outcome(
        status="failed",
        reason=failure.reason,
        stage=failure.stage or stage,
        http_status=failure.status,
        retryable=failure.retryable,
    )


def drive(plan: Plan, send: Callable[[ApiRequest], ApiResponse]) -> Outcome:
    """Feed each request of `plan` to `send` and return the plan's outcome.

    A `PlanFailure` raised by the plan or by `send` fails this event only.
    """
    stage = ""
    try:
        request = next(plan)
        while True:
            stage = request.stage
            try:
                response = send(request)
            except PlanFailure as failure:
                plan.close()
                return failed_outcome(failure, stage)
            request = plan.send(response)
    except StopIteration as stop:
        outcome: Outcome = stop.value
        return outcome
    except PlanFailure as failure:
        return failed_outcome(failure, stage)
