"""The identity cache's cheap guards (issue 12): what `learn` wrote is found in bounded tables."""

from __future__ import annotations

from rudder_pipedrive_cli.core.identity_cache import MemoryIdentityCache
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
