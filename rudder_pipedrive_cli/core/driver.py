"""Run a plan against a synchronous `send` function. The async runner mirrors this loop."""

from __future__ import annotations

from collections.abc import Callable

from rudder_pipedrive_cli.core.errors import PlanFailure, RpdError
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Planned


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
    the failure naming the request's stage when the transport did not."""
    if not failure.stage:
        failure = PlanFailure(
            failure.reason,
            stage=stage,
            status=failure.status,
            retryable=failure.retryable,
            redacted=failure.redacted,
        )
    return ApiResponse(status=0, failed=failure)


def drive(plan: Planned, send: Callable[[ApiRequest], ApiResponse]) -> Outcome:
    """Feed each request of `plan` to `send` and return the plan's outcome: the synchronous
    driver (dry-run, tests); `http.runner.drive_async` is the same loop with an async `send`.
    `send` answers every request with a value, a transport failure too (`gave_up`). An event
    that needs no request (`plan_event`) is its outcome already: returned as it is.

    A `PlanFailure` from the plan fails this event only, and so does any other exception (a bug)
    but an `RpdError`, which stops the run (`raised`). After an answer that says the transport
    gave up (`failed`), the event fails whatever the plan does: it may not turn a lost request
    into success, nor ask for more. What it learned on the way (a person it created, a create
    whose outcome stays unknown) is in its failed outcome, for the next events of that identity.
    """
    if type(plan) is Outcome:
        return plan
    response: ApiResponse | None = None
    stage = ""
    while True:
        try:
            request = next(plan) if response is None else plan.send(response)
        except StopIteration as stop:
            outcome: Outcome = stop.value
            break
        except Exception as error:  # a bug fails its event, not the whole run (`raised`)
            outcome = raised(error, stage)
            break
        if response is not None and response.failed is not None:
            plan.close()  # it asked for more after its request failed: end it
            return failed_outcome(response.failed, stage)
        stage = request.stage
        response = send(request)
    if response is None or response.failed is None:  # most plans: no call to settle
        return outcome
    return settled(outcome, response, stage)


def settled(outcome: Outcome, last: ApiResponse | None, stage: str) -> Outcome:
    """The event's outcome once its plan ended: failed when its last answer said the transport
    gave up, whatever the plan made of it (both drivers end with this)."""
    if last is not None and last.failed is not None and outcome.status != "failed":
        return failed_outcome(last.failed, stage)
    return outcome


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
