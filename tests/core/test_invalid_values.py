"""Values that cannot be what their field takes (SPEC 3 `[fields] on_invalid`, issue 14 item 5,
issue 20 item 6): "fail" (the default) fails the event naming field and value; "drop" leaves the
value out with a warning naming them, and the event still goes. A currency must be a 3-letter
code, and an amount is never sent in another currency than the event's."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from helpers_core import (
    CONFIG,
    EMPLOYEES,
    GROUP_FIELD,
    PLAN,
    USER_FIELD,
    Case,
    create_lead,
    create_org,
    patch_person,
    refused,
    search_org,
    search_person,
)

from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig

ORIGIN = "rpd:m-1"
FEE = "c0ffee" + "0" * 34
FAIL = replace(
    CONFIG,
    default_currency="EUR",
    lead_fields={"fee": FEE, "price": "value"},
    field_types={
        **CONFIG.field_types,
        FEE: FieldInfo(key=FEE, name="Fee", field_type="monetary"),
        "value": FieldInfo(key="value", name="Value", field_type="monetary", is_custom=False),
    },
)
DROP = replace(FAIL, on_invalid="drop")


def track(**properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Signed Up", "userId": "u-1", "properties": properties}


def lead(**fields: Any) -> dict[str, Any]:
    return {"title": "Signed Up", "origin_id": ORIGIN, "person_id": 42, **fields}


def refused_track(
    name: str, raw: dict[str, Any], reason: str, redacted: str, config: PlanConfig = FAIL
) -> Case:
    """A known person without leads (under FAIL): the event fails before any request."""
    return Case(
        name=name,
        raw=raw,
        config=config,
        persons={"u-1": 42},
        leads={42: frozenset()},
        expect=refused(reason, redacted),
    )


def leads_case(name: str, raw: dict[str, Any], body: dict[str, Any], **expect: Any) -> Case:
    """A known person without leads under DROP (or expect's config): one POST /v1/leads."""
    config = expect.pop("config", DROP)
    return Case(
        name=name,
        raw=raw,
        config=config,
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[create_lead(body)],
        expect={"status": "sent", "warnings": (), **expect},
    )


NOT_A_CODE = "currency = {} is not a 3-letter currency code"
VALUE_LEFT_OUT = "; the lead's value is left out"

CURRENCY_CASES = [
    leads_case(
        "a currency in any case is upper-cased",
        track(revenue=5, currency=" eur "),
        lead(value={"amount": 5, "currency": "EUR"}),
        config=FAIL,
    ),
    *(
        refused_track(
            f"currency {shown} with on_invalid fail: the event fails, nothing is sent",
            track(revenue=5, currency=currency),
            NOT_A_CODE.format(shown),
            "currency is not a 3-letter currency code",
        )
        for currency, shown in (
            (["EUR"], '["EUR"]'),
            ("US Dollars", "US Dollars"),
            (978, "978"),
            ("EU", "EU"),
            ("€UR", "€UR"),
        )
    ),
    leads_case(
        "currency not a code with on_invalid drop: the lead goes without a value, not in the "
        "default currency",
        track(revenue=5, currency=["EUR"]),
        lead(),
        warnings=(NOT_A_CODE.format('["EUR"]') + VALUE_LEFT_OUT,),
    ),
    leads_case(
        "a currency that is not a code but no amount: nothing needs it, nothing to say",
        track(currency="US Dollars"),
        lead(),
        config=FAIL,
    ),
    leads_case(
        "a monetary field's bare number in an event currency that is not a code: dropped",
        track(fee=3, currency="US Dollars"),
        lead(),
        warnings=(
            "cannot convert fee = 3 for field Fee (monetary): expected a 3-letter currency "
            "code, not US Dollars; dropped",
        ),
    ),
    refused_track(
        "a monetary field's own currency that is not a code fails the event by default",
        track(fee={"value": 1, "currency": 978}),
        'cannot convert fee = {"value":1,"currency":978} for field Fee (monetary): expected '
        "a 3-letter currency code, not 978",
        "cannot convert fee for field Fee (monetary)",
    ),
    refused_track(
        "a property mapped to the lead's Value with a currency that is not a code: fails",
        track(price={"amount": 5, "currency": "dollars"}),
        'cannot convert price = {"amount":5,"currency":"dollars"} for field Value '
        "(monetary): expected a 3-letter currency code, not dollars",
        "cannot convert price for field Value (monetary)",
    ),
    refused_track(
        "the same offline (no field listing, a dry-run): fails as a send would",
        track(price={"amount": 5, "currency": "dollars"}),
        'cannot convert {"amount":5,"currency":"dollars"} for the lead\'s value: expected a '
        "3-letter currency code, not dollars",
        "cannot convert a mapped value for the lead's value",
        config=replace(FAIL, field_types={}),
    ),
    leads_case(
        "the same offline with on_invalid drop: the lead goes without it, with a warning",
        track(price={"amount": 5, "currency": "dollars"}),
        lead(),
        config=replace(DROP, field_types={}),
        warnings=(
            'cannot convert {"amount":5,"currency":"dollars"} for the lead\'s value: expected a '
            "3-letter currency code, not dollars; left out",
        ),
    ),
]

PLAN_DROPPED = (
    "cannot convert plan = Starter for field Plan (enum): expected one of Free, Pro, Enterprise"
)
MAPPED_CASES = [
    Case(
        name="an enum label that is not an option, on_invalid fail: the event fails",
        raw={"type": "identify", "userId": "u-1", "traits": {"name": "Ann", "plan": "Starter"}},
        config=FAIL,
        calls=[search_person("u-1", 42)],
        expect=refused(PLAN_DROPPED, "cannot convert plan for field Plan (enum)"),
    ),
    Case(
        name="an enum label that is not an option, on_invalid drop: left out, the event goes",
        raw={
            "type": "identify",
            "userId": "u-1",
            "traits": {"name": "Ann", "plan": "Starter", "role": "Eng"},
        },
        config=DROP,
        calls=[
            search_person("u-1", 42),
            patch_person(
                42, {"name": "Ann", "custom_fields": {CONFIG.person_fields["role"]: "Eng"}}
            ),
        ],
        expect={"status": "sent", "warnings": (PLAN_DROPPED + "; dropped",)},
    ),
    Case(
        name="a number that is not a number, on_invalid drop: the organization goes without it",
        raw={
            "type": "group",
            "userId": "u-1",
            "groupId": "g-1",
            "traits": {"name": "Acme", "employees": "many"},
        },
        config=DROP,
        persons={"u-1": 42},
        calls=[
            search_org("g-1"),
            create_org({"name": "Acme", "custom_fields": {GROUP_FIELD: "g-1"}}),
            patch_person(42, {"org_id": 500}),
        ],
        expect={
            "status": "sent",
            "warnings": (
                "cannot convert employees = many for field Employees (double): expected a "
                "number; dropped",
            ),
        },
    ),
]


@pytest.mark.parametrize("case", CURRENCY_CASES + MAPPED_CASES, ids=lambda c: c.name)
def test_invalid_values(case: Case) -> None:
    case.verify()


def test_a_dropped_value_is_warned_about_in_words_without_it() -> None:
    outcome = MAPPED_CASES[1].play()
    (warning,) = outcome.warnings
    assert warning.redacted == "cannot convert plan for field Plan (enum); dropped"  # type: ignore[attr-defined]
    assert PLAN not in warning and EMPLOYEES not in warning and USER_FIELD not in warning


# A value a message quotes is shown on one line and at most QUOTED characters long: a 5 MB
# trait made a 5 MB reason (in the dead letter beside the event that holds it, in each dry-run
# line), and a line break in one began a line of its own in dry-run's output and send's -v.
HUGE = "x" * 300_000
QUOTED_CASES = [
    Case(
        name="a huge value that cannot be converted: the reason quotes its start and its length",
        raw={"type": "identify", "userId": "u-1", "traits": {"name": "Ann", "plan": HUGE}},
        config=FAIL,
        calls=[search_person("u-1", 42)],
        expect=refused(
            f"cannot convert plan = {'x' * 60}... (300,000 characters) for field Plan (enum): "
            "expected one of Free, Pro, Enterprise",
            "cannot convert plan for field Plan (enum)",
        ),
    ),
    Case(
        name="a value with a line break in a warning is quoted as JSON, on one line",
        raw={
            "type": "identify",
            "userId": "u-1",
            "traits": {"name": "Ann", "email": "a@b.io\nBcc: c@d.io", "plan": "Pro"},
        },
        config=FAIL,
        calls=[
            search_person("u-1", 42),
            patch_person(42, {"name": "Ann", "custom_fields": {PLAN: 2}}),
        ],
        expect={
            "status": "sent",
            "warnings": ('email = "a@b.io\\nBcc: c@d.io" is not an email address; dropped',),
        },
    ),
]


@pytest.mark.parametrize("case", QUOTED_CASES, ids=lambda c: c.name)
def test_a_quoted_value_is_one_short_line(case: Case) -> None:
    case.verify()
