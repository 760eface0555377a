"""Track rules over real loopback HTTP against the sandbox (SPEC 4 track rules, issue 16): each kind
lands as the exact record, a rerun without the state duplicates nothing, and a create whose
answer is lost (`--fail-reset`) is reconciled by listing, not repeated."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CAMPAIGN_FIELD,
    EXAMPLE_CONFIG,
    LISTINGS,
    archive_deal,
    assert_report_adds_up,
    holdings,
    identify,
    rpd_send,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox


def track(message_id: str, event: str, user_id: str = "u-1", **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": user_id,
        "event": event,
        "timestamp": "2026-10-04T09:30:15Z",
        "properties": properties,
    }


# The rules of config.example.toml: skip, deal, activity, note, lead for the rest.
EVENTS = [
    identify("m-0", "u-1", name="Ada Lovelace"),
    track("m-1", "Page Viewed", path="/docs"),
    track("m-2", "Demo Requested", value=1500, currency="EUR", campaign="webinar"),
    track("m-3", "Call Scheduled", topic="Pricing", page="/pricing?a=1&b=2"),
    track("m-4", "Support Ticket Opened", subject="Export to <CSV> fails", priority="high"),
    track("m-5", "Trial Started"),
]


def records(sandbox: Sandbox) -> dict[str, list[dict[str, Any]]]:
    state = sandbox.state()
    return {kind: state[kind] for kind in ("leads", "deals", "activities", "notes")}


def test_each_kind_lands_as_its_rule_says(sandbox: Sandbox, tmp_path: Path) -> None:
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "in.ndjson", EVENTS))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"] == {"read": 6, "sent": 5, "unchanged": 0, "skipped": 1, "failed": 0}
    person = holdings(sandbox).person("u-1")["id"]
    held = records(sandbox)
    (deal,) = held["deals"]
    assert {k: deal[k] for k in ("title", "person_id", "org_id", "value", "currency")} == {
        "title": "Demo Requested via webinar",
        "person_id": person,
        "org_id": None,
        "value": 1500,
        "currency": "EUR",
    }
    assert (deal["pipeline_id"], deal["stage_id"], deal["origin_id"]) == (1, 2, "rpd:m-2")
    assert deal["custom_fields"][CAMPAIGN_FIELD] == "webinar"  # [fields.leads] serve deals
    (activity,) = held["activities"]
    assert {
        k: activity[k]
        for k in ("subject", "type", "due_date", "due_time", "done", "person_id", "note")
    } == {
        "subject": "Call: Pricing",
        "type": "call",
        "due_date": "2026-10-04",
        "due_time": "09:30:00",
        "done": False,
        "person_id": person,
        "note": "Booked from /pricing?a=1&amp;b=2<p>rpd:m-3</p>",
    }
    assert activity["participants"] == [{"person_id": person, "primary": True}]
    (note,) = held["notes"]
    assert note["content"] == ("Support ticket (high): Export to &lt;CSV&gt; fails<p>rpd:m-4</p>")
    assert (note["person_id"], note["add_time"]) == (person, "2026-10-04 09:30:15")
    assert [(lead["title"], lead["origin_id"]) for lead in held["leads"]] == [
        ("Trial Started", "rpd:m-5")
    ]
    requests = run.report["requests"]
    assert {k: requests.get(k) for k in ("GET /api/v2/pipelines", "GET /api/v2/stages")} == {
        "GET /api/v2/pipelines": 1,
        "GET /api/v2/stages": 1,
    }
    assert requests["GET /v1/activityTypes"] == 1
    # The person was created by this run: nobody has deals, activities or notes for it.
    assert not {
        "GET /api/v2/deals",
        "GET /api/v2/deals/archived",
        "GET /api/v2/activities",
        "GET /v1/notes",
    } & set(requests)


def test_a_rerun_without_the_state_duplicates_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(tmp_path / "in.ndjson", EVENTS)
    first = rpd_send(sandbox, tmp_path, events, state=tmp_path / "one.sqlite", name="one")
    assert first.exit_code == 0, first.stderr
    before = records(sandbox)

    again = rpd_send(sandbox, tmp_path, events, state=tmp_path / "two.sqlite", name="two")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": 6,
        "sent": 1,  # the identify: a PATCH of the person found (idempotent)
        "unchanged": 0,
        "skipped": 5,
        "failed": 0,
    }
    assert records(sandbox) == before
    requests = again.report["requests"]
    # Each kind's listing once for the person found by search; no create of any kind.
    assert {
        key: requests.get(key)
        for key in (
            "GET /api/v2/deals",
            "GET /api/v2/deals/archived",
            "GET /api/v2/activities",
            "GET /v1/notes",
            "GET /v1/leads",
            "GET /v1/leads/archived",
        )
    } == dict.fromkeys(
        (
            "GET /api/v2/deals",
            "GET /api/v2/deals/archived",
            "GET /api/v2/activities",
            "GET /v1/notes",
            "GET /v1/leads",
            "GET /v1/leads/archived",
        ),
        1,
    )
    assert not [key for key in requests if key.startswith("POST")]


KINDS = {  # each kind's event, its records and the listings that reconcile a lost create
    "deal": (
        track("m-9", "Demo Requested", campaign="x"),
        "deals",
        ("GET /api/v2/deals", "GET /api/v2/deals/archived"),
    ),
    "activity": (
        track("m-9", "Call Scheduled", topic="t"),
        "activities",
        ("GET /api/v2/activities",),
    ),
    "note": (track("m-9", "Support Ticket Opened", subject="s"), "notes", ("GET /v1/notes",)),
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_create_whose_answer_was_lost_is_reconciled_not_repeated(
    make_sandbox: Any, tmp_path: Path, kind: str
) -> None:
    event, table, listings = KINDS[kind]
    sandbox = make_sandbox(plan="unlimited")
    setup = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", EVENTS[:1]), name="a")
    assert setup.exit_code == 0, setup.stderr
    before = Counter(sandbox.stats()["requests"])
    sandbox.set_faults(fail_reset=1.0)  # every write is applied, and its answer lost

    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "b.ndjson", [event]), name="b")

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["events"]["sent"] == 1
    made = records(sandbox)[table]
    assert len(made) == 1
    requests = Counter(sandbox.stats()["requests"]) - before
    post = {"deals": "POST /api/v2/deals", "activities": "POST /api/v2/activities"}
    assert requests[post.get(table, "POST /v1/notes")] == 1
    # The reconciling listings (the person's were known: none), each once.
    assert {key: requests[key] for key in listings} == dict.fromkeys(listings, 1)
    # A rerun without the state finds it by its origin and creates nothing.
    sandbox.set_faults(fail_reset=0.0)
    again = rpd_send(
        sandbox,
        tmp_path,
        tmp_path / "b.ndjson",
        state=tmp_path / "fresh.sqlite",
        name="c",
    )
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"]["skipped"] == 1
    assert len(records(sandbox)[table]) == 1


def test_an_unknown_stage_stops_before_any_event_naming_the_nearest(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "rpd.toml"
    config.write_text(EXAMPLE_CONFIG.read_text().replace('stage = "Demo"', 'stage = "Dmo"'))
    config.chmod(0o600)

    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "in.ndjson", EVENTS), config=config)

    assert run.exit_code == 2
    assert run.stderr.splitlines()[-2:] == [
        f"error: {config}: track #2: stage 'Dmo': the account has no such stage in pipeline "
        "'Sales'",
        "hint: did you mean 'Demo'? stages in pipeline 'Sales': Qualified, Demo, Proposal",
    ]
    assert sandbox.state()["persons"] == []


def test_without_any_listing_the_events_of_a_rule_naming_a_pipeline_fail_retryable(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """Sent unresolved, the deal would be refused: the events of that rule fail (retryable,
    dead-lettered, before any request) while the run goes on, and a rerun sends them."""
    sandbox = make_sandbox(plan="unlimited")
    sandbox.set_faults(fail_5xx=1.0)
    demo = {**EVENTS[2], "context": {"traits": {"name": "Ada Lovelace"}}}
    events = write_events(tmp_path / "in.ndjson", [demo])

    run = rpd_send(sandbox, tmp_path, events, args=("--max-retries", "0"))

    assert run.exit_code == 1, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings[-1] == (
        "warning: track #2.pipeline = 'Sales' (and 2 more) cannot be resolved without the "
        "listings: the events of those track rules fail (retryable)"
    )
    (letter,) = run.dead_letters
    reason = letter["error"]["reason"]
    assert reason.startswith(
        "track #2: pipeline = 'Sales', stage = 'Demo' cannot be resolved: GET "
        "/api/v2/personFields: HTTP 5"
    )
    assert reason.endswith("after 1 attempt; retry later")
    assert (letter["error"]["stage"], letter["error"]["retryable"]) == ("validate", True)
    served = sandbox.stats()["requests"]
    # The account (the state's namespace) and each listing, tried on its own; the event asked
    # nothing.
    assert served == LISTINGS

    sandbox.set_faults(fail_5xx=0.0)
    rerun = rpd_send(sandbox, tmp_path, run.dead_letter, name="rerun")
    assert rerun.exit_code == 0, rerun.stderr
    assert [deal["origin_id"] for deal in sandbox.state()["deals"]] == ["rpd:m-2"]


def test_an_event_a_skip_rule_takes_is_skipped_whatever_its_identity(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """QA (rules15): `Page Viewed` events the config skips failed when their identity was
    missing or unusable, or when an earlier event of their userId had failed (each "waits for
    it"): dead letters and exit 1 for events the user asked rpd to leave alone, which
    RudderStack's event filtering drops before looking at them."""
    sandbox = make_sandbox(plan="unlimited")
    sandbox.set_faults(fail_5xx=1.0)  # the deal rule's listings fail: its event fails, retryable
    demo = {**EVENTS[2], "context": {"traits": {"name": "Ada Lovelace"}}}
    page = {"type": "track", "event": "Page Viewed", "properties": {"path": "/"}}
    events = [
        demo,
        {**page, "messageId": "p-1", "userId": "u-1"},  # u-1's deal failed before it
        {**page, "messageId": "p-2"},  # no identity at all
        {**page, "messageId": "p-3", "userId": {"id": 1}},  # not an identity value
        {**page, "messageId": "p-4", "context": {"externalId": [{"type": "person_id", "id": "x"}]}},
        {**page, "messageId": "p-5", "anonymousId": "a-1"},
    ]

    run = rpd_send(
        sandbox,
        tmp_path,
        write_events(tmp_path / "in.ndjson", events),
        args=("--max-retries", "0"),
    )

    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert run.report["events"] == {"read": 6, "sent": 0, "unchanged": 0, "skipped": 5, "failed": 1}
    assert run.report["skipped_by_reason"] == {"track rule: skip": 5}
    assert [letter["event"]["messageId"] for letter in run.dead_letters] == ["m-2"]


def test_a_deal_archived_in_pipedrive_is_not_created_again_by_a_fresh_state_replay(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # GET /api/v2/deals lists only deals not archived: a deal a sales rep archived after rpd
    # made it is found in /api/v2/deals/archived, as an archived lead is in /v1/leads/archived.
    events = write_events(tmp_path / "in.ndjson", [EVENTS[0], EVENTS[2]])
    first = rpd_send(sandbox, tmp_path, events, state=tmp_path / "one.sqlite", name="one")
    assert first.exit_code == 0, first.stderr
    (made,) = records(sandbox)["deals"]
    archive_deal(sandbox, made["id"])

    again = rpd_send(sandbox, tmp_path, events, state=tmp_path / "two.sqlite", name="two")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": 2,
        "sent": 1,  # the identify: a PATCH of the person found
        "unchanged": 0,
        "skipped": 1,
        "failed": 0,
    }
    assert again.report["skipped_by_reason"] == {"already done": 1}
    assert [
        (deal["id"], deal["origin_id"], deal["is_archived"]) for deal in records(sandbox)["deals"]
    ] == [(made["id"], "rpd:m-2", True)]
    requests = again.report["requests"]
    assert {
        key: requests.get(key) for key in ("GET /api/v2/deals", "GET /api/v2/deals/archived")
    } == {
        "GET /api/v2/deals": 1,
        "GET /api/v2/deals/archived": 1,
    }
    assert "POST /api/v2/deals" not in requests


def test_a_marker_an_events_data_quotes_does_not_stand_for_that_event(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # m-4's subject quotes m-6's marker: its note holds "rpd:m-6" before its own marker. A replay
    # with a fresh state that lists the person's notes took m-6 as made, and skipped it unsent.
    quoting = track("m-4", "Support Ticket Opened", subject="same as rpd:m-6 below", priority="low")
    later = {
        **track("m-6", "Support Ticket Opened", subject="s"),
        "timestamp": "2026-10-05T09:00:00Z",
    }
    events = write_events(tmp_path / "in.ndjson", [EVENTS[0], quoting, later])
    first = rpd_send(
        sandbox, tmp_path, events, state=tmp_path / "one.sqlite", name="one",
        args=("--until", "2026-10-05"),
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert [note["content"] for note in records(sandbox)["notes"]] == [
        "Support ticket (low): same as rpd:m-6 below<p>rpd:m-4</p>"
    ]

    again = rpd_send(sandbox, tmp_path, events, state=tmp_path / "two.sqlite", name="two")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": 3,
        "sent": 2,  # the identify (a PATCH of the person found) and m-6's note
        "unchanged": 0,
        "skipped": 1,  # m-4's note, found by its own marker
        "failed": 0,
    }
    assert [note["content"] for note in records(sandbox)["notes"]] == [
        "Support ticket (low): same as rpd:m-6 below<p>rpd:m-4</p>",
        "Support ticket (): s<p>rpd:m-6</p>",
    ]
