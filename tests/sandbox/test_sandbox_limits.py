"""Rate limits over real HTTP, on a clock the test moves: burst, search, daily budget, edge 403."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from fakes import FakeClock
from sandbox_support import create_person, error, search

from rudder_pipedrive_cli.sandbox import Sandbox, limits
from rudder_pipedrive_cli.sandbox.limits import Limiter

Client = Callable[..., httpx.Client]


def rate_headers(response: httpx.Response) -> tuple[str, str, str]:
    h = response.headers
    return h["x-ratelimit-limit"], h["x-ratelimit-remaining"], h["x-ratelimit-reset"]


def too_many(message: str) -> dict[str, object]:
    return {**error(f"Request over limit: {message}"), "errorCode": 429}


@pytest.fixture
def lite(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock, client_for: Client
) -> httpx.Client:
    return client_for(make_sandbox(plan="lite", clock=clock))


def test_a_burst_beyond_the_window_gets_429s_until_reset_seconds_pass(
    lite: httpx.Client, clock: FakeClock
) -> None:
    answers = [lite.get("/v1/users/me") for _ in range(20)]
    assert [r.status_code for r in answers] == [200] * 20
    assert [rate_headers(r)[:2] for r in answers] == [("20", str(19 - i)) for i in range(20)]
    assert rate_headers(answers[0])[2] == "2"
    refused = lite.get("/v1/users/me")
    assert refused.status_code == 429
    assert refused.json() == too_many("rate limit of the 2-second window reached")
    assert rate_headers(refused) == ("20", "0", "2")
    clock.advance(1.5)
    assert rate_headers(lite.get("/v1/users/me")) == ("20", "0", "1")
    clock.advance(int(refused.headers["x-ratelimit-reset"]) - 1.5)
    cleared = lite.get("/v1/users/me")
    assert (cleared.status_code, rate_headers(cleared)[:2]) == (200, ("20", "19"))


def test_the_window_rolls_request_by_request(lite: httpx.Client, clock: FakeClock) -> None:
    for _ in range(10):
        lite.get("/v1/users/me")
    clock.advance(1)
    for _ in range(10):
        lite.get("/v1/users/me")
    assert lite.get("/v1/users/me").status_code == 429
    clock.advance(1)  # the first ten have left the window, the last ten have not
    answers = [lite.get("/v1/users/me") for _ in range(11)]
    assert [r.status_code for r in answers] == [200] * 10 + [429]
    assert rate_headers(answers[-1]) == ("20", "0", "1")


def test_every_answer_carries_the_headers(lite: httpx.Client) -> None:
    for response in (
        lite.get("/api/v2/persons/99"),
        lite.post("/api/v2/persons", json={"name": 1}),
        lite.get("/nowhere"),
    ):
        assert response.status_code in (400, 404)
        assert rate_headers(response)[0] == "20"


def test_search_has_its_own_window_of_ten(lite: httpx.Client, clock: FakeClock) -> None:
    answers = [search(lite, "u-1") for _ in range(10)]
    assert [(r.status_code, rate_headers(r)[:2]) for r in answers] == [
        (200, ("10", str(9 - i))) for i in range(10)
    ]
    refused = search(lite, "u-1")
    assert (refused.status_code, rate_headers(refused)) == (429, ("10", "0", "2"))
    assert refused.json() == too_many("search rate limit of the 2-second window reached")
    other = lite.get("/v1/users/me")  # other endpoints still have room in the burst window
    assert (other.status_code, rate_headers(other)[:2]) == (200, ("20", "9"))
    clock.advance(2)
    assert search(lite, "u-1").status_code == 200


@pytest.mark.parametrize(
    ("plan", "seats", "burst", "budget"),
    [
        ("lite", 1, 20, 30_000),
        ("growth", 1, 40, 60_000),
        ("premium", 2, 100, 300_000),
        ("ultimate", 3, 120, 630_000),
    ],
)
def test_plan_limits(plan: str, seats: int, burst: int, budget: int) -> None:
    limiter = Limiter(plan, seats)
    assert (limiter.burst.limit, limiter.search.limit, limiter.budget) == (burst, 10, budget)


def test_a_spent_daily_budget_is_a_429_with_room_left_in_the_window(
    make_sandbox: Callable[..., Sandbox],
    clock: FakeClock,
    client_for: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "DAILY_TOKENS", 10)  # growth x 2 seats: 40 tokens a day
    sandbox = make_sandbox(plan="growth", seats=2, clock=clock)
    api = client_for(sandbox)
    answers = [api.get("/v1/users/me") for _ in range(21)]  # 2 tokens each
    assert [r.status_code for r in answers] == [200] * 20 + [429]
    spent = answers[-1]
    assert spent.json() == too_many("daily API token budget spent")
    # Remaining > 0 tells the client that the burst window is not the reason; reset is midnight.
    assert rate_headers(spent) == ("40", "20", str(86_400 - 73_600))
    assert sandbox.stats()["tokens"] == 40
    clock.advance(2)
    assert api.get("/v1/users/me").status_code == 429
    clock.advance(int(spent.headers["x-ratelimit-reset"]))  # the next UTC day
    assert api.get("/v1/users/me").status_code == 200


def test_each_operation_is_charged_its_token_cost(lite: httpx.Client) -> None:
    create_person(lite)  # 5
    search(lite, "x")  # 20
    lite.get("/api/v2/persons/1")  # 1
    lite.put("/v1/persons/1/merge", json={"merge_with_id": 1})  # 40, even though it is a 400
    lite.get("/v1/leadLabels")  # 10
    assert lite.get("/_sandbox/stats").json()["tokens"] == 76


def test_hammering_through_429s_gets_the_edge_html_403(
    lite: httpx.Client, clock: FakeClock
) -> None:
    for _ in range(20):
        lite.get("/v1/users/me")
    refused = [lite.get("/v1/users/me") for _ in range(limits.EDGE_STRIKES)]
    assert {r.status_code for r in refused} == {429}
    blocked = lite.get("/v1/users/me")
    assert blocked.status_code == 403
    assert blocked.headers["content-type"].startswith("text/html")
    assert "<title>403 Forbidden</title>" in blocked.text
    clock.advance(limits.EDGE_BLOCK_S - 0.5)  # the window has long cleared; the block has not
    assert lite.get("/v1/users/me").status_code == 403
    clock.advance(0.5)
    assert lite.get("/v1/users/me").status_code == 200
    stats = lite.get("/_sandbox/stats").json()
    assert (stats["rate_limited"], stats["forbidden"]) == (limits.EDGE_STRIKES, 2)


def test_a_client_that_backs_off_is_never_blocked(lite: httpx.Client, clock: FakeClock) -> None:
    for _ in range(5):
        for _ in range(20):
            lite.get("/v1/users/me")
        assert lite.get("/v1/users/me").status_code == 429
        clock.advance(2)
    assert lite.get("/v1/users/me").status_code == 200


def test_unlimited_never_refuses_but_sends_plausible_headers(timed: httpx.Client) -> None:
    # On the clock the test holds: on the real one, 50 searches taking over a second (a loaded
    # machine) left the first under a second in the window, and the reset said "1".
    answers = [search(timed, "x") for _ in range(50)]
    assert {r.status_code for r in answers} == {200}
    limit, remaining, reset = rate_headers(answers[-1])
    assert (limit, int(remaining) > 0, reset) == ("10000", True, "2")


@pytest.mark.slow
def test_on_the_real_clock_waiting_reset_seconds_clears_a_full_window(
    make_sandbox: Callable[..., Sandbox], client_for: Client
) -> None:
    api = client_for(make_sandbox(plan="lite"))
    # Filled until refused: the 21st request, or a later one where a loaded machine took over
    # 2 s for the first 20 (the earliest had left the window by then).
    admitted = 0
    while (refused := api.get("/v1/users/me")).status_code == 200 and admitted < 200:
        admitted += 1
    assert admitted >= 20
    limit, remaining, reset = rate_headers(refused)
    assert (refused.status_code, limit, remaining, int(reset) in (1, 2)) == (429, "20", "0", True)
    time.sleep(int(reset))
    assert api.get("/v1/users/me").status_code == 200
