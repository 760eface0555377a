"""The `rpd` command: one Typer app; each command lives in its own module, imported when it runs.

`rpd --help` lists the commands from the table below without importing any of them (the sandbox
server, httpx, asyncio, tenacity and the plans are what `send` needs, not what help needs);
`rpd COMMAND ...` imports that command's module only. Usage errors (Typer's and click's own) are
rendered as rpd's errors are: `error:` and `hint:` lines, exit 2.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import typer
from typer import _click as click  # typer 0.26 carries click inside (pyproject pins it)
from typer.core import TyperCommand, TyperGroup

from rudder_pipedrive_cli import __version__
from rudder_pipedrive_cli.cli.exits import (
    NO_SPACE,
    STOP_WORD,
    ExitStatus,
    exit_status_for,
    exit_status_said,
    print_error,
    stops_raised,
)
from rudder_pipedrive_cli.core.errors import RpdError, signal_of

HELP_OPTIONS = ["-h", "--help"]
# Help as click writes it: typer's rich panels import markdown-it, pygments and rich's traceback
# (60 ms, twice what the rest of `rpd --help` takes), and they cut long option lists at 80 columns.
HELP_MARKUP = None


@dataclass(frozen=True, slots=True)
class CommandEntry:
    module: str  # in rudder_pipedrive_cli.cli
    attribute: str  # the command function, or a Typer app of subcommands
    summary: str  # the line `rpd --help` shows: short enough for 80 columns
    # What the command does when click refuses its options before it runs (`refused_usage`),
    # a function of the module: (the command, its arguments, the error said).
    usage_refused: str = ""


COMMANDS: dict[str, CommandEntry] = {
    "send": CommandEntry(
        "send_cmd", "send_command", "Replay events to Pipedrive.", "report_usage_refused"
    ),
    "dry-run": CommandEntry(
        "dryrun_cmd", "dry_run_command", "Plan a replay without writing: requests, outcomes."
    ),
    "sandbox": CommandEntry("sandbox_cmd", "sandbox_command", "Run the Pipedrive emulator."),
    "map-fields": CommandEntry(
        "mapfields_cmd", "map_fields_command", "List the account's fields and lead labels."
    ),
    "check": CommandEntry(
        "check_cmd", "check_command", "Check the config, token and fields against the account."
    ),
    "init": CommandEntry("init_cmd", "init_command", "Write a starting rpd.toml."),
    "state": CommandEntry("state_cmd", "state_app", "Inspect or reset the replay state."),
}


def load_command(name: str) -> click.Command:
    """The real command `name`, its module imported now."""
    entry = COMMANDS[name]
    target = getattr(import_module(f"rudder_pipedrive_cli.cli.{entry.module}"), entry.attribute)
    holder = typer.Typer(
        pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=HELP_MARKUP
    )
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
        holder.callback()(lambda: None)  # a group of one: the command keeps its name
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    if not gc.isenabled():  # started by `rpd` (__main__.py): start-up is over
        gc.freeze()
        gc.enable()
    command = group.commands[name]
    for each in (command, *getattr(command, "commands", {}).values()):  # state's show, clear
        each.context_class = HelpContext
    return command


# The options every command takes, given before the command (`rpd -v send`) by habit.
COMMAND_OPTIONS = ("-v", "--verbose", "-q", "--quiet", "-c", "--config", "--sandbox")


def usage_error(error: click.ClickException, args: Sequence[str]) -> RpdError:
    """A usage error in rpd's words: what was wrong, and where the help is."""
    context = getattr(error, "ctx", None)
    # click's parser makes some errors without their command (`dry-run x --format`): the
    # command is then the one `args` name.
    where = context.command_path if context is not None else command_named(args)
    hint = f"see `{where} --help`"
    named = command_named(args)
    if (
        isinstance(error, click.exceptions.NoSuchOption)
        and where == "rpd"
        and error.option_name in COMMAND_OPTIONS
    ):
        # Not click's "(Possible options: --version)" for --verbose: it goes after a command.
        command = named if named != "rpd" else "rpd COMMAND"
        hint = f"options go after the command: `{command} {error.option_name} ...`"
        if named == "rpd":
            hint += " (`rpd --help` lists the commands)"
        return RpdError(f"No such option: {error.option_name}", hint=hint)
    return RpdError(error.format_message(), hint=hint)


def redacted(error: RpdError, args: Sequence[str]) -> RpdError:
    """`error` without the API token (SPEC 8): click quotes the value an option refused, an
    unknown option or an extra argument, and the token given to one by mistake (`--concurrency
    "$PIPEDRIVE_API_TOKEN"`) was echoed. The token known before the command ran: the
    environment's, and the config file's (`--config` as `args` give it, else where it is looked
    for)."""
    from rudder_pipedrive_cli.io.config import tokens_known, without_tokens

    return without_tokens(tokens_known(config_given(args), os.environ), error)


# The short options that take no value, which click reads in a cluster before -c's (`-vc FILE`).
SHORT_FLAGS = "vqh"


def config_given(args: Sequence[str]) -> str | None:
    """The value of the last `--config`/`-c` in `args`, as click takes it: `--config=FILE`,
    `-cFILE` and -c last in a cluster of flags (`-vc FILE`, `-vcFILE`) too."""
    config = None
    for index, arg in enumerate(args):
        short = arg[1:].lstrip(SHORT_FLAGS) if arg[:1] == "-" and arg[:2] != "--" else ""
        if arg.startswith("--config="):
            config = arg.removeprefix("--config=")
        elif short[1:] and short[0] == "c":
            config = short[1:]
        elif (arg == "--config" or short == "c") and index + 1 < len(args):
            config = args[index + 1]
    return config


def refused_usage(group: TyperGroup, args: Sequence[str], said: RpdError) -> None:
    """A command's own step when click refused its options or arguments before it ran
    (`CommandEntry.usage_refused`): send's --report says the stop, as its other refusals'."""
    name = command_named(args).removeprefix("rpd ").partition(" ")[0]
    entry = COMMANDS.get(name)
    if entry is None or not entry.usage_refused:
        return
    command = group.commands.get(name) or load_command(name)  # refused before it (`rpd -v send`)
    rest = list(args)[list(args).index(name) + 1 :]  # the group's options take no value
    module = import_module(f"rudder_pipedrive_cli.cli.{entry.module}")
    getattr(module, entry.usage_refused)(command, rest, said)


def command_named(args: Sequence[str]) -> str:
    """`rpd` and the command (and subcommand) `args` name, wherever options put it."""
    words = [arg for arg in args if not arg.startswith("-")]
    if not words or words[0] not in COMMANDS:
        named = [word for word in words if word in COMMANDS][:1]
        return " ".join(["rpd", *named])
    if words[0] == "state" and len(words) > 1 and words[1] in ("show", "clear"):
        return f"rpd state {words[1]}"
    return f"rpd {words[0]}"


LEAST_HELP_WIDTH = 50  # click lays help out for this many columns at least, whatever the terminal


def help_width() -> int | None:
    """The width help is laid out for on a terminal narrower than click's least: at 40 columns
    its lines ran past the pane's edge, broken there mid-word. None: click's own (80 columns at
    most; CliRunner's forced 80)."""
    if click.formatting.FORCED_WIDTH is not None:
        return None
    width = shutil.get_terminal_size().columns - 2  # as click leaves
    return width if width < LEAST_HELP_WIDTH else None


# Held in place of each hyphen while click wraps help: its textwrap breaks words at hyphens, and
# has no setting to stop it (click's wrap_text makes its own TextWrapper), so at 40 to 60 columns
# an option named in a help (`--fault-` / `seed`), a default (`[default: sandbox-` / `token]`)
# or a file name (`rpd-` / `failed-*.ndjson`) was split. One character wide, as the hyphen is.
HELD_HYPHEN = "\u2011"  # NON-BREAKING HYPHEN, never in rpd's help itself


class NarrowHelp(click.HelpFormatter):
    """click's help, its words never broken at their hyphens (`HELD_HYPHEN`)."""

    def write_dl(
        self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        """On a terminal narrower than click's least, an option (`-f, --format
        table|json|ndjson`) takes a third of the width at most, its text going on under it
        where it has room, not squeezed into 10 columns and cut there mid-word (`o/rganizatio`)."""
        if self.width < LEAST_HELP_WIDTH:
            col_max = min(col_max, self.width // 3)
        held = [(term, text.replace("-", HELD_HYPHEN)) for term, text in rows]
        super().write_dl(held, col_max, col_spacing)

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", HELD_HYPHEN))

    def getvalue(self) -> str:
        return super().getvalue().replace(HELD_HYPHEN, "-")


class HelpContext(click.Context):
    formatter_class = NarrowHelp


class LazyGroup(TyperGroup):
    """Lists its commands from `COMMANDS`; imports one only when it is run or its help shown."""

    context_class = HelpContext

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        loaded = self.commands.get(cmd_name)
        if loaded is not None or cmd_name not in COMMANDS:
            return loaded
        # For the list in `rpd --help`: a stand-in with the summary. Running the command (or
        # asking for its help) resolves it, and that loads the real one (resolve_command).
        # Its short help, not click's cut of its help to one line ('Plan a replay without
        # writing:...' at 60 columns): wrapped whole.
        summary = COMMANDS[cmd_name].summary
        return TyperCommand(cmd_name, help=summary, short_help=summary)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name in COMMANDS and name not in self.commands:
            self.add_command(load_command(name), name)
        elif name is not None and name not in COMMANDS:
            # Typer suggests from the commands loaded, and none is: suggest from the table.
            from difflib import get_close_matches  # only for a mistyped command

            matches = get_close_matches(name, COMMANDS)
            if matches:
                suggestions = ", ".join(f"{match!r}" for match in matches)
                raise click.exceptions.UsageError(
                    f"No such command {name!r}. Did you mean {suggestions}?", ctx
                )
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as stop:
            # A stop outside the command's own handler (handle_errors), while it loads (the
            # imports of `rpd send` take half a second): typer took SIGTERM and SIGHUP as Ctrl-C,
            # exit 130 without a word. Said and exited as the command would (SPEC 6).
            print(STOP_WORD[signal_of(stop)], file=sys.stderr)
            raise click.exceptions.Exit(int(exit_status_for(stop))) from None

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = self.exit_status(args, prog_name, complete_var, **extra)
        except OSError as error:  # help or version to a full disk (commands: handle_errors)
            if error.errno not in NO_SPACE:
                raise
            from rudder_pipedrive_cli.cli.common import no_space, stdout_to_devnull

            stdout_to_devnull()
            print_error(no_space(error))
            code = ExitStatus.USAGE
        code = exit_status_said(code)
        if not standalone_mode:
            return code
        sys.exit(code)

    def exit_status(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        extra.setdefault("terminal_width", help_width())
        try:
            with stops_raised():
                code = super().main(
                    args, prog_name or "rpd", complete_var, standalone_mode=False, **extra
                )
        except click.exceptions.NoArgsIsHelpError as error:  # `rpd`, `rpd state`: the help
            print(error.ctx.get_help())
            code = ExitStatus.USAGE
        except click.ClickException as error:  # a usage error: one style for every error
            given = sys.argv[1:] if args is None else args
            said = redacted(usage_error(error, given), given)
            refused_usage(self, given, said)
            print_error(said)
            code = ExitStatus.USAGE
        except click.exceptions.Abort as abort:  # a stop signal or end of input at a prompt
            # click's prompt takes a SIGTERM's Terminated (stops_raised) as Ctrl-C: 143, not 130
            stop = abort.__context__
            stop = stop if isinstance(stop, KeyboardInterrupt) else KeyboardInterrupt()
            print(STOP_WORD[signal_of(stop)], file=sys.stderr)
            code = exit_status_for(stop)
        return int(code or 0)


def show_version(value: bool) -> None:
    if value:
        print(f"rpd {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="rpd",
    cls=LazyGroup,
    rich_markup_mode=HELP_MARKUP,
    help="Replay RudderStack events (identify, group, alias, track) to Pipedrive.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": HELP_OPTIONS},
)


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=show_version, is_eager=True, help="Show rpd's version."
    ),
) -> None:
    """rpd: replay RudderStack events to Pipedrive."""
