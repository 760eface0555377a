"""Send times on Pipedrive's clock: the `Date` of each answer bounds the offset from below."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fakes import FakeClock

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.http.server_clock import ServerClock
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]
LOCAL = datetime(2026, 11, 28, 12, 0, 0, 700000, tzinfo=UTC)


def server_clock() -> tuple[FakeClock, ServerClock]:
    """Pipedrive's clock as rpd keeps it, on a fake monotonic clock and its wall clock."""
    clocks = FakeClock(1000.0, wall=LOCAL)
    return clocks, ServerClock(lambda: clocks.wall, clocks)


def test_no_date_yet_is_the_local_clock() -> None:
    _, clock = server_clock()
    assert clock.stamp() == "2026-11-28T12:00:00Z"
    clock.observe(None)
    clock.observe("not a date")
    clock.observe("Sat, 28 Nov 2026 11:00:00")  # no zone: not an HTTP date
    assert clock.origin is None


def test_the_largest_lower_bound_wins() -> None:
    clocks, clock = server_clock()
    clock.observe("Sat, 28 Nov 2026 11:59:50 GMT")  # Pipedrive 10.7 s behind, at most
    assert clock.stamp() == "2026-11-28T11:59:50Z"
    clock.observe("Sat, 28 Nov 2026 11:59:52 GMT")  # a tighter bound
    clock.observe("Sat, 28 Nov 2026 11:59:40 GMT")  # a looser one changes nothing
    assert clock.stamp() == "2026-11-28T11:59:52Z"
    clocks.advance(3.5)
    assert clock.stamp() == "2026-11-28T11:59:55Z"


def test_a_clock_behind_moves_send_times_forward() -> None:
    _, clock = server_clock()
    clock.observe("Sat, 28 Nov 2026 12:00:05 GMT")
    assert clock.stamp() == "2026-11-28T12:00:05Z"


def test_a_wall_clock_that_steps_during_the_run_changes_nothing() -> None:
    # An NTP correction or a resumed VM moves the wall clock; send times follow Pipedrive's.
    clocks, clock = server_clock()
    clock.observe("Sat, 28 Nov 2026 12:00:00 GMT")
    clocks.wall += timedelta(seconds=30)
    clocks.advance(2)
    assert clock.stamp() == "2026-11-28T12:00:02Z"
    clock.observe("Sat, 28 Nov 2026 12:00:02 GMT")
    clocks.wall -= timedelta(minutes=5)
    clocks.advance(1)
    assert clock.stamp() == "2026-11-28T12:00:03Z"


def test_the_sandbox_dates_its_answers_with_the_clock_of_its_records(
    make_sandbox: MakeSandbox,
) -> None:
    # On a clock the test holds, exactly: compared with the real clock within 2 s, it failed
    # when a loaded machine stalled a second or two between the answer and the comparison.
    sandbox = make_sandbox(plan="unlimited", clock=FakeClock(1_780_000_000.7))
    answer = httpx.post(
        f"{sandbox.url}/api/v2/persons",
        headers={"x-api-token": "sandbox-token"},
        json={"name": "A"},
    )
    assert answer.headers["date"] == "Thu, 28 May 2026 20:26:40 GMT"
    assert answer.json()["data"]["update_time"] == "2026-05-28T20:26:40Z"


@pytest.mark.parametrize("token", ["SEKRÉT123", "tok\u00a0en"])
def test_a_token_that_cannot_go_in_a_header_is_a_usage_error(token: str) -> None:
    with pytest.raises(UsageError) as caught:
        PipedriveClient(token=token, base_url="http://127.0.0.1:9")
    assert caught.value.message == "the Pipedrive API token is empty or malformed"
    assert token not in f"{caught.value.message} {caught.value.hint}"
