"""The API token given to an option or an argument by mistake is never said back (SPEC 8): click's
usage errors quote the value an option refused, an unknown option and an extra argument, and rpd's
own refusals of an option's value quote it too. Each is said with the token known before the
command ran (the environment's, the config file's) redacted, in `rpd` run as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.process_support import ROOT, SETTINGS

TOKEN = "0123456789abcdef0123456789abcdef01234567"  # as long as a real one (40 hex digits)
FILE_TOKEN = "fedcba9876543210fedcba9876543210fedcba98"
R = "[token redacted]"


def rpd(cwd: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    """`rpd ARGS` in `cwd`, $PIPEDRIVE_API_TOKEN set to `token` (None: unset)."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in SETTINGS:
        environ.pop(name, None)
    if token is not None:
        environ["PIPEDRIVE_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "rudder_pipedrive_cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def said(done: subprocess.CompletedProcess[str], *tokens: str) -> str:
    """Its stderr, asserted a usage error (exit 2) that shows none of `tokens` anywhere."""
    assert done.returncode == 2, done.stderr
    for token in tokens:
        assert token.lower() not in (done.stdout + done.stderr).lower()
    return done.stderr


# (the arguments, with T for the token; the exact stderr)
CASES = {
    "a value click refuses": (
        ["send", "--concurrency", "T", "x.ndjson"],
        f"error: Invalid value for '--concurrency': '{R}' is not a valid integer range.\n"
        "hint: see `rpd send --help`\n",
    ),
    "a value click refuses, given with =": (
        ["dry-run", "x.ndjson", "--limit=T"],
        f"error: Invalid value for '--limit': '{R}' is not a valid integer range.\n"
        "hint: see `rpd dry-run --help`\n",
    ),
    "another command's value": (
        ["sandbox", "--port", "T"],
        f"error: Invalid value for '--port': '{R}' is not a valid integer.\n"
        "hint: see `rpd sandbox --help`\n",
    ),
    "a value missing after it": (
        ["send", "T", "--report"],
        "error: Option '--report' requires an argument.\nhint: see `rpd send --help`\n",
    ),
    "an unknown option next to it": (
        ["send", "--concurrenc", "T", "x.ndjson"],
        "error: No such option: --concurrenc (Possible options: --concurrency)\n"
        "hint: see `rpd send --help`\n",
    ),
    "the token as an option": (
        ["send", "--T", "x.ndjson"],
        f"error: No such option: --{R}\nhint: see `rpd send --help`\n",
    ),
    "an extra argument": (
        ["state", "show", "T"],
        f"error: Got unexpected extra argument(s) ({R})\nhint: see `rpd state show --help`\n",
    ),
    "the token as the command": (
        ["T"],
        f"error: No such command '{R}'.\nhint: see `rpd --help`\n",
    ),
    "a value rpd refuses": (
        ["dry-run", "x.ndjson", "--format", "T"],
        f"error: unknown --format '{R}'\nhint: use table, json or ndjson\n",
    ),
    "a date rpd refuses": (
        ["send", "x.ndjson", "--since", "T"],
        f"error: --since '{R}' is not an ISO 8601 date or time\nhint: use e.g. --since 2024, "
        "--since 2024-05, --since 2024-05-01 or --since 2024-05-01T12:00:00Z (naive means UTC)\n",
    ),
}


@pytest.mark.parametrize(("args", "stderr"), CASES.values(), ids=CASES.keys())
def test_a_usage_error_never_says_the_environment_s_token(
    tmp_path: Path, args: list[str], stderr: str
) -> None:
    given = [TOKEN if arg == "T" else arg.replace("=T", f"={TOKEN}") for arg in args]
    given = [arg.replace("--T", f"--{TOKEN}") for arg in given]
    assert said(rpd(tmp_path, *given), TOKEN) == stderr


def test_a_usage_error_never_says_the_config_file_s_token(tmp_path: Path) -> None:
    """The token only in a config, named by --config or found as ./rpd.toml."""
    config = tmp_path / "other.toml"
    config.write_text(f'[pipedrive]\napi_token = "{FILE_TOKEN}"\n')
    config.chmod(0o600)
    refused = f"error: Invalid value for '--limit': '{R}' is not a valid integer range.\n"
    named = rpd(tmp_path, "send", "-c", "other.toml", "--limit", FILE_TOKEN, "x", token=None)
    assert said(named, FILE_TOKEN) == refused + "hint: see `rpd send --help`\n"
    config.rename(tmp_path / "rpd.toml")
    found = rpd(tmp_path, "dry-run", "--limit", FILE_TOKEN, "x", token=None)
    assert said(found, FILE_TOKEN) == refused + "hint: see `rpd dry-run --help`\n"
    # Both known: neither shown.
    both = rpd(tmp_path, "dry-run", "--format", FILE_TOKEN, "--limit", TOKEN, "x")
    assert said(both, TOKEN, FILE_TOKEN) == (
        f"error: Invalid value for '--limit': '{R}' is not a valid integer range.\n"
        "hint: see `rpd dry-run --help`\n"
    )
    mistaken = rpd(tmp_path, "dry-run", "x", "--format", FILE_TOKEN, token=None)
    assert said(mistaken, FILE_TOKEN) == (
        f"error: unknown --format '{R}'\nhint: use table, json or ndjson\n"
    )


def test_a_refused_send_s_report_says_the_refusal_redacted(tmp_path: Path) -> None:
    done = rpd(tmp_path, "send", "--report", "r.json", "--concurrency", TOKEN, "x.ndjson")
    said(done, TOKEN)
    report = (tmp_path / "r.json").read_text()
    assert TOKEN not in report
    assert json.loads(report)["stopped"] == {
        "exit": 2,
        "reason": f"Invalid value for '--concurrency': '{R}' is not a valid integer range.",
    }


@pytest.mark.parametrize(
    "named",
    [["-cother.toml"], ["-vc", "other.toml"], ["-qvcother.toml"]],
    ids=["-cFILE", "-vc FILE", "-qvcFILE"],
)
def test_a_config_named_as_click_also_takes_it_has_its_token_redacted(
    tmp_path: Path, named: list[str]
) -> None:
    """-c's value attached (-cFILE) or -c last in a cluster of flags (-vc FILE): click reads that
    config, so its token is known; it was said back."""
    config = tmp_path / "other.toml"
    config.write_text(f'[pipedrive]\napi_token = "{FILE_TOKEN}"\n')
    config.chmod(0o600)
    done = rpd(tmp_path, "send", *named, "--concurrency", FILE_TOKEN, "x.ndjson", token=None)
    assert said(done, FILE_TOKEN) == (
        f"error: Invalid value for '--concurrency': '{R}' is not a valid integer range.\n"
        "hint: see `rpd send --help`\n"
    )


def test_an_error_after_a_named_pipe_s_config_was_read_is_said_without_reading_it_again(
    tmp_path: Path,
) -> None:
    """The config a named pipe (its writer writes it once, as `cat rpd.toml > pipe &`): the
    error said after the command read it hides its token without opening the pipe again, which
    waited for ever for a writer that was gone."""
    pipe = tmp_path / "pipe.toml"
    os.mkfifo(pipe, 0o600)

    def write_once() -> None:
        with pipe.open("w") as writer:
            writer.write(f'[pipedrive]\napi_token = "{FILE_TOKEN}"\n')

    threading.Thread(target=write_once, daemon=True).start()
    (tmp_path / "x.ndjson").write_text("")
    state = tmp_path / "x.ndjson" / "state.sqlite"  # in a folder that is a file
    done = rpd(tmp_path, "send", "-c", str(pipe), "--state", str(state), "x.ndjson", token=None)
    assert said(done, FILE_TOKEN) == (
        f"error: cannot open state file {state}: {tmp_path / 'x.ndjson'} is a file, not a folder\n"
        "hint: give --state a path under folders, not under a file (rpd makes the folders that "
        "are missing)\n"
    )
