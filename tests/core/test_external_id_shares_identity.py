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
    USER_FIELD,
    check,
    ok,
    patch,
    patch_org,
    patch_person,
    run,
)
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
