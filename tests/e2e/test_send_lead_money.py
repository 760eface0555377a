"""A monetary deal field on a lead travels in v1's flat shape (v1.yaml, "Lead fields": the amount
under the field's key, the currency under `<key>_currency`), and the sandbox takes that shape.
Over loopback HTTP, with a monetary deal field added to the sandbox's seed for this test."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import EXAMPLE_CONFIG, add_sandbox_fields, holdings, rpd_send, track, write_events

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import Field

BUDGET = "b0d9e7c1a2f3e4d5c6b7a8f9e0d1c2b3a4f5e6d7"


@pytest.fixture
def budget_field(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = Field(code=BUDGET, name="Budget", type="monetary", custom=True)
    add_sandbox_fields(monkeypatch, "deal", budget)


def test_a_monetary_lead_field_is_sent_flat_and_kept(
    budget_field: None, sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "rpd.toml"
    config.write_text(
        EXAMPLE_CONFIG.read_text().replace("[fields.leads]", f'[fields.leads]\nbudget = "{BUDGET}"')
    )
    events = [
        {
            **track("m-1", "u-1", "Quote", budget=250, currency="gbp"),
            "context": {"traits": {"name": "Ann"}},
        },
        {**track("m-2", "u-1", "Quote again", budget={"value": 99.5, "currency": "usd"})},
    ]
    run = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "events.ndjson", events), config=config
    )

    assert run.exit_code == 0, run.stderr
    first, second = holdings(sandbox).lead("rpd:m-1"), holdings(sandbox).lead("rpd:m-2")
    assert (first[BUDGET], first[BUDGET + "_currency"]) == (250, "GBP")
    assert (second[BUDGET], second[BUDGET + "_currency"]) == (99.5, "USD")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({BUDGET: {"value": 1, "currency": "EUR"}}, f"{BUDGET}: expected a number, got object"),
        ({BUDGET: 1, BUDGET + "_currency": 5}, f"{BUDGET}_currency: expected a currency code"),
        ({"0ad278b60b7e6b783e51a7f5b9cef17d732fe978_currency": "EUR"}, "unknown deal field"),
    ],
)
def test_the_sandbox_refuses_other_shapes(
    budget_field: None, sandbox: Sandbox, body: dict[str, object], error: str
) -> None:
    import httpx

    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": "sandbox-token"}) as api:
        person = api.post("/api/v2/persons", json={"name": "Ann"}).json()["data"]["id"]
        answer = api.post("/v1/leads", json={"title": "Q", "person_id": person, **body})
    assert answer.status_code == 400
    assert error in answer.json()["error"]
