"""track: what the first matching `[[track]]` rule says (SPEC 4 track rules), else a lead titled
by the event name; for the person (found or created), exactly once.

Every kind a track creates (lead, deal, activity, note) carries an origin: leads and deals
`origin_id` = `rpd:` + the event identity, activities and notes the same as a marker at the end of
their text. Before the first create for a person whose records of that kind neither this run nor
the state knows, the person's records are listed once and their origins remembered; an event
whose origin is there is `skipped` (`already done`); where the run listed the account's records
of the kind (SPEC 5), one whose origin is on any of them is, whoever holds it (a person re-keyed
or merged to another userId). A create whose outcome stays unknown is settled by listing them
again (`write_once`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rudder_pipedrive_cli.core import fields
from rudder_pipedrive_cli.core.errors import PlanFailure, Warned
from rudder_pipedrive_cli.core.events import TIME_PATHS, Event, quoted
from rudder_pipedrive_cli.core.fields import (
    DEAL_KIND,
    LEAD_KIND,
    NOTHING,
    compiled_mapping,
    mapped_values,
    text,
)
from rudder_pipedrive_cli.core.filters import event_time
from rudder_pipedrive_cli.core.identity_cache import Added
from rudder_pipedrive_cli.core.index import origins_key
from rudder_pipedrive_cli.core.plans.common import (
    GONE,
    KEPT,
    LIST_LIMIT,
    PERSON,
    Ctx,
    Pages,
    Ref,
    Stale,
    Step,
    Unknown,
    WriteOnce,
    create,
    expect,
    find,
    gone,
    known_ref,
    landed_create_fields,
    listed,
    not_an_object,
    person_create_body,
    write_once,
)
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome
from rudder_pipedrive_cli.core.rules import (
    TrackRule,
    marker,
    markers,
    template_text,
)

ORIGIN_PREFIX = "rpd:"


@dataclass(frozen=True, slots=True)
class Kind:
    """A record a track creates: where it is posted and listed, and where its origin is."""

    name: str
    plural: str
    endpoint: str  # POST
    listings: tuple[str, ...]  # GET ?person_id= (leads: archived ones too)
    offset: bool  # v1 paging (start, limit); else v2 cursors
    origins: Callable[[Mapping[str, Any]], set[str]]  # the origins one listed record holds


def _origin_id(record: Mapping[str, Any]) -> set[str]:
    origin = record.get("origin_id")
    return {origin} if isinstance(origin, str) else set()


def _marked(key: str) -> Callable[[Mapping[str, Any]], set[str]]:  # activities' and notes'
    return lambda record: markers(record.get(key))


LEADS, DEALS, ACTIVITIES, NOTES = "/v1/leads", "/api/v2/deals", "/api/v2/activities", "/v1/notes"
KINDS: Mapping[str, Kind] = {  # archived leads and deals are only in the second listing
    "lead": Kind("lead", "leads", LEADS, (LEADS, "/v1/leads/archived"), True, _origin_id),
    "deal": Kind("deal", "deals", DEALS, (DEALS, "/api/v2/deals/archived"), False, _origin_id),
    "activity": Kind("activity", "activities", ACTIVITIES, (ACTIVITIES,), False, _marked("note")),
    "note": Kind("note", "notes", NOTES, (NOTES,), True, _marked("content")),
}


def invalid(event: Event) -> str | None:
    """Why the event cannot be planned, whatever Pipedrive holds (see `INVALID`)."""
    return invalid_named(event, text(event.raw.get("event")))


def invalid_named(event: Event, name: str | None) -> str | None:
    """`invalid`, given the event's name as `text` reads it: the handler reads it once."""
    if name is None:
        return "track needs an event name (the lead title)"
    if event.user_id is None and "person_id" not in event.external:
        return "track needs a person: a userId or a person_id external id"
    return None


def plan(ctx: Ctx) -> Step[Outcome]:
    try:
        event = ctx.event
        name = text(event.raw.get("event"))
        if (why := invalid_named(event, name)) is not None:  # the handler's first question
            return ctx.outcome("failed", why, "validate")
        assert name is not None  # `invalid_named` refused it else
        rule = event.rule  # plan_event's (not a skip rule: it skipped those)
        if rule is not None and rule.unresolvable:
            raise PlanFailure(rule.unresolvable, stage="validate", retryable=True)
        user_id = event.user_id
        kind = KINDS["lead" if rule is None else rule.create]
        body, origin = BODIES[kind.name](ctx, rule, name)  # refused before any write
        # On any record of the account's listing of its kind (when listed: only by index, so
        # `index`, a slot, is asked first; the class's attribute is a lookup in the type, ~140
        # Ir an event): done, whoever holds it now, before its person is looked for at all.
        made = ctx.index is not None and ctx.known.account_origins
        if made and origin in made.get(kind.name, ()):
            return ctx.outcome("skipped", "already done")
        person = known_ref(ctx, PERSON, user_id, "person_id") or (
            yield from find(ctx, PERSON, user_id)
        )
        if person is None:
            assert user_id is not None  # find() answers None only after searching a userId
            created = person_create_body(ctx, user_id)
            if type(created) is Outcome:  # it cannot be created
                return created
            person = yield from create(ctx, PERSON, user_id, created)
        elif person.via == "created" and user_id is not None:  # an earlier event's create
            landed_create_fields(ctx, person, user_id)
        # Its records' origins: from this event, the state, or one listing.
        key = origins_key(kind.name, person.id)
        if key in (origins := ctx.learned.lead_origins):  # this event's (created, merged, listed)
            here = origins[key]
            done = None if here is None else origin in here
        else:
            done = ctx.known.has_origin(key, origin)  # None: nobody has listed them yet
        if done is None:
            note = f"list {kind.plural} of person {person.id} ({person.how}) once, to skip "
            note += f"{kind.plural} sent before"
            pages = list_origins(kind, person, stage=f"list {kind.plural}", note=note)
            while (asked := pages.request) is not None:
                pages.take((yield asked))
            origins = pages.result
            ctx.learning().lead_origins[key] = origins
            done = origin in origins
        if done:
            return ctx.outcome("skipped", "already done")
        body = {**body, **person_links(ctx, kind.name, person)}
        yield from create_record(ctx, kind, person, body, origin, name)
        return ctx.finish()
    except (Stale, PlanFailure) as signal:
        return ctx.ended(signal) or (yield from plan(ctx))


# --- bodies ----------------------------------------------------------------------------------


def title_of(rule: TrackRule | None, ctx: Ctx, name: str) -> str:
    """The rule's title rendered (plain text), else the event name; empty renders as the name."""
    if rule is None or rule.title is None:
        return name
    return rule.title.render(ctx.event).strip() or name


def properties_body(
    ctx: Ctx, rule: TrackRule | None, kind: fields.Kind, setting: str, title: str = ""
) -> dict[str, Any]:
    """A lead's or deal's (`kind`) fields from the event's properties by the rule's mapping, else
    the config's (its attribute `setting`); in the currency property, else default_currency,
    where one is used (checked there)."""
    config = ctx.config
    found = ctx.event.raw.get("properties")
    properties = found if type(found) is dict or isinstance(found, Mapping) else NOTHING
    if properties is NOTHING and found is not None and found != "":
        ctx.warnings.append(not_an_object("properties", found))
    mapping = getattr(config, setting) if rule is None or rule.fields is None else rule.fields
    key = (setting, id(mapping))
    table = config.compiled.get(key) or compiled_mapping(mapping, config, kind, key)
    currency = properties.get("currency")
    return mapped_values(
        (properties,), table, config, ctx.warnings, currency, ctx.dropped, NOTHING, title
    )


def lead_body(ctx: Ctx, rule: TrackRule | None, name: str) -> tuple[dict[str, Any], str]:
    """Everything of the lead but its person; mapped custom fields first, standard keys win."""
    body = properties_body(ctx, rule, LEAD_KIND, "lead_fields", title_of(rule, ctx, name))
    body["origin_id"] = origin = ORIGIN_PREFIX + ctx.event.id
    return body, origin


def deal_body(ctx: Ctx, rule: TrackRule | None, name: str) -> tuple[dict[str, Any], str]:
    """A v2 deal: as a lead's body (value, close date, mapped fields), with the rule's pipeline
    and stage; custom fields in `custom_fields`, after them."""
    assert rule is not None
    mapped = properties_body(ctx, rule, DEAL_KIND, "deal_fields")
    custom = mapped.pop("custom_fields", None)
    body = {"title": title_of(rule, ctx, name), **mapped}
    pipeline = rule.pipeline_id if rule.pipeline_id is not None else rule.pipeline
    stage = rule.stage_id if rule.stage_id is not None else rule.stage
    # Offline, a name no listing resolved shows as a placeholder, as ids of records do.
    if pipeline is not None:
        body["pipeline_id"] = pipeline if isinstance(pipeline, int) else f"{{pipeline:{pipeline}}}"
    if stage is not None:
        body["stage_id"] = stage if isinstance(stage, int) else f"{{stage:{stage}}}"
    if custom:
        body["custom_fields"] = custom
    body["origin_id"] = origin = ORIGIN_PREFIX + ctx.event.id
    return body, origin


def with_marker(content: str, mark: str) -> str:
    """The marker at the end of an HTML text, in a paragraph of its own."""
    return f"{content}<p>{mark}</p>" if content else mark


def activity_body(ctx: Ctx, rule: TrackRule | None, name: str) -> tuple[dict[str, Any], str]:
    assert rule is not None
    event = ctx.event
    mark = marker(event.id)
    body: dict[str, Any] = {"subject": title_of(rule, ctx, name)}
    kind = rule.type_key or rule.type
    if kind is not None:
        body["type"] = kind
    when = event_time(event)
    if when is not None:
        body["due_date"] = when.date().isoformat()  # YYYY-MM-DD, a year below 1000 too
        body["due_time"] = f"{when.hour:02d}:{when.minute:02d}"  # not strftime: 4x the time
    else:
        unreadable_time(ctx, "the activity has no due date")
    if rule.done is not None:
        body["done"] = rule.done
    content = "" if rule.content is None else rule.content.render(event, escape=True)
    body["note"] = with_marker(content, mark)
    return body, mark


def note_body(ctx: Ctx, rule: TrackRule | None, name: str) -> tuple[dict[str, Any], str]:
    assert rule is not None
    event = ctx.event
    mark = marker(event.id)
    if rule.content is not None:
        content = rule.content.render(event, escape=True)
    else:
        content = default_note(name, event.raw.get("properties"))
    body: dict[str, Any] = {"content": with_marker(content, mark)}
    when = event_time(event)
    if when is not None:  # v1 notes: "YYYY-MM-DD HH:MM:SS" in UTC (no offset, no fraction)
        body["add_time"] = when.isoformat(" ", "seconds")[:19]
    else:
        unreadable_time(ctx, "the note is dated when it is sent")
    return body, mark


def unreadable_time(ctx: Ctx, instead: str) -> None:
    """Say so when an event has a time but none can be read (an event without one, or with Go's
    zero time, says nothing: it has no time to lose)."""
    for path in TIME_PATHS:
        value = ctx.event.raw.get(path)
        if value is not None and value != "" and fields.time_text(value) is None:
            ctx.warnings.append(fields.bad_value(path, value, f"is not a date or time; {instead}"))
            return


def default_note(name: str, properties: Any) -> str:
    """The event name and its `properties` (when an object) as a short list (HTML, values
    escaped)."""
    escape = html.escape
    items = "".join(
        f"<li>{escape(str(key))}: {escape(template_text(value))}</li>"
        for key, value in (properties.items() if isinstance(properties, Mapping) else ())
        if value is not None and value != ""
    )
    return f"<p>{escape(name)}</p>" + (f"<ul>{items}</ul>" if items else "")


BODIES: Mapping[str, Callable[[Ctx, TrackRule | None, str], tuple[dict[str, Any], str]]] = {
    "lead": lead_body,
    "deal": deal_body,
    "activity": activity_body,
    "note": note_body,
}


def person_links(ctx: Ctx, kind: str, person: Ref) -> dict[str, Any]:
    """How a record of `kind` names its person; a deal, activity or note also the person's
    organization when this run knows it (no request is made to learn it)."""
    if kind == "activity":
        links: dict[str, Any] = {"participants": [{"person_id": person.id, "primary": True}]}
    else:
        links = {"person_id": person.id}
    if kind != "lead":
        org = ctx.learned.memberships.get(person.id)
        if org is None:
            org = ctx.known.person_org(person.id)
        if org is not None:
            links["org_id"] = org
    return links


# --- exactly once ----------------------------------------------------------------------------


def list_origins(
    kind: Kind, person: Ref, *, stage: str, note: str, ended: Callable[[list[str]], Any] = frozenset
) -> Pages[str]:
    """The origins of the person's records of `kind` (leads: archived ones included, SPEC 1), as
    `Pages` whose `result` is `ended` of them (by default their frozenset)."""
    query: dict[str, str | int] = {"person_id": person.id}
    if not kind.offset:
        query["limit"] = LIST_LIMIT

    def read(response: ApiResponse, stage: str) -> list[str]:
        if response.status in GONE:  # the person listed about is gone
            raise gone(PERSON, person, response, stage)
        return [found for record in listed(response, stage) for found in kind.origins(record)]

    return Pages(
        kind.listings[0],
        query,
        stage=stage,
        note=note,
        read=read,
        offset=kind.offset,
        more=tuple((path, f"{note} (archived {kind.plural})") for path in kind.listings[1:]),
        ended=ended,
    )


def create_record(
    ctx: Ctx,
    kind: Kind,
    person: Ref,
    body: Mapping[str, Any],
    origin: str,
    name: str,
) -> Step[None]:
    """POST the record; an unknown outcome is settled by listing the person's records of its
    kind and looking for its origin."""
    stage, key = f"create {kind.name}", origins_key(kind.name, person.id)
    note = f"create {kind.name} {shown(body, name)!r} for person {person.id} ({person.how})"

    def answered(
        _c: Ctx, _e: None, _o: None, _r: ApiRequest, response: ApiResponse, _lost: str
    ) -> bool:
        """Made, or (False) refused for the person's organization as known: gone, deleted or
        merged away behind rpd's back (perhaps known from an earlier run)."""
        if response.status == 400 and "org_id" in body and "organization" in response.error.lower():
            return False
        return record_made(person, stage, response)

    def unknown(_c: Ctx, _e: None, _o: None, _r: ApiRequest) -> Unknown:  # an answer lost: rare
        def landed(found: list[str]) -> bool | None:
            origins = ctx.learning().lead_origins
            listed = origins.get(key)  # a complete listing: this event's list now
            origins[key] = frozenset(found) if listed is None else listed.union(found)
            return True if origin in found else None

        def settle(_sent_at: str) -> Pages[str]:
            note = (
                f"create {kind.name} outcome unknown: look for {quoted(origin)} among the "
                f"person's {kind.plural}"
            )
            stage = f"reconcile {kind.name}"
            return list_origins(kind, person, stage=stage, note=note, ended=landed)

        def left(_lost: str) -> None:  # its records are not known any more: the next lists
            ctx.learning().lead_origins[key] = None

        return settle, left, f"no {kind.name} with {quoted(origin)} appeared"

    while True:  # twice at most: the second time without the organization
        request = ApiRequest("POST", kind.endpoint, kind.endpoint, stage, None, body, note)
        made = write_once(ctx, request, (yield request), answered, unknown, None, None)
        if type(made) is WriteOnce:  # its answer lost: the loop settles it
            while (asked := made.request) is not None:
                made.take((yield asked))
            made = made.result
        if made:
            break
        # Forgotten, for later events and runs, and the record made without it.
        ctx.learning().memberships[person.id] = None
        ctx.warnings.append(
            Warned(
                f"organization {body['org_id']} of person {person.id} not found: {kind.name} "
                "made without it"
            )
        )
        body = {k: v for k, v in body.items() if k != "org_id"}
    ctx.writes += (f"{kind.plural} created",)
    # This event's list, with the record, when it has one; else only the record's origin (a
    # delta: the cache adds it where the person's list is known complete, core/identity_cache.py).
    origins = ctx.learning().lead_origins
    listed = origins.get(key)
    origins[key] = Added((origin,)) if listed is None else listed | {origin}


def record_made(person: Ref, stage: str, response: ApiResponse, _lost: str = "") -> bool:
    """Read the answer to a track's create: a 2xx created it, whatever the answer holds."""
    if 200 <= response.status < 300:  # most answers
        return True
    # A cached person merged or deleted behind our back: Pipedrive's answer for a record on a
    # missing person is not documented (the sandbox: a 400 naming person_id).
    refused_person = response.status == 400 and "person" in response.error.lower()
    if response.status in GONE or (refused_person and person.via in KEPT):
        raise gone(PERSON, person, response, stage)
    expect(response, stage)
    return True


def shown(body: Mapping[str, Any], name: str) -> str:
    """What a request's note calls the record: its title or subject, else its event's name."""
    for key in ("title", "subject"):
        value = body.get(key)
        if type(value) is str or isinstance(value, str):  # most: a str, no call
            return str(value)
    return name
