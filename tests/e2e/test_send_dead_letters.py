"""Failed events end in a dead-letter file of SPEC 5's shape, exit 1; that file, sent again once
the cause is fixed, delivers them with no duplicates and exit 0."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    EXAMPLES,
    TOKEN,
    assert_report_adds_up,
    assert_stopped_while_starting,
    holdings,
    identify,
    rpd_send,
    track,
    write_config,
    write_events,
)
from test_send_examples import ALL_EXAMPLES, assert_example_holdings
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli import send_cmd
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.io.deadletter import default_dead_letter_path, probe_writable
from rudder_pipedrive_cli.sandbox import Sandbox

NO_CREATE = "person not found and create_persons is off"


def test_failed_events_are_dead_lettered_and_replay_after_the_fix(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    strict_config = write_config(tmp_path, name="no-create.toml", create_persons="false")
    letters = tmp_path / "failed.ndjson"

    first = rpd_send(
        sandbox, tmp_path, *ALL_EXAMPLES, config=strict_config, dead_letter=letters, name="first"
    )

    assert first.exit_code == 1, first.stderr
    assert first.report is not None
    assert_report_adds_up(first.report)
    assert first.report["events"] == {
        "read": 34,
        "sent": 0,
        "unchanged": 0,
        "skipped": 8,  # 2 by a track rule
        "failed": 26,
    }
    assert first.report["dead_letter"] == str(letters)
    records = first.dead_letters
    assert len(records) == 26
    for record in records:
        assert set(record) == {"event", "error", "source"}
        assert set(record["error"]) == {"reason", "stage", "status", "retryable"}
        assert isinstance(record["event"], dict)
        assert record["error"]["retryable"] is False  # failed for the config: for good
    by_id = {r["event"]["messageId"]: r for r in records}
    assert by_id["msg-0001"]["source"].endswith("events.ndjson:1")
    assert by_id["msg-0018"]["source"].endswith("events.ndjson:18#1")
    assert by_id["msg-0102"]["source"].endswith("batch.json#2")
    assert by_id["msg-0202"]["source"].endswith("archive.ndjson.gz:2")
    assert by_id["msg-0001"]["error"]["reason"] == NO_CREATE
    assert by_id["msg-0013"]["error"]["reason"] == (
        "alias: neither previous nor current person found"
    )
    assert f"failed events written to {letters}" in " ".join(first.stderr.split())
    # A later event of a user whose first event failed says so (issue 14 item 4).
    assert by_id["msg-0004"]["error"]["reason"] == (
        f"no person for u-1001: its identify failed earlier ({NO_CREATE})"
    )
    # These reasons quote no event data, so the summary shows them as the dead letters do; the
    # failures of later events of the same users are counted under the first one's reason.
    assert (
        "why events failed (each event's full reason is in its dead letter):\n"
        f"   8  {NO_CREATE}\n"
        "      +16 later events of the same users\n"
        "   2  alias: neither previous nor current person found\n"
    ) in first.stderr
    assert first.report["failed_by_reason"] == {
        NO_CREATE: {"events": 8, "later_events": 16},
        "alias: neither previous nor current person found": {"events": 2, "later_events": 0},
    }
    assert holdings(sandbox).persons == []

    fixed = rpd_send(sandbox, tmp_path, letters, dead_letter=tmp_path / "again.ndjson", name="fix")

    assert fixed.exit_code == 0, fixed.stderr
    assert fixed.report is not None
    assert fixed.report["events"] == {
        "read": 26,
        "sent": 26,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert not (tmp_path / "again.ndjson").exists()
    # Organizations the first run created before failing on the person are found, not re-made.
    assert_example_holdings(holdings(sandbox))

    # And once more: the state knows them all as done.
    once_more = rpd_send(sandbox, tmp_path, letters, name="once-more")
    assert once_more.exit_code == 0
    assert once_more.report is not None
    assert once_more.report["events"]["skipped"] == 26
    assert_example_holdings(holdings(sandbox))


def test_a_bad_line_fails_alone_and_the_rest_is_sent(sandbox: Sandbox, tmp_path: Path) -> None:
    good = b"".join(
        line + b"\n"
        for line in (
            b'{"type":"identify","messageId":"m-1","userId":"u-1","traits":{"name":"One"}}',
            b'{"type":"identify","messageId":"m-2","userId":"u-2", "traits": {"name": "Two"',
            b'{"type":"track","messageId":"m-3","userId":"u-1","event":"Signed Up"}',
            b"[1, 2]",
        )
    )
    source = tmp_path / "mixed.ndjson"
    source.write_bytes(good)

    run = rpd_send(sandbox, tmp_path, source)

    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"] == {
        "read": 4,
        "sent": 2,
        "unchanged": 0,
        "skipped": 0,
        "failed": 2,
    }
    assert run.report["by_type"] == {
        "identify": {"sent": 1},
        "invalid": {"failed": 2},
        "track": {"sent": 1},
    }
    bad, not_event = run.dead_letters
    assert bad["source"] == f"{source}:2"
    assert bad["event"] == good.splitlines()[1].decode()
    assert bad["error"]["stage"] == "read"
    assert bad["error"]["status"] is None
    assert bad["error"]["retryable"] is False
    assert not_event["source"] == f"{source}:4"
    assert not_event["event"] == [1, 2]
    held = holdings(sandbox)
    assert held.user_ids() == {"u-1": 1}
    assert held.origin_ids() == {"rpd:m-3": 1}


@pytest.mark.parametrize(
    ("user", "kept", "column"),
    [
        (b"u\xe9", "u\\xe9", 49),
        # Review: after a backslash, "\\xe9" was an escaped backslash and "xe9": sent again, it
        # made a person of user "u\\xe9"; a SUB control character first keeps it unreadable.
        (b"u\\\xe9", "u\\\x1a\\xe9", 50),
    ],
    ids=["a bad byte", "a bad byte after a backslash"],
)
def test_a_line_that_is_not_utf8_fails_again_when_its_dead_letter_is_sent(
    sandbox: Sandbox, tmp_path: Path, user: bytes, kept: str, column: int
) -> None:
    """Its dead letter keeps the bad byte as a `\\xe9` escape: sent again, the line still fails
    to read, where a U+FFFD in its place would have sent user "u\ufffd" as a new person, and
    for the same reason."""
    source = tmp_path / "latin1.ndjson"
    line = b'{"type":"identify","messageId":"m-1","userId":"%s","traits":{"name":"E"}}' % user
    source.write_bytes(line + b"\n")
    letters = tmp_path / "failed.ndjson"

    first = rpd_send(sandbox, tmp_path, source, dead_letter=letters, name="first")

    assert first.exit_code == 1, first.stderr
    (letter,) = first.dead_letters
    assert letter["event"] == (
        '{"type":"identify","messageId":"m-1","userId":"' + kept + '","traits":{"name":"E"}}'
    )
    assert letter["error"]["reason"] == f"not valid UTF-8: byte 0xe9 at column {column}"

    again = rpd_send(
        sandbox, tmp_path, letters, dead_letter=tmp_path / "again.ndjson", name="again"
    )

    assert again.exit_code == 1, again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": 1,
        "sent": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 1,
    }
    assert holdings(sandbox).persons == []
    # Its dead letter in turn still says why (it said "expected a JSON object, got str": the
    # reason was lost), at the line of the dead letter that names where it was first read.
    (again_letter,) = again.dead_letters
    assert again_letter["event"] == letter["event"]
    assert again_letter["error"]["reason"] == f"not valid UTF-8: byte 0xe9 at column {column}"
    assert again_letter["source"] == f"{letters}:1"
    assert letter["source"] == f"{source}:1"


def test_a_failed_event_is_tried_again_on_rerun(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "events.ndjson",
        [
            identify("m-1", "u-1", name="One"),
            track("m-2", "u-1", "Trial Started", revenue=10, currency="EUR"),
        ],
    )
    no_create = write_config(tmp_path, name="no-create.toml", create_persons="false")
    first = rpd_send(sandbox, tmp_path, events, config=no_create, name="first")
    assert first.exit_code == 1
    assert first.report is not None
    assert first.report["events"]["failed"] == 2

    # The same input, same state, cause fixed: failed events are not "done", so they run.
    second = rpd_send(sandbox, tmp_path, events, name="second")

    assert second.exit_code == 0, second.stderr
    assert second.report is not None
    assert second.report["events"]["sent"] == 2
    held = holdings(sandbox)
    assert held.user_ids() == {"u-1": 1}
    assert held.origin_ids() == {"rpd:m-2": 1}


def test_outputs_in_folders_that_do_not_exist_yet_are_written_there(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # QA: `--dead-letter runs/2026-12/failed.ndjson` in a new checkout: the folders are made.
    events = tmp_path / "events.ndjson"
    events.write_text(
        '{"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "One"}}\n'
        "[1]\n"
    )
    letters = tmp_path / "runs" / "2026-12" / "failed.ndjson"
    report = tmp_path / "reports" / "run.json"

    run = rpd_send(sandbox, tmp_path, events, dead_letter=letters, args=("--report", str(report)))

    assert run.exit_code == 1, run.stderr
    assert [letter["source"] for letter in run.dead_letters] == [f"{events}:2"]
    assert orjson.loads(report.read_bytes())["dead_letter"] == str(letters)


@pytest.mark.parametrize("option", ["--dead-letter", "--report"])
@pytest.mark.parametrize("target", ["the input", "-"])
def test_an_output_that_would_destroy_or_hide_events_is_refused_before_sending(
    sandbox: Sandbox, tmp_path: Path, option: str, target: str
) -> None:
    # QA: the refusal says what is wrong (writing there destroys events) and what to do. A file
    # named `-` (session 14's review) was written, which the advice to send it again
    # (`rpd send -`) read as standard input.
    events = tmp_path / "events.ndjson"
    events.write_text('{"type": "identify", "messageId": "m-1", "userId": "u-1"}\n')
    path = str(events) if target == "the input" else target

    run = rpd_send(sandbox, tmp_path, events, args=(option, path))

    assert run.exit_code == 2
    assert run.stderr.splitlines() == (
        [
            f"error: {option} {events} is one of the input files, and writing there would "
            f"destroy the events it holds: give {option} another file (nothing was sent)"
        ]
        if target == "the input"
        else [
            f"error: {option} - would be a file named '-' (as an input, - is standard input)",
            f"hint: give {option} a file name",
        ]
    )
    assert sandbox.stats()["requests"] == {}
    assert events.read_text().count("\n") == 1


@pytest.mark.parametrize("option", ["--dead-letter", "--report", "--state"])
def test_an_output_inside_an_input_folder_is_refused_before_sending(
    sandbox: Sandbox, tmp_path: Path, option: str
) -> None:
    """A run over a backup folder would read rpd's files there as events (a report failed as
    "no type", dead letters piled up and were read again each run, the state's own bytes were
    hundreds of failed lines); hidden names are never listed, so a file under `.rpd/` is
    fine."""
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "events.ndjson").write_text(
        '{"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "One"}}\n'
    )
    inside = folder / "runs" / "out.json"

    run = rpd_send(sandbox, tmp_path, folder, args=(option, str(inside)))

    assert run.exit_code == 2
    assert run.stderr.splitlines() == [
        f"error: {option} {inside} is inside the input folder {folder}: a run over that folder "
        "would read it as events",
        f"hint: give {option} a path outside {folder} (nothing was sent)",
    ]
    assert sandbox.stats()["requests"] == {}
    assert not (folder / "runs").exists()

    hidden = folder / ".rpd" / "out.json"
    assert rpd_send(sandbox, tmp_path, folder, args=(option, str(hidden))).exit_code == 0


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_input_that_cannot_be_read_is_a_usage_error_before_sending(
    sandbox: Sandbox, tmp_path: Path, kind: str
) -> None:
    # QA: a mistyped path was one "event" read and failed, with a dead letter holding no event,
    # after the other files were sent.
    wrong = tmp_path / "day2.ndjosn"
    if kind == "directory":
        wrong.mkdir()
    # A folder is read as a backup folder (SPEC 2): an empty one has nothing to read.
    why = "No such file or directory" if kind == "missing" else "it holds no files"

    run = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", wrong)

    assert run.exit_code == 2
    assert run.stderr.splitlines() == [
        f"error: cannot read {wrong}: {why}",
        "hint: check the path (nothing was read or sent)",
    ]
    assert sandbox.stats()["requests"] == {}
    assert_stopped_while_starting(run.report, 2, f"cannot read {wrong}: {why}")
    assert not run.dead_letter.exists()


def test_a_directory_as_dead_letter_or_report_path_is_refused_before_sending(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()

    run = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", dead_letter=folder)

    assert run.exit_code == 2
    assert run.stderr.splitlines()[0] == f"error: --dead-letter {folder} is a directory"
    assert sandbox.stats()["requests"] == {}


def test_outputs_that_would_overwrite_the_state_the_config_or_each_other_are_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    state = tmp_path / "state.sqlite"
    first = rpd_send(sandbox, tmp_path, events, state=state, name="first")
    assert first.exit_code == 0, first.stderr
    kept = state.read_bytes()
    config = write_config(tmp_path)
    config_text = config.read_text()
    cases = [
        (["--report", str(state)], "--report", state, "the replay state"),
        (["--dead-letter", str(state)], "--dead-letter", state, "the replay state"),
        (["--report", str(config)], "--report", config, "the config file"),
        (
            ["--report", str(tmp_path / "out.json")],
            "--report",
            tmp_path / "out.json",
            "the --dead-letter file",
        ),
    ]
    for args, option, path, what in cases:
        letters = tmp_path / "out.json" if what == "the --dead-letter file" else None
        if option == "--dead-letter":
            run = rpd_send(sandbox, tmp_path, events, state=state, dead_letter=path, config=config)
        else:
            run = rpd_send(
                sandbox,
                tmp_path,
                events,
                state=state,
                dead_letter=letters,
                config=config,
                args=tuple(args),
            )
        assert run.exit_code == 2, run.stderr
        assert run.stderr.splitlines() == [
            f"error: {option} {path} is also {what}: rpd would overwrite it",
            f"hint: choose another {option} path",
        ]
    assert state.read_bytes() == kept
    assert config.read_text() == config_text


def test_dead_letters_lost_to_a_full_disk_are_an_error_after_the_report(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    import pytest

    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("needs /dev/full")
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1")])  # no name

    run = rpd_send(sandbox, tmp_path, events, dead_letter=full)

    assert run.exit_code == 2
    # Not 'why events failed (each event's full reason is in its dead letter)': none was written.
    assert run.stderr.splitlines()[-4:] == [
        "why events failed:",
        "  1  cannot create person without a name",
        "error: cannot write dead letters to /dev/full: No space left on device",
        "hint: choose another --dead-letter path; rerun to resume",
    ]
    assert "Events" in run.stderr  # the report came first
    assert run.report is not None
    assert run.report["events"]["failed"] == 1
    assert run.report["dead_letter"] is None


def test_a_dead_letter_path_in_a_loop_of_links_is_a_usage_error_before_sending(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1")])  # no name: fails

    run = rpd_send(sandbox, tmp_path, events, dead_letter=tmp_path / "a")

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == [  # found before sending (issue 14 item 9)
        f"error: cannot write --dead-letter {tmp_path}/a: Too many levels of symbolic links",
        "hint: choose another --dead-letter path; nothing was sent",
    ]
    assert sandbox.stats()["requests"] == {}


@pytest.mark.parametrize(
    ("option", "name", "error"),
    [
        ("--report", "/proc/rpd-report.json", "No such file or directory"),
        ("--dead-letter", "/proc/rpd-failed.ndjson", "No such file or directory"),
        ("--report", "FILE/report.json", "Not a directory"),
        ("--dead-letter", "FILE/sub/failed.ndjson", "Not a directory"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_sending(
    sandbox: Sandbox, tmp_path: Path, option: str, name: str, error: str
) -> None:
    # Issue 14 item 9: `send --report /proc/r.json` sent everything, then failed to write it.
    (tmp_path / "FILE").write_text("a file, not a folder")
    path = Path(name.replace("FILE", str(tmp_path / "FILE")))
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1")])  # would fail
    if option == "--report":
        command = ["send", str(events), "--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url]
        command += ["--report", str(path), "--dead-letter", str(tmp_path / "failed.ndjson")]
        command += ["--state", str(tmp_path / "state.sqlite")]
        result = CliRunner().invoke(app, command, env={**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN})
        exit_code, stderr = result.exit_code, result.stderr
        written = []  # --report itself refused: none written, as the error says
    else:
        run = rpd_send(sandbox, tmp_path, events, dead_letter=path)
        exit_code, stderr = run.exit_code, run.stderr
        # --dead-letter refused: the --report file says so (an earlier one is not left as this)
        assert_stopped_while_starting(run.report, 2, f"cannot write {option} {path}: {error}")
        written = ["run-report.json"]

    assert exit_code == 2, stderr
    assert stderr.splitlines() == [
        f"error: cannot write {option} {path}: {error}",
        f"hint: choose another {option} path; nothing was sent",
    ]
    assert sandbox.stats()["requests"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE", "events.ndjson", *written]


def test_probing_an_output_changes_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "old.ndjson"
    existing.write_bytes(b"kept\n")
    probe_writable(existing)
    probe_writable(tmp_path / "new" / "deeper" / "report.json")
    assert existing.read_bytes() == b"kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.ndjson"]


def test_a_state_that_cannot_be_written_is_refused_before_sending(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])

    run = rpd_send(sandbox, tmp_path, events, state=Path("/proc/rpd-state.sqlite"))

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == [
        "error: cannot open state file /proc/rpd-state.sqlite: No such file or directory",
        "hint: check the directory's permissions, or use another --state",
    ]
    assert sandbox.stats()["requests"] == {}


def test_a_file_whose_name_is_not_utf8_is_read_and_its_sources_name_the_bytes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # QA: a file named in Latin-1 (`caf\xe9.ndjson`, copied from another system) stopped the
    # send at its first dead letter with "internal error: UnicodeEncodeError", exit 70, after
    # the events before it were sent; a dry-run's NDJSON records were exit 70 too.
    named = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.ndjson")
    with open(named, "wb") as file:
        file.write(orjson.dumps(identify("m-1", "u-1", name="Ann")) + b"\n{not json\n")
    shown = f"{tmp_path}/caf\\xe9.ndjson"

    run = rpd_send(sandbox, tmp_path, named)

    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert run.report["events"]["sent"] == 1
    (letter,) = [orjson.loads(line) for line in run.dead_letter.read_bytes().splitlines()]
    assert letter["source"] == f"{shown}:2"
    assert letter["event"] == "{not json"


def test_quiet_says_only_where_the_failed_events_went(sandbox: Sandbox, tmp_path: Path) -> None:
    # -q printed nothing at all: exit 1, and a dead-letter file of a name made up by the run.
    events = tmp_path / "e.ndjson"
    events.write_text('{"type": "identify", "userId": "u-1"}\nnot json\n')
    letters = tmp_path / "failed.ndjson"

    run = rpd_send(sandbox, tmp_path, events, args=("-q",), dead_letter=letters)

    assert (run.exit_code, run.stdout) == (1, "")
    assert run.stderr == (
        f"2 events failed, written to {letters}: fix the cause, then `rpd send {letters}` to "
        "send them again\n"
    )
    quiet = rpd_send(sandbox, tmp_path, EXAMPLES / "events.ndjson", args=("-q",), name="ok")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")


def test_dead_letters_sent_again_in_the_second_they_were_named_go_to_a_file_of_their_own(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default name holds the second a run started: `rpd send rpd-failed-*.ndjson` run in the
    second of the run that wrote it was refused ('--dead-letter ... is one of the input files',
    exit 2, with no --dead-letter given), as its default was that very file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(send_cmd, "default_dead_letter_path", partial(default_dead_letter_path, 0))
    write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1")])  # no name: cannot be created
    command = ["--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url, "--plan", "unlimited"]
    command += ["--state", "state.sqlite"]  # not the default, beside the example config
    env = {**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN}
    first = default_dead_letter_path(0)

    wrote = CliRunner().invoke(app, ["send", "e.ndjson", *command], env=env)
    again = CliRunner().invoke(app, ["send", str(first), *command], env=env)

    assert (wrote.exit_code, again.exit_code) == (1, 1), again.stderr
    second = Path(f"{first.stem}-2.ndjson")
    assert f"failed events written to {second}" in " ".join(again.stderr.split())
    records = [orjson.loads(line) for line in first.read_bytes().splitlines()]
    assert [record["source"] for record in records] == ["e.ndjson:1"]
    assert orjson.loads(second.read_bytes())["source"] == f"{first}:1"
