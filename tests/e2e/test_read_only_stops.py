"""SIGTERM and SIGHUP stop check, map-fields and dry-run as Ctrl-C does (SPEC 6): their word on
stderr, then 143 or 129, no traceback. By default they killed the command where it was, without
a word, the process dead of the signal (-15, -1 to its parent), where Ctrl-C said 'interrupted'
and exited 130. Over loopback HTTP: the sandbox holds its first answer (`answers_held`) until
the command was signalled, so the signal lands in the command, however late the test acts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_support import SETTINGS
from test_map_fields import TOKEN, write_config
from test_send_interrupt import acted_on

from rudder_pipedrive_cli.sandbox import Sandbox

COMMANDS = {
    "check": ["check"],
    "map-fields": ["map-fields"],
    "dry-run": ["dry-run", "--lookups", "in.ndjson"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("signum", "exit_code", "said"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGHUP, 129, "hung up")],
)
def test_a_stop_signal_ends_a_read_only_command_with_its_word_and_exit(
    sandbox: Sandbox,
    tmp_path: Path,
    command: str,
    signum: signal.Signals,
    exit_code: int,
    said: str,
) -> None:
    (tmp_path / "in.ndjson").write_text(
        '{"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "Ada"}}\n'
    )
    config = write_config(tmp_path / "rpd.toml", sandbox.url)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["PIPEDRIVE_API_TOKEN"] = TOKEN
    args = [sys.executable, "-m", "rudder_pipedrive_cli", *COMMANDS[command], "--config", config]
    process, _, stderr = acted_on(  # at its first request
        sandbox,
        None,
        1,
        lambda: subprocess.Popen(
            args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
        lambda process: process.send_signal(signum),
    )

    assert (process.returncode, stderr.decode()) == (exit_code, f"{said}\n")
