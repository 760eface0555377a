"""Events sharing an identity take effect in input order while other identities run
concurrently (SPEC 5), seen from the sandbox's records at `--concurrency 32`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e_support import ROLE_FIELD, alias, holdings, identify, rpd_send, track, write_events

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
USERS = 40


def one_user(n: int) -> list[dict[str, Any]]:
    """identify, track, alias to a new id, track under the new id: each needs the one before."""
    old, new = f"u-{n}", f"u-{n}-new"
    return [
        identify(f"{old}-1", old, name=f"User {n}", role="r1"),
        track(f"{old}-2", old, "First Touch"),
        alias(f"{old}-3", old, new, role="r2"),
        track(f"{old}-4", new, "Second Touch"),
    ]


def test_one_users_events_keep_their_order_while_users_run_concurrently(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Latency on every answer, and seeded 5xx whose retries back off by a random time, so the
    # users' requests finish in an order unrelated to the input's.
    sandbox = make_sandbox(plan="unlimited", latency_ms=15, fail_5xx=0.05, fault_seed=42)
    events = write_events(
        tmp_path / "events.ndjson", [e for n in range(USERS) for e in one_user(n)]
    )

    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "32"))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["events"]["sent"] == 4 * USERS
    assert run.report["retries"] > 0
    held = holdings(sandbox)
    # Had the alias run before the identify, it would have failed (nobody to re-key); had the
    # second track run before the alias, it would have created a second person for u-N-new.
    assert held.user_ids() == {f"u-{n}-new": 1 for n in range(USERS)}
    assert held.merges == []
    order = {lead["origin_id"]: index for index, lead in enumerate(held.leads)}
    for n in range(USERS):
        person = held.person(f"u-{n}-new")
        assert person["name"] == f"User {n}"
        assert person["custom_fields"][ROLE_FIELD] == "r2"  # the alias's trait, applied last
        first, second = held.lead(f"rpd:u-{n}-2"), held.lead(f"rpd:u-{n}-4")
        assert first["person_id"] == second["person_id"] == person["id"]
        assert first["title"] == "First Touch"
        assert second["title"] == "Second Touch"
        assert order[f"rpd:u-{n}-2"] < order[f"rpd:u-{n}-4"]
        assert first["add_time"] <= second["add_time"]
    # Run one after another, user 0's second lead would come right after its first. Running
    # concurrently, other users' first leads were created in between.
    between = [
        origin for origin, index in order.items() if order["rpd:u-0-2"] < index < order["rpd:u-0-4"]
    ]
    others = {origin.rsplit("-", 1)[0] for origin in between}
    assert len(others) >= 4, between
