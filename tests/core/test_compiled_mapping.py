"""A mapping compiled once per config (issue 12): the rows follow the config they were made for."""

from __future__ import annotations

from rudder_pipedrive_cli.core.fields import Traits, compiled_mapping, mapped_split, mapped_values
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig

SCORE = "b" * 40
MAPPING = {"score": SCORE, "title": "job_title", "owner": "owner_id", "plan": "c" * 40}


def test_rows_name_custom_typed_and_never_sent_keys() -> None:
    config = PlanConfig(
        person_fields=MAPPING,
        field_types={SCORE: FieldInfo(key=SCORE, name="Score", field_type="double")},
    )
    assert compiled_mapping(MAPPING, config) == (
        ("score", SCORE, True, True, False),
        ("title", "job_title", False, False, False),
        ("owner", "owner_id", False, False, True),
        ("plan", "c" * 40, True, False, False),
    )


def test_the_same_mapping_under_another_config_is_compiled_again() -> None:
    typed = PlanConfig(field_types={SCORE: FieldInfo(key=SCORE, name="Score", field_type="double")})
    untyped = PlanConfig()
    traits = Traits(sources=({"score": "7.5", "title": "CTO", "owner": 3, "plan": "Pro"},))
    warnings: list[str] = []
    assert mapped_split(traits, MAPPING, typed, warnings) == (
        {"job_title": "CTO"},
        {SCORE: 7.5, "c" * 40: "Pro"},
    )
    assert mapped_split(traits, MAPPING, untyped, warnings) == (
        {"job_title": "CTO"},
        {SCORE: "7.5", "c" * 40: "Pro"},
    )
    assert mapped_values(traits, MAPPING, typed, []) == {
        SCORE: 7.5,
        "job_title": "CTO",
        "c" * 40: "Pro",
    }
    assert warnings == [
        "owner is mapped to owner_id, which rpd never sends; dropped",
        "owner is mapped to owner_id, which rpd never sends; dropped",
    ]
