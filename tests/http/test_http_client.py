"""PipedriveClient.send against scripted answers: statuses, retries, waits, unknown writes."""

from __future__ import annotations

from pathlib import Path

import certifi
import httpx
import orjson
import pytest
from fakes import FakeClock
from helpers_http import (
    SENT_AT,
    TOKEN,
    Script,
    client_for,
    edge_403,
    error,
    get,
    ok,
    run,
    search,
    send_with,
    write,
)

from rudder_pipedrive_cli.core.errors import (
    AuthRefused,
    PlanFailure,
    RateLimitStop,
    Unreachable,
    UsageError,
)
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.http.client import (
    UNREACHABLE_HINT,
    PipedriveClient,
    envelope,
    trusted_tls,
)

# With random() fixed at 0.5: backoff n waits 0.75 * min(30, 0.5 * 2**(n-1)); a rate-limit wait
# adds 0.5 * 0.25 of jitter to what the server asked for.
BACKOFF = [0.375, 0.75, 1.5, 3.0, 6.0, 12.0]
RATE_JITTER = 0.125


def test_success_returns_the_envelope_and_sends_the_token_only_in_the_header() -> None:
    script = Script(
        [
            httpx.Response(
                200,
                json={"success": True, "data": {"id": 7}, "additional_data": {"next_cursor": "c2"}},
            )
        ]
    )
    time, tally = FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), search()))
    assert (response.status, response.data, response.additional_data) == (
        200,
        {"id": 7},
        {"next_cursor": "c2"},
    )
    assert response.error == "" and response.sent_at == "2026-11-28T13:00:05Z"
    [sent] = script.seen
    assert sent.headers["x-api-token"] == TOKEN
    assert TOKEN not in str(sent.url)
    assert sent.url.host == "acme.pipedrive.com" and sent.url.path == "/api/v2/itemSearch/field"
    assert dict(sent.url.params) == {
        "term": "u-1",
        "entity_type": "person",
        "field": "abc",
        "match": "exact",
    }
    assert tally.requests == {"GET /api/v2/itemSearch/field": 1} and tally.tokens == 20
    assert time.sleeps == [] and tally.retries == 0


def test_a_write_body_goes_as_json() -> None:
    script = Script([ok({"id": 9}, status=201)])
    response = run(
        send_with(
            client_for(script, FakeClock(1000.0)), write("POST", {"name": "Ada", "visible_to": 3})
        )
    )
    assert response.status == 201 and response.data == {"id": 9}
    [sent] = script.seen
    assert sent.method == "POST" and sent.headers["content-type"] == "application/json"
    assert orjson.loads(sent.content) == {"name": "Ada", "visible_to": 3}


@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_a_definitive_4xx_goes_to_the_plan_after_one_attempt(status: int) -> None:
    answer = httpx.Response(
        status,
        json={
            "success": False,
            "error": "Validation failed",
            "error_info": "emails: invalid",
            "data": None,
        },
    )
    script, time = Script([answer]), FakeClock(1000.0)
    response = run(send_with(client_for(script, time), write("POST")))
    assert response.status == status and not response.ok
    assert response.error == "Validation failed (emails: invalid)"
    assert len(script.seen) == 1 and time.sleeps == []


def test_an_envelope_without_pipedrive_s_words_has_no_error_text() -> None:
    # Every message shows the status itself: "HTTP 404" here made it "answered HTTP 404 HTTP 404".
    assert envelope(404, b"nope", False, "").error == ""
    assert envelope(404, b"", True, "").error == ""
    assert envelope(200, b"", True, "").error == ""
    assert envelope(400, b"{not json", True, "").error == ""
    assert envelope(404, b'{"success": false}', True, "").error == ""
    assert envelope(404, b'{"error": "no route"}', True, "").error == "no route"


@pytest.mark.parametrize("answer", [error(401, "unauthorized access"), error(403, "forbidden")])
def test_401_and_a_json_403_refuse_the_token(answer: httpx.Response) -> None:
    script = Script([answer])
    with pytest.raises(AuthRefused) as caught:
        run(send_with(client_for(script, FakeClock(1000.0)), get()))
    assert caught.value.message == f"Pipedrive refused the API token ({answer.status_code})"
    assert caught.value.hint == "check PIPEDRIVE_API_TOKEN / [pipedrive] api_token"
    assert len(script.seen) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_a_server_error_on_get_is_retried_with_backoff(status: int) -> None:
    script, time, tally = Script([error(status), ok({"id": 7})]), FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), get()))
    assert response.status == 200
    assert len(script.seen) == 2 and time.sleeps == [BACKOFF[0]]
    assert tally.retries == 1 and tally.requests == {"GET /api/v2/persons/{id}": 2}


def test_retries_are_bounded_and_then_fail_the_event() -> None:
    script, time, tally = Script([error(503)] * 3), FakeClock(1000.0), Tally()
    with pytest.raises(PlanFailure) as caught:
        run(send_with(client_for(script, time, max_retries=2, tally=tally), get()))
    failure = caught.value
    assert failure.reason == "GET /api/v2/persons/{id}: HTTP 503 after 3 attempts"
    assert (failure.stage, failure.status, failure.retryable) == ("get person", 503, True)
    assert time.sleeps == BACKOFF[:2] and tally.retries == 2 and len(script.seen) == 3


def test_six_retries_by_default_with_exponential_waits() -> None:
    script, time = Script([httpx.ConnectError("refused")] * 7), FakeClock(1000.0)
    with pytest.raises(PlanFailure) as caught:
        run(send_with(client_for(script, time), write("POST")))
    assert caught.value.reason == "POST /api/v2/persons: ConnectError: refused after 7 attempts"
    assert caught.value.status is None
    assert time.sleeps == BACKOFF


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_server_error_on_a_create_or_merge_is_an_unknown_outcome(
    status: int, method: str
) -> None:
    script, time, tally = Script([error(status)]), FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), write(method)))
    assert response.unknown and response.status == 0
    assert response.sent_at == "2026-11-28T13:00:05Z" and response.error == f"HTTP {status}"
    assert len(script.seen) == 1 and time.sleeps == [] and sum(tally.requests.values()) == 1


@pytest.mark.parametrize(
    "lost",
    [
        httpx.ReadError("connection reset by peer"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.WriteError("broken pipe"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_write_lost_after_sending_is_not_repeated(lost: Exception, method: str) -> None:
    script, time, tally = Script([lost]), FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), write(method)))
    assert response.unknown and response.sent_at == SENT_AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert type(lost).__name__ in response.error
    assert len(script.seen) == 1 and tally.retries == 0
    assert sum(tally.requests.values()) == 1  # it may have reached Pipedrive: it is counted


@pytest.mark.parametrize(
    "lost",
    [
        httpx.ReadError("reset"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected"),
    ],
)
@pytest.mark.parametrize("request_", [get(), write("PATCH")], ids=["GET", "PATCH"])
def test_an_idempotent_request_lost_after_sending_is_repeated(
    lost: Exception, request_: object
) -> None:
    script, time, tally = Script([lost, ok({"id": 3})]), FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), request_))  # type: ignore[arg-type]
    assert response.status == 200 and len(script.seen) == 2
    assert time.sleeps == [BACKOFF[0]] and tally.retries == 1
    assert sum(tally.requests.values()) == 2


@pytest.mark.parametrize(
    "not_sent",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("pool")],
)
def test_a_write_that_surely_was_not_sent_is_repeated(not_sent: Exception) -> None:
    script, time, tally = Script([not_sent, ok({"id": 9}, status=201)]), FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), write("POST")))
    assert response.status == 201 and len(script.seen) == 2 and time.sleeps == [BACKOFF[0]]
    assert tally.requests == {"POST /api/v2/persons": 1}  # only the one that left counts


def test_a_429_waits_for_the_window_reset_then_retries() -> None:
    limited = error(
        429,
        "Rate limit exceeded",
        x_ratelimit_remaining="0",
        x_ratelimit_reset="1",
        x_ratelimit_limit="40",
    )
    script, time, tally = Script([limited, ok({"id": 7})]), FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), get()))
    assert response.status == 200
    assert time.sleeps == [1 + RATE_JITTER]
    assert tally.rate_limited == 1 and tally.retries == 1


def test_retry_after_is_honoured() -> None:
    script, time = (
        Script([error(429, retry_after="3"), error(429, retry_after="60"), ok()]),
        FakeClock(1000.0),
    )
    run(send_with(client_for(script, time), get()))
    assert time.sleeps == [3 + RATE_JITTER, 60 + RATE_JITTER]


def test_a_wait_longer_than_a_minute_stops_the_run() -> None:
    script, time = Script([error(429, retry_after="7200")]), FakeClock(1000.0)
    with pytest.raises(RateLimitStop) as caught:
        run(send_with(client_for(script, time), get()))
    assert caught.value.message == "API rate limit reached (HTTP 429): Pipedrive asks to wait 7200s"
    assert time.sleeps == []


def test_429s_do_not_spend_the_retry_budget() -> None:
    limited = error(429, x_ratelimit_remaining="0", x_ratelimit_reset="1")
    script, time = Script([limited, ok()]), FakeClock(1000.0)
    assert run(send_with(client_for(script, time, max_retries=0), get())).status == 200


def test_a_429_with_requests_left_in_the_window_means_the_daily_budget_is_spent() -> None:
    daily = error(429, x_ratelimit_remaining="12", x_ratelimit_reset="40000")
    script, time, tally = Script([daily]), FakeClock(1000.0), Tally()
    with pytest.raises(RateLimitStop) as caught:
        run(send_with(client_for(script, time, tally=tally), get()))
    assert caught.value.message.startswith("daily API token budget spent")
    assert caught.value.hint == "rerun the same command later to resume"
    assert len(script.seen) == 1 and time.sleeps == [] and tally.rate_limited == 1


def test_repeated_429s_after_waiting_a_whole_window_stop_the_run() -> None:
    limited = error(429, x_ratelimit_remaining="0", x_ratelimit_reset="1")
    script, time, tally = Script([limited] * 5), FakeClock(1000.0), Tally()
    with pytest.raises(RateLimitStop) as caught:
        run(send_with(client_for(script, time, tally=tally), get()))
    # The first wait is what the server asked; later ones a whole window; refused three times
    # after a whole window: most likely the budget, though the answer does not say so.
    assert time.sleeps == [1 + RATE_JITTER] + [2 + RATE_JITTER] * 3
    assert len(script.seen) == 5 and tally.rate_limited == 5
    assert caught.value.message == (
        "Pipedrive keeps refusing requests for the rate limit (the daily budget is likely spent, "
        "or another client shares this token's limit) (HTTP 429 again after waiting 2s)"
    )


def test_the_edge_html_403_backs_off_a_window_and_is_not_an_auth_error() -> None:
    script, time, tally = Script([edge_403(), ok({"id": 1})]), FakeClock(1000.0), Tally()
    response = run(send_with(client_for(script, time, tally=tally), get()))
    assert response.status == 200 and time.sleeps == [2 + RATE_JITTER]
    assert tally.rate_limited == 1
    # Two requests, one charged: the edge spends none of the budget (nor does the sandbox's).
    assert (sum(tally.requests.values()), sum(tally.uncharged.values())) == (2, 1)


def test_a_repeated_edge_403_stops_the_run() -> None:
    script, time = Script([edge_403()] * 4), FakeClock(1000.0)
    with pytest.raises(RateLimitStop) as caught:
        run(send_with(client_for(script, time), write("POST")))
    assert time.sleeps == [2 + RATE_JITTER] * 3 and len(script.seen) == 4
    # An edge 403 proves less than a 429 would: it does not claim the budget is spent.
    assert caught.value.message == (
        "Pipedrive's edge keeps refusing requests (the daily budget may be spent) "
        "(HTTP 403 again after waiting 2s)"
    )


def test_a_server_error_between_429s_resets_the_strikes() -> None:
    limited = error(429, x_ratelimit_remaining="0", x_ratelimit_reset="2")
    script, time = Script([limited, limited, error(500), limited, limited, ok()]), FakeClock(1000.0)
    assert run(send_with(client_for(script, time), get())).status == 200
    assert time.sleeps == [2.125, 2.125, BACKOFF[0], 2.125, 2.125]


def test_a_429_holds_back_the_other_requests_too() -> None:
    limited = error(429, x_ratelimit_remaining="0", x_ratelimit_reset="2")
    script, time = Script([limited, ok(), ok()]), FakeClock(1000.0)
    client = client_for(script, time, plan="growth")

    async def scenario() -> None:
        async with client:
            await client.send(get())
            await client.send(get())

    run(scenario())
    # The retry slept 2.125; the pacer needed no more. Both requests went after the hold.
    assert time.sleeps == [2 + RATE_JITTER]
    assert len(script.seen) == 3


def test_response_headers_correct_the_pacer() -> None:
    # Another client spent the window: the server says nothing is left until it resets.
    spent = ok(x_ratelimit_limit="40", x_ratelimit_remaining="0", x_ratelimit_reset="2")
    script, time = Script([spent, ok()]), FakeClock(1000.0)
    client = client_for(script, time, plan="growth")

    async def scenario() -> None:
        async with client:
            await client.send(get())
            await client.send(get())

    run(scenario())
    assert time.sleeps == [pytest.approx(2.0)]


def test_counters_for_the_progress_display() -> None:
    limited = error(429, x_ratelimit_remaining="0", x_ratelimit_reset="1")
    script = Script([error(502), limited, ok()])
    client = client_for(script, FakeClock(1000.0))
    run(send_with(client, get()))
    tally = client.tally
    assert (sum(tally.requests.values()), tally.retries, tally.rate_limited) == (3, 2, 1)


def test_the_client_refuses_bad_settings() -> None:
    with pytest.raises(UsageError, match="non-loopback"):
        PipedriveClient(token=TOKEN, base_url="http://api.example.com")
    with pytest.raises(UsageError, match="token"):
        PipedriveClient(token="  ")
    with pytest.raises(UsageError, match="plan"):
        PipedriveClient(token=TOKEN, plan="gold")
    for loopback in (
        "http://127.0.0.1:8787",
        "http://127.3.2.1",
        "http://[::1]:9",
        "http://localhost:1",
    ):
        assert PipedriveClient(token=TOKEN, base_url=loopback).base_url == loopback


UNREACHABLE = "Pipedrive is unreachable at https://acme.pipedrive.com: {n} connection failures in a row over {s} s, no answer between them (last: ConnectError: refused)"  # noqa: E501


def test_twenty_connection_failures_in_a_row_make_pipedrive_unreachable() -> None:
    # Issue 13 item 11: a dead port made every event try 7 times, then fail.
    refused = httpx.ConnectError("refused")
    script = Script([refused] * 10 + [ok({"id": 7})] + [refused] * 20)
    client = client_for(script, FakeClock(1000.0), max_retries=0)

    async def each() -> list[str]:
        ended = []
        for _ in range(31):
            try:
                await client.send(get())
                ended.append("answer")
            except PlanFailure:
                ended.append("failed")
            except Unreachable as stop:
                ended.append(stop.message)
                assert stop.hint == UNREACHABLE_HINT
                break
        return ended

    ended = run(each())
    # An answer (any HTTP status) ends the streak: 10 failures, one answer, then 20.
    assert ended == ["failed"] * 10 + ["answer"] + ["failed"] * 19 + [
        UNREACHABLE.format(n=20, s="0.0")
    ]
    # Once unreachable, no request is sent at all.
    with pytest.raises(Unreachable):
        run(client.send(get()))
    assert len(script.seen) == 31


def test_sixty_seconds_of_connection_failures_make_pipedrive_unreachable() -> None:
    time = FakeClock(1000.0)
    script = Script([httpx.ConnectError("refused")] * 2)
    client = client_for(script, time, max_retries=0)
    with pytest.raises(PlanFailure):
        run(client.send(get()))
    time.now += 61
    with pytest.raises(Unreachable) as caught:
        run(client.send(get()))
    assert caught.value.message == UNREACHABLE.format(n=2, s="61.0")


class CutOff(httpx.AsyncBaseTransport):
    """A server that closes the connection while the first request's body is written (as
    httpcore traces it), then answers `then`."""

    def __init__(self, then: httpx.Response) -> None:
        self.then = then
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if len(self.seen) > 1:
            return self.then
        trace = request.extensions["trace"]
        await trace("http11.send_request_headers.complete", {})
        await trace("http11.send_request_body.failed", {"exception": httpx.WriteError("")})
        raise httpx.ReadError("")


def test_a_write_cut_off_before_its_body_left_is_sent_again_not_reconciled() -> None:
    """A create whose body the server never read whole was not applied: it is tried again as a
    request never sent. Before, its lost answer made the outcome unknown (status 0), which the
    plan reconciles by listing, as if it might have been made."""
    cut, time = CutOff(ok({"id": 9}, status=201)), FakeClock(1000.0)
    client = PipedriveClient(
        token=TOKEN,
        base_url="https://acme.pipedrive.com",
        plan="unlimited",
        transport=cut,
        clock=time,
        sleep=time.sleep,
        random=lambda: 0.5,
    )
    answer = run(send_with(client, write("POST")))
    assert (answer.status, answer.data) == (201, {"id": 9})
    assert len(cut.seen) == 2 and time.sleeps == [0.375]


def test_the_verifying_context_is_made_once_for_the_certificates_it_would_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send makes four clients, each of which loaded the CA bundle again (~80 ms of CPU each,
    a third of a second a process); now one context for the certificates, a new one only when
    $SSL_CERT_FILE names another file or its file changed."""
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert trusted_tls() is trusted_tls()
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    named = trusted_tls()
    assert named is trusted_tls()
    monkeypatch.delenv("SSL_CERT_FILE")
    assert trusted_tls() is not named
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    bundle.write_bytes(bundle.read_bytes() + b"\n")  # the file changed: loaded again
    assert trusted_tls() is not named
