"""track: a lead titled by the event name, for the person (found or created), exactly once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rudder_pipedrive_cli.core.errors import PlanFailure, Warned
from rudder_pipedrive_cli.core.fields import (
    LEAD_SHAPES,
    LEAD_STANDARD_KEYS,
    LEAD_WRITABLE,
    Shaping,
    Traits,
    date_part,
    dropped,
    lead_amount,
    lead_custom,
    lead_labels,
    lead_value,
    mapped_values,
    put_own,
    shape_standard,
    show,
    text,
)
from rudder_pipedrive_cli.core.plans.common import (
    GONE,
    PERSON,
    Ctx,
    Ref,
    Step,
    create_person,
    expect,
    find,
    gone,
    listed,
    listing,
    person_create_body,
    write_once,
)
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome

ORIGIN_PREFIX = "rpd:"


def plan(ctx: Ctx) -> Step[Outcome]:
    event = ctx.event
    title = text(event.raw.get("event"))
    if title is None:
        raise PlanFailure("track needs an event name (the lead title)", stage="validate")
    user_id = event.user_id
    if user_id is None and "person_id" not in event.external:
        raise PlanFailure(
            "track needs a person: a userId or a person_id external id", stage="validate"
        )
    lead = lead_body(ctx, Traits.of(event.raw, "properties"), title)
    person = yield from find(ctx, PERSON, user_id, "person_id")
    if person is None:
        if user_id is None:  # find() answers None only after searching a userId
            raise PlanFailure("track needs a person: a userId", stage="validate")
        body = person_create_body(ctx, user_id, Traits.of(event.raw, "context.traits"))
        person = yield from create_person(ctx, user_id, body)
    origins = yield from lead_origins(ctx, person)
    if lead["origin_id"] in origins:
        return ctx.ledger.outcome("skipped", "already done")
    yield from create_lead(ctx, person, {**lead, "person_id": person.id}, origins)
    return ctx.ledger.finish()


def lead_body(ctx: Ctx, properties: Traits, title: str) -> dict[str, Any]:
    """Everything of the lead but its person; mapped custom fields first, standard keys win."""
    config, warnings = ctx.config, ctx.ledger.warnings
    given = properties.get("currency")
    currency = config.default_currency if given is None else given  # checked where it is used
    mapped = mapped_values(properties, config.lead_fields, config, warnings, currency)
    # Without the field catalog (an offline dry-run) the labels were never listed either.
    listed = bool(config.field_types)
    shaping = Shaping(
        create=True,
        currency=currency,
        labels=config.lead_labels,
        warnings=warnings,
        listed=listed,
        on_invalid=config.on_invalid,
    )
    body = lead_custom(shape_standard(mapped, LEAD_SHAPES, shaping, LEAD_WRITABLE, config), config)
    body["title"] = title
    amount = lead_amount(properties, warnings)
    value = None if amount is None else lead_value(amount, currency, config, warnings)
    if value is not None:
        put_own(body, "value", value, config.lead_fields, warnings)
    close = properties.get("expected_close_date")
    if close is not None:
        day = date_part(close)
        if day is None:
            warnings.append(
                Warned(
                    f"expected_close_date = {show(close)} is not a date; left out",
                    "expected_close_date is not a date; left out",
                )
            )
        else:
            put_own(body, "expected_close_date", day, config.lead_fields, warnings)
    labels = properties.get("label_ids")
    if labels is not None:
        label_ids = lead_labels(labels, config.lead_labels, warnings, listed=listed)
        if label_ids:
            put_own(body, "label_ids", label_ids, config.lead_fields, warnings)
    body["origin_id"] = ORIGIN_PREFIX + ctx.event.id
    ctx.ledger.drop(dropped(properties, config.lead_fields, LEAD_STANDARD_KEYS))
    return body


def lead_origins(ctx: Ctx, person: Ref) -> Step[frozenset[str]]:
    """The origin_ids of the person's leads: from this event, the state, or one listing."""
    origins = ctx.ledger.lead_origins.get(person.id, ctx.known.lead_origins(person.id))
    if origins is None:
        note = f"list leads of person {person.id} ({person.how}) once, to skip leads sent before"
        origins = yield from list_origins(ctx, person, stage="list leads", note=note)
        ctx.ledger.lead_origins[person.id] = origins
    return origins


LEAD_LISTINGS = ("/v1/leads", "/v1/leads/archived")  # archived leads are only in the second


def list_origins(ctx: Ctx, person: Ref, *, stage: str, note: str) -> Step[frozenset[str]]:
    """The origin_ids of the person's leads, archived ones included (SPEC 1)."""
    found: set[str] = set()
    for path in LEAD_LISTINGS:
        leads = yield from listing(
            path,
            {"person_id": person.id},
            stage=stage,
            note=note if path == "/v1/leads" else f"{note} (archived leads)",
            read=listed,
            offset=True,
            gone_as=lambda response: gone(PERSON, person, response, stage),
        )
        found.update(lead["origin_id"] for lead in leads if isinstance(lead.get("origin_id"), str))
    return frozenset(found)


def create_lead(
    ctx: Ctx, person: Ref, body: Mapping[str, Any], origins: frozenset[str]
) -> Step[None]:
    """POST the lead; an unknown outcome is settled by listing the person's leads by origin_id."""
    stage = "create lead"
    origin = str(body["origin_id"])
    seen = set(origins)

    def answered(response: ApiResponse, _lost: str) -> bool:
        # A cached person merged or deleted behind our back: Pipedrive's answer for a lead on a
        # missing person is not documented (the sandbox: a 400 naming person_id).
        refused_person = response.status == 400 and "person" in response.error.lower()
        if response.status in GONE or (refused_person and person.via == "cache"):
            raise gone(PERSON, person, response, stage)
        expect(response, stage)  # a 2xx created it, whatever the answer holds
        return True

    def settle(_response: ApiResponse) -> Step[bool | None]:
        note = f"create lead outcome unknown: look for origin_id {origin} among the person's leads"
        listed = yield from list_origins(ctx, person, stage="reconcile lead", note=note)
        seen.update(listed)
        return True if origin in listed else None

    def left(_lost: str) -> None:  # its lead list is not known any more: the next track lists it
        ctx.ledger.lead_origins[person.id] = None

    request = ApiRequest(
        method="POST",
        path="/v1/leads",
        endpoint="/v1/leads",
        stage=stage,
        body=body,
        note=f"create lead {body['title']!r} for person {person.id} ({person.how})",
    )
    what = f"no lead with origin_id {origin} appeared"
    yield from write_once(ctx, request, answered=answered, settle=settle, left=left, what=what)
    ctx.ledger.wrote = True
    ctx.ledger.lead_origins[person.id] = frozenset(seen | {origin})
