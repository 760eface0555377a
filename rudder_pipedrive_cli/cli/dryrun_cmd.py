"""`rpd dry-run`: show the requests a replay would make, event by event, without writing."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import replace
from functools import partial
from itertools import islice, repeat
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import orjson
import typer

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.common import (
    Env,
    command_env,
    handle_errors,
    late_events,
    note_finished_objects,
    note_late_events,
    note_reading_a_terminal,
    taken_events,
    without_token,
    without_token_in,
)
from rudder_pipedrive_cli.cli.exits import NO_SPACE, exit_status_for_run
from rudder_pipedrive_cli.cli.identities import identity_ways
from rudder_pipedrive_cli.cli.render import PROSE, planned_line, print_dry_run_summary
from rudder_pipedrive_cli.cli.screen import say_text
from rudder_pipedrive_cli.cli.send_catalog import (
    account_reached,
    applied,
    judge_config,
    judge_unset_identity,
    listed_with,
    with_catalog,
)
from rudder_pipedrive_cli.core.account import USERS_ME_REQUEST
from rudder_pipedrive_cli.core.catalog import Catalog
from rudder_pipedrive_cli.core.catalog_fetch import catalog_requests, sales_listings
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.identity_cache import IdentityStore, settled
from rudder_pipedrive_cli.core.index import Survey, input_aliases, surveyed
from rudder_pipedrive_cli.core.preview import Recorder, preview
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.core.responder import Assume, LiveLookups, OfflineResponder
from rudder_pipedrive_cli.core.tally import Tally, estimated_seconds
from rudder_pipedrive_cli.io.catalog_cache import live_or_cached
from rudder_pipedrive_cli.io.deadletter import (
    NOTHING_PLANNED,
    check_output_path,
    open_output,
    output_error,
    owner_only,
    refuse_inside_input_folders,
)
from rudder_pipedrive_cli.io.readers import (
    ALIAS_MENTIONS,
    DEFAULT_MAX_ITEM_BYTES,
    EventReader,
    read_once,
    require_readable,
)
from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, ScratchIds, Spill

if TYPE_CHECKING:  # imported when used: an offline dry-run needs neither httpx nor sqlite3
    from rudder_pipedrive_cli.io.state import ReplayState

ASSUMPTIONS: dict[str, Assume] = {"missing": "missing", "existing": "existing"}
OUTPUT = ("--output", "choose another --output path")
LINES_PER_WRITE = 64  # NDJSON records joined per write of the output (about 32 KiB)


def open_readonly_state(env: Env, state: Path | None, cache_entries: int) -> ReplayState | None:
    """The replay state, read-only: its identity cache, journal and field catalog.

    dry-run asks Pipedrive nothing, so the namespace is the account a send with this base URL
    (any spelling) and token was keyed on, which the state remembers (or what an older rpd keyed
    on the URL); without a token, the one account the file holds for the URL. No file: no state.
    A file that holds nothing for this account is said, with the accounts it does hold; an
    empty one (a send the token was refused to leaves one) is no news: planning is as without.
    """
    path = env.replay_state_path(state)
    if path is None:
        return None
    from rudder_pipedrive_cli.io.state_path import check_not_orphaned, check_state_path

    check_state_path(path)  # a path under a file, a symlink loop: no "no state"
    check_not_orphaned(path)
    if not path.exists():
        return None
    from rudder_pipedrive_cli.cli.state_cmd import namespace_title
    from rudder_pipedrive_cli.io.state import ReplayState
    from rudder_pipedrive_cli.io.state_accounts import normalised_url, token_fingerprint

    base_url = env.settings.api_url
    token = env.settings.api_token.reveal()
    with ExitStack() as opened:
        replay_state = opened.enter_context(
            ReplayState.open(path, "", readonly=True, cache_entries=cache_entries)
        )
        namespaces = replay_state.use_remembered(base_url, token)
        if len(namespaces) == 1:
            opened.pop_all()
            return replay_state
        held = replay_state.summary()
    if not held:
        return None
    shown = normalised_url(base_url)
    if namespaces:
        env.warn(
            f"{path} holds {len(namespaces)} token namespaces for {shown}: set the token "
            "to choose one; planning without the state"
        )
        return None
    who = f"{shown} (token {token_fingerprint(token)})" if token else shown
    accounts = "; ".join(namespace_title(summary) for summary in held) or "nothing"
    env.warn(
        f"{path} holds nothing for {who}, so every event is planned as new; it holds: {accounts}"
    )
    return None


def ndjson_lines(records: Iterable[Any]) -> Iterator[bytes]:
    """Each record as its NDJSON line. orjson's arguments are given by position, repeated: a
    `partial` holding `option=` copies its keyword dict for every line."""
    return map(orjson.dumps, records, repeat(None), repeat(orjson.OPT_APPEND_NEWLINE))


def write_lines(sink: IO[bytes], lines: Iterator[bytes], batch: int = LINES_PER_WRITE) -> None:
    """Write `lines`, `batch` at a time joined in C (a write each cost more than a line's
    `orjson.dumps`); what came before an error (`--strict`, Ctrl-C) is written, then it raised.
    A batch is forgotten as its write starts, so a write that failed (or was interrupted) is not
    made again: its lines may be out, in part or whole."""
    made: list[bytes] = []
    try:
        while True:
            made.extend(islice(lines, batch))  # it keeps what came before an error
            if not made:
                return
            chunk = b"".join(made)
            made.clear()
            sink.write(chunk)
    except BaseException:
        if made:
            sink.write(b"".join(made))
        raise


@contextmanager
def named_on_error(sink: IO[bytes], output: Path) -> Iterator[None]:
    """A write to `--output` refused for want of space is an error naming the file (events
    are read while it is written: their errors are their own); the file is closed at once, so
    that closing it later does not fail again."""
    try:
        yield
    except OSError as error:
        if error.errno not in NO_SPACE:
            raise
        with contextlib.suppress(OSError):
            sink.close()
        raise output_error(output, "--output", OUTPUT[1], error) from None


@handle_errors
def dry_run_command(
    paths: opt.PathsArg,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json|ndjson",
            help="table | json (summary) | ndjson (per event).",
        ),
    ] = "table",
    output: opt.OutputOpt = None,
    assume: Annotated[
        str,
        typer.Option(
            "--assume",
            metavar="missing|existing",
            help="Offline, an identity the state does not hold is missing (the plan creates "
            "it) or existing (updated by a placeholder id, {person:u-1}).",
        ),
    ] = "missing",
    lookups: Annotated[
        bool, typer.Option("--lookups", help="Make real read-only lookups (needs a token).")
    ] = False,
    types: opt.TypeOpt = None,
    since: opt.SinceOpt = None,
    until: opt.UntilOpt = None,
    limit: opt.LimitOpt = None,
    strict: opt.StrictOpt = False,
    max_item_bytes: opt.MaxItemBytesOpt = DEFAULT_MAX_ITEM_BYTES,
    plan: opt.PlanOpt = None,
    base_url: opt.BaseUrlOpt = None,
    identities: opt.IdentitiesOpt = None,
    state: opt.StateOpt = None,
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: Annotated[  # the plan is dry-run's output: -q keeps it ("Only errors." did not say)
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Only the plan (or -f's output) and errors: no summary.",
        ),
    ] = False,
    sandbox: opt.SandboxOpt = False,
    cache_entries: opt.CacheEntriesOpt = CACHE_ENTRIES,
) -> None:
    """Plan a replay without writing: which requests each event would make, and why."""
    opt.one_of("--format", format, ("table", "json", "ndjson"))
    assumption = ASSUMPTIONS[opt.one_of("--assume", assume, tuple(ASSUMPTIONS))]
    event_filter = EventFilter.from_options(types, since, until)
    require_readable(paths)  # before a sandbox starts: a missing file is said first
    with (
        command_env(
            config=config,
            verbose=verbose,
            quiet=quiet,
            sandbox=sandbox,
            overrides={
                "pipedrive.plan": plan,
                "pipedrive.base_url": base_url,
                "pipedrive.identities": identities,
            },
            state=state,
        ) as env,
        ExitStack() as stack,
    ):
        settings = env.settings
        if output == Path("-"):  # `-o -`: standard output, as without -o (not a file named -)
            output = None
        if output is not None:
            keep = env.kept_files(state)
            check_output_path(output, "--output", tuple(paths), keep, NOTHING_PLANNED)
        if (state_path := env.replay_state_path(state)) is not None and state_path.exists():
            # a state where the input folder's listing finds it would be read as events
            refuse_inside_input_folders(state_path, "--state", tuple(paths), NOTHING_PLANNED)
        plan_config = settings.plan_config()
        tally = Tally(late=late_events(paths, event_filter))
        respond: Callable[[ApiRequest], ApiResponse] = OfflineResponder(plan_config, assumption)
        replay_state = open_readonly_state(env, state, cache_entries)
        if replay_state is not None:
            stack.enter_context(replay_state)
        if lookups:
            # The lookups are counted apart: the plan counts each search it would make, and a
            # lookup that answers one is that same search, made now. A preview at a terminal:
            # retried and timed as map-fields and check are (cli/account.py), not for a send's
            # 25 s and 30 s, but stopped where the send would stop (`interactive_reach`).
            from rudder_pipedrive_cli.cli.account import account_client, interactive_reach

            made, reach = Tally(), interactive_reach()
            client = stack.enter_context(
                account_client(env, tally=made, reach=reach, unanswered_stops=False)
            )
            # Where a send stops before its first event, so does its preview: a request that
            # never connected (Pipedrive unreachable, exit 4), in the send's words.
            unreachable = partial(reach.unreachable, settings.api_url)
            if state_path is not None:  # a send with a state asks who it is first: as it,
                # stop where each lookup would answer 404, or never connect
                account_reached(client, settings.api_url, unreachable)
            # As a send: each listing on its own, a failed one from the state when it saved one.
            listing = listed_with(lambda: nullcontext(client), plan_config, unreachable)
            plan_config = with_catalog(
                env, plan_config, listing=listing, store=replay_state, preview=True
            )
            tally.add_requests(made)  # a send lists the catalog too
            respond = LiveLookups(OfflineResponder(plan_config, assumption), client.send)
        else:  # a send lists the catalog before its first event: part of the estimate
            # What it refuses to start on and warns of, as the catalog the last send saved (if
            # any) says; an unset identity field is judged after the plan, as send judges it
            # after its pass.
            cached: Catalog | None = None
            if replay_state is not None:
                cached = live_or_cached(None, replay_state, keep=False).catalog
            if cached is not None:
                judge_config(env, cached, plan_config, preview=True)
            for request in catalog_requests(sales_listings(plan_config.track_rules)):
                tally.add_request(request)
            if state_path is not None:  # a send with a state asks who it is
                tally.add_request(USERS_ME_REQUEST)  # (--lookups asked above, counted in `made`)
            if cached is not None:  # planned with the catalog the last send saved
                plan_config = applied(env, cached, plan_config, listed=False)
                respond = OfflineResponder(plan_config, assumption)
        # Without a state, what earlier events would create is kept in bounded tables.
        spill = stack.enter_context(Spill(cache_entries))
        known: IdentityStore = IdentityStore(spill.table)
        journal_status, resume, objects_finished = None, None, None
        if replay_state is not None:
            from rudder_pipedrive_cli.replay import journaled

            known, journal_status = replay_state, replay_state.journal_status
            resume = partial(journaled, journal=replay_state, now=None)  # writes in flight
            # The objects a send would not read: finished under these skip rules (as send's)
            skips = plan_config.track_rules.skips
            objects_finished = partial(replay_state.object_finished, skips=skips)
        reader = EventReader(
            paths,
            strict=strict,
            max_item_bytes=max_item_bytes,
            window=event_filter.window,
            finished=objects_finished,
            warn=env.warn,
            retried=tally.store_retried,
        )
        note_finished_objects(env, reader)
        note_reading_a_terminal(env, paths)
        token = settings.api_token.pattern()
        if not read_once(paths):  # send's first pass: what the input's aliases move
            aliases, finished_read = spill.table(), None
            if replay_state is not None:  # and those an earlier send kept
                kept = replay_state.input_aliases()
                aliases.update(kept)
                if kept.complete:  # with those of the objects it finished: not read again
                    finished_read = objects_finished
            first_pass = EventReader(
                paths,
                max_item_bytes=max_item_bytes,
                window=event_filter.window,
                finished=finished_read,
                listed=reader.listed,  # listed once, as send's (a bucket of thousands of objects)
                retried=tally.store_retried,
                # Only aliases are wanted (no survey here): other lines go unparsed, unless
                # --limit counts every event.
                mentioning=ALIAS_MENTIONS if limit is None else (),
            )
            taken = taken_events(first_pass, event_filter, limit, token)
            direct = spill.table()
            chains = input_aliases(taken, None, aliases, direct)
            # Each previousId's own aliases only when the pass took the items the run takes (as
            # send: core.identity_cache.AliasesRead counts them as the run reads).
            same = finished_read is not None or not reader.objects_skipped
            own = settled(direct) if same else {}
            plan_config = replace(plan_config, aliases=chains, aliases_of=own)
        # Whether an event has an external id, noted as it is planned: with user_id_field unset,
        # send starts only then (it refuses to without a first pass: standard input, a pipe).
        # Only then: noting it is a call and a rule match an event (8% of a dry-run's time).
        items = taken_events(reader, event_filter, limit, token)
        survey: Survey | None = None
        if not plan_config.user_id_field:
            survey = Survey(rules=plan_config.track_rules, cap=0, journal_status=journal_status)
            items = surveyed(items, survey)
        finished = stack.enter_context(ScratchIds())  # a repeated messageId: already done
        recorder = Recorder(respond, tally)  # its searches give the estimate of the index way
        planned = preview(
            items, plan_config, recorder, known, journal_status, finished, spill.table, resume
        )
        if token is not None:  # event data that holds the API token is shown without it
            planned = without_token_in(planned, token)
        sink: IO[bytes] = sys.stdout.buffer
        if output is not None:  # created with its folders, like send's report
            sink = stack.enter_context(open_output(output, "wb", *OUTPUT, owner_only))
            stack.enter_context(named_on_error(sink, output))
        summary_console = env.err if (format != "table" or output) else env.out
        if format == "ndjson":
            write_lines(sink, ndjson_lines(planned))
        elif format == "table":
            for item in planned:
                line = planned_line(item)
                if output:
                    sink.write(line.plain.encode() + b"\n")
                else:
                    say_text(env.out, line, indent=PROSE)
        else:
            for _ in planned:
                pass
        without_token(tally, token)
        seconds = estimated_seconds(tally, settings.plan)
        ways = identity_ways(
            settings.identities,
            tally,
            recorder,
            None if replay_state is None else replay_state.index_rows(),
            plan_config,
            plan=settings.plan,
            stdin=read_once(paths),
        )
        if format == "json":
            report = tally.to_json(duration_s=seconds, dead_letter=None)
            report["identities"] = ways.record()
            sink.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        sink.flush()
        if survey is not None:  # user_id_field unset: said as send would judge it
            external = None if read_once(paths) else survey.external
            judge_unset_identity(env, plan_config, external=external, preview=True)
        if not quiet:
            print_dry_run_summary(
                summary_console,
                tally,
                plan=settings.plan,
                seconds=seconds,
                identities=ways.line(),
            )
        note_late_events(env, tally.late)
    raise typer.Exit(int(exit_status_for_run(tally.outcomes["failed"])))
