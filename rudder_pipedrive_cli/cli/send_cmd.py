"""`rpd send`: deliver events to Pipedrive, show progress, end with an honest report."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from itertools import count
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from typer import _click as click  # typer 0.26 carries click inside (pyproject pins it)

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.account import INTERACTIVE_RETRIES, account_client
from rudder_pipedrive_cli.cli.common import (
    MORE,
    Env,
    command_env,
    handle_errors,
    late_events,
    make_consoles,
    note_finished_objects,
    note_late_events,
    note_reading_a_terminal,
    taken_events,
    without_token,
)
from rudder_pipedrive_cli.cli.exits import (
    STOP_WORD,
    ExitStatus,
    exit_status_for,
    exit_status_for_run,
    handled,
    raise_stop,
)
from rudder_pipedrive_cli.cli.identities import Identities, prepare
from rudder_pipedrive_cli.cli.progress import SendProgress
from rudder_pipedrive_cli.cli.render import print_sandbox_holdings, print_send_report, send_again
from rudder_pipedrive_cli.cli.screen import plural, say
from rudder_pipedrive_cli.cli.send_catalog import (
    account_reached,
    judge_unset_identity,
    listed_with,
    with_catalog,
)
from rudder_pipedrive_cli.core.errors import (
    RAISED_BY,
    AuthRefused,
    PlanFailure,
    ReadingRefused,
    RpdError,
    StoppedEarly,
    signal_of,
    stop_in,
)
from rudder_pipedrive_cli.core.events import Event, fails_again
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.identity_cache import IdentityStore, settled
from rudder_pipedrive_cli.core.index import MemoryIndexRows, Survey, input_aliases
from rudder_pipedrive_cli.core.plans import HANDLERS
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.http.blocking import BlockingClient
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.http.index_waits import waiting
from rudder_pipedrive_cli.http.runner import LEFT_UNKNOWN, drive_all, read_in_thread
from rudder_pipedrive_cli.io.config import (
    REDACTED,
    TOKEN_ENV,
    Secret,
    TokenPattern,
    config_path,
    require_token,
)
from rudder_pipedrive_cli.io.deadletter import (
    DeadLetters,
    check_output_path,
    default_dead_letter_path,
    open_output,
    output_error,
    read_now,
    refuse_inside_input_folders,
)
from rudder_pipedrive_cli.io.objects import url_scheme
from rudder_pipedrive_cli.io.paths import default_state_path
from rudder_pipedrive_cli.io.readers import (
    DEFAULT_MAX_ITEM_BYTES,
    EventReader,
    read_once,
    require_readable,
)
from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, ScratchIds, Spill
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import ACCOUNT, namespace_key, normalised_url
from rudder_pipedrive_cli.io.state_file import StateInUse, StateUnusable, not_compacted
from rudder_pipedrive_cli.replay import Replay

CANCELLED_MESSAGE = (
    "{what} twice: events in flight were cancelled mid-way; rerun the same command to "
    "resume (with a state file, their writes are reconciled, not repeated)"
)
# A stop's line, by whether a write's answer was lost: its event failed and the write was left
# in flight (http/runner.py LEFT_UNKNOWN), for the rerun to reconcile; it said all were finished.
INTERRUPTED_MESSAGE = {
    False: "{what}: no new events were started and those in flight were finished; rerun the "
    "same command to resume",
    True: "{what}: no new events were started and those in flight were finished or left in "
    "flight (see the dead letters); rerun the same command to resume and reconcile them",
}
# --sandbox without --state keeps nothing to resume: a rerun starts a new, empty emulator.
# What the rerun does after credentials refused in the first pass, by whether earlier runs
# finished objects (which it does not read again).
FIRST_PASS_RERUN = {
    False: "no event was sent by this run, so the rerun starts from the first object",
    True: "no event was sent by this run; the rerun reads on from the objects not yet finished",
}
NO_STATE_RERUN = "--sandbox keeps no state, so a rerun starts over in a new, empty sandbox"
STARTING_MESSAGE = (
    "{what} while starting (reading the config, the state or the account's fields): no event "
    "was sent; rerun the same command to start again"
)
# A stop in the first pass: its line, after the report, by whether earlier runs finished objects.
FIRST_PASS_STOPPED = {
    resumed: "{what} in the first pass over the input: no event was sent by this run; rerun the "
    f"same command to {rerun}"
    for resumed, rerun in (
        (False, "start again"),
        (True, "read on from the objects not yet finished"),
    )
}
# A stop while the identity index is listed (after the first pass; minutes on a big account).
INDEX_STOPPED = (
    "{what} while listing the identity index: no event was sent by this run; rerun the same "
    "command to start again"
)
# What send does before its first event (progress.preparing): a terminal's spinner (under 80
# columns), a log's line. Those of the identity index: cli/identities.py.
READING_FIRST = "reading the input first: its aliases and the identities to look up"
STOPPED_BY = {  # "interrupted", "terminated (SIGTERM)", "hung up (SIGHUP)"
    signum: word if signum is signal.SIGINT else f"{word} ({signum.name})"
    for signum, word in STOP_WORD.items()
}


def hear(caught: BaseException, heard: list[signal.Signals]) -> None:
    """A Ctrl-C or SIGTERM caught before any event (in the first pass, or while the identity
    index is listed), noted in `heard` for the run's end (each handler's is there already);
    anything else `caught` raised again."""
    if (stop := stop_in(caught)) is None:
        raise caught
    if not heard:
        heard.append(signal_of(stop))


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[list[signal.Signals]]:
    """SIGTERM (schedulers, CI, `timeout`, `docker stop`) and SIGHUP (the terminal or ssh session
    closed) are handled as Ctrl-C (SPEC 6): outside the run's own handlers (runner.py), they
    raise `Terminated` or `HungUp` (RAISED_BY) where Ctrl-C would raise KeyboardInterrupt, so a
    send stopped while it starts or reports still exits 143 or 129. Each SIGTERM
    and Ctrl-C is also kept in the list it gives: a `Terminated` or KeyboardInterrupt that code in
    its way swallowed (a finalizer, a task whose error nobody read) is still a stop heard
    (`run_send`)."""
    heard: list[signal.Signals] = []

    def stop(signum: int, frame: object) -> None:
        heard.append(signal.Signals(signum))
        raise_stop(signum, frame)

    with handled(STOPPED_BY, stop):
        yield heard


def stops_held(heard: list[signal.Signals]) -> AbstractContextManager[None]:
    """A SIGTERM or Ctrl-C while the report is made is put in `heard`, not raised: raised, it
    ended the run with no report (kept in the state, printed, written), though SPEC 6 exits
    after it; and a Ctrl-C there as a first-pass stop ended reached `deliver` as a stop while
    starting, which wrote a report of nothing over the pass's."""
    return handled(STOPPED_BY, lambda signum, _: heard.append(signal.Signals(signum)))


class SayHandler(logging.Handler):
    """Each log line said as rpd's other lines are (`say`): wrapped between words on a
    terminal, its next lines indented; whole in a file or a pipe."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.console, self.format(record), indent=MORE)
        except Exception:  # logging's own way: report it, never raise
            self.handleError(record)


@contextmanager
def debug_log(console: Console, *, enabled: bool) -> Iterator[None]:
    """With -v, rpd's own debug lines (each retry and its wait) go to `console` (stderr)
    during the run.

    Only the `rudder_pipedrive_cli` logger: httpx and httpcore stay silent, so no request detail
    beyond an endpoint and a reason is ever printed.
    """
    if not enabled:
        yield
        return
    logger = logging.getLogger("rudder_pipedrive_cli")
    handler = SayHandler(console)
    handler.setFormatter(logging.Formatter("debug: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def enter_account(
    env: Env,
    replay_state: ReplayState,
    lists: Callable[[], BlockingClient],
    token: str,
    unreachable: Callable[[], StoppedEarly],
) -> None:
    """Key the state on the account the token is in (SPEC 5), whatever the URL's spelling, as
    `GET /v1/users/me` says; until then (and when Pipedrive cannot say) it stays keyed as
    `open_state` guessed, and a later run that can ask moves a guess on the URL into the
    account's namespace. A 404 at a URL with a path says it is not Pipedrive's: the run stops
    before any event; so does one that never connected (`unreachable`: exit 4, as the field
    listing's, send_catalog.py `listed_with`)."""
    url = env.settings.api_url
    with lists() as blocking:  # a 404 raised: before any event, each would fail with it
        answer = account_reached(blocking, url, unreachable)
    if isinstance(answer, PlanFailure):
        if replay_state.namespace.startswith(ACCOUNT):
            env.warn(f"{answer.reason}; using the state of the account {url} led to last time")
        else:
            env.warn(f"{answer.reason}; the state is kept for {url} until it can say")
        return
    replay_state.use_account(answer.company_id, url, token)


@handle_errors
def send_command(
    paths: opt.PathsArg,
    dead_letter: Annotated[
        Path | None,
        opt.file_option(
            "--dead-letter", help="Failed events go here (default rpd-failed-*.ndjson)."
        ),
    ] = None,
    report: Annotated[
        Path | None, opt.file_option("--report", help="Also write the report as JSON here.")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, max=256, metavar="N", help="Events in flight at once."
        ),
    ] = 8,
    max_retries: Annotated[
        int, typer.Option("--max-retries", min=0, max=50, metavar="N", help="Retries per request.")
    ] = 6,
    types: opt.TypeOpt = None,
    since: opt.SinceOpt = None,
    until: opt.UntilOpt = None,
    limit: opt.LimitOpt = None,
    strict: opt.StrictOpt = False,
    max_item_bytes: opt.MaxItemBytesOpt = DEFAULT_MAX_ITEM_BYTES,
    state: opt.StateOpt = None,
    plan: opt.PlanOpt = None,
    identities: opt.IdentitiesOpt = None,
    base_url: opt.BaseUrlOpt = None,
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: opt.QuietOpt = False,
    sandbox: opt.SandboxOpt = False,
    cache_entries: opt.CacheEntriesOpt = CACHE_ENTRIES,
) -> None:
    """Replay events to Pipedrive: create/update persons and organizations, merge, create leads."""
    tally, started = Tally(), time.monotonic()
    env: Env | None = None
    try:
        event_filter = EventFilter.from_options(types, since, until)
        require_readable(paths)  # before a sandbox starts: a missing file is said first
        overrides = {
            "pipedrive.plan": plan,
            "pipedrive.base_url": base_url,
            "pipedrive.identities": identities,
        }
        with (
            sigterm_as_ctrl_c() as heard,
            command_env(
                config=config,
                verbose=verbose,
                quiet=quiet,
                sandbox=sandbox,
                overrides=overrides,
                state=state,
            ) as env,
            debug_log(env.err, enabled=verbose),
        ):
            job = SendJob(
                paths=tuple(paths),
                event_filter=event_filter,
                limit=limit,
                strict=strict,
                concurrency=concurrency,
                max_retries=max_retries,
                dead_letter=dead_letter or default_dead_letter_path(),
                own_dead_letter=dead_letter is None,
                report=report,
                state=state,
                max_item_bytes=max_item_bytes,
                cache_entries=cache_entries,
            )
            tally.late = late_events(job.paths, event_filter)
            status = deliver(env, job, heard, tally)
    except RpdError as error:  # a usage or config error, the state in use or damaged: exit 2
        if report is not None and not tally.reported:
            kept = Refused(paths=tuple(paths), config=config, state=state, dead_letter=dead_letter)
            report_refusal(report, error, tally, started, env, kept)
        raise
    raise typer.Exit(int(status))


@dataclass(frozen=True, slots=True, kw_only=True)
class SendJob:
    """What one `rpd send` was asked to do."""

    paths: tuple[str, ...]
    event_filter: EventFilter
    limit: int | None
    strict: bool
    concurrency: int
    max_retries: int
    dead_letter: Path
    own_dead_letter: bool  # `dead_letter` is rpd's default name: made new, never appended to
    report: Path | None
    state: Path | None
    max_item_bytes: int
    cache_entries: int  # per table of what the run remembers (io/scratch.py)


REPORT_HINT = "choose another --report path next time"
REPORT = ("the report to", f"the report above is complete; {REPORT_HINT}")


def write_report(path: Path, document: dict[str, Any], *, shown: bool = True) -> None:
    """Write the --report file; `shown`: whether the report was printed above (not under -q)."""
    report = REPORT if shown else (REPORT[0], REPORT_HINT)
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    try:
        # A named pipe no process reads is refused after a while (read_now), where the open
        # waited for a reader forever, deaf to SIGTERM (the report is written under its hold).
        with open_output(path, "wb", *report, read_now) as sink:
            sink.write(data)
    except OSError as error:  # writing or closing: opening is open_output's
        raise output_error(path, *report, error) from None


def deliver(env: Env, job: SendJob, heard: list[signal.Signals], tally: Tally) -> ExitStatus:
    """Send `job`: its exit status. `heard`: the SIGTERMs heard (`sigterm_as_ctrl_c`), where the
    run's holds (`stops_held`) keep theirs too; `tally`: the run's counts, `reported` once its
    report is begun (a refusal before it writes its own: `report_refusal`)."""
    keep = env.kept_files(job.state)
    check_output_path(job.dead_letter, "--dead-letter", job.paths, keep)
    if job.report is not None:
        keep["the --dead-letter file"] = job.dead_letter
        check_output_path(job.report, "--report", job.paths, keep)
    if (state_path := keep["the replay state"]) is not None:
        refuse_inside_input_folders(state_path, "--state", job.paths)
    token = require_token(env.settings)
    started = time.monotonic()
    try:
        replay_state = open_state(env, job.state, cache_entries=job.cache_entries)
        with (
            replay_state if replay_state is not None else nullcontext(),
            Spill(job.cache_entries) as spill,
            ScratchIds() as finished_ids,
        ):
            return run_send(
                env,
                job,
                tally,
                token=token,
                replay_state=replay_state,
                spill=spill,
                finished_ids=finished_ids,
                heard=heard,
            )
    except (KeyboardInterrupt, BaseExceptionGroup) as caught:  # outside the run's own handlers
        stop = stop_in(caught)  # Ctrl-C or SIGTERM, perhaps inside a task group's error
        if stop is None:
            raise
        if tally.driving or tally.reported:  # events were driven, some maybe cancelled, or
            # the report was made (a stop after it): said by handle_errors
            raise stop from None
        # Before the first event: the report would be all zeros; what to do is the line to say
        # (QA: a plain "terminated" said neither what was done nor what to do). The --report
        # file still says the stop: an earlier run's left there read as this run's.
        with stops_held(heard):
            said = stop_said(None, signal_of(stop), env.settings.api_token.pattern())
            report_stop_while_starting(env, job, tally, said, started)
        what = STOPPED_BY[signal_of(stop)]
        say(env.err, STARTING_MESSAGE.format(what=what), indent=MORE)
        return exit_status_for(stop)


def report_stop_while_starting(
    env: Env, job: SendJob, tally: Tally, said: dict[str, Any] | None, started: float
) -> None:
    """The --report file of a send stopped while starting (Ctrl-C, SIGTERM, the token refused):
    nothing read, what stopped it (`said`), so that an earlier run's report left at its path is
    not read as this run's. Only written: the stop's own lines say it and what to do, and the
    state begins no run. One it cannot write is said in a line (the stop is the exit)."""
    if job.report is None:
        return
    tally.reported = True  # written here: not again as a refusal's (`send_command`)
    token = env.settings.api_token.pattern()
    document = report_of(token, tally, time.monotonic() - started, None, None)
    document["stopped"] = said
    try:
        write_report(job.report, document, shown=False)
    except RpdError as error:  # under -q too: a scheduler's run would find no report, unsaid
        env.warn(error.message, even_quiet=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """What a send refused before its report knew of its files, as given: what its --report must
    not overwrite (`report_refusal`) when the config, and so the state's default, is unread."""

    paths: tuple[str, ...]
    config: str | None
    state: Path | None
    dead_letter: Path | None

    def kept_files(self, env: Env | None) -> dict[str, Path | None]:
        """Env.kept_files, from what was given when the settings were not read."""
        if env is not None:
            keep = env.kept_files(self.state)
        else:
            config = config_path(self.config, os.environ)[0]
            keep = {
                "the replay state": self.state or default_state_path(config),
                "the config file": config,
            }
        return keep | {"the --dead-letter file": self.dead_letter}


HELD_REPORT = "the run holding the state may have written its own report there"


def report_refusal(
    report: Path, error: RpdError, tally: Tally, started: float, env: Env | None, given: Refused
) -> None:
    """The --report file of a send refused before its run's report (a config error, an input
    missing, the state in use or damaged: exit 2): what it counted (nothing read), its
    `"stopped"`, so that an earlier run's report left at that path is not read as this run's.
    Not when --report itself is refused (a directory, an input, a folder it cannot write): that
    is `error`, or a line after it. One it cannot write is said in a line (`error` is the exit),
    under -q too: a scheduler's run would read the earlier report, unsaid. Nor when another
    process holds the state: a scheduled run's overlap shares its --report, which that run may
    have written already (between its report and its unlock), and would lose (said in a line)."""
    secret = env.settings.api_token if env is not None else Secret(os.environ.get(TOKEN_ENV, ""))
    token = secret.pattern()
    err = env.err if env is not None else make_consoles()[1]
    if isinstance(error, StateInUse):  # its --report may be the running run's, written already
        say(err, f"warning: --report {report} left as it was: {HELD_REPORT}", indent=MORE)
        return
    try:
        check_output_path(report, "--report", given.paths, given.kept_files(env))
        document = report_of(token, tally, time.monotonic() - started, None, None)
        document["stopped"] = stop_said(error, None, token)
        write_report(report, document, shown=False)
    except RpdError as refused:
        if refused.message != error.message:  # not --report's own refusal, said already
            said = refused.message if token is None else token.sub(REDACTED, refused.message)
            say(err, f"warning: {said}", indent=MORE)


def report_usage_refused(command: click.Command, args: list[str], error: RpdError) -> None:
    """A send whose options or arguments click refused before it ran (`--concurrency 0`, an
    unknown option, no PATH: exit 2) writes its --report as any other refusal (`report_refusal`),
    so that an earlier run's report left there is not read as this run's. The options are read
    as click's parser reads them, unknown ones left aside, and the last argument when it is an
    option without its value (`--concurrency` at the end: --report itself, none to write); the
    inputs as given, each kept from the report (one click refused too). A --report its own
    option refuses (`--report " "`) is none to write."""
    context = click.Context(command, ignore_unknown_options=True)
    try:  # (the parser takes the words out of the list it is given)
        given, _, _ = command.make_parser(context).parse_args(list(args))
    except click.ClickException:
        try:
            given, _, _ = command.make_parser(context).parse_args(args[:-1])
        except click.ClickException:
            return
    option = next(param for param in command.params if param.name == "report")
    try:
        report = option.type_cast_value(context, given["report"])
    except (KeyError, click.ClickException):  # not given, or refused as the run was
        return

    def path(name: str) -> Path | None:
        return Path(value) if isinstance(value := given.get(name), str) and value else None

    config = given.get("config")
    kept = Refused(
        paths=tuple(given.get("paths") or ()),
        config=config if isinstance(config, str) and config else None,
        state=path("state"),
        dead_letter=path("dead_letter"),
    )
    report_refusal(report, error, Tally(), time.monotonic(), None, kept)


def open_state(env: Env, state: Path | None, *, cache_entries: int) -> ReplayState | None:
    """The durable replay state (SPEC 5), locked and checked before any request; it is keyed on
    the account (`enter_account`) once Pipedrive says which. Its read cache keeps at most
    `cache_entries` identities (io/scratch.py)."""
    path = env.replay_state_path(state)
    if path is None:
        return None
    # Keyed, before any request, on the account this URL and token led to last time, else on
    # the URL and token: the finished objects a resumed run skips are read from there.
    url, token = env.settings.api_url, env.settings.api_token.reveal()
    keyed_on_url = namespace_key(normalised_url(url), token)
    replay_state = ReplayState.open(path, keyed_on_url, cache_entries=cache_entries)
    replay_state.use_remembered(url, token)
    if unused := replay_state.unused_bytes:
        env.warn(not_compacted(path, unused))
    if replay_state.hard_links > 1:
        env.warn(
            f"state file {path} has {replay_state.hard_links} names (hard links): SQLite keeps a "
            "killed run's last changes beside the name that run used, unseen through another; "
            "use one name (a symlink is fine)"
        )
    return replay_state


def run_send(
    env: Env,
    job: SendJob,
    tally: Tally,
    *,
    token: str,
    replay_state: ReplayState | None,
    spill: Spill,
    finished_ids: ScratchIds,
    heard: list[signal.Signals],
) -> ExitStatus:
    settings = env.settings
    # The run's duration includes the field listings and the first pass over the input: under
    # faults, listing alone can take half a minute that the report would otherwise not show.
    started = time.monotonic()
    # A write whose outcome stays unknown is tried as often as any request: --max-retries.
    config = replace(settings.plan_config(), unknown_tries=job.max_retries + 1)
    once = read_once(job.paths)  # standard input, a named pipe: no first pass, read in a thread
    if once:  # before any request: no first pass tells whether any event has external ids
        judge_unset_identity(env, config, external=None)
    run_stop = asyncio.Event()  # set by drive_all's Ctrl-C, SIGTERM
    client = PipedriveClient(
        token=token,
        base_url=settings.api_url,
        plan=settings.plan,
        concurrency=job.concurrency,
        max_retries=job.max_retries,
        tally=tally,
        stopping=run_stop,  # a stopped run retries no request
    )
    # Objects an earlier run finished are read by neither pass: their events are done, and what
    # they taught (identities, merges, the input's aliases) is in the state. Not those it read
    # under other skip rules (TrackRules.skips): the events a rule skipped are not done.
    finished, on_finished = None, None
    if replay_state is not None:
        skips = config.track_rules.skips
        finished = partial(replay_state.object_finished, skips=skips)
        on_finished = partial(replay_state.finish_object, skips=skips)
    reader = EventReader(
        job.paths,
        strict=job.strict,
        max_item_bytes=job.max_item_bytes,
        window=job.event_filter.window,
        finished=finished,
        on_finished=on_finished,
        warn=env.warn,
        retried=tally.store_retried,
    )
    note_finished_objects(env, reader)
    lists = partial(
        account_client,
        env,
        max_retries=job.max_retries,
        interactive=False,  # a send's patience: a backfill rides out a slow Pipedrive
        tally=tally,
        pacer=client.pacer,
        reach=client.reach,
    )
    token_pattern = settings.api_token.pattern()  # the token as it may appear in event data
    renamed = default_dead_letter_path if job.own_dead_letter else None
    letters = DeadLetters(job.dead_letter, token_pattern, renamed)
    unreachable = partial(client.reach.unreachable, settings.api_url)
    # A stop before any event: the items the first pass `read`, then how it ended.
    stopped_before = partial(end_first_pass, env, job, tally, letters, replay_state)
    try:
        if replay_state is not None:
            # Asked as map-fields and check ask (INTERACTIVE_RETRIES): nothing is sent yet, and
            # a dead base_url (the sandbox not started) stops the run in a second, not after
            # the 25 s of retries that carry the events through a network blip.
            asks = partial(lists, max_retries=min(job.max_retries, INTERACTIVE_RETRIES))
            enter_account(env, replay_state, asks, token, unreachable)
        listed = listed_with(lists, config, unreachable)
        plan_config = with_catalog(env, config, listing=listed, store=replay_state)
    except AuthRefused as refused:  # the token refused (exit 3): its two lines, and the report
        said = stop_said(refused, None, env.settings.api_token.pattern())
        report_stop_while_starting(env, job, tally, said, started)
        raise
    except (StoppedEarly, PlanFailure, StateUnusable) as error:  # before the first pass
        # (Pipedrive unreachable, the budget spent, a listing the config needs, the state's disk
        # full: exit 4 or 2): its report and state as mid-run's, so a scheduler reading the
        # report sees why nothing was sent
        return stopped_before(0, started, stopped=error)
    mode = "none" if env.quiet else ("rich" if env.err.is_terminal else "plain")
    progress = SendProgress(env.err, tally, reader, mode=mode, plan=settings.plan, limit=job.limit)
    survey: Survey | None = None
    pass_read = 0  # the items the first pass took
    if not once:
        # A first pass: what the input's aliases moved (`input_aliases`), and the identities
        # to resolve that `--identities auto` weighs (both core/index.py). With a state, the aliases
        # are kept there: once they are complete, a resumed run knows those of the objects it
        # finished and does not read them again (SPEC 2); until then, it reads them for those.
        # The journal tells an unset user_id_field's verdict (`external`) the events left to
        # send; only then: that is a lookup an event naming its person by id (the main pass
        # makes its own), in a rerun of 200,000 done ~1 s more in this pass.
        journal = None
        if replay_state is not None and not plan_config.user_id_field:
            journal = replay_state.journal_status
        # Asked after the pass, of the few aliases' previousIds no person has (Survey.unknown).
        aliases_done = None if replay_state is None else replay_state.journal_status
        survey = Survey(
            rules=plan_config.track_rules, journal_status=journal, alias_journal=aliases_done
        )
        kept = replay_state.input_aliases() if replay_state is not None else None
        first_pass = EventReader(
            job.paths,
            max_item_bytes=job.max_item_bytes,
            window=job.event_filter.window,
            finished=finished if kept is not None and kept.complete else None,
            listed=reader.listed,  # not listed again: a store gone since stops at an object
            retried=tally.store_retried,
        )
        events = taken_events(first_pass, job.event_filter, job.limit, token_pattern)
        table, direct = spill.table() if kept is None else kept, spill.table()
        read = count()  # the items the first pass took (zip takes one of it after each)
        counted = map(itemgetter(0), zip(events, read, strict=False))
        resumed = bool(reader.objects_skipped)
        # It reads the objects earlier runs finished, which the run does not, until the state
        # holds their aliases; else it takes the run's items: their count is the total.
        counts_the_run = kept is None or kept.complete or not resumed
        stop_heard_before_it(heard)
        try:
            with progress.preparing(READING_FIRST):
                aliases = input_aliases(counted, survey, table, direct)
        except ReadingRefused as error:  # the store's (io/objects.py)
            # Nothing was sent: the report still comes, as after a stop mid-run, and counts what
            # the pass read before that object as read, not attempted; the rerun reads it all,
            # but for the objects earlier runs finished.
            refusal = ReadingRefused(
                error.message, hint=f"{error.hint}: {FIRST_PASS_RERUN[resumed]}"
            )
            return stopped_before(next(read), started, stopped=refusal)
        except StateUnusable as error:  # its disk full (the input's aliases): as mid-run's
            return stopped_before(next(read), started, stopped=error)
        except (KeyboardInterrupt, BaseExceptionGroup) as caught:  # Ctrl-C or SIGTERM (SPEC 6)
            hear(caught, heard)
        if heard:  # stopped in the pass, or a stop there swallowed on its way: before any event
            message = FIRST_PASS_STOPPED[resumed]
            return stopped_before(next(read), started, heard=heard, message=message)
        # An unset user_id_field: refused (exit 2, nothing written yet) unless an event has an
        # external id; then said once. Judged after the listings, at the cost of their requests.
        judge_unset_identity(env, plan_config, external=survey.external)
        # Each previousId's own aliases only when the pass took the items the run takes: their
        # counts as the run reads (core.identity_cache.AliasesRead) are then the pass's.
        own = settled(direct) if counts_the_run else {}
        plan_config = replace(plan_config, aliases=aliases, aliases_of=own)
        pass_read = next(read)
        if counts_the_run:
            progress.total = pass_read
        if kept is not None:
            kept.complete = True
    elif replay_state is not None:  # the objects it finishes leave no aliases in the state
        replay_state.input_aliases().complete = False
    known: IdentityStore = replay_state if replay_state is not None else IdentityStore(spill.table)
    try:
        with lists() as listing, progress.steps() as doing:
            identities = prepare(
                settings.identities,
                plan_config,
                survey=survey,
                known=known,
                rows=MemoryIndexRows(spill.table)
                if replay_state is None
                else replay_state.index_rows(),
                exchange=listing.exchange,
                doing=doing,
            )
    except (StoppedEarly, AuthRefused, StateUnusable) as error:  # the index's listing (its rows
        # kept in the state: its disk full): the first pass's items not attempted
        return stopped_before(pass_read, started, stopped=error)
    except (KeyboardInterrupt, BaseExceptionGroup) as caught:  # Ctrl-C or SIGTERM (SPEC 6)
        hear(caught, heard)
    if heard:  # stopped while the index was listed, or a stop there swallowed: before any event
        return stopped_before(pass_read, started, heard=heard, message=INDEX_STOPPED)
    for note in identities.notes:
        env.warn(note)
    if identities.listed:
        known.list_origins(identities.origins, identities.listed)

    def done(item: Event, outcome: Outcome) -> None:
        # An object's last event finishes it; not one with an event that --type, --since or
        # --until left out and that a run without them would send (a page is skipped either
        # way): a later run without them would skip that object unread.
        left_out = (
            item.decided is not None
            and item.type in HANDLERS
            and job.event_filter.skip_reason(item) is not None
        )
        # Input that is no event fails again whenever read: it is dead-lettered by the run that
        # read it, and does not keep its object unfinished (read again by each rerun for nothing).
        status = "failed" if left_out else outcome.status
        if lasting := fails_again(item):  # its dead letter on disk before its object is finished
            letters.flush()
        reader.item_done(item.source, status, lasting=lasting)
        progress.tick()

    replay = Replay(
        config=plan_config,
        known=known,
        tally=tally,
        dead_letters=letters,
        journal=replay_state,
        # A write left in flight is reconciled from its send time: on Pipedrive's clock.
        now=client.server_clock.stamp,
        on_done=done,
        index=identities.index,
        tables=spill.table,
        finished_ids=finished_ids,  # this run's, bounded (the journal's need none but skips')
    )
    if tally.late is not None:  # a late event the journal has done was sent: not left out
        tally.late.done = replay.finished.has
    stop_heard_before_it(heard)
    if replay_state is not None:
        replay_state.start_run()
    stopped: RpdError | None = None
    interrupted: signal.Signals | None = None
    cancelled = False

    def left(_item: object) -> None:
        tally.not_attempted += 1

    tally.driving = True  # from here a stop may leave writes made by events never counted
    note_reading_a_terminal(env, job.paths)
    try:
        with progress:
            taken = taken_events(reader, job.event_filter, job.limit, token_pattern)
            items = progress.counted(taken)
            # A bucket's read may wait as stdin does (a stalled connection: a minute a try):
            # read in a thread, the event loop hears a stop at once.
            blocking = once or any(url_scheme(path) for path in job.paths)
            interrupted = drive_all(
                read_in_thread(items) if blocking else items,
                start=replay.start,
                keys=replay.keys,
                sender=waiting(client, identities.index),  # misses wait for a refresh
                done=replay.done,
                concurrency=job.concurrency,
                left=left,
                stop=run_stop,
            )
    except ReadingRefused as error:  # the store's (io/objects.py): what the rerun does
        rerun = "it resumes at this object" if replay_state is not None else NO_STATE_RERUN
        stopped = ReadingRefused(error.message, hint=f"{error.hint}: {rerun}")
    except RpdError as error:  # auth refused, budget, unreachable, state unusable: report, exit
        stopped = error
    except (KeyboardInterrupt, BaseExceptionGroup) as caught:  # a second Ctrl-C or SIGTERM
        if (stop := stop_in(caught)) is None:
            raise
        interrupted = signal_of(stop)
        cancelled = True  # in flight were cancelled
    finally:
        with stops_held(heard):  # as the report's, below: a stop here still has its report
            try:
                letters.close()
            except RpdError as error:  # the report still comes first, then this error
                if stopped is None and interrupted is None:
                    stopped = error
                else:  # the run's own stop is the exit, and what to do next: say this one too
                    env.warn(error.message)
    if stopped is None and interrupted is None:  # an input cut while read: not all was sent
        stopped = reader.shrunk
    return end_run(
        env,
        job,
        tally,
        letters,
        replay_state,
        started=started,
        identities=identities,
        stopped=stopped,
        interrupted=interrupted,
        cancelled=cancelled,
        heard=heard,
    )


def stop_heard_before_it(heard: list[signal.Signals]) -> None:
    """A stop while starting that was swallowed on its way (`sigterm_as_ctrl_c`) raised again,
    before the state's run is begun: the send says it stopped while starting."""
    if heard:
        raise RAISED_BY[heard[0]]


def end_first_pass(
    env: Env,
    job: SendJob,
    tally: Tally,
    letters: DeadLetters,
    replay_state: ReplayState | None,
    read: int,
    started: float,
    **ending: Any,
) -> ExitStatus:
    """A run stopped in its first pass or before it, before any event (credentials refused,
    Pipedrive unreachable, the budget spent, a listing the config needs, Ctrl-C, SIGTERM):
    the `read` items the pass took are counted as read, not attempted, and the state's run is
    begun, so that the report is kept there as a stop mid-run's is (`end_run`, with `ending`)."""
    tally.not_attempted = read
    if replay_state is not None:
        try:
            replay_state.start_run()
        except StateUnusable as error:  # its disk full: the report all the same, not kept there
            stopped = ending.setdefault("stopped", error)
            if error.message != str(stopped):  # the run's own stop is the exit: this said too
                env.warn(f"{error.message}; {error.hint}", even_quiet=True)
            replay_state = None
    return end_run(env, job, tally, letters, replay_state, started=started, **ending)


# What `note_left_to_settle` says of the events with writes left in flight: those outside this
# run, then those a skip rule took ({have}, {them}: one event's words or more's).
LEFT_WORDS = (
    "outside this run {have} writes left to settle: send {them} again",
    "a skip rule took {have} writes an earlier run left in flight (perhaps made in Pipedrive): "
    "a run whose rules send {them} settles them",
)


def note_left_to_settle(env: Env, events: int, ruled: int = 0) -> None:
    """Say, at the end, how many events outside this run have writes an earlier run left to
    settle (a create or merge whose answer was lost, a run killed): only a run of their input
    settles them; and how many this run read and a skip rule took have some (`ruled`): only a
    run whose rules send them does. Said under -q too, as late events are: a cron's run of
    other files would leave them pending for ever without a word."""
    for number, words in zip((events, ruled), LEFT_WORDS, strict=True):
        if number:
            have, them = ("has", "it") if number == 1 else ("have", "them")
            said = words.format(have=have, them=them)
            env.warn(f"{plural(number, 'event')} {said}", even_quiet=True)


def stop_said(
    stopped: RpdError | PlanFailure | None,
    interrupted: signal.Signals | None,
    token: TokenPattern | None,
) -> dict[str, Any] | None:
    """What stopped a run, for its report and the state's record of it: its exit and its words
    (none of the API token), so that a scheduler reading --report tells a run stopped before
    its first event (0 read, 0 sent) from one of an empty input, whose counts are the same."""
    if stopped is not None:
        status = exit_status_for(stopped)
        reason = stopped.message if isinstance(stopped, RpdError) else stopped.redacted
        reason = reason or str(stopped)
    elif interrupted is not None:
        status = ExitStatus(128 + interrupted)  # INTERRUPTED, TERMINATED or HUNG_UP
        reason = STOPPED_BY[interrupted]
    else:
        return None
    return {"exit": int(status), "reason": reason if token is None else token.sub(REDACTED, reason)}


def report_of(
    token: TokenPattern | None,
    tally: Tally,
    duration: float,
    dead_letter: str | None,
    identities: Identities | None,
) -> dict[str, Any]:
    """The report's document, none of the API token in it; `identities` None when the run
    stopped before it chose how to resolve them (the report says none)."""
    without_token(tally, token)
    document = tally.to_json(duration_s=duration, dead_letter=dead_letter)
    document.update({"identities": None} if identities is None else identities.report())
    return document


def end_run(
    env: Env,
    job: SendJob,
    tally: Tally,
    letters: DeadLetters,
    replay_state: ReplayState | None,
    *,
    started: float,
    identities: Identities | None = None,
    stopped: RpdError | PlanFailure | None = None,
    interrupted: signal.Signals | None = None,
    cancelled: bool = False,
    heard: list[signal.Signals] | None = None,
    message: str | None = None,
) -> ExitStatus:
    """The run's report (kept in the state, printed, written), then its exit: the error that
    stopped it raised (a PlanFailure: a request it could not start without), or 130/143 when
    interrupted, with `message` (else the mid-run one), else 0 or 1. `identities` is None when
    the run stopped before it chose how to resolve them (the report says none)."""
    heard = [] if heard is None else heard
    tally.reported = True  # a stop from here on is not one while starting (`deliver`)
    with stops_held(heard):  # SPEC 6: a stop now still has its report, then its exit
        duration = time.monotonic() - started
        token = env.settings.api_token.pattern()
        document = report_of(token, tally, duration, letters.written, identities)
        # Said only when every event read was planned: a stopped run's rerun plans the rest.
        whole = stopped is None and interrupted is None and not heard and not tally.not_attempted
        left, ruled = 0, 0
        if replay_state is not None and whole:
            left, ruled = replay_state.left_to_settle(), replay_state.left_by_rule()
        if left:  # only a run that leaves some has the key
            document["left_to_settle"] = left
        if ruled:  # as left_to_settle
            document["left_by_rule"] = ruled
        if said := stop_said(stopped, interrupted or (heard[0] if heard else None), token):
            document["stopped"] = said  # only a run that stopped early has the key
        if replay_state is not None:
            try:
                replay_state.finish_run(document)
            except StateUnusable as error:  # its disk full, the file gone: the report first
                if stopped is None:
                    stopped = error
                    document["stopped"] = stop_said(error, None, token)  # --report's, below
                elif error.message != str(stopped):  # the same (a full disk): said once
                    # The run's own stop is the exit and its words last: this one's are
                    # said too, with what to do about it (its rerun alone would not resume).
                    env.warn(f"{error.message}; {error.hint}", even_quiet=True)
        if not env.quiet:
            print_send_report(
                env.err,
                tally,
                duration_s=duration,
                dead_letter=letters.written,
                identities="" if identities is None else identities.line(),
                readable=letters.a_file,
            )
            if env.sandbox is not None:
                # A real terminal, not one rich assumes (FORCE_COLOR, TTY_COMPATIBLE into a log).
                on_terminal = env.err.is_terminal and env.err.file.isatty()
                print_sandbox_holdings(env.err, env.sandbox.state(), records=on_terminal)
        elif letters.written:  # -q: only errors, and failed events are (where they went is said)
            failed = tally.outcomes["failed"]
            say(
                env.err,
                f"{failed:,} {'event' if failed == 1 else 'events'} failed, written to "
                f"{letters.written}: fix the cause, then "
                f"{send_again(letters.written, letters.a_file)} to send "
                f"{'it' if failed == 1 else 'them'} again",
                indent=MORE,
            )
        note_late_events(env, tally.late)
        note_left_to_settle(env, left, ruled)
        if job.report is not None:
            try:
                write_report(job.report, document, shown=not env.quiet)
            except RpdError as error:
                if stopped is None and interrupted is None:
                    raise
                env.warn(error.message)  # the run's own stop is the exit, and what to do next
    interrupted = interrupted or (heard[0] if heard else None)
    if stopped is not None:
        raise stopped
    if interrupted is not None:
        if message is None:
            lost = any(reason.endswith(LEFT_UNKNOWN) for reason in tally.failures)
            message = CANCELLED_MESSAGE if cancelled else INTERRUPTED_MESSAGE[lost]
        if replay_state is None:  # nothing to resume from
            message = f"{message.split('; rerun')[0]}; {NO_STATE_RERUN}"
        say(env.err, message.format(what=STOPPED_BY[interrupted]), indent=MORE)
        return ExitStatus(128 + interrupted)  # INTERRUPTED, TERMINATED or HUNG_UP (SIGHUP)
    return exit_status_for_run(tally.outcomes["failed"])
