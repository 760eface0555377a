"""identify: update the person found by userId (or external id), or create it."""

from __future__ import annotations

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.fields import PERSON_TRAITS
from rudder_pipedrive_cli.core.plans.common import (
    PERSON,
    Ctx,
    Stale,
    Step,
    create,
    find,
    known_ref,
    named_by_external,
    person_create_body,
    refresh,
    updated,
)
from rudder_pipedrive_cli.core.protocol import Outcome


def invalid(event: Event) -> str | None:
    """Why the event cannot be planned, whatever Pipedrive holds (see `INVALID`)."""
    if event.user_id is None and "person_id" not in event.external:
        return "identify needs a userId or a person_id external id"
    return None


def plan(ctx: Ctx) -> Step[Outcome]:
    try:
        if (why := invalid(ctx.event)) is not None:  # the handler's first question
            return ctx.outcome("failed", why, "validate")
        user_id = ctx.event.user_id
        person = known_ref(ctx, PERSON, user_id, "person_id") or (
            yield from find(ctx, PERSON, user_id)
        )
        if person is None:
            assert user_id is not None  # find() answers None only after searching a userId
            created = person_create_body(ctx, user_id, PERSON_TRAITS)
            if type(created) is Outcome:  # it cannot be created
                return created
            yield from create(ctx, PERSON, user_id, created)
            return ctx.finish()
        if request := refresh(ctx, PERSON, person, user_id, PERSON_TRAITS):
            once = updated(ctx, PERSON, person, request, (yield request))
            while (asked := once.request) is not None:
                once.take((yield asked))
        named_by_external(ctx, PERSON, person, user_id)  # once Pipedrive took the update
        return ctx.finish()
    except (Stale, PlanFailure) as signal:
        return ctx.ended(signal) or (yield from plan(ctx))
