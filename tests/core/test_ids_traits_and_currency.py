"""Odd external ids, traits mapped to standard fields, the event's
currency for monetary fields, huge numeric ids, empty top-level traits, anonymous aliases."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from helpers_core import CONFIG, USER_FIELD

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome

FEE = "c0ffee" + "0" * 34


def replay(raw: dict[str, Any], config: PlanConfig = CONFIG) -> tuple[Outcome, list[ApiRequest]]:
    """Drive a plan against an account where nothing is found and every write succeeds."""
    seen: list[ApiRequest] = []

    def answer(request: ApiRequest) -> ApiResponse:
        seen.append(request)
        if request.method == "GET":
            return ApiResponse(status=200, data=[])
        return ApiResponse(status=201, data={"id": 100, **(request.body or {})})

    event = parse_event({"messageId": "m-1", **raw}, "t:1")
    return drive(plan_event(event, config, IdentityStore()), answer), seen


def test_a_non_ascii_digit_external_id_fails_the_event_only() -> None:
    raw = {"type": "identify", "context": {"externalId": [{"type": "person_id", "id": "①"}]}}
    outcome, requests = replay(raw)
    assert (outcome.status, outcome.reason) == (
        "failed",
        'external id person_id = "①" is not a Pipedrive id (a whole number from 1 up)',
    )
    assert requests == []


def test_traits_mapped_to_standard_fields_take_their_shape() -> None:
    config = replace(
        CONFIG,
        person_fields={"workEmail": "emails", "vis": "visible_to", "signup": "add_time"},
    )
    raw = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"name": "Ann", "workEmail": "ann@work.io", "vis": "3", "signup": "2019-05-05"},
    }
    outcome, requests = replay(raw, config)
    assert outcome.status == "sent"
    body = requests[-1].body or {}
    assert body["emails"] == [{"value": "ann@work.io", "primary": True, "label": "work"}]
    assert body["visible_to"] == 3
    assert body["add_time"] == "2019-05-05T00:00:00Z"


def test_unusable_values_mapped_to_standard_fields_are_left_out_as_their_trait_is() -> None:
    config = replace(
        CONFIG,
        person_fields={"workEmail": "emails", "cell": "phones", "vis": "visible_to"},
    )
    traits = {"name": "Ann", "workEmail": ["n/a", 5], "cell": [{"no": "value"}], "vis": "2"}
    outcome, requests = replay({"type": "identify", "userId": "u-1", "traits": traits}, config)
    assert outcome.status == "sent"
    assert requests[-1].body == {
        "name": "Ann",
        "custom_fields": {USER_FIELD: "u-1"},
    }
    assert list(outcome.warnings) == [
        "emails = n/a is not an email address; dropped",
        "emails = 5 is not an email address; dropped",
        "visible_to = 2 is not one of 1, 3, 5, 7; dropped",
    ]


def test_a_trait_mapped_to_a_field_rpd_sets_is_dropped_with_a_warning() -> None:
    config = replace(CONFIG, person_fields={"company": "org_id"})
    raw = {"type": "identify", "userId": "u-1", "traits": {"name": "Ann", "company": 5}}
    outcome, requests = replay(raw, config)
    assert "org_id" not in (requests[-1].body or {})
    assert "a trait is mapped to org_id, which rpd sets itself; dropped" in outcome.warnings


STANDARD = {
    key: FieldInfo(key=key, name=key, field_type="varchar", is_custom=False)
    for key in ("first_name", "people_count", "stage_id")
}
UNWRITABLE = (
    "a trait is mapped to {}, a standard field Pipedrive's API does not let rpd write; dropped "
    "(map it to a custom field)"
)
NO_FIELD = "a trait is mapped to {}, which is no field of this account; dropped"
OFFLINE = (
    "a trait is mapped to {}, which only the account's field listing can resolve (dry-run: "
    "--lookups, or the state of an earlier send); left out"
)


@pytest.mark.parametrize(
    ("fields", "kind", "key", "warning"),
    [
        ({"person_fields": {"given": "first_name"}}, "identify", "first_name", UNWRITABLE),
        ({"org_fields": {"size": "people_count"}}, "group", "people_count", UNWRITABLE),
        ({"lead_fields": {"given": "stage_id"}}, "track", "stage_id", UNWRITABLE),
        ({"person_fields": {"given": "Given name"}}, "identify", "Given name", NO_FIELD),
        (
            {"person_fields": {"given": "Given name"}, "field_types": {}},
            "identify",
            "Given name",
            OFFLINE,
        ),
        (
            {"lead_fields": {"given": "Given name"}, "field_types": {}},
            "track",
            "Given name",
            OFFLINE,
        ),
    ],
)
def test_a_trait_mapped_to_a_standard_field_no_write_takes_is_dropped_with_a_warning(
    fields: dict[str, Any], kind: str, key: str, warning: str
) -> None:
    fields.setdefault("field_types", {**CONFIG.field_types, **STANDARD})
    config = replace(CONFIG, **fields)
    traits = {"name": "Ann", "given": "Ann", "size": 4}
    raw = {
        "type": kind,
        "userId": "u-1",
        "groupId": "g-1",
        "event": "Signed up",
        "traits": traits,
        "properties": traits,
        "context": {"traits": traits},
    }
    outcome, requests = replay(raw, config)
    assert outcome.status == "sent"
    assert all(key not in (request.body or {}) for request in requests)
    assert outcome.warnings == (warning.format(key),)


def test_a_property_mapped_to_the_lead_value_is_an_amount_with_the_events_currency() -> None:
    config = replace(CONFIG, lead_fields={"price": "value"}, default_currency="USD")
    raw = {
        "type": "track",
        "userId": "u-1",
        "event": "Quote",
        "properties": {"price": 250, "currency": "eur"},
        "context": {"traits": {"name": "Lee"}},
    }
    outcome, requests = replay(raw, config)
    assert outcome.status == "sent"
    assert (requests[-1].body or {})["value"] == {"amount": 250, "currency": "EUR"}


def test_a_monetary_custom_field_takes_the_events_currency() -> None:
    money = FieldInfo(key=FEE, name="Fee", field_type="monetary")
    config = replace(
        CONFIG,
        lead_fields={"fee": FEE},
        default_currency="USD",
        field_types={**CONFIG.field_types, FEE: money},
    )
    raw = {
        "type": "track",
        "userId": "u-1",
        "event": "Quote",
        "properties": {"fee": 100, "currency": "EUR"},
        "context": {"traits": {"name": "Lee"}},
    }
    _, requests = replay(raw, config)
    body = requests[-1].body or {}
    assert (body[FEE], body[FEE + "_currency"]) == (100, "EUR")


def test_a_numeric_id_too_large_to_be_exact_fails_the_event() -> None:
    event = parse_event({"type": "identify", "userId": 1.2345678901234567e22}, "t:1")
    assert event.refused is not None
    assert (event.type, event.refused.reason, event.refused.redacted) == (
        "identify",
        "userId 1.2345678901234568e+22 is a number too large to compare exactly (JSON numbers "
        "past 2**53 are rounded when read): send it as a string",
        "userId is a number too large to compare exactly: send it as a string",
    )
    outcome, requests = replay({"type": "identify", "userId": 1.2345678901234567e22})
    assert (outcome, requests) == (event.refused, [])
    assert parse_event({"type": "identify", "userId": 2**53 - 1}, "t:1").user_id == str(2**53 - 1)


def test_an_empty_top_level_trait_does_not_hide_context_traits() -> None:
    raw = {
        "type": "identify",
        "userId": "u-1",
        "traits": {"name": ""},
        "context": {"traits": {"name": "Bob"}},
    }
    outcome, requests = replay(raw)
    assert outcome.status == "sent"
    assert (requests[-1].body or {})["name"] == "Bob"
    assert (requests[-1].body or {})["custom_fields"][USER_FIELD] == "u-1"


def test_an_anonymous_alias_is_skipped() -> None:
    outcome, requests = replay({"type": "alias", "anonymousId": "a-1", "previousId": "a-1"})
    assert (outcome.status, outcome.reason, requests) == ("skipped", "anonymous", [])
    outcome, _ = replay({"type": "alias", "previousId": "old"})
    assert outcome.reason == "alias needs a userId or a curr_person_id external id"
