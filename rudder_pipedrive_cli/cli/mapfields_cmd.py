"""`rpd map-fields`: the account's fields (key, name, type, custom, searchable, options) and lead
labels, as a table, as JSON, or as `[fields.*]` tables ready to paste into rpd.toml."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table as RichTable

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.account import (
    account_client,
    field_tables,
    labels_note,
    listing_refused,
)
from rudder_pipedrive_cli.cli.common import Env, command_env, handle_errors
from rudder_pipedrive_cli.cli.exits import exit_status_for
from rudder_pipedrive_cli.cli.render import plain, print_table, wanted_width
from rudder_pipedrive_cli.cli.screen import write_document
from rudder_pipedrive_cli.core.catalog import ENTITIES, Catalog
from rudder_pipedrive_cli.core.catalog_fetch import PAGE_SIZE, fetch_catalog
from rudder_pipedrive_cli.core.catalog_findings import NOUNS, identity_warnings, is_searchable
from rudder_pipedrive_cli.core.plans.base import LABELS, FieldInfo
from rudder_pipedrive_cli.io.tomlwrite import render

FORMATS = ("table", "json", "toml")
# What each listing lists ("deal fields": leads use them), by its name in `Catalog.failed`.
LISTS = {**{entity: f"{NOUNS[entity]} fields" for entity in ENTITIES}, LABELS: "lead labels"}
TOML_HEADER = (
    "Paste into rpd.toml: event trait path = Pipedrive field key.",
    "Trait names are made from the field names: rename them to your events' traits.",
)


def field_json(info: FieldInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "name": info.name,
        "type": info.field_type,
        "custom": info.is_custom,
        "searchable": is_searchable(info),
        "options": [{"id": oid, "label": label} for label, oid in info.options.items()],
    }


def catalog_json(
    catalog: Catalog, entities: Sequence[str], *, custom_only: bool, labels: bool
) -> bytes:
    document: dict[str, Any] = {
        entity: [
            field_json(info)
            for info in catalog.fields.get(entity, ())
            if info.is_custom or not custom_only
        ]
        for entity in entities
    }
    if labels:
        document["lead_labels"] = [
            {"id": lid, "name": name} for name, lid in catalog.labels.items()
        ]
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def print_tables(
    env: Env, catalog: Catalog, entities: Sequence[str], *, custom_only: bool, labels: bool
) -> None:
    for entity in entities:
        listed = [f for f in catalog.fields.get(entity, ()) if f.is_custom or not custom_only]
        title = f"{LISTS[entity].capitalize()} ({len(listed)})"
        table = fields_table(title, listed)
        if env.out.is_terminal and wanted_width(env.out, table) > env.out.width:
            table = narrow_fields_table(title, listed)  # an 80-column terminal: keys kept whole
        print_table(env.out, table)  # narrower still (40 columns): a line each
    if labels:
        label_table = RichTable(title=f"Lead labels ({len(catalog.labels)})", title_justify="left")
        label_table.add_column("name")
        label_table.add_column("id", no_wrap=True)
        for name, lid in catalog.labels.items():
            label_table.add_row(plain(name), plain(lid))
        print_table(env.out, label_table)


def fields_table(title: str, listed: Sequence[FieldInfo]) -> RichTable:
    """A column each: key, name, type, custom, searchable, options."""
    table = RichTable(title=title, title_justify="left")
    for column in ("key", "name", "type", "custom", "searchable", "options"):
        table.add_column(column, no_wrap=column == "key")
    for info in listed:
        table.add_row(
            plain(info.key),
            plain(info.name),
            plain(info.field_type),
            "yes" if info.is_custom else "",
            "yes" if is_searchable(info) else "",
            plain(options_text(info)),
        )
    return table


def narrow_fields_table(title: str, listed: Sequence[FieldInfo]) -> RichTable:
    """The same for a narrow terminal: the whole key (to copy), then the field in words: its
    name; its type, custom, searchable; its options, each on its own line, wrapped between
    words rather than cut to `Nam…`."""
    table = RichTable(title=title, title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("field")
    for info in listed:
        traits = [info.field_type]
        traits += ["custom"] * info.is_custom + ["searchable"] * is_searchable(info)
        lines = [info.name, ", ".join(traits), *([options_text(info)] if info.options else [])]
        table.add_row(plain(info.key), plain("\n".join(lines)))
    return table


def options_text(info: FieldInfo) -> str:
    return ", ".join(f"{label}={oid}" for label, oid in info.options.items())


@handle_errors
def map_fields_command(
    entity: Annotated[
        str,
        typer.Option(
            "--entity", "-e", metavar="ENTITY", help="persons | organizations | leads | all."
        ),
    ] = "all",
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json|toml",
            help="table | json | toml ([fields.*] tables to paste).",
        ),
    ] = "table",
    custom_only: Annotated[
        bool, typer.Option("--custom-only", help="Only custom fields (toml always is).")
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=PAGE_SIZE, hidden=True)
    ] = PAGE_SIZE,
    base_url: opt.BaseUrlOpt = None,
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: opt.QuietOpt = False,
    sandbox: opt.SandboxOpt = False,
) -> None:
    """List the account's person, organization and deal (lead) fields, and the lead labels.

    A listing Pipedrive refuses (its retries spent) is said, and the others are listed; the
    exit status is then 4 (2 for a 4xx, which no rerun mends). One that gets no answer at all
    stops it at once (4)."""
    opt.one_of("--format", format, FORMATS)
    opt.one_of("--entity", entity, (*ENTITIES, "all"))
    entities = ENTITIES if entity == "all" else (entity,)
    overrides = {"pipedrive.base_url": base_url}
    with command_env(
        config=config, verbose=verbose, quiet=quiet, sandbox=sandbox, overrides=overrides
    ) as env:
        with account_client(env) as client:
            catalog = client.exchange(
                fetch_catalog(entities, labels="leads" in entities, page_size=page_size, each=True)
            )
            # Each listing stands alone, as in a send: what answered is listed.
            listed = tuple(entity for entity in entities if entity in catalog.fields)
            labels = "leads" in entities and LABELS not in catalog.failed
            failures = list(catalog.failed.values())
            if failures and not listed and not labels:  # nothing to list: one error, as before
                raise listing_refused(client, env.settings.api_url, failures[0])
        plan_config = env.settings.plan_config()
        for warning in identity_warnings(catalog, plan_config, listed):
            env.warn(warning)
        if format == "json":
            write_document(catalog_json(catalog, listed, custom_only=custom_only, labels=labels))
        elif format == "toml":
            tables = field_tables(catalog, plan_config, listed)
            header: tuple[str, ...] = TOML_HEADER
            # The labels that answered, with no [fields.leads] to hold them (the deal fields
            # were refused): said under the header, not lost.
            if labels and "leads" not in listed and (note := labels_note(catalog)):
                header = (*TOML_HEADER, note)
            write_document(render(tables, header=header).encode())
        else:
            print_tables(env, catalog, listed, custom_only=custom_only, labels=labels)
        for name, failure in catalog.failed.items():
            env.warn(f"{failure.reason}; {LISTS.get(name, name)} not listed")
    if failures:
        raise typer.Exit(int(exit_status_for(failures[0])))
