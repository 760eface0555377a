"""The `rpd` command: one Typer app; each command lives in its own module."""

from __future__ import annotations

import typer

from rudder_pipedrive_cli.cli.check_cmd import check_command
from rudder_pipedrive_cli.cli.dryrun_cmd import dry_run_command
from rudder_pipedrive_cli.cli.init_cmd import init_command
from rudder_pipedrive_cli.cli.mapfields_cmd import map_fields_command
from rudder_pipedrive_cli.cli.sandbox_cmd import sandbox_command
from rudder_pipedrive_cli.cli.send_cmd import send_command
from rudder_pipedrive_cli.cli.state_cmd import state_app

app = typer.Typer(
    name="rpd",
    help="Replay RudderStack events (identify, group, alias, track) to Pipedrive.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """rpd: replay RudderStack events to Pipedrive."""


app.command("send")(send_command)
app.command("dry-run")(dry_run_command)
app.command("sandbox")(sandbox_command)
app.command("map-fields")(map_fields_command)
app.command("check")(check_command)
app.command("init")(init_command)
app.add_typer(state_app, name="state")
