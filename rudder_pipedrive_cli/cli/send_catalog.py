"""A send's catalog before its first event: listed live or, when the listing fails, the one the
state saved (io/catalog_cache.py `live_or_cached`), applied to the config (as dry-run applies the
one the state saved), and what can only fail refused before any event."""

from __future__ import annotations

from collections.abc import Callable, Sized
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING

from rudder_pipedrive_cli.cli.common import Env
from rudder_pipedrive_cli.core.catalog import ENTITIES, Catalog
from rudder_pipedrive_cli.core.catalog_fetch import SALES_LISTINGS, fetch_catalog, sales_listings
from rudder_pipedrive_cli.core.catalog_findings import (
    Finding,
    needs_listing,
    send_refuses,
    unknown_keys,
    unset_identity,
)
from rudder_pipedrive_cli.core.errors import ConfigError, NeverConnected, PlanFailure, StoppedEarly
from rudder_pipedrive_cli.core.plans.base import LABELS, PlanConfig
from rudder_pipedrive_cli.io.catalog_cache import FieldStore, live_or_cached

if TYPE_CHECKING:  # dry-run, offline, imports this module and no httpx
    from rudder_pipedrive_cli.core.account import Account
    from rudder_pipedrive_cli.http.blocking import BlockingClient


def with_catalog(
    env: Env,
    config: PlanConfig,
    *,
    listing: Callable[[], Catalog],
    store: FieldStore | None,
    preview: bool = False,
) -> PlanConfig:
    """The config with the account's field types and lead labels, fetched once per run and kept
    in the state (`store`) for dry-run and for the next send whose listing fails.

    Without any listing values are sent as they are (Pipedrive then refuses what it cannot take,
    and those events are dead-lettered), so a failed listing is a warning, not a stop; unless
    the config maps a field that only a listing resolves (by its name): the run then stops before
    any event, as those values would be dropped from events journaled as done. Each listing
    stands alone: one that fails (`Catalog.failed`) is taken from the state when it saved one,
    else leaves out only what needs it (its entity's values unconverted, the track rules naming
    from it unresolved); the others are used.

    A send's `listing` (`listed_with`) goes through an `account_client`: through the events'
    pacer they spend the same burst window (a pacer that did not know of them would meet one 429
    per listing in the first window); their connection failures count towards the events'
    (Pipedrive unreachable stops the run).

    `rpd dry-run --lookups` (`preview`) plans with the same catalog, warnings and unresolved
    rules, and stops where a send stops (a listing that never connected: its `listed_with`): it
    keeps nothing in the state and warns of what a send refuses to start on instead of refusing
    it.
    """
    sourced = live_or_cached(listing, store, keep=not preview)
    catalog, failure = sourced.catalog, sourced.failure
    if catalog is None:  # the listing failed, and no earlier send saved one
        reason = failure.reason if failure is not None else "no field listing"
        stop_unless_resolved(config, ENTITIES, reason, failure)
        env.warn(f"{reason}; values will be sent without type conversion")
        return with_unresolvable(env, config, reason)
    if failure is not None:
        env.warn(f"{failure.reason}; using the field listing the state saved last time")
    for failed in sourced.saved.values():  # listed on its own: the others are used
        env.warn(f"{failed.reason}; using the one the state saved last time")
    for name, failed in catalog.failed.items():
        stop_unless_resolved(config, (name,), failed.reason, failed)
        env.warn(f"{failed.reason}; {LEFT.get(name, FIELDS_LEFT)}")
    judge_config(env, catalog, config, preview=preview)
    resolved = applied(env, catalog, config)
    sales = [failed.reason for name, failed in catalog.failed.items() if name in SALES_LISTINGS]
    return with_unresolvable(env, resolved, sales[0]) if sales else resolved


def judge_config(env: Env, catalog: Catalog, config: PlanConfig, *, preview: bool) -> None:
    """What a send says of the config against `catalog`, live or saved, before its first event:
    an identity field set but unusable refused (`refuse_what_can_only_fail`; a dry-run,
    `preview`, says send would not start) and a warning per mapped field the account lacks."""
    refuse_what_can_only_fail(env, send_refuses(catalog, config), preview=preview)
    for problem in unknown_keys(catalog, config):
        env.warn(problem)


def applied(env: Env, catalog: Catalog, config: PlanConfig, *, listed: bool = True) -> PlanConfig:
    """The config with the catalog applied. A track rule naming a pipeline, stage or activity
    type the account does not have is a config error; one whose listing the catalog lacks
    (`listed`: a send) fails its events, retryable. An offline dry-run (`listed` False) shows
    such names as placeholders instead."""
    try:
        resolved = catalog.apply(config)
    except ConfigError as error:
        where = env.settings.path or "settings (no config file)"
        raise ConfigError(f"{where}: {error.message}", hint=error.hint) from None
    if listed and resolved.track_rules.unresolved():  # the state saved a listing without them
        why = "the listing the state saved holds no pipelines, stages or activity types"
        return replace(resolved, track_rules=resolved.track_rules.unresolvable(why))
    return resolved


# What a send does without one listing (`Catalog.failed`): a field listing's, else these.
FIELDS_LEFT = "the values of its fields will be sent without type conversion"
LEFT = {
    LABELS: "lead labels will be left out",
    **dict.fromkeys(SALES_LISTINGS, "what track rules name from it cannot be resolved"),
}


def and_more(items: Sized) -> str:
    """What follows the first of `items` named: ` (and 2 more)`, or nothing for one."""
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


def stop_unless_resolved(
    config: PlanConfig, entities: tuple[str, ...], reason: str, failure: PlanFailure | None
) -> None:
    """Stop before any event when the config maps a field of `entities` that only their
    listing, which failed, resolves: sent as they are, those values would be lost or refused.
    A rerun later may get past it as it may get past `failure` (a 4xx, no: dry-run's exit 2,
    not 4, and no "try again later")."""
    unresolved = needs_listing(config, entities)
    if unresolved:
        raise PlanFailure(
            f"{reason}; without it {unresolved[0]}{and_more(unresolved)} cannot be resolved",
            status=failure.status if failure is not None else None,  # what the hint says
            retryable=failure is None or failure.retryable,
            hint="" if failure is None else failure.hint,
        ) from None


def with_unresolvable(env: Env, config: PlanConfig, why: str) -> PlanConfig:
    """The config whose track rules name what no listing resolved: their events fail
    (retryable, dead-lettered; a rerun sends them), said once here."""
    unresolved = config.track_rules.unresolved()
    if not unresolved:
        return config
    env.warn(
        f"{unresolved[0]}{and_more(unresolved)} cannot be resolved without the listings: the "
        "events of those track rules fail (retryable)"
    )
    return replace(config, track_rules=config.track_rules.unresolvable(why))


CHECK_ALL = "; `rpd check` runs every check"  # the end of each identity refusal's hint


def refuse_what_can_only_fail(
    env: Env, failed: list[Finding], *, preview: bool = False, also: str = ""
) -> None:
    """`rpd check`'s identity checks, before the first event: an identity field unset, missing,
    standard, unsearchable or numeric fails every event that needs it (issue 14 item 8: 17 events
    failed with HTTP 400 and 420 API tokens were spent where `check` said no): `send_refuses`,
    and `judge_unset_identity`. A dry-run (`preview`) says what a send refuses once, as a
    warning: each event of the plan still shows its end. `also`: more of the hint."""
    if not failed:
        return
    what = f"{failed[0].line}{and_more(failed)}: every event that needs it would fail"
    hint = f"{failed[0].hint}{CHECK_ALL}{also}"
    if preview:
        env.warn(f"{what}, so `rpd send` would not start ({hint})")
        return
    where = env.settings.path or "settings (no config file)"
    raise ConfigError(f"{where}: {what}", hint=hint)


# Without a first pass (standard input, a named pipe) send cannot tell whether any event names
# its person by an external id before it sends: it refuses an unset user_id_field then.
FROM_A_FILE = "; from a file (not standard input or a pipe), events with external ids go without it"


def judge_unset_identity(
    env: Env, config: PlanConfig, *, external: bool | None, preview: bool = False
) -> None:
    """An unset identity field (`unset_identity`), judged by whether any event to be planned names
    its person by an external id (`external`, from send's first pass, `Survey`; None without
    one). With none, every event that needs it would fail: send refuses to start, dry-run
    (`preview`) says it would not. With one, both say once that the events that need it fail,
    and send sends those with external ids (SPEC 4: identify needs no user_id_field for them)."""
    unset = unset_identity(config)
    if not external:
        also = FROM_A_FILE if external is None else ""
        refuse_what_can_only_fail(env, unset, preview=preview, also=also)
        return
    for finding in unset:
        env.warn(f"{finding.line}: the events that need it fail ({finding.hint}{CHECK_ALL})")


def list_catalog(client: BlockingClient, config: PlanConfig) -> Catalog:
    """The account's catalog, listed now through `client` (left open): the field listings, lead
    labels and what the track rules name, each on its own; when every one failed, the first
    failure (the state's saved catalog is then taken whole: `live_or_cached`)."""
    catalog = client.exchange(fetch_catalog(sales=sales_listings(config.track_rules), each=True))
    sales = (catalog.pipelines, catalog.stages, catalog.activity_types)
    if LABELS in catalog.failed and not catalog.fields and all(s is None for s in sales):
        raise next(iter(catalog.failed.values()))
    return catalog


def account_reached(
    client: BlockingClient, url: str, unreachable: Callable[[], StoppedEarly]
) -> Account | PlanFailure:
    """`ask_account`'s answer; a request that never connected stops the command before any
    event (`unreachable`, exit 4), as `listed_with`'s listing does: a send's, and dry-run
    --lookups' with a state (a send with one asks it first)."""
    from rudder_pipedrive_cli.cli.account import ask_account  # httpx: not for an offline dry-run

    answer = ask_account(client, url)
    if isinstance(answer, NeverConnected):
        raise unreachable()
    return answer


def listed_with(
    lists: Callable[[], AbstractContextManager[BlockingClient]],
    config: PlanConfig,
    unreachable: Callable[[], StoppedEarly],
) -> Callable[[], Catalog]:
    """`list_catalog` through the client `lists` gives: a send's, of its own, closed after;
    dry-run --lookups', its lookups' too. A listing that never connected stops the send
    (`unreachable`, exit 4) before its first event, where the state's saved listing and a
    warning would have let each event meet the dead port in turn until the streak of them
    (http/client.py `Reachability`) stopped it; one that connected and then lost its answer is
    a failed listing as before (a warning, and the send goes on)."""

    def listing() -> Catalog:
        with lists() as client:
            try:
                return list_catalog(client, config)
            except NeverConnected:
                raise unreachable() from None

    return listing
