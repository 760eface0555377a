"""The field catalog end to end: fetched from the sandbox (paged), names resolved to keys, and the
plans driven with the resulting config, so every value is coerced to its field's type (or the
event fails naming the field and what it takes) and lead label names become ids."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from test_map_fields import (
    CAMPAIGN,
    EMPLOYEES,
    GROUP_FIELD,
    INDUSTRY,
    PLAN,
    ROLE,
    SOURCE,
    USER_FIELD,
    clean_env,  # noqa: F401 - autouse fixture
    invoke,
    write_config,
)

from rudder_pipedrive_cli.core.catalog import Catalog
from rudder_pipedrive_cli.core.catalog_fetch import fetch_catalog, field_info
from rudder_pipedrive_cli.core.catalog_findings import (
    guess_identity,
    is_searchable,
    mapping_findings,
    suggest_traits,
    unknown_keys,
)
from rudder_pipedrive_cli.core.driver import drive, drive_exchange, gave_up
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import LABELS as LABELS_LISTING
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome
from rudder_pipedrive_cli.core.responder import OfflineResponder
from rudder_pipedrive_cli.http.blocking import BlockingClient
from rudder_pipedrive_cli.io.catalog_cache import (
    CachedFields,
    Sourced,
    live_or_cached,
    load_catalog,
    save_catalog,
)
from rudder_pipedrive_cli.sandbox import Sandbox

SANDBOX_TOKEN = "sandbox-token"
HOT = "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"
WARM = "5d17ffad-6b12-5006-b8d6-314a56d08b1a"
COLD = "de8cb1cf-2bc1-5b1e-9553-cacf123b23c7"
LABELS = {"Hot": HOT, "Warm": WARM, "Cold": COLD}

# Mapped by key and by the names Pipedrive shows, as a user may write them.
MAPPED = PlanConfig(
    user_id_field="RudderStack userId",
    group_id_field=GROUP_FIELD,
    create_persons=True,
    default_currency="EUR",
    person_fields={"role": ROLE, "plan": "Plan", "title": "Job title", "home": "postal_address"},
    org_fields={"industry": "Industry", "employees": EMPLOYEES},
    lead_fields={"source": SOURCE, "utm.campaign": "Campaign"},
)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[BlockingClient]:
    with BlockingClient(token=SANDBOX_TOKEN, base_url=sandbox.url, plan="unlimited") as client:
        yield client


@pytest.fixture
def config(client: BlockingClient) -> PlanConfig:
    return client.exchange(fetch_catalog()).apply(MAPPED)


def run(client: BlockingClient, config: PlanConfig, event: Mapping[str, Any]) -> Outcome:
    return drive(plan_event(parse_event(event, "test:1"), config, IdentityStore()), client.send)


def identify(**traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": "u-1", "traits": {"name": "Ada", **traits}}


def group(**traits: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "userId": "u-1",
        "groupId": "g-1",
        "context": {"traits": {"name": "Ada"}},
        "traits": traits,
    }


def track(**properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "u-1",
        "event": "Trial Started",
        "context": {"traits": {"name": "Ada"}},
        "properties": properties,
    }


# --- fetching ----------------------------------------------------------------------------------


def test_the_catalog_is_paged_to_the_end(client: BlockingClient, sandbox: Sandbox) -> None:
    whole = client.exchange(fetch_catalog())
    paged = client.exchange(fetch_catalog(page_size=2))
    assert paged == whole
    assert [len(whole.fields[e]) for e in ("persons", "organizations", "leads")] == [16, 10, 11]
    assert whole.labels == LABELS
    assert sandbox.stats()["requests"] == {
        "GET /api/v2/personFields": 1 + 8,
        "GET /api/v2/organizationFields": 1 + 5,
        "GET /api/v2/dealFields": 1 + 6,
        "GET /v1/leadLabels": 2,
    }


def test_fields_by_key_or_name_with_their_types_and_options(client: BlockingClient) -> None:
    catalog = client.exchange(fetch_catalog())
    plan = FieldInfo(
        key=PLAN,
        name="Plan",
        field_type="enum",
        options={"Free": 101, "Pro": 102, "Enterprise": 103},
    )
    assert catalog.field("persons", PLAN) == plan
    assert catalog.field("persons", "Plan") == plan
    assert catalog.field("organizations", "Plan") is None
    searchable = {f.key for f in catalog.fields["persons"] if is_searchable(f)}
    assert searchable == {"name", USER_FIELD, ROLE}  # custom text fields, and the name


def test_apply_resolves_names_to_keys_and_knows_types_and_labels(config: PlanConfig) -> None:
    assert config.user_id_field == USER_FIELD
    assert config.person_fields == {
        "role": ROLE,
        "plan": PLAN,
        "title": "job_title",
        "home": "postal_address",
    }
    assert config.org_fields == {"industry": INDUSTRY, "employees": EMPLOYEES}
    assert config.lead_fields == {"source": SOURCE, "utm.campaign": CAMPAIGN}
    assert config.lead_labels == LABELS
    assert config.field_types[EMPLOYEES].field_type == "double"


def test_unknown_keys_name_each_lost_mapping(client: BlockingClient) -> None:
    catalog = client.exchange(fetch_catalog())
    mapped = PlanConfig(person_fields={"seats": EMPLOYEES}, lead_fields={"budget": "Budget"})
    assert unknown_keys(catalog, mapped) == [
        f"fields.persons.seats = '{EMPLOYEES}': the account has no such person field (it is an "
        "organization field) (run `rpd map-fields` to list them)",
        "fields.leads.budget = 'Budget': the account has no such deal field "
        "(run `rpd map-fields` to list them)",
    ]


# --- coercion against the sandbox: every type it seeds -----------------------------------------


def test_person_values_are_coerced_and_stored(
    client: BlockingClient, config: PlanConfig, sandbox: Sandbox
) -> None:
    outcome = run(client, config, identify(role=42, plan="pro", title=7, home="1 Main St"))
    assert (outcome.status, outcome.reason) == ("sent", "")
    (person,) = sandbox.state()["persons"]
    assert {k: person["custom_fields"][k] for k in (USER_FIELD, ROLE, PLAN)} == {
        USER_FIELD: "u-1",  # varchar
        ROLE: "42",  # varchar from a number
        PLAN: 102,  # enum label, case-insensitive, to its option id
    }
    assert person["job_title"] == "7"  # a standard varchar field, by its name
    assert person["postal_address"]["value"] == "1 Main St"  # address


def test_enum_by_option_id_and_double_from_a_numeric_string(
    client: BlockingClient, config: PlanConfig, sandbox: Sandbox
) -> None:
    assert run(client, config, identify(plan=103)).status == "sent"
    assert run(client, config, group(name="Acme", industry="Finance", employees="1200")).status == (
        "sent"
    )
    state = sandbox.state()
    assert state["persons"][0]["custom_fields"][PLAN] == 103
    (org,) = state["organizations"]
    assert org["custom_fields"][INDUSTRY] == 203
    assert org["custom_fields"][EMPLOYEES] == 1200
    assert state["persons"][0]["org_id"] == org["id"]


def test_lead_values_and_label_names_resolve(
    client: BlockingClient, config: PlanConfig, sandbox: Sandbox
) -> None:
    outcome = run(
        client,
        config,
        track(
            source=7,
            utm={"campaign": "autumn"},
            label_ids=["Hot", "warm", "Lukewarm", COLD],
            revenue="99.5",
        ),
    )
    assert outcome.status == "sent"
    assert outcome.warnings == ("lead label 'Lukewarm' is not a label of this account; dropped",)
    (lead,) = sandbox.state()["leads"]
    assert lead["label_ids"] == [HOT, WARM, COLD]
    assert lead[SOURCE] == "7"
    assert lead[CAMPAIGN] == "autumn"
    assert lead["value"] == {"amount": 99.5, "currency": "EUR"}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            identify(plan="Gold"),
            "cannot convert plan = Gold for field Plan (enum): expected one of Free, Pro, "
            "Enterprise",
        ),
        (
            identify(role={"a": 1}),
            'cannot convert role = {"a":1} for field Role (varchar): expected a string or a number',
        ),
        (
            identify(home=5),
            "cannot convert home = 5 for field Postal address (address): expected a string or "
            'an address object {"value", ...}',
        ),
        (
            group(name="Acme", employees="lots"),
            "cannot convert employees = lots for field Employees (double): expected a number",
        ),
        (
            group(name="Acme", industry=["Retail"]),
            'cannot convert industry = ["Retail"] for field Industry (enum): expected one of '
            "Software, Retail, Finance",
        ),
        (
            track(source=["a"]),
            'cannot convert source = ["a"] for field Source (varchar): expected a string or a '
            "number",
        ),
    ],
)
def test_a_value_that_cannot_be_coerced_fails_the_event_before_any_write(
    client: BlockingClient,
    config: PlanConfig,
    sandbox: Sandbox,
    event: dict[str, Any],
    reason: str,
) -> None:
    outcome = run(client, config, event)
    assert (outcome.status, outcome.reason, outcome.retryable) == ("failed", reason, False)
    state = sandbox.state()
    assert state["persons"] == state["organizations"] == state["leads"] == []


# --- coercion of the field types the sandbox does not seed as custom fields --------------------


def key(n: int) -> str:
    return f"{n:040x}"


LISTING: list[dict[str, Any]] = [
    {"field_code": key(1), "field_name": "Seats", "field_type": "int"},
    {"field_code": key(2), "field_name": "Active", "field_type": "boolean"},
    {"field_code": key(3), "field_name": "Call at", "field_type": "time"},
    {"field_code": key(4), "field_name": "Signup day", "field_type": "date"},
    {"field_code": key(5), "field_name": "Budget", "field_type": "monetary"},
    {
        "field_code": key(6),
        "field_name": "Channels",
        "field_type": "set",
        "options": [{"id": 11, "label": "Email"}, {"id": 12, "label": "Phone"}],
    },
    {"field_code": key(7), "field_name": "Nickname", "field_type": "varchar_auto"},
    {"field_code": key(8), "field_name": "Bio", "field_type": "text"},
    {"field_code": key(9), "field_name": "Mobile", "field_type": "phone"},
    {"field_code": key(10), "field_name": "Manager", "field_type": "user"},
    {"field_code": key(11), "field_name": "Partner", "field_type": "org"},
    {"field_code": key(12), "field_name": "Referrer", "field_type": "people"},
    {"field_code": key(13), "field_name": "Office", "field_type": "address"},
    {"field_code": key(14), "field_name": "Score", "field_type": "double"},
]
WIDE_FIELDS = {"persons": tuple(field_info({**i, "is_custom_field": True}) for i in LISTING)}
WIDE = Catalog(fields=WIDE_FIELDS).apply(
    PlanConfig(
        user_id_field=USER_FIELD,
        create_persons=True,
        default_currency="USD",
        person_fields={item["field_name"]: item["field_code"] for item in LISTING},
    )
)


def created(**traits: Any) -> Outcome | dict[str, Any]:
    """The custom fields of the person an identify would create, or its outcome if it fails."""
    sent: list[ApiRequest] = []
    offline = OfflineResponder(WIDE)

    def respond(request: ApiRequest) -> Any:
        sent.append(request)
        return offline(request)

    outcome = drive(
        plan_event(parse_event(identify(**traits), "t:1"), WIDE, IdentityStore()), respond
    )
    if outcome.status == "failed":
        return outcome
    body = sent[-1].body or {}
    custom: dict[str, Any] = dict(body["custom_fields"])
    custom.pop(USER_FIELD)
    return custom


@pytest.mark.parametrize(
    ("trait", "value", "expected"),
    [
        ("Seats", "12", 12),
        ("Seats", 12.0, 12),
        ("Active", "yes", True),
        ("Active", 0, False),
        ("Call at", "09:30", "09:30:00"),
        ("Signup day", "2026-10-01T23:30:00Z", "2026-10-01"),
        ("Budget", 250, {"value": 250, "currency": "USD"}),
        ("Budget", {"value": "9.5", "currency": "EUR"}, {"value": 9.5, "currency": "EUR"}),
        ("Channels", "email, Phone", [11, 12]),
        ("Channels", [12, "Email", 12], [12, 11]),
        ("Channels", [], None),
        ("Nickname", 5, "5"),
        ("Bio", True, "true"),
        ("Mobile", "+372 5555", "+372 5555"),
        ("Manager", "17", 17),
        ("Partner", 4, 4),
        ("Referrer", "8", 8),
        ("Office", {"value": "Tallinn", "country": "EE"}, {"value": "Tallinn", "country": "EE"}),
        ("Score", "-1.5e2", -150),
    ],
)
def test_every_field_type_coerces(trait: str, value: Any, expected: Any) -> None:
    field = next(item["field_code"] for item in LISTING if item["field_name"] == trait)
    assert created(**{trait: value}) == {field: expected}


@pytest.mark.parametrize(
    ("trait", "value", "expected"),
    [
        ("Seats", "1.5", "a whole number"),
        ("Active", "maybe", "true, false"),
        ("Call at", "half past nine", "a time HH:MM:SS"),
        ("Signup day", "October", "a date YYYY-MM-DD"),
        (
            "Budget",
            "lots",
            'a number (with identity.default_currency set) or {"value", "currency"}',
        ),
        ("Channels", "Fax", "one of Email, Phone"),
        ("Nickname", None, None),  # an absent value is not sent, never a failure
        ("Manager", "Bob", "a numeric Pipedrive id"),
        ("Partner", 1.5, "a numeric Pipedrive id"),
        ("Referrer", True, "a numeric Pipedrive id"),
        ("Office", 12, 'a string or an address object {"value", ...}'),
        ("Score", "n/a", "a number"),
    ],
)
def test_every_field_type_names_what_it_takes(trait: str, value: Any, expected: str | None) -> None:
    result = created(**{trait: value})
    if expected is None:
        assert result == {}
        return
    assert isinstance(result, Outcome)
    info = next(item for item in LISTING if item["field_name"] == trait)
    shown = value if isinstance(value, str) else repr(value).replace("True", "true")
    assert result.reason == (
        f"cannot convert {trait} = {shown} for field {trait} ({info['field_type']}): "
        f"expected {expected}"
    )
    assert result.stage == "validate"


def test_money_without_any_currency_fails() -> None:
    config = Catalog(fields=WIDE_FIELDS).apply(
        PlanConfig(user_id_field=USER_FIELD, create_persons=True, person_fields={"b": key(5)})
    )
    outcome = drive(
        plan_event(parse_event(identify(b=5), "t:1"), config, IdentityStore()),
        OfflineResponder(config),
    )
    assert outcome.reason == (
        "cannot convert b = 5 for field Budget (monetary): expected a number (with "
        'identity.default_currency set) or {"value", "currency"}'
    )


# --- dry-run: raw values offline, coerced ones with the listings -------------------------------


def test_dry_run_shows_raw_values_offline_and_coerced_ones_with_lookups(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = tmp_path / "in.ndjson"
    events.write_text('{"type":"identify","userId":"u-9","traits":{"name":"Ada","plan":"Pro"}}\n')
    fields = f'[fields.persons]\nplan = "{PLAN}"\n'
    identity = f'user_id_field = "{USER_FIELD}"\ncreate_persons = true\n'
    config = write_config(tmp_path / "rpd.toml", sandbox.url, identity=identity, fields=fields)

    def custom(*args: str) -> Any:
        code, out, err = invoke(
            "dry-run", str(events), "--config", config, "-f", "ndjson", *args, token=SANDBOX_TOKEN
        )
        assert code == 0, err
        return json.loads(out)["requests"][-1]["body"]["custom_fields"]

    assert custom() == {PLAN: "Pro", USER_FIELD: "u-9"}
    assert custom("--lookups") == {PLAN: 102, USER_FIELD: "u-9"}


# --- judging a config, suggesting trait names (pure) --------------------------------------------


def listing(*items: tuple[str, str, str]) -> tuple[FieldInfo, ...]:
    return tuple(
        field_info({"field_code": k, "field_name": n, "field_type": t, "is_custom_field": True})
        for k, n, t in items
    )


def test_a_name_two_fields_share_is_a_warning() -> None:
    catalog = Catalog(
        fields={"leads": listing((key(1), "Source", "varchar"), (key(2), "Source", "text"))}
    )
    (finding,) = mapping_findings(catalog, PlanConfig(lead_fields={"src": "Source"}))
    assert (finding.level, finding.line, finding.hint) == (
        "warn",
        "fields.leads.src = 'Source': 2 deal fields have this name; rpd uses the first, "
        f'"Source" (varchar) (key {key(1)})',
        "write the field key instead of its name",
    )


def test_a_name_two_deal_fields_share_is_a_warning_for_fields_deals_too() -> None:
    """[fields.deals] is judged against the deal fields' listing (filed as "leads"), as the
    fields themselves are: the two fields named "Source" were not counted there."""
    catalog = Catalog(
        fields={"leads": listing((key(1), "Source", "varchar"), (key(2), "Source", "text"))}
    )
    config = PlanConfig(lead_fields={}, deal_fields={"src": "Source"})
    (finding,) = mapping_findings(catalog, config)
    assert (finding.level, finding.line) == (
        "warn",
        "fields.deals.src = 'Source': 2 deal fields have this name; rpd uses the first, "
        f'"Source" (varchar) (key {key(1)})',
    )


def test_suggested_traits_are_snake_case_and_unique() -> None:
    catalog = Catalog(
        fields={
            "persons": listing(
                (key(1), "RudderStack userId", "varchar"),
                (key(2), "Plan", "enum"),
                (key(3), "plan", "varchar"),
                (key(4), "Café société", "text"),
                (key(5), "2nd Address", "address"),
                (key(6), "VAT-ID #", "varchar"),
                (key(7), "HTTPServer", "varchar"),
                (key(8), "★", "varchar"),
            )
        }
    )
    suggested = suggest_traits(catalog, "persons", exclude=[key(1)])
    assert [(s.trait, s.key) for s in suggested] == [
        ("plan", key(2)),
        ("plan_2", key(3)),
        ("cafe_societe", key(4)),
        ("field_2nd_address", key(5)),
        ("vat_id", key(6)),
        ("http_server", key(7)),
        ("field", key(8)),
    ]
    assert suggested[1].comment == '"plan" (varchar)'


def test_identity_guessed_from_searchable_custom_field_names() -> None:
    catalog = Catalog(
        fields={
            "persons": listing(
                (key(1), "User ID (enum)", "enum"), (key(2), "Segment userId", "text")
            ),
            "organizations": listing((key(3), "Account", "varchar")),
        }
    )
    assert guess_identity(catalog) == {"user_id_field": key(2)}


def test_an_unset_identity_field_never_resolves_to_a_field_without_a_name() -> None:
    # QA: an account field with an empty name became the userId field of a config that set none.
    nameless = FieldInfo(key="d" * 40, name="", field_type="varchar")
    catalog = Catalog(fields={"persons": (nameless,), "organizations": (), "deals": ()})
    assert catalog.field("persons", "") is None
    assert catalog.apply(PlanConfig()).user_id_field == ""


class Store:
    """A field store in memory (the state's `get_fields`/`put_fields`)."""

    def __init__(self) -> None:
        self.saved: dict[str, CachedFields] = {}

    def get_fields(self, entity: str) -> CachedFields | None:
        return self.saved.get(entity)

    def put_fields(self, entity: str, payload: Any) -> None:
        self.saved[entity] = CachedFields(fetched_at="2026-12-05T00:00:00Z", payload=payload)


SAVED = Catalog(
    fields={"persons": (FieldInfo(key="name", name="Name", field_type="varchar"),)},
    labels={"Hot": HOT},
)


def test_live_or_cached_lists_live_and_keeps_it_only_when_asked() -> None:
    store = Store()
    assert live_or_cached(lambda: SAVED, store, keep=False) == Sourced(catalog=SAVED, live=True)
    assert store.saved == {}
    assert live_or_cached(lambda: SAVED, store, keep=True) == Sourced(catalog=SAVED, live=True)
    assert load_catalog(store) == SAVED


def test_live_or_cached_falls_back_to_the_saved_catalog_saying_why() -> None:
    failure = PlanFailure("listing person fields failed: HTTP 503", retryable=True)

    def fails() -> Catalog:
        raise failure

    assert live_or_cached(fails, Store(), keep=True) == Sourced(catalog=None, failure=failure)
    assert live_or_cached(fails, None, keep=True) == Sourced(catalog=None, failure=failure)
    store = Store()
    save_catalog(store, SAVED)
    assert live_or_cached(fails, store, keep=True) == Sourced(catalog=SAVED, failure=failure)
    assert live_or_cached(None, store, keep=False) == Sourced(catalog=SAVED)  # offline dry-run
    assert live_or_cached(None, Store(), keep=False) == Sourced(catalog=None)


def test_a_live_catalog_failed_in_part_takes_those_listings_from_the_state_alone() -> None:
    """Each failed listing is taken from the state when it saved one (the lead labels too,
    saved by a send whose field listings all failed), and stays failed when it did not; what
    was listed now is saved, what failed is not overwritten."""
    persons = PlanFailure("listing person fields failed: HTTP 503", retryable=True)
    labels = PlanFailure("listing lead labels failed: HTTP 503", retryable=True)
    orgs = (FieldInfo(key="industry", name="Industry", field_type="enum"),)
    live = Catalog(
        fields={"organizations": orgs}, failed={"persons": persons, "lead_labels": labels}
    )
    store = Store()
    store.put_fields("lead_labels", {"Hot": HOT})  # the only listing an earlier send saved

    sourced = live_or_cached(lambda: live, store, keep=True)

    assert sourced == Sourced(
        catalog=Catalog(
            fields={"organizations": orgs}, labels={"Hot": HOT}, failed={"persons": persons}
        ),
        live=True,
        saved={"lead_labels": labels},
    )
    assert sorted(store.saved) == ["lead_labels", "organizations"]
    assert store.saved["lead_labels"].payload == {"Hot": HOT}


def test_a_listing_pages_by_cursor_and_a_refused_page_names_the_listing() -> None:
    """The catalog lists through the plans' one paged-listing helper: the exact requests of a
    cursor-paged field listing, and the failure a refused page becomes (stage, words, retry)."""
    exchange = fetch_catalog(("persons",), labels=False)
    first = next(exchange)
    more = {"next_cursor": "c2"}
    page = ApiResponse(status=200, data=[{"field_code": "name"}], additional_data=more)
    second = exchange.send(page)
    assert [(r.method, r.path, r.query, r.stage, r.note) for r in (first, second)] == [
        ("GET", "/api/v2/personFields", {"limit": 500}, "list fields", "list person fields"),
        (
            "GET",
            "/api/v2/personFields",
            {"limit": 500, "cursor": "c2"},
            "list fields",
            "list person fields",
        ),
    ]
    with pytest.raises(PlanFailure) as refused:
        exchange.send(ApiResponse(status=503, error="Service Unavailable"))
    assert str(refused.value) == "listing person fields failed: HTTP 503 Service Unavailable"
    assert (refused.value.stage, refused.value.status, refused.value.retryable) == (
        "list fields",
        503,
        True,
    )


def test_a_v1_listing_is_one_request_without_a_parameter_whatever_it_answers() -> None:
    """GET /v1/leadLabels and GET /v1/activityTypes take no parameter and do not page
    (Pipedrive's OpenAPI, v1.yaml): one request each, as the spec writes it, even when an answer
    says `next_cursor` (before: a second request with ?cursor=c2, a parameter neither has, and
    the lead labels failed when it answered the same cursor again)."""
    asked: list[tuple[str, str, dict[str, Any]]] = []
    data = {
        "/v1/leadLabels": [{"id": HOT, "name": "Hot"}],
        "/v1/activityTypes": [{"key_string": "call", "name": "Call"}],
    }

    def send(request: ApiRequest) -> ApiResponse:
        asked.append((request.method, request.path, dict(request.query)))
        more = {"next_cursor": "c2"}
        return ApiResponse(status=200, data=data[request.path], additional_data=more)

    catalog = drive_exchange(fetch_catalog((), sales=frozenset({"activity_types"})), send)
    assert asked == [("GET", "/v1/leadLabels", {}), ("GET", "/v1/activityTypes", {})]
    assert (catalog.labels, catalog.activity_types) == ({"Hot": HOT}, {"call": "Call"})


def test_a_listing_whose_request_failed_hears_it_as_an_answer_and_the_others_are_listed() -> None:
    """Issue 12 item 2: the exchange hears a transport failure as an answer (`gave_up`), never
    thrown into it. A send's catalog (`each`) leaves out the listings whose request failed (a
    field listing at its second page, the lead labels), each kept in `failed` as the transport
    said it, and lists the others (before, the lead labels' failure heard as an answer was
    'HTTP 0' with no status, taken for an unreachable Pipedrive and raised)."""
    persons = PlanFailure("GET /api/v2/personFields: HTTP 503 after 7 attempts", status=503)
    labels = PlanFailure("GET /v1/leadLabels: HTTP 502 after 7 attempts", status=502)
    field = {"field_code": "name", "field_name": "Name", "field_type": "varchar"}
    asked: list[tuple[str, dict[str, Any]]] = []

    def send(request: ApiRequest) -> ApiResponse:
        asked.append((request.path, dict(request.query)))
        if request.path == "/api/v2/personFields":
            if "cursor" in request.query:
                return gave_up(persons, request.stage)
            return ApiResponse(status=200, data=[field], additional_data={"next_cursor": "c2"})
        if request.path == "/v1/leadLabels":
            return gave_up(labels, request.stage)
        return ApiResponse(status=200, data=[field])

    catalog = drive_exchange(fetch_catalog(each=True), send)
    assert asked == [
        ("/api/v2/personFields", {"limit": 500}),
        ("/api/v2/personFields", {"limit": 500, "cursor": "c2"}),
        ("/api/v2/organizationFields", {"limit": 500}),
        ("/api/v2/dealFields", {"limit": 500}),
        ("/v1/leadLabels", {}),
    ]
    name = FieldInfo(key="name", name="Name", field_type="varchar", options={}, is_custom=False)
    assert catalog == Catalog(
        fields={"organizations": (name,), "leads": (name,)}, labels={}, failed=catalog.failed
    )
    assert {name: (f.reason, f.stage, f.status) for name, f in catalog.failed.items()} == {
        "persons": ("GET /api/v2/personFields: HTTP 503 after 7 attempts", "list fields", 503),
        LABELS_LISTING: ("GET /v1/leadLabels: HTTP 502 after 7 attempts", "list lead labels", 502),
    }
