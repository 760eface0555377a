"""identify (SPEC 4): found -> PATCH, not found -> create when allowed, identities and traits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers_core import (
    CONFIG,
    PLAN,
    ROLE,
    UNKNOWN,
    USER_FIELD,
    Call,
    Case,
    create_person,
    ok,
    patch,
    patch_person,
    post,
    search_person,
)

from rudder_pipedrive_cli.core.plans.base import FieldInfo
from rudder_pipedrive_cli.core.protocol import ApiResponse

TS = "2020-02-02T00:23:09.544Z"
ANN = {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}, "add_time": "2020-02-02T00:23:09Z"}
NEW_ANN = {("person", "u-1"): 100}
NO_CREATE = replace(CONFIG, create_persons=False)


def identify(traits: dict[str, object] | None = None, **fields: object) -> dict[str, object]:
    return {"type": "identify", "userId": "u-1", "timestamp": TS, "traits": traits or {}, **fields}


WORK = "workEmail"
WITH_WORK_EMAIL = replace(
    CONFIG, person_fields={**CONFIG.person_fields, WORK: "emails", "nick": "name"}
)

LONG = "u" * 256
LISTED = replace(
    CONFIG,
    field_types={
        **CONFIG.field_types,
        USER_FIELD: FieldInfo(key=USER_FIELD, name="RudderStack userId", field_type="varchar"),
        ROLE: FieldInfo(key=ROLE, name="Role", field_type="varchar"),
    },
)

UNLISTED = replace(CONFIG, field_types={})  # send's field listing failed, none saved
# Send's person field listing alone failed (the others gave types), or the organizations' alone.
PERSONS_UNLISTED = replace(
    CONFIG,
    field_types={k: v for k, v in CONFIG.field_types.items() if k != PLAN},  # Industry, Employees
    unlisted=frozenset({"persons"}),
)
ORGS_UNLISTED = replace(  # Plan untyped all the same: what the gate is, not the value
    PERSONS_UNLISTED, unlisted=frozenset({"organizations"})
)
PRO_ANN = {**ANN, "custom_fields": {USER_FIELD: "u-1", PLAN: "Pro"}}
SIGNED_UP = replace(CONFIG, person_fields={"signed_up_at": "add_time"})


def search_page(cursor: str, *ids: int, more: str | None = None) -> Call:
    """A page of the search of u-1 (`cursor`: the one it asks for), its hits, and the next."""
    first = search_person("u-1")
    return Call(
        method="GET",
        path=first.path,
        query={**first.query, "cursor": cursor} if cursor else first.query,
        response=ok([{"id": i} for i in ids] or None, additional={"next_cursor": more}),
    )


CASES = [
    Case(
        name="a search with no hits on its first page reads the next: found there",
        raw=identify({"name": "Ann"}),
        calls=[
            search_page("", more="c2"),
            search_page("c2", 42),
            patch_person(42, {"name": "Ann"}),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 42}},
    ),
    Case(
        name="a search's hits on every page count: the lowest id, the ambiguity warned about",
        raw=identify({"name": "Ann"}),
        calls=[
            search_page("", 42, more="c2"),
            search_page("c2", 7),
            patch_person(7, {"name": "Ann"}),
        ],
        expect={
            "status": "sent",
            "identities": {("person", "u-1"): 7},
            "warnings": [
                "ambiguous identity: 2 persons have userId u-1; using the lowest id",
            ],
        },
    ),
    Case(
        name="a trait mapped to the userId field is dropped: it would replace the identity",
        raw=identify({"name": "Ann", "external_ref": "crm-778"}),
        config=replace(CONFIG, person_fields={"external_ref": USER_FIELD}),
        persons={"u-1": 42},
        calls=[patch_person(42, {"name": "Ann"})],
        expect={
            "status": "sent",
            "warnings": [
                "external_ref is mapped to the userId field ([identity] user_id_field), which "
                "rpd fills itself; dropped"
            ],
        },
    ),
    Case(
        name="a trait mapped to add_time ranks with the add_time trait, above the event's time",
        raw=identify({"name": "Ann", "signed_up_at": "2019-06-01T08:00:00+02:00"}),
        config=SIGNED_UP,
        calls=[
            search_person("u-1"),
            create_person(ANN | {"add_time": "2019-06-01T06:00:00Z"}),
        ],
        expect={"status": "sent", "warnings": []},
    ),
    Case(
        name="a mapped add_time holding Go's zero time is no time: the event's time is used",
        raw=identify({"name": "Ann", "signed_up_at": "0001-01-01T00:00:00Z"}),
        config=SIGNED_UP,
        calls=[search_person("u-1"), create_person(ANN)],
        expect={"status": "sent", "warnings": []},
    ),
    Case(
        name="a userId longer than its varchar field holds fails before any request",
        raw=identify({"name": "Ann"}, userId=LONG),
        config=LISTED,
        expect={
            "status": "failed",
            "reason": "userId uuuuuuuuuuuuuuuuuuuu... is 256 characters: the person field "
            "RudderStack userId (varchar) holds at most 255",
            "stage": "validate",
            "retryable": False,
        },
    ),
    Case(
        name="a userId of thousands of characters is said with the separators of the others",
        raw=identify({"name": "Ann"}, userId="u" * 2000),
        config=LISTED,
        expect={
            "status": "failed",
            "reason": "userId uuuuuuuuuuuuuuuuuuuu... is 2,000 characters: the person field "
            "RudderStack userId (varchar) holds at most 255",
            "stage": "validate",
            "retryable": False,
        },
    ),
    Case(
        name="the same with a person_id external id: its userId is not written cut short",
        raw=identify(
            {"name": "Ann"}, userId=LONG, context={"externalId": [{"type": "person_id", "id": 7}]}
        ),
        config=LISTED,
        expect={"status": "failed", "stage": "validate", "retryable": False},
    ),
    Case(
        name="a mapped value longer than its varchar field holds fails the event, naming both",
        raw=identify({"name": "Ann", "role": "r" * 3000}),
        config=LISTED,
        calls=[search_person("u-1")],
        expect={
            "status": "failed",
            "reason": f"cannot convert role = {'r' * 60}... (3,000 characters) for field Role "
            "(varchar): expected at most 255 characters, not 3,000",
            "stage": "validate",
        },
    ),
    Case(
        name="255 characters fit",
        raw=identify({"name": "Ann", "role": "r" * 255}, userId="u" * 255),
        config=LISTED,
        calls=[
            search_person("u" * 255),
            create_person(
                {
                    "name": "Ann",
                    "add_time": "2020-02-02T00:23:09Z",
                    "custom_fields": {ROLE: "r" * 255, USER_FIELD: "u" * 255},
                }
            ),
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="a trait mapped to emails is added after the event's own email, not primary",
        raw=identify({"name": "Ann", "email": "ann@home.example", WORK: "ann@work.example"}),
        config=WITH_WORK_EMAIL,
        calls=[
            search_person("u-1"),
            create_person(
                {
                    "name": "Ann",
                    "emails": [
                        {"value": "ann@home.example", "primary": True, "label": "work"},
                        {"value": "ann@work.example", "primary": False, "label": "work"},
                    ],
                    "add_time": "2020-02-02T00:23:09Z",
                    "custom_fields": {USER_FIELD: "u-1"},
                }
            ),
        ],
        expect={"status": "sent", "warnings": [], "dropped": []},
    ),
    Case(
        name="only strings that look like addresses are emails; the rest warned (issue 20)",
        raw=identify({"name": "Ann", "email": [None, 5, "m@example.com"], WORK: True}),
        config=WITH_WORK_EMAIL,
        calls=[
            search_person("u-1"),
            create_person(
                {
                    "name": "Ann",
                    "emails": [{"value": "m@example.com", "primary": True, "label": "work"}],
                    "add_time": "2020-02-02T00:23:09Z",
                    "custom_fields": {USER_FIELD: "u-1"},
                }
            ),
        ],
        expect={
            "status": "sent",
            "warnings": [
                "email = 5 is not an email address; dropped",
                "emails = true is not an email address; dropped",
            ],
        },
    ),
    Case(
        name="an event time that cannot be read: created without add_time, with a warning",
        raw=identify({"name": "Ann"}, timestamp="02/02/2020"),
        calls=[
            search_person("u-1"),
            create_person({"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}}),
        ],
        expect={
            "status": "sent",
            "warnings": ["timestamp = 02/02/2020 is not a date or time; add_time left out"],
        },
    ),
    Case(
        name="a name that is not a string is dropped with a warning (issue 20 item 9)",
        raw=identify({"name": True, "role": "Eng"}),
        calls=[search_person("u-1", 42), patch_person(42, {"custom_fields": {ROLE: "Eng"}})],
        expect={"status": "sent", "warnings": ["name = true is not a name (a string); dropped"]},
    ),
    Case(
        name="... and a person it would create has no name: fails, the warning kept",
        raw=identify({"name": True}),
        calls=[search_person("u-1")],
        expect={
            "status": "failed",
            "reason": "cannot create person without a name",
            "warnings": ["name = true is not a name (a string); dropped"],
        },
    ),
    Case(
        name="a trait mapped to name loses to the event's own name, with a warning",
        raw=identify({"name": "Ann", "nick": "Annie"}),
        config=WITH_WORK_EMAIL,
        calls=[search_person("u-1"), create_person(ANN)],
        expect={
            "status": "sent",
            "warnings": ["nick is mapped to name, which the event's own name sets; dropped"],
        },
    ),
    Case(
        name="not found: created with standard, mapped and identity fields",
        raw=identify(
            {
                "name": "Ann",
                "email": ["ann@example.com", "ann@home.example"],
                "phone": "+3725551234",
                "visible_to": 3,
                "role": "CTO",
                "plan": "Pro",
                "junk": 1,
                "nested": {"a": 1},
                "owner_id": 9,
            }
        ),
        calls=[
            search_person("u-1"),
            create_person(
                {
                    "name": "Ann",
                    "emails": [
                        {"value": "ann@example.com", "primary": True, "label": "work"},
                        {"value": "ann@home.example", "primary": False, "label": "work"},
                    ],
                    "phones": [{"value": "+3725551234", "primary": True, "label": "work"}],
                    "visible_to": 3,
                    "add_time": "2020-02-02T00:23:09Z",
                    "custom_fields": {ROLE: "CTO", PLAN: 2, USER_FIELD: "u-1"},
                }
            ),
        ],
        expect={
            "status": "sent",
            "identities": NEW_ANN,
            "lead_origins": {100: frozenset()},
            "dropped": ["junk", "nested", "owner_id"],
            "warnings": [],
        },
    ),
    Case(
        name="not found and create_persons off: fails",
        raw=identify({"name": "Ann"}),
        config=NO_CREATE,
        calls=[search_person("u-1")],
        expect={
            "status": "failed",
            "reason": "person not found and create_persons is off",
            "stage": "lookup person",
            "retryable": False,
        },
    ),
    Case(
        name="not found and no name: fails, no invented name",
        raw=identify({"email": "ann@example.com"}),
        calls=[search_person("u-1")],
        expect={
            "status": "failed",
            "reason": "cannot create person without a name",
            "stage": "create person",
        },
    ),
    Case(
        name="name from firstName and last_name",
        raw=identify({"firstName": "Ann", "last_name": "Lee"}),
        calls=[search_person("u-1"), create_person({**ANN, "name": "Ann Lee"})],
        expect={"status": "sent", "identities": NEW_ANN, "dropped": []},
    ),
    Case(
        name="found: PATCH without add_time",
        raw=identify({"name": "Ann", "role": "CTO", "add_time": "2019-01-01"}),
        calls=[
            search_person("u-1", 42),
            patch_person(42, {"name": "Ann", "custom_fields": {ROLE: "CTO"}}),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 42}, "lead_origins": {}},
    ),
    Case(
        name="found with nothing to write: unchanged, no PATCH",
        raw=identify({"userId": "u-1", "id": "u-1", "junk": True}),
        calls=[search_person("u-1", 42)],
        expect={"status": "unchanged", "dropped": ["junk"]},
    ),
    # traits or context.traits that is not an object holds no field: said, not a silent
    # `unchanged` (README: nothing silently dropped).
    Case(
        name="traits that are not an object: unchanged, with a warning saying so",
        raw={**identify(), "traits": "Ann <ann@example.com>"},
        calls=[search_person("u-1", 42)],
        expect={
            "status": "unchanged",
            "warnings": ("traits is a string, not an object: none of its values is read",),
        },
    ),
    Case(
        name="context.traits that are not an object: the top-level traits are read all the same",
        raw=identify({"name": "Ann"}, context={"traits": [{"name": "Ctx"}]}),
        calls=[search_person("u-1", 42), patch_person(42, {"name": "Ann"})],
        expect={
            "status": "sent",
            "warnings": ("context.traits is a list, not an object: none of its values is read",),
        },
    ),
    Case(
        name="context that is not an object: said as such; null or empty is no traits, unsaid",
        raw=identify({"name": "Ann"}, context=7),
        calls=[search_person("u-1", 42), patch_person(42, {"name": "Ann"})],
        expect={
            "status": "sent",
            "warnings": ("context is a number, not an object: none of its values is read",),
        },
    ),
    Case(
        name="context null and traits empty: nothing to say",
        raw={**identify({"name": "Ann"}, context=None), "traits": {"name": "Ann"}},
        calls=[search_person("u-1", 42), patch_person(42, {"name": "Ann"})],
        expect={"status": "sent", "warnings": ()},
    ),
    Case(
        name="top-level traits win over context.traits, field by field",
        raw=identify({"name": "Top"}, context={"traits": {"name": "Ctx", "role": "ctx-role"}}),
        calls=[
            search_person("u-1", 42),
            patch_person(42, {"name": "Top", "custom_fields": {ROLE: "ctx-role"}}),
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="ambiguous identity: lowest id and a warning",
        raw=identify({"name": "Ann"}),
        calls=[search_person("u-1", 9, 3, 5), patch_person(3, {"name": "Ann"})],
        expect={
            "status": "sent",
            "identities": {("person", "u-1"): 3},
            "warnings": ["ambiguous identity: 3 persons have userId u-1; using the lowest id"],
        },
    ),
    Case(
        name="search answers in the {result_score, item} shape",
        raw=identify({"name": "Ann"}),
        calls=[
            Call(
                method="GET",
                path="/api/v2/itemSearch/field",
                query=search_person("u-1").query,
                response=ok([{"result_score": 1.0, "item": {"id": 77, "name": "Ann"}}]),
            ),
            patch_person(77, {"name": "Ann"}),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 77}},
    ),
    Case(
        name="visible_to as a numeric string is an integer; an invalid one is dropped",
        raw=identify({"visible_to": "7", "email": "a@b.c"}),
        calls=[
            search_person("u-1", 42),
            patch_person(
                42,
                {"emails": [{"value": "a@b.c", "primary": True, "label": "work"}], "visible_to": 7},
            ),
        ],
        expect={"status": "sent", "warnings": []},
    ),
    Case(
        name="invalid visible_to: dropped with a warning",
        raw=identify({"name": "Ann", "visible_to": "everyone"}),
        calls=[search_person("u-1", 42), patch_person(42, {"name": "Ann"})],
        expect={"warnings": ["visible_to = everyone is not one of 1, 3, 5, 7; dropped"]},
    ),
    Case(
        name="add_time trait converted to RFC 3339 UTC on create",
        raw=identify({"name": "Ann", "add_time": "2021-03-04T05:06:07.89+02:00"}),
        calls=[
            search_person("u-1"),
            create_person({**ANN, "add_time": "2021-03-04T03:06:07Z"}),
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="add_time from originalTimestamp before timestamp",
        raw=identify({"name": "Ann"}, originalTimestamp="2020-01-01T10:00:00+01:00"),
        calls=[search_person("u-1"), create_person({**ANN, "add_time": "2020-01-01T09:00:00Z"})],
        expect={"status": "sent"},
    ),
    Case(
        name="enum label matched case-insensitively to its option id",
        raw=identify({"plan": "enterprise"}),
        calls=[search_person("u-1", 42), patch_person(42, {"custom_fields": {PLAN: 3}})],
        expect={"status": "sent"},
    ),
    Case(
        name="a value that cannot be coerced fails the event, naming trait and field",
        raw=identify({"name": "Ann", "plan": "Gold"}),
        calls=[search_person("u-1", 42)],
        expect={
            "status": "failed",
            "reason": "cannot convert plan = Gold for field Plan (enum): "
            "expected one of Free, Pro, Enterprise",
            "stage": "validate",
            "retryable": False,
        },
    ),
    Case(
        name="external person_id: PATCH it with the userId, no search",
        raw=identify({"name": "Ann"}, context={"externalId": [{"type": "person_id", "id": 261}]}),
        calls=[patch_person(261, {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}})],
        expect={"status": "sent", "identities": {("person", "u-1"): 261}},
    ),
    Case(
        name="external pipedrivePersonId (RudderStack's later name) beats the cache",
        raw=identify(
            {"name": "Ann"}, context={"externalId": [{"type": "pipedrivePersonId", "id": "262"}]}
        ),
        persons={"u-1": 7},
        calls=[patch_person(262, {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}})],
        expect={"status": "sent", "identities": {("person", "u-1"): 262}},
    ),
    Case(
        name="external id without userId and without user_id_field: no identity field sent",
        raw={
            "type": "identify",
            "anonymousId": "anon",
            "traits": {"name": "Ann"},
            "context": {"externalId": [{"type": "person_id", "id": 261}]},
        },
        config=replace(CONFIG, user_id_field=""),
        calls=[patch_person(261, {"name": "Ann"})],
        expect={"status": "sent", "identities": {}},
    ),
    Case(
        name="external id that is not numeric fails",
        raw=identify({"name": "Ann"}, context={"externalId": [{"type": "person_id", "id": "x1"}]}),
        expect={
            "status": "failed",
            "reason": 'external id person_id = "x1" is not a Pipedrive id (a whole number from 1 '
            "up)",
            "stage": "validate",
        },
    ),
    Case(
        name="external id not found: fails, not retryable, naming the id",
        raw=identify({"name": "Ann"}, context={"externalId": [{"type": "person_id", "id": 261}]}),
        calls=[patch_person(261, {"name": "Ann", "custom_fields": {USER_FIELD: "u-1"}}, 404)],
        expect={
            "status": "failed",
            "reason": "person 261 (person_id external id) not found",
            "stage": "update person",
            "http_status": 404,
            "retryable": False,
        },
    ),
    Case(
        name="found by search, then gone (404): fails retryable",
        raw=identify({"name": "Ann"}),
        calls=[search_person("u-1", 42), patch_person(42, {"name": "Ann"}, 404)],
        expect={
            "status": "failed",
            "reason": "person 42 no longer exists (HTTP 404)",
            "stage": "update person",
            "http_status": 404,
            "retryable": True,
            "identities": {("person", "u-1"): 42},
        },
    ),
    Case(
        name="an update with an unknown outcome is simply repeated (PATCH is idempotent)",
        raw=identify({"name": "Ann"}),
        calls=[
            search_person("u-1", 42),
            Call(method="PATCH", path="/api/v2/persons/42", body={"name": "Ann"}, response=UNKNOWN),
            patch_person(42, {"name": "Ann"}),
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="the cache beats search",
        raw=identify({"name": "Ann"}),
        persons={"u-1": 7},
        calls=[patch_person(7, {"name": "Ann"})],
        expect={"status": "sent", "identities": {}},
    ),
    Case(
        name="stale cache (404): dropped, found again by search",
        raw=identify({"name": "Ann"}),
        persons={"u-1": 7},
        calls=[
            patch_person(7, {"name": "Ann"}, 404),
            search_person("u-1", 42),
            patch_person(42, {"name": "Ann"}),
        ],
        expect={"status": "sent", "identities": {("person", "u-1"): 42}},
    ),
    Case(
        name="stale cache (410) and gone for good: created again",
        raw=identify({"name": "Ann"}),
        persons={"u-1": 7},
        calls=[patch_person(7, {"name": "Ann"}, 410), search_person("u-1"), create_person(ANN)],
        expect={"status": "sent", "identities": NEW_ANN},
    ),
    Case(
        name="stale cache and creation off: the forgotten id is reported",
        raw=identify({"name": "Ann"}),
        config=NO_CREATE,
        persons={"u-1": 7},
        calls=[patch_person(7, {"name": "Ann"}, 404), search_person("u-1")],
        expect={"status": "failed", "identities": {("person", "u-1"): None}},
    ),
    Case(
        name="no user_id_field configured: fails naming the setting",
        raw=identify({"name": "Ann"}),
        config=replace(CONFIG, user_id_field=""),
        expect={
            "status": "failed",
            "reason": "[identity] user_id_field is not set: cannot look up userId u-1",
            "stage": "validate",
        },
    ),
    Case(
        name="a refused create fails with Pipedrive's words and status",
        raw=identify({"name": "Ann"}),
        calls=[
            search_person("u-1"),
            Call(
                method="POST",
                path="/api/v2/persons",
                body=ANN,
                response=ApiResponse(status=400, error="visible_to is invalid"),
            ),
        ],
        expect={
            "status": "failed",
            "reason": "create person refused: HTTP 400: visible_to is invalid",
            "stage": "create person",
            "http_status": 400,
            "retryable": False,
        },
    ),
    Case(
        name="no field listing: a refused create of a mapped value is retryable (a rerun with "
        "the listing converts it) and holds its userId back",
        raw=identify({"name": "Ann", "plan": "Pro"}),
        config=UNLISTED,
        calls=[
            search_person("u-1"),
            post("/api/v2/persons", PRO_ANN, ApiResponse(status=400, error="plan: not an id")),
        ],
        expect={
            "status": "failed",
            "reason": "create person refused: HTTP 400: plan: not an id; its mapped values were "
            "sent without type conversion (the field listing failed): rerun once the listing "
            "works",
            "redacted": "create person refused: HTTP 400; its mapped values were sent without "
            "type conversion (the field listing failed): rerun once the listing works",
            "http_status": 400,
            "retryable": True,
            "held_back": frozenset({("event", "m-1"), ("person", "u-1")}),
        },
    ),
    Case(
        name="the person field listing failed, the others did not: a refused create of a "
        "mapped value is retryable all the same",
        raw=identify({"name": "Ann", "plan": "Pro"}),
        config=PERSONS_UNLISTED,
        calls=[
            search_person("u-1"),
            post("/api/v2/persons", PRO_ANN, ApiResponse(status=400, error="plan: not an id")),
        ],
        expect={
            "reason": "create person refused: HTTP 400: plan: not an id; its mapped values were "
            "sent without type conversion (the field listing failed): rerun once the listing "
            "works",
            "retryable": True,
            "held_back": frozenset({("event", "m-1"), ("person", "u-1")}),
        },
    ),
    Case(
        name="only the organization field listing failed: a person's refused create stays not "
        "retryable (its values were typed)",
        raw=identify({"name": "Ann", "plan": "Pro"}),
        config=ORGS_UNLISTED,
        calls=[
            search_person("u-1"),
            post("/api/v2/persons", PRO_ANN, ApiResponse(status=400, error="plan: not an id")),
        ],
        expect={
            "reason": "create person refused: HTTP 400: plan: not an id",
            "retryable": False,
            "held_back": frozenset(),
        },
    ),
    Case(
        name="no field listing: a refused create without a mapped value stays not retryable",
        raw=identify({"name": "Ann", "role": None}),
        config=UNLISTED,
        calls=[
            search_person("u-1"),
            post("/api/v2/persons", ANN, ApiResponse(status=400, error="name: too long")),
        ],
        expect={
            "reason": "create person refused: HTTP 400: name: too long",
            "retryable": False,
            "held_back": frozenset(),
        },
    ),
    Case(
        name="a refused lookup fails (never taken as not found)",
        raw=identify({"name": "Ann"}),
        calls=[
            Call(
                method="GET",
                path="/api/v2/itemSearch/field",
                query=search_person("u-1").query,
                response=ApiResponse(status=400, error="term too short"),
            )
        ],
        expect={
            "status": "failed",
            "reason": "lookup person refused: HTTP 400: term too short",
            "stage": "lookup person",
            "http_status": 400,
            "retryable": False,
        },
    ),
]


def moved(known: int | None, org: int | None, taught: dict[int | str, int | str | None]) -> Case:
    """Person 42, known to belong to organization `known`, found and updated; the PATCH's answer
    names its organization now (`org`): what the outcome teaches of it."""
    body = {"name": "Ann"}
    return Case(
        name=f"person known in organization {known}, answered in {org}",
        raw=identify(body),
        calls=[
            search_person("u-1", 42),
            patch("persons", 42, body, ok({"id": 42, **body, "org_id": org})),
        ],
        memberships={} if known is None else {42: known},
        expect={"status": "sent", "memberships": taught},
    )


# An answer that names the person's organization replaces the one known (kept across runs with
# the replay state, so a deal of a later run does not take an organization it has left); one in
# none forgets it, and teaches nothing when none was known (most persons: no write).
MOVES = [
    moved(500, 600, {42: 600}),
    moved(500, None, {42: None}),
    moved(None, 600, {42: 600}),
    moved(None, None, {}),
]


@pytest.mark.parametrize("case", [*CASES, *MOVES], ids=[c.name for c in [*CASES, *MOVES]])
def test_identify(case: Case) -> None:
    case.verify()
