"""identify: update the person found by userId (or external id), or create it."""

from __future__ import annotations

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.fields import PERSON_TRAITS
from rudder_pipedrive_cli.core.plans.common import (
    PERSON,
    Ctx,
    Stale,
    Step,
    create_person,
    entity_body,
    find,
    known_ref,
    person_create_body,
    require_field,
    update,
    updated,
    with_identity,
)
from rudder_pipedrive_cli.core.protocol import Outcome

NEEDS = "identify needs a userId or a person_id external id"


def plan(ctx: Ctx) -> Step[Outcome]:
    try:
        event = ctx.event
        user_id = event.user_id
        if user_id is None and "person_id" not in event.external:
            return ctx.outcome("failed", NEEDS, "validate")
        person = known_ref(ctx, PERSON, user_id, "person_id") or (
            yield from find(ctx, PERSON, user_id)
        )
        if person is None:
            assert user_id is not None  # find() answers None only after searching a userId
            created = person_create_body(ctx, user_id, PERSON_TRAITS)
            if type(created) is Outcome:  # it cannot be created
                return created
            yield from create_person(ctx, user_id, created)
            return ctx.finish()
        body = entity_body(ctx, PERSON, PERSON_TRAITS, create=False)
        # The userId the external id names a person for (None when found another way).
        named = user_id if person.via == "external" else None
        if named is not None and ctx.config.user_id_field:
            body = with_identity(body, require_field(ctx, PERSON, named), named)
        if body:
            note = f"update person {person.id} ({person.how})"
            if request := update(ctx, PERSON, person, body, "update person", note):
                once = updated(ctx, PERSON, person, request, (yield request))
                while (asked := once.request) is not None:
                    once.take((yield asked))
        if named is not None:
            # The external id names this userId's person (now that Pipedrive took the update):
            # record it there and in the cache.
            ctx.learn(PERSON, named, person)
        return ctx.finish()
    except (Stale, PlanFailure) as signal:
        return ctx.ended(signal) or (yield from plan(ctx))
