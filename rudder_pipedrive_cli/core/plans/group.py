"""group: find or create the organization, then make the person (found or created) belong to it."""

from __future__ import annotations

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.fields import TRAITS
from rudder_pipedrive_cli.core.plans.common import (
    KEPT,
    ORG,
    PERSON,
    Ctx,
    Stale,
    Step,
    create,
    entity_body,
    find,
    known_ref,
    landed_create_fields,
    named_by_external,
    person_create_body,
    refresh,
    require_field,
    stale,
    update,
    updated,
    with_identity,
)
from rudder_pipedrive_cli.core.protocol import Outcome


def invalid(event: Event) -> str | None:
    """Why the event cannot be planned, whatever Pipedrive holds (see `INVALID`)."""
    if event.group_id is None and "org_id" not in event.external:
        return "group needs a groupId or an org_id external id"
    if event.user_id is None and "person_id" not in event.external:
        return "group needs a person: a userId or a person_id external id"
    return None


def plan(ctx: Ctx) -> Step[Outcome]:
    try:
        event = ctx.event
        if (why := invalid(event)) is not None:  # the handler's first question
            return ctx.outcome("failed", why, "validate")
        group_id, user_id = event.group_id, event.user_id
        # Look up and validate everything before writing, so an event that must fail has no effects.
        # What is known without asking first: a person's external id a merge moved away refuses
        # the event before the organization is searched.
        known_org = known_ref(ctx, ORG, group_id, "org_id")
        person = known_ref(ctx, PERSON, user_id, "person_id")
        org = known_org or (yield from find(ctx, ORG, group_id))
        person = person or (yield from find(ctx, PERSON, user_id))
        if person is None:
            assert user_id is not None  # find() answers None only after searching a userId
            new_person = person_create_body(ctx, user_id)
            if type(new_person) is Outcome:  # it cannot be created
                return new_person
        elif person.via == "created" and user_id is not None:  # an earlier event's create
            landed_create_fields(ctx, person, user_id)
        if org is None:
            assert group_id is not None  # find() answers None only after searching a groupId
            org_body = entity_body(ctx, ORG, (TRAITS,), create=True)
            if "name" not in org_body:  # nor a trait mapped to name
                unnamed = "cannot create organization without a name"
                return ctx.outcome("failed", unnamed, "create organization")
            org_body = with_identity(org_body, require_field(ctx, ORG, group_id), group_id)
            org = yield from create(ctx, ORG, group_id, org_body)
        elif org.via != "created":  # created by an earlier round of this plan, with these fields
            if request := refresh(ctx, ORG, org, group_id, (TRAITS,)):
                once = updated(ctx, ORG, org, request, (yield request))
                while (asked := once.request) is not None:
                    once.take((yield asked))
            named_by_external(ctx, ORG, org, group_id)  # once Pipedrive took the update
        if person is None:  # a new person joins the organization in its create: no second request
            assert user_id is not None and type(new_person) is not Outcome  # as made above
            yield from create(ctx, PERSON, user_id, {**new_person, "org_id": org.id})
        elif ctx.learned.memberships.get(person.id, ctx.known.org_this_run(person.id)) != org.id:
            # Link the person, not known to belong there already (an earlier run's link is not
            # trusted: Pipedrive may have moved the person since, and a PATCH is idempotent).
            note = f"link person {person.id} ({person.how}) to organization {org.id} ({org.how})"
            try:
                body = {"org_id": org.id}
                # None: a later event wrote the person's organization (or this PATCH was made
                # before a stale cache hit planned the event again: the membership is noted).
                if request := update(ctx, PERSON, person, body, "link person", note):
                    once = updated(ctx, PERSON, person, request, (yield request))
                    while (asked := once.request) is not None:
                        once.take((yield asked))
                    ctx.learning().memberships[person.id] = org.id
            except PlanFailure as failure:
                # Refused while the organization came from the cache or the index: it may be gone;
                # search again.
                if org.via in KEPT and org.key is not None and failure.status in (400, 404, 410):
                    raise stale(ORG, org.key, org) from failure
                raise
        return ctx.finish()
    except (Stale, PlanFailure) as signal:
        return ctx.ended(signal) or (yield from plan(ctx))
