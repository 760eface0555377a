"""The identity cache's cheap guards (issue 12): what `learn` wrote is found in bounded tables."""

from __future__ import annotations

from rudder_pipedrive_cli.core.identity_cache import MemoryIdentityCache
from rudder_pipedrive_cli.core.plans.common import Ledger
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.scratch import Spill


def test_failed_and_unsettled_identities_are_found_once_learned() -> None:
    with Spill(2) as spill:
        known = MemoryIdentityCache(spill.table)
        assert not known.held_back("person", "u-1")
        assert known.pending_create("person", "u-2") is None
        known.learn(
            Outcome(
                status="failed",
                reason="create person: outcome unknown",
                held_back=frozenset({("person", "u-1")}),
                pending_creates={("person", "u-2"): "2024-05-01T12:00:00Z"},
            )
        )
        assert known.held_back("person", "u-1")
        assert not known.held_back("person", "u-3")
        assert known.pending_create("person", "u-2") == "2024-05-01T12:00:00Z"
        # The create is settled once its record is known: nothing left to reconcile.
        known.learn(Outcome(status="sent", identities={("person", "u-2"): 7}))
        assert known.pending_create("person", "u-2") is None
        assert known.person_id("u-2") == 7


def test_merges_is_set_by_a_learned_merge_or_rekey_and_person_id_follows_it() -> None:
    with Spill(2) as spill:
        merged = MemoryIdentityCache(spill.table)
        merged.learn(Outcome(status="sent", identities={("person", "u-a"): 1}))
        assert (merged.merges, merged.person_id("u-a")) == (False, 1)
        # u-a's person 1 merged into 2: u-a now names 2, and two userIds may name one person.
        merged.learn(Outcome(status="sent", merged={1: 2}))
        assert (merged.merges, merged.person_id("u-a")) == (True, 2)
        rekeyed = MemoryIdentityCache(spill.table)
        rekeyed.learn(
            Outcome(status="sent", identities={("person", "u-a"): 3, ("person", "u-b"): 3})
        )
        assert (rekeyed.merges, rekeyed.person_id("u-b")) == (True, 3)


def test_learn_takes_an_outcome_that_taught_only_recency_or_only_held_back() -> None:
    # `learn` returns at once for an outcome that taught nothing: one that taught only field
    # recency, or only which identities wait for a retry, still teaches.
    known = MemoryIdentityCache()
    known.learn(Outcome(status="failed", reason="x", stage="validate"))
    assert (known.times, known.held, known.holding) == ({}, {}, False)
    known.learn(Outcome(status="sent", recency={("person", 1): {"name": "2024-05-01T12:00:00Z"}}))
    assert known.recency("person", 1) == {"name": "2024-05-01T12:00:00Z"}
    known.learn(Outcome(status="failed", reason="x", held_back=frozenset({("org", "g-1")})))
    assert known.held_back("org", "g-1")
    assert (known.persons, known.orgs, known.merges) == ({}, {}, False)


def test_each_ledger_has_containers_of_its_own() -> None:
    first, second = Ledger(), Ledger()
    first.warnings.append("w")
    first.identities[("person", "u-1")] = 1
    first.made("persons created")
    outcome = second.finish()
    assert (outcome.status, outcome.warnings, outcome.identities, outcome.writes) == (
        "unchanged",
        (),
        {},
        (),
    )
    assert first.finish().writes == ("persons created",)
