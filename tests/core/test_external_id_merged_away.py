"""An external id naming a person that a merge known done moved into another (SPEC 4: an external
id wins over every lookup): not followed to the survivor, the event fails before any request,
whatever its type, with the id, the external id type and the survivor named. A merge left
unknown is not one."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_core import Call, check, leads_of, ok, post, run, search_org, search_person

from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans.alias import MERGED_BEFORE
from rudder_pipedrive_cli.core.protocol import PdId


def ext(*pairs: tuple[str, int]) -> dict[str, Any]:
    return {"externalId": [{"type": kind, "id": value} for kind, value in pairs]}


def merged(*pairs: tuple[PdId, PdId], persons: dict[str, PdId] | None = None) -> IdentityStore:
    """A cache that learned these merges (previous, survivor) and knows these userIds."""
    known = IdentityStore(merges=True)
    known.persons.update(persons or {})
    for previous, survivor in pairs:
        known.merged[previous] = survivor
    return known


def refused(person: int, external: str, survivor: int) -> dict[str, Any]:
    return {
        "status": "failed",
        "reason": f"person {person} ({external} external id) was merged into person {survivor} "
        f"by an earlier alias; point the event at person {survivor}",
        "redacted": None,
        "stage": "validate",
        "http_status": None,
        "retryable": False,
        "held_back": frozenset(),
        "writes": (),
    }


TRACK = {"type": "track", "event": "Signed Up", "context": ext(("person_id", 15))}
IDENTIFY = {"type": "identify", "traits": {"name": "Ann"}, "context": ext(("person_id", 15))}
# The organization is searched unless the person is refused first: no request at all.
GROUP = {"type": "group", "groupId": "g-1", "traits": {"name": "Acme"}, "context": TRACK["context"]}


@pytest.mark.parametrize(
    ("raw", "external"),
    [
        (TRACK, "person_id"),
        ({**TRACK, "userId": "u-9"}, "person_id"),  # the external id wins over the userId
        (IDENTIFY, "person_id"),
        (GROUP, "person_id"),
        # The current person's external id is refused before the previous one is searched.
        (
            {"type": "alias", "previousId": "u-1", "context": ext(("curr_person_id", 15))},
            "curr_person_id",
        ),
    ],
    ids=["track", "track with a userId", "identify", "group", "alias current"],
)
def test_an_external_id_of_a_person_merged_away_fails_the_event_before_any_request(
    raw: dict[str, Any], external: str
) -> None:
    outcome = run(raw, [], known=merged((15, 51), persons={"u-50": 77}))
    check(outcome, **refused(15, external, 51))


def test_the_survivor_named_is_the_last_of_a_chain_of_merges() -> None:
    check(run(TRACK, [], known=merged((15, 51), (51, 70))), **refused(15, "person_id", 70))


def test_an_alias_whose_previous_person_is_merged_already_is_merged_before() -> None:
    """The merge an alias asks for is done, into its current person or (an earlier alias's)
    another: no request, where its PUT was refused 404 and the survivor checked (SPEC 5's done;
    examples/external-ids.json's second alias after examples/events.ndjson)."""
    by_id = {"type": "alias", "context": ext(("prev_person_id", 15), ("curr_person_id", 51))}
    by_user = {"type": "alias", "userId": "u-50", "context": ext(("prev_person_id", 15))}
    elsewhere = {"type": "alias", "context": ext(("prev_person_id", 15), ("curr_person_id", 77))}
    for raw in (by_id, by_user, elsewhere):
        outcome = run(raw, [], known=merged((15, 51), persons={"u-50": 51}))
        check(outcome, status="unchanged", reason=MERGED_BEFORE, writes=())


def test_an_alias_whose_previous_person_is_merged_and_current_one_not_found_is_refused() -> None:
    """Nothing to take the previous person's userId (where a re-key of it was refused 404)."""
    raw = {"type": "alias", "userId": "u-50", "context": ext(("prev_person_id", 15))}
    outcome = run(raw, [search_person("u-50")], known=merged((15, 51)))
    check(outcome, **refused(15, "prev_person_id", 51))


def test_a_merge_learned_from_an_alias_outcome_refuses_a_later_external_id() -> None:
    known = IdentityStore()
    alias = {"type": "alias", "previousId": "u-9", "userId": "u-50"}
    merge = Call(
        method="PUT",
        path="/v1/persons/15/merge",
        body={"merge_with_id": 51},
        response=ok({"id": 51}),
    )
    outcome = run(alias, [search_person("u-9", 15), search_person("u-50", 51), merge], known=known)
    check(outcome, status="sent", merged={15: 51})
    known.learn(outcome)
    check(run(TRACK, [], known=known), **refused(15, "person_id", 51))


def test_a_merge_left_unknown_is_not_taken_as_done() -> None:
    """Pending (its outcome unknown): the external id is used as given, and Pipedrive says."""
    known = IdentityStore(merges=True, pending=True)
    known.pending_merges[15] = 51
    lead = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 15}
    created = post("/v1/leads", lead, ok({"id": "lead-1", **lead}, status=201))
    check(run(TRACK, [*leads_of(15), created], known=known), status="sent")


def test_a_person_not_merged_away_is_used_as_given() -> None:
    known = merged((16, 51))
    lead = {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 15}
    created = post("/v1/leads", lead, ok({"id": "lead-1", **lead}, status=201))
    check(run(TRACK, [*leads_of(15), created], known=known), status="sent")
    org = {"name": "Acme", "custom_fields": {"872513dc3f908b99275edf2d09fcc9a467df9fa5": "g-1"}}
    made = post("/api/v2/organizations", org, ok({"id": 500, **org}))
    link = Call(
        method="PATCH",
        path="/api/v2/persons/15",
        body={"org_id": 500},
        response=ok({"id": 15, "org_id": 500}),
    )
    check(run(GROUP, [search_org("g-1"), made, link], known=known), status="sent")
