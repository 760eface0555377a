"""The field catalog (types, enum options, lead labels) a send fetches is kept in the state, so a
later send whose listing fails still converts values, and says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    HOT,
    INDUSTRY_FIELD,
    LISTINGS,
    PLAN_FIELD,
    SendRun,
    example_without_rules,
    group,
    holdings,
    identify,
    rpd_send,
    track,
    write_config,
    write_events,
)
from test_map_fields import GoneFields

from rudder_pipedrive_cli.io.catalog_cache import load_catalog
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.sandbox import Sandbox, routes, seed
from rudder_pipedrive_cli.sandbox.replies import ApiError

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
SAVED = "using the field listing the state saved last time"
NONE = "values will be sent without type conversion"
FIELDS_LEFT = "the values of its fields will be sent without type conversion"  # one listing


def test_a_failed_listing_falls_back_to_the_one_the_state_saved(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", fault_seed=2)
    state = tmp_path / "state.sqlite"
    # Without track rules naming pipelines or stages, which no listing could resolve.
    config = tmp_path / "rpd.toml"
    config.write_text(example_without_rules())
    first = write_events(tmp_path / "a.ndjson", [identify("m-1", "u-1", name="One", plan="Pro")])

    ok = rpd_send(sandbox, tmp_path, first, state=state, config=config, name="ok")

    assert ok.exit_code == 0, ok.stderr
    with ReplayState.open(state, "", readonly=True) as s:
        assert len(s.use_remembered(sandbox.url, "sandbox-token")) == 1
        catalog = load_catalog(s)
    assert catalog is not None
    assert catalog.field("persons", PLAN_FIELD) is not None

    sandbox.set_faults(fail_5xx=1.0)
    later = write_events(tmp_path / "b.ndjson", [identify("m-2", "u-2", name="Two", plan="Free")])
    saved = rpd_send(
        sandbox, tmp_path, later, state=state, config=config, args=("--max-retries", "0"), name="s"
    )
    fresh = rpd_send(
        sandbox,
        tmp_path,
        later,
        config=config,
        state=tmp_path / "fresh.sqlite",
        args=("--max-retries", "0"),
        name="fresh",
    )

    assert saved.exit_code == fresh.exit_code == 1  # every request fails: so do the events
    account, listing = [line for line in saved.stderr.splitlines() if line.startswith("warning: ")]
    assert account.startswith("warning: GET /v1/users/me: HTTP 5")
    assert account.endswith(f"using the state of the account {sandbox.url} led to last time")
    assert listing.startswith("warning: GET /api/v2/personFields: HTTP 5")
    assert listing.endswith(f"after 1 attempt; {SAVED}")
    account, listing = [line for line in fresh.stderr.splitlines() if line.startswith("warning: ")]
    assert account.endswith(f"the state is kept for {sandbox.url} until it can say")
    assert listing.endswith(f"after 1 attempt; {NONE}")
    assert holdings(sandbox).person("u-1")["custom_fields"][PLAN_FIELD] == 102


def test_without_any_listing_a_field_mapped_by_name_stops_the_run_before_sending(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """Sent without the listing, a value mapped by a field's name would be dropped (or refused)
    and the event journaled as done: the run stops instead, and a rerun sends it."""
    sandbox = make_sandbox(plan="unlimited")
    sandbox.set_faults(fail_5xx=1.0)
    config = tmp_path / "by-name.toml"
    config.write_text(
        example_without_rules().replace(
            "[fields.persons]", '[fields.persons]\njob = "Role"\nwhere = "job_title"'
        )
    )
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann", job="CTO")])

    run = rpd_send(sandbox, tmp_path, events, config=config, args=("--max-retries", "0"))

    # SPEC 6: stopped early, a rerun later may get past the 5xx (exit 4, as check, map-fields,
    # init and dry-run --lookups stop on it); it was 1, a code for failed events, none failed.
    assert run.exit_code == 4
    error, hint = run.stderr.splitlines()[-2:]
    assert error.startswith("error: GET /api/v2/personFields: HTTP 5")
    assert error.endswith(
        "after 1 attempt; without it fields.persons.job = 'Role' cannot be resolved"
    )
    assert hint == "hint: try again later"
    assert_stopped_before_any_event(run)
    # Each listing is tried on its own (all fail here); no event's request.
    assert sandbox.stats()["requests"] == {
        "GET /v1/users/me": 1,
        "GET /api/v2/personFields": 1,
        "GET /api/v2/organizationFields": 1,
        "GET /api/v2/dealFields": 1,
        "GET /v1/leadLabels": 1,
    }


def assert_stopped_before_any_event(run: SendRun) -> None:
    """The report of a send a listing stopped before any event, written to --report (it was
    not, where Pipedrive unreachable's was: a scheduler reading it saw nothing of the stop):
    nothing read or sent, no dead letter."""
    assert run.report is not None
    assert run.report["events"] == {"read": 0, "sent": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    assert run.report["dead_letter"] is None and not run.dead_letter.exists()


def test_a_listing_refused_for_good_that_a_mapped_name_needs_stops_the_run_exit_2(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person fields' listing answers 404: no rerun gets past it, the config's base_url is
    to check (exit 2, as check, map-fields, init and dry-run --lookups say of it); it was 1, a
    code for failed events, though none was sent."""
    sandbox = make_sandbox(plan="unlimited")
    monkeypatch.setattr(routes, "FIELDS", GoneFields("person"))
    config = tmp_path / "by-name.toml"
    config.write_text(
        example_without_rules().replace("[fields.persons]", '[fields.persons]\njob = "Role"')
    )
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann", job="CTO")])

    run = rpd_send(sandbox, tmp_path, events, config=config)

    assert (run.exit_code, run.stderr.splitlines()[-1:]) == (
        2,
        [
            "error: listing person fields failed: HTTP 404 Not found (Please check "
            "developers.pipedrive.com for more information about Pipedrive API.); without it "
            "fields.persons.job = 'Role' cannot be resolved"
        ],
    )
    assert_stopped_before_any_event(run)
    assert not {"POST", "PATCH", "PUT"} & {key.split()[0] for key in sandbox.stats()["requests"]}


def test_the_report_s_duration_includes_the_field_listings(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # QA: with Pipedrive unreachable the listings' retries took 26 s of a 30 s run, and the
    # report said "duration: 3.5 s". Here each of the four listings answers after 250 ms, and the
    # one event (a page) makes no request.
    sandbox = make_sandbox(plan="unlimited", latency_ms=250)
    page = {"type": "page", "messageId": "m-1", "userId": "u-1"}
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "in.ndjson", [page]))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["requests"] == LISTINGS
    assert run.report["duration_s"] >= 0.25


class Unlisted(dict[str, Any]):
    """The sandbox's fields, whose listings fail (HTTP 503) while its writes check values."""

    def __getitem__(self, entity: str) -> Any:
        raise ApiError(503, "field listings are unavailable")


def test_a_write_refused_for_a_value_no_listing_converted_is_retryable_and_holds_back(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without any field listing an enum's label goes out as it is, where Pipedrive needs its
    option id: the 400 is retryable (it was not: the identity's next event went out before it),
    its reason says why, and the rerun, the listing back, sends both in order."""
    sandbox = make_sandbox(plan="unlimited")
    monkeypatch.setattr(routes, "FIELDS", Unlisted())
    config = tmp_path / "rpd.toml"
    config.write_text(example_without_rules())
    state = tmp_path / "state.sqlite"
    events = write_events(
        tmp_path / "e.ndjson",
        [
            identify("m-1", "u-1", name="Ann", plan="Pro"),
            identify("m-2", "u-1", name="Ann Lee"),
            identify("m-3", "u-2", name="Bob"),
        ],
    )

    run = rpd_send(
        sandbox, tmp_path, events, config=config, state=state, args=("--max-retries", "0")
    )

    assert run.exit_code == 1, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("warning: ")] == [
        f"warning: GET {endpoint}: HTTP 503 after 1 attempt; {FIELDS_LEFT}"
        for endpoint in ("/api/v2/personFields", "/api/v2/organizationFields", "/api/v2/dealFields")
    ]
    first, second = run.dead_letters
    assert first["error"] == {
        "reason": f"create person refused: HTTP 400: custom_fields.{PLAN_FIELD}: expected an "
        "option id (integer) for an enum field, got string (Please check "
        "developers.pipedrive.com for more information about Pipedrive API.); its mapped values "
        "were sent without type conversion (the field listing failed): rerun once the listing "
        "works",
        "stage": "create person",
        "status": 400,
        "retryable": True,
    }
    assert second["event"]["messageId"] == "m-2"
    assert second["error"]["reason"] == (
        "an earlier event of userId u-1 failed: this one waits for it (a rerun tries that one "
        "first)"
    )
    assert set(holdings(sandbox).user_ids()) == {"u-2"}

    monkeypatch.undo()
    rerun = rpd_send(sandbox, tmp_path, events, config=config, state=state, name="rerun")

    assert rerun.exit_code == 0, rerun.stderr
    person = holdings(sandbox).person("u-1")
    assert (person["name"], person["custom_fields"][PLAN_FIELD]) == ("Ann Lee", 102)


class PersonsUnlisted(dict[str, Any]):
    """The sandbox's fields, whose person field listing alone fails (HTTP 503)."""

    def __getitem__(self, entity: str) -> Any:
        if entity == "person":
            raise ApiError(503, "person fields are unavailable")
        return seed.FIELDS[entity]


def test_one_failed_listing_leaves_the_others_in_use(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """personFields failing (QA: it discarded the whole catalog, so the deal rule failed naming
    personFields and the lead's label went unresolved): only person values go unconverted (a
    refused one is retryable); organization values are converted, the deal goes to its rule's
    pipeline and stage, the lead label is resolved, and the listing is saved for what it held."""
    sandbox = make_sandbox(plan="unlimited")
    monkeypatch.setattr(routes, "FIELDS", PersonsUnlisted())
    config = write_config(tmp_path)
    state = tmp_path / "state.sqlite"
    events = write_events(
        tmp_path / "e.ndjson",
        [
            identify("m-1", "u-1", name="Ann"),
            group("m-2", "u-1", "g-1", name="Acme", industry="Software"),
            track("m-3", "u-1", "Demo Requested", campaign="autumn"),
            track("m-4", "u-1", "Trial Started", label_ids=["Hot"]),
            identify("m-5", "u-2", name="Bob", plan="Pro"),
        ],
    )

    run = rpd_send(
        sandbox, tmp_path, events, config=config, state=state, args=("--max-retries", "0")
    )

    assert run.exit_code == 1, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("warning: ")] == [
        f"warning: GET /api/v2/personFields: HTTP 503 after 1 attempt; {FIELDS_LEFT}"
    ]
    (dead,) = run.dead_letters
    assert (dead["event"]["messageId"], dead["error"]["retryable"]) == ("m-5", True)
    assert dead["error"]["reason"].endswith(
        "; its mapped values were sent without type conversion (the field listing failed): "
        "rerun once the listing works"
    )
    crm = holdings(sandbox)
    assert crm.org("g-1")["custom_fields"][INDUSTRY_FIELD] == 201  # "Software"'s option id
    (deal,) = crm.state["deals"]
    assert (deal["origin_id"], deal["pipeline_id"], deal["stage_id"]) == ("rpd:m-3", 1, 2)
    assert crm.lead("rpd:m-4")["label_ids"] == [HOT]
    with ReplayState.open(state, "", readonly=True) as s:
        s.use_remembered(sandbox.url, "sandbox-token")
        saved = load_catalog(s)
    assert saved is not None
    assert sorted(saved.fields) == ["leads", "organizations"]


def test_a_failed_listing_is_taken_from_the_state_the_others_listed_now(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """personFields failing where an earlier send saved it: the saved person fields convert
    person values, and the warning says that one listing came from the state (it said the whole
    catalog did)."""
    sandbox = make_sandbox(plan="unlimited")
    config = tmp_path / "rpd.toml"
    config.write_text(example_without_rules())
    state = tmp_path / "state.sqlite"
    first = write_events(tmp_path / "a.ndjson", [identify("m-1", "u-1", name="One", plan="Pro")])
    assert rpd_send(sandbox, tmp_path, first, state=state, config=config).exit_code == 0

    monkeypatch.setattr(routes, "FIELDS", PersonsUnlisted())
    later = write_events(
        tmp_path / "b.ndjson",
        [
            identify("m-2", "u-2", name="Two", plan="Free"),
            group("m-3", "u-2", "g-1", name="Acme", industry="Retail"),
        ],
    )
    run = rpd_send(
        sandbox, tmp_path, later, state=state, config=config, args=("--max-retries", "0"), name="b"
    )

    assert run.exit_code == 0, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("warning: ")] == [
        "warning: GET /api/v2/personFields: HTTP 503 after 1 attempt; using the one the state "
        "saved last time"
    ]
    crm = holdings(sandbox)
    assert crm.person("u-2")["custom_fields"][PLAN_FIELD] == 101  # "Free"'s option id
    assert crm.org("g-1")["custom_fields"][INDUSTRY_FIELD] == 202  # "Retail"'s


class Unavailable(tuple[Any, ...]):
    """A sandbox listing that fails (HTTP 503)."""

    def __iter__(self) -> Any:
        raise ApiError(503, "unavailable")


def test_a_failed_sales_listing_fails_only_the_rules_that_name_from_it(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """activityTypes failing: the activity rule's events fail (retryable) naming that listing;
    the deal rule's pipeline and stage are still resolved, and the person's values converted."""
    sandbox = make_sandbox(plan="unlimited")
    monkeypatch.setattr(routes, "ACTIVITY_TYPES", Unavailable())
    events = write_events(
        tmp_path / "e.ndjson",
        [
            identify("m-1", "u-1", name="Ann", plan="Pro"),
            track("m-2", "u-1", "Call Scheduled", topic="pricing"),
            identify("m-3", "u-2", name="Bob"),
            track("m-4", "u-2", "Demo Requested", campaign="autumn"),
        ],
    )

    run = rpd_send(
        sandbox, tmp_path, events, config=write_config(tmp_path), args=("--max-retries", "0")
    )

    assert run.exit_code == 1, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("warning: ")] == [
        "warning: GET /v1/activityTypes: HTTP 503 after 1 attempt; what track rules name from "
        "it cannot be resolved",
        "warning: track #3.type = 'call' cannot be resolved without the listings: the events of "
        "those track rules fail (retryable)",
    ]
    (dead,) = run.dead_letters
    assert (dead["event"]["messageId"], dead["error"]["retryable"]) == ("m-2", True)
    assert dead["error"]["reason"] == (
        "track #3: type = 'call' cannot be resolved: GET /v1/activityTypes: HTTP 503 after 1 "
        "attempt; retry later"
    )
    crm = holdings(sandbox)
    assert crm.person("u-1")["custom_fields"][PLAN_FIELD] == 102
    (deal,) = crm.state["deals"]
    assert (deal["origin_id"], deal["pipeline_id"], deal["stage_id"]) == ("rpd:m-4", 1, 2)
