"""`rpd init`: write a starting rpd.toml, converted from a RudderStack Pipedrive destination config
or listed from the configured account's fields. The API token is never written to the file."""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.account import (
    account_client,
    field_tables,
    listing_refused,
    toml_fields_table,
)
from rudder_pipedrive_cli.cli.common import (
    MORE,
    READING_A_TERMINAL,
    Env,
    command_env,
    handle_errors,
    make_consoles,
    no_space,
    stdin_is_interactive,
)
from rudder_pipedrive_cli.cli.exits import NO_SPACE
from rudder_pipedrive_cli.cli.screen import say, show, write_document
from rudder_pipedrive_cli.core.catalog import ENTITIES
from rudder_pipedrive_cli.core.catalog_fetch import fetch_catalog
from rudder_pipedrive_cli.core.catalog_findings import (
    IDENTITY_FIELDS,
    describe,
    guess_identity,
    identity_warnings,
)
from rudder_pipedrive_cli.core.costs import PLAN_NAMES
from rudder_pipedrive_cli.core.errors import ConfigError, PlanFailure, UsageError
from rudder_pipedrive_cli.core.rudderstack import Converted, convert
from rudder_pipedrive_cli.io.config import (
    STDIN_SHOWN,
    TOKEN_ENV,
    config_path,
    read_small,
    resolve_base_url,
    stdin_closed,
)
from rudder_pipedrive_cli.io.tomlwrite import Entry, Table, render

TOKEN_NOTE = f"api_token: not written here; set ${TOKEN_ENV} in the environment instead"


def pipedrive_table(*, plan: str, company_domain: str = "", base_url: str = "") -> Table:
    entries = [Entry(key="plan", value=plan, comment=" | ".join(PLAN_NAMES))]
    if company_domain:
        entries.append(Entry(key="company_domain", value=company_domain))
    if base_url:
        entries.append(Entry(key="base_url", value=base_url))
    return Table(name="pipedrive", entries=entries, notes=[TOKEN_NOTE])


def identity_table(
    *,
    user_id_field: str,
    group_id_field: str,
    create_persons: bool,
    default_currency: str = "",
    comments: Mapping[str, str] | None = None,
) -> Table:
    rows: tuple[tuple[str, str | bool, str], ...] = (  # key, value, comment (or `comments`'s)
        ("user_id_field", user_id_field, "person field holding the userId"),
        ("group_id_field", group_id_field, "organization field holding the groupId"),
        ("create_persons", create_persons, "Enable User Creation"),
        ("default_currency", default_currency, "for a lead's value without a currency"),
    )
    notes = comments or {}
    return Table(
        name="identity",
        entries=[Entry(key=k, value=v, comment=notes.get(k, about)) for k, v, about in rows],
    )


def converted_tables(converted: Converted, base_url: str = "") -> list[Table]:
    tables = [
        pipedrive_table(plan="growth", base_url=base_url),
        identity_table(
            user_id_field=converted.user_id_field,
            group_id_field=converted.group_id_field,
            create_persons=converted.create_persons,
            comments={
                "user_id_field": "UserId Token",
                "group_id_field": "GroupId Token",
            },
        ),
    ]
    for entity, mapping in converted.fields.items():
        entries = [Entry(key=trait, value=key) for trait, key in mapping.items()]
        tables.append(toml_fields_table(entity, entries))
    for events, create in converted.track:
        if create == "lead":
            comment = "whitelistedEvents: these track events become leads"
        elif events == ("*",):
            comment = "every other track event: RudderStack would not send it"
        else:
            comment = "blacklistedEvents: RudderStack would not send these"
        tables.append(
            Table(
                name="track",
                array=True,
                entries=[Entry(key="events", value=events), Entry(key="create", value=create)],
                comment=comment,
            )
        )
    return tables


STDIN = Path("-")  # `--from-rudderstack -`: standard input, as `rpd send -` reads events


def shown(path: Path) -> str:
    """How a message names the destination's file: `-` is standard input, as in `rpd send -`."""
    return STDIN_SHOWN if path == STDIN else str(path)


def read_destination(path: Path) -> object:
    hint = "check the --from-rudderstack path"
    name = shown(path)
    if path == STDIN and sys.stdin is None:  # `rpd init --from-rudderstack - <&-`
        raise stdin_closed("pipe the destination's JSON in, or give its file (nothing was written)")
    stream = sys.stdin.buffer if path == STDIN else None
    try:
        return orjson.loads(read_small(path, "a RudderStack destination's export", hint, stream))
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror}", hint=hint) from None
    except orjson.JSONDecodeError as error:
        raise UsageError(f"{name}: not valid JSON: {error}", hint="export it again") from None


def from_rudderstack(path: Path, err: Console, *, quiet: bool, base_url: str | None) -> str:
    """The destination in `path` as a config; `base_url` (--base-url) written into it, checked
    as any base_url is (a conversion asks no account, so nothing else would)."""
    try:
        url = resolve_base_url(base_url, "") if base_url else ""  # an API path too
    except UsageError as error:
        raise ConfigError(f"--base-url: {error.message}", hint=error.hint) from None
    if path == STDIN and stdin_is_interactive():  # as `rpd send -` says it
        say(err, READING_A_TERMINAL.format("the destination's JSON", "it"), indent=MORE)
    document = read_destination(path)
    try:
        converted = convert(document)
    except UsageError as error:  # what the document holds is wrong: name the file
        raise UsageError(f"{shown(path)}: {error.message}", hint=error.hint) from None
    if not quiet:
        for warning in converted.warnings:
            say(err, f"warning: {shown(path)}: {warning}", indent=MORE)
    header = [
        "rpd config converted from the RudderStack Pipedrive destination "
        + ("read from standard input." if path == STDIN else f"in {path.name}."),
        "Check it against the account with `rpd check`.",
    ]
    return render(converted_tables(converted, url), header=header)


def from_account(env: Env) -> str:
    """The configured (or --sandbox) account's fields as a config; identity fields kept from the
    settings, else guessed from field names (and said so). All or nothing, unlike a send's
    listings: a listing Pipedrive refuses stops it with no file written, as a config made
    without it would say the account has none of those fields and guess no identity field."""
    settings = env.settings
    with account_client(env) as client:
        try:
            catalog = client.exchange(fetch_catalog())
        except PlanFailure as failure:
            raise listing_refused(client, settings.api_url, failure) from None
    guessed = guess_identity(catalog)
    identity: dict[str, str] = {}
    comments: dict[str, str] = {}
    for setting, entity in IDENTITY_FIELDS:
        key = getattr(settings, setting) or guessed.get(setting, "")
        identity[setting] = key
        info = catalog.field(entity, key) if key else None
        if info is not None:
            guess = "" if getattr(settings, setting) else ", guessed from its name: check it"
            comments[setting] = describe(info) + guess
    plan_config = replace(
        settings.plan_config(),
        user_id_field=identity["user_id_field"],
        group_id_field=identity["group_id_field"],
    )
    for warning in identity_warnings(catalog, plan_config, ENTITIES):  # kept, as map-fields says
        env.warn(warning)
    tables = [
        pipedrive_table(
            plan=settings.plan,
            company_domain=settings.company_domain,
            # The sandbox's port changes every run: its config is used with --sandbox instead.
            base_url="" if env.sandbox is not None else settings.base_url,
        ),
        identity_table(
            user_id_field=identity["user_id_field"],
            group_id_field=identity["group_id_field"],
            create_persons=settings.create_persons,
            default_currency=settings.default_currency,
            comments=comments,
        ),
        *field_tables(catalog, plan_config, ENTITIES),
    ]
    header = ["rpd config listed from the account's fields (`rpd map-fields`)."]
    if env.sandbox is not None:
        header.append("Listed from the sandbox: use it with --sandbox.")
    header.append("Trait names are made from the field names: rename them to your events' traits.")
    return render(tables, header=header)


def elsewhere(output: str | None, config: str | None) -> str:
    """Where to write instead, said with the option (or the variable) that named the file: a
    `-c` under a file was hinted `give -o a file`, an option the user never gave."""
    folder = "a file in an existing, writable folder"
    if output is not None or (config is None and not os.environ.get("RPD_CONFIG")):
        return f"give -o {folder} (or '-' for stdout)"
    if config is not None:
        return f"give --config {folder}, or -o - for stdout"
    return f"set $RPD_CONFIG to {folder}, or give -o - for stdout"


def cannot_write(target: Path, reason: str, output: str | None, config: str | None) -> UsageError:
    return UsageError(f"cannot write {target}: {reason}", hint=elsewhere(output, config))


@handle_errors
def init_command(
    from_rudderstack_path: Annotated[
        Path | None,
        opt.file_option(
            "--from-rudderstack",
            help="Convert this RudderStack Pipedrive destination config (JSON; '-' for stdin).",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            parser=opt.given,
            metavar="FILE",
            help="Write the config here ('-' for stdout). Default: where the other commands "
            "read it (-c, else $RPD_CONFIG, else ./rpd.toml).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    base_url: opt.BaseUrlOpt = None,
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: opt.QuietOpt = False,
    sandbox: opt.SandboxOpt = False,
) -> None:
    """Write a starting rpd.toml: from a RudderStack destination config, or from the account's
    fields (as `rpd map-fields` lists them). The API token is never written to the file."""
    # By default the file the other commands will read, which need not exist yet (`rpd init -c
    # new.toml`, or $RPD_CONFIG naming a new file): it was read first, "cannot read config".
    named, _ = config_path(config, os.environ)
    target = None if output == "-" else Path(output) if output is not None else named
    if target is not None and target.is_dir():  # no --force overwrites a folder: not hinted so
        raise cannot_write(target, os.strerror(errno.EISDIR), output, config)
    if target is not None and target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="use --force to overwrite it")
    if from_rudderstack_path is not None:
        _, err = make_consoles()
        text = from_rudderstack(from_rudderstack_path, err, quiet=quiet, base_url=base_url)
        token_source = "the token from your RudderStack destination"
    else:
        with command_env(
            config=config,
            verbose=verbose,
            quiet=quiet,
            sandbox=sandbox,
            overrides={"pipedrive.base_url": base_url},
            say_no_config=False,
            config_to_be_made=target == named,
            config_overwritten=force and target == named,
        ) as env:
            err = env.err
            text = from_account(env)
        token_source = "your Pipedrive API token"
    if target is None:
        write_document(text.encode())
    else:
        try:
            write_whole(target, text)
        except OSError as error:
            if error.errno in NO_SPACE:  # a full disk: room helps, not another folder
                raise no_space(OSError(error.errno, error.strerror, str(target))) from None
            raise cannot_write(target, error.strerror or str(error), output, config) from None
    if not quiet:  # on a terminal, wrapped lines go on indented as rpd's others do
        if target is not None:
            say(err, f"wrote {target}", indent=MORE)
        say(err, "The API token is not in the file. Set it in the environment:", indent=MORE)
        show(err, f"  export {TOKEN_ENV}=<{token_source}>")  # a command to copy: never wrapped


def write_whole(target: Path, text: str) -> None:
    """Write `target` whole or leave what was there: into a file beside it, then renamed over
    it (through a link to it; a file that was there keeps its mode). Written in place, a full
    disk or the size limit cut the file, `--force` destroying the config it replaced, a first
    init leaving an empty one that the rerun refused as 'already exists'. What is no regular
    file (-o /dev/stdout, a pipe: what the link leads to, whose real path may be no path,
    /proc/PID/fd/pipe:[N]) is written as it is, and so is a file in a folder rpd may not make
    or replace a file in (the file itself writable: init wrote it so before)."""
    try:
        mode: int | None = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        target.write_text(text, encoding="utf-8")
        return
    real = Path(os.path.realpath(target))
    beside = real.with_name(f".{real.name}.rpd-{os.getpid()}")
    try:
        beside.write_text(text, encoding="utf-8")
        if mode is not None:
            os.chmod(beside, stat.S_IMODE(mode))
        os.replace(beside, real)
    except BaseException as error:
        beside.unlink(missing_ok=True)
        if mode is None or not isinstance(error, PermissionError):
            raise
        target.write_text(text, encoding="utf-8")  # a folder no file can be made in
