"""At 80 columns (QA): what rpd prints for people is wrapped between words on a terminal, the
next lines indented under the text they continue, and stays one line each in a file or a pipe
(for grep). Exact lines, from the wrapping itself up to `rpd check` in a real terminal (a pty).
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Text

from rudder_pipedrive_cli.cli.common import Env, note_finished_objects
from rudder_pipedrive_cli.cli.exits import print_error
from rudder_pipedrive_cli.cli.render import print_sandbox_holdings, print_send_report
from rudder_pipedrive_cli.cli.screen import say, wrap, wrap_text
from rudder_pipedrive_cli.cli.send_cmd import debug_log
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.io.readers import EventReader

ROOT = Path(__file__).resolve().parents[1]
TOKEN_LINE = (
    'ok    token: accepted: Sandbox User <sandbox@example.com>, company "rpd sandbox" '
    "(rpd-sandbox.pipedrive.com)"
)


def console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, width=80, force_terminal=terminal, color_system=None), sink


def test_wrap_breaks_between_words_and_indents_the_next_lines() -> None:
    assert wrap(TOKEN_LINE, 80, indent="      ").split("\n") == [
        'ok    token: accepted: Sandbox User <sandbox@example.com>, company "rpd sandbox"',
        "      (rpd-sandbox.pipedrive.com)",
    ]


def test_wrap_goes_on_under_an_indented_line_its_own_indent_further() -> None:
    text = "      hint: " + " ".join(["word"] * 20)
    assert wrap(text, 40, indent="      ").split("\n") == [
        "      hint: word word word word word",
        "            word word word word word",
        "            word word word word word",
        "            word word word word word",
    ]


def test_wrap_keeps_a_word_wider_than_the_line_whole_on_its_own_line() -> None:
    path = "/very/long/" + "x" * 30
    assert wrap(f"written to {path} now", 20, indent="  ").split("\n") == [
        "written to",
        f"  {path}",
        "  now",
    ]


def test_wrap_keeps_a_command_in_backticks_whole_when_it_fits() -> None:
    # At 80 columns (newcomer): the readable-config warning cut its command, "run `chmod" on one
    # line and "600 tok2.toml`" on the next, which a copy of either line does not run.
    line = (
        "warning: tok2.toml holds an API token and is readable by other users: run `chmod 600 "
        "tok2.toml` or use $PIPEDRIVE_API_TOKEN instead"
    )
    assert wrap(line, 80, indent="  ").split("\n") == [
        "warning: tok2.toml holds an API token and is readable by other users: run",
        "  `chmod 600 tok2.toml` or use $PIPEDRIVE_API_TOKEN instead",
    ]
    # One wider than the room is still broken between its words, not run past the width.
    command = "`rpd send " + " ".join(["a-long-file-name.ndjson"] * 4) + "`"
    assert wrap(f"then {command} again", 40, indent="  ").split("\n") == [
        "then `rpd send a-long-file-name.ndjson",
        "  a-long-file-name.ndjson",
        "  a-long-file-name.ndjson",
        "  a-long-file-name.ndjson` again",
    ]


def test_wrap_leaves_a_line_that_fits_as_it_is_spaces_included() -> None:
    assert wrap("ok    a  b   ", 80) == "ok    a  b   "


def test_wrap_counts_columns_not_characters() -> None:
    # Eight characters, but fourteen columns: each of these takes two.
    assert wrap("名前 名前 名前", 10).split("\n") == ["名前 名前", "名前"]


def test_wrap_keeps_a_lines_first_word_with_its_second() -> None:
    line = "    GET /api/v2/itemSearch/field?term=u-1001&match=exact  # search person by u-1001"
    assert wrap(line, 40, indent="  ").split("\n") == [
        "    GET /api/v2/itemSearch/field?term=u-1001&match=exact",
        "      # search person by u-1001",
    ]


def test_say_wraps_on_a_terminal_and_keeps_one_line_in_a_file() -> None:
    terminal, shown = console(terminal=True)
    say(terminal, TOKEN_LINE, indent="      ")
    log, written = console(terminal=False)
    say(log, TOKEN_LINE, indent="      ")

    assert shown.getvalue().splitlines() == wrap(TOKEN_LINE, 80, indent="      ").split("\n")
    assert written.getvalue() == TOKEN_LINE + "\n"


def report_lines(*, terminal: bool) -> list[str]:
    tally = Tally()
    tally.writes = Counter({"persons created": 7, "persons updated": 5, "leads created": 4})
    tally.writes.update({"organizations created": 2, "merges": 1, "notes created": 1})
    out, sink = console(terminal=terminal)
    print_send_report(out, tally, duration_s=2.0, dead_letter="rpd-failed-20261205-203255.ndjson")
    return sink.getvalue().splitlines()


def test_the_send_reports_lines_wrap_between_words_on_an_80_column_terminal() -> None:
    lines = report_lines(terminal=True)

    assert lines[-5:] == [
        "retries: 0; 429 waits: 0; API tokens: 0; duration: 2.0 s; 0.0 events/s",
        "writes: leads created 4, merges 1, notes created 1, organizations created 2,",
        "  persons created 7, persons updated 5",
        "failed events written to rpd-failed-20261205-203255.ndjson: fix the cause, then",
        "  `rpd send rpd-failed-20261205-203255.ndjson` to send them again",
    ]
    assert max(len(line) for line in lines) <= 80


def test_the_send_reports_lines_stay_one_line_each_in_a_log() -> None:
    lines = report_lines(terminal=False)

    assert lines[-3:] == [
        "retries: 0; 429 waits: 0; API tokens: 0; duration: 2.0 s; 0.0 events/s",
        "writes: leads created 4, merges 1, notes created 1, organizations created 2, "
        "persons created 7, persons updated 5",
        "failed events written to rpd-failed-20261205-203255.ndjson: fix the cause, then "
        "`rpd send rpd-failed-20261205-203255.ndjson` to send them again",
    ]


RETRY = ("GET /api/v2/itemSearch/field", "connection failed (ConnectTimeout) to the server", 0.33)


@pytest.mark.parametrize("terminal", [True, False])
def test_a_debug_line_of_send_v_wraps_on_a_terminal_only(terminal: bool) -> None:
    # It went out through a logging.StreamHandler, whole at 88 columns on an 80-column terminal.
    shown, sink = console(terminal=terminal)
    with debug_log(shown, enabled=True):
        logging.getLogger("rudder_pipedrive_cli.http.client").debug(
            "%s: %s; retrying in %.2fs", *RETRY
        )
    logging.getLogger("rudder_pipedrive_cli.http.client").debug("after the run: not shown")

    line = (
        "debug: GET /api/v2/itemSearch/field: connection failed (ConnectTimeout) to the server; "
        "retrying in 0.33s"
    )
    assert sink.getvalue().splitlines() == (
        [
            "debug: GET /api/v2/itemSearch/field: connection failed (ConnectTimeout) to the",
            "  server; retrying in 0.33s",
        ]
        if terminal
        else [line]
    )


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


ERROR = UsageError(
    "t5.toml: track #3: title: {propertie.topic} in template 'Call: {propertie.topic}' refers "
    "to nothing an event holds",
    hint="did you mean {properties.topic}?",
)


def test_an_error_on_a_terminal_wraps_between_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    shown = Tty()
    print_error(ERROR, shown)

    assert shown.getvalue().splitlines() == [
        "error: t5.toml: track #3: title: {propertie.topic} in template 'Call:",
        "  {propertie.topic}' refers to nothing an event holds",
        "hint: did you mean {properties.topic}?",
    ]


def test_an_error_in_a_file_stays_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    written = io.StringIO()
    print_error(ERROR, written)

    assert written.getvalue().splitlines() == [f"error: {ERROR.message}", f"hint: {ERROR.hint}"]


def test_an_error_is_wrapped_to_the_width_of_the_terminal_it_is_shown_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`rpd send ... > out.txt` on a 132-column terminal: the error goes to stderr, that
    terminal; it was wrapped at 80 columns, the guess for a stdout that is no terminal."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "__stdout__", io.StringIO())  # stdout: a file
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
    try:
        with open(child, "w", closefd=False) as stderr:
            print_error(ERROR, stderr)
        shown = os.read(main, 4096).decode().replace("\r\n", "\n")
    finally:
        os.close(child)
        os.close(main)

    assert shown.splitlines() == [f"error: {ERROR.message}", f"hint: {ERROR.hint}"]
    assert len(f"error: {ERROR.message}") == 121  # wider than 80, within 132


ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_a_terminal(
    *args: str, columns: int = 80, typed: tuple[str, bytes] | None = None
) -> tuple[int, list[str]]:
    """Run `rpd ARGS` with a pseudo-terminal of `columns` columns as stdout and stderr: its
    exit code and the lines it showed, without the escape sequences of colours and styles (a
    dumb terminal would have none, but rich takes one to be 80 columns whatever it is).
    With `typed` (AFTER, KEYS) the terminal is its stdin too: KEYS are typed once AFTER has
    been shown (the terminal echoes them)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", PIPEDRIVE_API_TOKEN="")
    process = subprocess.Popen(
        [sys.executable, "-m", "rudder_pipedrive_cli", *args],
        stdin=subprocess.DEVNULL if typed is None else child,
        stdout=child,
        stderr=child,
        cwd=ROOT,
        env=env,
    )
    os.close(child)
    shown = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        if typed is not None and typed[0] in ESCAPES.sub("", shown.decode(errors="replace")):
            os.write(main, typed[1])
            typed = None
    os.close(main)
    text = ESCAPES.sub("", shown.decode()).replace("\r\n", "\n")
    return process.wait(), text.splitlines()


def test_rpd_check_in_an_80_column_terminal_wraps_between_words() -> None:
    code, lines = in_a_terminal("check", "--config", "config.example.toml", "--sandbox")

    assert code == 0
    assert lines[1:6] == [
        "ok    config: config.example.toml is valid",
        'ok    token: accepted: Sandbox User <sandbox@example.com>, company "rpd sandbox"',
        "      (rpd-sandbox.pipedrive.com)",
        "ok    identity.user_id_field = 'fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48':",
        '      "RudderStack userId" (varchar), a searchable person field',
    ]
    assert lines[-5:] == [
        "ok    track #5: a lead for '*'",
        "info  plan growth: up to 40 requests every 2 s, 10 of them searches",
        "      a day: 60,000 API tokens per seat (3,000 searches or 12,000 creates)",
        "      when they are spent, rpd stops; rerun it the next day to resume",
        "all 15 checks passed",
    ]
    assert max(len(line) for line in lines) <= 80


IDENTIFY = b'{"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}}'


@pytest.mark.parametrize("command", ["dry-run", "send"])
def test_events_read_from_a_terminal_are_asked_for_once_with_how_to_end(command: str) -> None:
    # `rpd dry-run -` at a terminal waited without a word.
    code, lines = in_a_terminal(
        command,
        "-",
        "--config",
        "config.example.toml",
        "--sandbox",
        "-q",
        typed=(" (Ctrl-C cancels)", IDENTIFY + b"\n\x04"),
    )

    assert code == 0, lines
    note = [
        "reading events from standard input (-): paste or type them, then press Ctrl-D on",
        "  a new line to end (Ctrl-C cancels)",
    ]
    search = "&field=fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48&match=exact"
    planned = [
        "-:1  identify  planned",
        f"    GET /api/v2/itemSearch/field?term=u-1&entity_type=person{search}",
        "      # search person by userId u-1",
        "    POST /api/v2/persons  # create person u-1 (not found)",
    ]
    # The note, the event as the terminal echoed it, and (-q) nothing more but a dry-run's plan.
    assert lines == [*note, IDENTIFY.decode(), *(planned if command == "dry-run" else [])]


CFG = ("--config", "config.example.toml")


def test_events_piped_in_get_no_note() -> None:
    piped = subprocess.run(
        [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", "-", "-q", "-f", "ndjson", *CFG],
        input=IDENTIFY,
        capture_output=True,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT), "PIPEDRIVE_API_TOKEN": ""},
        check=False,
    )
    assert (piped.returncode, piped.stderr) == (0, b"")
    assert json.loads(piped.stdout)["outcome"] == "planned"


def test_a_styled_line_wraps_as_plain_text_does_and_keeps_its_styles() -> None:
    line = Text()
    line.append("    POST /v1/leads", style="cyan")
    line.append("  # create lead 'Trial Started' for person {person:u-1001}", style="dim")

    wrapped = wrap_text(line, 60, indent="  ")

    assert wrapped.plain == wrap(line.plain, 60, indent="  ")
    assert wrapped.plain.split("\n") == [
        "    POST /v1/leads  # create lead 'Trial Started' for person",
        "      {person:u-1001}",
    ]
    cyan, dim = Style.parse("cyan"), Style.parse("dim")
    assert wrapped.get_style_at_offset(Console(), 4) == cyan
    assert wrapped.get_style_at_offset(Console(), len(wrapped.plain) - 1) == dim


def test_rpd_dry_run_in_an_80_column_terminal_wraps_notes_not_urls() -> None:
    code, lines = in_a_terminal(
        "dry-run", "examples/events.ndjson", "--config", "config.example.toml", "-q"
    )

    search = "&field=fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48&match=exact"
    assert code == 0
    assert lines[:5] == [
        "examples/events.ndjson:1  identify  planned",
        f"    GET /api/v2/itemSearch/field?term=u-1001&entity_type=person{search}",
        "      # search person by userId u-1001",
        "    POST /api/v2/persons  # create person u-1001 (not found)",
        "    dropped: utm_source",
    ]
    assert lines[lines.index("examples/events.ndjson:5  track  planned  [track #5 (lead)]") :][
        :3
    ] == [
        "examples/events.ndjson:5  track  planned  [track #5 (lead)]",
        "    POST /v1/leads  # create lead 'Trial Started' for person {person:u-1001}",
        "      (cached)",
    ]
    # Only the URLs of searches are wider than the terminal: no space to break them at.
    assert {line.split("?")[0] for line in lines if len(line) > 80} == {
        "    GET /api/v2/itemSearch/field"
    }


def person_fields(*, columns: int) -> tuple[int, list[str]]:
    """`rpd map-fields -e persons` of the sandbox in a terminal of `columns` columns."""
    args = ("map-fields", "--config", "config.example.toml", "--sandbox", "-q", "-e", "persons")
    return in_a_terminal(*args, columns=columns)


def test_rpd_map_fields_in_an_80_column_terminal_keeps_keys_and_names_whole() -> None:
    # The six columns would cut names to `Rud…` and headers to `cus…`: at 80 columns the key
    # keeps its column, whole, and the field is said in words beside it.
    code, lines = person_fields(columns=80)

    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in lines
        if line.startswith(("│", "┃"))
    ]
    assert code == 0
    assert lines[0].rstrip() == "Person fields (16)"
    assert rows[:3] == [["key", "field"], ["name", "Name"], ["", "varchar, searchable"]]
    assert rows[-7:] == [
        ["fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48", "RudderStack userId"],
        ["", "varchar, custom, searchable"],
        ["6098b979cd7506a9c2b183a7814c70e8a6a08a3f", "Role"],
        ["", "varchar, custom, searchable"],
        ["2166d04123ea6d974ed242877a8d769fe934c896", "Plan"],
        ["", "enum, custom"],
        ["", "Free=101, Pro=102, Enterprise=103"],
    ]
    assert max(len(line) for line in lines) <= 80


def test_rpd_map_fields_in_a_40_column_pane_keeps_every_key_whole_and_its_field() -> None:
    # Even the two-column table did not fit: keys were cut to `fee6cb40e6895dcf1bb7a95a3ccc8f9a3d…`
    # and the field column, squeezed to nothing, was gone. Now a line each, a key whole.
    code, lines = person_fields(columns=40)

    assert code == 0
    assert lines[:3] == [
        "Person fields (16)",
        "  name: field Name; varchar, searchable",
        "  first_name: field First name; varchar",
    ]
    assert lines[-9:] == [
        "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48",
        "    field RudderStack userId; varchar,",
        "    custom, searchable",
        "6098b979cd7506a9c2b183a7814c70e8a6a08a3f",
        "    field Role; varchar, custom,",
        "    searchable",
        "2166d04123ea6d974ed242877a8d769fe934c896",
        "    field Plan; enum, custom; Free=101,",
        "    Pro=102, Enterprise=103",
    ]
    assert max(len(line) for line in lines) <= 40


def test_rpd_map_fields_in_a_wide_terminal_keeps_its_six_columns() -> None:
    code, lines = person_fields(columns=140)

    header = [cell.strip() for cell in re.split("[┃]", lines[2])[1:-1]]
    assert code == 0
    assert header == ["key", "name", "type", "custom", "searchable", "options"]


def test_rpd_state_show_json_in_an_80_column_terminal_is_never_wrapped(tmp_path: Path) -> None:
    # Wrapped between words, a path with spaces would break a JSON string in two.
    state = tmp_path / ("the replay state of the backfill of " + "all the events " * 4 + ".sqlite")

    code, lines = in_a_terminal(
        "state", "show", "--config", "config.example.toml", "--state", str(state), "-f", "json"
    )

    assert code == 0
    assert json.loads("\n".join(lines)) == {"path": str(state), "namespaces": []}


def test_rpd_state_show_s_one_line_answers_go_on_indented_in_a_40_column_pane(
    tmp_path: Path,
) -> None:
    # They went on in column 1, as if their ends were lines of their own.
    state = tmp_path / "backfill.sqlite"
    shown = [
        in_a_terminal("state", "show", *args, columns=40)
        for args in (("--state", str(state)), ("--sandbox",))
    ]

    assert shown == [
        (0, ["no state at", f"  {state}"]),
        (
            0,
            [
                "no state: --sandbox without --state",
                "  keeps none (give --state to see a",
                "  file)",
            ],
        ),
    ]


def test_the_sandbox_line_goes_on_indented_in_a_40_column_pane() -> None:
    code, lines = in_a_terminal("check", "--config", "config.example.toml", "--sandbox", columns=40)

    assert code == 0
    assert lines[0] == "sandbox: Pipedrive emulator at"
    assert re.fullmatch(r"  http://127\.0\.0\.1:\d+", lines[1])


def test_the_sandbox_holdings_at_80_columns_keep_emails_whole() -> None:
    terminal, shown = console(terminal=True)
    persons = [
        {"id": 1, "name": "Ada Lovelace", "emails": [{"value": "ada@analytical.example"}]},
        {"id": 3, "name": "Katherine Johnson", "emails": [{"value": "katherine@nasa.example"}]},
    ]
    leads = [{"person_id": 1, "title": title} for title in ("Trial Started", "Plan Upgraded")]
    organizations = [{"id": 9, "name": "Acme Corp"}]
    persons[0]["org_id"] = 9
    state = {"persons": persons, "organizations": organizations, "leads": leads}

    print_sandbox_holdings(terminal, state, records=True)

    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in shown.getvalue().splitlines()
        if line.startswith(("│", "┃"))
    ]
    assert rows == [
        ["person", "name", "email", "organization", "leads"],
        ["1", "Ada Lovelace", "ada@analytical.example", "Acme Corp", "Trial"],
        ["", "", "", "", "Started,"],
        ["", "", "", "", "Plan"],
        ["", "", "", "", "Upgraded"],
        ["3", "Katherine", "katherine@nasa.example", "", ""],
        ["", "Johnson", "", "", ""],
    ]
    assert max(len(line) for line in shown.getvalue().splitlines()) <= 80


def test_the_sandbox_holdings_counts_wrapped_at_80_columns_go_on_indented() -> None:
    # Newcomer: with every kind of record the line passes 80 columns, and went on in column 1,
    # as if it were a line of its own.
    terminal, shown = console(terminal=True)
    state = {
        kind: [{"id": n} for n in range(1000)]
        for kind in ("persons", "organizations", "leads", "deals", "activities", "notes", "merges")
    }

    print_sandbox_holdings(terminal, state, records=False)

    assert shown.getvalue() == (
        "1,000 persons, 1,000 organizations, 1,000 leads, 1,000 deals, 1,000 activities,\n"
        "  1,000 notes, 1,000 merges\n"
    )


def test_a_sandbox_that_holds_no_person_shows_no_empty_table() -> None:
    # A send of nothing (an empty file, every event skipped) showed the table's title and
    # header above no row, then the counts.
    terminal, shown = console(terminal=True)

    print_sandbox_holdings(terminal, {"persons": [], "organizations": []}, records=True)

    assert shown.getvalue() == "0 persons, 0 organizations, 0 leads, 0 merges\n"


def test_the_resuming_line_wrapped_on_a_terminal_goes_on_indented() -> None:
    # It went on in column 1, as if its end were a line of its own.
    sink = io.StringIO()
    narrow = Console(file=sink, width=40, force_terminal=True, color_system=None)
    env = SimpleNamespace(err=narrow, quiet=False)
    reader = SimpleNamespace(objects_skipped=1_234, objects_total=7, paths=("backup",))
    note_finished_objects(cast(Env, env), cast(EventReader, reader))

    assert sink.getvalue().splitlines() == [
        "resuming: 1,234 objects finished by an",
        "  earlier run not read again",
    ]


@pytest.mark.parametrize(("count", "said"), [(1, "1 event was"), (86_078, "86,078 events were")])
def test_the_not_attempted_line_groups_thousands_as_the_report_s_other_counts(
    count: int, said: str
) -> None:
    # A first pass over a big input stopped: "86078 events were read", unlike every other count.
    from rudder_pipedrive_cli.cli.render import not_attempted_line

    assert not_attempted_line(count).startswith(f"not attempted: {said} read but not finished")
