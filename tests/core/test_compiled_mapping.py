"""A mapping compiled once per config (issue 12): the rows follow the config they were made for."""

from __future__ import annotations

from rudder_pipedrive_cli.core.fields import (
    CUSTOM,
    MAPPED,
    NEVER,
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
        ("score", SCORE, CUSTOM, to_number, score, ()),
        ("title", "job_title", MAPPED, None, None, ()),
        ("owner", "owner_id", NEVER, None, None, ()),
        ("plan", "c" * 40, CUSTOM, None, None, ()),
        ("company.size", "employee_count", MAPPED, None, None, ("company", "size")),
    )
    table = compiled_mapping(MAPPING, config, frozenset({"name"}))
    assert table.sent == {*MAPPING, "name", "userId", "id", "previousId", "groupId", "anonymousId"}
    assert table.inner == {"company"}  # what a mapped dotted path goes through


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
    table = config.compiled["person"]
    run(raw, calls, config=config)
    assert config.compiled == {"person": table}  # the same table, not a new one per body
    typed = replace(
        config, field_types={ROLE: FieldInfo(key=ROLE, name="Role", field_type="varchar")}
    )
    assert typed.compiled == {}
    typed_calls = [search_person("u-1", 42), patch_person(42, {"custom_fields": {ROLE: "7"}})]
    run(raw, typed_calls, config=typed)
    assert typed.compiled["person"] is not table
    assert config.compiled == {"person": table}
