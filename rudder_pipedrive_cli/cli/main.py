"""The `rpd` command: one Typer app; each command lives in its own module."""

from __future__ import annotations

import typer

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


from rudder_pipedrive_cli.cli.sandbox_cmd import sandbox_command  # noqa: E402

app.command("sandbox")(sandbox_command)
