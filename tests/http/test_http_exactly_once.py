"""The engine with the real plans, over loopback HTTP, under every fault at once: each person and
each lead exists exactly once, whatever was dropped, refused or failed on the way (SPEC 5)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers_http import run

from rudder_pipedrive_cli.core.events import Event, parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.http.runner import run_plans
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]
CONFIG = PlanConfig(user_id_field="fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48", create_persons=True)


def events(users: int, seed: int) -> list[Event]:
    """Each user: identify, then two tracks, the users' stories shuffled together."""
    rng = random.Random(seed)
    stories: list[list[dict[str, Any]]] = []
    for u in range(users):
        base = {"userId": f"user-{u}", "timestamp": "2026-11-01T10:00:00Z"}
        stories.append(
            [
                {
                    **base,
                    "type": "identify",
                    "messageId": f"i-{u}",
                    "traits": {"name": f"User {u}", "email": f"user{u}@example.com"},
                },
                *(
                    {
                        **base,
                        "type": "track",
                        "messageId": f"t-{u}-{n}",
                        "event": f"Step {n}",
                        "context": {"traits": {"name": f"User {u}"}},
                    }
                    for n in range(2)
                ),
            ]
        )
    order = [u for u in range(users) for _ in range(3)]
    rng.shuffle(order)
    return [parse_event(stories[u].pop(0), f"test:{i}") for i, u in enumerate(order)]


def send_under_faults(
    sandbox: Sandbox, now: Callable[[], datetime] | None = None
) -> tuple[Tally, dict[str, Outcome]]:
    """The 25-user workload through the engine; `now` is the client's clock."""
    known = IdentityStore()
    tally = Tally()
    outcomes: dict[str, Outcome] = {}
    items = events(users=25, seed=5)

    async def quick(seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.005))

    def done(event: Event, outcome: Outcome) -> None:
        known.learn(outcome)
        outcomes[event.id] = outcome

    async def scenario() -> None:
        async with PipedriveClient(
            token="sandbox-token",
            base_url=sandbox.url,
            plan="unlimited",
            concurrency=8,
            tally=tally,
            sleep=quick,
            **({"now": now} if now is not None else {}),
        ) as client:
            await run_plans(
                items,
                start=lambda e: plan_event(e, CONFIG, known),
                keys=lambda e: e.identities,
                send=client.send,
                done=done,
                concurrency=8,
            )

    run(scenario())
    return tally, outcomes


def assert_each_once(sandbox: Sandbox, outcomes: dict[str, Outcome]) -> None:
    failed = {k: o.reason for k, o in outcomes.items() if o.status == "failed"}
    assert failed == {}
    state = sandbox.state()
    people = Counter(p["custom_fields"][CONFIG.user_id_field] for p in state["persons"])
    assert people == Counter({f"user-{u}": 1 for u in range(25)})
    leads = Counter(lead["origin_id"] for lead in state["leads"])
    assert leads == Counter({f"rpd:t-{u}-{n}": 1 for u in range(25) for n in range(2)})


def test_faults_never_duplicate_persons_or_leads(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(
        plan="unlimited", fail_reset=0.15, fail_5xx=0.1, fail_429=0.05, latency_ms=2, fault_seed=11
    )
    tally, outcomes = send_under_faults(sandbox)
    stats = sandbox.stats()
    assert stats["resets"] > 0 and stats["rate_limited"] > 0  # the faults did happen
    assert_each_once(sandbox, outcomes)
    assert sum(tally.requests.values()) == sum(stats["requests"].values())


@pytest.mark.parametrize("skew_s", [6, -6])
def test_a_client_clock_off_by_seconds_still_never_duplicates(
    make_sandbox: MakeSandbox, skew_s: int
) -> None:
    # Lost answers are reconciled by listing records updated since the send time: that time
    # must be on the sandbox's clock (its Date header), not this machine's.
    sandbox = make_sandbox(plan="unlimited", fail_reset=0.3, latency_ms=2, fault_seed=11)
    _, outcomes = send_under_faults(
        sandbox, now=lambda: datetime.now(UTC) + timedelta(seconds=skew_s)
    )
    assert sandbox.stats()["resets"] > 0
    assert_each_once(sandbox, outcomes)


def test_a_client_clock_that_steps_forward_mid_run_still_never_duplicates(
    make_sandbox: MakeSandbox,
) -> None:
    # An NTP correction or a resumed VM: the wall clock jumps 30 s ahead during the run.
    sandbox = make_sandbox(plan="unlimited", fail_reset=0.3, latency_ms=2, fault_seed=11)
    calls = itertools.count()

    def now() -> datetime:  # after some answers have come, 30 s ahead
        return datetime.now(UTC) + timedelta(seconds=30 if next(calls) > 60 else 0)

    _, outcomes = send_under_faults(sandbox, now=now)
    assert sandbox.stats()["resets"] > 0
    assert_each_once(sandbox, outcomes)


def test_under_faults_an_archive_out_of_time_order_ends_with_the_newest_values(
    make_sandbox: MakeSandbox,
) -> None:
    # Each user's newer identify comes first in the input, its older one after (another archive
    # file read later): lost answers, 5xx and retries on the way, the newer values stay.
    sandbox = make_sandbox(
        plan="unlimited", fail_reset=0.2, fail_5xx=0.1, latency_ms=2, fault_seed=7
    )
    known = IdentityStore()
    outcomes: dict[str, Outcome] = {}
    items = [
        parse_event(
            {
                "type": "identify",
                "messageId": f"{age}-{u}",
                "userId": f"user-{u}",
                "timestamp": stamp,
                "traits": {"name": f"{age} {u}", "email": f"{age}{u}@example.com"},
            },
            f"test:{n}",
        )
        for n, (u, age, stamp) in enumerate(
            (u, age, stamp)
            for u in range(12)
            for age, stamp in (("new", "2026-11-02T10:00:00Z"), ("old", "2026-11-01T10:00:00Z"))
        )
    ]

    async def quick(seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.005))

    def done(event: Event, outcome: Outcome) -> None:
        known.learn(outcome)
        outcomes[event.id] = outcome

    async def scenario() -> None:
        async with PipedriveClient(
            token="sandbox-token",
            base_url=sandbox.url,
            plan="unlimited",
            concurrency=8,
            tally=Tally(),
            sleep=quick,
        ) as client:
            dropped: list[ApiRequest] = []

            async def send(request: ApiRequest) -> ApiResponse:
                # The first create's answer is lost whatever the order: the seeded faults meet
                # the requests in the order they arrive, which the concurrency varies, and in
                # some orders these 24 events' 24 requests or so drew no reset at all.
                if request.method != "POST" or dropped:
                    return await client.send(request)
                dropped.append(request)
                sandbox.set_faults(fail_5xx=0.0, fail_reset=1.0)
                try:
                    return await client.send(request)
                finally:
                    sandbox.set_faults(fail_5xx=0.1, fail_reset=0.2)

            await run_plans(
                items,
                start=lambda e: plan_event(e, CONFIG, known),
                keys=lambda e: e.identities,
                send=send,
                done=done,
                concurrency=8,
            )

    run(scenario())
    assert sandbox.stats()["resets"] > 0
    assert {k: (o.status, o.reason) for k, o in outcomes.items()} == {
        **{f"new-{u}": ("sent", "") for u in range(12)},
        **{f"old-{u}": ("unchanged", "superseded by a later event") for u in range(12)},
    }
    people = sorted(
        (p["custom_fields"][CONFIG.user_id_field], p["name"], [e["value"] for e in p["emails"]])
        for p in sandbox.state()["persons"]
    )
    assert people == sorted((f"user-{u}", f"new {u}", [f"new{u}@example.com"]) for u in range(12))
