"""alias: merge the previous person into the current one, or re-key it; never create."""

from __future__ import annotations

from typing import Any

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import Event, quoted
from rudder_pipedrive_cli.core.fields import PERSON_TRAITS
from rudder_pipedrive_cli.core.plans.common import (
    GONE,
    KEPT,
    PERSON,
    Ctx,
    MergeCheck,
    MergedAway,
    Ref,
    Stale,
    Step,
    Unknown,
    WriteOnce,
    entity_body,
    expect,
    find,
    gone,
    known_ref,
    merge_done,
    person_check,
    require_field,
    update,
    updated,
    with_identity,
    write_once,
)
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome

NEITHER = "alias: neither previous nor current person found"
# The merge this alias asks for was found done, not made now: by a run that was killed or whose
# answer was lost (issue 14 item 11: a resumed run reported such an alias `sent`, no write made).
MERGED_BEFORE = "merged in an earlier run"
MERGE = "/v1/persons/{id}/merge"


def invalid(event: Event) -> str | None:
    """Why the event cannot be planned, whatever Pipedrive holds (see `INVALID`)."""
    if event.previous_id is None and "prev_person_id" not in event.external:
        return "alias needs a previousId or a prev_person_id external id"
    if event.user_id is None and "curr_person_id" not in event.external:
        return "alias needs a userId or a curr_person_id external id"
    return None


def plan(ctx: Ctx) -> Step[Outcome]:
    try:
        event = ctx.event
        if (why := invalid(event)) is not None:  # the handler's first question
            return ctx.outcome("failed", why, "validate")
        previous_id, user_id = event.previous_id, event.user_id
        merged_before, away = False, None
        try:
            previous = known_ref(ctx, PERSON, previous_id, "prev_person_id")
        except MergedAway as merged_away:
            # Its previous person is merged already: the merge an alias asks for is done, as its
            # PUT refused 404 said when it was made (`merge`), now without asking.
            previous, away = None, merged_away
        if "curr_person_id" in event.external:  # refused before any request if merged away
            known_ref(ctx, PERSON, user_id, "curr_person_id")
        if away is None:
            previous = previous or (yield from find(ctx, PERSON, previous_id, aliased=False))
        # Its previous person found, its userId not found is new (this alias re-keys that person),
        # not one a later alias of the input merged away into another person; unless the input's
        # aliases lead it to that very person (a rerun without the state: they made them one).
        into = None if previous is None else previous.id
        current = known_ref(ctx, PERSON, user_id, "curr_person_id") or (
            yield from find(ctx, PERSON, user_id, into=into)
        )
        if away is not None:
            if current is None:  # nothing to take the previous person's userId: refused
                raise away
            previous, merged_before = current, True
        if previous is not None and current is not None:
            if previous.id != current.id:
                merged_before = not (yield from merge(ctx, previous, current))
            elif current.id in ctx.learned.merged.values():
                # One person because a merge into it, left unknown (by this alias in a run that was
                # killed, say), was found done just now: the merge this alias asks for.
                merged_before = True
            survivor = current
        elif previous is not None or current is not None:  # one of them: it takes the traits
            body = entity_body(ctx, PERSON, PERSON_TRAITS, create=False)
            if current is None:  # only the previous person: it becomes the userId's person
                if previous is None or user_id is None:  # a curr_person_id external id is found
                    return ctx.outcome("failed", NEITHER, "lookup person")  # without asking
                body = with_identity(body, require_field(ctx, PERSON, user_id), user_id)
                survivor = previous
                note = f"re-key person {previous.id} ({previous.how}) to userId {quoted(user_id)}"
            else:
                survivor = current
                note = f"update person {current.id} ({current.how}; previous not found)"
            if body and (request := update(ctx, PERSON, survivor, body, "update person", note)):
                once = updated(ctx, PERSON, survivor, request, (yield request))
                while (asked := once.request) is not None:
                    once.take((yield asked))
        else:
            return ctx.outcome("failed", NEITHER, "lookup person")
        for key in (previous_id, user_id):
            if key is not None and (previous is not None or key == user_id):
                ctx.learn(PERSON, key, survivor)
        slot = (PERSON.kind, survivor.id)
        if ctx.known.rekeyed and (held := ctx.known.holders.get(slot)):
            # Its userIds are one person's: each is its survivor's own (SPEC 5), beside those the
            # mark named; not another the mark left searched (`IdentityStore.owned`).
            named = (key for key in (*held, previous_id, user_id) if key is not None)
            ctx.taught().holders = {slot: tuple(dict.fromkeys(named))}
        if merged_before and not ctx.writes:
            return ctx.outcome("unchanged", MERGED_BEFORE)
        return ctx.finish()
    except (Stale, PlanFailure) as signal:
        return ctx.ended(signal) or (yield from plan(ctx))


def merge(ctx: Ctx, previous: Ref, current: Ref) -> Step[bool]:
    """PUT the merge; an unknown outcome is settled by asking whether the previous person is
    still there (gone: the merge is done). False: not made now, found done before (the previous
    person, found by search, is gone while the survivor is there: SPEC 5's done)."""
    stage = "merge persons"
    # The survivor as Pipedrive gives it: the merge's answer, or the `MergeCheck` that read it.
    said: list[Any] = [None]

    def answered(
        _c: Ctx, _e: None, _o: None, _r: ApiRequest, response: ApiResponse, lost: str
    ) -> bool:
        if not lost:  # answered, never in doubt: no mark is left to settle
            ctx.learning().pending_merges[previous.id] = None
        # Which person is missing: the survivor when the answer names merge_with_id (the sandbox
        # says so with a 400), else the person in the URL.
        # The cache and the identity index may be long out of date: a person they gave that is
        # gone is planned again (plans/__init__), as someone else may have merged it elsewhere.
        survivor_missing = "merge_with_id" in response.error and (
            response.status in GONE or (response.status == 400 and current.via in KEPT)
        )
        if survivor_missing:
            raise gone(PERSON, current, response, stage)
        if response.status in GONE and previous.via not in KEPT:
            return False  # gone though a search just found it (its index lags a merge): below
        if response.status in GONE:
            raise gone(PERSON, previous, response, stage)
        said[0] = expect(response, stage).data
        return True

    path, body = f"/v1/persons/{previous.id}/merge", {"merge_with_id": current.id}
    note = f"merge person {previous.id} ({previous.how}) into {current.id} ({current.how})"
    pair = (previous.id, current.id)
    request = ApiRequest("PUT", path, MERGE, stage, None, body, note, None, pair)

    def unknown(_c: Ctx, _e: None, _o: None, _r: ApiRequest) -> Unknown:  # an answer lost: rare
        def settle(_sent_at: str) -> MergeCheck:  # the survivor gone too: the one that went away
            check = said[0] = MergeCheck(
                *pair, lambda gone_too: gone(PERSON, current, gone_too, stage)
            )
            return check

        def left(_lost: str) -> None:  # later events that find the previous person settle it first
            ctx.learning().pending_merges[previous.id] = current.id

        return settle, left, f"person {previous.id} is still there"

    made = write_once(ctx, request, (yield request), answered, unknown, None, None)
    if type(made) is WriteOnce:  # its answer lost: the loop settles it
        while (asked := made.request) is not None:
            made.take((yield asked))
        made = made.result
    if made:
        ctx.writes += ("merges",)
    else:  # done earlier if the survivor is there, as a merge left unknown is settled
        there = yield person_check(
            current.id, f"person {previous.id} is gone: is the survivor there?"
        )
        if there.failed is not None:
            raise there.failed
        if there.status in GONE:
            raise gone(PERSON, current, there, stage)
        said[0] = expect(there, "reconcile merge").data
    if type(said[0]) is MergeCheck:  # found done: not answered again since
        said[0] = said[0].survivor
    merge_done(ctx, previous.id, current.id, said[0])
    return bool(made)
