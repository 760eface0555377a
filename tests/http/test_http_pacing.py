"""Pacing: a sliding log per burst window, a search window, and corrections from the headers."""

from __future__ import annotations

import pytest
from fakes import FakeClock
from helpers_http import get, run, search

from rudder_pipedrive_cli.core.costs import WINDOW_S
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.http.pacing import (
    MAX_SLACK_S,
    SLACK_S,
    SLACK_STEP_S,
    Pacer,
    RateHeaders,
    RollingWindow,
    burst_limit,
)

SPAN = WINDOW_S + SLACK_S


def test_plans_set_the_burst_limit() -> None:
    assert [burst_limit(p) for p in ("lite", "growth", "premium", "ultimate", "unlimited")] == [
        20,
        40,
        100,
        120,
        None,
    ]
    assert burst_limit(" Growth ") == 40
    with pytest.raises(UsageError) as caught:
        burst_limit("gold")
    assert caught.value.hint == "use one of: lite, growth, premium, ultimate, unlimited"


def test_a_full_window_waits_until_its_oldest_send_leaves_it() -> None:
    window = RollingWindow(3)
    for t in (0.0, 0.5, 1.0):
        assert window.delay(t) == 0.0
        window.record(t)
    assert window.delay(1.0) == pytest.approx(SPAN - 1.0)
    assert window.delay(1.5) == pytest.approx(SPAN - 1.5)
    assert window.delay(SPAN) == 0.0
    window.record(SPAN)
    assert window.delay(SPAN) == pytest.approx(0.5)


def test_the_pacer_never_exceeds_the_window_and_uses_nearly_all_of_it() -> None:
    time = FakeClock(now=0.0)
    pacer = Pacer("growth", clock=time, sleep=time.sleep)
    sent: list[float] = []

    async def go() -> None:
        for _ in range(400):
            await pacer.acquire(get())
            sent.append(time.now)

    run(go())
    for i, t in enumerate(sent):
        in_window = [s for s in sent[: i + 1] if s > t - WINDOW_S]
        assert len(in_window) <= 40
    rate = len(sent) / (sent[-1] - sent[0] + SPAN)
    assert rate >= 0.95 * 40 / WINDOW_S


def test_searches_count_in_both_windows_and_other_requests_pass_a_full_search_window() -> None:
    time = FakeClock(now=0.0)
    pacer = Pacer("growth", clock=time, sleep=time.sleep)

    async def go() -> None:
        for _ in range(10):
            await pacer.acquire(search())
        assert time.sleeps == []
        await pacer.acquire(get())  # the burst window still has room
        assert time.sleeps == []
        assert pacer.burst is not None and len(pacer.burst.sent) == 11
        await pacer.acquire(search())  # the search window does not

    run(go())
    assert time.sleeps == [pytest.approx(SPAN)]


def test_unlimited_never_waits_until_refused() -> None:
    time = FakeClock(1000.0)
    pacer = Pacer("unlimited", clock=time, sleep=time.sleep)

    async def go() -> None:
        for _ in range(1000):
            await pacer.acquire(search())
        pacer.hold(get(), RateHeaders(), 5, everything=True)
        pacer.observe(get(), RateHeaders(remaining=0, reset=2))
        await pacer.acquire(get())

    run(go())
    assert time.sleeps == []


def test_fewer_remaining_than_expected_counts_someone_elses_requests() -> None:
    window = RollingWindow(40)
    window.record(10.0)
    window.observe(RateHeaders(limit=40, remaining=9, reset=2), now=10.0)
    assert len(window.sent) == 31  # 1 of ours + 30 the server saw from elsewhere
    for _ in range(9):
        window.record(10.0)
    # The others' requests leave the window when the server said it resets, ours a span later.
    assert window.delay(10.0) == pytest.approx(2.0)


def test_remaining_zero_holds_until_the_reset() -> None:
    window = RollingWindow(40)
    window.observe(RateHeaders(limit=40, remaining=0, reset=1), now=5.0)
    assert window.delay(5.0) == pytest.approx(1.0)
    assert window.delay(6.0) == 0.0


def test_more_remaining_than_expected_changes_nothing() -> None:
    window = RollingWindow(40)
    for _ in range(5):
        window.record(1.0)
    window.observe(RateHeaders(limit=40, remaining=38, reset=2), now=1.0)
    assert len(window.sent) == 5


def test_the_servers_limit_replaces_the_configured_one() -> None:
    window = RollingWindow(40)
    window.observe(RateHeaders(limit=20), now=0.0)
    assert window.limit == 20


def test_hold_stops_every_send_until_it_ends() -> None:
    window = RollingWindow(40)
    window.hold(3.0, 2.0)
    window.hold(3.0, 1.0)  # a shorter hold does not shorten the longer one
    assert window.delay(3.5) == pytest.approx(1.5)
    assert window.delay(5.0) == 0.0


def test_rate_headers_parse_leniently() -> None:
    parsed = RateHeaders.parse(
        {
            "x-ratelimit-limit": "40",
            "x-ratelimit-remaining": "x",
            "x-ratelimit-reset": "-1",
            "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT",
        }
    )
    assert parsed == RateHeaders(limit=40)
    assert parsed.wait_hint is None
    assert RateHeaders(reset=1, retry_after=3).wait_hint == 3
    assert RateHeaders(reset=2).wait_hint == 2


def test_a_request_that_left_late_holds_its_slot_a_window_after_it_left() -> None:
    time = FakeClock(now=0.0)
    pacer = Pacer("lite", clock=time, sleep=time.sleep)

    async def go() -> None:
        tickets = [await pacer.acquire(get()) for _ in range(20)]
        for ticket in tickets[:-1]:
            pacer.sent(ticket)
        time.now = 0.4  # the client was busy: the last one only left now
        pacer.sent(tickets[-1])
        time.now = 0.9
        pacer.sent(tickets[-1])  # only the first report counts
        time.now = SPAN
        await pacer.acquire(get())  # the slots of the 19 prompt ones are free again...
        assert time.sleeps == []
        for _ in range(18):
            await pacer.acquire(get())
        await pacer.acquire(get())  # ...but not the one that left at 0.4

    run(go())
    assert time.sleeps == [pytest.approx(0.4)]


def test_each_429_widens_the_margin_up_to_a_ceiling() -> None:
    time = FakeClock(now=0.0)
    pacer = Pacer("growth", clock=time, sleep=time.sleep)
    assert pacer.burst is not None
    pacer.hold(get(), RateHeaders(), 0.0, widen=True)
    assert pacer.burst.span == pytest.approx(SPAN + SLACK_STEP_S)
    for _ in range(20):
        pacer.hold(get(), RateHeaders(), 0.0, widen=True)
    assert pacer.burst.span == pytest.approx(WINDOW_S + MAX_SLACK_S)
    assert pacer.search is not None and pacer.search.span == pytest.approx(SPAN)


def test_search_answers_correct_the_window_their_headers_describe() -> None:
    time = FakeClock(now=0.0)
    pacer = Pacer("growth", clock=time, sleep=time.sleep)
    assert pacer.burst is not None and pacer.search is not None
    pacer.observe(search(), RateHeaders(limit=10, remaining=3, reset=1))
    assert (pacer.search.limit, len(pacer.search.sent), len(pacer.burst.sent)) == (10, 7, 0)
    # Refused because the burst window was full: the headers are the burst window's.
    pacer.observe(search(), RateHeaders(limit=40, remaining=0, reset=1))
    assert (pacer.search.limit, pacer.burst.limit, len(pacer.burst.sent)) == (10, 40, 40)
    pacer.observe(get(), RateHeaders(limit=20, remaining=19, reset=2))
    assert pacer.burst.limit == 20


def test_a_refusal_holds_the_window_that_refused() -> None:
    time = FakeClock(now=0.0)
    pacer = Pacer("growth", clock=time, sleep=time.sleep)
    assert pacer.burst is not None and pacer.search is not None
    pacer.hold(search(), RateHeaders(limit=10, remaining=0, reset=1), 1.0)
    assert (pacer.search.delay(0.0), pacer.burst.delay(0.0)) == (1.0, 0.0)
    pacer.hold(search(), RateHeaders(limit=40, remaining=0, reset=2), 2.0)
    assert (pacer.search.delay(0.0), pacer.burst.delay(0.0)) == (1.0, 2.0)
    pacer.hold(get(), RateHeaders(), 3.0, everything=True)
    assert (pacer.search.delay(0.0), pacer.burst.delay(0.0)) == (3.0, 3.0)


def test_unlimited_refused_with_a_limit_paces_by_it_from_then_on() -> None:
    # --plan unlimited against an account that has limits: the first 429 teaches the window.
    time = FakeClock(now=0.0)
    pacer = Pacer("unlimited", clock=time, sleep=time.sleep)
    pacer.hold(search(), RateHeaders(limit=10, remaining=0, reset=1), 1.0, widen=True)
    assert pacer.burst is None and pacer.search is not None  # a search limit: searches only
    pacer.hold(get(), RateHeaders(limit=20, remaining=0, reset=2), 2.0, widen=True)
    assert pacer.burst is not None and pacer.burst.limit == 20
    sent: list[float] = []

    async def go() -> None:
        for _ in range(100):
            await pacer.acquire(get())
            sent.append(time.now)

    run(go())
    assert sent[0] >= 2.0  # held by the refusal first
    for i, t in enumerate(sent):
        assert len([s for s in sent[: i + 1] if s > t - WINDOW_S]) <= 20


def test_unlimited_refused_with_a_limit_no_plan_has_stays_unpaced() -> None:
    pacer = Pacer("unlimited")
    pacer.hold(get(), RateHeaders(limit=10_000, remaining=0, reset=1), 1.0, widen=True)
    assert pacer.burst is None and pacer.search is None
