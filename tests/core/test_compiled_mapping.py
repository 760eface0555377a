"""A mapping compiled once per config (issue 12): the rows follow the config they were made for."""

from __future__ import annotations

import sys
from typing import Any

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.fields import (
    ADD_TIME,
    CUSTOM,
    IDENTITY,
    MAPPED,
    NEVER,
    OWNED,
    PERSON_KIND,
    PERSON_SHAPES,
    REFUSED,
    STANDARD,
    compiled_mapping,
    mapped_values,
    to_number,
)
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import Outcome

SCORE = "b" * 40
MAPPING = {
    "score": SCORE,
    "title": "job_title",
    "owner": "owner_id",
    "plan": "c" * 40,
    "company.size": "employee_count",
}


def test_rows_name_custom_typed_and_never_sent_keys() -> None:
    score = FieldInfo(key=SCORE, name="Score", field_type="double")
    config = PlanConfig(person_fields=MAPPING, field_types={SCORE: score})
    assert compiled_mapping(MAPPING, config).rows == (
        ("score", SCORE, CUSTOM, to_number, score, (), None),
        ("title", "job_title", MAPPED, None, None, (), None),
        ("owner", "owner_id", NEVER, None, None, (), None),
        ("plan", "c" * 40, CUSTOM, None, None, (), None),
        ("company.size", "employee_count", MAPPED, None, None, ("company", "size"), None),
    )
    table = compiled_mapping(MAPPING, config)
    assert table.sent == {*MAPPING, "userId", "id", "previousId", "groupId", "anonymousId"}
    assert table.inner == {"company"}  # what a mapped dotted path goes through


def test_a_kinds_rows_say_once_per_config_how_each_mapped_standard_field_is_shaped() -> None:
    """A person's table: its standard traits first; a value mapped to a standard field shaped as
    its standard trait is (add_time on create only), or refused with the words worked out once;
    the identity field refused."""
    mapping = {"mail": "emails", "born": "add_time", "who": "org_id", "size": "employee_count"}
    config = PlanConfig(person_fields={**mapping, "uid": "f" * 40}, user_id_field="f" * 40)
    create = compiled_mapping(
        config.person_fields, config, PERSON_KIND, identity="f" * 40, identity_words="is it"
    )
    update = compiled_mapping(config.person_fields, config, PERSON_KIND, create=False)
    assert [row[:3] for row in create.rows] == [
        ("email", "emails", STANDARD),
        ("phone", "phones", STANDARD),
        ("visible_to", "visible_to", STANDARD),
        ("add_time", "add_time", ADD_TIME),
        ("mail", "emails", OWNED),
        ("born", "add_time", OWNED),
        ("who", "org_id", REFUSED),
        ("size", "employee_count", REFUSED),
        ("uid", "f" * 40, IDENTITY),
    ]
    assert create.rows[3][4] is True  # a trait is mapped to add_time: its fallback
    assert create.rows[5][6] is PERSON_SHAPES["add_time"]
    assert [row[2] for row in update.rows[3:]] == [OWNED, OWNED, REFUSED, REFUSED, CUSTOM]
    assert update.rows[4][6] is not PERSON_SHAPES["add_time"]  # no add_time on update
    assert create.rows[6][6] == "a trait is mapped to org_id, which rpd sets itself; dropped"
    assert create.rows[7][6] == (
        "a trait is mapped to employee_count, which only the account's field listing can "
        "resolve (dry-run: --lookups, or the state of an earlier send); left out"
    )
    assert create.identity_warning == "uid is it"
    assert update.identity_warning == ""  # no identity given: the row is a custom field
    assert create.overridden == {
        "emails": "mail is mapped to emails, which the event's own emails sets; dropped",
        "add_time": "born is mapped to add_time, which the event's own add_time sets; dropped",
    }
    sources = ({"mail": "a@b.co", "born": "2020-01-02", "who": 4, "uid": "x", "email": "c@d.ef"},)
    warnings: list[str] = ["earlier"]
    # The own email first, the mapped one added; no add_time trait: the mapped one, not the
    # event's time.
    both = [
        {"value": "c@d.ef", "primary": True, "label": "work"},
        {"value": "a@b.co", "primary": False, "label": "work"},
    ]
    raw = {"originalTimestamp": "2021-01-01T00:00:00Z"}
    body = mapped_values(sources, create, config, warnings, "", None, raw)
    assert body == {"emails": both, "add_time": "2020-01-02T00:00:00Z"}  # no custom_fields
    # The rows' own warnings, the identity's, then the shapes' (the order plans always gave).
    assert warnings == [
        "earlier",
        "uid is it",
        "a trait is mapped to org_id, which rpd sets itself; dropped",
    ]
    assert mapped_values(sources, update, config, []) == {
        "emails": both,
        "custom_fields": {"f" * 40: "x"},
    }


def test_the_same_mapping_under_another_config_is_compiled_again() -> None:
    typed = PlanConfig(field_types={SCORE: FieldInfo(key=SCORE, name="Score", field_type="double")})
    untyped = PlanConfig()
    traits = ({"score": "7.5", "title": "CTO", "owner": 3, "plan": "Pro", "company": {"size": 40}},)
    warnings: list[str] = []
    assert mapped_values(traits, compiled_mapping(MAPPING, typed), typed, warnings) == {
        SCORE: 7.5,
        "job_title": "CTO",
        "c" * 40: "Pro",
        "employee_count": 40,
    }
    assert mapped_values(traits, compiled_mapping(MAPPING, untyped), untyped, warnings) == {
        SCORE: "7.5",
        "job_title": "CTO",
        "c" * 40: "Pro",
        "employee_count": 40,
    }
    assert mapped_values(traits, compiled_mapping(MAPPING, typed), typed, []) == {
        SCORE: 7.5,
        "job_title": "CTO",
        "employee_count": 40,
        "c" * 40: "Pro",
    }
    assert warnings == [
        "owner is mapped to owner_id, which rpd never sends; dropped",
        "owner is mapped to owner_id, which rpd never sends; dropped",
    ]


def test_an_empty_string_reads_as_absent_from_one_source_as_from_several() -> None:
    config = PlanConfig()
    one = ({"title": "", "company": {"size": ""}},)
    several = ({"title": ""}, {"title": "CTO", "company.size": ""})
    assert mapped_values(one, compiled_mapping(MAPPING, config), config, []) == {}
    assert mapped_values(several, compiled_mapping(MAPPING, config), config, []) == {
        "job_title": "CTO"
    }


def test_a_config_compiles_each_mapping_once_and_a_replaced_config_again() -> None:
    """Bodies take the tables `PlanConfig.compiled` keeps (made at first use); a config made by
    `replace` (the field listing fetched) starts without them, so its own types apply."""
    from dataclasses import replace

    from helpers_core import CONFIG, ROLE, patch_person, run, search_person

    config = replace(CONFIG)
    raw = {"type": "identify", "userId": "u-1", "traits": {"role": 7, "junk": 1}}
    calls = [search_person("u-1", 42), patch_person(42, {"custom_fields": {ROLE: 7}})]
    run(raw, calls, config=config)
    table = config.compiled[("person", False)]
    # The identity field, the longest key it takes (not listed: no limit known), its listing.
    field = config.compiled["user_id_field"]
    assert field == (CONFIG.user_id_field, sys.maxsize, None)
    run(raw, calls, config=config)
    # The same table, not one per body.
    assert config.compiled == {("person", False): table, "user_id_field": field}
    user = FieldInfo(key=CONFIG.user_id_field, name="User", field_type="varchar")
    role = FieldInfo(key=ROLE, name="Role", field_type="varchar")
    typed = replace(config, field_types={ROLE: role, CONFIG.user_id_field: user})
    assert typed.compiled == {}
    typed_calls = [search_person("u-1", 42), patch_person(42, {"custom_fields": {ROLE: "7"}})]
    run(raw, typed_calls, config=typed)
    assert typed.compiled[("person", False)] is not table
    assert typed.compiled["user_id_field"] == (CONFIG.user_id_field, 255, user)
    assert config.compiled == {("person", False): table, "user_id_field": field}


def test_a_refused_shape_fails_the_event_only_once_every_row_was_read() -> None:
    """With `on_invalid = "fail"`, a row's own refusal comes first, as it always did: a value
    mapped to the lead's value that is no amount fails the event only when no later custom field
    failed it already."""
    import pytest

    from rudder_pipedrive_cli.core.fields import LEAD_KIND

    typed = FieldInfo(key=SCORE, name="Score", field_type="double")
    config = PlanConfig(field_types={SCORE: typed})
    table = compiled_mapping({"amount_text": "value", "score": SCORE}, config, LEAD_KIND)
    with pytest.raises(PlanFailure) as later:
        mapped_values(({"amount_text": "lots", "score": "high"},), table, config, [], "EUR")
    assert later.value.reason == (
        "cannot convert score = high for field Score (double): expected a number"
    )
    warnings: list[str] = []
    with pytest.raises(PlanFailure) as shaped:
        mapped_values(({"amount_text": "lots", "score": 2},), table, config, warnings, "EUR")
    assert shaped.value.reason == (
        "cannot convert lots for the lead's value: expected a number (with "
        'identity.default_currency set) or {"value", "currency"}'
    )


def test_two_paths_mapped_to_one_standard_field_each_shaped_the_last_that_shapes_wins() -> None:
    from rudder_pipedrive_cli.core.fields import ORG_KIND

    config = PlanConfig()
    table = compiled_mapping({"seen": "visible_to", "shown": "visible_to"}, config, ORG_KIND)
    warnings: list[str] = []
    assert mapped_values(({"seen": 3, "shown": "all"},), table, config, warnings) == {
        "visible_to": 3
    }
    assert warnings == ["visible_to = all is not one of 1, 3, 5, 7; dropped"]
    assert mapped_values(({"seen": "x", "shown": 7},), table, config, []) == {"visible_to": 7}


def person_body(traits: dict[str, object], raw: dict[str, object], mapping: dict[str, str]) -> Any:
    """A new person's body, its warnings and its dropped traits, from top-level `traits`."""
    from rudder_pipedrive_cli.core.events import parse_event
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.plans.common import PERSON, entity_body, plan_ctx

    config = PlanConfig(person_fields=mapping)
    event = parse_event({"type": "identify", "userId": "u-1", "traits": traits, **raw}, "t:1")
    ctx = plan_ctx(event, config, IdentityStore())
    body = entity_body(ctx, PERSON, (("traits",),), create=True)
    return list(body.items()), ctx.warnings, ctx.dropped


def test_add_time_and_mapped_keys_in_the_one_loop_keep_their_order() -> None:
    """add_time (the trait, else the event time) comes before the keys mapped traits add, and its
    warnings after the shapes'; an own value wins over a mapped one with a warning, once per key,
    after add_time's."""
    mapping = {"title": "job_title", "born": "add_time", "alias": "name", "nick": "name"}
    traits = {"name": "Ann", "add_time": "soon", "title": "CTO", "born": "2020-01-02"}
    traits |= {"alias": "A", "nick": "B", "vis": 2, "visible_to": "all"}
    raw = {"originalTimestamp": "2021-01-01T00:00:00Z"}
    assert person_body(traits, raw, mapping) == (
        [("name", "Ann"), ("add_time", "2021-01-01T00:00:00Z"), ("job_title", "CTO")],
        [
            "visible_to = all is not one of 1, 3, 5, 7; dropped",
            "add_time = soon is not a date or time; using the event time",
            "born is mapped to add_time, which the event's own add_time sets; dropped",
            "alias, nick is mapped to name, which the event's own name sets; dropped",
        ],
        ["vis"],
    )


def test_a_trait_mapped_to_add_time_stands_in_for_the_event_time_in_its_place() -> None:
    """Without an add_time trait the mapped one is the value, in its row's place among the mapped
    keys; the event's times are not read (nor warned about)."""
    mapping = {"title": "job_title", "born": "add_time", "alias": "name"}
    traits = {"title": "CTO", "born": "2020-01-02", "alias": "A"}
    raw = {"originalTimestamp": "last Tuesday"}
    assert person_body(traits, raw, mapping) == (
        [("job_title", "CTO"), ("add_time", "2020-01-02T00:00:00Z"), ("name", "A")],
        [],
        [],
    )
    # A mapped value that is no time: the event's time, in add_time's own place, warned about.
    traits["born"] = "never"
    raw["timestamp"] = "2022-03-04T05:06:07Z"
    assert person_body(traits, raw, mapping) == (
        [("add_time", "2022-03-04T05:06:07Z"), ("job_title", "CTO"), ("name", "A")],
        ["originalTimestamp = last Tuesday is not a date or time; add_time from timestamp"],
        [],
    )


def test_a_refused_create_reports_its_body_warnings_and_dropped_traits() -> None:
    from rudder_pipedrive_cli.core.events import parse_event
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.plans.common import person_create_body, plan_ctx

    traits = {"visible_to": 2, "junk": 1}
    event = parse_event(
        {"type": "identify", "userId": "u-1", "traits": traits, "timestamp": "x"}, "t:1"
    )
    ctx = plan_ctx(event, PlanConfig(create_persons=True), IdentityStore())
    refused = person_create_body(ctx, "u-1", (("traits",),))
    assert isinstance(refused, Outcome)
    assert (refused.status, refused.reason, refused.stage) == (
        "failed",
        "cannot create person without a name",
        "create person",
    )
    assert refused.warnings == (
        "visible_to = 2 is not one of 1, 3, 5, 7; dropped",
        "timestamp = x is not a date or time; add_time left out",
    )
    assert refused.dropped == ("junk",)


TIME = {"originalTimestamp": "2024-05-01T12:34:55Z"}
NO_EMAIL = "email = n/a is not an email address; dropped"
NO_PHONE = "phone =   holds no phone (give a string, a list of strings, or objects with a "
NO_PHONE += '"value"); left out'
NO_NAME = "a trait mapped to name = true is not a name (a string); dropped"
NAMELESS_CASES = [  # context.traits, the event's times, whether no body is made, what it says
    ({"phone": "+49 30 1", "role": "Buyer"}, TIME, True, (), ()),  # the benchmark's
    ({"email": "a@example.com", "role": ""}, {}, True, (), ()),  # no time: none said
    ({}, TIME, True, (), ()),
    ({"phone": ["+1"]}, TIME, False, (), ()),  # not a string: made, says nothing
    ({"phone": " "}, TIME, False, (NO_PHONE,), ()),
    ({"email": "n/a"}, TIME, False, (NO_EMAIL,), ()),
    (
        {"phone": "+1"},
        {"originalTimestamp": "soon", "timestamp": "2024-05-01T00:00:00Z"},
        False,
        ("originalTimestamp = soon is not a date or time; add_time from timestamp",),
        (),
    ),
    ({"phone": "+1"}, {"timestamp": "2024-05-01T00:00:00Z"}, True, (), ()),  # add_time reads it
    (
        {"phone": "+1"},
        {"timestamp": "x"},
        False,
        ("timestamp = x is not a date or time; add_time left out",),
        (),
    ),
    ({"phone": "+1", "junk": 1}, TIME, False, (), ("junk",)),
    ({"company": {"size": 5, "city": "Rome"}}, TIME, False, (), ("company.city",)),
    (
        {"add_time": "never"},
        TIME,
        False,
        ("add_time = never is not a date or time; using the event time",),
        (),
    ),
    ({"firstName": True}, TIME, False, ("firstName = true is not a name (a string); dropped",), ()),
    ({"nick": True}, TIME, False, (NO_NAME,), ()),  # a trait mapped to name
    (
        {"uid": "u-1"},
        TIME,
        False,
        (
            "uid is mapped to the userId field ([identity] user_id_field), "
            "which rpd fills itself; dropped",
        ),
        (),
    ),
    (
        {"owner": 7},
        TIME,
        False,
        ("owner is mapped to owner_id, which rpd never sends; dropped",),
        (),
    ),
]


def test_a_person_refused_for_want_of_a_name_says_what_its_body_says_made_or_not() -> None:
    """A group's or track's person without a name in its context.traits: its body is not made
    when it would provably hold no name and say nothing (`nameless`: the benchmark's), else made
    for what it says (a value that may warn, a dropped trait, a trait mapped to name or to the
    identity field, a name key, an add_time trait, the event's time not a time); either way the
    failure's warnings and dropped traits are the body's, as `mapped_values` makes them."""
    from rudder_pipedrive_cli.core.events import parse_event
    from rudder_pipedrive_cli.core.fields import nameless
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.plans.common import person_create_body, plan_ctx

    mapping = {"role": SCORE, "nick": "name", "uid": "c" * 40, "owner": "owner_id"}
    mapping["company.size"] = "d" * 40
    for traits, times, quiet, warnings, dropped in NAMELESS_CASES:
        config = PlanConfig(create_persons=True, person_fields=mapping, user_id_field="c" * 40)
        raw = {"type": "group", "userId": "u-1", "groupId": "g-1", "context": {"traits": traits}}
        event = parse_event(raw | times, "t:1")
        refused = person_create_body(plan_ctx(event, config, IdentityStore()), "u-1")
        assert isinstance(refused, Outcome)
        assert (refused.status, refused.reason, refused.stage) == (
            "failed",
            "cannot create person without a name",
            "create person",
        )
        assert (refused.warnings, refused.dropped) == (warnings, dropped), traits
        table = config.compiled["person", True]
        plan = table.plans[tuple(traits)]
        assert (plan.quiet and nameless(plan, (traits,), event.raw)) is quiet, traits
        said: list[str] = []
        found: list[str] = []
        body = mapped_values((traits,), table, config, said, "", found, event.raw)
        assert "name" not in body
        assert (tuple(said), tuple(found)) == (warnings, dropped), traits


def test_a_lead_and_a_deal_table_end_with_their_own_rows() -> None:
    """A lead's own title, value, close date and labels are rows after the mapped ones (so they
    win over values mapped to them); a deal's value and close date too. A monetary custom field
    is two keys in a v1 lead (MONEY), one object in a v2 deal."""
    from rudder_pipedrive_cli.core.fields import (
        DEAL_KIND,
        LEAD_KIND,
        MONEY,
        OWN,
        TITLE,
        VALUE,
        close_date,
    )

    money = FieldInfo(key=SCORE, name="Budget", field_type="monetary")
    config = PlanConfig(field_types={SCORE: money})
    mapping = {"budget": SCORE, "when": "expected_close_date"}
    lead = compiled_mapping(mapping, config, LEAD_KIND, "lead")
    deal = compiled_mapping(mapping, config, DEAL_KIND, "deal")
    assert [row[:3] for row in lead.rows] == [
        ("budget", SCORE, MONEY),
        ("when", "expected_close_date", MAPPED),
        ("", "title", TITLE),
        ("", "value", VALUE),
        ("expected_close_date", "expected_close_date", OWN),
        ("label_ids", "label_ids", OWN),
    ]
    assert [row[:3] for row in deal.rows] == [
        ("budget", SCORE, CUSTOM),
        ("when", "expected_close_date", MAPPED),
        ("", "value", VALUE),
        ("expected_close_date", "expected_close_date", OWN),
    ]
    assert lead.rows[4][6] is close_date
    assert lead.overridden["expected_close_date"] == (
        "when is mapped to expected_close_date, which the event's own expected_close_date "
        "sets; dropped"
    )
    properties = {
        "budget": 5,
        "when": "2026-01-02",
        "expected_close_date": "2026-02-03T10:00:00Z",
        "value": "x",
        "total": 9,
    }
    warnings: list[str] = []
    body = mapped_values((properties,), lead, config, warnings, "eur", title="Demo")
    assert list(body.items()) == [
        (SCORE, 5),
        (SCORE + "_currency", "EUR"),
        ("expected_close_date", "2026-02-03"),
        ("title", "Demo"),
        ("value", {"amount": 9, "currency": "EUR"}),
    ]
    assert warnings == [
        "value = x is not a number; ignored for the lead value",
        "when is mapped to expected_close_date, which the event's own expected_close_date sets; "
        "dropped",
    ]
    body = mapped_values((properties,), deal, config, [], "eur")
    assert list(body.items()) == [
        ("expected_close_date", "2026-02-03"),
        ("value", 9),
        ("currency", "EUR"),
        ("custom_fields", {SCORE: {"value": 5, "currency": "EUR"}}),
    ]


def test_an_own_value_in_no_currency_code_fails_the_lead_after_the_rows_warnings() -> None:
    import pytest

    from rudder_pipedrive_cli.core.fields import LEAD_KIND

    config = PlanConfig()
    table = compiled_mapping({"when": "expected_close_date"}, config, LEAD_KIND, "lead")
    warnings: list[str] = []
    properties = {"when": "soon", "revenue": "x", "amount": 3, "expected_close_date": "soon"}
    with pytest.raises(PlanFailure, match="currency = US Dollars is not a 3-letter currency code"):
        mapped_values((properties,), table, config, warnings, "US Dollars", title="Demo")
    assert warnings == ["revenue = x is not a number; ignored for the lead value"]
    drop = PlanConfig(on_invalid="drop")
    table = compiled_mapping({"when": "expected_close_date"}, drop, LEAD_KIND, "lead")
    warnings = []
    body = mapped_values((properties,), table, drop, warnings, "US Dollars", title="Demo")
    assert body == {"title": "Demo"}
    assert warnings == [
        "revenue = x is not a number; ignored for the lead value",
        "currency = US Dollars is not a 3-letter currency code; the lead's value is left out",
        "expected_close_date = soon is not a date; left out",
    ]


def test_sources_of_one_shape_are_planned_once_each_event_read_for_its_own_values() -> None:
    """The rows a shape of sources (their keys) can use and the traits it drops are worked out at
    its first body; later bodies of that shape read their own values, an absent one ("" or None)
    from the next source holding the path, and report the same dropped traits."""
    config = PlanConfig(person_fields={"role": SCORE})
    table = compiled_mapping(config.person_fields, config, PERSON_KIND, create=False)
    first: list[str] = []
    body = mapped_values(
        ({"email": "a@example.com", "junk": 1}, {"role": "CTO", "email": "b@example.com"}),
        table,
        config,
        [],
        found=first,
    )
    assert body == {
        "emails": [{"value": "a@example.com", "primary": True, "label": "work"}],
        "custom_fields": {SCORE: "CTO"},
    }
    assert first == ["junk"]
    (shape,) = table.plans
    assert shape == (("email", "junk"), ("role", "email"))
    plan = table.plans[shape]
    # The first source holding each path, then the others: no phone, no visible_to, no add_time
    # (an update); the custom field of one source copied as it is.
    assert [row[:2] + row[-2:] for row in plan.standard] == [("email", "emails", 0, (1,))]
    assert (plan.plain, plan.created, plan.rows) == (((SCORE, 1, "role"),), None, ())
    assert (plan.name, plan.gone) == (None, ("junk",))
    again: list[str] = ["junk"]
    body = mapped_values(
        ({"email": "", "junk": 2}, {"role": None, "email": "c@example.com"}),
        table,
        config,
        [],
        found=again,
    )
    assert body == {"emails": [{"value": "c@example.com", "primary": True, "label": "work"}]}
    assert again == ["junk"]  # each path once
    assert list(table.plans) == [shape]


def test_a_source_object_a_dotted_path_goes_into_is_read_for_its_dropped_paths_every_time() -> None:
    """What is dropped under an object a mapped dotted path goes into depends on its value, not
    on the keys: "company" as an object drops its unmapped paths, as a string itself."""
    config = PlanConfig()
    table = compiled_mapping({"company.size": SCORE}, config)
    found: list[str] = []
    mapped_values(({"company": {"size": 5, "city": "Rome"}},), table, config, [], found=found)
    assert found == ["company.city"]
    found = []
    assert mapped_values(({"company": "ACME"},), table, config, [], found=found) == {}
    assert found == ["company"]
    assert list(table.plans) == [("company",)]


def test_the_shapes_planned_per_table_are_bounded_and_a_new_one_past_them_still_planned() -> None:
    from rudder_pipedrive_cli.core.fields import SHAPES

    config = PlanConfig()
    table = compiled_mapping({"role": SCORE}, config)
    for number in range(SHAPES + 3):
        found: list[str] = []
        source = {f"k{number}": 1, "role": number}
        assert mapped_values((source,), table, config, [], found=found) == {SCORE: number}
        assert found == [f"k{number}"]
    assert len(table.plans) == SHAPES
    assert ("k0", "role") in table.plans and (f"k{SHAPES}", "role") not in table.plans


def test_a_shape_of_many_keys_is_planned_each_time_not_kept() -> None:
    # Review: a kept plan holds its shape's keys; items of thousands of keys each (up to
    # --max-item-bytes) held them for the whole run. Their traits dropped are reported alike.
    from rudder_pipedrive_cli.core.fields import SHAPE_KEYS

    config = PlanConfig()
    table = compiled_mapping({"role": SCORE}, config)
    for size in (SHAPE_KEYS, SHAPE_KEYS + 1):
        source = {"role": size} | {f"k{n}": n for n in range(size - 1)}
        for _ in range(2):
            found = ["k0"]  # reported by another body of the event already
            assert mapped_values((source,), table, config, [], found=found) == {SCORE: size}
            assert found == ["k0", *(f"k{n}" for n in range(1, size - 1))]
    assert [len(keys) for keys in table.plans] == [SHAPE_KEYS]


def test_a_body_reads_the_objects_at_its_paths_and_passes_over_what_is_no_object() -> None:
    """An identify's person: its top-level traits over context.traits, each only when an object
    (traits given as a string are no source: the role comes from context.traits, and a warning
    says the traits were not read; null traits are none, unsaid)."""
    from helpers_core import ROLE, patch_person, run, search_person

    context = {"traits": {"role": "Eng", "junk": 1}}
    for traits, said in (("x", "a string"), (["role"], "a list"), (None, "")):
        raw = {"type": "identify", "userId": "u-1", "traits": traits, "context": context}
        calls = [search_person("u-1", 42), patch_person(42, {"custom_fields": {ROLE: "Eng"}})]
        outcome = run(raw, calls)
        warnings = (f"traits is {said}, not an object: none of its values is read",) if said else ()
        assert (outcome.status, outcome.warnings, outcome.dropped) == ("sent", warnings, ("junk",))
    raw = {"type": "identify", "userId": "u-1", "traits": {"role": "CTO"}, "context": context}
    calls = [search_person("u-1", 42), patch_person(42, {"custom_fields": {ROLE: "CTO"}})]
    assert run(raw, calls).dropped == ("junk",)


def test_a_shape_reads_a_name_only_when_a_source_holds_a_name_key() -> None:
    config = PlanConfig()
    table = compiled_mapping({}, config, PERSON_KIND, create=False)
    warnings: list[str] = []
    sources = ({"email": "x"}, {"lastName": " Lovelace ", "firstName": True})
    assert mapped_values(sources, table, config, warnings) == {"name": "Lovelace"}
    assert warnings == [  # the name's first
        "firstName = true is not a name (a string); dropped",
        "email = x is not an email address; dropped",
    ]
    assert table.plans[(("email",), ("lastName", "firstName"))].name is PERSON_KIND.name
    assert mapped_values(({"email": ""},), table, config, []) == {}
    assert table.plans[("email",)].name is None


def test_custom_fields_taken_as_they_are_keep_their_place_after_converted_and_mapped_ones() -> None:
    """A body's keys come in the mapping's order: a custom field of no known type (copied as it is,
    ahead of the other rows, only while nothing before it is converted) after a typed one, and in
    a lead (custom fields among its keys) after a standard field mapped before it."""
    from rudder_pipedrive_cli.core.fields import LEAD_KIND

    plan, role = "c" * 40, "d" * 40
    score = FieldInfo(key=SCORE, name="Score", field_type="double")
    config = PlanConfig(field_types={SCORE: score})
    mapping = {"plan": plan, "score": SCORE, "role": role}
    person = compiled_mapping(mapping, config, PERSON_KIND, create=False)
    body = mapped_values(({"role": "CTO", "score": "2", "plan": "Pro"},), person, config, [])
    assert list(body["custom_fields"].items()) == [(plan, "Pro"), (SCORE, 2), (role, "CTO")]
    lead = compiled_mapping({"when": "expected_close_date", "role": role}, config, LEAD_KIND, "l")
    properties = {"role": "CTO", "when": "2024-05-01T10:00:00Z"}
    body = mapped_values((properties,), lead, config, [], "EUR", title="Demo")
    assert list(body.items()) == [
        ("expected_close_date", "2024-05-01"),
        (role, "CTO"),
        ("title", "Demo"),
    ]
