"""The drivers: a transport failure reaches a plan as an answer (`ApiResponse.failed`), never
thrown into it, and the event fails whatever the plan does with that answer. The synchronous
driver (`drive`) and the async one (`drive_async`) behave alike, and the journal passes the
answer on as it is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from rudder_pipedrive_cli.core.account import fetch_account
from rudder_pipedrive_cli.core.driver import drive, drive_exchange, gave_up
from rudder_pipedrive_cli.core.errors import NeverConnected, PlanFailure, RpdError
from rudder_pipedrive_cli.core.protocol import (
    ApiRequest,
    ApiResponse,
    Learned,
    Outcome,
    Plan,
    Planned,
)
from rudder_pipedrive_cli.http.runner import drive_async

LOOKUP = ApiRequest(method="GET", path="/v1/users/me", endpoint="/v1/users/me", stage="probe")
OUTAGE = PlanFailure("GET /v1/users/me: HTTP 503 after 7 attempts", status=503, retryable=True)
FAILED = Outcome(
    status="failed",
    reason="GET /v1/users/me: HTTP 503 after 7 attempts",
    stage="probe",
    http_status=503,
    retryable=True,
)


def run_sync(plan: Planned) -> Outcome:
    return drive(plan, lambda request: gave_up(OUTAGE, request.stage))


def run_async(plan: Planned) -> Outcome:
    async def send(request: ApiRequest) -> ApiResponse:
        raise OUTAGE  # the http client gives up by raising: drive_async makes it an answer

    return asyncio.run(drive_async(plan, send))


DRIVERS = pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])


@DRIVERS
def test_a_plan_hears_the_failure_as_an_answer(run: Callable[[Plan], Outcome]) -> None:
    heard: list[ApiResponse] = []

    def plan() -> Plan:
        response = yield LOOKUP
        heard.append(response)
        if response.failed is not None:
            raise response.failed
        return Outcome(status="sent")

    assert run(plan()) == FAILED
    assert heard == [ApiResponse(status=0, failed=heard[0].failed)]
    assert heard[0].failed is not None and heard[0].failed.stage == "probe"


@DRIVERS
def test_a_plan_may_not_turn_a_lost_request_into_success(run: Callable[[Plan], Outcome]) -> None:
    def plan() -> Plan:
        yield LOOKUP  # the answer (failed) ignored
        return Outcome(status="sent", writes=("persons created",))

    assert run(plan()) == FAILED


@DRIVERS
def test_a_plan_asking_for_more_after_a_failure_is_ended(run: Callable[[Plan], Outcome]) -> None:
    closed: list[bool] = []

    def plan() -> Plan:
        try:
            yield LOOKUP
            yield LOOKUP
        finally:
            closed.append(True)
        return Outcome(status="sent")

    assert run(plan()) == FAILED
    assert closed == [True]


@DRIVERS
def test_a_plan_failing_in_its_own_words_keeps_them(run: Callable[[Plan], Outcome]) -> None:
    """What the plan learned on the way stays in its outcome (the next events need it)."""

    def plan() -> Plan:
        response = yield LOOKUP
        assert response.failed is not None
        return Outcome(
            status="failed",
            reason=response.failed.reason,
            stage="probe",
            learned=Learned(identities={("person", "u-1"): 7}),
        )

    assert run(plan()) == Outcome(
        status="failed",
        reason="GET /v1/users/me: HTTP 503 after 7 attempts",
        stage="probe",
        learned=Learned(identities={("person", "u-1"): 7}),
    )


@DRIVERS
def test_an_outcome_needs_no_request(run: Callable[[Planned], Outcome]) -> None:
    """An event that needs no request is its outcome (`plan_event`): both drivers return it as
    it is, sending nothing (`run`'s send would fail it)."""
    skipped = Outcome(status="skipped", reason="anonymous")
    assert run(skipped) is skipped


def test_gave_up_names_the_stage_only_when_the_transport_did_not() -> None:
    named = PlanFailure("timed out", stage="create person")
    assert gave_up(named, "probe").failed is named
    unnamed = gave_up(PlanFailure("timed out", redacted="timed out"), "probe").failed
    assert unnamed is not None
    assert (unnamed.reason, unnamed.stage, unnamed.redacted) == ("timed out", "probe", "timed out")


def test_gave_up_naming_the_stage_keeps_the_failure_s_type_and_hint() -> None:
    """A failure the transport gave without a stage is named with the request's, as what it
    was: a `NeverConnected` (a send stops on one before its first event, exit 4) with its hint,
    where it was rebuilt as a plain `PlanFailure` without either. The transport's own is left
    as it was."""
    never = NeverConnected("GET /v1/users/me: connection refused after 1 attempt", hint="h")
    heard = gave_up(never, "check token").failed
    assert type(heard) is NeverConnected
    assert (heard.reason, heard.stage, heard.hint) == (never.reason, "check token", "h")
    assert never.stage == ""


OK = ApiResponse(status=200, data={"id": 7})


def answering_sync(plan: Plan, sent: list[ApiRequest]) -> Outcome:
    return drive(plan, lambda request: sent.append(request) or OK)


def answering_async(plan: Plan, sent: list[ApiRequest]) -> Outcome:
    async def send(request: ApiRequest) -> ApiResponse:
        sent.append(request)
        return OK

    return asyncio.run(drive_async(plan, send))


ANSWERING = pytest.mark.parametrize("run", [answering_sync, answering_async], ids=["sync", "async"])


@ANSWERING
def test_each_request_is_sent_and_its_answer_heard(run: Callable[..., Outcome]) -> None:
    heard: list[ApiResponse] = []

    def plan() -> Plan:
        heard.append((yield LOOKUP))
        heard.append((yield LOOKUP))
        return Outcome(status="sent")

    sent: list[ApiRequest] = []
    assert run(plan(), sent) == Outcome(status="sent")
    assert sent == [LOOKUP, LOOKUP]
    assert heard == [OK, OK]


@ANSWERING
def test_a_bug_in_a_plan_fails_its_event_naming_only_the_type(run: Callable[..., Outcome]) -> None:
    def plan() -> Plan:
        yield LOOKUP
        raise KeyError("u-1@example.com")  # its message may hold event data: not shown

    assert run(plan(), []) == Outcome(
        status="failed",
        reason="internal error: KeyError while planning (a bug in rpd: please report it)",
        stage="probe",
    )


@ANSWERING
def test_an_rpd_error_from_a_plan_stops_the_run(run: Callable[..., Outcome]) -> None:
    def plan() -> Plan:
        yield LOOKUP
        raise RpdError("disk full: state file s.sqlite")  # as the journal raises StateUnusable

    sent: list[ApiRequest] = []
    with pytest.raises(RpdError, match="disk full"):
        run(plan(), sent)
    assert sent == [LOOKUP]


def test_an_exchange_hears_the_failure_as_an_answer_and_raises_it_as_the_transport_said() -> None:
    """The account's exchange (`fetch_account`) hears a request that never connected as an
    answer and raises that failure itself, its type kept: a send stops on it (exit 4,
    send_catalog.py `account_reached`), where before it read the answer as 'HTTP 0'."""
    never = NeverConnected(
        "GET /v1/users/me: connection refused after 7 attempts", stage="check token"
    )
    with pytest.raises(NeverConnected) as stopped:
        drive_exchange(fetch_account(), lambda request: gave_up(never, request.stage))
    assert stopped.value is never
