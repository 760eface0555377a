"""Field-level recency (issue 13 item 6): a write from an older event leaves the fields a later
event wrote alone; what every write wrote, and when, is in its outcome for the state to keep."""

from __future__ import annotations

from typing import Any

import pytest
from helpers_core import (
    ROLE,
    USER_FIELD,
    Call,
    check,
    create_org,
    create_person,
    patch_person,
    run,
    search_org,
    search_person,
)

from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.filters import event_time
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans.common import SUPERSEDED
from rudder_pipedrive_cli.core.protocol import ApiResponse, Learned, Outcome
from rudder_pipedrive_cli.core.recency import fresh, newest, stamp

T1 = "2026-10-01T09:00:00.000000Z"
T2 = "2026-10-02T09:00:00.000000Z"
T3 = "2026-10-03T09:00:00.000000Z"
OLD = {"emails": [{"value": "old@example.com", "primary": True, "label": "work"}]}
NEW_EMAILS = [{"value": "new@example.com", "primary": True, "label": "work"}]


def identify(at: str | None, **traits: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"type": "identify", "userId": "u-1", "traits": traits}
    if at is not None:
        raw["timestamp"] = at
    return raw


def known_person(**times: str) -> IdentityStore:
    known = IdentityStore()
    known.persons["u-1"] = 42
    known.times[("person", 42)] = dict(times)
    return known


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"timestamp": "2026-10-01T11:00:00+02:00"}, "2026-10-01T09:00:00.000000Z"),
        ({"originalTimestamp": "2026-10-01T09:00:00.25Z"}, "2026-10-01T09:00:00.250000Z"),
        ({"timestamp": "soon", "sentAt": "2026-10-01T09:00:00Z"}, T1),
        ({"sentAt": "0099-02-03T04:05:06.000007-01:00"}, "0099-02-03T05:05:06.000007Z"),
        ({}, ""),
        ({"timestamp": "2024-05-01T12:34:56.789Z"}, "2024-05-01T12:34:56.789000Z"),
        ({"timestamp": "2024-02-30T12:34:56.789Z", "sentAt": T1}, T1),
        ({"timestamp": "0001-01-01T00:00:00.000Z", "sentAt": T1}, T1),
        ({"timestamp": "2024-W18-3T12:34:56.789Z"}, "2024-05-01T12:34:56.789000Z"),
        ({"timestamp": "2024-05-01T12:34:56Z"}, "2024-05-01T12:34:56.000000Z"),
        ({"timestamp": "0001-01-01T00:00:00Z", "sentAt": T1}, T1),
    ],
    ids=[
        "timestamp in UTC",
        "originalTimestamp",
        "an unreadable one gives way",
        "fixed width before year 1000",
        "none",
        "RudderStack's usual form",
        "its form, not a date",
        "its form, Go's zero time",
        "its length, a week date",
        "RudderStack's usual form in seconds",
        "in seconds, Go's zero time",
    ],
)
def test_an_events_stamp_is_its_first_readable_time_in_utc(
    raw: dict[str, Any], expected: str
) -> None:
    event = parse_event({"type": "identify", "messageId": "m", "userId": "u", **raw}, "f:1")
    assert stamp(event) == expected


def test_the_usual_forms_stamp_is_the_one_any_time_gets() -> None:
    """RudderStack's usual `timestamp`s are stamped by their characters: the same stamp as from
    the time read and formatted (filters.event_time), for every one near those forms."""
    near = {"0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"}
    for usual in ("2024-05-01T12:34:56.789Z", "2024-02-29T12:34:56Z"):
        near.update((usual, usual[:-1], usual + "Z", usual[:-1] + "+00:00"))
        for at in range(len(usual)):
            for other in "09-T:.Z ze\u0663+":
                near.add(usual[:at] + other + usual[at + 1 :])
    for text in sorted(near):
        event = parse_event({"type": "identify", "userId": "u", "timestamp": text}, "f:1")
        when = event_time(event)
        formatted = "" if when is None else when.isoformat(timespec="microseconds")[:26] + "Z"
        assert stamp(event) == formatted, text


def test_an_older_event_leaves_the_fields_a_later_one_wrote() -> None:
    known = known_person(emails=T2, **{ROLE: T2})
    raw = identify(T1, name="Ann", email="old@example.com", role="Intern")
    outcome = run(raw, [patch_person(42, {"name": "Ann"})], known=known)
    check(outcome, status="sent", reason="", recency={("person", 42): {"name": T1}})


def test_an_older_event_with_nothing_newer_left_is_unchanged_superseded() -> None:
    known = known_person(emails=T2, **{ROLE: T2})
    outcome = run(identify(T1, email="old@example.com", role="Intern"), [], known=known)
    check(outcome, status="unchanged", reason=SUPERSEDED, recency={})


def test_an_event_of_the_same_time_or_later_writes() -> None:
    known = known_person(emails=T2, **{ROLE: T1})
    body = {"emails": NEW_EMAILS, "custom_fields": {ROLE: "CTO"}}
    outcome = run(
        identify(T2, email="new@example.com", role="CTO"), [patch_person(42, body)], known=known
    )
    check(outcome, status="sent", recency={("person", 42): {"emails": T2, ROLE: T2}})


def test_a_create_records_every_field_it_wrote_but_the_identity_and_add_time() -> None:
    raw = identify(T2, name="Ann", email="new@example.com", role="CTO")
    body = {
        "name": "Ann",
        "emails": NEW_EMAILS,
        "add_time": "2026-10-02T09:00:00Z",
        "custom_fields": {ROLE: "CTO", USER_FIELD: "u-1"},
    }
    outcome = run(raw, [search_person("u-1"), create_person(body, pid=42)])
    check(
        outcome,
        status="sent",
        recency={("person", 42): {"name": T2, "emails": T2, ROLE: T2}},
    )


def test_without_any_time_an_event_writes_only_where_no_timed_event_did() -> None:
    known = known_person(emails=T2, name="")
    outcome = run(
        identify(None, name="Ann", email="old@example.com"),
        [patch_person(42, {"name": "Ann"})],
        known=known,
    )
    check(outcome, status="sent", recency={("person", 42): {"name": ""}})


def test_a_re_key_writes_the_identity_even_when_every_field_is_newer() -> None:
    known = IdentityStore()
    known.persons["u-a"] = 42
    known.times[("person", 42)] = {ROLE: T3}
    raw = {
        "type": "alias",
        "previousId": "u-a",
        "userId": "u-b",
        "timestamp": T1,
        "traits": {"role": "Intern"},
    }
    calls = [search_person("u-b"), patch_person(42, {"custom_fields": {USER_FIELD: "u-b"}})]
    outcome = run(raw, calls, known=known)
    check(outcome, status="sent")


def test_a_merge_gives_the_survivor_its_own_times_else_the_merged_persons() -> None:
    """The survivor's values win a merge: its own times stay (the merged role's later T3 went
    with the value the merge dropped); a field it had none of takes the merged one's (name).
    Emails and phones are lists a merge may join: the later time of the two (phones T3)."""
    known = IdentityStore()
    known.persons.update({"u-a": 1, "u-b": 2})
    known.times[("person", 1)] = {"emails": T1, "phones": T3, "name": T3, ROLE: T3}
    known.times[("person", 2)] = {"emails": T2, "phones": T2, ROLE: T2}
    raw = {"type": "alias", "previousId": "u-a", "userId": "u-b", "timestamp": T3}
    merge = ApiResponse(status=200, data={"id": 2})
    calls = [
        Call(method="PUT", path="/v1/persons/1/merge", body={"merge_with_id": 2}, response=merge)
    ]
    outcome = run(raw, calls, known=known)
    check(
        outcome,
        status="sent",
        recency={("person", 2): {"emails": T2, "phones": T3, "name": T3, ROLE: T2}},
    )
    known.learn(outcome)
    # An older identify of the merged-away userId, resent later: nothing of it is newer.
    resent = run(
        {**identify(T1, name="A", email="old@example.com"), "userId": "u-a"}, [], known=known
    )
    check(resent, status="unchanged", reason=SUPERSEDED)


def test_an_older_group_event_does_not_move_the_person_back() -> None:
    known = known_person(org_id=T2)
    known.orgs["g-1"] = 500
    raw = {
        "type": "group",
        "userId": "u-1",
        "groupId": "g-1",
        "timestamp": T1,
        "traits": {},
    }
    outcome = run(raw, [], known=known)
    check(outcome, status="unchanged", reason=SUPERSEDED, memberships={})


def test_an_organization_created_records_its_fields() -> None:
    raw = {
        "type": "group",
        "userId": "u-1",
        "groupId": "g-1",
        "timestamp": T2,
        "traits": {"name": "Acme"},
    }
    known = IdentityStore()
    known.persons["u-1"] = 42
    org = {
        "name": "Acme",
        "add_time": "2026-10-02T09:00:00Z",
        "custom_fields": {"872513dc3f908b99275edf2d09fcc9a467df9fa5": "g-1"},
    }
    calls = [search_org("g-1"), create_org(org, oid=500), patch_person(42, {"org_id": 500})]
    outcome = run(raw, calls, known=known)
    check(
        outcome,
        status="sent",
        recency={("org", 500): {"name": T2}, ("person", 42): {"org_id": T2}},
    )


def test_the_learned_times_keep_the_later_of_each_field() -> None:
    known = IdentityStore()
    known.learn(
        Outcome(
            status="sent", learned=Learned(recency={("person", 42): {"name": T2, "emails": T1}})
        )
    )
    known.learn(
        Outcome(
            status="sent", learned=Learned(recency={("person", 42): {"name": T1, "emails": T3}})
        )
    )
    assert known.times_at(("person", 42)) == {"name": T2, "emails": T3}
    # A write no older than every field's time (most: one event's) takes all it wrote, and keeps
    # the fields it did not write; on a tie, the later write's.
    known.learn(
        Outcome(
            status="sent", learned=Learned(recency={("person", 42): {"name": T3, "phones": T3}})
        )
    )
    assert known.times_at(("person", 42)) == {"name": T3, "emails": T3, "phones": T3}
    assert newest({"a": T1, "b": T2}, {"b": T2, "c": T2}) == {"a": T1, "b": T2, "c": T2}
    assert newest({}, {"a": T1}) == {"a": T1} and newest({"a": T1}, {}) == {"a": T1}


def test_fresh_keeps_a_custom_field_no_later_event_wrote() -> None:
    body = {"name": "Ann", "custom_fields": {ROLE: "Intern", USER_FIELD: "u-1", "x": 1}}
    kept, left_out = fresh(body, {ROLE: T2, USER_FIELD: T3, "name": T1}, T1, USER_FIELD)
    assert (kept, left_out) == ({"name": "Ann", "custom_fields": {USER_FIELD: "u-1", "x": 1}}, True)
    assert newest({"a": T1, "b": T3}, {"a": T2}) == {"a": T2, "b": T3}
