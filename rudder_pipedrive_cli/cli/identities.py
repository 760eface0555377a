"""How a send resolves identities (`--identities search|index|auto`, SPEC 5): choosing the way,
building or refreshing the identity index before the first event, and the one listing of the
account's leads (deals, activities, notes) that replaces per-person listings when it is cheaper
(core/index.py decides)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rudder_pipedrive_cli.cli.screen import plural, seconds_text
from rudder_pipedrive_cli.core.costs import token_cost
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.index import (
    AUTO_FROM,
    IdentityIndex,
    IndexRows,
    Survey,
    Way,
    account_listing_pays,
    choose,
    origins_key,
    rpd_origins,
    worth_counting,
)
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import (
    LIST_LIMIT,
    ORG,
    PERSON,
    Pages,
    Step,
    index_listing,
    listed,
    next_cursor,
    page_after,
    probe_steps,
)
from rudder_pipedrive_cli.core.plans.track import KINDS, Kind
from rudder_pipedrive_cli.core.preview import Recorder, WayEstimate, identity_estimates
from rudder_pipedrive_cli.core.protocol import ApiResponse, PdId
from rudder_pipedrive_cli.core.tally import Tally

ENTITIES = {"person": PERSON, "org": ORG}
CLOCK: Callable[[], float] = time.monotonic  # the index's age is on it (tests set their own)
Exchange = Callable[[Step[Any]], Any]  # runs a pure exchange against Pipedrive, to its value
# What a send says as each listing before its first event starts (progress.steps), in words a
# terminal's 80 columns hold: only those made are said.
LISTING = "listing the identity index: the account's {}"
REFRESHING = "refreshing the identity index: the {} changed since its last listing"
LISTING_RECORDS = "listing the account's {}: those rpd sent before"


def nothing_said(_what: str) -> None:
    pass


@dataclass(slots=True)
class Identities:
    """What a send settled on before its first event, for the plans and the report."""

    way: Way = "search"
    index: IdentityIndex | None = None
    # The origins rpd gave the account's records of the kinds listed whole (by `origins_key`).
    origins: dict[PdId, set[str]] = field(default_factory=dict)
    listed: list[str] = field(default_factory=list)  # those kinds: lead, deal, activity, note
    notes: list[str] = field(default_factory=list)  # warnings for the user
    searched: list[str] = field(default_factory=list)  # kinds whose index could not be listed
    unchosen: list[str] = field(default_factory=list)  # kinds `auto` left to search

    def report(self) -> dict[str, Any]:
        """The keys send's report adds: the way used, what the index cost, and by index the
        identities that went by search all the same (`by_search`)."""
        document: dict[str, Any] = {"identities": self.way}
        if self.index is not None:
            stats = self.index.stats
            document["identity_index"] = {
                "pages": stats.pages,
                "refreshes": stats.refreshes,
                "lead_pages": stats.lead_pages,
                **{f"{kind}_pages": n for kind, n in stats.track_pages.items()},
            }
            document["identities_by_search"] = self.by_search()
        return document

    def by_search(self) -> list[str]:
        """The identities (userId, groupId) searched for on an index's run: their index could
        not be listed, or `auto` found searching them cheaper."""
        searched = {*self.searched, *self.unchosen}
        return [entity.identity for kind, entity in ENTITIES.items() if kind in searched]

    def line(self) -> str:
        """The report's line about it."""
        if self.index is None:
            return "identities: by search"
        stats = self.index.stats
        listed = [(stats.lead_pages, "leads")] if stats.lead_pages else []
        listed += [(n, KINDS[kind].plural) for kind, n in stats.track_pages.items()]
        records = "".join(f", {n:,} of {kinds}" for n, kinds in listed)
        searched = " and ".join(f"{ENTITIES[kind].identity}s" for kind in self.searched)
        return (
            f"identities: by index ({plural(stats.pages, 'listing page')}{records}; "
            f"{plural(stats.refreshes, 'refresh', 'refreshes')})"
            + (f"; {searched} by search: their index could not be listed" if searched else "")
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Ways:
    """dry-run's two estimates, and the way a send of the same input would take."""

    search: WayEstimate
    index: WayEstimate
    way: Way
    why: str

    def record(self) -> dict[str, Any]:
        return {"way": self.way, "search": self.search.record(), "index": self.index.record()}

    def line(self) -> str:
        search, index = self.search, self.index
        return (
            f"identities by search: {search.tokens:,} API tokens, "
            f"{seconds_text(search.duration_s)}; by index: {index.tokens:,} API tokens, "
            f"{seconds_text(index.duration_s)} "
            f"({plural(index.pages, 'listing page')}; "
            f"{plural(index.refreshes, 'refresh', 'refreshes')}); a send would resolve them by "
            f"{self.way} ({self.why})"
        )


def identity_ways(
    mode: str,
    tally: Tally,
    searched: Recorder,
    rows: IndexRows | None,
    config: PlanConfig,
    *,
    plan: str,
    stdin: bool,
) -> Ways:
    """dry-run's estimates of both ways, and which one `mode` takes on this input. `auto`
    weighs the searches dry-run's plan makes, of each kind (an identity an event finds or
    creates is known to the later ones; one that is neither, a person that cannot be made, is
    searched again by each); an index kept in the state gives its size."""
    accounts: dict[str, int | None] = {}
    for kind, key in identity_fields(config).items():
        built = rows is not None and key and rows.since(kind, key) is not None
        accounts[kind] = rows.size(kind) if rows is not None and built else None
    search, index = identity_estimates(tally, searched, accounts, plan)
    way: Way
    if mode != "auto":
        way, why = "index" if mode == "index" else "search", f"--identities {mode}"
    elif stdin:
        way, why = "search", "auto: standard input or a pipe is not counted first"
    else:
        searches = searched.searches
        chosen = [k for k, n in searches.items() if choose(n, accounts.get(k)) == "index"]
        known = [k for k in searches if accounts.get(k) is not None]
        way = "index" if chosen else "search"
        why = f"auto: {searches_planned(searches)}, the index {auto_rule(searches, known)}"
    return Ways(search=search, index=index, way=way, why=why)


def searches_planned(searches: Mapping[str, int]) -> str:
    """What auto weighs in a dry-run: the searches its plan makes, of each kind (the same
    identity is searched again where the plan does: a search's tokens are what listing saves),
    not distinct identities: "1,100 person and 111 organization searches planned"."""
    counts = [f"{searches[e.kind]:,} {e.noun}" for e in (PERSON, ORG) if searches.get(e.kind)]
    return f"{' and '.join(counts)} searches planned" if counts else "no searches planned"


def auto_rule(searches: Mapping[str, int], known: list[str]) -> str:
    """When auto takes the index, each kind weighed on its own (`choose`)."""
    if known:
        return "when listing costs fewer tokens"
    kinds = sum(1 for n in searches.values() if n)
    return f"from {AUTO_FROM} of a kind on" if kinds > 1 else f"from {AUTO_FROM} on"


def identity_fields(config: PlanConfig) -> dict[str, str]:
    """The identity field of each kind ("person", "org"; "" when unset)."""
    return {"person": config.user_id_field, "org": config.group_id_field}


def chosen_fields(
    mode: str, config: PlanConfig, survey: Survey | None, known: IdentityStore, rows: IndexRows
) -> dict[str, str]:
    """The identity fields of the kinds ("person", "org") whose identities go by index. `auto`
    without a first pass (stdin) searches: nothing was counted."""
    fields = {kind: key for kind, key in identity_fields(config).items() if key}
    if mode == "index":
        return fields
    if mode == "search" or survey is None:
        return {}
    chosen = {}
    for kind, key in fields.items():
        account = rows.size(kind) if rows.since(kind, key) is not None else None
        unknown = survey.unknown(kind, known, worth_counting(account))
        if choose(unknown, account) == "index":
            chosen[kind] = key
    return chosen


class Dearer(Exception):
    """An account listing that has more pages than it was worth: per-person listings cost less."""

    def __init__(self, spent: int) -> None:
        super().__init__(f"{spent} API tokens spent")
        self.spent = spent  # on the pages it listed


def account_listing(
    index: IdentityIndex, kind: Kind, budget: int | None = None
) -> Step[dict[PdId, set[str]]]:
    """The account's records of `kind` (leads: archived ones too), paged: `origins_key` -> the
    origins rpd gave them. With a `budget` (API tokens: what the per-person listings it replaces
    cost), it stops with `Dearer` as soon as the pages still to list would bring it there: the
    account may hold many more records than its persons (assumed one each), and what it spent
    then stays below what it was to save."""
    origins: dict[PdId, set[str]] = {}
    stats = index.stats
    costs = [token_cost(f"GET {path}") for path in kind.listings]
    spent = 0
    path = 0  # the listing being read

    def take(response: ApiResponse, stage: str) -> list[None]:
        nonlocal spent
        records = listed(response, stage)  # a page refused is not one listed
        if kind.name == "lead":
            stats.lead_pages += 1
        else:
            stats.track_pages[kind.name] = stats.track_pages.get(kind.name, 0) + 1
        for person, found in rpd_origins(records, kind.origins).items():
            origins.setdefault(origins_key(kind.name, person), set()).update(found)
        spent += costs[path]
        if kind.offset:  # as `Pages` pages: v1 ends at a page that held none
            more = bool(records) and page_after(response.additional_data, 0, len(records))[0]
        else:
            more = next_cursor(response.additional_data) is not None
        ahead = (costs[path] if more else 0) + sum(costs[path + 1 :])  # the least still to list
        if budget is not None and ahead and spent + ahead >= budget:
            raise Dearer(spent)
        return [None] * len(records)

    note = (
        f"list the account's {kind.plural} once, to skip {kind.plural} sent before "
        f"(by {'origin_id' if kind.name in ('lead', 'deal') else 'marker'})"
    )
    query: dict[str, str | int] = {} if kind.offset else {"limit": LIST_LIMIT}
    for listing_path in kind.listings:
        pages = Pages(
            listing_path,
            query,
            stage=f"list {kind.plural}",
            note=note,
            read=take,
            offset=kind.offset,
        )
        yield from probe_steps(pages)
        path += 1
    return origins


def prepare(
    mode: str,
    config: PlanConfig,
    *,
    survey: Survey | None,
    known: IdentityStore,
    rows: IndexRows,
    exchange: Exchange,
    doing: Callable[[str], None] = nothing_said,
) -> Identities:
    """Choose the way and, by index, build what the state does not hold yet (`exchange` runs a
    pure exchange against Pipedrive); an index an earlier run kept is refreshed, before the
    first event when the first pass counted identities to look up, else before its first
    lookup, so a rerun with nothing left to do lists nothing. A listing that fails leaves
    those identities to search, with a note. `doing` is told each listing as it starts."""
    chosen = chosen_fields(mode, config, survey, known, rows)
    if not chosen:
        return Identities()
    index = IdentityIndex(rows, chosen, clock=CLOCK)
    unchosen = [kind for kind, key in identity_fields(config).items() if key and kind not in chosen]
    identities = Identities(way="index", index=index, unchosen=unchosen)
    for kind in chosen:
        entity = ENTITIES[kind]
        # Kept from an earlier run: refreshed here when the first pass counted identities to
        # look up (else each of the first events, a concurrency's worth, would list the same
        # records updated since), and otherwise before its first lookup, if any.
        if index.covers(kind) and (survey is None or not survey.unknown(kind, known, 1)):
            continue
        doing((REFRESHING if index.covers(kind) else LISTING).format(entity.plural))
        try:
            exchange(probe_steps(index_listing(index, entity)))
        except PlanFailure as failure:
            identities.notes.append(
                f"the {entity.noun} index could not be listed ({failure.reason}): "
                f"{entity.identity}s are resolved by search"
            )
            del index.fields[kind]
            identities.searched.append(kind)
    if not index.fields:
        return Identities(notes=identities.notes)
    if "person" in index.fields and survey is not None:
        for kind in (kind for kind in KINDS if kind in survey.tracked):  # in a fixed order
            origins = listed_origins(
                index, KINDS[kind], survey, known, exchange, doing, identities.notes
            )
            if origins is not None:
                identities.origins.update(origins)
                identities.listed.append(kind)
    return identities


def listed_origins(
    index: IdentityIndex,
    kind: Kind,
    survey: Survey,
    known: IdentityStore,
    exchange: Exchange,
    doing: Callable[[str], None],
    notes: list[str],
) -> dict[PdId, set[str]] | None:
    """The origins of the account's rpd records of `kind`, listed once when that is cheaper than
    listing the records of each person whose track events create that kind, that the index
    (not the cache) finds; None when per-person listings are cheaper."""
    to_list = 0
    for user in survey.tracked.get(kind.name, ()):
        if known.person_id(user) is None:
            ids = index.lookup("person", user)
            if ids and known.lead_origins(origins_key(kind.name, ids[0])) is None:
                to_list += 1
    if not account_listing_pays(to_list, index.rows.size("person")):
        return None
    budget = to_list * sum(token_cost(f"GET {path}") for path in kind.listings)
    doing(LISTING_RECORDS.format(kind.plural))
    try:
        origins: dict[PdId, set[str]] = exchange(account_listing(index, kind, budget))
    except PlanFailure as failure:
        notes.append(
            f"the account's {kind.plural} could not be listed ({failure.reason}): "
            f"each person's {kind.plural} are listed when needed"
        )
        return None
    except Dearer as dearer:
        notes.append(
            f"the account holds more {kind.plural} than its persons: listing them all would "
            f"cost more than listing those of {to_list} persons one by one ({budget} API "
            f"tokens); stopped after {dearer.spent}, each person's are listed when needed"
        )
        return None
    return origins
