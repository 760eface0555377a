"""Dry-run: plan every event against a responder and say what a replay would request."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.identity_cache import AliasesRead, IdentityStore, Tables
from rudder_pipedrive_cli.core.index import MAX_AGE_S, Way, pages
from rudder_pipedrive_cli.core.intake import ALREADY_DONE, NOT_AN_EVENT, Finished, IdSet
from rudder_pipedrive_cli.core.plans import makes_a_person, plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import ORG, PERSON, SEARCH_KEY
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan
from rudder_pipedrive_cli.core.rules import NO_RULE
from rudder_pipedrive_cli.core.tally import Tally, estimated_seconds


def preview(
    items: Iterable[Event],
    config: PlanConfig,
    send: Recorder,
    known: IdentityStore,
    journal_status: Callable[[str], str | None] | None = None,
    finished_ids: IdSet | None = None,
    tables: Tables = dict,
    resume: Callable[[Plan, str], Plan] | None = None,
) -> Iterator[dict[str, Any]]:
    """Plan each event in input order; what an event would create is known to the next ones.
    `send` answers each request and counts it, and each outcome is counted, in `send.tally`.
    Each event yields its NDJSON line of SPEC 6, ready for orjson (tuples are JSON arrays),
    made once: what a table line shows too (cli/render.py).

    Events an earlier run finished (`journal_status`: the replay state's journal) show as
    skipped, as a rerun of `rpd send` would skip them; so does a repeat of an event this dry-run
    already finished (the same messageId again), as send's journal skips it, with a state file
    or without one. `Finished` keeps those ids in a set, moving older ones to `finished_ids`
    when given (the CLI's bounded store, io/scratch.py); `tables` makes the run's own tables
    (dicts by default; bounded ones for the CLI, io/scratch.py). `resume` runs a plan through
    the writes an earlier run left in flight (send's `replay.journaled`, recording none): the
    rerun reconciles them before writing again.
    """
    finished = Finished(journal_status, finished_ids)
    done, add_done = finished.has, finished.add
    rules = config.track_rules if config.track_rules.rules else None
    tally = send.tally  # as send counts and explains events: only a failure may have a root
    tally.keep_roots(tables())
    if tally.late is not None:  # a late event the journal has done was sent: not left out
        tally.late.done = done
    add_outcome, by_rule = tally.add_outcome, tally.rules
    apply, answer = known.apply, send.record
    requests: Sequence[ApiRequest]  # an event planned without a request has none
    read = AliasesRead.of(config.aliases_of, config.aliases, tables, makes_a_person(config))
    for item in items:
        event_id = item.id  # "" for input that is not an event
        kind = item.kind
        if read is not None and event_id and item.decided is None:  # done or not, as send's
            read(item)  # planning pass counts it
        if (decided := item.decided) is not None or not event_id:
            outcome, requests = decided or NOT_AN_EVENT, ()
        elif done(event_id):
            outcome, requests = ALREADY_DONE, ()
        else:
            planned = plan_event(item, config, known)
            if type(planned) is Outcome:  # it needs no request
                outcome, requests = planned, ()
            else:
                if resume is not None:
                    planned = resume(planned, event_id)
                send.requests = requests = []
                outcome = drive(planned, answer)
            if (learned := outcome.learned) is not None:  # most outcomes taught nothing
                apply(learned)
            add_done(event_id, outcome.status)
        root = add_outcome(kind, outcome, item)  # a knock-on's reason names its root
        status = outcome.status
        record = {
            "source": item.source,
            "id": event_id,
            "type": kind,
            "outcome": "planned" if status == "sent" else status,
            "reason": outcome.reason if root is None else root.told,
            "warnings": outcome.warnings,
            "dropped": outcome.dropped,
            "requests": requests,
        }
        if rules is not None and kind == "track" and event_id:  # with [[track]] rules
            if decided is None and outcome is not ALREADY_DONE:  # planned: plan_event found it
                record["rule"] = rule = NO_RULE if (found := item.rule) is None else found.label
            else:  # not planned (done, filtered out): found here
                record["rule"] = rule = rules.label(item.raw.get("event"))
            by_rule[rule] += 1
        yield record


# --- identities: the search way and the index way (SPEC 5, issue 15) ---------------------------

LISTING_KEYS = {"person": "GET /api/v2/persons", "org": "GET /api/v2/organizations"}


class Recorder:
    """The `send` of a dry-run's plans: note the request (the dict its record shows) among the
    current event's `requests`, count it by endpoint in `tally` (its tokens derived at the end),
    have `respond` answer it offline (or live, `--lookups`), and count the searches it answers,
    by kind, and how many found a record (an existing record, under `--assume existing` or
    `--lookups`), for the estimate of the index way. One for the run, one call per request.
    Searches are counted by stage (a search's stage names its kind: plans.common.search_request)
    and read by kind (`searches`, `found`), a few opcodes fewer a search."""

    __slots__ = ("canned", "counts", "found_by", "requests", "respond", "searched_by", "tally")

    def __init__(self, respond: Callable[[ApiRequest], ApiResponse], tally: Tally) -> None:
        self.requests: list[ApiRequest] = []
        self.respond = respond
        # The answers `respond` gives whatever the request (responder.py): no call for those.
        self.canned: Mapping[str, ApiResponse] = getattr(respond, "canned", {})
        self.tally = tally
        self.counts = tally.requests
        # By stage, each kind's there from the start: a plain dict's `+=` is specialized (a
        # Counter's, a dict subclass's, is not: 233 Ir more a search).
        self.searched_by = dict.fromkeys(SEARCHED, 0)
        self.found_by = dict.fromkeys(SEARCHED, 0)

    def record(self, request: ApiRequest) -> ApiResponse:  # a bound method: cheaper a call
        self.requests.append(request)  # the record's very dict (protocol.py)
        key = request.key
        try:  # a plain dict's `+=` (Tally.requests): an endpoint's first request raises, once
            self.counts[key] += 1
        except KeyError:
            self.counts[key] = 1
        canned = self.canned
        response = canned[key] if key in canned else self.respond(request)
        if key == SEARCH_KEY:
            self.searched_by[request.stage] += 1
            if response.data and response.ok:  # most find none
                self.found_by[request.stage] += 1
        return response

    @property
    def searches(self) -> Counter[str]:
        """The searches answered, by kind ("person", "org"): the kinds searched, no other."""
        return by_kind(self.searched_by)

    @property
    def found(self) -> Counter[str]:
        """The searches that found a record, by kind."""
        return by_kind(self.found_by)


SEARCHED = {entity.lookup: entity.kind for entity in (PERSON, ORG)}  # a search's stage: its kind


def by_kind(by_stage: Mapping[str, int]) -> Counter[str]:
    """The counts of the kinds searched (none for a kind never searched)."""
    return Counter({SEARCHED[stage]: count for stage, count in by_stage.items() if count})


@dataclass(frozen=True, slots=True)
class WayEstimate:
    way: Way
    requests: int
    tokens: int
    duration_s: float
    pages: int = 0  # listing pages of the index (its build and refreshes)
    refreshes: int = 0

    def record(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "requests": self.requests,
            "tokens": self.tokens,
            "duration_s": round(self.duration_s, 1),
        }
        if self.way == "index":
            document.update(pages=self.pages, refreshes=self.refreshes)
        return document


def identity_estimates(
    tally: Tally, searched: Recorder, accounts: Mapping[str, int | None], plan: str
) -> tuple[WayEstimate, WayEstimate]:
    """The replay's cost by search (the plan as shown) and by index: its searches replaced by
    listing each kind searched (the records the searches found, at least a page; none for an
    index the state keeps, of known size in `accounts`: a send refreshes it before the first
    event instead), plus a refresh page before lookups (a found record may have been re-keyed,
    a missing one made) every 10 s of the index way's duration, at least that one for a kept
    index."""
    index = Tally(requests=Counter(tally.requests))
    index.requests.pop(SEARCH_KEY, None)
    built, searches, found = 0, searched.searches, searched.found
    for kind in searches:  # the kinds searched (a Counter holds those counted)
        listed = 0 if accounts.get(kind) is not None else pages(found[kind])
        index.requests[LISTING_KEYS[kind]] += listed
        built += listed
    rounds = math.ceil(estimated_seconds(index, plan) / MAX_AGE_S)
    refreshes = 0
    for kind in searches:
        kept = accounts.get(kind) is not None  # refreshed before the first event
        more = min(searches[kind], max(rounds, 1 if kept else 0))
        index.requests[LISTING_KEYS[kind]] += more
        refreshes += more
    by_index = way_estimate("index", index, plan, built + refreshes, refreshes)
    return way_estimate("search", tally, plan), by_index


def way_estimate(
    way: Way, tally: Tally, plan: str, pages: int = 0, refreshes: int = 0
) -> WayEstimate:
    """A way's requests as `tally` counts them, their tokens and duration at `plan`'s rates."""
    requests = sum(tally.requests.values())
    return WayEstimate(
        way, requests, tally.tokens, estimated_seconds(tally, plan), pages, refreshes
    )
