"""Option sets shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Config TOML (default: $RPD_CONFIG, else ./rpd.toml)."),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More detail; tracebacks.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")]
SandboxOpt = Annotated[
    bool,
    typer.Option("--sandbox", help="Start the built-in Pipedrive emulator and use it."),
]
PathsArg = Annotated[
    list[str], typer.Argument(help="Event files (JSON, NDJSON, gzip); '-' reads stdin.")
]
TypeOpt = Annotated[
    str | None, typer.Option("--type", help="Only these event types, e.g. identify,track.")
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only events at or after this ISO date/time.")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Only events before this ISO date/time.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=0, help="Stop after N events that pass the filters.")
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Stop at the first line that is not an event.")
]
PlanOpt = Annotated[
    str | None,
    typer.Option(
        "--plan", help="Pipedrive plan for pacing: lite|growth|premium|ultimate|unlimited."
    ),
]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Override the API base URL.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write output here.")]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state", help="Replay state file (default: .rpd/state.sqlite beside the config)."
    ),
]
CacheEntriesOpt = Annotated[
    int,
    typer.Option(
        "--cache-entries",
        min=1,
        help="Identities kept in memory per cache table; the rest wait in SQLite (default 10000).",
    ),
]
