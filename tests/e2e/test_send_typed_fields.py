"""Person fields of the types the sandbox's seed lacks (boolean, time, address, user, org,
people): rpd's conversions reach the sandbox, which takes them as Pipedrive does (an address is an
object of its subfields, the id fields integers) and refuses other shapes. Over loopback HTTP,
with the fields added to the sandbox's seed for this test."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2e_support import (
    EXAMPLE_CONFIG,
    add_sandbox_fields,
    holdings,
    identify,
    rpd_send,
    track,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import Field

FIELDS = {  # trait = (key, type)
    "active": ("a1" * 20, "boolean"),
    "call_at": ("a2" * 20, "time"),
    "home": ("a3" * 20, "address"),
    "manager": ("a4" * 20, "user"),
    "employer": ("a5" * 20, "org"),
    "referrer": ("a6" * 20, "people"),
}


@pytest.fixture
def typed_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    added = tuple(Field(code=k, name=n, type=t, custom=True) for n, (k, t) in FIELDS.items())
    add_sandbox_fields(monkeypatch, "person", *added)


def test_converted_values_of_every_type_are_taken(
    typed_fields: None, sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "rpd.toml"
    mapping = "".join(f'{name} = "{key}"\n' for name, (key, _) in FIELDS.items())
    config.write_text(
        EXAMPLE_CONFIG.read_text().replace("[fields.persons]", f"[fields.persons]\n{mapping}")
    )
    traits = {"active": "yes", "call_at": "09:30", "home": {"city": "Tallinn", "country": "EE"}}
    traits |= {"manager": "17", "employer": 3, "referrer": 4.0}
    events = [identify("m-1", "u-1", name="Ann", **traits)]
    run = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "events.ndjson", events), config=config
    )

    assert run.exit_code == 0, (run.stderr, run.dead_letters)
    held = holdings(sandbox).person("u-1")["custom_fields"]
    assert {name: held[key] for name, (key, _) in FIELDS.items()} == {
        "active": True,
        "call_at": "09:30:00",
        "home": {"value": "Tallinn, EE", "locality": "Tallinn", "country": "EE"},
        "manager": 17,
        "employer": 3,
        "referrer": 4,
    }


@pytest.mark.parametrize(
    ("trait", "value", "error"),
    [
        ("active", "true", "expected boolean for a boolean field, got string"),
        ("call_at", "25:99:00", "expected a time (HH:MM:SS)"),
        ("call_at", "09:30", "expected a time (HH:MM:SS)"),
        ("home", "Main St 1", "value: expected object, got string"),
        ("home", {"city": "Tallinn"}, "value.city: unknown property"),
        ("manager", "17", "expected an id (integer) for a user field, got string"),
        ("employer", 0, "expected an id (integer) for a org field, got integer"),
        ("referrer", 1.5, "expected an id (integer) for a people field, got number"),
    ],
)
def test_the_sandbox_refuses_other_shapes(
    typed_fields: None, sandbox: Sandbox, trait: str, value: object, error: str
) -> None:
    key = FIELDS[trait][0]
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": "sandbox-token"}) as api:
        answer = api.post("/api/v2/persons", json={"name": "Ann", "custom_fields": {key: value}})
    assert answer.status_code == 400
    assert f"custom_fields.{key}: {error}" in answer.json()["error"]


@pytest.fixture
def lead_address(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "a7" * 20
    add_sandbox_fields(
        monkeypatch, "deal", Field(code=key, name="Site", type="address", custom=True)
    )
    return key


def test_a_lead_takes_an_address_as_text_as_v1_does(lead_address: str, sandbox: Sandbox) -> None:
    """v1 lead fields have parts only for monetary, daterange and timerange fields: an address
    object there is refused, as before address fields of v2 bodies had their own check."""
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": "sandbox-token"}) as api:
        person = api.post("/api/v2/persons", json={"name": "Ann"}).json()["data"]["id"]
        lead = {"title": "Q", "person_id": person}
        taken = api.post("/v1/leads", json={**lead, lead_address: "Main St 1"})
        refused = api.post("/v1/leads", json={**lead, lead_address: {"value": "Main St 1"}})
    assert taken.status_code == 201, taken.text
    assert refused.status_code == 400
    assert (
        f"{lead_address}: expected string for a address field, got object"
        in (refused.json()["error"])
    )


def test_rpd_sends_a_lead_its_address_field_as_text(
    lead_address: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "rpd.toml"
    config.write_text(
        EXAMPLE_CONFIG.read_text().replace(
            "[fields.leads]", f'[fields.leads]\nsite = "{lead_address}"'
        )
    )
    site = {"street": "Main 1", "city": "Tallinn"}
    events = [{**track("m-1", "u-1", "Quote", site=site), "context": {"traits": {"name": "Ann"}}}]
    run = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "events.ndjson", events), config=config
    )

    assert run.exit_code == 0, (run.stderr, run.dead_letters)
    assert holdings(sandbox).lead("rpd:m-1")[lead_address] == "Main 1, Tallinn"


@pytest.fixture
def tags_field(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "a8" * 20
    tags = Field(code=key, name="Tags", type="set", custom=True, options=((1, "A"), (2, "B")))
    add_sandbox_fields(monkeypatch, "person", tags)
    return key


def test_a_set_field_is_cleared_with_null_never_with_an_empty_list(
    tags_field: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    """v2.yaml (custom_fields): "For multi-option fields (field type `set`), use `null` to clear
    the selection: sending an empty array `[]` is not supported and will result in a validation
    error". The sandbox took [] (so an rpd that sent it would pass here and fail on Pipedrive);
    rpd sends null for a trait that selects no option."""
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": "sandbox-token"}) as api:
        refused = api.post("/api/v2/persons", json={"name": "A", "custom_fields": {tags_field: []}})
        taken = api.post("/api/v2/persons", json={"name": "B", "custom_fields": {tags_field: [2]}})
        cleared = api.patch("/api/v2/persons/1", json={"custom_fields": {tags_field: None}})
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        f"custom_fields.{tags_field}: an empty list is not a set field's value: null clears it"
    )
    assert (taken.status_code, cleared.status_code) == (200, 200), (taken.text, cleared.text)

    config = tmp_path / "rpd.toml"
    config.write_text(
        EXAMPLE_CONFIG.read_text().replace(
            "[fields.persons]", f'[fields.persons]\ntags = "{tags_field}"'
        )
    )
    events = [
        identify("m-1", "u-1", name="Ann", tags=[]),
        identify("m-2", "u-2", name="Bo", tags="B"),
    ]
    run = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "events.ndjson", events), config=config
    )
    assert run.exit_code == 0, (run.stderr, run.dead_letters)
    held = holdings(sandbox)
    assert (
        held.person("u-1")["custom_fields"][tags_field],
        held.person("u-2")["custom_fields"][tags_field],
    ) == (None, [2])
