"""alias (SPEC 4): the five branches, external ids, and what the cache learns. Never creates."""

from __future__ import annotations

import pytest
from helpers_core import ROLE, USER_FIELD, Call, Case, check, ok, patch_person, run, search_person

from rudder_pipedrive_cli.core.protocol import ApiResponse, Learned

MERGED = {("person", "old"): 8, ("person", "new"): 8}


def alias(**fields: object) -> dict[str, object]:
    return {"type": "alias", "previousId": "old", "userId": "new", **fields}


def merge(previous: int, survivor: int, status: int = 200, **answer: object) -> Call:
    return Call(
        method="PUT",
        path=f"/v1/persons/{previous}/merge",
        body={"merge_with_id": survivor},
        response=ok({"id": survivor, **answer}, status=status),
    )


def ext(*pairs: tuple[str, object]) -> dict[str, object]:
    return {"externalId": [{"type": kind, "id": value} for kind, value in pairs]}


CASES = [
    Case(
        name="both found and different: previous merged into current",
        raw=alias(),
        calls=[search_person("old", 7), search_person("new", 8), merge(7, 8)],
        expect={"status": "sent", "identities": MERGED},
    ),
    Case(
        name="merge joins what is known of both persons' leads",
        raw=alias(),
        persons={"old": 7, "new": 8},
        leads={7: frozenset({"rpd:a"}), 8: frozenset({"rpd:b"})},
        calls=[merge(7, 8)],
        expect={
            "status": "sent",
            "identities": MERGED,
            "lead_origins": {8: frozenset({"rpd:a", "rpd:b"})},
        },
    ),
    Case(
        name="merge: the survivor is in the organization its answer names (the merged one's)",
        raw=alias(),
        persons={"old": 7, "new": 8},
        memberships={7: 500},
        calls=[merge(7, 8, org_id=500, merge_what_id=7)],
        expect={"status": "sent", "identities": MERGED, "memberships": {8: 500}},
    ),
    Case(
        name="merge: an answer naming no organization forgets the one known of the survivor",
        raw=alias(),
        persons={"old": 7, "new": 8},
        memberships={8: 300},
        calls=[merge(7, 8, org_id=None)],
        expect={"status": "sent", "memberships": {8: None}},
    ),
    Case(
        name="merge: an answer that does not say (offline) gives a survivor in none the merged "
        "person's organization",
        raw=alias(),
        persons={"old": 7, "new": 8},
        memberships={7: 500},
        calls=[merge(7, 8)],
        expect={"status": "sent", "memberships": {8: 500}},
    ),
    Case(
        name="merge: an answer that does not say leaves the survivor's own organization",
        raw=alias(),
        persons={"old": 7, "new": 8},
        memberships={7: 500, 8: 300},
        calls=[merge(7, 8)],
        expect={"status": "sent", "memberships": {}},
    ),
    Case(
        name="only previous found: re-keyed to the userId, with mapped traits",
        raw=alias(traits={"role": "CTO"}),
        calls=[
            search_person("old", 7),
            search_person("new"),
            patch_person(7, {"custom_fields": {ROLE: "CTO", USER_FIELD: "new"}}),
        ],
        expect={"status": "sent", "identities": {("person", "old"): 7, ("person", "new"): 7}},
    ),
    Case(
        name="only current found: updated with mapped traits",
        raw=alias(context={"traits": {"name": "Ann"}}),
        calls=[search_person("old"), search_person("new", 8), patch_person(8, {"name": "Ann"})],
        expect={"status": "sent", "identities": {("person", "new"): 8}},
    ),
    Case(
        name="only current found and nothing to write: unchanged",
        raw=alias(),
        calls=[search_person("old"), search_person("new", 8)],
        expect={"status": "unchanged", "identities": {("person", "new"): 8}},
    ),
    Case(
        name="neither found: fails (alias never creates)",
        raw=alias(traits={"name": "Ann"}),
        calls=[search_person("old"), search_person("new")],
        expect={
            "status": "failed",
            "reason": "alias: neither previous nor current person found",
            "stage": "lookup person",
            "retryable": False,
        },
    ),
    Case(
        name="both resolve to the same person: unchanged",
        raw=alias(),
        calls=[search_person("old", 8), search_person("new", 8)],
        expect={"status": "unchanged", "identities": MERGED},
    ),
    Case(
        name="external prev_person_id and curr_person_id: merged without lookups",
        raw={
            "type": "alias",
            "anonymousId": "a",
            "context": ext(("prev_person_id", 271), ("curr_person_id", 272)),
        },
        calls=[merge(271, 272)],
        expect={"status": "sent", "identities": {}},
    ),
    Case(
        name="external pipedrivePreviousId and pipedriveCurrentId beat the cache",
        raw=alias(context=ext(("pipedrivePreviousId", "271"), ("pipedriveCurrentId", 272))),
        persons={"old": 1, "new": 2},
        calls=[merge(271, 272)],
        expect={"status": "sent", "identities": {("person", "old"): 272, ("person", "new"): 272}},
    ),
    Case(
        name="previousId from traits.previousId",
        raw={"type": "alias", "userId": "new", "traits": {"previousId": "old"}},
        calls=[search_person("old", 7), search_person("new", 8), merge(7, 8)],
        expect={"status": "sent", "identities": MERGED},
    ),
    Case(
        name="previousId from context.traits.previousId",
        raw={"type": "alias", "userId": "new", "context": {"traits": {"previousId": "old"}}},
        calls=[search_person("old", 7), search_person("new", 8), merge(7, 8)],
        expect={"status": "sent"},
    ),
    Case(
        name="stale cached previous person (merge 404): forgotten, searched, gone: unchanged",
        raw=alias(),
        persons={"old": 3, "new": 8},
        calls=[merge(3, 8, status=404), search_person("old")],
        expect={
            "status": "unchanged",
            "identities": {("person", "old"): None, ("person", "new"): 8},
        },
    ),
    Case(
        name="stale cached survivor (merge 400 naming merge_with_id): forgotten, searched, merged",
        raw=alias(),
        persons={"old": 3, "new": 8},
        calls=[
            Call(
                method="PUT",
                path="/v1/persons/3/merge",
                body={"merge_with_id": 8},
                response=ApiResponse(status=400, error="merge_with_id: person 8 was merged"),
            ),
            search_person("new", 9),
            merge(3, 9),
        ],
        expect={
            "status": "sent",
            "identities": {("person", "old"): 9, ("person", "new"): 9},
        },
    ),
    Case(
        name="no previousId: fails",
        raw={"type": "alias", "userId": "new"},
        expect={
            "status": "failed",
            "reason": "alias needs a previousId or a prev_person_id external id",
            "stage": "validate",
        },
    ),
    Case(
        name="no userId: fails",
        raw={"type": "alias", "previousId": "old"},
        expect={
            "status": "failed",
            "reason": "alias needs a userId or a curr_person_id external id",
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_alias(case: Case) -> None:
    case.verify()


def test_memory_known_follows_merges_and_alias_events_order_against_all() -> None:
    from rudder_pipedrive_cli.core.events import EVERY, parse_event
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.protocol import Outcome

    known = IdentityStore()
    known.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "u-a"): 2}, merged={1: 2}))
    )
    known.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "u-b"): 3}, merged={2: 3}))
    )
    assert (known.person_id("u-a"), known.person_id("u-b"), known.person_id("u-x")) == (3, 3, None)
    alias = parse_event({"type": "alias", "previousId": "u-a", "userId": "u-b"}, "f:1")
    assert alias.identities == frozenset({EVERY})


def test_memory_known_forgets_a_lead_list_made_incomplete() -> None:
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.protocol import Outcome

    known = IdentityStore()
    known.learn(Outcome(status="sent", learned=Learned(lead_origins={5: frozenset({"rpd:m1"})})))
    known.learn(Outcome(status="sent", learned=Learned(lead_origins={5: None})))
    assert known.lead_origins(5) is None


def test_an_alias_of_a_previous_id_merged_before_merges_the_person_it_was_merged_into() -> None:
    """identify a, identify b, alias a -> b (a's person 1 merged into b's 2), identify c, alias
    a -> c: a's person is 2 now (the cache follows the merge, SPEC 4: it maps previousId and userId
    to the survivor), so 2 is merged into c's 3, b's userId with it; not `unchanged`."""
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.protocol import Outcome

    known = IdentityStore()
    known.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "a"): 1, ("person", "b"): 2}))
    )
    known.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "a"): 2}, merged={1: 2}))
    )
    known.learn(Outcome(status="sent", learned=Learned(identities={("person", "c"): 3})))
    raw = {"type": "alias", "previousId": "a", "userId": "c"}
    outcome = run(raw, [merge(2, 3)], known=known)
    check(
        outcome, status="sent", identities={("person", "a"): 3, ("person", "c"): 3}, merged={2: 3}
    )
    known.learn(outcome)
    assert [known.person_id(user) for user in "abc"] == [3, 3, 3]
