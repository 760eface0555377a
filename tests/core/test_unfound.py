"""The userIds searched for in vain along an alias chain (core/identity_cache.py
`IdentityStore.unfound`): `find`'s walk along a chain takes them as not found without a
search, once the cache knows no person of one and no create of one is pending; an event's own
userId is searched whatever was noted; bounded, one forgotten for room is searched again."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from helpers_core import (
    CONFIG,
    SENT_AT,
    USER_FIELD,
    check,
    create_person,
    listing,
    patch_person,
    person_record,
    run,
    search_person,
)

from rudder_pipedrive_cli.core import identity_cache
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.protocol import Learned, Outcome

CHAIN = replace(CONFIG, aliases={"u-a": "u-b", "u-b": "u-c"})
IDENTIFY_A: dict[str, Any] = {"type": "identify", "userId": "u-a", "traits": {"name": "A"}}
A_BODY = {"name": "A", "custom_fields": {USER_FIELD: "u-a"}}


def taught(**learned: Any) -> Outcome:
    return Outcome(status="sent", learned=Learned(**learned))


def test_the_userids_a_walk_searched_in_vain_are_noted_then_not_searched_again() -> None:
    known = IdentityStore()
    calls = [search_person("u-a"), search_person("u-b"), search_person("u-c")]
    first = run(IDENTIFY_A, [*calls, create_person(A_BODY, 7)], config=CHAIN)
    check(first, status="sent", unfound=("u-b", "u-c"), identities={("person", "u-a"): 7})
    known.learn(first)
    assert known.unfound == {"u-b": None, "u-c": None}

    # u-b's identify: its own userId searched (another may have made its person since: it would
    # be created, or re-keyed there, again), not u-c along its chain; created.
    identify_b = {"type": "identify", "userId": "u-b", "traits": {"name": "B"}}
    b_body = {"name": "B", "custom_fields": {USER_FIELD: "u-b"}}
    calls = [search_person("u-b"), create_person(b_body, 8)]
    second = run(identify_b, calls, config=CHAIN, known=known)
    check(second, status="sent", unfound=(), identities={("person", "u-b"): 8})
    known.learn(second)
    assert known.unfound == {"u-c": None}  # u-b's person is known now: out


def test_a_userid_learned_or_left_pending_is_no_longer_taken_as_not_found() -> None:
    """A person learned for it (or forgotten: the cache may lose one Pipedrive still holds, re-
    keyed there by an alias) or a create of it left pending: it may be found, it is searched."""
    known = IdentityStore()
    known.learn(taught(unfound=("u-1", "u-2", "u-3", "u-4")))
    known.learn(taught(identities={("person", "u-1"): 5, ("org", "u-3"): 6}))
    known.learn(taught(identities={("person", "u-4"): None}))
    known.learn(taught(pending_creates={("person", "u-2"): SENT_AT}))
    assert known.unfound == {"u-3": None}  # an organization's groupId is another identity


def test_a_note_is_not_taken_for_a_userid_learned_or_left_pending() -> None:
    known = IdentityStore()
    known.learn(taught(identities={("person", "u-1"): 5}))
    known.learn(taught(pending_creates={("person", "u-2"): SENT_AT}))
    known.learn(taught(unfound=("u-1", "u-2", "u-3")))
    known.learn(taught(unfound=("u-4",), identities={("person", "u-4"): None}))
    known.learn(taught(unfound=("u-5",), pending_creates={("person", "u-5"): SENT_AT}))
    assert known.unfound == {"u-3": None}


def test_a_userid_noted_then_created_is_the_cache_s_and_one_left_pending_is_reconciled() -> None:
    """u-b and u-c noted; u-b's person then learned (created by this run), a create of u-c
    left pending: an event of u-b takes the cached person, one of u-c lists what landed first
    and takes it; neither is taken as not found, nor created again."""
    known = IdentityStore()
    known.learn(taught(unfound=("u-b", "u-c")))
    known.learn(taught(identities={("person", "u-b"): 8}))
    known.learn(taught(pending_creates={("person", "u-c"): SENT_AT}))
    identify_b = {"type": "identify", "userId": "u-b", "traits": {"name": "B"}}
    check(
        run(identify_b, [patch_person(8, {"name": "B"})], config=CHAIN, known=known),
        status="sent",
        writes=("persons updated",),  # the cached person's update: no search, no create
    )
    identify_c = {"type": "identify", "userId": "u-c", "traits": {"name": "C"}}
    calls = [listing("persons", [person_record(9, "u-c")]), patch_person(9, {"name": "C"})]
    check(
        run(identify_c, calls, config=CHAIN, known=known),
        status="sent",
        identities={("person", "u-c"): 9},
        pending_creates={("person", "u-c"): None},
    )


def test_a_userid_forgotten_for_room_is_searched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity_cache, "UNFOUND", 2)
    known = IdentityStore()
    known.learn(taught(unfound=("u-b", "u-c", "u-x")))
    assert known.unfound == {"u-c": None, "u-x": None}  # the first noted, first forgotten
    calls = [search_person("u-a"), search_person("u-b"), create_person(A_BODY, 7)]
    check(run(IDENTIFY_A, calls, config=CHAIN, known=known), status="sent", unfound=("u-b",))
