"""What every command shares: loading settings, `--sandbox`, consoles, and error handling."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import traceback
from collections.abc import Callable, Container, Iterable, Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console

from rudder_pipedrive_cli.cli.exits import (
    NO_SPACE,
    STOP_WORD,
    ExitStatus,
    exit_status_for,
    internal_error,
    print_error,
)
from rudder_pipedrive_cli.cli.screen import plural, say
from rudder_pipedrive_cli.core.errors import (
    AuthRefused,
    PlanFailure,
    RpdError,
    UsageError,
    signal_of,
)
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.config import (
    DEFAULT_CONFIG,
    REDACTED,
    Secret,
    Settings,
    TokenPattern,
    load_settings,
    refused_token_hint,
    tokens_known,
    without_tokens,
)
from rudder_pipedrive_cli.io.paths import default_state_path

if TYPE_CHECKING:  # imported when a command starts one: `rpd --help` needs no server
    from rudder_pipedrive_cli.core.events import Event
    from rudder_pipedrive_cli.core.filters import EventFilter, LateEvents
    from rudder_pipedrive_cli.core.tally import Tally
    from rudder_pipedrive_cli.io.readers import EventReader
    from rudder_pipedrive_cli.sandbox import Sandbox

SANDBOX_STATE = (
    "--sandbox starts a new, empty account each run: --state {state} cannot resume an earlier "
    "--sandbox run (to keep one, run `rpd sandbox` and point --base-url at it)"
)
NO_CONFIG = (
    f"no config file found ({DEFAULT_CONFIG} here; --config or $RPD_CONFIG name another): "
    "using the environment and defaults"
)

NO_ANSWER_HINT = "check the network and base_url / company_domain (or --base-url), then try again"
MORE = "  "  # how much further a wrapped warning or error goes on (screen.wrap)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True, kw_only=True)
class Env:
    settings: Settings
    out: Console  # results (stdout)
    err: Console  # progress, summaries of machine-readable output, warnings, errors (stderr)
    verbose: bool = False
    quiet: bool = False
    sandbox: Sandbox | None = None  # the emulator started by --sandbox

    def replay_state_path(self, state: Path | None) -> Path | None:
        """The state file of a send or dry-run. `--sandbox` without `--state` keeps none: the
        emulator starts empty on a new port each run, so nothing remembered could apply."""
        if self.sandbox is not None and state is None:
            return None
        return state if state is not None else default_state_path(self.settings.path)

    def kept_files(self, state: Path | None) -> dict[str, Path | None]:
        """What an output of send or dry-run must not overwrite (check_output_path's `keep`)."""
        return {
            "the replay state": self.replay_state_path(state),
            "the config file": self.settings.path,
        }

    def warn(self, message: str, *, even_quiet: bool = False) -> None:
        """A warning on stderr; -q hides it unless `even_quiet` (what no rerun would tell)."""
        if even_quiet or not self.quiet:
            say(self.err, f"warning: {message}", indent=MORE)


# Output that goes to a file or a pipe has no width: rich's default of 80 columns would cut the
# 40-character field keys and names out of tables, so such output gets room for them.
PIPE_WIDTH = 160


class PipeConsole(Console):
    """A Console that lets a closed pipe reach `handle_errors` (exit 141, as `cmd | head`
    expects); rich's own handling exits 1, which reads as "some events failed". It never reads
    `:name:` as an emoji code: text from events (`:smile:` in a title) is shown as it is (and
    rich's table of codes stays unloaded, 5 ms of every start)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(emoji=False, **options)

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def make_consoles() -> tuple[Console, Console]:
    out, err = PipeConsole(highlight=False), PipeConsole(stderr=True, highlight=False)
    return (
        out if out.is_terminal else PipeConsole(highlight=False, width=PIPE_WIDTH),
        err if err.is_terminal else PipeConsole(stderr=True, highlight=False, width=PIPE_WIDTH),
    )


@contextmanager
def command_env(
    *,
    config: str | None,
    verbose: bool,
    quiet: bool,
    sandbox: bool = False,
    overrides: dict[str, Any] | None = None,
    say_no_config: bool = True,
    state: Path | None = None,
    config_to_be_made: bool = False,
    config_overwritten: bool = False,
) -> Iterator[Env]:
    """Settings (flag > env > file > default) and, with --sandbox, a running emulator. No config
    file found is said in one line (`say_no_config=False`: the command says it its own way);
    `state` is the --state of a command that keeps one (said to do nothing useful with
    --sandbox); `config_to_be_made`: the config named is the one `rpd init` writes;
    `config_overwritten`: the one `rpd init --force` writes over (left out when invalid)."""
    settings = load_settings(
        config,
        overrides=overrides,
        to_be_made=config_to_be_made,
        overwritten=config_overwritten,
        emulated=sandbox,
    )
    base_url = (overrides or {}).get("pipedrive.base_url")
    if sandbox and base_url:  # which one was meant cannot be known: a send would go to one
        raise UsageError(
            f"--sandbox and --base-url {base_url} both given: --sandbox points the command at "
            "an emulator it starts",
            hint="drop --base-url to use the sandbox, or --sandbox to use that URL",
        )
    out, err = make_consoles()
    if settings.path is None and say_no_config and not quiet:
        say(err, f"warning: {NO_CONFIG}", indent=MORE)
    with ExitStack() as stack:
        server: Sandbox | None = None
        if sandbox:
            from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions

            options = SandboxOptions(host="127.0.0.1", port=0, plan=settings.plan)
            server = stack.enter_context(Sandbox(options))
            settings = replace(settings, base_url=server.url, api_token=Secret(options.token))
            if not quiet:
                say(err, f"sandbox: Pipedrive emulator at {server.url}", indent=MORE)
        env = Env(settings=settings, out=out, err=err, verbose=verbose, quiet=quiet, sandbox=server)
        for warning in settings.warnings:
            env.warn(warning)
        if server is not None and state is not None:
            env.warn(SANDBOX_STATE.format(state=state))
        try:
            yield env
        except AuthRefused as refused:  # said with where the token came from
            refused.hint = refused_token_hint(settings)
            raise


MAKE_ROOM = "free some space (or write the output elsewhere)"
# What a refusal adds to its reason, and what to do: a quota's reason says it all.
NO_SPACE_SAID = {
    errno.ENOSPC: (" (the disk is full)", MAKE_ROOM),
    errno.EFBIG: (
        " (over the largest file this process may write: `ulimit -f`)",
        "write the output elsewhere (or raise the limit)",
    ),
}


def no_space(error: OSError) -> RpdError:
    """A write refused for want of space, as an environment error saying what to do."""
    where = error.filename or "the output"
    why, hint = NO_SPACE_SAID.get(error.errno or 0, ("", MAKE_ROOM))
    return RpdError(
        f"cannot write {where}: {error.strerror or error}{why}", hint=f"{hint}, then run it again"
    )


SQLITE_FULL = 13  # SQLite's primary result code for a full disk (sqlite3.h)
# What a run remembers past its memory budget goes to SQLite's temporary database (io/scratch.py),
# in $SQLITE_TMPDIR, else $TMPDIR, else /var/tmp or /tmp. The state file's own failures are
# told by state_file.state_failure: what reaches the handler full is the temporary database.
SCRATCH_FULL = RpdError(
    "no space left for the temporary database of what this run remembers ($TMPDIR, else "
    "/var/tmp or /tmp)",
    hint="free some space there, or point TMPDIR at a disk with room, then run it again",
)


def scratch_full(error: Exception) -> bool:
    sqlite3 = sys.modules.get("sqlite3")  # not imported: the error cannot be SQLite's
    if sqlite3 is None or not isinstance(error, sqlite3.Error):
        return False
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == SQLITE_FULL


def stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of what is buffered for it
    does not fail again (a closed pipe, a full disk)."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor (tests)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Render rpd's errors as one or two lines and exit with the right code (SPEC 6); a request
    that failed outside any event exits as `exits.request_failed` says."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        verbose = bool(kwargs.get("verbose"))
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as stop:  # Ctrl-C, SIGTERM (Terminated), SIGHUP (HungUp)
            print(STOP_WORD[signal_of(stop)], file=sys.stderr)
            raise typer.Exit(int(exit_status_for(stop))) from None
        except BrokenPipeError:
            # The reader of our output is gone: stop quietly, as `cmd | head` expects.
            stdout_to_devnull()
            raise typer.Exit(int(ExitStatus.PIPE_CLOSED)) from None
        except Exception as error:  # the traceback only with -v
            if verbose:
                traceback.print_exc()
            if isinstance(error, RpdError):
                shown, status = error, exit_status_for(error)
            elif isinstance(error, OSError) and error.errno in NO_SPACE:
                # A full disk under what rpd writes to (stdout, --output): say so (SPEC 6).
                stdout_to_devnull()
                shown, status = no_space(error), ExitStatus.USAGE
            elif scratch_full(error):
                shown, status = SCRATCH_FULL, ExitStatus.USAGE
            elif isinstance(error, PlanFailure):
                # A request outside any event (a field listing, a lookup) that Pipedrive
                # refused or that could not get through: its reason (the exit: exits.py).
                # No answer at all (a refused connection, a name that does not resolve, a
                # timeout) is more often a wrong address than a passing fault.
                hint = error.hint or ("try again later" if error.retryable else "")
                if error.retryable and error.status is None:
                    hint = NO_ANSWER_HINT
                status = exit_status_for(error)
                shown = RpdError(error.reason, hint=hint)
            else:  # a bug: say so in two lines
                shown, status = internal_error(error), ExitStatus.INTERNAL
            # An option's value said back (`--format`, `--since`, a path) may be the token.
            config = kwargs.get("config")
            tokens = tokens_known(config if isinstance(config, str) else None, os.environ)
            print_error(without_tokens(tokens, shown))
            raise typer.Exit(int(status)) from None

    return wrapper


def stdin_is_interactive() -> bool:
    """Standard input is a terminal: a person types there (a prompt may ask, `-` waits for
    them)."""
    return sys.stdin is not None and sys.stdin.isatty()


# `rpd send -` / `dry-run -` (`init --from-rudderstack -`: the destination's JSON, it) at a
# terminal waited without a word for events to be typed.
READING_A_TERMINAL = (
    "reading {} from standard input (-): paste or type {}, then press Ctrl-D on a new "
    "line to end (Ctrl-C cancels)"
)


def note_reading_a_terminal(env: Env, paths: Container[str]) -> None:
    """Say, once, that events are read from the terminal and how to end them: only when `-`
    is among the inputs and standard input is a terminal (never for a pipe or a file)."""
    if "-" in paths and stdin_is_interactive():
        say(env.err, READING_A_TERMINAL.format("events", "them"), indent=MORE)


def note_finished_objects(env: Env, reader: EventReader) -> None:
    """Say how many objects a resumed run does not read again (SPEC 2), or that the window
    leaves no object of a backup to read (mistyped dates read nothing, and said nothing): under
    -q too, as the events left out are (`note_late_events`), since no rerun would tell it and a
    run that read nothing is no success to keep quiet about."""
    from rudder_pipedrive_cli.io.objects import is_object_path

    if reader.objects_skipped:
        if not env.quiet:
            objects = plural(reader.objects_skipped, "object")
            say(
                env.err,
                f"resuming: {objects} finished by an earlier run not read again",
                indent=MORE,
            )
    elif not reader.objects_total and any(is_object_path(path) for path in reader.paths):
        env.warn(
            "no backup object meets --since/--until: none was read (check the dates)",
            even_quiet=True,
        )


def late_events(paths: Iterable[str], event_filter: EventFilter) -> LateEvents | None:
    """What counts the events `--since` and `--until` leave out of a backup among `paths` that no
    other window sends (core/filters.py), or None: without either, or without a backup (a file's
    events are all read by every window, stdin's by every run)."""
    from rudder_pipedrive_cli.core.filters import LateEvents
    from rudder_pipedrive_cli.core.plans import HANDLERS
    from rudder_pipedrive_cli.io.objects import is_object_path

    since, until = event_filter.since, event_filter.until
    if (since is None and until is None) or not any(map(is_object_path, paths)):
        return None
    return LateEvents(since=since, until=until, planned=HANDLERS)


def note_late_events(env: Env, late: LateEvents | None) -> None:
    """Say, at the end, how many events --since and --until left out that no other window sends,
    and the rerun that sends them: the objects holding them are not finished, so that rerun with
    the same state reads them again and sends only those (the journal skips the rest). Said
    under -q too, as the failed events are: no later window sends them, and -q is the cron's."""
    if late is None or (rerun := late.rerun()) is None:
        return
    kinds = (
        (late.before.count, "late event", "before --since"),
        (late.after.count, "future-dated event", "at or after --until"),
    )
    said = " and ".join(f"{plural(count, noun)} {bound}" for count, noun, bound in kinds if count)
    env.warn(f"{said} left out: rerun {rerun}", even_quiet=True)


def without_token(tally: Tally, token: TokenPattern | None) -> None:
    """Counts kept under event data that holds the API token (an event's type, a dropped trait's
    path) move under REDACTED in its place, before the report, its JSON and the state's record of
    the run show them (SPEC 8)."""
    if token is None:
        return
    tables: tuple[MutableMapping[str, Any], ...] = (
        tally.by_type,
        tally.skips,
        tally.failures,
        tally.knock_ons,
        tally.warnings,
        tally.dropped,
    )
    for table in tables:
        for key in [key for key in table if token.search(key)]:
            table[token.sub(REDACTED, key)] += table.pop(key)


def without_token_in(
    records: Iterator[dict[str, Any]], token: TokenPattern
) -> Iterator[dict[str, Any]]:
    """`records` (JSON values) as they are, but one that holds the API token (event data that
    does) with REDACTED in its place: what a dry-run shows (SPEC 8)."""
    for record in records:
        text = orjson.dumps(record).decode()
        yield orjson.loads(token.sub(REDACTED, text)) if token.search(text) else record


def taken_events(
    reader: Iterable[Event],
    event_filter: EventFilter,
    limit: int | None,
    token: TokenPattern | None,
) -> Iterable[Event]:
    """What a run takes of `reader`'s items: those the filters and the limit let through
    (core/intake.py), an event that holds the API token failed before it is planned: its messageId,
    userId, groupId and previousId are the state's keys (journal, identity cache), and any value
    goes into Pipedrive and, while its write is in flight, into the state, where no rewriting
    could keep the token out (SPEC 8). Its reason names the key or path, never the token; its
    dead letter has the token redacted (DeadLetters). An event holding REDACTED (such a dead
    letter, sent again) fails too: that text would go into Pipedrive in the token's place. An
    event of a type rpd skips is refused only for its messageId, the one value kept of it."""
    from rudder_pipedrive_cli.core.intake import intake  # send and dry-run's (not at start-up)

    items = intake(reader, event_filter, limit)
    if token is None:
        return items
    return _refusing(items, token)


def _refusing(items: Iterable[Event], token: TokenPattern) -> Iterator[Event]:
    from rudder_pipedrive_cli.core.plans import HANDLERS  # the planned types (not at start-up)

    for item in items:
        if item.decided is None and item.id:
            reason = _refusal(item, token, HANDLERS)
            if reason is not None:
                item.decided = Outcome(status="failed", reason=reason, stage="validate")
        yield item


def _refusal(item: Event, token: TokenPattern, planned: Container[str]) -> str | None:
    if item.type not in planned:  # skipped unplanned: its journal entry is all rpd keeps
        return TOKEN_HELD.format("messageId") if token.search(item.id) else None
    try:
        text: str | None = orjson.dumps(item.raw).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: walked
        text = None
    if text is not None and REDACTED not in text and not token.search(text):
        return None  # most events
    held = (
        ("messageId", item.id),
        ("userId", item.user_id),
        ("groupId", item.group_id),
        ("previousId", item.previous_id),
    )
    key = next((key for key, value in held if value and token.search(value)), None)
    if key is not None or (key := token_path(item.raw, token.search)) is not None:
        return TOKEN_HELD.format(key)
    key = token_path(item.raw, lambda text: REDACTED in text)
    return None if key is None else REDACTED_HELD.format(key)


TOKEN_HELD = "its {} holds the API token: correct the event (it is not sent)"
REDACTED_HELD = (
    f"its {{}} holds {REDACTED}, a dead letter's stand-in for the API token: put the value back "
    "or remove it (it is not sent)"
)


def token_path(value: Any, holds: Callable[[str], object]) -> str | None:
    """The dotted path of the first value in `value` (an event) that `holds` the token (or its
    stand-in), or of the object one of whose keys does ("traits (a key)"), or None: walked
    without recursion, as an event may be nested a thousand deep; a path of more than 60
    characters is cut ("deep.a.a...": a reason is one line)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, inner = stack.pop()
        if isinstance(inner, str) and holds(inner):
            break
        if isinstance(inner, dict):
            if any(holds(key) for key in inner):
                path = f"{path or 'event'} (a key)"
                break
            stack += reversed([(f"{path}.{key}" if path else key, v) for key, v in inner.items()])
        elif isinstance(inner, list):
            stack += reversed([(f"{path}[{index}]", v) for index, v in enumerate(inner)])
    else:
        return None
    return path if len(path) <= 60 else path[:57] + "..."
