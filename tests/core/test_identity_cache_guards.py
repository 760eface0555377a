"""The identity cache's cheap guards (issue 12): what `learn` wrote is found in bounded tables."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import (
    ORG,
    PERSON,
    Ctx,
    Ref,
    person_create_body,
    plan_ctx,
    wrote_fields,
)
from rudder_pipedrive_cli.core.protocol import EMPTY, NOTHING_LEARNED, Learned, Outcome
from rudder_pipedrive_cli.io.scratch import Spill
from rudder_pipedrive_cli.io.state import ReplayState


def test_held_back_and_pending_identities_are_found_once_learned() -> None:
    with Spill(2) as spill:
        known = IdentityStore(spill.table)
        assert not known.held_back("person", "u-1")
        assert known.pending_create("person", "u-2") is None
        known.learn(
            Outcome(
                status="failed",
                reason="create person: outcome unknown",
                learned=Learned(
                    pending_creates={("person", "u-2"): "2024-05-01T12:00:00Z"},
                    held_back=frozenset({("person", "u-1")}),
                ),
            )
        )
        assert known.held_back("person", "u-1")
        assert not known.held_back("person", "u-3")
        assert known.pending_create("person", "u-2") == "2024-05-01T12:00:00Z"
        # The create is settled once its record is known: nothing left to reconcile.
        known.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-2"): 7})))
        assert known.pending_create("person", "u-2") is None
        assert known.person_id("u-2") == 7


def test_merges_is_set_by_a_learned_merge_or_rekey_and_person_id_follows_it() -> None:
    with Spill(2) as spill:
        merged = IdentityStore(spill.table)
        merged.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-a"): 1})))
        assert (merged.merges, merged.person_id("u-a")) == (False, 1)
        # u-a's person 1 merged into 2: u-a now names 2, and two userIds may name one person.
        merged.learn(Outcome(status="sent", learned=Learned(merged={1: 2})))
        assert (merged.merges, merged.person_id("u-a")) == (True, 2)
        rekeyed = IdentityStore(spill.table)
        rekeyed.learn(
            Outcome(
                status="sent",
                learned=Learned(identities={("person", "u-a"): 3, ("person", "u-b"): 3}),
            )
        )
        assert (rekeyed.merges, rekeyed.person_id("u-b")) == (True, 3)


def test_learn_takes_an_outcome_that_taught_only_recency_or_only_held_back() -> None:
    # `learn` returns at once for an outcome that taught nothing: one that taught only field
    # recency, or only which identities wait for a retry, still teaches.
    known = IdentityStore()
    known.learn(Outcome(status="failed", reason="x", stage="validate"))
    assert (known.times, known.held, known.holding) == ({}, {}, False)
    known.learn(
        Outcome(
            status="sent",
            learned=Learned(recency={("person", 1): {"name": "2024-05-01T12:00:00Z"}}),
        )
    )
    assert known.times_at(("person", 1)) == {"name": "2024-05-01T12:00:00Z"}
    known.learn(
        Outcome(status="failed", reason="x", learned=Learned(held_back=frozenset({("org", "g-1")})))
    )
    assert known.held_back("org", "g-1")
    assert (known.persons, known.orgs, known.merges) == ({}, {}, False)


def plan_of(user_id: str) -> Ctx:
    """A plan's context before its first request: one object per event (event and ledger)."""
    event = parse_event({"type": "identify", "messageId": "m-1", "userId": user_id}, "t:1")
    return plan_ctx(event, PlanConfig(), IdentityStore())


def test_each_ledger_has_containers_of_its_own() -> None:
    first, second = plan_of("u-1"), plan_of("u-2")
    first.warnings.append("w")
    first.learn(PERSON, "u-1", Ref(1, "search", "u-1"))
    first.learning().memberships[1] = 2
    first.writes += ("persons created",)
    outcome = second.finish()
    assert (outcome.status, outcome.warnings, outcome.learned, outcome.writes) == (
        "unchanged",
        (),
        None,
        (),
    )
    done = first.finish()
    assert done.learned is not None
    assert (done.writes, done.learned.identities, done.learned.memberships) == (
        ("persons created",),
        {("person", "u-1"): 1},
        {1: 2},
    )


def test_an_outcome_that_learned_nothing_has_nothing_learned() -> None:
    # Nothing is made per event for what it did not learn: an outcome that taught nothing has
    # no `Learned` (None: a few stores to make, nothing to apply); a plan's `Learned` is the one
    # shared NOTHING_LEARNED until its first write makes its own, and its tables the one shared
    # EMPTY, which refuses writes so that no event can teach every other one by mistake.
    assert plan_of("u-1").finish().learned is None
    assert Outcome(status="skipped").learned is None
    with pytest.raises(TypeError, match="EMPTY is shared"):
        Learned().memberships[1] = 2
    with pytest.raises(TypeError, match="EMPTY is shared"):
        EMPTY.setdefault(1, 2)
    plan = plan_of("u-1")
    assert EMPTY == {} and plan.learned is NOTHING_LEARNED and NOTHING_LEARNED.merged is EMPTY
    plan.learning().memberships[1] = 2
    assert plan.learned is not NOTHING_LEARNED and NOTHING_LEARNED.memberships is EMPTY
    assert Learned() == NOTHING_LEARNED
    assert plan.finish().learned == Learned({}, {}, {1: 2}, {}, {}, {}, frozenset(), {}, (), EMPTY)


def test_a_plan_makes_only_the_tables_it_writes() -> None:
    """An update learns field times alone, a lookup identities alone: each outcome carries the
    tables written, every other part the shared EMPTY."""
    updating, finding = plan_of("u-1"), plan_of("u-1")
    wrote_fields(updating, PERSON, 7, {"name": "Ann", "add_time": "2024-05-01 00:00:00"})
    finding.learn(PERSON, "u-1", Ref(3, "search", "u-1"))
    finding.learn(PERSON, "u-2", None)  # forgotten: its cached id is gone
    updated, found = updating.finish().learned, finding.finish().learned
    assert updated is not None and found is not None
    assert (updated.recency, updated.identities) == ({("person", 7): {"name": ""}}, EMPTY)
    assert (found.identities, found.recency) == (
        {("person", "u-1"): 3, ("person", "u-2"): None},
        EMPTY,
    )
    for learned in (updated, found):
        rare = (learned.lead_origins, learned.memberships, learned.merged, learned.pending_creates)
        assert all(part is EMPTY for part in (*rare, learned.pending_merges, learned.holders))
    assert updated.identities is EMPTY and found.recency is EMPTY


# One set of rules (core/identity_cache.py `taught`) for the memory cache and the replay state.
SETTLING = [
    # A create and a merge left unknown by one event...
    Outcome(
        status="failed",
        reason="x",
        learned=Learned(
            pending_creates={("person", "u-1"): "2024-05-01T12:00:00Z"}, pending_merges={5: 6}
        ),
    ),
    # ...settled by the next: u-1's record is known, 5 is known merged into 6 (even though this
    # event, too, left a merge of 5 unknown before it learned that: merged wins).
    Outcome(
        status="sent",
        learned=Learned(
            identities={("person", "u-1"): 9, ("person", "u-5"): 5},
            memberships={9: 40},
            merged={5: 6},
            pending_merges={5: 6},
            held_back=frozenset({("org", "g-1")}),
        ),
    ),
]


def answers(known: IdentityStore) -> tuple[object, ...]:
    return (
        known.pending_create("person", "u-1"),
        known.merging_into(5),
        known.person_id("u-1"),
        known.person_id("u-5"),
        known.person_org(9),
        known.held_back("org", "g-1"),
        known.merges,
    )


SETTLED = (None, None, 9, 6, 40, True, True)


def test_both_stores_settle_pending_creates_and_merges_by_the_same_rules(tmp_path: Path) -> None:
    memory = IdentityStore()
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as state:
        for known in (memory, state):
            known.learn(SETTLING[0])
            assert (known.pending, known.pending_create("person", "u-1")) == (
                True,
                "2024-05-01T12:00:00Z",
            )
            assert known.merging_into(5) == 6
            known.learn(SETTLING[1])
            assert answers(known) == SETTLED
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as again:  # as stored
        assert answers(again)[:4] == SETTLED[:4]


class NothingHeld(IdentityStore):
    """A cache that fails the test if asked about held-back identities."""

    def held_back(self, kind: str, key: str) -> bool:
        raise AssertionError(f"held_back({kind!r}, {key!r}) asked while nothing is held")


def test_an_event_asks_nothing_about_held_back_identities_while_none_is_held() -> None:
    known = NothingHeld()
    event = parse_event({"type": "identify", "messageId": "m-1", "userId": "u-1"}, "t:1")
    plan = plan_event(event, PlanConfig(user_id_field="uid"), known)
    assert not isinstance(plan, Outcome) and next(plan).endpoint == "/api/v2/itemSearch/field"
    known.learn(
        Outcome(
            status="failed", reason="x", learned=Learned(held_back=frozenset({("person", "u-2")}))
        )
    )
    with pytest.raises(AssertionError, match="held_back"):
        plan_event(event, PlanConfig(user_id_field="uid"), known)


@pytest.mark.parametrize("entries", [1, 100])  # 1: every table moved out of memory
def test_person_id_follows_a_chain_of_merges_and_stops_on_a_loop(entries: int) -> None:
    with Spill(entries, batch=1) as spill:
        known = IdentityStore(spill.table)
        known.learn(
            Outcome(
                status="sent",
                learned=Learned(identities={("person", "u-a"): 1, ("person", "u-l"): 4}),
            )
        )
        known.learn(Outcome(status="sent", learned=Learned(merged={1: 2})))
        known.learn(Outcome(status="sent", learned=Learned(merged={2: 3})))
        assert [known.person_id(user) for user in ("u-a", "u-x")] == [3, None]
        # Corrupt data: 4 into 5 into 4. The chain is followed MAX_MERGE_HOPS (64) times only.
        known.learn(Outcome(status="sent", learned=Learned(merged={4: 5, 5: 4})))
        assert known.person_id("u-l") == 4


def test_a_plans_outcome_carries_each_thing_it_learned_in_its_own_field() -> None:
    """`Ctx.outcome` builds the Outcome by position: each learned table lands in its own field
    (several have the same type, so a field order mistake would pass mypy and teach the store
    the wrong thing), and a retryable failure holds back the event's identities."""
    ctx = plan_of("u-1")
    taught = ctx.learning()
    taught.holders = {}
    tables = (
        "identities", "lead_origins", "memberships", "merged", "pending_creates",
        "pending_merges", "recency", "holders",
    )  # fmt: skip
    for name in tables:
        getattr(taught, name)[name] = name  # each table holds its own name
    taught.updates = (("person", 1, {"name": "Ann"}),)
    ctx.warnings.extend(["w-1", "w-1", "w-2"])
    ctx.dropped.append("label")
    ctx.writes += ("persons created",)
    failure = PlanFailure(
        "create person refused: HTTP 503: busy",
        stage="create person",
        status=503,
        retryable=True,
        redacted="create person refused: HTTP 503",
    )
    outcome = ctx.outcome(failure=failure)
    learned = outcome.learned
    assert learned is not None
    assert {name: dict(getattr(learned, name)) for name in tables} == {
        name: {name: name} for name in tables
    }
    assert (
        outcome.status, outcome.reason, outcome.stage, outcome.http_status, outcome.retryable,
        outcome.redacted, outcome.warnings, outcome.dropped, outcome.writes, learned.held_back,
        learned.updates,
    ) == (
        "failed", "create person refused: HTTP 503: busy", "create person", 503, True,
        "create person refused: HTTP 503", ("w-1", "w-2"), ("label",), ("persons created",),
        frozenset({("person", "u-1"), ("event", "m-1")}), (("person", 1, {"name": "Ann"}),),
    )  # fmt: skip
    assert ctx.finish().status == "sent"  # the plan's end after a write that landed


def test_a_plans_ctx_and_outcome_are_made_with_every_slot_set() -> None:
    """`plan_ctx` and `Ctx.outcome` make their values by `object.__new__` and stores, not by
    `__init__`: a slot added to `Ctx`, or a field to `Outcome`, that they do not store would be
    unset (an AttributeError where it is read). The outcome equals the one `Outcome` makes."""
    ctx = plan_of("u-1")
    assert {name: getattr(ctx, name, "unset") for name in Ctx.__slots__} == {
        "_at": None, "config": ctx.config, "dropped": [], "event": ctx.event, "gone": (),
        "index": None, "known": ctx.known, "learned": NOTHING_LEARNED, "resolved": EMPTY,
        "superseded": False, "warnings": [], "writes": (),
    }  # fmt: skip
    outcome = ctx.outcome("failed", "why", "validate")
    assert [getattr(outcome, f.name, "unset") for f in fields(Outcome)] == [
        getattr(Outcome("failed", "why", "validate"), f.name) for f in fields(Outcome)
    ]
    assert outcome == Outcome("failed", "why", "validate")
    assert ctx.finish() == Outcome("unchanged")


def test_a_person_that_cannot_be_created_is_the_plans_failed_outcome_not_an_exception() -> None:
    """`person_create_body` refuses as a value (issue 12 item 2): the event's failed outcome, made
    before any write, with its body's dropped traits and what the plan learned on the way."""
    event = parse_event(
        {"type": "group", "messageId": "m-1", "userId": "u-1", "groupId": "g-1",
         "context": {"traits": {"email": "a@example.com", "shoe": 42}}},
        "t:1",
    )  # fmt: skip
    config = PlanConfig(user_id_field="f" * 40, create_persons=True)
    ctx = plan_ctx(event, config, IdentityStore())
    ctx.learn(ORG, "g-1", Ref(5, "search", "g-1"))
    refused = person_create_body(ctx, "u-1")
    assert refused == Outcome(
        status="failed",
        reason="cannot create person without a name",
        stage="create person",
        dropped=("shoe",),
        learned=Learned(identities={("org", "g-1"): 5}),
    )
    off = plan_ctx(event, PlanConfig(user_id_field="f" * 40), IdentityStore())
    assert person_create_body(off, "u-1") == Outcome(
        status="failed", reason="person not found and create_persons is off", stage="lookup person"
    )
