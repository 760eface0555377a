"""`rpd dry-run`: show the requests a replay would make, event by event, without writing."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.common import Env, command_env, handle_errors
from rudder_pipedrive_cli.cli.exits import exit_status_for_run
from rudder_pipedrive_cli.cli.render import planned_line, print_dry_run_summary
from rudder_pipedrive_cli.core.catalog import catalog_requests, fetch_catalog
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.intake import intake
from rudder_pipedrive_cli.core.known import Learner, MemoryKnown
from rudder_pipedrive_cli.core.preview import estimated_seconds, preview
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.core.responder import Assume, LiveLookups, OfflineResponder
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.http.blocking import BlockingClient
from rudder_pipedrive_cli.io.catalog_cache import load_catalog
from rudder_pipedrive_cli.io.config import require_token
from rudder_pipedrive_cli.io.deadletter import check_output_path, open_output
from rudder_pipedrive_cli.io.readers import EventReader, require_readable
from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, ScratchIds, Spill
from rudder_pipedrive_cli.io.state import ReplayState, namespace_key

ASSUMPTIONS: dict[str, Assume] = {"missing": "missing", "existing": "existing"}
OUTPUT = ("--output", "choose another --output path")


def open_readonly_state(
    env: Env, state: Path | None, cache_entries: int = CACHE_ENTRIES
) -> ReplayState | None:
    """The replay state, read-only: its identity cache, journal and field catalog.

    The namespace is the configured account's (base URL and token); without a token, the one
    namespace the file holds for the base URL. No file, or no such namespace: no state.
    """
    path = env.replay_state_path(state)
    if path is None or not path.exists():
        return None
    base_url = env.settings.api_url
    token = env.settings.api_token.reveal()
    if token:
        return ReplayState.open(
            path, namespace_key(base_url, token), readonly=True, cache_entries=cache_entries
        )
    with ReplayState.open(path, "", readonly=True) as probe:
        matches = [s.namespace for s in probe.summary() if s.base_url == base_url]
    if len(matches) != 1:
        if matches:
            env.warn(
                f"{path} holds {len(matches)} token namespaces for {base_url}: set the token "
                "to choose one; planning without the state"
            )
        return None
    return ReplayState.open(path, matches[0], readonly=True, cache_entries=cache_entries)


@handle_errors()
def dry_run_command(
    paths: opt.PathsArg,
    format: Annotated[
        str, typer.Option("--format", "-f", help="table | json (summary) | ndjson (per event).")
    ] = "table",
    output: opt.OutputOpt = None,
    assume: Annotated[
        str, typer.Option("--assume", help="Offline lookups: missing | existing.")
    ] = "missing",
    lookups: Annotated[
        bool, typer.Option("--lookups", help="Make real read-only lookups (needs a token).")
    ] = False,
    types: opt.TypeOpt = None,
    since: opt.SinceOpt = None,
    until: opt.UntilOpt = None,
    limit: opt.LimitOpt = None,
    strict: opt.StrictOpt = False,
    plan: opt.PlanOpt = None,
    state: opt.StateOpt = None,
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: opt.QuietOpt = False,
    sandbox: opt.SandboxOpt = False,
    cache_entries: opt.CacheEntriesOpt = CACHE_ENTRIES,
) -> None:
    """Plan a replay without writing: which requests each event would make, and why."""
    if format not in ("table", "json", "ndjson"):
        raise UsageError(f"unknown --format {format!r}", hint="use table, json or ndjson")
    assumption = ASSUMPTIONS.get(assume)
    if assumption is None:
        raise UsageError(f"unknown --assume {assume!r}", hint="use missing or existing")
    event_filter = EventFilter.from_options(types, since, until)
    with (
        command_env(
            config=config,
            verbose=verbose,
            quiet=quiet,
            sandbox=sandbox,
            overrides={"pipedrive.plan": plan},
        ) as env,
        ExitStack() as stack,
    ):
        settings = env.settings
        require_readable(paths)
        if output is not None:
            keep = {
                "the replay state": env.replay_state_path(state),
                "the config file": settings.path,
            }
            check_output_path(output, "--output", tuple(paths), keep)
        plan_config = settings.plan_config()
        tally = Tally()
        respond: Callable[[ApiRequest], ApiResponse] = OfflineResponder(plan_config, assumption)
        if lookups:
            # The lookups are counted apart: the plan counts each search it would make, and a
            # lookup that answers one is that same search, made now.
            made = Tally()
            client = stack.enter_context(
                BlockingClient(
                    token=require_token(settings),
                    base_url=settings.api_url,
                    plan=settings.plan,
                    tally=made,
                )
            )
            catalog = client.exchange(fetch_catalog())
            tally.add_requests(made)  # a send lists the catalog too
            for problem in catalog.unknown_keys(plan_config):
                env.warn(problem)
            plan_config = catalog.apply(plan_config)
            live = LiveLookups(OfflineResponder(plan_config, assumption), client.send)
            respond = live
        else:  # a send lists the catalog before its first event: part of the estimate
            for request in catalog_requests():
                tally.add_request(request)
        replay_state = open_readonly_state(env, state, cache_entries)
        # Without a state, what earlier events would create is kept in bounded tables.
        known: Learner = MemoryKnown(stack.enter_context(Spill(cache_entries)).table)
        journal_status = None
        if replay_state is not None:
            stack.enter_context(replay_state)
            known, journal_status = replay_state, replay_state.journal_status
            cached = None if lookups else load_catalog(replay_state)
            if cached is not None:
                plan_config = cached.apply(plan_config)
                respond = OfflineResponder(plan_config, assumption)
        items = intake(EventReader(paths, strict=strict), event_filter, limit)
        finished = stack.enter_context(ScratchIds())  # a repeated messageId: already done
        planned = preview(items, plan_config, respond, known, tally, journal_status, finished)
        sink: IO[bytes] = sys.stdout.buffer
        if output is not None:  # created with its folders, like send's report
            sink = stack.enter_context(open_output(output, "wb", *OUTPUT))
        summary_console = env.err if (format != "table" or output) else env.out
        if format == "ndjson":
            dumps, write = orjson.dumps, sink.write
            for item in planned:
                write(dumps(item.record(), option=orjson.OPT_APPEND_NEWLINE))
        elif format == "table":
            for item in planned:
                line = planned_line(item)
                if output:
                    sink.write(line.plain.encode() + b"\n")
                else:
                    env.out.print(line, soft_wrap=True)
        else:
            for _ in planned:
                pass
        seconds = estimated_seconds(tally, settings.plan)
        if format == "json":
            report = tally.to_json(duration_s=seconds, dead_letter=None)
            sink.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        sink.flush()
        if not quiet:
            print_dry_run_summary(summary_console, tally, plan=settings.plan, seconds=seconds)
    raise typer.Exit(int(exit_status_for_run(tally.outcomes["failed"])))
