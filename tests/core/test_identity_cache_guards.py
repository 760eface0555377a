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
