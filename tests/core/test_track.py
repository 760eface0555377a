"""track (SPEC 4, SPEC 5 leads exactly once): the lead body, its person, and origin_id checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest
from helpers_core import (
    CAMPAIGN,
    COLD,
    CONFIG,
    HOT,
    SOURCE,
    USER_FIELD,
    WARM,
    Case,
    create_lead,
    create_person,
    leads_of,
    list_archived,
    list_leads,
    patch_person,
    run,
    search_person,
)

from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiResponse

ORIGIN = "rpd:m-1"
EUR = replace(CONFIG, default_currency="EUR")
FEE = "c0ffee" + "0" * 34
WITH_FEE = replace(
    EUR,
    lead_fields={"fee": FEE},
    field_types={FEE: FieldInfo(key=FEE, name="Fee", field_type="monetary")},
)

WITH_VALUE = replace(
    EUR,
    lead_fields={"price": "value"},
    field_types={
        "value": FieldInfo(key="value", name="Value", field_type="monetary", is_custom=False)
    },
)


def track(properties: Mapping[str, object] | None = None, **fields: object) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Signed Up",
        "userId": "u-1",
        "properties": properties or {},
        **fields,
    }


def lead(**fields: object) -> dict[str, object]:
    return {"title": "Signed Up", "origin_id": ORIGIN, "person_id": 42, **fields}


def known_person(
    name: str,
    properties: Mapping[str, object],
    body: dict[str, object],
    *,
    config: PlanConfig = CONFIG,
    expect: dict[str, object] | None = None,
) -> Case:
    """A person the state knows with no leads: the plan is exactly one POST /v1/leads."""
    return Case(
        name=name,
        raw=track(properties),
        config=config,
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[create_lead(body)],
        expect={"status": "sent", "lead_origins": {42: frozenset({ORIGIN})}, **(expect or {})},
    )


CASES = [
    Case(
        name="person found by search: its leads listed once, then the lead created",
        raw=track({"revenue": 99.5, "currency": "usd", "source": "ads", "junk": 1}),
        calls=[
            search_person("u-1", 42),
            *leads_of(42, "rpd:other", None),
            create_lead(lead(value={"amount": 99.5, "currency": "USD"}, **{SOURCE: "ads"})),
        ],
        expect={
            "status": "sent",
            "identities": {("person", "u-1"): 42},
            "lead_origins": {42: frozenset({"rpd:other", ORIGIN})},
            "dropped": ["junk"],
            "warnings": [],
        },
    ),
    Case(
        name="origin_id already among the person's leads: skipped as already done",
        raw=track(),
        calls=[search_person("u-1", 42), *leads_of(42, ORIGIN)],
        expect={
            "status": "skipped",
            "reason": "already done",
            "lead_origins": {42: frozenset({ORIGIN})},
        },
    ),
    Case(
        name="origin known from the state: skipped without listing",
        raw=track(),
        persons={"u-1": 42},
        leads={42: frozenset({ORIGIN})},
        expect={"status": "skipped", "reason": "already done"},
    ),
    Case(
        name="lead listing follows more_items_in_collection",
        raw=track(),
        calls=[
            search_person("u-1", 42),
            list_leads(42, *[f"rpd:{i}" for i in range(3)], more=True),
            list_leads(42, "rpd:x", start=3),
            list_archived(42, "rpd:archived"),
            create_lead(lead()),
        ],
        expect={
            "lead_origins": {
                42: frozenset({"rpd:0", "rpd:1", "rpd:2", "rpd:x", "rpd:archived", ORIGIN})
            }
        },
    ),
    Case(
        name="external person_id: leads listed (state knows nothing), no search",
        raw=track(context={"externalId": [{"type": "person_id", "id": 42}]}),
        calls=[*leads_of(42), create_lead(lead())],
        expect={"status": "sent"},
    ),
    Case(
        name="person created by this plan: no listing, from context.traits",
        raw=track(
            context={"traits": {"name": "Ann", "email": "a@b.c"}}, timestamp="2020-01-01T00:00:00Z"
        ),
        calls=[
            search_person("u-1"),
            create_person(
                {
                    "name": "Ann",
                    "emails": [{"value": "a@b.c", "primary": True, "label": "work"}],
                    "add_time": "2020-01-01T00:00:00Z",
                    "custom_fields": {USER_FIELD: "u-1"},
                },
                pid=100,
            ),
            create_lead(lead(person_id=100)),
        ],
        expect={
            "status": "sent",
            "identities": {("person", "u-1"): 100},
            "lead_origins": {100: frozenset({ORIGIN})},
        },
    ),
    Case(
        name="person not found and creation off: fails",
        raw=track(),
        config=replace(CONFIG, create_persons=False),
        calls=[search_person("u-1")],
        expect={"status": "failed", "reason": "person not found and create_persons is off"},
    ),
    *(
        known_person(
            f"amount precedence: {winner}", props, lead(value={"amount": amount, "currency": "EUR"})
        )
        for winner, props, amount in (
            (
                "revenue over value",
                {"revenue": 1, "value": 2, "total": 3, "amount": 4, "currency": "EUR"},
                1,
            ),
            ("value over total", {"value": 2, "total": 3, "amount": 4, "currency": "EUR"}, 2),
            ("total over amount", {"total": "3.5", "amount": 4, "currency": "EUR"}, 3.5),
            ("amount last", {"amount": "4", "currency": "EUR"}, 4),
        )
    ),
    known_person(
        "non-numeric revenue: warned and the next present value used",
        {"revenue": "lots", "value": 7, "currency": "EUR"},
        lead(value={"amount": 7, "currency": "EUR"}),
        expect={"warnings": ["revenue = lots is not a number; ignored for the lead value"]},
    ),
    known_person(
        "no currency property: default_currency",
        {"value": 7},
        lead(value={"amount": 7, "currency": "EUR"}),
        config=EUR,
    ),
    known_person(
        "currency property beats default_currency",
        {"value": 7, "currency": "GBP"},
        lead(value={"amount": 7, "currency": "GBP"}),
        config=EUR,
    ),
    known_person(
        "no currency at all: value left out with a warning",
        {"value": 7},
        lead(),
        expect={
            "warnings": [
                "lead value 7 has no currency (no currency property and no [identity] "
                "default_currency); value left out"
            ]
        },
    ),
    known_person(
        "expected_close_date: the date part of a date-time",
        {"expected_close_date": "2021-04-27T10:11:12.000Z"},
        lead(expected_close_date="2021-04-27"),
    ),
    known_person(
        "expected_close_date that is not a date: left out with a warning",
        {"expected_close_date": "soon"},
        lead(),
        expect={"warnings": ["expected_close_date = soon is not a date; left out"]},
    ),
    known_person(
        "label_ids: UUIDs pass, names resolve, unknown names are warned and left out",
        {"label_ids": ["Hot", WARM, "cold", "Lukewarm"]},
        lead(label_ids=[HOT, WARM, COLD]),
        expect={"warnings": ["lead label 'Lukewarm' is not a label of this account; dropped"]},
    ),
    Case(
        name="properties that are not an object: the lead goes from the event's name, and says so",
        raw={**track(), "properties": [{"revenue": 5}]},
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[create_lead(lead())],
        expect={
            "status": "sent",
            "warnings": ("properties is a list, not an object: none of its values is read",),
        },
    ),
    known_person(
        "label_ids: an unknown label of 300,000 characters is quoted by its start and length",
        {"label_ids": ["L" * 300_000]},
        lead(),
        expect={
            "warnings": [
                f"lead label '{'L' * 59}... (300,002 characters) is not a label of this "
                "account; dropped"
            ]
        },
    ),
    known_person(
        "label_ids: a UUID in upper case is written in lower case; one not listed is dropped",
        {"label_ids": [HOT.upper(), "00000000-0000-4000-8000-000000000000"]},
        lead(label_ids=[HOT]),
        expect={
            "warnings": [
                "lead label '00000000-0000-4000-8000-000000000000' is not a label of this "
                "account; dropped"
            ]
        },
    ),
    known_person(
        "label_ids unlisted (offline): UUIDs pass unchecked, in lower case",
        {"label_ids": [HOT.upper(), "00000000-0000-4000-8000-000000000000"]},
        lead(label_ids=[HOT, "00000000-0000-4000-8000-000000000000"]),
        config=replace(CONFIG, field_types={}),
    ),
    known_person(
        "label_ids as a comma-separated string",
        {"label_ids": "Hot, Cold"},
        lead(label_ids=[HOT, COLD]),
    ),
    known_person(
        "mapped properties (dotted paths) are top-level keys; the rest dropped",
        {"source": "ads", "utm": {"campaign": "spring", "medium": "cpc"}, "order_id": 5},
        lead(**{SOURCE: "ads", CAMPAIGN: "spring"}),
        expect={"dropped": ["utm.medium", "order_id"]},
    ),
    known_person(
        "monetary lead field: v1's flat amount and <key>_currency",
        {"fee": {"value": "12.5", "currency": "USD"}},
        lead(**{FEE: 12.5, FEE + "_currency": "USD"}),
        config=WITH_FEE,
    ),
    known_person(
        "a property mapped to the lead's own Value: its {amount, currency}, not v1's flat shape",
        {"price": {"amount": 5, "currency": "gbp"}},
        lead(value={"amount": 5, "currency": "GBP"}),
        config=WITH_VALUE,
    ),
    known_person(
        "a bare number mapped to the lead's own Value: default_currency",
        {"price": 12.5},
        lead(value={"amount": 12.5, "currency": "EUR"}),
        config=WITH_VALUE,
    ),
    known_person(
        "the event's own revenue beats a property mapped to Value, which is warned about",
        {"price": 5, "revenue": 7},
        lead(value={"amount": 7, "currency": "EUR"}),
        config=WITH_VALUE,
        expect={
            "warnings": ["price is mapped to value, which the event's own value sets; dropped"]
        },
    ),
    known_person(
        "monetary lead field from a bare number: default_currency",
        {"fee": 3},
        lead(**{FEE: 3, FEE + "_currency": "EUR"}),
        config=WITH_FEE,
    ),
    Case(
        name="lead refused (400): fails with Pipedrive's words, not retryable",
        raw=track(),
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[create_lead(lead(), ApiResponse(status=400, error="title is required"))],
        expect={
            "status": "failed",
            "reason": "create lead refused: HTTP 400: title is required",
            "stage": "create lead",
            "http_status": 400,
            "retryable": False,
        },
    ),
    Case(
        name="no person (only an organization external id): fails",
        raw={
            "type": "track",
            "event": "Signed Up",
            "context": {"externalId": [{"type": "org_id", "id": 9}]},
        },
        expect={
            "status": "failed",
            "reason": "track needs a person: a userId or a person_id external id",
            "stage": "validate",
        },
    ),
    Case(
        name="no event name: fails",
        raw={"type": "track", "userId": "u-1", "event": " "},
        expect={
            "status": "failed",
            "reason": "track needs an event name (the lead title)",
            "stage": "validate",
        },
    ),
    Case(
        name="stale cached person (lead 404): forgotten, searched, lead created",
        raw=track(),
        persons={"u-1": 7},
        leads={7: frozenset()},
        calls=[
            create_lead(lead(person_id=7), response=patch_person(7, {}, 404).response),
            search_person("u-1", 42),
            *leads_of(42),
            create_lead(lead()),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 42}},
    ),
    Case(
        name="stale cached person (lead 400 naming the person): forgotten, searched, created",
        raw=track(),
        persons={"u-1": 7},
        leads={7: frozenset()},
        calls=[
            create_lead(
                lead(person_id=7),
                response=ApiResponse(status=400, error="person_id: person 7 not found"),
            ),
            search_person("u-1", 42),
            *leads_of(42),
            create_lead(lead()),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 42}},
    ),
    Case(
        name="a 400 on a searched person's lead is final: no second search",
        raw=track(),
        calls=[
            search_person("u-1", 42),
            *leads_of(42),
            create_lead(lead(), response=ApiResponse(status=400, error="person_id: bad")),
        ],
        expect={"status": "failed", "http_status": 400, "retryable": False},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_track(case: Case) -> None:
    case.verify()


def test_leads_are_listed_once_per_person_across_events() -> None:
    """The runner applies each Outcome to the cache: the second track lists nothing."""
    known = IdentityStore()
    first = run(
        track(),
        [search_person("u-1", 42), *leads_of(42, "rpd:old"), create_lead(lead())],
        known=known,
    )
    known.learn(first)
    second = run(
        {**track(), "messageId": "m-2"},
        [create_lead(lead(origin_id="rpd:m-2"))],
        known=known,
    )
    assert (first.status, second.status) == ("sent", "sent")
    known.learn(second)
    assert known.lead_origins(42) == frozenset({"rpd:old", ORIGIN, "rpd:m-2"})
    replayed = run(track(), [], known=known)
    assert (replayed.status, replayed.reason) == ("skipped", "already done")
