"""Track rules (SPEC 4, issue 16): the rule that matches, the exact deal, activity and note each
kind posts, skips, templates, and exactly once by origin_id or marker (listing once, settling an
unknown outcome by listing again)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from helpers_core import (
    CAMPAIGN,
    CONFIG,
    SOURCE,
    UNKNOWN,
    Call,
    Case,
    create_person,
    ok,
    post,
    run,
    search_person,
)

from rudder_pipedrive_cli.core import rules as rules_module
from rudder_pipedrive_cli.core.catalog import Catalog, Stage
from rudder_pipedrive_cli.core.errors import ConfigError
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiResponse, PdId
from rudder_pipedrive_cli.core.rules import (
    NO_RULE,
    compile_template,
    exact_pattern,
    marker,
    markers,
    parse_rules,
    rule_warnings,
)

RULES = parse_rules(
    [
        {"events": ["Page Viewed", "Button *"], "create": "skip"},
        {
            "events": ["Demo Requested"],
            "create": "deal",
            "title": "{event} via {properties.campaign}",
            "pipeline": "Sales",
            "stage": "Demo",
        },
        {
            "events": ["Call Scheduled"],
            "create": "activity",
            "type": "Call",
            "title": "Call: {properties.topic}",
            "content": "Booked from {properties.page}",
            "done": False,
        },
        {"events": ["Support Ticket *"], "create": "note"},
        {
            "events": ["Ticket Closed"],
            "create": "note",
            "content": "Closed by {context.traits.name}: {properties.why}",
        },
        {"events": ["Trial *"], "create": "lead", "title": "Trial of {userId}"},
        {"events": ["Contract Signed"], "create": "deal", "fields": {"plan": SOURCE}},
    ],
    "rpd.toml",
)
CATALOG = Catalog(
    pipelines={1: "Sales", 2: "Partners"},
    stages=(
        Stage(id=1, name="Qualified", pipeline_id=1),
        Stage(id=2, name="Demo", pipeline_id=1),
        Stage(id=4, name="Intro", pipeline_id=2),
    ),
    activity_types={"call": "Call", "meeting": "Meeting"},
)
RULED = replace(
    CONFIG,
    default_currency="EUR",
    deal_fields={"utm.campaign": CAMPAIGN},
    track_rules=CATALOG.apply(replace(CONFIG, track_rules=RULES)).track_rules,
)
AT = "2026-10-04T09:30:15Z"


def track(event: str, properties: Mapping[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": "u-1",
        "timestamp": AT,
        "properties": properties or {},
        **more,
    }


def list_v2(path: str, pid: PdId, records: list[dict[str, Any]], cursor: str = "") -> Call:
    query: dict[str, Any] = {"person_id": pid, "limit": 500}
    if cursor:
        query["cursor"] = cursor
    return Call(
        method="GET",
        path=path,
        query=query,
        response=ok(records, additional={"next_cursor": None}),
    )


def deals_of(
    pid: PdId, records: list[dict[str, Any]], archived: list[dict[str, Any]] | None = None
) -> tuple[Call, Call]:
    """A person's whole deal listing: its deals, then its archived deals (as leads, SPEC 1)."""
    return list_v2("/api/v2/deals", pid, records), list_v2(
        "/api/v2/deals/archived", pid, archived or []
    )


def list_notes(pid: PdId, records: list[dict[str, Any]]) -> Call:
    return Call(
        method="GET",
        path="/v1/notes",
        query={"person_id": pid, "start": 0, "limit": 500},
        response=ok(records, additional={"pagination": {"more_items_in_collection": False}}),
    )


DEAL = {
    "title": "Demo Requested via webinar",
    "value": 1500,
    "currency": "EUR",
    "pipeline_id": 1,
    "stage_id": 2,
    "custom_fields": {CAMPAIGN: "webinar"},
    "origin_id": "rpd:m-1",
    "person_id": 42,
}
ACTIVITY = {
    "subject": "Call: Enterprise <pricing>",
    "type": "call",
    "due_date": "2026-10-04",
    "due_time": "09:30",
    "done": False,
    "note": "Booked from /pricing?a=1&amp;b=&lt;2&gt;<p>rpd:m-1</p>",
    "participants": [{"person_id": 42, "primary": True}],
}
NOTE = {
    "content": "<p>Support Ticket Opened</p><ul><li>subject: Export to &lt;CSV&gt; fails</li>"
    "<li>priority: high</li></ul><p>rpd:m-1</p>",
    "add_time": "2026-10-04 09:30:15",
    "person_id": 42,
}
UNDATED_ACTIVITY = {k: v for k, v in ACTIVITY.items() if k not in ("due_date", "due_time")}
UNDATED_NOTE = {k: v for k, v in NOTE.items() if k != "add_time"}
DEMO = track(
    "Demo Requested", {"value": "1500", "utm": {"campaign": "webinar"}, "campaign": "webinar"}
)
CALL = track("Call Scheduled", {"topic": "Enterprise <pricing>", "page": "/pricing?a=1&b=<2>"})
TICKET = track("Support Ticket Opened", {"subject": "Export to <CSV> fails", "priority": "high"})

# A deal of person 42, without its organization.
SIGNED = {
    "title": "Contract Signed",
    "custom_fields": {SOURCE: "Pro"},
    "origin_id": "rpd:m-1",
    "person_id": 42,
}

CASES = [
    Case(
        name="deal: found person, its deals listed once, posted with pipeline, stage, value",
        raw=DEMO,
        config=RULED,
        calls=[
            search_person("u-1", 42),
            *deals_of(42, [{"id": 7, "origin_id": "rpd:other"}, {"id": 8}]),
            post("/api/v2/deals", DEAL, ok({"id": 9, **DEAL}, status=201)),
        ],
        expect={
            "status": "sent",
            "lead_origins": {"deal:42": frozenset({"rpd:other", "rpd:m-1"})},
            "dropped": ["campaign"],
        },
    ),
    Case(
        name="deal: a label_ids property (lead labels) is no deal's: left out, listed as dropped",
        raw=track("Demo Requested", {**DEMO["properties"], "label_ids": ["Hot"]}),
        config=RULED,
        persons={"u-1": 42},
        leads={"deal:42": frozenset()},
        calls=[post("/api/v2/deals", DEAL, ok({"id": 9, **DEAL}, status=201))],
        expect={
            "status": "sent",
            "lead_origins": {"deal:42": frozenset({"rpd:m-1"})},
            "dropped": ["campaign", "label_ids"],
        },
    ),
    Case(
        name="deal: its organization when known, the default pipeline without one in the rule",
        raw=track("Contract Signed", {"plan": "Pro", "total": 12000, "currency": "usd"}),
        config=RULED,
        persons={"u-1": 42},
        memberships={42: 500},
        leads={"deal:42": frozenset()},
        calls=[
            post(
                "/api/v2/deals",
                body := {
                    "title": "Contract Signed",
                    "custom_fields": {SOURCE: "Pro"},
                    "value": 12000,
                    "currency": "USD",
                    "origin_id": "rpd:m-1",
                    "person_id": 42,
                    "org_id": 500,
                },
                ok({"id": 9, **body}),
            )
        ],
        expect={"status": "sent", "lead_origins": {"deal:42": frozenset({"rpd:m-1"})}},
    ),
    Case(
        name="deal: its organization known but gone (refused): forgotten, posted without it",
        raw=track("Contract Signed", {"plan": "Pro"}),
        config=RULED,
        persons={"u-1": 42},
        memberships={42: 500},
        leads={"deal:42": frozenset()},
        calls=[
            post(
                "/api/v2/deals",
                {**SIGNED, "org_id": 500},
                ApiResponse(status=400, error="org_id: organization 500 not found"),
            ),
            post("/api/v2/deals", SIGNED, ok({"id": 9, **SIGNED}, status=201)),
        ],
        expect={
            "status": "sent",
            "memberships": {42: None},
            "warnings": ["organization 500 of person 42 not found: deal made without it"],
            "lead_origins": {"deal:42": frozenset({"rpd:m-1"})},
        },
    ),
    Case(
        name="deal: its organization gone, the first answer lost: refused when posted again, "
        "then posted without it",
        raw=track("Contract Signed", {"plan": "Pro"}),
        config=RULED,
        persons={"u-1": 42},
        memberships={42: 500},
        leads={"deal:42": frozenset()},
        calls=[
            post("/api/v2/deals", {**SIGNED, "org_id": 500}, UNKNOWN),
            *deals_of(42, []),
            post(
                "/api/v2/deals",
                {**SIGNED, "org_id": 500},
                ApiResponse(status=400, error="org_id: organization 500 not found"),
            ),
            post("/api/v2/deals", SIGNED, ok({"id": 9, **SIGNED}, status=201)),
        ],
        expect={
            "status": "sent",
            "memberships": {42: None},
            "warnings": ["organization 500 of person 42 not found: deal made without it"],
            "lead_origins": {"deal:42": frozenset({"rpd:m-1"})},
        },
    ),
    Case(
        name="deal already among the person's deals (by origin_id): skipped",
        raw=DEMO,
        config=RULED,
        calls=[
            search_person("u-1", 42),
            *deals_of(42, [{"id": 7, "origin_id": "rpd:m-1"}]),
        ],
        expect={"status": "skipped", "reason": "already done"},
    ),
    Case(
        name="deal archived in Pipedrive (only in the archived listing): skipped, not made again",
        raw=DEMO,
        config=RULED,
        calls=[
            search_person("u-1", 42),
            *deals_of(
                42, [{"id": 8, "origin_id": "rpd:other"}], [{"id": 7, "origin_id": "rpd:m-1"}]
            ),
        ],
        expect={"status": "skipped", "reason": "already done"},
    ),
    Case(
        name="deal create outcome unknown: found by listing the person's deals, not posted again",
        raw=DEMO,
        config=RULED,
        persons={"u-1": 42},
        leads={"deal:42": frozenset()},
        calls=[
            post("/api/v2/deals", DEAL, UNKNOWN),
            *deals_of(42, [{"id": 9, "origin_id": "rpd:m-1"}]),
        ],
        expect={"status": "sent", "lead_origins": {"deal:42": frozenset({"rpd:m-1"})}},
    ),
    Case(
        name="activity: type name resolved to its key, due from the event time, note escaped",
        raw=CALL,
        config=RULED,
        calls=[
            search_person("u-1", 42),
            list_v2("/api/v2/activities", 42, [{"id": 3, "note": "<p>rpd:m-0</p>"}]),
            post("/api/v2/activities", ACTIVITY, ok({"id": 4, **ACTIVITY}, status=201)),
        ],
        expect={
            "status": "sent",
            "lead_origins": {"activity:42": frozenset({"rpd:m-0", "rpd:m-1"})},
            "dropped": [],
        },
    ),
    Case(
        name="activity create outcome unknown, not found by its marker: posted again once",
        raw=CALL,
        config=RULED,
        persons={"u-1": 42},
        leads={"activity:42": frozenset()},
        calls=[
            post("/api/v2/activities", ACTIVITY, UNKNOWN),
            list_v2("/api/v2/activities", 42, []),
            post("/api/v2/activities", ACTIVITY, ok({"id": 4, **ACTIVITY})),
        ],
        expect={"status": "sent", "lead_origins": {"activity:42": frozenset({"rpd:m-1"})}},
    ),
    Case(
        name="note: default content lists the properties, the marker last; found by it again",
        raw=TICKET,
        config=RULED,
        calls=[
            search_person("u-1", 42),
            list_notes(42, [{"id": 1, "content": "typed by hand"}]),
            post("/v1/notes", NOTE, ok({"id": 2, **NOTE})),
        ],
        expect={"status": "sent", "lead_origins": {"note:42": frozenset({"rpd:m-1"})}},
    ),
    Case(
        name="activity whose event time cannot be read: no due date, and a warning says so",
        raw={**CALL, "timestamp": "2026-10-04 09:30:15 UTC"},
        config=RULED,
        persons={"u-1": 42},
        leads={"activity:42": frozenset()},
        calls=[
            post("/api/v2/activities", UNDATED_ACTIVITY, ok({"id": 4, **UNDATED_ACTIVITY})),
        ],
        expect={
            "status": "sent",
            "warnings": [
                "timestamp = 2026-10-04 09:30:15 UTC is not a date or time; "
                "the activity has no due date"
            ],
        },
    ),
    Case(
        name="note whose event time cannot be read: dated when sent, and a warning says so",
        raw={**TICKET, "timestamp": "yesterday"},
        config=RULED,
        persons={"u-1": 42},
        leads={"note:42": frozenset()},
        calls=[post("/v1/notes", UNDATED_NOTE, ok({"id": 2, **UNDATED_NOTE}))],
        expect={
            "status": "sent",
            "warnings": [
                "timestamp = yesterday is not a date or time; the note is dated when it is sent"
            ],
        },
    ),
    Case(
        name="note already there (its marker in a note's content): skipped",
        raw=TICKET,
        config=RULED,
        calls=[
            search_person("u-1", 42),
            list_notes(42, [{"id": 1, "content": NOTE["content"]}]),
        ],
        expect={"status": "skipped", "reason": "already done"},
    ),
    Case(
        name="note create outcome unknown: found by its marker among the person's notes",
        raw=TICKET,
        config=RULED,
        persons={"u-1": 42},
        leads={"note:42": frozenset()},
        calls=[
            post("/v1/notes", NOTE, UNKNOWN),
            list_notes(42, [{"id": 2, "content": NOTE["content"]}]),
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="note content template: missing values render empty, values escaped",
        raw=track("Ticket Closed", {"why": "fixed & shipped"}),
        config=RULED,
        persons={"u-1": 42},
        leads={"note:42": frozenset()},
        calls=[
            post(
                "/v1/notes",
                body := {
                    "content": "Closed by : fixed &amp; shipped<p>rpd:m-1</p>",
                    "add_time": "2026-10-04 09:30:15",
                    "person_id": 42,
                },
                ok({"id": 2, **body}),
            )
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="skip rule (a prefix): skipped with its reason, nothing asked",
        raw=track("Button Clicked"),
        config=RULED,
        expect={"status": "skipped", "reason": "track rule: skip"},
    ),
    Case(
        name="lead rule: its title template, as a lead otherwise",
        raw=track("Trial Started"),
        config=RULED,
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[
            post(
                "/v1/leads",
                body := {"title": "Trial of u-1", "origin_id": "rpd:m-1", "person_id": 42},
                ok({"id": "lead-1", **body}),
            )
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="no rule matches: a lead titled by the event name, as without rules",
        raw=track("Signed Up"),
        config=RULED,
        persons={"u-1": 42},
        leads={42: frozenset()},
        calls=[
            post(
                "/v1/leads",
                body := {"title": "Signed Up", "origin_id": "rpd:m-1", "person_id": 42},
                ok({"id": "lead-1", **body}),
            )
        ],
        expect={"status": "sent"},
    ),
    Case(
        name="person created by this plan: nobody has deals for it, no listing",
        raw={**DEMO, "context": {"traits": {"name": "Ada"}}},
        config=RULED,
        calls=[
            search_person("u-1"),
            create_person(
                body := {
                    "name": "Ada",
                    "add_time": AT,
                    "custom_fields": {"fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48": "u-1"},
                },
                pid=42,
            ),
            post("/api/v2/deals", DEAL, ok({"id": 9, **DEAL})),
        ],
        expect={
            "status": "sent",
            "lead_origins": {
                42: frozenset(),
                "deal:42": frozenset({"rpd:m-1"}),
                "activity:42": frozenset(),
                "note:42": frozenset(),
            },
        },
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_track_rule(case: Case) -> None:
    case.verify()


def test_first_matching_rule_wins_whatever_the_pattern_kind() -> None:
    rules = parse_rules(
        [
            {"events": ["Trial *"], "create": "skip"},
            {"events": ["Trial Started", "*"], "create": "note"},
            {"events": ["Trial Started"], "create": "deal"},
        ],
        "rpd.toml",
    )
    assert [rules.label(name) for name in ("Trial Started", "Trial", "Other", None)] == [
        "track #1 (skip)",
        "track #2 (note)",
        "track #2 (note)",
        NO_RULE,
    ]
    assert parse_rules([], "rpd.toml").match("Anything") is None


def test_each_name_is_matched_once_in_a_bounded_table_and_labels_stay_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = [
        {"events": ["Trial *"], "create": "skip"},
        {"events": ["Demo", "*"], "create": "note"},
        {"events": ["Demo"], "create": "deal"},
    ]
    rules = parse_rules(tables, "rpd.toml")
    names: list[Any] = ["Demo", " Demo ", "Trial 1", "Demo", 7, 7.0, True, None, [1], {"a": 1}]
    expected = ["track #2 (note)"] * 2 + ["track #1 (skip)", "track #2 (note)"]
    expected += ["track #2 (note)"] * 2 + [NO_RULE] * 4  # 7 is "7"; true, null, [1], {} none
    assert [rules.label(name) for name in names] == expected
    # Each string met once, as the record holds it (the plan's name is trimmed already).
    note, skip = (rules.rules[1], "track #2 (note)"), (rules.rules[0], "track #1 (skip)")
    assert rules.matched == {"Demo": note, " Demo ": note, "Trial 1": skip}
    # A remembered answer is the answer: no pattern is looked at again.
    rules.exact.clear()  # type: ignore[attr-defined]
    assert rules.match("Demo") is rules.rules[1]
    assert rules.label(" Demo ") == "track #2 (note)"
    # Bounded: past MAX_NAMES names the table starts again, and answers stay the same.
    monkeypatch.setattr(rules_module, "MAX_NAMES", 2)
    bounded = parse_rules(tables, "rpd.toml")
    assert [bounded.label(f"Trial {n}") for n in range(5)] == ["track #1 (skip)"] * 5
    assert bounded.matched == {"Trial 4": (bounded.rules[0], "track #1 (skip)")}
    # Rules resolved anew (`replace`) remember nothing of the old ones.
    renumbered = tuple(replace(rule, number=rule.number + 10) for rule in bounded.rules)
    again = replace(bounded, rules=renumbered)
    assert again.matched == {}
    assert again.label("Trial 4") == "track #11 (skip)"


TEMPLATE_ERRORS = [
    (
        "{propertes.x}",
        "{propertes.x} in template '{propertes.x}' refers to nothing an event holds",
        "did you mean {properties.x}? ",
    ),
    (
        "{Event}",
        "{Event} in template '{Event}' refers to nothing an event holds",
        "did you mean {event}? ",
    ),
    (
        "{properties}",
        "{properties} in template '{properties}' refers to nothing an event holds",
        "",
    ),
    (
        "{context.x}",
        "{context.x} in template '{context.x}' refers to nothing an event holds",
        "did you mean {context.traits.x}? ",
    ),
    # Newcomer: {context.trait.topic} was told "did you mean {context.traits.trait.topic}?", the
    # root matched against `context` alone and the misspelled `trait` kept.
    (
        "{context.trait.topic}",
        "{context.trait.topic} in template '{context.trait.topic}' refers to nothing an event "
        "holds",
        "did you mean {context.traits.topic}? ",
    ),
    (
        "{contxt.traits.company}",
        "{contxt.traits.company} in template '{contxt.traits.company}' refers to nothing an "
        "event holds",
        "did you mean {context.traits.company}? ",
    ),
    (
        "{context.page.url}",  # not in the traits: the path is kept whole, the root put in front
        "{context.page.url} in template '{context.page.url}' refers to nothing an event holds",
        "did you mean {context.traits.page.url}? ",
    ),
    (
        "{context.traits}",
        "{context.traits} in template '{context.traits}' refers to nothing an event holds",
        "",
    ),
    ("a } b", "unmatched '}' in template 'a } b'", None),
]


@pytest.mark.parametrize(("text", "message", "hint"), TEMPLATE_ERRORS)
def test_a_template_that_refers_to_nothing_is_a_config_error(
    text: str, message: str, hint: str | None
) -> None:
    with pytest.raises(ConfigError) as raised:
        compile_template(text, "rpd.toml: track #1: title")
    assert raised.value.message == f"rpd.toml: track #1: title: {message}"
    if hint is not None:
        assert raised.value.hint == hint + (
            "use {event}, {userId}, {properties.PATH}, {context.traits.PATH} or {traits.PATH}"
        )


def test_templates_render_paths_empty_values_and_literal_braces() -> None:
    event = parse_event(
        {
            "type": "track",
            "messageId": "m-1",
            "event": "E",
            "userId": 7,
            "properties": {"n": 2.5, "ok": True, "tags": ["a", "b"], "deep": {"x": "<y>"}},
            "traits": {"t": "T"},
        },
        "f:1",
    )
    template = compile_template(
        "{{{event}}} {userId} {properties.n} {properties.ok} {properties.tags} "
        "{properties.deep.x} {traits.t} [{context.traits.missing}]",
        "w",
    )
    assert template.render(event) == '{E} 7 2.5 true ["a","b"] <y> T []'
    assert (
        template.render(event, escape=True)
        == "{E} 7 2.5 true [&quot;a&quot;,&quot;b&quot;] &lt;y&gt; T []"
    )


def test_event_renders_its_name_as_the_rules_match_it_trimmed() -> None:
    """A rule matches "Demo Requested " as "Demo Requested", and a lead's title is the trimmed
    name: {event} renders it so too, not "Demo Requested  via web"."""
    event = parse_event(
        {"type": "track", "event": " Demo Requested ", "userId": "u-1", "properties": {"c": " x "}},
        "f:1",
    )
    template = compile_template("{event} via {properties.c}.", "w")
    assert template.render(event) == "Demo Requested via  x ."  # property values stay as given


RULE_ERRORS = [
    (
        {"events": ["x"], "create": "deal", "stag": "Demo"},
        "track #1: unknown key 'stag'",
        "did you mean 'stage'?",
    ),
    (
        {"events": ["x"], "create": "opportunity"},
        "track #1: create is 'opportunity'",
        "create = one of 'lead', 'deal', 'activity', 'note', 'skip'",
    ),
    (
        {"events": ["x"], "create": "note", "pipeline": "Sales"},
        "track #1: pipeline does not apply to a note rule",
        "a note rule takes events, create and content",
    ),
    (
        {"events": [], "create": "skip"},
        "track #1: events must be a non-empty list of event names; it is empty",
        'e.g. events = ["Demo Requested", "Trial *"] (a trailing * matches a prefix; '
        '"*" any event)',
    ),
    # What events held was not said: a number among 30 names was a search by eye.
    (
        {"events": ["Demo", "Trial *", 5], "create": "skip"},
        "track #1: events must be a non-empty list of event names; it holds 5",
        'e.g. events = ["Demo Requested", "Trial *"] (a trailing * matches a prefix; '
        '"*" any event)',
    ),
    (
        {"events": ["Demo", " "], "create": "skip"},
        "track #1: events must be a non-empty list of event names; it holds ' '",
        'e.g. events = ["Demo Requested", "Trial *"] (a trailing * matches a prefix; '
        '"*" any event)',
    ),
    (
        {"create": "skip"},
        "track #1: events must be a non-empty list of event names; it is missing",
        'e.g. events = ["Demo Requested", "Trial *"] (a trailing * matches a prefix; '
        '"*" any event)',
    ),
    (
        {"events": {"name": "Demo"}, "create": "skip"},
        "track #1: events must be a non-empty list of event names; it is {'name': 'Demo'}",
        'e.g. events = ["Demo Requested", "Trial *"] (a trailing * matches a prefix; '
        '"*" any event)',
    ),
    # Newcomer: done = "true" (and "yes", 1) read "done must be true or false" with no hint,
    # not what it held nor that the quotes were the trouble.
    (
        {"events": ["x"], "create": "activity", "done": "yes"},
        "track #1: done must be true or false, got 'yes'",
        "write done = true, without quotes",
    ),
    (
        {"events": ["x"], "create": "activity", "done": "false"},
        "track #1: done must be true or false, got 'false'",
        "write done = false, without quotes",
    ),
    (
        {"events": ["x"], "create": "activity", "done": 1},
        "track #1: done must be true or false, got 1",
        "e.g. done = true",
    ),
    (
        {"events": ["x"], "create": "activity", "type": 5},
        "track #1: type must be text (a string), got 5",
        'write it in quotes, e.g. type = "call"',
    ),
    (
        {"events": ["x"], "create": "deal", "title": ["{event}"]},
        "track #1: title must be text (a string), got ['{event}']",
        'write it in quotes, e.g. title = "{event} via {properties.campaign}"',
    ),
    (
        {"events": ["x"], "create": "note", "content": {"text": "x"}},
        "track #1: content must be text (a string), got {'text': 'x'}",
        'write it in quotes, e.g. content = "Booked from {properties.page}"',
    ),
    (  # a typo, or a capital: the kind meant is named
        {"events": ["x"], "create": "deals"},
        "track #1: create is 'deals'",
        "did you mean create = 'deal'? create = one of 'lead', 'deal', 'activity', 'note', 'skip'",
    ),
    (
        {"events": ["x"], "create": "Activity"},
        "track #1: create is 'Activity'",
        "did you mean create = 'activity'? create = one of 'lead', 'deal', 'activity', 'note', "
        "'skip'",
    ),
    (
        {"events": ["x"], "create": "deal", "stage": True},
        "track #1: stage must be a name (a string) or an id (an integer from 1), got true",
        'e.g. stage = "Qualified"',
    ),
    # Newcomer: pipeline = 0 and -1 (and 1.0) were taken as ids no account has: a dry-run
    # planned deals into them, and only a send or check found out.
    (
        {"events": ["x"], "create": "deal", "pipeline": 0},
        "track #1: pipeline must be a name (a string) or an id (an integer from 1), got 0",
        'e.g. pipeline = "Sales"',
    ),
    (
        {"events": ["x"], "create": "deal", "stage": -1},
        "track #1: stage must be a name (a string) or an id (an integer from 1), got -1",
        'e.g. stage = "Qualified"',
    ),
    (
        {"events": ["x"], "create": "deal", "pipeline": 1.0},
        "track #1: pipeline must be a name (a string) or an id (an integer from 1), got 1.0",
        'e.g. pipeline = "Sales"',
    ),
]


@pytest.mark.parametrize(("table", "message", "hint"), RULE_ERRORS)
def test_a_rule_that_cannot_work_is_a_config_error(
    table: dict[str, Any], message: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_rules([table], "rpd.toml")
    assert (raised.value.message, raised.value.hint) == (f"rpd.toml: {message}", hint)


def test_a_star_that_is_part_of_a_name_is_written_escaped_anywhere_in_it() -> None:
    """`\\*` is a * of the name wherever it stands: RudderStack's exact names holding one
    (`rpd init` writes them so, `exact_pattern`) and prefixes holding one match as written."""
    assert [exact_pattern(name) for name in ("A*B", "Trial*", "*", "Plain")] == [
        "A\\*B",
        "Trial\\*",
        "\\*",
        "Plain",
    ]
    rules = parse_rules(
        [
            {"events": [exact_pattern("A*B"), exact_pattern("*")], "create": "skip"},
            {"events": ["Rated 5\\* *"], "create": "note"},
        ],
        "rpd.toml",
    )
    names = ("A*B", "AxB", "*", "Rated 5* by Ann", "Rated 5 by Ann")
    assert [rules.label(name) for name in names] == [
        "track #1 (skip)",
        NO_RULE,
        "track #1 (skip)",
        "track #2 (note)",
        NO_RULE,
    ]


MID_STAR_HINT = (
    'hint: a * matches a prefix only at the end (e.g. "Trial *": every name starting "Trial "); '
    "if the * is part of the name, write it \\\\* to say so"
)


def test_a_star_before_a_patterns_end_is_an_exact_name_warned_about() -> None:
    """SPEC 3: "exact names; a trailing * matches a prefix": `Support * Ticket` and `*Ticket` are
    exact names, legal, so read as such (they were config errors, exit 2), and warned about:
    a prefix meant there matches no event (a newcomer's support tickets became leads)."""
    rules = parse_rules(
        [
            {"events": ["Demo", " *Ticket "], "create": "skip"},
            {"events": ["Support * Ticket", "Rated 5\\* *", "Sup*port *"], "create": "note"},
        ],
        "rpd.toml",
    )
    warning = (
        "in events has a * before its end: it stands for a * in the event's name, not for any text"
    )
    assert rule_warnings(rules, "rpd.toml") == [
        f"rpd.toml: track #1: '*Ticket' {warning}\n{MID_STAR_HINT}",
        f"rpd.toml: track #2: 'Support * Ticket' {warning}\n{MID_STAR_HINT}",
        f"rpd.toml: track #2: 'Sup*port *' {warning}\n{MID_STAR_HINT}",  # a prefix holding one
    ]
    names = ("*Ticket", "Big Ticket", "Support * Ticket", "Support X Ticket", "Sup*port me")
    assert [rules.label(name) for name in names] == [
        "track #1 (skip)",
        NO_RULE,
        "track #2 (note)",
        NO_RULE,
        "track #2 (note)",
    ]


NAME_ERRORS = [
    (
        {"pipeline": "Sale"},
        "track #1: pipeline 'Sale': the account has no such pipeline",
        "did you mean 'Sales'? pipelines: Sales, Partners",
    ),
    (
        {"pipeline": 9},
        "track #1: pipeline 9: the account has no pipeline with this id",
        "pipelines: Sales (1), Partners (2)",
    ),
    (
        {"pipeline": "Sales", "stage": "Intro"},
        "track #1: stage 'Intro': the account has no such stage in pipeline 'Sales'",
        "stages in pipeline 'Sales': Qualified, Demo",
    ),
    (
        {"stage": "Dmo"},
        "track #1: stage 'Dmo': the account has no such stage",
        "did you mean 'Demo'? stages: Qualified, Demo, Intro",
    ),
    # An id written as a string is a name: said as such, with the one it would be as a number.
    (
        {"pipeline": "2"},
        "track #1: pipeline '2': the account has no such pipeline",
        "an id is written as a number: pipeline = 2 ('Partners'); pipelines: Sales, Partners",
    ),
    (
        {"pipeline": "Sales", "stage": "2"},
        "track #1: stage '2': the account has no such stage in pipeline 'Sales'",
        "an id is written as a number: stage = 2 ('Demo'); stages in pipeline 'Sales': "
        "Qualified, Demo",
    ),
    (
        {"pipeline": "Sales", "stage": "4"},  # stage 4 is in another pipeline: no hint of it
        "track #1: stage '4': the account has no such stage in pipeline 'Sales'",
        "stages in pipeline 'Sales': Qualified, Demo",
    ),
]


@pytest.mark.parametrize(("settings", "message", "hint"), NAME_ERRORS)
def test_an_unknown_pipeline_or_stage_is_a_config_error_with_the_nearest_name(
    settings: dict[str, Any], message: str, hint: str
) -> None:
    rules = parse_rules([{"events": ["x"], "create": "deal", **settings}], "rpd.toml")
    with pytest.raises(ConfigError) as raised:
        CATALOG.apply(PlanConfig(track_rules=rules))
    assert (raised.value.message, raised.value.hint) == (message, hint)


# QA (rules15): a name two pipelines (or two stages of one pipeline) share took the lowest id
# silently, and two stages of one pipeline were said to be "in 2 pipelines".
TWINS = Catalog(
    pipelines={1: "Sales", 2: "Partners", 3: "Sales"},
    stages=(
        Stage(id=1, name="Qualified", pipeline_id=1),
        Stage(id=2, name="Demo", pipeline_id=2),
        Stage(id=5, name="Demo", pipeline_id=2),
        Stage(id=6, name="Demo", pipeline_id=3),
    ),
)
TWIN_ERRORS = [
    (
        {"pipeline": "sales"},
        "track #1: pipeline 'sales' names 2 pipelines (ids 1, 3)",
        "give its id: pipeline = 1 or pipeline = 3",
    ),
    (
        {"pipeline": "Partners", "stage": "Demo"},
        "track #1: stage 'Demo' names 2 stages in pipeline 'Partners' (ids 2, 5)",
        "give its id: stage = 2 or stage = 5",
    ),
    (
        {"stage": "Demo"},
        "track #1: stage 'Demo' is in 2 pipelines",
        "name its pipeline too: pipeline = 'Partners' or 'Sales'",
    ),
]


@pytest.mark.parametrize(("settings", "message", "hint"), TWIN_ERRORS)
def test_a_name_the_account_gives_to_two_pipelines_or_stages_is_a_config_error(
    settings: dict[str, Any], message: str, hint: str
) -> None:
    rules = parse_rules([{"events": ["x"], "create": "deal", **settings}], "rpd.toml")
    with pytest.raises(ConfigError) as raised:
        TWINS.apply(PlanConfig(track_rules=rules))
    assert (raised.value.message, raised.value.hint) == (message, hint)
    # By id, each is found.
    exact = parse_rules([{"events": ["x"], "create": "deal", "pipeline": 3, "stage": 6}], "f")
    (rule,) = TWINS.apply(PlanConfig(track_rules=exact)).track_rules.rules
    assert (rule.pipeline_id, rule.stage_id) == (3, 6)


def test_an_unknown_activity_type_is_a_config_error_with_the_nearest_name() -> None:
    rules = parse_rules([{"events": ["x"], "create": "activity", "type": "cal"}], "rpd.toml")
    with pytest.raises(ConfigError) as raised:
        CATALOG.apply(PlanConfig(track_rules=rules))
    assert (raised.value.message, raised.value.hint) == (
        "track #1: type 'cal': the account has no such activity type",
        "did you mean 'call'? activity types: call, meeting",
    )


def test_names_resolve_to_ids_and_keys_and_a_stage_alone_finds_its_pipeline() -> None:
    rules = parse_rules(
        [
            {"events": ["a"], "create": "deal", "stage": "intro"},
            {"events": ["b"], "create": "deal", "pipeline": 1, "stage": 2},
            {"events": ["c"], "create": "activity", "type": "meeting"},
        ],
        "rpd.toml",
    )
    resolved = CATALOG.apply(PlanConfig(track_rules=rules)).track_rules.rules
    assert [(r.pipeline_id, r.stage_id, r.type_key) for r in resolved] == [
        (2, 4, None),
        (1, 2, None),
        (None, None, "meeting"),
    ]
    assert CATALOG.apply(PlanConfig(track_rules=rules)).track_rules.unresolved() == []
    assert Catalog().apply(PlanConfig(track_rules=rules)).track_rules.unresolved() == [
        "track #1.stage = 'intro'",
        "track #3.type = 'meeting'",
    ]


def test_markers_are_found_again_in_stored_html_whatever_the_event_id() -> None:
    for event_id in ("msg-1", 'a b<c>&d"e', "ünï/cödé?x=1#y"):
        stored = f"<p>notes</p><p>{marker(event_id)}</p>"
        assert markers(stored) == {marker(event_id)}
    assert marker("a b<c>") == "rpd:a%20b%3Cc%3E"
    assert markers(None) == set()
    assert markers("rpd:one and rpd:two<br>") == {"rpd:two"}  # the last: where rpd writes it


def test_a_marker_holds_no_quote_a_sanitizer_could_escape_and_old_ones_are_found() -> None:
    """An event id with `'`: the marker quotes it, so an HTML sanitizer that stores `&#39;`
    leaves it as it is; one an earlier rpd wrote with `'` (as stored, or escaped) is found as
    the same event's."""
    mark = marker("it's-1")
    assert mark == "rpd:it%27s-1"
    for stored in ("<p>rpd:it%27s-1</p>", "<p>rpd:it's-1</p>", "<p>rpd:it&#39;s-1</p>"):
        assert markers(stored) == {mark}
    assert markers("rpd:a&amp;b") == {"rpd:a"}  # an escaped & ends a marker, as & itself does


def test_a_rule_with_an_unresolved_name_offline_shows_a_placeholder() -> None:
    config = replace(CONFIG, default_currency="EUR", track_rules=RULES)
    outcome = run(
        DEMO,
        [
            search_person("u-1", 42),
            *deals_of(42, []),
            post(
                "/api/v2/deals",
                body := {
                    "title": "Demo Requested via webinar",
                    "value": 1500,
                    "currency": "EUR",
                    "pipeline_id": "{pipeline:Sales}",
                    "stage_id": "{stage:Demo}",
                    "origin_id": "rpd:m-1",
                    "person_id": 42,
                },
                ok({"id": 1, **body}),
            ),
        ],
        config=config,
    )
    assert outcome.status == "sent"


def test_a_rule_whose_names_no_listing_resolved_fails_its_events_retryable() -> None:
    config = replace(RULED, track_rules=RULES.unresolvable("GET /api/v2/pipelines: HTTP 503"))
    outcome = run(DEMO, [], config=config)
    assert (outcome.status, outcome.reason, outcome.stage, outcome.retryable) == (
        "failed",
        "track #2: pipeline = 'Sales', stage = 'Demo' cannot be resolved: GET /api/v2/pipelines: "
        "HTTP 503; retry later",
        "validate",
        True,
    )
    # Rules that name nothing to resolve go on.
    assert run(track("Button Clicked"), [], config=config).reason == "track rule: skip"


def test_a_deal_value_without_any_currency_is_left_out_with_a_warning_naming_the_deal() -> None:
    config = replace(RULED, default_currency="")
    body = {
        "title": "Demo Requested via webinar",
        "pipeline_id": 1,
        "stage_id": 2,
        "custom_fields": {CAMPAIGN: "webinar"},
        "origin_id": "rpd:m-1",
        "person_id": 42,
    }
    outcome = run(
        track(
            "Demo Requested",
            {
                "revenue": "lots",
                "value": 1500,
                "utm": {"campaign": "webinar"},
                "campaign": "webinar",
            },
        ),
        [post("/api/v2/deals", body, ok({"id": 9, **body}))],
        config=config,
        known=Case(name="", raw={}, persons={"u-1": 42}, leads={"deal:42": frozenset()}).known(),
    )
    assert (outcome.status, outcome.warnings) == (
        "sent",
        (
            "revenue = lots is not a number; ignored for the deal value",
            "deal value 1500 has no currency (no currency property and no [identity] "
            "default_currency); value left out",
        ),
    )


def test_what_decides_skips_is_the_rules_up_to_the_last_skip_rule() -> None:
    def skips(*tables: tuple[list[str], str]) -> str:
        return parse_rules([{"events": e, "create": c} for e, c in tables], "rpd.toml").skips

    assert skips() == skips((["X"], "deal")) == ""  # no rule skips: no event is skipped by one
    base = skips((["A"], "lead"), (["X"], "skip"), (["Y"], "deal"))
    assert len(base) == 16
    # What skips no other event: a rule's kind before the last skip rule, a rule after it.
    assert skips((["A"], "note"), (["X"], "skip"), (["Y"], "deal")) == base
    assert skips((["A"], "lead"), (["X"], "skip")) == base
    # What does: a pattern before it, a skip rule's own, a rule turned into a skip rule.
    assert skips((["A", "X"], "lead"), (["X"], "skip"), (["Y"], "deal")) != base
    assert skips((["A"], "lead"), (["X *"], "skip"), (["Y"], "deal")) != base
    assert skips((["A"], "lead"), (["X"], "skip"), (["Y"], "skip")) != base
    assert skips((["A"], "lead"), (["X"], "deal"), (["Y"], "deal")) == ""


def test_a_track_s_rule_is_found_once_and_plans_it_and_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plan_event finds a planned track's rule (Event.rule); its handler and dry-run's label
    read that one, as a track not planned (done) is named by a lookup of its own."""
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.preview import Recorder, preview
    from rudder_pipedrive_cli.core.responder import OfflineResponder
    from rudder_pipedrive_cli.core.rules import TrackRules
    from rudder_pipedrive_cli.core.tally import Tally

    rules = parse_rules([{"events": ["Support Ticket *"], "create": "note"}], "rpd.toml")
    config = replace(CONFIG, track_rules=rules)
    asked: list[str] = []
    for method in ("match", "label"):
        found = getattr(TrackRules, method)
        monkeypatch.setattr(
            TrackRules,
            method,
            lambda self, name, found=found: asked.append(name) or found(self, name),
        )
    named = {"context": {"traits": {"name": "Ada"}}}  # a person it may create
    events = [
        parse_event(
            {"type": "track", "event": name, "userId": "u-1", "messageId": mid, **named},
            f"e.ndjson:{n}",
        )
        for n, (mid, name) in enumerate([("m-1", " Support Ticket 5"), ("m-2", "Signed Up")], 1)
    ]
    events.append(events[0])  # the same messageId again: already done, not planned
    send = Recorder(OfflineResponder(config), Tally())
    records = list(preview(events, config, send, IdentityStore()))
    assert [(r["outcome"], r["rule"]) for r in records] == [
        ("planned", "track #1 (note)"),
        ("planned", NO_RULE),
        ("skipped", "track #1 (note)"),
    ]
    # Planned by the rule it was named by: a note, and a lead for no rule.
    assert [r["requests"][-1].key for r in records[:2]] == ["POST /v1/notes", "POST /v1/leads"]
    assert asked == [" Support Ticket 5", "Signed Up", " Support Ticket 5"]  # once each
    assert events[0].rule is rules.rules[0] and events[1].rule is None
