"""fields.py: value normalisation and one coercion per Pipedrive field type (SPEC 4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rudder_pipedrive_cli.core.errors import PlanFailure, Warned, redacted_warning
from rudder_pipedrive_cli.core.fields import (
    COERCE,
    PERSON_KIND,
    Kind,
    add_time,
    compiled_mapping,
    date_part,
    dropped,
    mapped_values,
    person_name,
    phones,
    trait,
)
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig

OPTIONS = {"Free": 1, "Pro": 2, "Enterprise": 3}


def config(field_type: str, currency: str = "") -> PlanConfig:
    info = FieldInfo(key="k" * 40, name="Field", field_type=field_type, options=OPTIONS)
    return PlanConfig(default_currency=currency, field_types={info.key: info})


def coerce(path: str, value: Any, key: str, config: PlanConfig) -> Any:
    """What `value` at trait `path`, mapped to field `key`, is sent as (one mapped row)."""
    table = compiled_mapping({path: key}, config)
    return mapped_values((({path: value},)), table, config, [])[key]


COERCIONS: list[tuple[str, Any, Any]] = [
    ("double", 3, 3),
    ("double", "2.5", 2.5),
    ("double", " 10 ", 10),
    ("double", "1e3", 1000),
    ("int", "42", 42),
    ("int", 42.0, 42),
    ("monetary", {"value": "12.5", "currency": "USD"}, {"value": 12.5, "currency": "USD"}),
    ("monetary", {"amount": 3, "currency": "GBP"}, {"value": 3, "currency": "GBP"}),
    ("varchar", 123, "123"),
    ("varchar", 1.5, "1.5"),
    ("text", True, "true"),
    ("phone", "+372 555", "+372 555"),
    ("date", "2021-04-27", "2021-04-27"),
    ("date", "2021-04-27T23:59:59Z", "2021-04-27"),
    ("enum", "Pro", 2),
    ("enum", "pro", 2),
    ("enum", " pro ", 2),
    ("enum", 3, 3),
    ("enum", "3", 3),
    ("set", ["Free", "Pro"], [1, 2]),
    ("set", "Free, Enterprise", [1, 3]),
    ("set", "Pro,Pro", [2]),
    ("set", [], None),
    ("boolean", "yes", True),
    ("boolean", False, False),
    ("time", "09:30", "09:30:00"),
    ("time", " 23:59:59 ", "23:59:59"),
    ("address", "Main St 1", {"value": "Main St 1"}),
    (
        "address",
        {"locality": "Tallinn", "postal_code": "1"},
        {"value": "1, Tallinn", "locality": "Tallinn", "postal_code": "1"},
    ),
    (  # RudderStack's address trait: its parts by Pipedrive's names, the full address from them
        "address",
        {
            "street": "Main 1",
            "city": "Tallinn",
            "postalCode": 10111,
            "state": "Harju",
            "country": "EE",
        },
        {
            "value": "Main 1, 10111, Tallinn, Harju, EE",
            "route": "Main 1",
            "locality": "Tallinn",
            "postal_code": "10111",
            "admin_area_level_1": "Harju",
            "country": "EE",
        },
    ),
    ("varchar", "v" * 255, "v" * 255),
    ("user", "17", 17),
    ("unknown_type", {"any": "thing"}, {"any": "thing"}),
]


@pytest.mark.parametrize(("field_type", "value", "expected"), COERCIONS)
def test_coerce(field_type: str, value: Any, expected: Any) -> None:
    assert coerce("trait", value, "k" * 40, config(field_type)) == expected


def test_monetary_number_uses_default_currency() -> None:
    assert coerce("fee", 5, "k" * 40, config("monetary", "EUR")) == {"value": 5, "currency": "EUR"}


FAILURES: list[Any] = [  # (field type, value, expected), or a pytest.param of them
    ("double", "abc", "a number"),
    ("double", True, "a number"),
    ("double", "nan", "a number"),
    ("int", "4.5", "a whole number"),
    ("monetary", 5, 'a number (with identity.default_currency set) or {"value", "currency"}'),
    ("varchar", {"a": 1}, "a string or a number"),
    ("date", "27/04/2021", "a date YYYY-MM-DD"),
    ("date", "2021-02-30", "a date YYYY-MM-DD"),
    ("enum", "Gold", "one of Free, Pro, Enterprise"),
    ("enum", 9, "one of Free, Pro, Enterprise"),
    ("set", ["Pro", "Gold"], "one of Free, Pro, Enterprise"),
    ("boolean", "maybe", "true, false"),
    ("time", "noon", "a time HH:MM:SS"),
    ("time", "25:99", "a time HH:MM:SS"),  # Pipedrive refuses it: the whole write, not a field
    ("time", "23:59:60", "a time HH:MM:SS"),
    ("people", "Ann", "a numeric Pipedrive id"),
    ("varchar", "v" * 256, "at most 255 characters, not 256"),
    # The lengths grouped as the value's own "(200,000 characters)" before them (not 200000)
    pytest.param(
        "varchar_auto", "v" * 200_000, "at most 255 characters, not 200,000", id="a-long-value"
    ),
    (
        "address",
        {"city": "Tallinn", "zip": "10111"},
        "a string or an object of value, country, admin_area_level_1, admin_area_level_2, "
        "locality, sublocality, route, street_number, subpremise, postal_code, street, city, "
        "state, postalCode (not zip)",
    ),
    ("address", {"value": ["Main 1"]}, "an address object whose parts are strings"),
]


@pytest.mark.parametrize(("field_type", "value", "expected"), FAILURES)
def test_coerce_failure_names_trait_field_and_what_fits(
    field_type: str, value: Any, expected: str
) -> None:
    with pytest.raises(PlanFailure) as raised:
        coerce("traits.x", value, "k" * 40, config(field_type))
    shown = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if len(shown) > 60:  # a long value is quoted by its start and its length
        shown = f"{shown[:60]}... ({len(shown):,} characters)"
    assert raised.value.reason == (
        f"cannot convert traits.x = {shown} for field Field ({field_type}): expected {expected}"
    )
    assert raised.value.stage == "validate"
    assert raised.value.retryable is False


def test_a_set_label_holding_a_comma_is_that_option_not_two() -> None:
    info = FieldInfo(key="k" * 40, name="Size", field_type="set", options={"S": 1, "M, L": 2})
    sized = PlanConfig(field_types={info.key: info})
    assert coerce("size", "M, L", info.key, sized) == [2]
    assert coerce("size", " M, L ", info.key, sized) == [2]
    assert coerce("size", ["S", "M, L"], info.key, sized) == [1, 2]
    with pytest.raises(PlanFailure, match="expected one of S, M, L"):  # split: "M" is no label
        coerce("size", "S,M, L", info.key, sized)


def test_field_without_type_info_is_sent_raw() -> None:
    assert coerce("x", "Gold", "k" * 40, PlanConfig()) == "Gold"


def test_every_searchable_type_has_a_coercion() -> None:
    searchable = {"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"}
    assert searchable <= set(COERCE)


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        ({"name": "Ann Lee", "firstName": "X"}, "Ann Lee"),
        ({"firstName": "Ann", "lastName": "Lee"}, "Ann Lee"),
        ({"first_name": "Ann", "last_name": "Lee"}, "Ann Lee"),
        ({"firstName": "Ann"}, "Ann"),
        ({"last_name": "Lee"}, "Lee"),
        ({"name": "  ", "email": "a@b.c"}, None),
        ({}, None),
    ],
)
def test_person_name(traits: dict[str, Any], expected: str | None) -> None:
    warnings: list[str] = []
    assert person_name(((traits,)), warnings) == expected
    assert warnings == []


@pytest.mark.parametrize(
    ("top", "context", "expected"),
    [
        ({"firstName": "New", "lastName": "Name"}, {"name": "Old Name"}, "New Name"),
        ({"name": "Top"}, {"firstName": "Ctx"}, "Top"),
        ({"email": "a@b.c"}, {"name": "From Context"}, "From Context"),
        ({"name": ""}, {"first_name": "Ctx", "last_name": "Only"}, "Ctx Only"),
    ],
)
def test_person_name_top_level_traits_win_whole(
    top: dict[str, Any], context: dict[str, Any], expected: str
) -> None:
    assert person_name(((top, context)), []) == expected


@pytest.mark.parametrize(
    ("top", "context", "expected", "warned"),
    [
        ({"name": True}, {}, None, ["name = true is not a name (a string); dropped"]),
        (
            {"name": True},
            {"name": "Bob"},
            "Bob",
            ["name = true is not a name (a string); dropped"],
        ),
        (
            {"firstName": ["Ann"], "last_name": "Lee"},
            {},
            "Lee",
            ['firstName = ["Ann"] is not a name (a string); dropped'],
        ),
        ({"name": 42}, {}, "42", []),  # a number is written as it reads
    ],
)
def test_a_name_that_is_not_a_string_is_dropped_with_a_warning(
    top: dict[str, Any], context: dict[str, Any], expected: str | None, warned: list[str]
) -> None:
    warnings: list[str] = []
    assert person_name(((top, context)), warnings) == expected
    assert warnings == warned
    assert [redacted_warning(w) for w in warnings] == [
        w.split(" = ")[0] + " is not a name (a string); dropped" for w in warned
    ]


@pytest.mark.parametrize(
    "sources", [({"plan": "", "role": "Eng"},), ({"plan": "", "role": "Eng"}, {"other": 1})]
)
def test_an_empty_string_trait_is_absent_with_one_source_or_several(
    sources: tuple[dict[str, Any], ...],
) -> None:
    traits = sources
    empty = PlanConfig()
    table = compiled_mapping({"plan": "k-plan", "role": "k-role"}, empty)
    assert mapped_values(traits, table, empty, []) == {"k-role": "Eng"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@b.c", ["a@b.c"]),
        (["a@b.c", "x@y.z", "a@b.c", ""], ["a@b.c", "x@y.z"]),
        ([{"value": "a@b.c"}], ["a@b.c"]),
        (5551234, ["5551234"]),
        (None, []),
    ],
)
def test_phones_first_is_primary(value: Any, expected: list[str]) -> None:
    assert phones(value, "phone", []) == [
        {"value": v, "primary": i == 0, "label": "work"} for i, v in enumerate(expected)
    ]


def read_email(value: Any, warnings: list[str]) -> list[dict[str, Any]] | None:
    """The `emails` a person's body gets from an `email` trait holding `value`."""
    config = PlanConfig()
    table = compiled_mapping({}, config, PERSON_KIND)
    return mapped_values((({"email": value},)), table, config, warnings).get("emails")


@pytest.mark.parametrize(
    ("trait", "raw", "expected"),
    [
        ("2020-02-02T00:23:09.544Z", {}, "2020-02-02T00:23:09Z"),
        ("2020-02-02", {}, "2020-02-02T00:00:00Z"),
        ("2020-02-02T01:00:00+01:00", {}, "2020-02-02T00:00:00Z"),
        (1580602989, {}, "2020-02-02T00:23:09Z"),
        (1580602989544, {}, "2020-02-02T00:23:09Z"),
        (
            None,
            {"originalTimestamp": "2021-01-01T00:00:00Z", "timestamp": "2022-01-01"},
            "2021-01-01T00:00:00Z",
        ),
        (None, {"timestamp": "2022-01-01T12:00:00Z"}, "2022-01-01T12:00:00Z"),
        (None, {}, None),
        # Years before 1000 keep four digits (RFC 3339 needs them; Pipedrive refuses "999-...").
        ("0999-06-01T00:00:00Z", {}, "0999-06-01T00:00:00Z"),
        ("0001-01-02", {}, "0001-01-02T00:00:00Z"),
        # Go's zero time is a time nobody set: the next source is used.
        (
            None,
            {"originalTimestamp": "0001-01-01T00:00:00Z", "timestamp": "2022-01-01T12:00:00Z"},
            "2022-01-01T12:00:00Z",
        ),
        (None, {"originalTimestamp": "0001-01-01T00:00:00Z"}, None),
        # A fraction past it is a time that was set (read once per distinct string: the same
        # string again reads the same).
        (None, {"originalTimestamp": "0001-01-01T00:00:00.5Z"}, "0001-01-01T00:00:00Z"),
        (None, {"originalTimestamp": "0001-01-01T00:00:00.5Z"}, "0001-01-01T00:00:00Z"),
        (None, {"originalTimestamp": 1}, "1970-01-01T00:00:01Z"),  # epoch seconds
    ],
)
def test_add_time(trait: Any, raw: dict[str, Any], expected: str | None) -> None:
    warnings: list[str] = []
    assert add_time(trait, raw, warnings) == expected
    assert warnings == []


def test_bad_add_time_falls_back_to_event_time_with_a_warning() -> None:
    warnings: list[str] = []
    given = "yesterday"
    assert (
        add_time(given, {"timestamp": "2022-01-01T12:00:00Z"}, warnings) == "2022-01-01T12:00:00Z"
    )
    assert warnings == ["add_time = yesterday is not a date or time; using the event time"]
    warnings.clear()
    assert add_time(given, {}, warnings) is None  # no event time either
    assert warnings == ["add_time = yesterday is not a date or time; left out"]


def test_a_time_past_the_datetime_range_in_utc_is_not_a_time() -> None:
    warnings: list[str] = []
    raw = {"originalTimestamp": "0001-01-01T00:30:00+01:00", "timestamp": "2022-01-01"}
    assert add_time("9999-12-31T23:59:59-01:00", raw, warnings) == "2022-01-01T00:00:00Z"
    assert warnings == [
        "add_time = 9999-12-31T23:59:59-01:00 is not a date or time; using the event time",
        "originalTimestamp = 0001-01-01T00:30:00+01:00 is not a date or time; add_time from "
        "timestamp",
    ]


@pytest.mark.parametrize(
    ("raw", "expected", "warned"),
    [
        # RFC 3339 allows a lower-case t and z (issue 20 item 8).
        ({"originalTimestamp": "2021-03-04t05:06:07z"}, "2021-03-04T05:06:07Z", []),
        ({"timestamp": "2021-03-04T05:06:07.5z"}, "2021-03-04T05:06:07Z", []),
        # The event's own time cannot be read: add_time left out, with a warning (as for a trait).
        (
            {"originalTimestamp": "last Tuesday"},
            None,
            ["originalTimestamp = last Tuesday is not a date or time; add_time left out"],
        ),
        (
            {"originalTimestamp": True, "timestamp": "2022-01-01T12:00:00Z"},
            "2022-01-01T12:00:00Z",
            ["originalTimestamp = true is not a date or time; add_time from timestamp"],
        ),
        (
            {"originalTimestamp": "soon", "timestamp": {"t": 1}},
            None,
            [
                "originalTimestamp = soon is not a date or time; add_time left out",
                'timestamp = {"t":1} is not a date or time; add_time left out',
            ],
        ),
        ({"originalTimestamp": "", "timestamp": None}, None, []),  # absent: nothing to say
    ],
)
def test_the_event_time_for_add_time(
    raw: dict[str, Any], expected: str | None, warned: list[str]
) -> None:
    warnings: list[str] = []
    assert add_time(None, raw, warnings) == expected
    assert warnings == warned
    assert [redacted_warning(w) for w in warnings] == [
        w.split(" = ")[0] + " is not a date or time; " + w.rsplit("; ", 1)[1] for w in warned
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-04-27", "2021-04-27"),
        ("2021-04-27T10:00:00Z", "2021-04-27"),
        ("2021-13-01", None),
        (20210427, None),
    ],
)
def test_date_part(value: Any, expected: str | None) -> None:
    assert date_part(value) == expected


def test_dropped_lists_top_level_keys_and_unmapped_paths_inside_mapped_objects() -> None:
    traits = (
        {
            "name": "Ann",
            "userId": "u",
            "role": "x",
            "address": {"city": "Tallinn", "street": "Main"},
            "prefs": {"a": 1},
        },
        {"email": "a@b.c", "junk": 1, "role": "y"},
    )
    mapping = {"role": "r" * 40, "address.city": "c" * 40}
    found = ["prefs"]  # what another body of the event dropped: listed once
    table = compiled_mapping(mapping, PlanConfig(), PERSON_KIND)
    dropped(traits, table, found)
    assert found == ["prefs", "address.street", "junk"]


def test_an_unmapped_key_inside_a_mapped_object_is_dropped_whatever_its_name() -> None:
    # "email" and "plan" are names of top-level traits a person's body sends; inside `company`,
    # of which only `company.name` is mapped, they are sent nowhere: reported (1939362 missed
    # them, its shortcut comparing the object's own keys with top-level paths).
    traits = ({"name": "Ada", "company": {"name": "Acme", "email": "ceo@acme.io", "plan": "Pro"}},)
    table = compiled_mapping(
        {"company.name": "c" * 40, "plan": "p" * 40}, PlanConfig(), PERSON_KIND
    )
    found: list[str] = []
    dropped(traits, table, found)
    assert found == ["company.email", "company.plan"]


def test_owner_id_mapping_is_never_sent() -> None:
    warnings: list[str] = []
    traits = ({"boss": 5, "role": "x"},)
    config = PlanConfig()
    table = compiled_mapping({"boss": "owner_id", "role": "r" * 40}, config)
    values = mapped_values(traits, table, config, warnings)
    assert values == {"r" * 40: "x"}
    assert warnings == ["boss is mapped to owner_id, which rpd never sends; dropped"]


@pytest.mark.parametrize(
    ("key", "info", "custom"),
    [
        ("a" * 40, None, True),
        ("job_title", None, False),
        (
            "job_title",
            FieldInfo(key="job_title", name="Job title", field_type="varchar", is_custom=False),
            False,
        ),
        (
            "b" * 40,
            FieldInfo(key="b" * 40, name="Score", field_type="double", is_custom=True),
            True,
        ),
        (
            "short_custom",
            FieldInfo(key="short_custom", name="X", field_type="varchar", is_custom=True),
            True,
        ),
    ],
)
def test_custom_fields_go_in_custom_fields(key: str, info: FieldInfo | None, custom: bool) -> None:
    config = PlanConfig(field_types={key: info} if info else {})
    nested = Kind((), frozenset(), {}, frozenset({key}))  # a v2 body that takes `key` as standard
    body = mapped_values((({"x": "7"},)), compiled_mapping({"x": key}, config, nested), config, [])
    inner, top = list(body.pop("custom_fields", {})), list(body)
    assert (inner, top) == (([key], []) if custom else ([], [key]))


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [
        ("a@b.c", ["a@b.c"], False),
        ({"work": "a@b.c"}, None, True),
        ([{"type": "work"}], None, True),
        ([{"value": "a@b.c"}, {"x": 1}], ["a@b.c"], False),
    ],
)
def test_an_email_holding_no_address_is_warned_about(
    value: Any, expected: list[str] | None, warned: bool
) -> None:
    warnings: list[str] = []
    found = read_email(value, warnings)
    assert (None if found is None else [c["value"] for c in found]) == expected
    message = (
        f"email = {json.dumps(value, separators=(',', ':'))} holds no email (give a string, "
        'a list of strings, or objects with a "value"); left out'
    )
    assert warnings == ([message] if warned else [])


def test_an_email_holding_no_address_is_warned_about_after_earlier_warnings() -> None:
    """Whether the email's own entries said why is judged by its warnings, not by the ones the
    body had before (an earlier trait's)."""
    earlier = Warned("an earlier trait's warning")
    warnings: list[str] = [earlier]
    assert read_email({"work": "a@b.c"}, warnings) is None
    assert warnings == [
        earlier,
        'email = {"work":"a@b.c"} holds no email (give a string, a list of strings, or objects '
        'with a "value"); left out',
    ]
    warnings = [earlier]
    assert read_email("n/a", warnings) is None
    assert warnings == [earlier, "email = n/a is not an email address; dropped"]


def test_a_dotted_path_reads_nested_objects_else_a_key_holding_the_dots() -> None:
    # Many sources flatten objects ("company.role"): a mapped path reads such a key too, so its
    # value is sent (and, being read, it is not listed as dropped).
    flat = ({"company.role": "flat"},)
    nested = ({"company": {"role": "nested"}, "company.role": "flat"},)
    parts = ("company", "role")
    assert trait(flat, "company.role", parts) == "flat"
    assert trait(nested, "company.role", parts) == "nested"
    assert trait(({"company.role": ""}, {"company.role": "ctx"}), "company.role", parts) == "ctx"
    found: list[str] = []
    dropped(flat, compiled_mapping({"company.role": "r" * 40}, PlanConfig()), found)
    assert found == []


def test_a_warning_has_words_without_the_event_data_it_quotes() -> None:
    from rudder_pipedrive_cli.core.errors import UNSHOWN, redacted_warning
    from rudder_pipedrive_cli.core.fields import visible_to

    warnings: list[str] = []
    visible_to("ann@example.com", "visible_to", warnings)
    assert warnings == ["visible_to = ann@example.com is not one of 1, 3, 5, 7; dropped"]
    assert redacted_warning(warnings[0]) == "visible_to is not one of 1, 3, 5, 7; dropped"
    # A warning never given redacted words is counted without its words.
    assert redacted_warning("ann@example.com is odd") == UNSHOWN


@pytest.mark.parametrize(
    ("value", "expected", "refused"),
    [
        ([None, 5, "m@example.com"], ["m@example.com"], ["5"]),  # issue 20 item 7
        ([True, " a@b.co ", "n/a", "", "a@b.co"], ["a@b.co"], ["true", "n/a"]),
        ("ann@example", [], ["ann@example"]),
        ("ann @example.com", [], ["ann @example.com"]),
        (12.5, [], ["12.5"]),
        ([{"value": "x@y.io"}, {"value": 7}], ["x@y.io"], ["7"]),
        ("first.last+tag@sub.example.co.uk", ["first.last+tag@sub.example.co.uk"], []),
    ],
)
def test_only_strings_that_look_like_addresses_are_emails(
    value: Any, expected: list[str], refused: list[str]
) -> None:
    warnings: list[str] = []
    found = read_email(value, warnings)
    assert [c["value"] for c in found or []] == expected
    assert (found or [{}])[0].get("primary", True) is True
    assert warnings == [f"email = {shown} is not an email address; dropped" for shown in refused]
    assert {redacted_warning(w) for w in warnings} <= {"email is not an email address; dropped"}


@pytest.mark.parametrize(
    ("top", "context", "expected"),
    [
        ({"role": "CTO", "plan": "Pro"}, {"role": "Eng", "tier": 2}, ("CTO", "Pro", 2)),
        ({"role": None, "plan": ""}, {"role": "Eng", "plan": "Free"}, ("Eng", "Free", None)),
        ({"role": "", "tier": 3}, {"role": None}, (None, None, 3)),
    ],
)
def test_top_level_traits_win_and_absent_ones_fall_through_to_context(
    top: dict[str, Any], context: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    traits = (top, context)
    assert tuple(trait(traits, key) for key in ("role", "plan", "tier")) == expected
