"""What a plan says to the outside world, and what it hears back.

A plan is a generator: it yields an `ApiRequest`, receives an `ApiResponse`, and finally returns
an `Outcome`. The same plans run live (httpx), in dry-run (an offline responder) and in tests.

These values, and the others every event makes (`Event`, `Ref`), are slotted classes that are
immutable by convention: nothing assigns to a field after construction; make a new value
instead (a plan's `Ctx` and its `Learned` are the exception: until its outcome is made).
They are not `frozen=True` because a frozen dataclass sets each field through
`object.__setattr__`: construction measured 3.5x slower (1.2 us against 0.35 us for ten
fields), about ten are made per event, and that was 15% of `rpd dry-run` in the profile
(benchmarks/plan_throughput.py).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal, final

from rudder_pipedrive_cli.core.errors import PlanFailure

Method = Literal["GET", "POST", "PATCH", "PUT"]

# A Pipedrive id: an int for persons and organizations, a UUID string for leads, and in dry-run a
# placeholder string such as "{person:u-1}" for a record an earlier event would have created.
PdId = int | str


class ApiRequest(dict[str, Any]):
    """One HTTP request, described, not sent: built once as the dict its dry-run record shows
    (method, path, query, body, note: orjson writes a dict subclass as its items), read as
    attributes too.

    `endpoint` is the path template ("/api/v2/persons/{id}"): reports count requests and token
    costs are looked up by `key` ("METHOD endpoint"). `stage` names the step for error messages.
    `creates`, `merges`: what this write leaves to settle should its outcome never be known (the
    (kind, key) a create makes, the (person, into) a merge merges). A state journals it before
    the write is sent, so after a kill -9 any later event of that identity settles it first.
    Only rpd's plans make requests: tests/test_openapi_requests.py checks every one they send
    against Pipedrive's OpenAPI descriptions, not this constructor.
    """

    __slots__ = ("creates", "endpoint", "key", "merges", "stage")
    method: Method  # these five are the dict's items (properties set below)
    path: str
    query: dict[str, Any]
    body: Mapping[str, Any] | None
    note: str

    def __init__(  # by position in the plans' hot paths: a third cheaper than by keyword
        self,
        method: Method,
        path: str,
        endpoint: str,
        stage: str,
        query: dict[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        note: str = "",
        creates: tuple[str, str] | None = None,
        merges: tuple[PdId, PdId] | None = None,
    ) -> None:
        self["method"] = method
        self["path"] = path
        self["query"] = {} if query is None else query
        self["body"] = body
        self["note"] = note
        self.endpoint = endpoint
        self.stage = stage
        self.key = method + " " + endpoint
        self.creates = creates
        self.merges = merges

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    @property
    def is_search(self) -> bool:
        return "/itemSearch" in self.endpoint


for _name in ("method", "path", "query", "body", "note"):  # the dict's items, read in C
    setattr(ApiRequest, _name, property(itemgetter(_name)))

# A slotted class's instance without its `__init__`: CPython calls a class's Python `__init__`
# from C (type_call, slot_tp_init: an interpreter frame of its own, and a dict of the keywords
# for a keyword-only dataclass), about 200 ns a call more than a plain function's stores. Made
# so when a planned event makes them: a plan's `Ctx` and `Outcome` (plans/common.py), a search
# (`search_request` there), an update's PATCH (`request_of`) and an offline answer (`reply`).
# Tests check each against its constructor's value, every slot set (tests/core).
NEW = object.__new__
NEW_REQUEST = ApiRequest.__new__


def request_of(
    method: Method,
    path: str,
    endpoint: str,
    stage: str,
    key: str,
    body: Mapping[str, Any] | None,
    note: str,
) -> ApiRequest:
    """`ApiRequest(method, path, endpoint, stage, None, body, note)`, its `key` given: an update's
    PATCH (plans/common.py `update`), 0.2 a planned event; ~1,100 Ir fewer than the constructor."""
    request = NEW_REQUEST(ApiRequest)  # its items in ApiRequest's order
    request["method"], request["path"], request["query"] = method, path, {}
    request["body"], request["note"] = body, note
    request.endpoint, request.stage, request.key = endpoint, stage, key
    request.creates = request.merges = None
    return request


@dataclass(slots=True, kw_only=True)  # immutable by convention: see protocol.py
class ApiResponse:
    """A definitive answer (2xx or a 4xx the plan should see), or an unknown outcome.

    `status == 0` means the request may or may not have been applied (the connection dropped after
    it was sent, or it timed out): a plan must reconcile before repeating a create or a merge.
    `sent_at` is when the request was sent (RFC 3339 UTC), which reconciliation uses.
    `malformed` says why a 2xx answer's body is not Pipedrive's success envelope (not JSON, an
    empty body, `success` not true, no `data`); empty when it is one, and for answers not read
    from HTTP. Lookups and listings refuse such an answer: it is never "not found" (SPEC 4).
    `failed` is set when the transport gave up on the request (retries spent, or a transport
    error): the plan raises it where it waited (`answer = yield request; if answer.failed: raise
    answer.failed`), so it unwinds the plan as the failure of this event, and the driver makes
    sure the event fails (`gave_up`). Drivers never throw into a plan.
    """

    status: int
    data: Any = None
    additional_data: Any = None
    error: str = ""
    sent_at: str = ""
    malformed: str = ""
    failed: PlanFailure | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def unknown(self) -> bool:
        return self.status == 0


def reply(status: int, data: Any) -> ApiResponse:
    """`ApiResponse(status=status, data=data)`: the offline responder's answers (core/responder.py,
    0.2 a planned event), ~2,000 Ir fewer than the constructor by keyword (see `NEW`)."""
    response: ApiResponse = NEW(ApiResponse)
    response.status, response.data = status, data
    response.additional_data = response.failed = None
    response.error = response.sent_at = response.malformed = ""
    return response


# The `error` of the unknown answer the journal gives a write an earlier run left in flight
# (replay.py): it was not sent by this run, so it is no attempt of this run's (WriteOnce).
LEFT_IN_FLIGHT = "left in flight by an earlier run"

OutcomeStatus = Literal["sent", "unchanged", "skipped", "failed"]


class _Empty(dict[Any, Any]):
    """The one empty mapping of every table a plan (`Ctx`) or a `Learned` did not fill: a dict
    that refuses writes, so reads stay the dict's own (no Python call), and hashable, so a
    dataclass takes it as a default."""

    def __hash__(self) -> int:  # type: ignore[override]
        return 0

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("EMPTY is shared: make a dict of your own")

    __setitem__ = __delitem__ = __ior__ = _refuse
    pop = popitem = clear = update = setdefault = _refuse


# Typed Any: it stands in for an outcome's mappings and a plan's (`Ctx`) tables alike.
EMPTY: Any = _Empty()


@dataclass(slots=True)  # immutable by convention once its outcome holds it (protocol.py)
class Learned:
    """What one event taught us about identities: its outcome's `learned`, None when it taught
    nothing (most events: a refusal, a skip, an update of a cached person that wrote no field
    time), so that outcome costs a few stores to make and nothing to apply. A plan (`Ctx`)
    writes into its own from its first write on (`NOTHING_LEARNED` till then) and hands it over.

    `identities` maps (kind, key) to a Pipedrive id, or to None to forget a cached id: kind is
    "person" (key: userId or previousId) or "org" (key: groupId). `lead_origins` maps a person id
    to the `origin_id`s of that person's leads as far as this event learned them (a listing: the
    whole list; core/identity_cache.py's `Added`: only what its create added), or to None
    when its list is no longer complete (a merge moved leads nobody listed onto it). `memberships`
    maps a person id to the organization it now belongs to (its deals, activities and notes take
    it; a later group event of the run skips the link), or to None when it belongs to none.
    `merged` maps a person merged away to the person it was merged into: every identity
    still cached to the first now means the second (an alias chain u-a -> u-b -> u-c).
    `pending_creates` maps (kind, key) to the send time of a create of that identity whose outcome
    stays unknown (its answer was lost and no reconciliation could tell), or to None once it is
    settled: until then a later event must reconcile before it may search or create, since a
    search can miss a record created moments ago (the index lags) and would make a duplicate.
    `pending_merges` maps a person to the one a merge whose outcome stays unknown would have merged
    it into, or to None once settled: until then a later event that finds the first person cached
    asks Pipedrive which of the two it is now (SPEC 5: done when the first is gone while the
    second is there), so it neither forgets it nor creates a second person.
    `held_back` holds the identities a failed event was about: until a run retries it (in input
    order, before what came after it), a later event must not take its record's absence as fact.
    `recency` maps a record, ("person" or "org", id), to the fields this event wrote there and
    its time (core/recency.py): a later write from an older event leaves those fields alone.
    `updates` holds the updates that landed: (kind, id, body). The identity index takes in an
    identity an update wrote (an external id's record given the event's userId, a re-key).
    `holders` maps a record, ("person" or "org", id), to the identities it holds: the one an
    external id wrote into its identity field, and those an alias of it named since. Another
    identity cached for it is no longer found there by Pipedrive, so it is searched, not taken
    from the cache (core/identity_cache.py `IdentityStore.owned`).
    `unfound` holds the userIds this event searched for along an alias chain and found on no
    person: not searched again this run until something may have made one findable
    (core/identity_cache.py `IdentityStore.unfound`).
    """

    identities: dict[tuple[str, str], PdId | None] = EMPTY
    lead_origins: dict[PdId, frozenset[str] | None] = EMPTY
    memberships: dict[PdId, PdId | None] = EMPTY
    merged: dict[PdId, PdId] = EMPTY
    pending_creates: dict[tuple[str, str], str | None] = EMPTY
    pending_merges: dict[PdId, PdId | None] = EMPTY
    held_back: frozenset[tuple[str, str]] = frozenset()
    recency: dict[tuple[str, PdId], Mapping[str, str]] = EMPTY
    updates: tuple[tuple[str, PdId, Mapping[str, Any]], ...] = ()
    holders: dict[tuple[str, PdId], tuple[str, ...]] = EMPTY
    unfound: tuple[str, ...] = ()


# What a plan (`Ctx`) learned before its first write: shared, never written (its tables EMPTY),
# never handed over (its outcome's `learned` is None).
NOTHING_LEARNED = Learned()


@final  # `type(planned) is Outcome` tells an outcome from a plan (Planned)
@dataclass(slots=True)  # immutable by convention; Ctx.outcome makes it by its stores (faster)
class Outcome:
    """How one event ended, and what it taught us about identities (`learned`: None when it
    taught nothing)."""

    status: OutcomeStatus
    reason: str = ""  # a failed outcome has one (its PlanFailure's, or a fixed text)
    stage: str = ""
    http_status: int | None = None
    retryable: bool = False
    warnings: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    # The reason without the event data it quotes (PlanFailure.redacted).
    redacted: str | None = None
    # What each write of the event made, by kind ("persons created", "deals created", "persons
    # updated", "merges"): the report counts writes by kind.
    writes: tuple[str, ...] = ()
    learned: Learned | None = None

    @property
    def redacted_reason(self) -> str:
        """The reason in words holding no event data (SPEC 8: names, emails and other values go
        to dead letters and dry-run output only), for send's summary and the replay state."""
        return self.reason if self.redacted is None else self.redacted


Plan = Generator[ApiRequest, ApiResponse, Outcome]
# What `plan_event` gives: the outcome itself when no request is needed, else the plan.
Planned = Outcome | Plan
