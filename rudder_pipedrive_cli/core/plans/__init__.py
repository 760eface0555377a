"""Plans: one generator per event type, turning an `Event` into Pipedrive requests (SPEC 4).

`plan_event` is the entry point every shell uses (live, dry-run, tests): an event that needs no
request gets its `Outcome` itself, one that does its handler's generator.

Where SPEC 4 is silent, the plans choose:
- Dropped traits are trait paths as a mapping would name them: top-level keys, or dotted paths
  inside an object of which some paths are mapped. Identity keys (userId, id, previousId, groupId,
  anonymousId) and standard fields are never "dropped"; `owner_id` is (it is never sent).
- A mapped key goes in v2 `custom_fields` when the field listing says it is custom (without a
  listing: when it is a 40-hex hash); other keys (e.g. `job_title`) are top-level v2 fields.
  Leads (v1) take every mapped key top level; a monetary lead field is sent as the amount plus
  `<key>_currency`.
- emails/phones carry label "work"; visible_to must be 1, 3, 5 or 7 (else dropped, warned).
- A found organization with an external id and a groupId gets `group_id_field` = groupId, as
  identify does for persons; a found organization's PATCH carries name and visible_to too.
- Lead value: a non-numeric candidate (revenue "lots") is warned about and the next one used; an
  unknown label name is warned about and left out (the lead matters more than its label).
- group looks up both records and validates both bodies before its first write, so an event that
  must fail (unnamed organization, person not creatable) has no side effects.
- A track event a `skip` rule takes is skipped before its identity is looked at.
- A 404/410 on an id from the cache forgets it and plans the event again; a
  link refused (400/404) while the organization came from the cache is taken as a stale org.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.events import EXTERNAL_ID_TYPES, Event, get_parts, quoted
from rudder_pipedrive_cli.core.fields import CONTEXT_TRAITS, PERSON_TRAITS
from rudder_pipedrive_cli.core.identity_cache import IdentityStore, identities_of
from rudder_pipedrive_cli.core.index import IdentityIndex
from rudder_pipedrive_cli.core.intake import RULE_SKIPPED
from rudder_pipedrive_cli.core.plans import alias, group, identify, track
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import PERSON, Ctx, Step, entity_body, plan_ctx
from rudder_pipedrive_cli.core.protocol import Learned, Outcome, Planned

__all__ = ["identities_of", "makes_a_person", "plan_event"]

# page, screen and other types: one value for all (real archives are full of them).
UNSUPPORTED = Outcome(status="skipped", reason="unsupported type")

HANDLERS: Mapping[str, Callable[[Ctx], Step[Outcome]]] = {
    "identify": identify.plan,
    "group": group.plan,
    "alias": alias.plan,
    "track": track.plan,
}
# Why an event of each type cannot be planned whatever Pipedrive holds (None: it can). Each
# handler asks it first; plan_event asks it of an event that would wait for an earlier failed
# one, so that such an event fails with its own reason, not retryable, not held back.
INVALID: Mapping[str, Callable[[Event], str | None]] = {
    "identify": identify.invalid,
    "group": group.invalid,
    "alias": alias.invalid,
    "track": track.invalid,
}


NAMES = {"person": "userId", "org": "groupId", "person_id": "person", "event": "messageId"}


def plan_event(
    event: Event, config: PlanConfig, known: IdentityStore, index: IdentityIndex | None = None
) -> Planned:
    """The plan of one event: its `Outcome` when it needs no request (unsupported, anonymous,
    refused, no identity, held back), else a generator of requests that returns the event's
    `Outcome`: its handler's, the one generator level (which plans again itself on a stale
    cached id). It never raises for an event: what cannot be planned is its failed outcome.
    With an identity `index`, identities it covers are resolved from it, not by search."""
    if (kind := event.type) not in HANDLERS:
        return UNSUPPORTED
    # A track event its rule skips is left alone whatever its identity (missing, refused, held
    # back), as RudderStack's event filtering drops it before looking at it.
    if kind == "track":
        # Found once, here: its handler plans by it and dry-run names it (`Event.rule`).
        rule = event.rule = config.track_rules.match(event.raw.get("event"))
        if rule is not None and rule.create == "skip":
            return RULE_SKIPPED
    if event.refused is not None:  # an identity value that cannot be one (events.py)
        return event.refused
    has_identity = (
        event.user_id is not None
        or bool(event.external)
        # An alias with a previousId but no userId: its plan says what is missing, unless it is
        # anonymous (skipped like any anonymous event).
        or (kind == "alias" and event.previous_id is not None and event.anonymous_id is None)
    )
    if not has_identity:
        if event.anonymous_id is not None:
            return Outcome(status="skipped", reason="anonymous")
        reason = "event has no userId, anonymousId or external id"
        if get_parts(event.raw, ("context", "externalId")) is not None:
            reason += (
                f" (context.externalId holds none of the types {', '.join(EXTERNAL_ID_TYPES)})"
            )
        return Outcome(status="failed", reason=reason, stage="validate")
    if known.holding:  # an identity is held back: is this event about one?
        about = identities_of(event, known, config.aliases)
        waiting = [slot for slot in about if known.held_back(*slot)]
        if waiting:
            if (invalid := INVALID[kind](event)) is not None:  # its own reason, not the wait
                return Outcome(status="failed", reason=invalid, stage="validate")
            # An earlier event of this identity failed and may yet succeed: a rerun retries it
            # first, then this one, so the two take effect in input order (SPEC 5).
            kind, key = min(waiting)  # the same one named whatever the set's order
            return Outcome(
                status="failed",
                reason=f"an earlier event of {NAMES[kind]} {quoted(key)} failed: this one waits "
                "for it (a rerun tries that one first)",
                redacted=f"an earlier event of its {NAMES[kind]} failed: this one waits for it",
                stage="order",
                retryable=True,
                learned=Learned(held_back=about),
            )
    return HANDLERS[kind](plan_ctx(event, config, known, index))


def makes_a_person(config: PlanConfig) -> Callable[[Event], bool]:
    """Whether planning an event may make its userId's person when none is found, as its plan
    would (`AliasesRead`'s `names`), whatever Pipedrive holds: not an alias (it makes none), nor
    an event planned without a lookup (an unsupported type, a track a skip rule takes, an
    identity value refused, an invalid event), nor one whose traits give its person no name
    (`person_create_body`), nor any with create_persons off."""
    rules, known = config.track_rules, IdentityStore()

    def makes(event: Event) -> bool:
        kind = event.type
        if kind not in INVALID or kind == "alias" or event.refused is not None:
            return False
        if kind == "track":
            rule = rules.match(event.raw.get("event"))
            if rule is not None and rule.create == "skip":
                return False
        if not config.create_persons or INVALID[kind](event) is not None:
            return False
        paths = PERSON_TRAITS if kind == "identify" else (CONTEXT_TRAITS,)
        try:
            return "name" in entity_body(plan_ctx(event, config, known), PERSON, paths, create=True)
        except PlanFailure:  # a value it cannot send: its person is not made
            return False

    return makes
