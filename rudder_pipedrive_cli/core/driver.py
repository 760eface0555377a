"""Run a plan or an exchange against a synchronous `send`. The async runner mirrors `drive`."""

from __future__ import annotations

from collections.abc import Callable, Generator
from copy import copy
from typing import TypeVar

from rudder_pipedrive_cli.core.errors import PlanFailure, RpdError
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan, Planned

T = TypeVar("T")


def failed_outcome(failure: PlanFailure, stage: str) -> Outcome:
    return Outcome(
        status="failed",
        reason=failure.reason,
        stage=failure.stage or stage,
        http_status=failure.status,
        retryable=failure.retryable,
        redacted=failure.redacted,
    )


def gave_up(failure: PlanFailure, stage: str) -> ApiResponse:
    """The answer a plan hears when the transport gave up on its request (`ApiResponse.failed`),
    the failure naming the request's stage when the transport did not: a copy, its type
    (`NeverConnected`) and hint kept."""
    if not failure.stage:
        failure = copy(failure)
        failure.stage = stage
    return ApiResponse(status=0, failed=failure)


def drive(plan: Planned, send: Callable[[ApiRequest], ApiResponse]) -> Outcome:
    """Feed each request of `plan` to `send` and return the plan's outcome: the synchronous
    driver (dry-run, tests); `http.runner.drive_async` is the same loop with an async `send`.
    `send` answers every request with a value, a transport failure too (`gave_up`). An event
    that needs no request (`plan_event`) is its outcome already: returned as it is.

    A `PlanFailure` from the plan fails this event only, and so does any other exception (a bug)
    but an `RpdError`, which stops the run (`raised`). An answer that says the transport gave up
    (`failed`) is the plan's last (`heard_failure`).
    """
    if type(plan) is Outcome:
        return plan
    request, answer = None, None
    while True:
        try:
            request = plan.send(answer)  # type: ignore[arg-type]  # None starts it
        except StopIteration as stop:
            outcome: Outcome = stop.value
            return outcome
        except Exception as error:  # a bug fails its event, not the whole run (`raised`)
            return raised(error, "" if request is None else request.stage)
        answer = send(request)
        if answer.failed is not None:
            return heard_failure(plan, answer, request.stage)


def drive_exchange(
    steps: Generator[ApiRequest, ApiResponse, T], send: Callable[[ApiRequest], ApiResponse]
) -> T:
    """`drive` for a pure exchange (the catalog's, the account's, the index's listings), to its
    value: `send` answers each request with a value, a failure too (`gave_up`), which the
    exchange may go on without (`fetch_catalog`) or raise to the caller."""
    answer = None
    try:
        while True:
            answer = send(steps.send(answer))  # type: ignore[arg-type]  # None starts it
    except StopIteration as stop:
        result: T = stop.value
        return result


def heard_failure(plan: Plan, answer: ApiResponse, stage: str) -> Outcome:
    """Both drivers' end of a plan whose request the transport gave up on: the event fails
    whatever the plan does (it may not turn a lost request into success, nor ask for more). What
    it learned on the way is in its own failed outcome, for the next events of that identity."""
    failure = answer.failed
    assert failure is not None
    try:
        plan.send(answer)
    except StopIteration as stop:
        outcome: Outcome = stop.value
        return outcome if outcome.status == "failed" else failed_outcome(failure, stage)
    except Exception as error:
        return raised(error, stage)
    plan.close()  # it asked for more after its request failed: end it
    return failed_outcome(failure, stage)


def raised(error: Exception, stage: str) -> Outcome:
    """The outcome of a plan that raised `error` at `stage`; an `RpdError` stops the run, not
    only this event (the journal a plan writes through could not record a write). Anything but
    a `PlanFailure` is a bug in rpd: the event fails (and is dead-lettered) so the rest of the
    run goes on, its reason naming the exception's type only (its message may hold event data)."""
    if isinstance(error, RpdError):
        raise error
    if isinstance(error, PlanFailure):
        return failed_outcome(error, stage)
    return Outcome(
        status="failed",
        reason=f"internal error: {type(error).__name__} while planning (a bug in rpd: please "
        "report it)",
        stage=stage or "plan",
    )
