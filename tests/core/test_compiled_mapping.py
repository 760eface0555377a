"""A mapping compiled once per config (issue 12): the rows follow the config they were made for."""

from __future__ import annotations

import sys

from rudder_pipedrive_cli.core.fields import (
    CUSTOM,
    IDENTITY,
    MAPPED,
    NEVER,
    PERSON_KIND,
    PERSON_SHAPES,
    REFUSED,
    STANDARD,
    compiled_mapping,
    mapped_values,
    to_number,
)
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig

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
        ("mail", "emails", MAPPED),
        ("born", "add_time", MAPPED),
        ("who", "org_id", REFUSED),
        ("size", "employee_count", REFUSED),
        ("uid", "f" * 40, IDENTITY),
    ]
    assert create.rows[4][6] is PERSON_SHAPES["add_time"]
    assert update.rows[4][6] is not PERSON_SHAPES["add_time"]
    assert create.rows[5][6] == "a trait is mapped to org_id, which rpd sets itself; dropped"
    assert create.rows[6][6] == (
        "a trait is mapped to employee_count, which only the account's field listing can "
        "resolve (dry-run: --lookups, or the state of an earlier send); left out"
    )
    assert create.identity_warning == "uid is it"
    assert update.identity_warning == ""  # no identity given: the row is a custom field
    sources = ({"mail": "a@b.co", "born": "2020-01-02", "who": 4, "uid": "x", "email": "c@d.ef"},)
    warnings: list[str] = ["earlier"]
    body: dict[str, object] = {}
    custom: dict[str, object] = {}
    top = mapped_values(sources, create, config, warnings, "", custom, body)
    assert body == {"emails": [{"value": "c@d.ef", "primary": True, "label": "work"}]}
    assert top == {
        "emails": [{"value": "a@b.co", "primary": True, "label": "work"}],
        "add_time": "2020-01-02T00:00:00Z",
    }
    assert custom == {}
    # The rows' own warnings, the identity's, then the shapes' (the order plans always gave).
    assert warnings == [
        "earlier",
        "uid is it",
        "a trait is mapped to org_id, which rpd sets itself; dropped",
    ]
    assert mapped_values(sources, update, config, [], "", custom, {}) == {
        "emails": [{"value": "a@b.co", "primary": True, "label": "work"}]
    }
    assert custom == {"f" * 40: "x"}


def test_the_same_mapping_under_another_config_is_compiled_again() -> None:
    typed = PlanConfig(field_types={SCORE: FieldInfo(key=SCORE, name="Score", field_type="double")})
    untyped = PlanConfig()
    traits = ({"score": "7.5", "title": "CTO", "owner": 3, "plan": "Pro", "company": {"size": 40}},)
    warnings: list[str] = []
    custom: dict[str, object] = {}
    assert mapped_values(
        traits, compiled_mapping(MAPPING, typed), typed, warnings, custom=custom
    ) == {
        "job_title": "CTO",
        "employee_count": 40,
    }
    assert custom == {SCORE: 7.5, "c" * 40: "Pro"}
    custom = {}
    assert mapped_values(
        traits, compiled_mapping(MAPPING, untyped), untyped, warnings, custom=custom
    ) == {
        "job_title": "CTO",
        "employee_count": 40,
    }
    assert custom == {SCORE: "7.5", "c" * 40: "Pro"}
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

    from rudder_pipedrive_cli.core.errors import PlanFailure
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
