"""An external id names a record for an identity that another record holds (SPEC 4: the external id
wins, so the update is made): identify writes the userId onto the person it names, group the
groupId onto the organization it names, and when the cache or the identity index knows that
identity as another record's (no request asked for it), a warning names both, since both hold it
now and a later lookup without the cache takes the lowest id as an ambiguous identity."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from helpers_core import (
    CONFIG,
    GROUP_FIELD,
    ROLE,
    USER_FIELD,
    check,
    create_org,
    create_person,
    ok,
    patch,
    patch_org,
    patch_person,
    run,
    search_org,
    search_person,
)
from test_alias import merge
from test_index import built

from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.protocol import PdId


def ext(kind: str, value: PdId) -> dict[str, Any]:
    return {"externalId": [{"type": kind, "id": value}]}


IDENTIFY = {
    "type": "identify",
    "userId": "u-9",
    "traits": {"name": "Ann"},
    "context": ext("person_id", 6),
}
PATCH_6 = patch_person(6, {"name": "Ann", "custom_fields": {USER_FIELD: "u-9"}})
BOTH = (
    "person 6 (person_id external id) now holds userId u-9, which person 10 holds too: merge them "
    "or clear it from one"
)


def known(
    persons: dict[str, PdId] | None = None, orgs: dict[str, PdId] | None = None
) -> IdentityStore:
    store = IdentityStore()
    store.persons.update(persons or {})
    store.orgs.update(orgs or {})
    return store


def test_an_identify_naming_another_person_than_its_cached_userid_s_warns_naming_both() -> None:
    outcome = run(IDENTIFY, [PATCH_6], known=known({"u-9": 10}))
    check(
        outcome,
        status="sent",
        warnings=[BOTH],
        identities={("person", "u-9"): 6},
    )
    assert outcome.warnings[0].redacted == (  # type: ignore[attr-defined]
        "an external id's person now holds a userId another person holds too: merge them or "
        "clear it from one"
    )


def test_the_identity_index_s_holders_are_named_too_without_a_request() -> None:
    index = built(
        {"id": 10, "custom_fields": {USER_FIELD: "u-9"}},
        {"id": 3, "custom_fields": {USER_FIELD: "u-9"}},
        {"id": 6, "custom_fields": {USER_FIELD: "u-5"}},
    )
    outcome = run(IDENTIFY, [PATCH_6], known=known(), index=index)
    check(
        outcome,
        status="sent",
        warnings=[
            "person 6 (person_id external id) now holds userId u-9, which persons 3 and 10 hold "
            "too: merge them or clear it from one"
        ],
    )


def test_no_warning_when_the_userid_is_its_own_or_unknown_or_not_written() -> None:
    for store in (known({"u-9": 6}), known({"u-1": 10})):
        check(run(IDENTIFY, [PATCH_6], known=store), status="sent", warnings=[])
    # No userId field set: the userId is not written, nobody holds it because of this event.
    config = replace(CONFIG, user_id_field="")
    outcome = run(
        {**IDENTIFY, "userId": None, "anonymousId": "a"},
        [patch_person(6, {"name": "Ann"})],
        known=known({"u-9": 10}),
        config=config,
    )
    check(outcome, status="sent", warnings=[])


def test_a_cached_person_an_external_id_gave_another_userid_is_not_named() -> None:
    store = known({"u-9": 10})
    store.holders[("person", 10)] = ("u-7",)  # an external id wrote u-7 into person 10
    store.rekeyed = True
    check(run(IDENTIFY, [PATCH_6], known=store), status="sent", warnings=[])


def test_a_failed_update_says_nothing_of_both_holding_it() -> None:
    outcome = run(
        IDENTIFY,
        [patch_person(6, {"name": "Ann", "custom_fields": {USER_FIELD: "u-9"}}, 404)],
        known=known({"u-9": 10}),
    )
    check(
        outcome, status="failed", warnings=[], reason="person 6 (person_id external id) not found"
    )


def test_a_group_naming_another_organization_than_its_cached_groupid_s_warns_naming_both() -> None:
    raw = {
        "type": "group",
        "userId": "u-1",
        "groupId": "g-1",
        "traits": {"name": "Acme"},
        "context": ext("org_id", 7),
    }
    outcome = run(
        raw,
        [
            patch_org(7, {"name": "Acme", "custom_fields": {GROUP_FIELD: "g-1"}}),
            patch("persons", 42, {"org_id": 7}, ok({"id": 42, "org_id": 7})),
        ],
        known=known({"u-1": 42}, {"g-1": 70}),
    )
    check(
        outcome,
        status="sent",
        warnings=[
            "organization 7 (org_id external id) now holds groupId g-1, which organization 70 "
            "holds too: merge them or clear it from one"
        ],
        identities={("org", "g-1"): 7},
    )


def test_a_userid_whose_person_an_external_id_gave_another_is_searched_not_cached() -> None:
    """Person 25 was u-5's (this run created it); an identify names it by person_id with userId
    u-99, which writes u-99 into its userId field: Pipedrive no longer finds it for u-5. u-5's
    next identify must not PATCH it (its email would land on u-99's person, u-5 left with none,
    all reported sent) but search u-5 as a run without the cache does, and create its person."""
    store = known({"u-5": 25})
    rekey = {**IDENTIFY, "userId": "u-99", "context": ext("person_id", 25)}
    outcome = run(
        rekey,
        [patch_person(25, {"name": "Ann", "custom_fields": {USER_FIELD: "u-99"}})],
        known=store,
    )
    store.learn(outcome)
    five = {"type": "identify", "userId": "u-5", "traits": {"name": "Five", "email": "f@x.io"}}
    body = {
        "name": "Five",
        "emails": [{"value": "f@x.io", "primary": True, "label": "work"}],
        "custom_fields": {USER_FIELD: "u-5"},
    }
    later = run(five, [search_person("u-5"), create_person(body, 26)], known=store)
    check(later, status="sent", identities={("person", "u-5"): 26})
    # u-99, which the external id gave it, is still taken from the cache: no search.
    ninety = {"type": "identify", "userId": "u-99", "traits": {"role": "CTO"}}
    role = patch_person(25, {"custom_fields": {ROLE: "CTO"}})
    check(run(ninety, [role], known=store), status="sent", identities={})


def test_a_groupid_whose_organization_an_external_id_gave_another_is_searched() -> None:
    store = known({"u-1": 42}, {"g-2": 7})
    raw = {"type": "group", "userId": "u-1", "groupId": "g-1", "context": ext("org_id", 7)}
    link = patch("persons", 42, {"org_id": 7}, ok({"id": 42, "org_id": 7}))
    rekey = patch_org(7, {"custom_fields": {GROUP_FIELD: "g-1"}})
    store.learn(run({**raw, "traits": {}}, [rekey, link], known=store))
    later = {"type": "group", "userId": "u-1", "groupId": "g-2", "traits": {"name": "Two"}}
    body = {"name": "Two", "custom_fields": {GROUP_FIELD: "g-2"}}
    made = create_org(body, 8)
    outcome = run(
        later, [search_org("g-2"), made, patch("persons", 42, {"org_id": 8}, ok())], known=store
    )
    check(outcome, status="sent", identities={("org", "g-2"): 8})


def given_u99() -> IdentityStore:
    """Person 25, u-5's, given userId u-99 by a person_id external id."""
    store = known({"u-5": 25})
    rekey = {**IDENTIFY, "userId": "u-99", "context": ext("person_id", 25)}
    patched = patch_person(25, {"name": "Ann", "custom_fields": {USER_FIELD: "u-99"}})
    store.learn(run(rekey, [patched], known=store))
    return store


def test_an_alias_makes_the_userids_it_names_the_person_s_own_again() -> None:
    """u-5 aliased to u-99 after the external id gave person 25 to u-99: the alias says they are
    one person, so u-5's later events take person 25 from the cache, with no search."""
    store = given_u99()
    aliased = run(
        {"type": "alias", "previousId": "u-5", "userId": "u-99"},
        [search_person("u-5")],
        known=store,
    )
    check(aliased, status="unchanged", holders={("person", 25): ("u-99", "u-5")})
    store.learn(aliased)
    five = {"type": "identify", "userId": "u-5", "traits": {"role": "CTO"}}
    role = patch_person(25, {"custom_fields": {ROLE: "CTO"}})
    check(run(five, [role], known=store), status="sent")


def test_an_alias_of_the_userid_the_external_id_gave_leaves_the_earlier_userid_searched() -> None:
    """u-5's person 25 given u-99 by an external id, then u-99 aliased to u-7 (a re-key of person
    25): the alias names u-99 and u-7, not u-5, which Pipedrive still does not find there. u-5's
    next identify must search it and make its own person, not PATCH u-7's."""
    store = given_u99()
    aliased = run(
        {"type": "alias", "previousId": "u-99", "userId": "u-7"},
        [search_person("u-7"), patch_person(25, {"custom_fields": {USER_FIELD: "u-7"}})],
        known=store,
    )
    check(aliased, status="sent", holders={("person", 25): ("u-99", "u-7")})
    store.learn(aliased)
    five = {"type": "identify", "userId": "u-5", "traits": {"name": "Five"}}
    body = {"name": "Five", "custom_fields": {USER_FIELD: "u-5"}}
    later = run(five, [search_person("u-5"), create_person(body, 26)], known=store)
    check(later, status="sent", identities={("person", "u-5"): 26})


def test_an_alias_merging_that_person_into_another_leaves_the_earlier_userid_searched() -> None:
    """u-99 (given person 25, u-5's, by an external id) aliased to u-c, whose person 30 exists:
    person 25 is merged into 30. u-5, cached for person 25, follows the merge to person 30 in
    the cache, but Pipedrive finds it nowhere (person 25 held u-99, and is gone): its next
    identify searches it and makes its own person, not PATCH u-c's."""
    store = given_u99()
    store.persons["u-c"] = 30
    store.learn(
        run({"type": "alias", "previousId": "u-99", "userId": "u-c"}, [merge(25, 30)], known=store)
    )
    five = {"type": "identify", "userId": "u-5", "traits": {"name": "Five"}}
    body = {"name": "Five", "custom_fields": {USER_FIELD: "u-5"}}
    later = run(five, [search_person("u-5"), create_person(body, 26)], known=store)
    check(later, status="sent", identities={("person", "u-5"): 26})
    # u-99 and u-c are person 30's: from the cache, no search.
    for user_id in ("u-99", "u-c"):
        role = {"type": "identify", "userId": user_id, "traits": {"role": "CTO"}}
        check(
            run(role, [patch_person(30, {"custom_fields": {ROLE: "CTO"}})], known=store),
            status="sent",
        )
