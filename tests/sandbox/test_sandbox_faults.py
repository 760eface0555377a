"""Injected faults: 5xx and spurious 429 (not applied), resets (applied), latency, index lag."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fakes import FakeClock
from sandbox_support import EMPTY_STATE, START, USER_ID_FIELD, create_person, error, search

from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions
from rudder_pipedrive_cli.sandbox.app import SandboxApp

Client = Callable[..., httpx.Client]
EMPTY = EMPTY_STATE


def test_5xx_answers_do_not_apply_the_request(
    make_sandbox: Callable[..., Sandbox], client_for: Client
) -> None:
    sandbox = make_sandbox(fail_5xx=1.0, fault_seed=3)
    api = client_for(sandbox)
    answers = [api.post("/api/v2/persons", json={"name": "A"}) for _ in range(12)]
    assert {r.status_code for r in answers} == {500, 502, 503}
    for r in answers:
        if r.status_code == 500:
            assert r.json() == error("Internal server error")
        else:
            assert r.headers["content-type"] == "text/html"
            assert f"<h1>{r.status_code} " in r.text
        assert r.headers["x-ratelimit-limit"] == "10000"
    assert sandbox.state() == EMPTY


def test_spurious_429s_have_full_window_headers_and_do_not_apply(
    make_sandbox: Callable[..., Sandbox], client_for: Client
) -> None:
    sandbox = make_sandbox(plan="growth", fail_429=1.0)
    api = client_for(sandbox)
    response = api.post("/api/v2/persons", json={"name": "A"})
    assert (response.status_code, response.json()["errorCode"]) == (429, 429)
    assert (
        response.headers["x-ratelimit-limit"],
        response.headers["x-ratelimit-remaining"],
        response.headers["x-ratelimit-reset"],
    ) == ("40", "0", "1")
    assert sandbox.state() == EMPTY
    assert (sandbox.stats()["rate_limited"], sandbox.stats()["statuses"]) == (1, {"429": 1})


def test_spurious_429s_leave_the_rate_windows_as_they_were(
    make_sandbox: Callable[..., Sandbox], client_for: Client
) -> None:
    # A 429 is an answer Pipedrive did not serve: a fault's must not fill the burst window or
    # the search window, else a client told to wait 1 s meets a real 429 the next moment.
    sandbox = make_sandbox(plan="lite", fail_429=1.0, clock=FakeClock(START))
    api = client_for(sandbox)
    faulted = [api.get("/v1/users/me") for _ in range(20)] + [search(api, "u-1") for _ in range(10)]
    assert [r.status_code for r in faulted] == [429] * 30
    sandbox.set_faults(fail_429=0.0)
    searches = [search(api, "u-1") for _ in range(10)]
    others = [api.get("/v1/users/me") for _ in range(10)]
    assert [r.status_code for r in searches + others] == [200] * 20
    assert (others[-1].headers["x-ratelimit-remaining"], sandbox.stats()["tokens"]) == ("0", 220)


def test_a_reset_applies_the_write_then_drops_the_connection(
    sandbox: Sandbox, api: httpx.Client
) -> None:
    create_person(api)
    sandbox.set_faults(fail_reset=1.0)
    with pytest.raises(httpx.TransportError):
        api.post("/api/v2/persons", json={"name": "Bo"})
    with pytest.raises(httpx.TransportError):
        api.patch("/api/v2/persons/1", json={"name": "Ann Changed"})
    assert api.get("/api/v2/persons/2").json()["data"]["name"] == "Bo"  # reads are never reset
    assert [p["name"] for p in sandbox.state()["persons"]] == ["Ann Changed", "Bo"]
    assert sandbox.stats()["resets"] == 2


def test_a_reset_never_hits_a_failed_write(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.set_faults(fail_reset=1.0)
    response = api.post("/api/v2/persons", json={"name": 1})
    assert response.status_code == 400


def test_faults_never_touch_introspection(sandbox: Sandbox, api: httpx.Client) -> None:
    sandbox.set_faults(fail_5xx=1.0, latency_ms=10_000)
    assert api.get("/_sandbox/state").json() == EMPTY
    assert api.post("/_sandbox/reset").status_code == 200


def test_the_same_seed_replays_the_same_faults(
    make_sandbox: Callable[..., Sandbox], client_for: Client
) -> None:
    def run(seed: int) -> list[int | str]:
        sandbox = make_sandbox(fail_5xx=0.2, fail_429=0.2, fail_reset=0.3, fault_seed=seed)
        outcomes: list[int | str] = []
        api = client_for(sandbox)
        for i in range(30):
            try:
                outcomes.append(api.post("/api/v2/persons", json={"name": f"P{i}"}).status_code)
            except httpx.TransportError:
                outcomes.append("reset")
        return outcomes

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert {200, 429, "reset"} <= set(first) and set(first) & {500, 502, 503}


def test_set_faults_checks_its_values(sandbox: Sandbox) -> None:
    before = sandbox.app.faults.settings
    with pytest.raises(ValueError, match="fail_5xx must be a rate between 0 and 1, not 2"):
        sandbox.set_faults(fail_5xx=2)
    with pytest.raises(ValueError, match="latency_ms must not be negative"):
        sandbox.set_faults(latency_ms=-1)
    with pytest.raises(TypeError, match="fail_typo"):  # a name no fault setting has
        sandbox.set_faults(fail_typo=0.1)
    assert sandbox.app.faults.settings == before  # each change was refused whole


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plan": "free"}, "plan must be one of lite, growth, premium, ultimate, unlimited"),
        ({"seats": 0}, "seats must be at least 1"),
        ({"fail_5xx": 0.7, "fail_429": 0.7}, "fail_5xx \\+ fail_429 must not exceed 1"),
        ({"token": ""}, "token must not be empty"),
        ({"port": 65536}, "port must be 0..65535, not 65536"),
        ({"max_body_bytes": -1}, "max_body_bytes must not be negative, not -1"),
        ({"read_timeout_s": 0}, "read_timeout_s must be positive, not 0"),
    ],
)
def test_options_are_checked(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxOptions(**fields)  # type: ignore[arg-type]


def test_latency_delays_api_answers_only() -> None:
    app = SandboxApp(SandboxOptions(latency_ms=250), clock=FakeClock(START))
    headers = {"x-api-token": "sandbox-token"}
    assert app.handle("GET", "/v1/users/me", headers, b"").delay_s == 0.25
    assert app.handle("GET", "/_sandbox/stats", headers, b"").delay_s == 0.0
    app.set_faults(latency_ms=0)
    assert app.handle("GET", "/v1/users/me", headers, b"").delay_s == 0.0


def test_latency_over_http_still_answers(
    make_sandbox: Callable[..., Sandbox], client_for: Client
) -> None:
    api = client_for(make_sandbox(latency_ms=20))
    assert api.get("/v1/users/me").status_code == 200


# ---- index lag -----------------------------------------------------------------------------


@pytest.fixture
def lagging(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock, client_for: Client
) -> httpx.Client:
    return client_for(make_sandbox(index_lag_ms=500, clock=clock))


def test_search_finds_a_new_record_only_after_the_lag(
    lagging: httpx.Client, clock: FakeClock
) -> None:
    create_person(lagging, custom_fields={USER_ID_FIELD: "u-1"})
    assert search(lagging, "u-1").json()["data"] == []
    clock.advance(0.499)
    assert search(lagging, "u-1").json()["data"] == []
    clock.advance(0.001)
    assert search(lagging, "u-1").json()["data"] == [{"id": 1, "name": "Ann Lee"}]


def test_search_sees_the_old_value_while_a_change_lags(
    lagging: httpx.Client, clock: FakeClock
) -> None:
    create_person(lagging, custom_fields={USER_ID_FIELD: "old"})
    clock.advance(1)
    lagging.patch("/api/v2/persons/1", json={"custom_fields": {USER_ID_FIELD: "new"}})
    assert (search(lagging, "old").json()["data"], search(lagging, "new").json()["data"]) == (
        [{"id": 1, "name": "Ann Lee"}],
        [],
    )
    clock.advance(0.5)
    assert (search(lagging, "old").json()["data"], search(lagging, "new").json()["data"]) == (
        [],
        [{"id": 1, "name": "Ann Lee"}],
    )


def test_lists_and_gets_do_not_lag(lagging: httpx.Client) -> None:
    create_person(lagging, custom_fields={USER_ID_FIELD: "u-1"})
    assert [p["id"] for p in lagging.get("/api/v2/persons").json()["data"]] == [1]
    assert lagging.get("/api/v2/persons/1").status_code == 200


def test_index_lag_can_be_turned_on_after_seeding(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock, client_for: Client
) -> None:
    sandbox = make_sandbox(clock=clock)
    api = client_for(sandbox)
    create_person(api, custom_fields={USER_ID_FIELD: "seeded"})
    sandbox.set_faults(index_lag_ms=1000)
    create_person(api, name="Bo", custom_fields={USER_ID_FIELD: "later"})
    assert search(api, "seeded").json()["data"] == [{"id": 1, "name": "Ann Lee"}]
    assert search(api, "later").json()["data"] == []


# ---- mangled answers -----------------------------------------------------------------------

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Pipedrive</title></head>\n"
    "<body><h1>We'll be right back</h1><p>Pipedrive is undergoing maintenance.</p></body></html>\n"
)


@pytest.mark.parametrize(
    ("kind", "content_type", "body"),
    [
        ("unsuccessful", "application/json", '{"success":false}'),
        ("html", "text/html; charset=utf-8", HTML_PAGE),
        ("empty", "application/json", ""),
        ("no-data", "application/json", '{"success":true}'),
        (
            "v1-shape",
            "application/json",
            '{"success":true,"data":{"items":[{"id":1,"name":"Ann Lee"}]},"additional_data":'
            '{"pagination":{"start":0,"limit":100,"more_items_in_collection":false}}}',
        ),
    ],
)
def test_each_mangled_body_replaces_a_successful_lookup(
    sandbox: Sandbox, api: httpx.Client, kind: str, content_type: str, body: str
) -> None:
    create_person(api, custom_fields={USER_ID_FIELD: "u-1"})
    sandbox.set_faults(fail_mangle=1.0, mangle_kinds=(kind,))
    for response in (search(api, "u-1"), api.get("/api/v2/persons")):
        assert (response.status_code, response.headers["content-type"]) == (200, content_type)
        assert response.headers["x-ratelimit-limit"] == "10000"
        if kind != "v1-shape":
            assert response.text == body
    assert search(api, "u-1").text == body
    assert sandbox.stats()["mangled"] == 3


def test_mangling_spares_writes_gets_failures_and_non_lookups(
    sandbox: Sandbox, api: httpx.Client
) -> None:
    sandbox.set_faults(fail_mangle=1.0)
    assert create_person(api)["id"] == 1
    assert api.get("/api/v2/persons/1").json()["data"]["id"] == 1
    assert api.get("/v1/users/me").json()["success"] is True
    assert api.get("/api/v2/personFields").json()["success"] is True
    assert api.get("/api/v2/persons", params={"limit": 0}).json() == error(
        "limit: must be between 1 and 500"
    )
    assert sandbox.stats()["mangled"] == 0


def test_mangled_lookups_replay_with_the_seed_and_leave_other_faults_in_place(
    make_sandbox: Callable[..., Sandbox], client_for: Client
) -> None:
    def run(seed: int, mangle: float) -> list[str]:
        api = client_for(make_sandbox(fail_5xx=0.3, fail_mangle=mangle, fault_seed=seed))
        outcomes = []
        for _ in range(40):
            response = search(api, "u-1")
            outcomes.append(
                str(response.status_code)
                if response.status_code != 200
                else response.headers["content-type"][:9] + ":" + response.text[:30]
            )
        return outcomes

    first, again, other = run(5, 0.5), run(5, 0.5), run(6, 0.5)
    assert first == again
    assert first != other
    assert len({o for o in first if not o.startswith("5")}) == 6  # five kinds and the real one
    failed = [o.startswith("5") for o in first]
    assert failed == [o.startswith("5") for o in run(5, 0.0)]


def test_mangle_options_are_checked() -> None:
    with pytest.raises(
        ValueError, match=re.escape("fail_mangle must be a rate between 0 and 1, not 1.5")
    ):
        SandboxOptions(fail_mangle=1.5)
    with pytest.raises(
        ValueError,
        match="mangle kind must be one of unsuccessful, html, empty, no-data, v1-shape, not 'xml'",
    ):
        SandboxOptions(mangle_kinds=("xml",))
    with pytest.raises(ValueError, match="mangle_kinds must name at least one kind"):
        SandboxOptions(mangle_kinds=())
