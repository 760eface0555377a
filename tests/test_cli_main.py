"""The `rpd` command itself: version, help (short and long option, real metavars, every command
listed without importing any), usage errors in rpd's one error style, and what start-up imports
(issue 14, items 12 and 13)."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer import _click as click
from typer.testing import CliRunner

from rudder_pipedrive_cli import __version__
from rudder_pipedrive_cli.cli import main as main_module
from rudder_pipedrive_cli.cli.main import COMMANDS, app, load_command

ROOT = Path(__file__).resolve().parents[1]
COMMAND_HELPS = [["send"], ["dry-run"], ["sandbox"], ["map-fields"], ["check"], ["init"]]
COMMAND_HELPS += [["state"], ["state", "show"], ["state", "clear"]]


def rpd(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    assert rpd("--version") == (0, f"rpd {__version__}\n", "")


def test_h_is_help_and_lists_every_command_in_80_columns() -> None:
    code, out, err = rpd("-h")

    assert (code, err) == (0, "")
    assert rpd("--help") == (code, out, err)
    listed = out.split("Commands:\n")[1].splitlines()
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    for line, entry in zip(listed, COMMANDS.values(), strict=True):
        assert line.endswith(entry.summary)  # whole: not cut with "..."
    assert all(len(line) <= 80 for line in out.splitlines())


def help_in(columns: int, *words: str) -> list[str]:
    """`rpd WORDS -h` in a terminal of `columns` columns (click reads $COLUMNS, as
    shutil.get_terminal_size does; CliRunner forces 80)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns)}
    shown = subprocess.run(
        [sys.executable, "-m", "rudder_pipedrive_cli", *words, "-h"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return shown.stdout.splitlines()


def test_a_narrow_terminal_s_help_wraps_each_summary_whole() -> None:
    # At 60 columns click cut them to fit one line: 'Plan a replay without writing:...',
    # 'Check the config, token and fields...' (a tmux pane).
    listed = "\n".join(help_in(60)).split("Commands:\n")[1]

    assert listed.splitlines() == [
        "  send        Replay events to Pipedrive.",
        "  dry-run     Plan a replay without writing: requests,",
        "              outcomes.",
        "  sandbox     Run the Pipedrive emulator.",
        "  map-fields  List the account's fields and lead labels.",
        "  check       Check the config, token and fields against",
        "              the account.",
        "  init        Write a starting rpd.toml.",
        "  state       Inspect or reset the replay state.",
    ]


@pytest.mark.parametrize("words", [[], *COMMAND_HELPS], ids=" ".join)
def test_help_in_a_40_column_pane_stays_within_it(words: list[str]) -> None:
    # click lays help out for 50 columns at least: at 40 its lines ran past the pane's edge,
    # where the terminal broke them mid-word.
    lines = help_in(40, *words)

    assert max(map(len, lines)) <= 40, [line for line in lines if len(line) > 40]
    assert "..." not in "\n".join(lines).replace("PATH...", "").replace("[ARGS]...", "")


@pytest.mark.parametrize("columns", [46, 50])
@pytest.mark.parametrize("words", [[], *COMMAND_HELPS], ids=" ".join)
def test_help_in_a_narrow_pane_breaks_no_word_at_its_hyphens(
    words: list[str], columns: int
) -> None:
    # click wraps with textwrap's break_on_hyphens: `(default rpd-` / `failed-*.ndjson)`,
    # `[default: sandbox-` / `token]` (a token no one could copy), `--fault-` / `seed`, and
    # `no-` / `data` in the mangle kinds, between 40 and 60 columns.
    lines = help_in(columns, *words)

    assert [line for line in lines if re.search(r"\w-$", line)] == []


@pytest.mark.parametrize("words", COMMAND_HELPS, ids=" ".join)
def test_every_command_s_help_shows_real_metavars(words: list[str]) -> None:
    code, out, _ = rpd(*words, "-h")

    assert code == 0
    assert out.startswith(f"Usage: rpd {' '.join(words)} [OPTIONS]")
    for placeholder in ("<str>", "<bool>", "<path>", "<int", "{paths}", "TEXT", "INTEGER"):
        assert placeholder not in out, placeholder
    # An option that takes a value names it (`--report FILE`); a flag names none.
    assert not re.search(r"^\s+(-\w, )?--[\w-]+ (BOOLEAN|[a-z]+)\s", out, re.MULTILINE)
    # Help is plain text: no markup escape shows (`\[fields.*]`), no summary is cut (`...`).
    assert "\\" not in out
    assert "..." not in out.replace("PATH...", "").replace("[ARGS]...", "")


@pytest.mark.parametrize("command", ["send", "dry-run"])
def test_a_default_said_in_an_option_s_help_is_said_once(command: str) -> None:
    # QA: not "(default 32 MiB; e.g. 64MiB).  [default: 33554432]" in an 80-column help.
    _, out, _ = rpd(command, "-h")

    entries = re.split(r"\n  (?=-)", out.split("Options:\n")[1])
    said = {e.split()[0]: " ".join(e.split()) for e in entries if "(default" in e}
    assert said["--max-item-bytes"].endswith(
        "a larger one is a failed item (default 32 MiB; e.g. 64MiB)."
    )
    assert said["--cache-entries"].endswith(
        "Identities kept in memory per cache table; the rest wait in SQLite (default 10000). [x>=1]"
    )
    assert [option for option, text in said.items() if "[default:" in text] == []


def test_send_and_dry_run_name_their_inputs_and_values() -> None:
    _, send, _ = rpd("send", "-h")
    _, dry_run, _ = rpd("dry-run", "-h")

    assert send.startswith("Usage: rpd send [OPTIONS] PATH...\n")
    for option in ("--report FILE", "--concurrency N", "--plan PLAN", "--since WHEN", "--strict  "):
        assert option in send
    assert "--format table|json|ndjson" in dry_run


def test_the_listed_commands_are_the_real_ones() -> None:
    for name in COMMANDS:
        command = load_command(name)
        assert command.name == name
        assert command.help


@pytest.mark.parametrize(
    ("args", "message", "where"),
    [
        (["send"], "Missing argument 'PATH...'.", "rpd send"),
        (
            ["send", "x.ndjson", "--limit", "y"],
            "Invalid value for '--limit': 'y' is not a valid integer range.",
            "rpd send",
        ),
        (["sned"], "No such command 'sned'. Did you mean 'send'?", "rpd"),
        (["xyz"], "No such command 'xyz'.", "rpd"),
        (["state", "shwo"], "No such command 'shwo'. Did you mean 'show'?", "rpd state"),
        (
            ["dry-run", "x", "--lokups"],
            "No such option: --lokups (Possible options: --lookups, --output)",
            "rpd dry-run",
        ),
        (
            ["sandbox", "--port", "x"],
            "Invalid value for '--port': 'x' is not a valid integer.",
            "rpd sandbox",
        ),
        # click's parser makes these without their command: the hint said `rpd --help`.
        (["dry-run", "x", "--format"], "Option '--format' requires an argument.", "rpd dry-run"),
        (["send", "x", "--sandbox=yes"], "Option '--sandbox' does not take a value.", "rpd send"),
        (
            ["state", "show", "--format"],
            "Option '--format' requires an argument.",
            "rpd state show",
        ),
    ],
)
def test_usage_errors_have_rpd_s_error_style(args: list[str], message: str, where: str) -> None:
    assert rpd(*args) == (2, "", f"error: {message}\nhint: see `{where} --help`\n")


@pytest.mark.parametrize(
    ("args", "option", "where"),
    [
        (["-v", "send", "x.ndjson"], "-v", "rpd send"),
        (["--config", "rpd.toml", "dry-run", "x"], "--config", "rpd dry-run"),
        (["--sandbox", "check"], "--sandbox", "rpd check"),
        # Newcomer: click added "(Possible options: --version)", rpd's only option of its own.
        (["--verbose", "send", "x.ndjson"], "--verbose", "rpd send"),
    ],
)
def test_an_option_before_the_command_is_said_to_go_after_it(
    args: list[str], option: str, where: str
) -> None:
    # `rpd -v send x` said "No such option: -v" and "see `rpd --help`", which lists no -v.
    assert rpd(*args) == (
        2,
        "",
        f"error: No such option: {option}\nhint: options go after the command: "
        f"`{where} {option} ...`\n",
    )


@pytest.mark.parametrize("option", ["--verbose", "-q"])
def test_an_option_of_the_commands_without_a_command_is_said_to_go_after_one(option: str) -> None:
    # `rpd --verbose` was "No such option: --verbose (Possible options: --version)".
    assert rpd(option) == (
        2,
        "",
        f"error: No such option: {option}\nhint: options go after the command: "
        f"`rpd COMMAND {option} ...` (`rpd --help` lists the commands)\n",
    )


@pytest.mark.parametrize(
    ("signum", "word", "status"),
    [(signal.SIGTERM, "terminated", 143), (signal.SIGHUP, "hung up", 129)],
)
def test_a_stop_signal_while_the_command_loads_exits_as_the_signal_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, signum: int, word: str, status: int
) -> None:
    """A SIGTERM in the first half second of `rpd send` (importing the command and rich) was
    taken by typer, outside every command's handler, as Ctrl-C: exit 130 and not a word, where
    SPEC 6 says 143 (found by playing, play26: `kill -TERM` 0.1 to 0.4 s after the start)."""

    def signalled_while_loading(name: str) -> click.Command:
        os.kill(os.getpid(), signum)  # stops_raised's handler raises it here, as in an import
        return load_command(name)

    monkeypatch.setattr(main_module, "load_command", signalled_while_loading)
    events = tmp_path / "events.ndjson"
    events.write_text("")
    previous = signal.getsignal(signum)
    try:
        code, out, err = rpd("send", str(events), "--config", str(tmp_path / "none.toml"))
    finally:
        signal.signal(signum, previous)
    assert (code, out, err) == (status, "", f"{word}\n")


def test_no_command_shows_the_help() -> None:
    code, out, err = rpd()

    assert (code, err) == (2, "")
    assert out.startswith("Usage: rpd [OPTIONS] COMMAND [ARGS]...")


HEAVY = ("httpx", "asyncio", "tenacity", "sqlite3", "rudder_pipedrive_cli.sandbox")
PLANS = "rudder_pipedrive_cli.core.plans"


def imported_by(*args: str) -> set[str]:
    """The modules a fresh interpreter has loaded after `rpd ARGS`."""
    script = (
        "import sys\n"
        "from rudder_pipedrive_cli.cli.main import app\n"
        "try:\n"
        f"    app({list(args)!r}, prog_name='rpd')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stderr.split())


def loaded(modules: set[str], prefix: str) -> list[str]:
    return sorted(m for m in modules if m == prefix or m.startswith(prefix + "."))


def test_help_imports_no_command() -> None:
    modules = imported_by("--help")

    for heavy in (*HEAVY, PLANS):
        assert loaded(modules, heavy) == [], heavy
    assert loaded(modules, "rudder_pipedrive_cli.cli") == [
        "rudder_pipedrive_cli.cli",
        "rudder_pipedrive_cli.cli.exits",
        "rudder_pipedrive_cli.cli.main",
        "rudder_pipedrive_cli.cli.screen",
    ]


def test_an_offline_dry_run_imports_no_http_client_server_or_database(tmp_path: Path) -> None:
    events = tmp_path / "in.ndjson"
    events.write_text('{"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}}\n')

    modules = imported_by(
        "dry-run", str(events), "--config", str(ROOT / "config.example.toml"), "-q"
    )

    assert "rudder_pipedrive_cli.cli.dryrun_cmd" in modules
    for heavy in HEAVY:
        assert loaded(modules, heavy) == [], heavy


def test_events_with_message_ids_load_no_hash_library(tmp_path: Path) -> None:
    """hashlib (OpenSSL, 3 ms of each start) names only events that have no messageId."""
    events = tmp_path / "in.ndjson"
    events.write_text('{"type": "identify", "messageId": "m-1", "userId": "u-1"}\n')
    unnamed = tmp_path / "unnamed.ndjson"
    unnamed.write_text('{"type": "identify", "userId": "u-1"}\n')
    config = str(ROOT / "config.example.toml")

    assert "hashlib" not in imported_by("dry-run", str(events), "--config", config, "-q")
    assert "hashlib" in imported_by("dry-run", str(unnamed), "--config", config, "-q")


def test_rpd_starts_with_the_collector_off_and_freezes_start_up_once_the_command_is_loaded(
    tmp_path: Path,
) -> None:
    events = tmp_path / "in.ndjson"
    events.write_text('{"type": "identify", "messageId": "m-1", "userId": "u-1"}\n')
    args = ["rpd", "dry-run", str(events), "--config", str(ROOT / "config.example.toml"), "-q"]
    script = (
        "import gc, sys\n"
        "from rudder_pipedrive_cli.__main__ import main\n"
        f"sys.argv = {args!r}\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10_000, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stderr == "True True\n"


def test_a_command_run_in_process_with_the_collector_on_freezes_nothing() -> None:
    before = gc.get_freeze_count()
    assert rpd("init", "--help")[0] == 0  # loads the command
    assert (gc.isenabled(), gc.get_freeze_count()) == (True, before)


def test_the_rpd_command_is_main_so_its_start_up_is_as_python_m() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    assert scripts == {"rpd": "rudder_pipedrive_cli.__main__:main"}


def test_send_names_a_missing_file_before_starting_a_sandbox(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ndjson"

    for command in ("send", "dry-run"):
        code, out, err = rpd(command, str(missing), "--sandbox")

        assert (code, out) == (2, ""), command
        assert err.startswith(f"error: cannot read {missing}: "), err
        assert "sandbox" not in err


def test_sandbox_with_state_warns_that_each_run_is_a_new_account(tmp_path: Path) -> None:
    events = tmp_path / "in.ndjson"
    events.write_text('{"type": "page", "userId": "u-1"}\n')
    state = tmp_path / "st.sqlite"

    code, _, err = rpd("dry-run", str(events), "--sandbox", "--state", str(state), "-f", "json")

    assert code == 0
    assert (
        f"warning: --sandbox starts a new, empty account each run: --state {state} cannot "
        "resume an earlier --sandbox run (to keep one, run `rpd sandbox` and point --base-url "
        "at it)\n"
    ) in err
    _, _, without = rpd("dry-run", str(events), "--sandbox", "-f", "json")
    assert "--sandbox starts a new" not in without


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-8"])
def test_what_stdout_cannot_encode_is_shown_escaped_not_a_crash(
    tmp_path: Path, encoding: str
) -> None:
    # QA: with PYTHONIOENCODING=ascii (or a Latin-1 locale) a dry-run of `évé.ndjson` was
    # "internal error: UnicodeEncodeError", exit 70; so was a file name that is not UTF-8.
    names = {"évé.ndjson": "\\xe9v\\xe9.ndjson", b"n\xffl.ndjson": "n\\xffl.ndjson"}
    for name, shown in names.items():
        if encoding != "ascii" and isinstance(name, str):
            shown = name  # Latin-1 and UTF-8 have é
        path = tmp_path / os.fsdecode(name)
        path.write_text('{"type": "identify", "messageId": "m-1", "userId": "u-1"}\n')
        done = subprocess.run(
            [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", str(path), "-q"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONIOENCODING": encoding},
            capture_output=True,
        )
        assert (done.returncode, done.stderr) == (1, b""), done.stderr
        first = done.stdout.decode(encoding).splitlines()[0]
        expected = f"{tmp_path}/{shown}:1  identify  failed  ([identity] user_id_field is not set"
        assert first.startswith(expected), first


@pytest.mark.parametrize(
    "command",
    [
        ["send", "e.ndjson"],
        ["dry-run", "e.ndjson", "--lookups"],
        ["check"],
        ["map-fields"],
        ["init", "-o", "-"],
    ],
    ids=lambda words: words[0],
)
def test_sandbox_and_base_url_together_are_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # --sandbox won without a word: `send --sandbox --base-url https://...` sent to the sandbox.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.ndjson").write_text('{"type": "identify", "userId": "u-1"}\n')
    url = "https://api.pipedrive.com"

    assert rpd(
        *command, "--sandbox", "--base-url", url, "-c", str(ROOT / "config.example.toml")
    ) == (
        2,
        "",
        f"error: --sandbox and --base-url {url} both given: --sandbox points the command at an "
        "emulator it starts\nhint: drop --base-url to use the sandbox, or --sandbox to use that "
        "URL\n",
    )


@pytest.mark.parametrize(
    ("args", "option", "command"),
    [
        (["check", "--config", ""], "'--config' / '-c'", "rpd check"),
        (["send", "x.ndjson", "-c", " "], "'--config' / '-c'", "rpd send"),
        # (a host it cannot listen on: a sandbox that would start fails fast)
        (["sandbox", "--host", "nosuch.invalid", "-c", ""], "'--config' / '-c'", "rpd sandbox"),
        (["send", "x.ndjson", "--state", ""], "'--state'", "rpd send"),
        (["state", "clear", "--state", ""], "'--state'", "rpd state clear"),
        (["dry-run", "x.ndjson", "-o", ""], "'--output' / '-o'", "rpd dry-run"),
        # These were "--dead-letter . is a directory", "--report . is a directory", ". already
        # exists" (with --force, "cannot write .: Is a directory") and "cannot read .: Is a
        # directory": a `.` the user never typed.
        (["send", "x.ndjson", "--dead-letter", ""], "'--dead-letter'", "rpd send"),
        (["send", "x.ndjson", "--report", " "], "'--report'", "rpd send"),
        (["init", "-o", ""], "'--output' / '-o'", "rpd init"),
        (["init", "--force", "--output", ""], "'--output' / '-o'", "rpd init"),
        (["init", "--from-rudderstack", "", "-o", "-"], "'--from-rudderstack'", "rpd init"),
    ],
)
def test_an_empty_path_is_a_usage_error(args: list[str], option: str, command: str) -> None:
    # Newcomer: `-c "$CONFIG"` with the variable unset read ./rpd.toml, which may be another
    # account's, and `--state ""` was "--state . is a directory".
    assert rpd(*args) == (
        2,
        "",
        f"error: Invalid value for {option}: an empty path: give a file, or leave the option "
        f"out\nhint: see `{command} --help`\n",
    )


@pytest.mark.parametrize("command", ["send", "check"])
def test_an_empty_base_url_is_a_usage_error(command: str) -> None:
    # It was no --base-url given: requests went to https://api.pipedrive.com.
    args = [command, "x.ndjson"] if command == "send" else [command]
    assert rpd(*args, "--base-url", "") == (
        2,
        "",
        "error: Invalid value for '--base-url': an empty URL: give one, or leave the option "
        f"out\nhint: see `rpd {command} --help`\n",
    )


@pytest.mark.parametrize("command", ["send", "dry-run"])
def test_an_empty_input_path_is_a_usage_error(command: str) -> None:
    # It was `cannot read : No such file or directory`, the empty name unseen.
    assert rpd(command, "x.ndjson", "") == (
        2,
        "",
        "error: Invalid value for 'PATH...': an empty path: name a file, a folder or a bucket "
        f"URL, or '-' for standard input\nhint: see `rpd {command} --help`\n",
    )


def test_dry_run_s_help_says_what_assume_missing_and_existing_mean() -> None:
    # Newcomer: "--assume missing|existing  Offline lookups: missing | existing." named the
    # two words again and said nothing of what either does to the plan.
    _, out, _ = rpd("dry-run", "-h")

    entries = re.split(r"\n  (?=-)", out.split("Options:\n")[1])
    said = {e.split()[0]: " ".join(e.split()) for e in entries}
    assert said["--assume"] == (
        "--assume missing|existing Offline, an identity the state does not hold is missing "
        "(the plan creates it) or existing (updated by a placeholder id, {person:u-1}). "
        "[default: missing]"
    )
    assert all(len(line) <= 80 for line in out.splitlines())


def test_dry_run_s_quiet_help_says_the_plan_is_still_written() -> None:
    # Newcomer: `rpd dry-run -q` printed every event's plan under a help that read "Only errors."
    _, out, _ = rpd("dry-run", "-h")

    entries = re.split(r"\n  (?=-)", out.split("Options:\n")[1])
    said = {e.split()[0]: " ".join(e.split()) for e in entries}
    assert said["-q,"] == "-q, --quiet Only the plan (or -f's output) and errors: no summary."
