"""alias: merge the previous person into the current one, or re-key it; never create."""

from __future__ import annotations

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.fields import Traits
from rudder_pipedrive_cli.core.plans.common import (
    GONE,
    PERSON,
    Ctx,
    Ref,
    Step,
    entity_body,
    expect,
    find,
    gone,
    merge_done,
    merge_landed,
    require_field,
    update,
    with_identity,
    write_once,
)
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome

NEITHER = "alias: neither previous nor current person found"


def plan(ctx: Ctx) -> Step[Outcome]:
    event = ctx.event
    previous_id, user_id = event.previous_id, event.user_id
    if previous_id is None and "prev_person_id" not in event.external:
        raise PlanFailure(
            "alias needs a previousId or a prev_person_id external id", stage="validate"
        )
    if user_id is None and "curr_person_id" not in event.external:
        raise PlanFailure("alias needs a userId or a curr_person_id external id", stage="validate")
    traits = Traits.of(event.raw, "traits", "context.traits")
    previous = yield from find(ctx, PERSON, previous_id, "prev_person_id")
    current = yield from find(ctx, PERSON, user_id, "curr_person_id")
    if previous is not None and current is not None:
        if previous.id != current.id:
            yield from merge(ctx, previous, current)
        elif current.id in ctx.ledger.merged.values():
            # One person because a merge into it, left unknown (by this alias in a run that was
            # killed, say), was found done just now: the merge this alias asks for.
            ctx.ledger.wrote = True
        survivor = current
    elif previous is not None and user_id is not None:
        # Only the previous person exists: it becomes the userId's person.
        body = entity_body(ctx, PERSON, traits, create=False)
        body = with_identity(body, require_field(ctx, PERSON, user_id), user_id)
        note = f"re-key person {previous.id} ({previous.how}) to userId {user_id}"
        yield from update(ctx, PERSON, previous, body, stage="update person", note=note)
        survivor = previous
    elif current is not None:
        body = entity_body(ctx, PERSON, traits, create=False)
        if body:
            note = f"update person {current.id} ({current.how}; previous not found)"
            yield from update(ctx, PERSON, current, body, stage="update person", note=note)
        survivor = current
    else:
        raise PlanFailure(NEITHER, stage="lookup person")
    for key in (previous_id, user_id):
        if key is not None and (previous is not None or key == user_id):
            ctx.ledger.learn(PERSON, key, survivor)
    return ctx.ledger.finish()


def merge(ctx: Ctx, previous: Ref, current: Ref) -> Step[None]:
    """PUT the merge; an unknown outcome is settled by asking whether the previous person is
    still there (gone: the merge is done)."""
    stage = "merge persons"

    def answered(response: ApiResponse, lost: str) -> bool:
        if not lost:  # answered, never in doubt: no mark is left to settle
            ctx.ledger.merging[previous.id] = None
        # Which person is missing: the survivor when the answer names merge_with_id (the sandbox
        # says so with a 400), else the person in the URL.
        survivor_missing = "merge_with_id" in response.error and (
            response.status in GONE or (response.status == 400 and current.via == "cache")
        )
        if survivor_missing:
            raise gone(PERSON, current, response, stage)
        if response.status in GONE:
            raise gone(PERSON, previous, response, stage)
        expect(response, stage)
        return True

    def settle(_response: ApiResponse) -> Step[bool | None]:
        still = yield from merge_landed(previous.id, current.id)
        if still is not None and still.status in GONE:  # the survivor is the one that went away
            raise gone(PERSON, current, still, stage)
        return None if still is None else True

    def left(_lost: str) -> None:  # later events that find the previous person settle it first
        ctx.ledger.merging[previous.id] = current.id

    request = ApiRequest(
        method="PUT",
        path=f"/v1/persons/{previous.id}/merge",
        endpoint="/v1/persons/{id}/merge",
        stage=stage,
        body={"merge_with_id": current.id},
        note=f"merge person {previous.id} ({previous.how}) into {current.id} ({current.how})",
        merges=(previous.id, current.id),
    )
    what = f"person {previous.id} is still there"
    yield from write_once(ctx, request, answered=answered, settle=settle, left=left, what=what)
    ctx.ledger.wrote = True
    merge_done(ctx, previous.id, current.id)
