"""What `rpd map-fields`, `rpd check` and `rpd init` share: a client for a person at a terminal
(a send's listings before its first event use it too), and the `[fields.*]` tables suggested from
the account's catalog."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rudder_pipedrive_cli.cli.common import Env
from rudder_pipedrive_cli.core.account import NOT_FOUND, Account, fetch_account, not_pipedrive
from rudder_pipedrive_cli.core.catalog import Catalog
from rudder_pipedrive_cli.core.catalog_findings import IDENTITY_FIELDS, NOUNS, suggest_traits
from rudder_pipedrive_cli.core.errors import PlanFailure
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.http.blocking import BlockingClient
from rudder_pipedrive_cli.http.client import Reachability
from rudder_pipedrive_cli.io.config import require_token
from rudder_pipedrive_cli.io.tomlwrite import Entry, Table

# map-fields, check and init answer a person at a terminal: a failure (a mistyped company_domain
# that does not resolve, a refused connection, a 5xx) is retried twice, about a second, not the
# six times over some 25 s that carry a long send through a network blip. Rate limits are waited
# out either way (they are not failures).
INTERACTIVE_RETRIES = 2
# And each attempt waits this long for its connection and its answer, not a send's 30 s: a
# server that accepts the connection and never answers (a wedged proxy, a firewall that drops
# the answers) stopped them after some 92 s (30 s read timeouts, then the 60 s streak a send
# rides out). Pipedrive answers these requests (the account, a page of 500 fields, a search of
# dry-run --lookups) in about a second, a big account's search in a few; 10 s leaves a slow but
# live account room, and the 3 tries with their back-off (at most 1.5 s) stop within about
# 32 s, a third of before. A request none of whose tries got an answer then stops the command
# in a send's words (`Unreachable`, exit 4).
INTERACTIVE_TIMEOUT = 10.0


def account_client(
    env: Env, *, max_retries: int = INTERACTIVE_RETRIES, interactive: bool = True, **shared: Any
) -> BlockingClient:
    """A client for the few ordered requests of map-fields, check, init and dry-run --lookups
    (`interactive`: `INTERACTIVE_TIMEOUT`, and a request never answered stops the command); and
    for the listings a send makes before its first event (fields, the identity index), with its
    --max-retries, a send's patience, and `shared` with its events (PipedriveClient's tally,
    pacer and reach: counted in the run's tally, through the events' pacer and reachability)."""
    settings = env.settings
    patience: dict[str, Any] = {}
    if interactive:
        patience = {"timeout": INTERACTIVE_TIMEOUT, "unanswered_stops": True}
    return BlockingClient(
        token=require_token(settings),
        base_url=settings.api_url,
        plan=settings.plan,
        max_retries=max_retries,
        **(patience | shared),
    )


def interactive_reach() -> Reachability:
    """The reachability of dry-run --lookups, which previews a send: it stops where its send
    would, but at `INTERACTIVE_TIMEOUT`'s pace. A send stops on a streak of 60 s, two of its
    30 s timeouts after the first: a server that never answers, at the third try; this streak
    is two of the shorter timeouts. A listing whose answers are lost (no timeout) goes on, as
    in the send."""
    return Reachability(seconds=2 * INTERACTIVE_TIMEOUT)


def ask_account(client: BlockingClient, url: str) -> Account | PlanFailure:
    """The account the token is in (`GET /v1/users/me`), or why Pipedrive did not say. A 404 at
    `url` with a path stops the command (`not_pipedrive`): every request would answer it."""
    try:
        return client.exchange(fetch_account())
    except PlanFailure as failure:
        wrong = not_pipedrive(failure.status, url)
        if wrong is not None:
            raise wrong from None
        return failure


def listing_refused(client: BlockingClient, url: str, failure: PlanFailure) -> PlanFailure:
    """`failure`, a listing's, to raise; a 404 at a base URL with a path first asks `GET
    /v1/users/me`, so that such a URL stops the command with `not_pipedrive`'s words, as check
    and send do. At an origin a 404 proves nothing of the URL (a gateway may forward every
    route but one): nothing more is asked there, and the hint names what to check."""
    if not_pipedrive(failure.status, url) is not None:  # a 404, and a path to blame for it
        ask_account(client, url)
    elif failure.status == NOT_FOUND:
        failure.hint = LISTING_NOT_FOUND
    return failure


LISTING_NOT_FOUND = (
    "check base_url and company_domain: every Pipedrive account answers this listing, so they "
    "may name another server (`rpd check` asks the account there)"
)


def field_tables(catalog: Catalog, config: PlanConfig, entities: Sequence[str]) -> list[Table]:
    """`[fields.*]` tables of every custom field; the identity fields are left to rpd (given by
    key or by name: the catalog resolves names to keys), each in its own entity's table only: a
    user_id_field set to an organization field's key (check fails it) is no reason to leave that
    field out of [fields.organizations]."""
    resolved = catalog.apply(config)
    tables = []
    for entity in entities:
        identity = {
            getattr(resolved, setting): setting
            for setting, owner in IDENTITY_FIELDS
            if owner == entity
        }
        suggestions = suggest_traits(catalog, entity, exclude=identity)
        footer = [
            f'"{info.name}" is identity.{identity[info.key]}: rpd fills it'
            for info in catalog.fields.get(entity, ())
            if info.key in identity and info.key
        ]
        if entity == "leads" and (note := labels_note(catalog)):
            footer.append(note)
        tables.append(
            toml_fields_table(
                entity,
                [Entry(key=s.trait, value=s.key, comment=s.comment) for s in suggestions],
                notes=() if suggestions else [f"the account has no {NOUNS[entity]} custom fields"],
                footer=footer,
            )
        )
    return tables


def toml_fields_table(entity: str, entries: list[Entry], **more: Any) -> Table:
    """The `[fields.ENTITY]` table of `entries` (trait = field key), with `more` of `Table`."""
    comment = "leads use deal fields" if entity == "leads" else ""
    return Table(name=f"fields.{entity}", entries=entries, comment=comment, **more)


def labels_note(catalog: Catalog) -> str:
    """The comment line naming the account's lead labels ("" when it has none)."""
    if not catalog.labels:
        return ""
    return "lead labels (names work in label_ids): " + ", ".join(catalog.labels)
