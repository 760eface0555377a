"""`rpd sandbox`: run the Pipedrive emulator in the foreground until Ctrl-C (or SIGTERM).

The first line on stdout is exactly `listening on http://HOST:PORT`, flushed, so scripts can wait
for it; the second gives the token clients must send (it is the emulator's, not an account's).
Stopping it is the normal way to end it: Ctrl-C or SIGTERM stop cleanly and exit 0.
The default plan is `growth`, so a first try meets the rate limits a real account has.
"""

from __future__ import annotations

import errno
import shlex
import sys
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.common import MORE, handle_errors
from rudder_pipedrive_cli.cli.screen import columns, wrap
from rudder_pipedrive_cli.core.costs import PLAN_NAMES
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.io.config import header_fault, load_settings
from rudder_pipedrive_cli.sandbox import Sandbox, SandboxOptions
from rudder_pipedrive_cli.sandbox.faults import MANGLE_KINDS
from rudder_pipedrive_cli.sandbox.options import DEFAULT_TOKEN


def for_stderr(text: str) -> str:
    """`text` wrapped between words to the width of a terminal on stderr (as rpd's other
    warnings are); one line, whole, in a file or a pipe."""
    width = columns(sys.stderr)
    return wrap(text, width, indent=MORE) if width else text


def announcement(url: str, token: str, *, quiet: bool) -> str:
    """`listening on URL` (scripts wait for that line), then the token and how to point rpd at
    it: a line to paste, which fits 80 columns (with the default token) rather than wrap. On a
    wildcard address (0.0.0.0, ::) that line names loopback: no client connects to the wildcard
    itself, and rpd takes http:// only to loopback."""
    if quiet:
        return f"listening on {url}"
    parts = urlsplit(url)
    loopback = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(parts.hostname or "")
    use = f"{parts.scheme}://{loopback}:{parts.port}" if loopback else url
    return (
        f"listening on {url}\n"
        f"token: {token}; point rpd at it with:\n"
        f"  export RPD_BASE_URL={use} PIPEDRIVE_API_TOKEN={shlex.quote(token)}"
    )


EXPOSED_WARNING = (
    "warning: the sandbox listens beyond this machine with the default token: anyone who can "
    "reach it can read and change its data; choose a token with --token"
)


def _rate(flag: str, help: str) -> Any:
    """A fault rate option: 0 (never) to 1 (always)."""
    return typer.Option(flag, min=0.0, max=1.0, metavar="RATE", help=help)


@handle_errors
def sandbox_command(
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port to listen on (0: any free port).")
    ] = 8787,
    token: Annotated[
        str, typer.Option(metavar="TOKEN", help="The token clients must send.")
    ] = DEFAULT_TOKEN,
    plan: Annotated[
        str | None,
        typer.Option(
            metavar="PLAN",
            help="Rate limits of this plan: " + ", ".join(PLAN_NAMES) + " (default: the plan of "
            "--config, else growth).",
        ),
    ] = None,
    seats: Annotated[
        int, typer.Option(min=1, metavar="N", help="Seats: scale the daily token budget.")
    ] = 1,
    fail_5xx: Annotated[float, _rate("--fail-5xx", "Rate of 500/502/503 answers.")] = 0.0,
    fail_429: Annotated[float, _rate("--fail-429", "Rate of spurious 429s.")] = 0.0,
    fail_reset: Annotated[
        float, _rate("--fail-reset", "Rate of writes applied, then connection reset.")
    ] = 0.0,
    latency_ms: Annotated[
        int,
        typer.Option("--latency-ms", min=0, metavar="MS", help="Delay before every API answer."),
    ] = 0,
    index_lag_ms: Annotated[
        int,
        typer.Option(
            "--index-lag-ms", min=0, metavar="MS", help="Search finds writes only after N ms."
        ),
    ] = 0,
    fail_mangle: Annotated[
        float,
        _rate(
            "--fail-mangle",
            "Rate of successful lookups (itemSearch and the list endpoints) answered 200 with "
            'a malformed body instead: {"success": false}, an HTML page, an empty body, '
            '{"success": true} without data, or a v1-shaped body (data.items).',
        ),
    ] = 0.0,
    mangle_kind: Annotated[
        list[str] | None,
        typer.Option(
            "--mangle-kind",
            metavar="KIND",
            help="Only this malformed body for --fail-mangle (repeatable): "
            + ", ".join(MANGLE_KINDS[:-1])
            + f" or {MANGLE_KINDS[-1]} (default: any, drawn with --fault-seed).",
        ),
    ] = None,
    fault_seed: Annotated[
        int | None,
        typer.Option("--fault-seed", metavar="N", help="Seed the faults to replay them exactly."),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            parser=opt.given,
            metavar="FILE",
            help="Emulate the plan this config names (pipedrive.plan).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Tracebacks on errors.")] = False,
    quiet: opt.QuietOpt = False,
    _sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Taken as every command takes it: this is the emulator."),
    ] = False,
) -> None:
    """Run the Pipedrive emulator in the foreground; Ctrl-C stops it (exit 0).

    The first line is always `listening on http://HOST:PORT` (scripts wait for it), the second
    the token to use; `-q` prints the first line only.
    """
    fault = header_fault(token)
    if fault:
        # No client could send it (a header holds no control character and loses the spaces at
        # its ends: every request would get 401), and the lines below would show it.
        raise UsageError(
            f"--token {fault}: no client could send it",
            hint="choose a token of printable ASCII characters, with no space at either end",
        )
    if plan is None:
        # Only a config named here: an rpd.toml that happens to sit in the folder is not read.
        plan = load_settings(config).plan if config is not None else "growth"
    try:
        options = SandboxOptions(
            host=host,
            port=port,
            token=token,
            plan=plan,
            seats=seats,
            fail_5xx=fail_5xx,
            fail_429=fail_429,
            fail_reset=fail_reset,
            latency_ms=latency_ms,
            index_lag_ms=index_lag_ms,
            fail_mangle=fail_mangle,
            mangle_kinds=tuple(mangle_kind) if mangle_kind else MANGLE_KINDS,
            fault_seed=fault_seed,
        )
    except ValueError as error:
        raise UsageError(str(error), hint="see `rpd sandbox --help`") from None
    sandbox = Sandbox(options)

    def announce(url: str) -> None:
        # The warning first: whoever waits for the first line has it by then.
        if sandbox.beyond_loopback and token == DEFAULT_TOKEN:
            print(for_stderr(EXPOSED_WARNING), file=sys.stderr, flush=True)
        print(announcement(url, token, quiet=quiet), flush=True)

    try:  # until Ctrl-C or SIGTERM
        sandbox.serve_forever(on_ready=announce)
    except OSError as error:
        raise UsageError(
            f"cannot listen on {host}:{port}: {error.strerror or error}", hint=_bind_hint(error)
        ) from None
    except KeyboardInterrupt:  # before the handlers were in place
        pass
    if not quiet:
        print("sandbox stopped", file=sys.stderr)


def _bind_hint(error: OSError) -> str:
    """What to change when the server cannot listen: the port when it is taken (or reserved), else
    the host (an address this machine does not have, or a name that does not resolve)."""
    if error.errno in (errno.EADDRINUSE, errno.EACCES):
        return "choose another --port (0 picks a free one)"
    return "choose a --host this machine has (127.0.0.1, the default, or 0.0.0.0 for every one)"
