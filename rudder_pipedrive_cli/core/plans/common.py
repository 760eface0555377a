"""What every plan shares: finding, creating and updating persons and organizations, writes that
survive unknown outcomes (SPEC 5), and reading Pipedrive's answers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Generic, Literal, TypeVar

from rudder_pipedrive_cli.core.errors import PlanFailure, Warned, after_attempts
from rudder_pipedrive_cli.core.events import Event, get_parts, json_word, path_parts, quoted
from rudder_pipedrive_cli.core.fields import (
    CONTEXT_TRAITS,
    ORG_KIND,
    PERSON_KIND,
    TEXT_LIMITS,
    Kind,
    compiled_mapping,
    mapped_values,
    parse_time,
    rfc3339,
)
from rudder_pipedrive_cli.core.identity_cache import (
    IdentityStore,
    ahead_of,
    identities_of,
    origins_key,
)
from rudder_pipedrive_cli.core.index import (
    IdentityIndex,
    IndexWait,
    id_order,
    identity_rows,
    record_key,
)
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import (
    EMPTY,
    LEFT_IN_FLIGHT,
    NEW,
    NEW_REQUEST,
    NOTHING_LEARNED,
    ApiRequest,
    ApiResponse,
    Learned,
    Outcome,
    OutcomeStatus,
    PdId,
    request_of,
)
from rudder_pipedrive_cli.core.recency import CUSTOM, UNTIMED, fresh, newest, stamp

T = TypeVar("T")
Step = Generator[ApiRequest, ApiResponse, T]
Via = Literal["external", "cache", "index", "search", "created"]

# A write whose outcome stays unknown this many times fails the event (retryable).
# Reconciliation lists records updated since the send time minus this much (clock skew).
RECONCILE_SLACK = timedelta(seconds=2)
LIST_LIMIT = 500
SEARCH = "/api/v2/itemSearch/field"
GONE = frozenset({404, 410})
SUPERSEDED = "superseded by a later event"
NO_ORIGINS: frozenset[str] = frozenset()  # a person's records listed or made: none (one value)


class Entity:
    """A Pipedrive record kind rpd resolves by an identity field: the data, not the decisions;
    what its requests and outcomes say is made once from its names. Immutable by convention."""

    __slots__ = ("body", "collection", "created", "fields", "identity", "item_endpoint", "kind",
                 "lookup", "noun", "plural", "searched", "setting", "updated")  # fmt: skip

    def __init__(
        self, kind: str, noun: str, plural: str, identity: str, setting: str, body: Kind
    ) -> None:
        self.kind = kind  # the kind in Learned.identities
        self.noun, self.plural = noun, plural  # itemSearch's entity_type is the noun
        self.identity = identity  # the RudderStack identity it is found by
        self.setting = setting  # the [identity] key naming its field (a PlanConfig attribute)
        self.fields = kind + "_fields"  # the PlanConfig attribute holding its mapping
        self.body = body  # its standard traits and fields (add_time apart: create only)
        self.collection = "/api/v2/" + plural
        self.item_endpoint = self.collection + "/{id}"  # what its requests say
        self.lookup = "lookup " + noun  # its search's stage
        self.searched = f"search {noun} by {identity} "  # its search's note, before the term
        self.created = plural + " created"  # what its creates make (Outcome.writes)
        self.updated = plural + " updated"  # and its updates


PERSON = Entity("person", "person", "persons", "userId", "user_id_field", PERSON_KIND)
ORG = Entity("org", "organization", "organizations", "groupId", "group_id_field", ORG_KIND)


@dataclass(slots=True)  # immutable by convention: see protocol.py; made by position when hot
class Ref:
    """A resolved record: its id, how it was found, and the identity it was resolved for (from
    the cache: the one the cache keeps it under, which a gone record is forgotten for)."""

    id: PdId
    via: Via
    key: str | None = None
    external: str = ""  # the external id type, when via == "external"

    @property
    def how(self) -> str:
        return f"{self.external} external id" if self.via == "external" else HOW[self.via]


# Where a resolved record may come from long out of date: the identity cache, and the identity
# index (a listing never shows a deleted record). Gone, it is searched again (`stale`).
KEPT = ("cache", "index")
HOW = {"cache": "cached", "index": "found in the index", "search": "found", "created": "created"}


class Stale(Exception):  # a signal between plan steps, not an error the user sees
    """`record`, which the cache or the index kept for `key`, is gone (404/410): forget it, for
    every identity this event took it for, and plan the event again. `listed`: the identity
    index gave it (a listing shows no deleted record: it goes out, once the search planned next
    has answered: `find`)."""

    def __init__(self, entity: Entity, key: str, record: PdId, listed: bool = False) -> None:
        super().__init__(f"cached {entity.noun} for {entity.identity} {key} is gone")
        self.entity = entity
        self.key = key
        self.record = record
        self.listed = listed


class Ctx:
    """One event's plan (`plan_ctx` makes it): the event, what it is planned with (config, cache,
    index), and what it has learned and decided so far, which becomes its Outcome. What it
    learned is the `Learned` its outcome hands over (`learned`), the shared `NOTHING_LEARNED`
    until its first write makes one of its own (`learning`, `taught`): most events learn
    nothing, and their outcome none."""

    __slots__ = ("_at", "config", "dropped", "event", "gone", "index", "known", "learned",
                 "resolved", "superseded", "warnings", "writes")  # fmt: skip
    warnings: list[str]
    dropped: list[str]
    learned: Learned  # NOTHING_LEARNED, or this plan's own: its outcome's `learned`
    # The identities resolved (None: forgotten), by the keys of `learned.identities`, made with it.
    resolved: dict[tuple[str, str], Ref | None]
    # What each write that landed made (Outcome.writes): "persons created", "deals created",
    # "persons updated", "merges"; added to in place, `ctx.writes += (...)`, no call.
    writes: tuple[str, ...]
    superseded: bool  # a write was left out whole: a later event wrote its fields
    gone: tuple[tuple[str, str, PdId], ...]  # (kind, key, record the index gave) found gone
    _at: str | None  # the event's recency stamp, once read (`at`)
    index: IdentityIndex | None  # the identity index, when identities go by index
    event: Event
    config: PlanConfig
    known: IdentityStore

    def taught(self) -> Learned:
        """This plan's own `Learned`, its tables still EMPTY till made (a write made it)."""
        if self.learned is NOTHING_LEARNED:
            self.learned = Learned()
        return self.learned

    def learning(self) -> Learned:
        """This plan's `Learned`, its tables its own to write to, the rarer at once (`merged`
        EMPTY till then); identities and field times, most events' only, are made alone too
        (learn, wrote_fields). Called at a write: a Learned made is handed over, empty or not."""
        learned = self.taught()
        if learned.merged is EMPTY:
            learned.lead_origins, learned.memberships, learned.merged = {}, {}, {}
            learned.pending_creates, learned.pending_merges = {}, {}
        if learned.identities is EMPTY:
            learned.identities, self.resolved = {}, {}
        if learned.recency is EMPTY:
            learned.recency = {}
        return learned

    def learn(self, entity: Entity, key: str, ref: Ref | None) -> None:
        """What this event found of an identity; None: forgotten (its cached id is gone)."""
        if self.resolved is EMPTY:
            self.taught().identities, self.resolved = {}, {}
        self.learned.identities[(entity.kind, key)] = None if ref is None else ref.id
        self.resolved[(entity.kind, key)] = ref

    def outcome(
        self,
        status: OutcomeStatus | None = None,
        reason: str = "",
        stage: str = "",
        failure: PlanFailure | None = None,
    ) -> Outcome:
        """The Outcome, with what this plan learned whatever the status (an id it created, a
        stale id: failed too); a plan refuses as a value ("failed", `reason`, `stage`); with a
        `failure`, failed, and when a retry could succeed, later events of its identities wait
        for it (held back). Without either, the plan's end: "sent" when a write landed, else
        "unchanged" (superseded when a write was left out whole). Its `Learned` is handed over,
        not copied: the plan is over when its outcome is made."""
        warnings, dropped = self.warnings, self.dropped
        if failure is None:
            http_status, retryable, redacted = None, False, None
            if status is None:
                status = "sent" if self.writes else "unchanged"
                reason = SUPERSEDED if self.superseded and not self.writes else ""
        else:
            if failure.status == 400:  # sent without its field listing?: see there
                failure = unconverted(self, failure)
            status, reason, stage = "failed", failure.reason, failure.stage
            http_status, retryable, redacted = failure.status, failure.retryable, failure.redacted
            if retryable:
                self.taught().held_back = identities_of(self.event, self.known, self.config.aliases)
        # None when it taught nothing: most outcomes then cost a few stores to make and nothing
        # to apply (IdentityStore.learn, the identity index).
        learned = self.learned
        outcome: Outcome = NEW(Outcome)  # each of Outcome's fields stored (protocol.py)
        outcome.status, outcome.reason, outcome.stage = status, reason, stage
        outcome.http_status, outcome.retryable, outcome.redacted = http_status, retryable, redacted
        # A plan re-run after a stale cache hit says the same things twice: say them once.
        outcome.warnings = tuple(dict.fromkeys(warnings)) if warnings else ()
        outcome.dropped = tuple(dropped) if dropped else ()
        outcome.writes = self.writes
        outcome.learned = None if learned is NOTHING_LEARNED else learned
        return outcome

    finish = outcome  # the plan's end: ctx.finish()

    def ended(self, signal: Stale | PlanFailure) -> Outcome | None:
        """How a plan ends on `signal`: after `Stale`, None, the gone id forgotten (never taken
        from the cache again, so a few rounds at most): the plan runs again with what it
        learned; else the failed outcome (`outcome`)."""
        if isinstance(signal, Stale):
            entity, record = signal.entity, signal.record
            if signal.listed:  # out of the index once searched (`find`)
                self.gone += ((entity.kind, signal.key, record),)
            # Every identity it was taken for: the one it was kept for, and a userId the input
            # aliases to that one, which took that one's cached person (`aliased_away`).
            keys = {signal.key} | {
                key
                for (kind, key), ref in self.resolved.items()
                if kind == entity.kind and ref is not None and ref.id == record
            }
            for key in sorted(keys):
                self.learn(entity, key, None)
                # What was said of the gone record (its ambiguity; taken for a userId the input
                # aliases): the plan planned next says its own.
                said, taken = ambiguity(entity, key, ""), aliased_lead(key)
                self.warnings = [
                    w for w in self.warnings if not (w.endswith(said) or w.startswith(taken))
                ]
            return None
        return self.outcome(failure=signal)

    @property
    def at(self) -> str:
        """The event's time as a recency stamp (core/recency.py), read once per event."""
        if self._at is None:
            self._at = stamp(self.event)
        return self._at


def plan_ctx(
    event: Event, config: PlanConfig, known: IdentityStore, index: IdentityIndex | None = None
) -> Ctx:
    """A new plan's `Ctx`: what it is planned with, nothing learned yet. One store a line: a
    store of several targets packs and unpacks a tuple, or swaps, first (6 bytecodes a plan)."""
    ctx: Ctx = NEW(Ctx)
    ctx.event = event
    ctx.config = config
    ctx.known = known
    ctx.index = index
    ctx.warnings = []
    ctx.dropped = []
    ctx.learned = NOTHING_LEARNED
    ctx.resolved = EMPTY
    ctx.writes = ()
    ctx.gone = ()
    ctx.superseded = False
    ctx._at = None
    return ctx


# A write refused for a value no listing converted: what a rerun with the listing may send.
UNCONVERTED = (
    "; its mapped values were sent without type conversion (the field listing failed): rerun "
    "once the listing works"
)
WRITES = ("create", "update")  # the verbs of the writes whose bodies hold mapped values
# A write's noun (its stage: "create deal") -> the field listing typing its body, and its table.
TYPED_BY: Mapping[str, tuple[str, str]] = {
    "person": ("persons", "person_fields"),
    "organization": ("organizations", "org_fields"),
    "lead": ("leads", "lead_fields"),
    "deal": ("leads", "deal_fields"),
}


def unconverted(ctx: Ctx, failure: PlanFailure) -> PlanFailure:
    """`failure`, retryable when it is a write's 400 and the event holds a value mapped for the
    written entity while its field listing gave no types (send's listing of it failed, with
    none saved: cli/send_catalog.py): the value went out as it was (an enum's label, not its
    option id), which the listing would have converted. Its identity's later events then wait
    for it (SPEC 5)."""
    config, raw = ctx.config, ctx.event.raw
    verb, _, noun = failure.stage.partition(" ")
    listing, table = TYPED_BY.get(noun, ("", ""))
    if verb not in WRITES or not listing:
        return failure
    if config.field_types and listing not in config.unlisted:  # listed: its values were typed
        return failure
    mappings = (getattr(config, table),)
    rules = (r.fields for r in config.track_rules.rules if r.create == noun and r.fields)
    sources = [
        source
        for source in (raw.get("traits"), get_parts(raw, CONTEXT_TRAITS), raw.get("properties"))
        if isinstance(source, Mapping)
    ]
    if not any(
        source.get(path) is not None or get_parts(source, path_parts(path)) is not None
        for mapping in (*mappings, *rules)
        for path in mapping
        for source in sources
    ):
        return failure
    return PlanFailure(
        failure.reason + UNCONVERTED,
        stage=failure.stage,
        status=failure.status,
        retryable=True,
        redacted=None if failure.redacted is None else failure.redacted + UNCONVERTED,
    )


# --- field recency ---------------------------------------------------------------------------


def times_of(ctx: Ctx, kind: str, record: PdId) -> Mapping[str, str]:
    """When each field of the record was last written: by this event, else as known (to read)."""
    slot = (kind, record)
    known, learned = ctx.known.times_at(slot), ctx.learned.recency.get(slot)
    return (known or EMPTY) if learned is None else newest(known or EMPTY, learned)


def wrote_fields(ctx: Ctx, entity: Entity, record: PdId, body: Mapping[str, Any]) -> None:
    """Note the body's fields as written to the record at the event's time (not its identity,
    nor add_time): its top-level keys and the keys of custom_fields."""
    at, identity, slot = ctx.at, getattr(ctx.config, entity.setting), (entity.kind, record)
    written: dict[str, str] = {}
    for key, value in body.items():  # a loop: quicker than dict.fromkeys and pops for a few keys
        if key == CUSTOM:
            for name in value:
                if name != identity:
                    written[name] = at
        elif key != identity and key != UNTIMED:
            written[key] = at
    if (recency := ctx.learned.recency) is EMPTY:  # made alone: most events learn nothing else
        recency = ctx.taught().recency = {}
    times = recency.get(slot)  # most records: none written yet this event
    recency[slot] = written if times is None else newest(times, written)


# --- reading answers -------------------------------------------------------------------------


def expect(response: ApiResponse, stage: str) -> ApiResponse:
    """The response when it is a success; otherwise the event fails with Pipedrive's words."""
    if 200 <= response.status < 300:  # `ok`, without a property call
        return response
    if response.unknown:
        raise PlanFailure(f"{stage}: outcome unknown", stage=stage, retryable=True)
    detail = f": {response.error}" if response.error else ""
    raise PlanFailure(
        f"{stage} refused: HTTP {response.status}{detail}",
        redacted=f"{stage} refused: HTTP {response.status}",  # Pipedrive's words may quote data
        stage=stage,
        status=response.status,
        retryable=response.status in (408, 409, 423, 429) or response.status >= 500,
    )


pd_id = record_key  # an id from an answer: ints stay ints, dry-run placeholders stay strings


def record_id(response: ApiResponse, stage: str) -> PdId:
    data = response.data
    found = pd_id(data.get("id")) if type(data) is dict or isinstance(data, Mapping) else None
    if found is None:
        raise PlanFailure(f"{stage}: the answer holds no id", stage=stage, retryable=True)
    return found


def listed(response: ApiResponse, stage: str) -> list[Mapping[str, Any]]:
    """The records of a search or listing answer. Only Pipedrive's success envelope whose `data`
    is a list of objects, or null (none), is read: anything else fails the event (retryable),
    since taken as "no records" it would make a duplicate (SPEC 4)."""
    if not 200 <= response.status < 300 or response.malformed:  # most: neither, and no call
        expect(response, stage)  # raises unless a 2xx: then it is malformed
        raise malformed(response, stage, response.malformed)
    data = response.data
    if data is None:
        return []
    if type(data) is not list:
        raise malformed(response, stage, f'"data" is {json_word(data)}, not a list')
    for item in data:
        if type(item) is not dict and not isinstance(item, Mapping):  # dicts: no ABC check
            raise malformed(response, stage, f'an item of "data" is {json_word(item)}')
    return data


def not_an_object(path: str, value: Any) -> Warned:
    """The warning that the event's `path` holds `value`, which is not an object: none of the
    fields there is read (an identify would end `unchanged` with nothing said of them)."""
    return Warned(
        f"{path} is {json_word(value)}, not an object: none of its values is read",
        f"{path} is not an object: none of its values is read",
    )


def malformed(response: ApiResponse, stage: str, why: str) -> PlanFailure:
    return PlanFailure(
        f"{stage}: Pipedrive's answer is malformed (HTTP {response.status}: {why}); not taken "
        "as no records: retry later",
        stage=stage,
        status=response.status,
        retryable=True,
    )


def hit_ids(response: ApiResponse, stage: str) -> list[PdId]:
    """Ids of itemSearch results, shaped `{"id", "name"}` or `{"result_score", "item": {...}}`
    (SPEC 1); a hit of neither shape makes the answer malformed."""
    ids: list[PdId] = []
    for hit in listed(response, stage):
        item = hit.get("item", hit)
        found = pd_id(item.get("id")) if isinstance(item, Mapping) else None
        if found is None:
            raise malformed(response, stage, "a hit holds no id")
        if found not in ids:
            ids.append(found)
    return ids


def lowest(ids: list[PdId]) -> PdId:
    return min(ids, key=id_order)  # as the identity index orders them


def next_cursor(additional: Any) -> str | None:
    if additional is None:  # most answers: no ABC check for None
        return None
    cursor = additional.get("next_cursor") if isinstance(additional, Mapping) else None
    return cursor if isinstance(cursor, str) and cursor else None


class Probe:
    """Requests read by plain functions (issue 12 item 2): `request`, the next to send (None:
    done, `result` holds what was learned); `take(response)` reads its answer. The plan, or the
    one generator it delegates to, yields them itself (`while (asked := probe.request) is not
    None: probe.take((yield asked))`): no step is a generator level. `Probe(result)`: known."""

    __slots__ = ("request", "result")

    def __init__(self, result: Any = None) -> None:
        self.request: ApiRequest | None = None
        self.result = result

    def take(self, response: ApiResponse) -> None:  # a probe that asked one request: its answer
        self.request, self.result = None, response


# The probe of an update settled by its first answer (`updated`): nothing more to ask; shared, as
# nothing is ever set on it (a probe whose `request` is None is not given answers).
SETTLED = Probe()


class Pages(Probe, Generic[T]):
    """Every page of a listing or search: each answer read by `read` (which refuses a malformed
    one) into `result`; v2 pages by `cursor`, v1 (`offset`) by `start` and `limit`, a listing
    that does not page (not `paged`: v1's lead labels and activity types, which take no
    parameter) is its first answer whatever that says; then the `more` (path, note) pairs the
    same way (archived leads); `ended` turns the items read into `result` at the end."""

    __slots__ = (
        "ended", "more", "note", "offset", "paged", "path", "query", "read", "seen", "stage",
        "start",
    )  # fmt: skip

    def __init__(
        self,
        path: str,
        query: dict[str, Any],
        *,
        stage: str,
        note: str,
        read: Callable[[ApiResponse, str], list[T]],
        offset: bool = False,
        paged: bool = True,
        more: tuple[tuple[str, str], ...] = (),
        ended: Callable[[list[T]], Any] | None = None,
    ) -> None:
        super().__init__([])
        self.path, self.query, self.stage, self.note, self.read = path, query, stage, note, read
        self.offset, self.paged, self.more, self.ended = offset, paged, more, ended
        self.start = 0
        self.seen: set[str] | None = None  # the cursors of this listing, from its second page on
        self.request = self.page(None)

    def page(self, cursor: str | None) -> ApiRequest:
        query = self.query  # most listings are one page
        if self.offset:
            query = {**query, "start": self.start, "limit": LIST_LIMIT}
        elif cursor:
            query = {**query, "cursor": cursor}
        return ApiRequest("GET", self.path, self.path, self.stage, query, None, self.note)

    def take(self, response: ApiResponse) -> None:
        if response.failed is not None:  # the transport gave up: this event fails
            raise response.failed
        self.result.extend(self.read(response, self.stage))
        cursor = None
        if self.offset:  # v1 pages by their records, whatever `read` made of them (origins)
            data = response.data  # a list or null: `read` refused anything else
            count = len(data) if type(data) is list else 0
            more, start = page_after(response.additional_data, self.start, count)
            more = more and count > 0
            if more and start <= self.start:
                raise malformed(response, self.stage, f"its next_start {start} goes no further")
            self.start = start
        elif not self.paged:
            more = False
        else:
            more = (cursor := next_cursor(response.additional_data)) is not None
            if cursor is not None:  # a cursor given twice would page for ever, spending the budget
                seen = self.seen if self.seen is not None else set()
                if cursor in seen:
                    raise malformed(response, self.stage, "its next_cursor was given before")
                seen.add(cursor)
                self.seen = seen
        if not more and self.more:  # the next listing
            (self.path, self.note), self.more = self.more[0], self.more[1:]
            self.start, self.seen, more = 0, None, True
        self.request = self.page(cursor) if more else None
        if not more and self.ended is not None:
            self.result = self.ended(self.result)


def probe_steps(probe: Probe) -> Step[Any]:
    """A probe as an exchange, for the shells (`Pages` of the catalog, the index, ...); not
    `core.driver.drive`, which runs a plan against a `send`."""
    while (asked := probe.request) is not None:
        probe.take((yield asked))
    return probe.result


def page_after(additional: Any, start: int, count: int) -> tuple[bool, int]:
    """v1 paging: `more_items_in_collection` and `next_start`, at the top of additional_data or
    under its `pagination`."""
    info = additional if isinstance(additional, Mapping) else {}
    info = info.get("pagination", info) if isinstance(info.get("pagination"), Mapping) else info
    next_start = info.get("next_start")
    return bool(info.get("more_items_in_collection")), (
        next_start if isinstance(next_start, int) else start + count
    )


def org_of(data: Any) -> PdId | None:
    """A person's organization as an answer gives it (an id, or `{"value": id}` in older shapes)."""
    org = data.get("org_id") if type(data) is dict or isinstance(data, Mapping) else None
    if org is not None and type(org) is not int and isinstance(org, Mapping):
        org = org.get("value", org.get("id"))
    return pd_id(org)


def unknown_failure(ctx: Ctx, stage: str, what: str) -> PlanFailure:
    tries = ctx.config.unknown_tries
    return PlanFailure(
        f"{stage}: outcome unknown {after_attempts(tries)} ({what}); retry later",
        redacted=f"{stage}: outcome unknown {after_attempts(tries)}; retry later",
        stage=stage,
        retryable=True,
    )


def stale(entity: Entity, key: str, ref: Ref) -> Stale:
    """`ref`, which the cache or the index gave for `key`, is gone: forget it (out of the index
    too) and plan the event again."""
    return Stale(entity, key, ref.id, ref.via == "index")


def gone(entity: Entity, ref: Ref, response: ApiResponse, stage: str) -> Exception:
    """What a 404/410 on a resolved record means: a stale cache, a bad external id, or a race."""
    if ref.via in KEPT and ref.key is not None:
        return stale(entity, ref.key, ref)
    if ref.via == "external":
        return PlanFailure(
            f"{entity.noun} {ref.id} ({ref.external} external id) not found",
            stage=stage,
            status=response.status,
        )
    return PlanFailure(
        f"{entity.noun} {ref.id} no longer exists (HTTP {response.status})",
        stage=stage,
        status=response.status,
        retryable=True,
    )


# --- resolving -------------------------------------------------------------------------------


def require_field(ctx: Ctx, entity: Entity, key: str) -> str:
    """The identity field to find or write `key` in; refused when unset, or when the field (as
    listed) cannot hold the whole key: stored cut short, it could never be found again."""
    config = ctx.config
    field_key, limit, info = config.compiled.get(entity.setting) or identity_field(config, entity)
    if not field_key:
        raise PlanFailure(
            f"[identity] {entity.setting} is not set: cannot look up {entity.identity} "
            + quoted(key),
            redacted=f"[identity] {entity.setting} is not set: cannot look up {entity.identity}s",
            stage="validate",
        )
    if info is not None and len(key) > limit:
        raise PlanFailure(
            f"{entity.identity} {quoted(key[:20])}... is {len(key):,} characters: the "
            f"{entity.noun} field {info.name} ({info.field_type}) holds at most {limit:,}",
            redacted=f"a {entity.identity} is longer than the {limit:,} characters its field holds",
            stage="validate",
        )
    return field_key


def identity_field(config: PlanConfig, entity: Entity) -> tuple[str, int, FieldInfo | None]:
    """The identity field of `entity`, the longest key it takes (none when unset: -1) and its
    listing when a text field's (else None), worked out once per config (`PlanConfig.compiled`)."""
    field_key: str = getattr(config, entity.setting)
    info = config.field_types.get(field_key)
    limit = TEXT_LIMITS.get(info.field_type) if info is not None else None
    longest = (limit or sys.maxsize) if field_key else -1
    found = config.compiled[entity.setting] = (field_key, longest, info if limit else None)
    return found


def known_ref(ctx: Ctx, entity: Entity, key: str | None, external: str) -> Ref | None:
    """The record as known without asking Pipedrive: by external id, else as this event found
    it, else as cached. None: `find` must ask. A plain function, so a plan written
    `known_ref(...) or (yield from find(...))` makes no generator when the cache answers."""
    if ctx.event.external and (raw := ctx.event.external.get(external)) is not None:
        # Event.external holds each id as its decimal digits (core/events.py `pipedrive_id`).
        named = Ref(id=int(raw), via="external", key=key, external=external)
        if entity is PERSON and (ctx.known.merges or ctx.learned.merged):
            not_merged_away(ctx, named)
        return named
    if key is None:
        return None
    if ctx.resolved is not EMPTY:  # this event resolved or forgot identities: those first
        slot = (entity.kind, key)
        ref = ctx.resolved.get(slot)
        if ref is not None or slot in ctx.resolved:  # present as None: forgotten as stale
            return ref
    known = ctx.known
    if entity is not PERSON:
        cached = known.org_id(key)
        if known.rekeyed:
            cached = known.owned(entity.kind, key, cached)
        return None if cached is None else Ref(cached, "cache", key)
    cached = known.person_id(key)
    if known.rekeyed:  # an external id has given a cached person another userId since?
        cached = known.owned(PERSON.kind, key, cached)
    # A merge left unknown (or settled by this event) may have moved it: `find` asks.
    if cached is None or ctx.learned.merged or (known.pending and known.merging_into(cached)):
        return None
    return Ref(cached, "cache", key)


class MergedAway(PlanFailure):
    """An external id names a person that a merge known done moved into `survivor`
    (`not_merged_away`)."""

    def __init__(self, ref: Ref, survivor: PdId) -> None:
        super().__init__(
            f"person {ref.id} ({ref.how}) was merged into person {survivor} by an earlier alias; "
            f"point the event at person {survivor}",
            # Refused for its data, a cause of its own: not "lookup person", which the tally
            # tells as a knock-on of an earlier failure of its userId (core/tally.py).
            stage="validate",
        )
        self.survivor = survivor


def not_merged_away(ctx: Ctx, ref: Ref) -> None:
    """Refuse a person's external id naming one that a merge known done (this event's, or one the
    cache learned, in this run or an earlier one) moved into another: the external id wins over
    every lookup (SPEC 4), so it is not followed to the survivor, and Pipedrive would refuse the
    person as not found. Refused before any request, in send and dry-run alike (whose planned
    merges are in its cache as a send's are); a merge left unknown is not taken as done."""
    into = merged.get(ref.id) if (merged := ctx.learned.merged) else None
    survivor = ctx.known.survivor(ref.id if into is None else into)
    if survivor != ref.id:
        raise MergedAway(ref, survivor)


def find(
    ctx: Ctx, entity: Entity, key: str | None, *, aliased: bool = True, into: PdId | None = None
) -> Step[Ref | None]:
    """What `known_ref` did not know, asked of Pipedrive: a merge left unknown settled, a create
    left unknown reconciled, else the index or itemSearch; a person not found, under the userIds
    the input aliases it to (`aliased_away`) unless not `aliased` (an alias's own previousId:
    that alias is what links it), and then only if that is person `into` when one is given (an
    alias's userId, its previous person found: `alias.plan`). None: not found (a failed lookup
    raises; it is never taken as "not found"). A userId searched for along a chain in vain this
    run is not searched for again along one (`IdentityStore.unfound`, after the cache and a
    pending create: it keeps none this run may have made findable since); the walk notes those
    it searched. `key` itself is always searched: its "not found" creates its person, or re-keys
    one to it, and another process (a live destination, a web form) may have made it since."""
    if key is None:
        return None
    known, config = ctx.known, ctx.config
    # Forgotten as stale (gone: 404/410) by this event: searched, not taken from the cache nor the
    # index that gave it. Most events learned nothing, and nothing is pending: straight to search.
    stale = ctx.resolved is not EMPTY and (entity.kind, key) in ctx.resolved
    if (known.pending or ctx.learned.merged) and not stale and entity is PERSON:
        cached = known.cached_for(PERSON.kind, key)
        if cached is not None:  # known_ref left it: a merge may have moved it
            if cached in (merged := ctx.learned.merged):  # settled earlier in this event
                cached = merged[cached]
            elif (merging := known.merging_into(cached)) is not None and (
                cached not in ctx.learned.pending_merges
            ):
                check = MergeCheck(cached, merging)  # a merge of it left unknown: settled first
                while (asked := check.request) is not None:
                    check.take((yield asked))
                ctx.learning().pending_merges[cached] = None
                if check.result:
                    merge_done(ctx, cached, merging, check.survivor)
                # Not done: still itself; done: the survivor; both gone: None.
                cached = cached if check.result is None else merging if check.result else None
            if cached is not None:
                return Ref(cached, "cache", key)
            ctx.learn(entity, key, None)  # both persons of a merge left unknown are gone: search
            stale = True
    if known.pending and (slot := (entity.kind, key)) not in ctx.learned.pending_creates:
        sent_at = known.pending_create(entity.kind, key)
        if sent_at is not None:
            # An earlier event's create of this identity may have landed: a listing (no index
            # lag) settles it before any search. If it fails, this event fails too (retryable).
            pages = reconcile_create(ctx, entity, key, sent_at)
            while (asked := pages.request) is not None:
                pages.take((yield asked))
            ctx.learning().pending_creates[slot] = None
            if pages.result is not None:
                # A person's landed create is this event's (`landed_create_fields`), as a create
                # that reconciles its own lost answer is; an organization's is refreshed by group.
                ref = Ref(id=pages.result, via="created" if entity is PERSON else "search", key=key)
                ctx.learn(entity, key, ref)
                return ref
    field_key, longest, _ = config.compiled.get(entity.setting) or identity_field(config, entity)
    if len(key) > longest:  # no field set, or one that cannot hold the key
        require_field(ctx, entity, key)  # refuses it, in words
    index = ctx.index
    if stale or index is None or not index.covers(entity.kind):
        via: Via = "search"  # the exchange made here, its first page read here: no call
        request = search_request(entity, field_key, key)
        response = yield request
        if response.failed is not None:  # the transport gave up: this event fails
            raise response.failed
        ids: list[PdId] = []  # most answers: a 2xx without hits, read with no call
        if response.data is not None or not 200 <= response.status < 300 or response.malformed:
            ids = hit_ids(response, request.stage)  # the hits, or the refusal it raises
        additional = response.additional_data  # most answers: none, no call to read it
        if additional is not None and (cursor := next_cursor(additional)) is not None:
            more = {**request.query, "cursor": cursor}
            pages = Pages(SEARCH, more, stage=request.stage, note=request.note, read=hit_ids)
            while (asked := pages.request) is not None:
                pages.take((yield asked))
            ids += pages.result
        # Searched: a record the index gave for it, found gone, leaves the index now, not
        # before (a stale signal taken wrongly, then a failed search, would leave a record that
        # is there out of the index, for the next event not finding it to create it again),
        # and not when the search finds it: it is there (another hit may be taken, the lowest).
        if ctx.gone and index is not None:
            for kind, gone_key, record in ctx.gone:
                if kind == entity.kind and gone_key == key and record not in ids:
                    index.rows.drop(kind, record)
    else:
        via = "index"
        probe = lookup(ctx, entity, key)
        while (asked := probe.request) is not None:
            probe.take((yield asked))
        ids = probe.result
    if not ids:
        if aliased and entity is PERSON and key in config.aliases:  # merged away? (`aliased_away`)
            listed = index is not None and index.covers(PERSON.kind)
            for target in ahead_of(config.aliases, config.aliases_of, key, ctx.event):
                # What this event knows of it first (None: its cached person found gone).
                slot = (PERSON.kind, target)
                cached = (
                    ctx.learned.identities[slot]
                    if slot in ctx.resolved
                    else known.cached_for(PERSON.kind, target)
                )
                if cached is not None:
                    probe = Probe([cached])
                elif not listed and target in known.unfound and not known.pending_create(*slot):
                    continue  # searched along a chain in vain this run, nothing found since
                else:
                    probe = lookup(ctx, PERSON, target)
                while (asked := probe.request) is not None:
                    probe.take((yield asked))
                if probe.result:
                    if into is not None and lowest(probe.result) != into:
                        return None  # another person: the aliases have not made them one yet
                    # Kept (cached, or from the index), a gone one is searched again.
                    how: Via = "cache" if cached is not None else "index" if listed else "search"
                    return aliased_away(ctx, key, target, probe.result, how)
                if not listed:  # searched in vain: not again while nothing may make it found
                    ctx.taught().unfound += (target,)
        return None
    chosen = ids[0] if len(ids) == 1 else lowest(ids)
    if len(ids) > 1 and len(ids := list(dict.fromkeys(ids))) > 1:
        ctx.warnings.append(ambiguity(entity, key, f"ambiguous identity: {len(ids)}"))
    ref = Ref(chosen, via, key)
    ctx.learn(entity, key, ref)
    return ref


def ambiguity(entity: Entity, key: str, lead: str) -> Warned:
    """The warning that several records hold `key`, its text led by `lead` ("ambiguous
    identity: 3"); whatever the lead, it ends as `ambiguity(entity, key, "")` does."""
    return Warned(
        f"{lead} {entity.plural} have {entity.identity} {quoted(key)}; using the lowest id",
        f"ambiguous identity: several {entity.plural} have one {entity.identity}; "
        "using the lowest id",
    )


def lookup(ctx: Ctx, entity: Entity, key: str, *, waited: bool = False) -> Probe:
    """The ids of the records holding `key` (`result`, once its requests are answered), as `find`
    asks: from the identity index when it covers the entity (core/index.py; refreshed first when
    its last listing is over 10 s old, found or not, so what it says is as safe as a search's
    answer; a miss waits, once, for a refresh in flight that will be fresh enough instead:
    `ListingWait`), else by itemSearch (`find` makes its own search itself)."""
    field_key = require_field(ctx, entity, key)
    index = ctx.index
    if index is None or not index.covers(entity.kind):
        request = search_request(entity, field_key, key)
        return Pages(SEARCH, request.query, stage=request.stage, note=request.note, read=hit_ids)
    ids = index.lookup(entity.kind, key)
    if index.due(entity.kind, found=bool(ids)):  # found too: one re-keyed is no longer key's
        if not ids and not waited and (until := index.awaited(entity.kind)) is not None:
            return ListingWait(ctx, entity, key, until)
        return index_listing(index, entity, key)
    return Probe(ids)


class ListingWait(Probe):
    """A lookup that missed while another event's refresh of the index is in flight, begun under
    10 s ago: each event in flight listing again what that one lists (every record updated
    since, rpd's own writes among them) made 15,000 new userIds 16 refreshes. It waits for that
    refresh (`IndexWait`), then looks again (`lookup`), not waiting twice: the index is due or
    not as at any lookup, so it answers from that refresh only while it is under 10 s old, as
    SPEC 5 trusts an index, and makes its own otherwise."""

    __slots__ = ("ctx", "entity", "key", "then")

    def __init__(self, ctx: Ctx, entity: Entity, key: str, until: float) -> None:
        super().__init__()
        self.ctx, self.entity, self.key = ctx, entity, key
        self.then: Probe | None = None
        note = f"wait for the {entity.noun} index's refresh in flight"
        self.request = IndexWait(entity.kind, until, f"index {entity.plural}", note)

    def take(self, response: ApiResponse) -> None:
        if self.then is None:  # the wait is over
            self.then = lookup(self.ctx, self.entity, self.key, waited=True)
        else:
            self.then.take(response)
        self.request, self.result = self.then.request, self.then.result


class IndexPages(Pages[None]):
    """The pages of a listing into the identity index, which is told when it fails, so that no
    lookup waits for it (`ListingWait`)."""

    __slots__ = ("index", "kind", "started")
    index: IdentityIndex
    kind: str
    started: float  # the index's clock when it began

    def take(self, response: ApiResponse) -> None:
        try:
            super().take(response)
        except BaseException:
            self.index.failed(self.kind, self.started)
            raise


def index_listing(index: IdentityIndex, entity: Entity, key: str | None = None) -> Pages[None]:
    """List `entity`'s records into the index, page by page: all of them (a build), or those
    updated since its last listing was sent (a refresh), on Pipedrive's clock less the
    reconciliation slack. Its `result`: the ids of `key` then."""
    started = index.clock()
    since = index.begin(entity.kind, started)
    field_key = index.fields[entity.kind]
    query: dict[str, str | int] = {"custom_fields": field_key, "limit": LIST_LIMIT}
    start = None if since is None else parse_time(since)
    if start is not None:
        query["updated_since"] = rfc3339(start - RECONCILE_SLACK)
    first: list[str] = []

    def take(response: ApiResponse, stage: str) -> list[None]:
        first.append(response.sent_at)
        index.take(entity.kind, listed(response, stage))
        return []

    def ended(_: list[None]) -> list[PdId] | None:
        index.end(entity.kind, first[0], refresh=since is not None, started=started)
        return None if key is None else index.lookup(entity.kind, key)

    what = f"refresh the {entity.noun} index" if start is not None else f"index {entity.plural}"
    stage, note = f"index {entity.plural}", f"{what} by {entity.identity}"
    pages = IndexPages(entity.collection, query, stage=stage, note=note, read=take, ended=ended)
    pages.index, pages.kind, pages.started = index, entity.kind, started
    return pages


def aliased_away(ctx: Ctx, key: str, target: str, ids: list[PdId], via: Via) -> Ref:
    """The person of a userId Pipedrive does not find while the input aliases it to another
    (issue 20): that alias makes it the person of the userId it is aliased to (`target`, whose
    records are `ids`), which keeps its own userId; a rerun without the state finds it merged or
    re-keyed there by the alias's earlier run, a first run before the alias has run. Found
    (cached or by search, following a chain of aliases: `find`), that person is the userId's: no
    second person is created, no lead is made twice (that person's leads are listed) and the
    alias merges nothing again. Not found either, the userId's person is created as usual.
    `via`: how `ids` were found. Kept ("cache": `target`'s cached person; "index": the identity
    index's), they may hold a person someone has since merged or deleted: gone, it is forgotten
    (the cache's for `target`, the index's once `key` is searched) and searched again."""
    ref = Ref(id=lowest(ids), via=via, key=target if via == "cache" else key)
    ctx.warnings.append(
        Warned(
            f"{aliased_lead(key)}{quoted(target)}, whose person {ref.id} is taken as its own "
            f"{ALIAS_MAKES}",
            f"a userId not found is taken as the person of the userId the input aliases it to "
            f"{ALIAS_MAKES}",
        )
    )
    ctx.learn(PERSON, key, ref)
    return ref


# Why (true whether the alias comes later in this run or ran before: a claim that an earlier
# alias had merged or re-keyed it was false on a first run, where none had).
ALIAS_MAKES = "(the alias makes them one person: none is created for it)"


def aliased_lead(key: str) -> str:
    """How `aliased_away`'s warning for userId `key` begins."""
    return f"userId {quoted(key)} not found: the input aliases it to "


LISTED = ("emails", "phones")  # a person's fields that hold lists


def merge_done(ctx: Ctx, previous: PdId, current: PdId, merged: Any = None) -> None:
    """Record that `previous` was merged into `current`. Its leads now belong to the survivor,
    whose lead list is complete only when both were; otherwise the next track lists it (a lead
    nobody listed may have moved there). Its organization: as `merged` (the survivor as the
    merge's answer or a read of it gives it) names it (`joined_org`)."""
    learned = ctx.learning()
    learned.merged[previous] = current
    joined_org(ctx, previous, current, merged)
    origins = learned.lead_origins
    for kind in ctx.config.track_rules.creates:  # deals, activities, notes move there too
        into, away = origins_key(kind, current), origins_key(kind, previous)
        survivor = origins.get(into, ctx.known.lead_origins(into))
        merged = origins.get(away, ctx.known.lead_origins(away))
        if survivor is not None or merged is not None:  # else nothing was known: nothing lost
            origins[into] = (
                frozenset(survivor | merged)
                if survivor is not None and merged is not None
                else None
            )
    # The survivor keeps its own values (SPEC 1: its data wins) and takes the merged person's
    # only where it had none: so its own times, else the merged person's. A later time of the
    # merged-away value, which the merge dropped, would hold back every event older than it.
    # Emails and phones are lists a merge may join: the later time of the two holds them.
    gone, own = times_of(ctx, "person", previous), times_of(ctx, "person", current)
    times = {**gone, **own}
    for key in LISTED:
        if gone.get(key, "") > own.get(key, ""):
            times[key] = gone[key]
    if times:
        learned.recency[("person", current)] = times


def joined_org(ctx: Ctx, previous: PdId, current: PdId, merged: Any) -> None:
    """The survivor's organization after a merge, for the deals, activities and notes made for
    it next: as `merged` names it (the merge's answer, v1, or a read of the survivor once a
    merge left unknown is found done, v2: its `org_id`); one that does not say (dry-run's
    offline answers) leaves it as known, the survivor's own, else the merged person's, which
    Pipedrive gives a survivor without one (SPEC 1: the survivor's values win, the merged
    person's fill its empty ones)."""
    memberships, known = ctx.learned.memberships, ctx.known
    own = memberships.get(current, known.person_org(current))
    if type(merged) is dict and "org_id" in merged:
        org = org_of(merged)
        if org is None and own is None:
            return
    elif own is None:
        org = memberships.get(previous, known.person_org(previous))
        if org is None:
            return
    else:
        return
    memberships[current] = org  # None: in no organization now, the one known forgotten


class MergeCheck(Probe):
    """Did merging `previous` into `current` land? Done when the previous person is gone while
    the survivor is there (SPEC 5). `result`: None, not done (`previous` is still there); True,
    done; False, the survivor is gone too, unless `gone_as` makes that an exception. `survivor`:
    the survivor as its read answered, once done (its organization: `joined_org`)."""

    __slots__ = ("current", "gone_as", "previous", "survivor")

    def __init__(
        self,
        previous: PdId,
        current: PdId,
        gone_as: Callable[[ApiResponse], Exception] | None = None,
    ) -> None:
        self.previous, self.current, self.gone_as = previous, current, gone_as
        self.survivor: Any = None
        note = f"merge outcome unknown: is person {previous} still there?"
        self.request, self.result = person_check(previous, note), None

    def take(self, response: ApiResponse) -> None:
        if response.failed is not None:
            raise response.failed
        gone_now = response.status in GONE
        if not gone_now:
            expect(response, "reconcile merge")
        if self.result is None and gone_now:  # the previous person is gone: is the survivor?
            self.result = True
            note = f"person {self.previous} is gone: is the survivor {self.current} there?"
            self.request = person_check(self.current, note)
            return
        self.request = None
        if self.result and gone_now:  # the survivor is gone too
            if self.gone_as is not None:
                raise self.gone_as(response)
            self.result = False
        elif self.result:
            self.survivor = response.data


def person_check(person: PdId, note: str) -> ApiRequest:
    """GET one person, to learn whether it still exists while reconciling a merge."""
    path = f"{PERSON.collection}/{person}"
    return ApiRequest("GET", path, PERSON.item_endpoint, "reconcile merge", None, None, note)


def search_request(entity: Entity, field_key: str, term: str) -> ApiRequest:
    """The first page of an itemSearch for `term` in the identity field; its stage is how the
    Recorder (core/preview.py) counts searches. About one per event: made here, not through
    `ApiRequest.__init__` (a call less, its key a constant): 0.53 -> 0.39 us."""
    request = NEW_REQUEST(ApiRequest)  # its items in ApiRequest's order, one store a line
    request["method"] = "GET"
    request["path"] = SEARCH
    request["query"] = {"term": term, "entity_type": entity.noun, "field": field_key,
                        "match": "exact"}  # fmt: skip
    request["body"] = None
    request["note"] = entity.searched + quoted(term)
    request.endpoint = SEARCH
    request.stage = entity.lookup
    request.key = SEARCH_KEY
    request.creates = None
    request.merges = None
    return request


SEARCH_KEY = "GET " + SEARCH  # the key of every search


# --- bodies ----------------------------------------------------------------------------------


def entity_body(
    ctx: Ctx,
    entity: Entity,
    paths: tuple[tuple[str, ...], ...],
    *,
    create: bool,
    named: bool = False,
) -> dict[str, Any]:
    """Standard and mapped fields of a person or organization, from the event's traits at
    `paths` (`PERSON_TRAITS`: top-level traits over context.traits), without its identity. The
    traits are read here, so a plan that needs no body reads none. A create needs a name: its
    caller checks, so its warnings and dropped traits are reported with the failure. `named`:
    only a body with a name is of use (`mapped_values`: {} when it would provably hold none and
    say nothing)."""
    config = ctx.config
    table = config.compiled.get((entity.kind, create)) or compiled_mapping(
        getattr(config, entity.fields),
        config,
        entity.body,
        (entity.kind, create),
        create=create,
        identity=getattr(config, entity.setting),
        identity_words=f"is mapped to the {entity.identity} field ([identity] {entity.setting}), "
        "which rpd fills itself; dropped",
    )
    raw = ctx.event.raw
    sources: tuple[Any, ...] = ()  # the objects at `paths`, in order: the first holding a path wins
    for parts in paths:
        found: Any = raw
        for part in parts:  # one call to type() for each object read, not two
            found = found.get(part)
            if type(found) is not dict and not isinstance(found, Mapping):
                if found is not None and found != "":  # null or "": none there, nothing to say
                    where = ".".join(parts[: parts.index(part) + 1])
                    ctx.warnings.append(not_an_object(where, found))
                break
        else:
            sources += (found,)
    return mapped_values(sources, table, config, ctx.warnings, "", ctx.dropped, raw, "", named)


def with_identity(body: dict[str, Any], field_key: str, value: str) -> dict[str, Any]:
    """`body` (a new one, from `entity_body`) with the identity in its custom fields, in place."""
    body.setdefault("custom_fields", {})[field_key] = value
    return body


# --- writes ----------------------------------------------------------------------------------


class WriteOnce(Probe):
    """Settle a write whose outcome may stay unknown, exactly once (SPEC 5): the one loop every
    write (creates of persons, organizations, leads, deals, activities and notes; updates;
    merges) goes through, the probe `write_once` gives once its first answer (`response` to
    `write`) was not definitive (most are read at once, without this).

    A definitive answer is read by `answered(response, lost)`, `lost` being the send time of the
    first send whose answer was lost; a 2xx it cannot read (the record exists) it leaves to
    settle itself. After a lost answer, the probe `settle(sent_at)` asks whether the write
    landed: its result, or None to send it again (no `settle`: idempotent, sent again). After
    `unknown_tries` sends, or failing once an answer was lost, the write is `left` to settle,
    given that send time, for the events that come after."""

    __slots__ = ("answered", "ctx", "left", "lost", "probe", "settle", "tries", "what", "write")

    def __init__(
        self,
        ctx: Ctx,
        write: ApiRequest,
        response: ApiResponse,
        answered: Callable[[ApiResponse, str], Any],
        settle: Callable[[str], Probe] | None,
        left: Callable[[str], None] | None,
        what: str,
    ) -> None:
        self.ctx, self.write, self.answered, self.settle = ctx, write, answered, settle
        self.left, self.what, self.lost, self.tries = left, what, "", ctx.config.unknown_tries
        if response.error == LEFT_IN_FLIGHT:  # not sent by this run: no attempt of its own
            self.tries += 1
        self.probe: Probe | None = None
        super().__init__()
        self.take(response)

    def take(self, response: ApiResponse) -> None:
        try:
            probe = self.probe
            if probe is not None:  # an answer to the settle's request
                probe.take(response)
                self.request = probe.request
                if self.request is not None:
                    return
                self.probe = None
                if probe.result is not None:  # it landed
                    self.result = probe.result
                    return
            elif response.failed is not None:  # the transport gave up: this event fails
                raise response.failed
            elif response.status:  # not `unknown` (status 0)
                self.request = None
                self.result = self.answered(response, self.lost)
                return
            else:
                self.lost = self.lost or response.sent_at
                if self.settle is not None:
                    self.probe = self.settle(response.sent_at)
                    self.request = self.probe.request
                    return
            self.tries -= 1
            if self.tries <= 0:
                raise unknown_failure(self.ctx, self.write.stage, self.what)
            self.request = self.write
        except PlanFailure:
            if self.lost and self.left is not None:
                self.left(self.lost)
            raise


# How a write whose answer was lost is settled (`WriteOnce`): its `settle` probe (None: sent
# again), what is `left` when it stays unknown, and `what` its failure says was not seen.
Unknown = tuple[Callable[[str], Probe] | None, Callable[[str], None] | None, str]


def write_once(
    ctx: Ctx,
    request: ApiRequest,
    response: ApiResponse,
    answered: Callable[[Ctx, Any, Any, ApiRequest, ApiResponse, str], Any],
    unknown: Callable[[Ctx, Any, Any, ApiRequest], Unknown],
    entity: Any,
    on: Any,
) -> Any:
    """The one write-once path (SPEC 5) of every write, `request` given its first `response`.
    Answered at once (most writes): what `answered(ctx, entity, on, request, response, "")`
    reads of it (`entity`, `on`: what the write is on, as its writer says). Else the `WriteOnce`
    loop that settles it, given the `settle`, `left` and `what` of `unknown(ctx, entity, on,
    request)`, made only then, which the writer drives to its result (no generator level). Plain
    calls and nothing made when answered at once, as most writes are: the shortcut is for speed.
    """
    if response.status and response.failed is None:  # answered at once: most writes
        return answered(ctx, entity, on, request, response, "")
    settle, left, what = unknown(ctx, entity, on, request)
    read = partial(answered, ctx, entity, on, request)
    return WriteOnce(ctx, request, response, read, settle, left, what)


def create(ctx: Ctx, entity: Entity, key: str, body: Mapping[str, Any]) -> Step[Ref]:
    """POST a record not found (its note says so); an unknown outcome is reconciled first."""
    stage, slot, posted = f"create {entity.noun}", (entity.kind, key), entity.collection
    note = f"{stage} {quoted(key)} (not found)"
    request = ApiRequest("POST", posted, posted, stage, None, body, note, slot)
    found = write_once(ctx, request, (yield request), created, create_unknown, entity, None)
    if type(found) is WriteOnce:  # its answer lost: the loop settles it
        while (asked := found.request) is not None:
            found.take((yield asked))
        found = found.result
    ref = Ref(found, "created", key)  # by position: a keyword call costs twice as much
    ctx.learn(entity, key, ref)
    ctx.writes += (entity.created,)
    wrote_fields(ctx, entity, found, body)
    if entity is PERSON:
        # Nobody has leads (deals, ...) for a person this run created: later tracks need not list.
        learned = ctx.learning()
        for kind in ctx.config.track_rules.creates:
            learned.lead_origins[origins_key(kind, found)] = NO_ORIGINS
        org = pd_id(body.get("org_id"))
        if org is not None:
            learned.memberships[found] = org
    return ref


def created(
    ctx: Ctx, _entity: Entity, _on: None, request: ApiRequest, response: ApiResponse, lost: str
) -> PdId:
    """Read the definitive answer to `create`'s POST: the record's id."""
    made, data = 200 <= response.status < 300, response.data
    if made and type(data) is dict and (found := pd_id(data.get("id"))) is not None:
        return found  # most answers: the record's id, read at once
    slot, stage = request.creates, request.stage
    assert slot is not None  # a create's request names what it creates
    if not made and not lost:  # refused, never made: nothing to settle
        pending_create(ctx, slot, None)
    try:
        return record_id(expect(response, stage), stage)
    except PlanFailure:
        if made:  # it was made, even if its answer cannot be read: later events must
            pending_create(ctx, slot, lost or response.sent_at)  # not create blindly
        raise


def create_unknown(ctx: Ctx, entity: Entity, _on: None, request: ApiRequest) -> Unknown:
    """How `create`'s POST whose answer was lost is settled: by `reconcile_create`; left pending
    (it may have landed)."""
    slot = request.creates
    assert slot is not None  # a create's request names what it creates
    key = slot[1]
    what = f"no {entity.noun} with {entity.identity} {quoted(key)} appeared"
    left = partial(pending_create, ctx, slot)
    return partial(reconcile_create, ctx, entity, key), left, what


def pending_create(ctx: Ctx, slot: tuple[str, str], sent_at: str | None) -> None:
    """A create of identity `slot` left pending, sent at `sent_at` (None: settled)."""
    ctx.learning().pending_creates[slot] = sent_at


def reconcile_create(ctx: Ctx, entity: Entity, key: str, sent_at: str) -> Pages[PdId]:
    """Did the create land? List records updated since it was sent (listings have no index lag,
    unlike itemSearch) and match the identity field: `result`, the lowest id holding `key`, or
    None."""
    stage = f"reconcile {entity.noun}"
    sent = parse_time(sent_at)
    if sent is None:
        raise PlanFailure(
            f"create {entity.noun}: outcome unknown and no send time to reconcile with",
            stage=stage,
            retryable=True,
        )
    field_key = require_field(ctx, entity, key)
    query: dict[str, str | int] = {
        "updated_since": rfc3339(sent - RECONCILE_SLACK),
        "sort_by": "update_time",
        "sort_direction": "desc",
        "limit": LIST_LIMIT,
    }
    note = f"create {entity.noun} {quoted(key)}: outcome unknown, look among recent {entity.plural}"

    def read(response: ApiResponse, stage: str) -> list[PdId]:  # the ids holding `key`
        rows = identity_rows(listed(response, stage), field_key)  # as the index reads them
        return [found for found, value in rows if value == key]

    return Pages(
        entity.collection, query, stage=stage, note=note, read=read,
        ended=lambda matches: lowest(matches) if matches else None,  # the lowest id holding it
    )  # fmt: skip


def update(
    ctx: Ctx, entity: Entity, ref: Ref, body: Mapping[str, Any], stage: str, note: str
) -> ApiRequest | None:
    """The PATCH of a record with the fields no later event wrote, for its plan to yield and hand
    the answer to `updated`; None when none is left to send, or when this event made this very
    PATCH already (before a stale cache hit planned it again). A plain function: the common
    update is one `yield` of the plan, no generator level."""
    times = times_of(ctx, entity.kind, ref.id)
    if times and max(times.values()) > (at := ctx.at):  # most: no field a later event wrote
        body, left_out = fresh(body, times, at, getattr(ctx.config, entity.setting))
        if not body:
            ctx.superseded = ctx.superseded or left_out
            return None
    if (made := ctx.learned.updates) and (entity.kind, ref.id, body) in made:
        return None
    path, endpoint = f"{entity.collection}/{ref.id}", entity.item_endpoint
    return request_of("PATCH", path, endpoint, stage, "PATCH " + endpoint, body, note)


def refresh(
    ctx: Ctx, entity: Entity, ref: Ref, key: str | None, paths: tuple[tuple[str, ...], ...]
) -> ApiRequest | None:
    """`update`'s PATCH of a found person or organization with the event's fields at `paths`,
    and its identity `key` when its external id found it (that id names the key's record)."""
    body = entity_body(ctx, entity, paths, create=False)
    if ref.via == "external" and key is not None and getattr(ctx.config, entity.setting):
        body = with_identity(body, require_field(ctx, entity, key), key)
    if not body:
        return None
    stage = "update " + entity.noun
    return update(ctx, entity, ref, body, stage, f"{stage} {ref.id} ({ref.how})")


def named_by_external(ctx: Ctx, entity: Entity, ref: Ref, key: str | None) -> None:
    """`ref`, which an external id found, is `key`'s record now that Pipedrive took its update
    (`refresh` wrote `key` into its identity field): learned so, and when the cache or the
    identity index (no request) knows `key` as another record's, a warning naming both, as both
    hold it now (SPEC 4: the external id wins, so the update is not refused; the later lookups
    of `key` without the cache would take the lowest id as an ambiguous identity)."""
    if ref.via != "external" or key is None:
        return
    if getattr(ctx.config, entity.setting):
        known = ctx.known
        holders = {known.cached_for(entity.kind, key)}  # not one given another identity since
        if (index := ctx.index) is not None and index.covers(entity.kind):
            holders.update(index.lookup(entity.kind, key))
        others = sorted((h for h in holders if h is not None and h != ref.id), key=id_order)
        if others:
            *more, last = [str(other) for other in others]
            also = f"{entity.noun} {last} holds"
            if more:
                also = f"{entity.plural} {', '.join(more)} and {last} hold"
            ctx.warnings.append(
                Warned(
                    f"{entity.noun} {ref.id} ({ref.how}) now holds {entity.identity} "
                    f"{quoted(key)}, which {also} too: merge them or clear it from one",
                    f"an external id's {entity.noun} now holds a {entity.identity} another "
                    f"{entity.noun} holds too: merge them or clear it from one",
                )
            )
        if (marks := ctx.learned.holders) is EMPTY:
            marks = ctx.taught().holders = {}
        marks[(entity.kind, ref.id)] = (key,)  # what else is cached for it: not its own now
    ctx.learn(entity, key, ref)


def updated(
    ctx: Ctx, entity: Entity, ref: Ref, request: ApiRequest, response: ApiResponse
) -> Probe:
    """The probe of `update`'s PATCH, given its first answer, for the plan to drive: `SETTLED`
    (nothing more to ask), or the `WriteOnce` loop of an answer lost."""
    once: Probe = write_once(ctx, request, response, update_read, repeated, entity, ref)
    return once


def update_read(
    ctx: Ctx, entity: Entity, ref: Ref, request: ApiRequest, response: ApiResponse, _lost: str
) -> Probe:
    """Read the definitive answer to `update`'s PATCH and note what it wrote: `SETTLED`."""
    status = response.status
    if not 200 <= status < 300:
        if status in GONE:
            raise gone(entity, ref, response, request.stage)
        expect(response, request.stage)
    data = response.data
    # Most answers name no organization: read one only when the answer may hold one.
    if entity is PERSON and (type(data) is not dict or data.get("org_id") is not None):
        org = org_of(data)
        if org is not None:
            ctx.learning().memberships[ref.id] = org
    elif entity is PERSON and "org_id" in data and ctx.known.person_org(ref.id) is not None:
        ctx.learning().memberships[ref.id] = None  # in no organization now: forget the one known
    body = request.body
    assert body is not None  # a PATCH always has one
    ctx.writes += (entity.updated,)
    ctx.taught().updates += ((entity.kind, ref.id, body),)
    wrote_fields(ctx, entity, ref.id, body)
    return SETTLED


def repeated(_ctx: Ctx, _entity: Entity, _ref: Ref, _request: ApiRequest) -> Unknown:
    """How a PATCH whose answer was lost is settled: idempotent, it is simply sent again."""
    return None, None, "the update was repeated"


def landed_create_fields(ctx: Ctx, person: Ref, user_id: str) -> None:
    """`person` is one whose create, left in flight by an earlier event, `find` found made (via
    "created"): its fields are taken as this event's create wrote them (field recency), as
    `create` takes those of a create whose answer it lost, so an older event does not overwrite
    them where an undisturbed run would not. Track and group, which do not update a person they
    find, call it."""
    body = person_create_body(ctx, user_id)
    if type(body) is not Outcome:
        wrote_fields(ctx, PERSON, person.id, body)


def person_create_body(
    ctx: Ctx, key: str, paths: tuple[tuple[str, ...], ...] = (CONTEXT_TRAITS,)
) -> dict[str, Any] | Outcome:
    """The body of a new person from the traits at `paths` (a group's or track's person: its
    context.traits), or, when it cannot be created, the event's failed outcome (a value,
    checked before any write: the plan returns it)."""
    if not ctx.config.create_persons:
        return ctx.outcome("failed", "person not found and create_persons is off", PERSON.lookup)
    body = entity_body(ctx, PERSON, paths, create=True, named=True)
    if "name" not in body:  # nor a trait mapped to name
        return ctx.outcome("failed", "cannot create person without a name", "create person")
    return with_identity(body, require_field(ctx, PERSON, key), key)
