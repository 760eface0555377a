"""`rpd state show|clear`: inspect and reset the replay state (SPEC 5)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.common import (
    MORE,
    Env,
    command_env,
    handle_errors,
    make_consoles,
    stdin_is_interactive,
)
from rudder_pipedrive_cli.cli.render import plain, print_table
from rudder_pipedrive_cli.cli.screen import document_for_screen, plural, say, write_document
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.plans.track import KINDS
from rudder_pipedrive_cli.io.config import Settings, config_path
from rudder_pipedrive_cli.io.objects import source_name
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_file import discard_leftovers, discard_state, lock_holder
from rudder_pipedrive_cli.io.state_path import check_state_path, leftovers
from rudder_pipedrive_cli.io.state_summary import NamespaceSummary

state_app = typer.Typer(
    help="Inspect or reset the replay state (identity cache, journal, writes in flight).",
    no_args_is_help=True,
)


# What send and dry-run do with --sandbox and no --state, said for the state commands.
NO_SANDBOX_STATE = "no state: --sandbox without --state keeps none (give --state to see a file)"


def namespace_title(summary: NamespaceSummary) -> str:
    """An account as `URL (company ID, token FINGERPRINT)`; a namespace an older rpd keyed on a
    URL as `URL (token FINGERPRINT)`."""
    if not summary.fingerprint:
        return summary.namespace
    company = f"company {summary.company_id}, " if summary.company_id else ""
    return f"{summary.base_url or '?'} ({company}token {summary.fingerprint})"


def namespace_table(summary: NamespaceSummary, holder: str | None = None) -> Table:
    table = Table(show_header=False)
    table.add_column("what")
    table.add_column("count")
    ids = summary.identities
    members = f", {plural(summary.memberships, 'membership')}" if summary.memberships else ""
    # What the rows are: a person per userId, an organization per groupId. Persons they were:
    # two userIds merged into one person are 2 here where Pipedrive holds 1.
    table.add_row(
        "identities", f"{plural(ids['person'], 'userId')}, {plural(ids['org'], 'groupId')}{members}"
    )
    # What the state knows of the records track events made, by kind: leads always (as rpd
    # without track rules makes them), deals, activities and notes when it knows any.
    for kind, origins in summary.lead_origins.items():
        persons = summary.leads_listed.get(kind, 0)
        if kind == "lead" or origins or persons:
            known = f"{plural(origins, ORIGIN_WORDS[kind])} known for {plural(persons, 'person')}"
            table.add_row(KINDS[kind].plural, known)
    table.add_row("journal", ", ".join(f"{n:,} {status}" for status, n in summary.journal.items()))
    if summary.objects_finished:  # a resumed run of a bucket or backup folder reads past them
        table.add_row("objects", f"{summary.objects_finished:,} finished, not read again")
    # The writes, and the events whose send settles them (as send's warning counts them).
    writes = plural(summary.inflight, "write")
    if summary.inflight:
        writes += f" of {plural(summary.inflight_events, 'event')}"
    if summary.to_settle:
        settle = plural(summary.to_settle, "create or merge", "creates or merges")
        writes += f"; {settle} to settle"
    table.add_row("in flight", writes)
    table.add_row("last run", plain(last_run_text(summary, holder)))
    return table


# What finds a record a track event made again (SPEC 4 track rules).
ORIGIN_WORDS = {"lead": "origin id", "deal": "origin id", "activity": "marker", "note": "marker"}


def last_run_text(summary: NamespaceSummary, holder: str | None = None) -> str:
    """The namespace's last run; `holder` is the pid of the rpd that holds the file's lock, whose
    run is the file's latest (one run at a time holds it)."""
    run = summary.last_run
    if run is None:
        return "none"
    if run.finished_at is None:
        if holder is not None and run.latest:
            return f"started {run.started_at}, in progress (pid {holder})"
        return f"started {run.started_at}, did not finish"
    # `rpd send` stores its whole report: its nonzero event counts say what the run did.
    events = (run.counts or {}).get("events")
    shown = events if isinstance(events, Mapping) else (run.counts or {})
    counts = ", ".join(
        # The report's `not_attempted` in words, its counts grouped as the report's are.
        f"{key.replace('_', ' ')} {f'{value:,}' if isinstance(value, int) else value}"
        for key, value in shown.items()
        if isinstance(value, int | float | str) and value != 0
    )
    stopped = (run.counts or {}).get("stopped")  # send's report of a run that stopped early
    if isinstance(stopped, Mapping):
        counts = ", ".join(filter(None, (counts, f"stopped early (exit {stopped.get('exit')})")))
    return f"{run.started_at} to {run.finished_at}" + (f": {counts}" if counts else "")


def state_env(config: str | None, verbose: bool, quiet: bool) -> ContextManager[Env]:
    """The state file is all these commands need of the config (its default place): no word on
    a missing one, and no emulator: `--sandbox` names no state file, and the commands talk to
    no Pipedrive (one started said `sandbox: Pipedrive emulator at URL` for nothing). Nor is
    what the config holds read, or the environment's settings: one a send refuses (an unknown
    key, $RPD_PLAN=gold) is no reason to refuse to show or clear the state. A config named
    that is not a file is said as every command says it."""
    path, named = config_path(config, os.environ)
    if named and not path.is_file():
        return command_env(config=config, verbose=verbose, quiet=quiet, say_no_config=False)
    out, err = make_consoles()
    settings = Settings(path=path if path.is_file() else None)
    return nullcontext(Env(settings=settings, out=out, err=err, verbose=verbose, quiet=quiet))


def state_path(env: Env, state: Path | None, *, sandbox: bool) -> Path | None:
    """The state file send and dry-run would keep: none for `--sandbox` without `--state`."""
    return state if sandbox else env.replay_state_path(state)


@state_app.command("show", short_help="Show what the state holds, per account.")
@handle_errors
def show_command(
    state: opt.StateOpt = None,
    format: Annotated[
        str, typer.Option("--format", "-f", metavar="table|json", help="table | json.")
    ] = "table",
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: opt.QuietOpt = False,
    sandbox: opt.SandboxOpt = False,
) -> None:
    """Show what the state holds, per namespace (Pipedrive account and token fingerprint)."""
    opt.one_of("--format", format, ("table", "json"))
    with state_env(config, verbose, quiet) as env:
        path = state_path(env, state, sandbox=sandbox)
        if path is None:
            if format == "json":
                write_document(orjson.dumps({"path": None, "namespaces": []}) + b"\n")
            else:
                say(env.out, NO_SANDBOX_STATE, indent=MORE)
            return
        check_state_path(path)  # a symlink loop is no "no state"
        # Before reading: a run that ends in between is shown finished, not "did not finish".
        holder = lock_holder(path)  # None when there is no file, which reads as empty
        with ReplayState.open(path, "", readonly=True) as replay_state:
            summaries = replay_state.summary()
        if format == "json":
            # A path that is not UTF-8 (no JSON can hold it) as its sources name such a file.
            shown = source_name(str(path))
            document = {"path": shown, "namespaces": [s.as_json() for s in summaries]}
            data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
            write_document(document_for_screen(data))
        elif not path.exists():
            say(env.out, f"no state at {path}", indent=MORE)
        elif not summaries:
            say(env.out, f"state at {path} is empty", indent=MORE)
        else:
            say(env.out, f"state at {path}", indent=MORE)
            for summary in summaries:  # the title on a line of its own, above its table
                say(env.out, namespace_title(summary), indent=MORE)
                print_table(env.out, namespace_table(summary, holder))


@state_app.command("clear", short_help="Delete the state file: start from scratch.")
@handle_errors
def clear_command(
    state: opt.StateOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: opt.QuietOpt = False,
    sandbox: opt.SandboxOpt = False,
) -> None:
    """Delete the state file (every namespace): the next send starts from scratch."""
    with state_env(config, verbose, quiet) as env:
        env.out.quiet = quiet  # -q: only errors (and the question, which is click's)
        path = state_path(env, state, sandbox=sandbox)
        if path is None:
            say(env.out, NO_SANDBOX_STATE, indent=MORE)
            return
        check_state_path(path)
        # A run killed, then its file deleted, leaves its journal in the -wal: send refuses it.
        left = leftovers(path)
        if not path.exists() and not left:
            say(env.out, f"no state at {path}", indent=MORE)
            return
        if not yes:
            if not stdin_is_interactive():
                raise UsageError(
                    f"refusing to clear {path} without confirmation", hint="pass --yes"
                )
            answer = confirmed(f"Delete the replay state in {path}?")
            if answer is not True:
                said = "kept" if answer is False else "no answer (end of input): kept"
                say(env.out, f"{said} {path}", indent=MORE)
                return
        if left:
            names = " and ".join(name.name for name in discard_leftovers(path))
            say(env.out, f"no state at {path}: removed {names} left beside it", indent=MORE)
            return
        discarded = discard_state(path)
        if discarded.unreadable:
            say(env.out, f"removed {path}: it {discarded.unreadable}", indent=MORE)
            return
        if not discarded.namespaces:
            say(env.out, f"cleared {path} (it was empty)", indent=MORE)
            return
        say(env.out, f"cleared {path}:")
        for summary in discarded.namespaces:
            say(
                env.out,
                f"  {namespace_title(summary)}: "
                f"{plural(sum(summary.identities.values()), 'identity', 'identities')}, "
                f"{plural(sum(summary.journal.values()), 'journal entry', 'journal entries')}, "
                f"{plural(summary.inflight, 'write')} in flight",
                indent=MORE,  # under its account, not in line with the next one
            )


def confirmed(question: str) -> bool | None:
    """The answer to a yes/no `question` at the terminal; None for end of input (Ctrl-D), which
    is no answer, not a stop signal: click's prompt took it for Ctrl-C (interrupted, exit 130).
    The prompt's line is ended, as the Enter of an answer ends it."""
    try:
        return typer.confirm(question)
    except typer.Abort as abort:
        if not isinstance(abort.__context__, EOFError):
            raise  # a stop signal: exits by it (cli/main.py)
        typer.echo()
        return None
