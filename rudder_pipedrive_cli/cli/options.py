"""Option sets shared by several commands, defined once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.io.readers import DEFAULT_MAX_ITEM_BYTES, describe_size


def given(text: str, what: str = "path: give a file, or leave the option out") -> str:
    """A path given on the command line: an empty one (`-c "$CONFIG"` with the variable unset)
    names no file, and was taken as none given (./rpd.toml read instead) or as `.`."""
    if not text.strip():
        raise typer.BadParameter(f"an empty {what}")
    return text


def given_input(text: str) -> str:
    """An input PATH: an empty one was `cannot read : No such file or directory`."""
    return given(text, "path: name a file, a folder or a bucket URL, or '-' for standard input")


def one_of(option: str, value: str, choices: Sequence[str]) -> str:
    """`value` of `option` (`--format`), when it is one of `choices`; else a usage error that
    lists them ("use table, json or ndjson")."""
    if value not in choices:
        listed = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise UsageError(f"unknown {option} {value!r}", hint=f"use {listed}")
    return value


def given_file(text: str) -> Path:
    return Path(given(text))


def file_option(*flags: str, help: str) -> Any:
    """An option that names a file (an empty path refused: `given`)."""
    return typer.Option(*flags, parser=given_file, metavar="FILE", help=help)


def given_url(text: str) -> str:
    """`--base-url ""` was no URL given: requests went to https://api.pipedrive.com."""
    return given(text, "URL: give one, or leave the option out")


ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        parser=given,
        metavar="FILE",
        help="Config TOML (default: $RPD_CONFIG, else ./rpd.toml).",
    ),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="More detail; tracebacks.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")]
SandboxOpt = Annotated[
    bool,
    typer.Option("--sandbox", help="Start the built-in Pipedrive emulator and use it."),
]
PathsArg = Annotated[
    list[str],
    typer.Argument(
        parser=given_input,
        metavar="PATH...",
        help="Event files (JSON, NDJSON, gzip); '-' reads stdin; a backup folder or bucket URL "
        "(s3://, gs://, az://, abfs://) is read in time order.",
    ),
]
TypeOpt = Annotated[
    str | None,
    typer.Option("--type", metavar="TYPES", help="Only these event types, e.g. identify,track."),
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", metavar="WHEN", help="Only events at or after this ISO date/time."),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", metavar="WHEN", help="Only events before this ISO date/time."),
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=0, metavar="N", help="Stop after N events that pass the filters."),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Stop at the first line that is not an event.")
]
PlanOpt = Annotated[
    str | None,
    typer.Option(
        "--plan",
        metavar="PLAN",
        help="Pipedrive plan for pacing: lite, growth, premium, ultimate or unlimited.",
    ),
]
IdentitiesOpt = Annotated[
    str | None,
    typer.Option(
        "--identities",
        metavar="WAY",
        help="Resolve userIds/groupIds by search, by an index of the account, or auto.",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", parser=given_url, metavar="URL", help="Override the API base URL."),
]
OutputOpt = Annotated[Path | None, file_option("--output", "-o", help="Write output here.")]
StateOpt = Annotated[
    Path | None,
    file_option(
        "--state", help="Replay state file (default: .rpd/state.sqlite beside the config)."
    ),
]

SIZE_UNITS = {"": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20, "g": 30, "gb": 30}
SIZE_UNITS["gib"] = 30


def parse_size(text: str | int) -> int:
    """A byte count: `33554432`, `32MiB`, `512k`, `1 GiB` (units are binary: k = 1024)."""
    if isinstance(text, int):  # the default, which click passes through the parser too
        return text
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    shift = SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or shift is None or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r} is not a size: use e.g. 33554432, 64MiB or 512KiB")
    return int(match.group(1)) << shift


MaxItemBytesOpt = Annotated[
    int,
    typer.Option(
        "--max-item-bytes",
        parser=parse_size,
        metavar="SIZE",
        show_default=False,  # said in the help, in MiB rather than in bytes
        help=f"Largest line or JSON document read; a larger one is a failed item "
        f"(default {describe_size(DEFAULT_MAX_ITEM_BYTES)}; e.g. 64MiB).",
    ),
]
CacheEntriesOpt = Annotated[
    int,
    typer.Option(
        "--cache-entries",
        min=1,
        metavar="N",
        show_default=False,  # said in the help
        help="Identities kept in memory per cache table; the rest wait in SQLite (default 10000).",
    ),
]
