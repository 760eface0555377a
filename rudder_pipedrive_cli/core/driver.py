"""Run a plan against a synchronous `send` function. The async runner mirrors this loop."""

from __future__ import annotations

from collections.abc import Callable

from rudder_pipedrive_cli.core.errors import PlanFailure, RpdError
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan


def failed_outcome(failure: PlanFailure, stage: str) -> Outcome:
    return Outcome(
        status="failed",
        reason=failure.reason,
        stage=failure.stage or stage,
        http_status=failure.status,
        retryable=failure.retryable,
        redacted=failure.redacted,
    )


def bug_outcome(error: Exception, stage: str) -> Outcome:
    """A plan that raised something other than `PlanFailure`: a bug in rpd. The event fails (and
    is dead-lettered) so the rest of the run goes on; the reason names the exception's type only,
    as its message may hold event data."""
    return Outcome(
        status="failed",
        reason=f"internal error: {type(error).__name__} while planning (a bug in rpd: please "
        "report it)",
        stage=stage or "plan",
    )


class Stepper:
    """A plan, one request at a time: the bookkeeping `drive` and the async runner share.

    `first()` and `answer(response)` give the next request, or None when the plan has ended,
    and then `outcome` holds how it ended; a `PlanFailure` from the plan fails this event only,
    and so does any other exception (`bug_outcome`) but an `RpdError`, which stops the run
    (the journal a plan writes through could not record a write: sending it would be blind).
    """

    __slots__ = ("outcome", "plan", "stage")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.stage = ""
        self.outcome = Outcome(status="failed", reason="the plan did not run")

    def first(self) -> ApiRequest | None:
        return self._advance(None)

    def answer(self, response: ApiResponse) -> ApiRequest | None:
        return self._advance(response)

    def _advance(self, response: ApiResponse | None) -> ApiRequest | None:
        """Start the plan (None) or hand it `response`: its next request, or None at its end."""
        try:
            request = next(self.plan) if response is None else self.plan.send(response)
        except StopIteration as stop:
            self.outcome = stop.value
            return None
        except PlanFailure as failure:
            self.outcome = failed_outcome(failure, self.stage)
            return None
        except RpdError:  # stops the run, not only this event (the state file is unusable)
            raise
        except Exception as error:  # a bug fails its event, not the whole run
            self.outcome = bug_outcome(error, self.stage)
            return None
        self.stage = request.stage
        return request

    def failed(self, failure: PlanFailure) -> Outcome:
        """The transport gave up on the current request: the plan hears it where it waits, and
        the event fails with what the plan learned on the way (a person it created, a create
        whose outcome stays unknown), which the next events of that identity need."""
        failure = PlanFailure(
            failure.reason,
            stage=failure.stage or self.stage,
            status=failure.status,
            retryable=failure.retryable,
            redacted=failure.redacted,
        )
        try:
            self.plan.throw(failure)
        except StopIteration as stop:
            self.outcome = stop.value
        except PlanFailure as again:
            self.outcome = failed_outcome(again, self.stage)
        except RpdError:
            raise
        except Exception as error:  # a bug fails its event, not the whole run
            self.outcome = bug_outcome(error, self.stage)
        else:  # the plan asked for more after its request failed: end it
            self.plan.close()
            self.outcome = failed_outcome(failure, self.stage)
        if self.outcome.status != "failed":  # a plan may not turn a lost request into success
            self.outcome = failed_outcome(failure, self.stage)
        return self.outcome


def drive(plan: Plan, send: Callable[[ApiRequest], ApiResponse]) -> Outcome:
    """Feed each request of `plan` to `send` and return the plan's outcome.

    A `PlanFailure` raised by the plan or by `send` fails this event only. The loop is
    `Stepper`'s, inlined: dry-run drives every event through it, and the object and its method
    calls were a share of the profile (benchmarks/plan_throughput.py).
    """
    stage = ""
    response: ApiResponse | None = None
    while True:
        try:
            request = next(plan) if response is None else plan.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except PlanFailure as failure:
            return failed_outcome(failure, stage)
        except RpdError:  # stops the run, not only this event (the state file is unusable)
            raise
        except Exception as error:  # a bug fails its event, not the whole run
            return bug_outcome(error, stage)
        stage = request.stage
        try:
            response = send(request)
        except PlanFailure as failure:
            steps = Stepper(plan)
            steps.stage = stage
            return steps.failed(failure)
