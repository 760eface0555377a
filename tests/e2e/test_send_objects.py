"""`rpd send` and `rpd dry-run` over a backup in S3 (moto's server on loopback) or a folder:
every event once, in time order, sources `URL:LINE#N`; a rerun skips the finished objects."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    TOKEN,
    assert_report_adds_up,
    holdings,
    rpd_send,
)
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem
from fsspec.registry import _registry  # the classes fsspec imported, by scheme
from objects_support import (
    ALIAS,
    APRIL_28,
    B_08,
    CREDENTIALS_REFUSED,
    GCS_FORBIDDEN,
    IN_WINDOW,
    MAY_1,
    NOT_LAYOUT,
    OUTSIDE,
    S3,
    SINCE,
    TIME_ORDER,
    UNTIL,
    Answer,
    CannedS3,
    archive,
    backup_objects,
    bucket,
    error_xml,
    expected_sources,
    identify,
    key,
    moto_s3,
    object_gets,
    stamp,
)
from process_support import answers_held
from rich.console import Console
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.cli.progress import SendProgress
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.io.s3 import S3FileSystem
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
WINDOW_ARGS = ("--since", SINCE, "--until", UNTIL)
EVENTS = len(expected_sources("x"))  # 7: six objects in the window, one outside the layout


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    pytest.importorskip("moto")
    with moto_s3(monkeypatch) as store:
        store.upload(backup_objects())
        yield store


@pytest.fixture
def empty_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """moto's bucket with no object (its store outlives a server: another test's are removed)."""
    pytest.importorskip("moto")
    with moto_s3(monkeypatch) as store:
        listed = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
        for found in listed:
            store.client.delete_object(Bucket=store.bucket, Key=found["Key"])
        yield store


def test_send_from_s3_then_a_rerun_reads_no_finished_object(
    sandbox: Sandbox, tmp_path: Path, s3: S3
) -> None:
    run = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS)
    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"] == {
        "read": EVENTS,
        "sent": EVENTS,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
    }
    [not_layout] = NOT_LAYOUT
    assert f"e.g. s3://backups/rs/{not_layout}: read in key order after" in run.stderr
    persons = holdings(sandbox).persons
    assert sorted(p["name"] for p in persons) == sorted(
        f"Person {message}" for _, message in expected_sources("x")
    )

    s3.proxy.recorder.requests.clear()
    again = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS, name="rerun")
    assert again.exit_code == 0, again.stderr
    assert "resuming: 6 objects finished by an earlier run not read again" in again.stderr
    assert again.report is not None and again.report["events"]["read"] == 0
    # Not by the first pass either (aliases, identities to resolve): it downloaded them all.
    assert list(object_gets(s3.proxy.recorder.requests, "backups")) == []
    assert holdings(sandbox).persons == persons


def test_send_never_opens_an_object_outside_the_window_nor_lists_a_day_it_cannot_touch(
    sandbox: Sandbox, tmp_path: Path, s3: S3
) -> None:
    """Send reads the input twice (a first pass for aliases and `--identities auto`, then the
    events): both passes list and open only what `--since`/`--until` can meet."""
    run = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS)
    assert run.exit_code == 0, run.stderr
    requests = s3.proxy.recorder.requests
    fetched = set(object_gets(requests, "backups"))
    assert fetched == {f"rs/{name}" for name in [*IN_WINDOW, *NOT_LAYOUT]}
    assert not fetched & {f"rs/{name}" for name in OUTSIDE}
    assert not any(APRIL_28 in path for _, path in requests)  # that day was never listed


def folder_with_a_nameless_event(tmp_path: Path) -> Path:
    """The backup's objects within the window in a folder; B_08's second event, nameless, fails
    (a person cannot be created without a name)."""
    root = tmp_path / "backup"
    nameless = {**identify("no-name"), "traits": {}}
    objects = {name: archive(*events) for name, events in IN_WINDOW.items()}
    objects[TIME_ORDER[3]] = archive(identify("b-08"), nameless)
    for name, data in objects.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_an_object_with_a_failed_event_is_read_again_by_the_rerun(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    root = folder_with_a_nameless_event(tmp_path)

    first = rpd_send(sandbox, tmp_path, root)
    assert first.exit_code == 1, first.stderr
    [letter] = first.dead_letters
    assert letter["source"] == f"{root}/{TIME_ORDER[3]}:2#1"
    assert letter["error"]["reason"] == "cannot create person without a name"

    again = rpd_send(sandbox, tmp_path, root, name="rerun")
    assert "resuming: 4 objects finished by an earlier run not read again" in again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": 2,
        "sent": 0,
        "unchanged": 0,
        "skipped": 1,  # b-08, done in the first run
        "failed": 1,
    }


def with_lines(data: bytes, *extra: bytes) -> bytes:
    """A gzipped object with `extra` lines put after its first."""
    first, rest = gzip.decompress(data).split(b"\n", 1)
    return gzip.compress(b"\n".join([first, *extra, rest]))


def test_an_object_whose_lines_are_no_event_is_finished_and_not_read_again(
    sandbox: Sandbox, tmp_path: Path, empty_s3: S3
) -> None:
    """A line that is no event whatever the config (not JSON, not an object, not UTF-8) fails
    again each time it is read: it kept its object unfinished, so a 300,000-event backup with
    one in each object was downloaded whole again by every rerun (its two passes) and its bad
    lines dead-lettered again. It is dead-lettered by the run that read it and its object is
    finished; an object with an event Pipedrive failed, or a line over --max-item-bytes, is
    read again (SPEC 2, 5)."""
    s3, nameless = empty_s3, {**identify("no-name"), "traits": {}}
    good = archive(identify("a-1"), identify("a-2"))
    big = {**identify("big"), "traits": {"name": "Big", "bio": "x" * 5000}}
    s3.upload(
        {
            TIME_ORDER[1]: with_lines(good, b"{not json", b"42", b'{"type": "\xff"}'),
            TIME_ORDER[3]: archive(identify("b-08"), nameless),
            TIME_ORDER[4]: with_lines(archive(identify("c-1")), orjson.dumps(big)),
        }
    )
    args = ("--max-item-bytes", "4096")
    first = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=args)
    assert first.exit_code == 1, first.stderr
    assert sorted(letter["source"] for letter in first.dead_letters) == sorted(
        [
            *(f"s3://backups/rs/{TIME_ORDER[1]}:{n}" for n in (2, 3, 4)),
            f"s3://backups/rs/{TIME_ORDER[3]}:2#1",
            f"s3://backups/rs/{TIME_ORDER[4]}:2",
        ]
    )
    persons = holdings(sandbox).persons
    assert len(persons) == 4  # a-1, a-2, b-08, c-1

    s3.proxy.recorder.requests.clear()
    again = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=args, name="rerun")
    assert again.exit_code == 1, again.stderr
    assert "resuming: 1 object finished by an earlier run not read again" in again.stderr
    # The other two by each pass: the first (aliases, identities) and the send.
    gets = sorted(object_gets(s3.proxy.recorder.requests, "backups"))
    assert gets == sorted(2 * [f"rs/{TIME_ORDER[3]}", f"rs/{TIME_ORDER[4]}"])
    assert again.report is not None
    assert again.report["events"] == {
        "read": 4,
        "sent": 0,
        "unchanged": 0,
        "skipped": 2,  # b-08 and c-1, done in the first run
        "failed": 2,
    }
    letters = {letter["source"]: letter["error"]["reason"] for letter in again.dead_letters}
    assert letters == {
        f"s3://backups/rs/{TIME_ORDER[3]}:2#1": "cannot create person without a name",
        f"s3://backups/rs/{TIME_ORDER[4]}:2": "line larger than --max-item-bytes (4 KiB): split "
        "it into smaller lines or raise --max-item-bytes, then send its file again (a dead "
        "letter cannot hold it)",
    }
    assert holdings(sandbox).persons == persons


def test_an_object_of_one_pretty_printed_document_over_the_cap_is_read_again_with_a_higher_one(
    sandbox: Sandbox, tmp_path: Path, empty_s3: S3
) -> None:
    """A batch body pretty-printed over lines (`jq .`) and larger than --max-item-bytes is not
    tried whole: each of its lines fails, not JSON. Those failures are not lasting: the rerun
    with a higher cap reads its events (SPEC 2, 5), where its object was finished, skipped
    unread by every later run, its events lost."""
    s3 = empty_s3
    body = {"batch": [identify("p-1"), identify("p-2")]}
    s3.upload({TIME_ORDER[1]: gzip.compress(json.dumps(body, indent=2).encode() + b"\n")})
    small = rpd_send(
        sandbox, tmp_path, "s3://backups/rs", args=("--max-item-bytes", "200"), name="small"
    )
    assert small.exit_code == 1, small.stderr
    assert small.report is not None
    assert small.report["events"]["sent"] == 0
    assert holdings(sandbox).persons == []

    again = rpd_send(sandbox, tmp_path, "s3://backups/rs", name="rerun")
    assert again.exit_code == 0, again.stderr
    assert "resuming" not in again.stderr
    assert again.report is not None
    assert again.report["events"]["sent"] == 2
    assert sorted(person["name"] for person in holdings(sandbox).persons) == [
        "Person p-1",
        "Person p-2",
    ]


def test_a_killed_run_keeps_the_dead_letter_of_a_finished_object_s_line_that_is_no_event(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A line that is no event does not keep its object unfinished: its dead letter is then
    the only trace of it, so it is on disk before the state records the object finished. It
    sat in the dead letters' buffer while the next event's write committed the finish: a run
    killed there (SIGKILL, the OOM killer) left the object finished and the line in no dead
    letter, and every rerun skipped the object unread (SPEC 2, 5)."""
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "a.json").write_bytes(b"{not json\n")
    person = b'{"type": "identify", "userId": "u-2", "messageId": "m-2", "traits": {"name": "B"}}\n'
    (folder / "b.json").write_bytes(person)
    env = {name: value for name, value in os.environ.items() if name not in CLEAN_ENV}
    env["PIPEDRIVE_API_TOKEN"] = TOKEN
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "send", str(folder)]
    command += ["--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url, "--plan", "unlimited"]
    command += ["--concurrency", "1", "--state", str(tmp_path / "state.sqlite")]
    command += ["--dead-letter", str(tmp_path / "failed.ndjson")]
    create = "POST /api/v2/persons"
    with answers_held(sandbox, create):  # b's person is made, its answer held: the run waits
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60  # a bound on a hang, not a measure
            while not sandbox.stats()["requests"].get(create):
                assert time.monotonic() < deadline, "b's person was never created"
                assert process.poll() is None, process.communicate()[1].decode()
                time.sleep(0.02)
            process.kill()
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        finished = [name for (name,) in db.execute("SELECT name FROM objects_done")]
    assert finished == [str(folder / "a.json")]
    letters = [
        orjson.loads(line) for line in (tmp_path / "failed.ndjson").read_bytes().splitlines()
    ]
    assert [(letter["source"], letter["event"]) for letter in letters] == [
        (f"{folder / 'a.json'}:1", "{not json")
    ]


def test_a_folder_given_twice_is_sent_once_and_its_failed_event_tried_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Read twice, the report said 14 events read (6 of them 'already done') and 2 failed, with
    # two dead letters of one event: its failure was tried twice.
    root = folder_with_a_nameless_event(tmp_path)

    run = rpd_send(sandbox, tmp_path, root, f"{root}/")
    assert run.exit_code == 1, run.stderr
    assert f"warning: {root}/ was given before, through {root}: read once, there" in run.stderr
    assert run.report is not None
    assert run.report["events"] == {
        "read": 7,
        "sent": 6,
        "unchanged": 0,
        "skipped": 0,
        "failed": 1,
    }
    assert [letter["source"] for letter in run.dead_letters] == [f"{root}/{TIME_ORDER[3]}:2#1"]
    again = rpd_send(sandbox, tmp_path, root, name="rerun")
    assert "resuming: 4 objects finished by an earlier run not read again" in again.stderr


@pytest.mark.parametrize(
    ("args", "first_sent"),
    [(("--type", "track"), []), (("--until", "2024-05-01T09:30:00Z"), ["Person early"])],
    ids=["type", "until"],
)
def test_an_object_whose_events_a_filter_left_out_is_read_again_without_it(
    sandbox: Sandbox, tmp_path: Path, args: tuple[str, ...], first_sent: list[str]
) -> None:
    """An event that --type, --since or --until leaves out is not done: its object is not
    recorded finished (it was, and a rerun without the filter skipped the object unread, so
    its other events were never sent)."""
    root = tmp_path / "backup"
    path = root / key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(10))
    path.parent.mkdir(parents=True)
    path.write_bytes(
        archive(identify("early"), {**identify("late"), "timestamp": "2024-05-01T10:00:00Z"})
    )

    first = rpd_send(sandbox, tmp_path, root, args=args)
    assert first.exit_code == 0, first.stderr
    assert sorted(p["name"] for p in holdings(sandbox).persons) == first_sent

    again = rpd_send(sandbox, tmp_path, root, name="rerun")
    assert again.exit_code == 0, again.stderr
    assert "resuming" not in again.stderr
    assert again.report is not None
    assert again.report["events"]["read"] == 2
    names = sorted(p["name"] for p in holdings(sandbox).persons)
    assert names == ["Person early", "Person late"]


def test_an_object_whose_only_events_left_out_are_pages_is_finished(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A page that --type leaves out would be skipped without it too: its object is finished,
    and the rerun does not read it again."""
    root = tmp_path / "backup"
    path = root / key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(10))
    path.parent.mkdir(parents=True)
    page = {**identify("page"), "type": "page", "name": "Home"}
    path.write_bytes(archive(identify("early"), page))

    first = rpd_send(sandbox, tmp_path, root, args=("--type", "identify"))
    assert first.exit_code == 0, first.stderr
    again = rpd_send(sandbox, tmp_path, root, name="rerun")
    assert "resuming: 1 object finished by an earlier run not read again" in again.stderr
    assert again.report is not None and again.report["events"]["read"] == 0


ALIAS_OBJECT = key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(9, 10))
ALIASED = archive(identify("cur"), ALIAS)
# A later object: an event of that previousId, whose person the input's alias says is person 1.
LATER_OBJECT = key("src-a", MAY_1, 10, "i-1", stamp(10), stamp(10, 10))
LATER = archive({**identify("old"), "timestamp": "2024-05-01T10:00:00Z"})
ALIASED_AWAY = (  # the report's warning line, once
    "  1  a userId not found is taken as the person of the userId the input aliases it to (the "
    "alias makes them one person: none is created for it)"
)


def backup_folder(root: Path, objects: dict[str, bytes]) -> Path:
    for name, data in objects.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def persons_by_user(sandbox: Sandbox) -> list[tuple[str, str]]:
    people = holdings(sandbox)
    return sorted((people.user_of(p["id"]), p["name"]) for p in people.persons)


@pytest.mark.parametrize("kept", [True, False], ids=["aliases kept", "by an older rpd"])
def test_a_resumed_send_knows_the_aliases_of_the_objects_it_no_longer_reads(
    make_sandbox: MakeSandbox, tmp_path: Path, kept: bool
) -> None:
    """A resumed run (or the next one over a bucket that grew) reads no finished object again,
    its first pass neither: the aliases in those objects come from the state, so an event of a
    previousId an alias moved goes to the person it moved to, as in one uninterrupted run (it
    created a second person).

    Review: objects finished by an rpd that kept no aliases (or by a run from standard input,
    which has no first pass) hold aliases the state does not: the next first pass reads them
    again for those (not the main pass); from then on they are not read again."""
    whole = make_sandbox()
    root = backup_folder(tmp_path / "whole", {ALIAS_OBJECT: ALIASED, LATER_OBJECT: LATER})
    once = rpd_send(whole, tmp_path, root, state=tmp_path / "once.sqlite", name="once")
    assert once.exit_code == 0, once.stderr
    assert ALIASED_AWAY in once.stderr.splitlines()
    assert persons_by_user(whole) == [("user-cur", "Person old")]

    # What a run killed once the first object finished leaves: that object finished, in the
    # state with its alias (unless an older rpd finished it); the second is read by the
    # resumed run only.
    resumed = make_sandbox()
    state = tmp_path / "state.sqlite"
    root = backup_folder(tmp_path / "grown", {ALIAS_OBJECT: ALIASED})
    first = rpd_send(resumed, tmp_path, root, name="first")
    assert first.exit_code == 0, first.stderr
    if not kept:
        with sqlite3.connect(state) as db:  # as an older rpd left it: no aliases, nothing said
            db.execute("DROP TABLE input_aliases")
            db.execute("DELETE FROM meta WHERE key LIKE 'input_aliases_complete:%'")
    backup_folder(root, {LATER_OBJECT: LATER})
    again = rpd_send(resumed, tmp_path, root, name="rerun")
    assert again.exit_code == 0, again.stderr
    assert "resuming: 1 object finished by an earlier run not read again" in again.stderr
    assert again.report is not None and again.report["events"]["read"] == 1
    assert ALIASED_AWAY in again.stderr.splitlines()
    assert persons_by_user(resumed) == persons_by_user(whole)
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT previous_id, user_id FROM input_aliases").fetchall()
        said = db.execute("SELECT count(*) FROM meta WHERE key LIKE 'input_aliases_%'").fetchone()
    assert rows == [("user-old", "user-new")] and said == (1,)

    # A run with standard input among its inputs has no first pass: it unsays it.
    stdin = rpd_send(resumed, tmp_path, "-", root, name="stdin", stdin=b"")
    assert stdin.exit_code == 0, stdin.stderr
    with sqlite3.connect(state) as db:
        said = db.execute("SELECT count(*) FROM meta WHERE key LIKE 'input_aliases_%'").fetchone()
    assert said == (0,)


def test_a_state_file_without_the_aliases_table_resumes(sandbox: Sandbox, tmp_path: Path) -> None:
    """A state file written before rpd kept the input's aliases has no table for them: it opens,
    reads as holding none, and the first alias a run meets creates it."""
    state = tmp_path / "state.sqlite"
    root = backup_folder(tmp_path / "backup", {ALIAS_OBJECT: archive(identify("cur"))})
    first = rpd_send(sandbox, tmp_path, root, name="first")
    assert first.exit_code == 0, first.stderr
    with sqlite3.connect(state) as db:
        assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'input_aliases'").fetchall()

    backup_folder(root, {LATER_OBJECT: archive(ALIAS)})
    again = rpd_send(sandbox, tmp_path, root, name="rerun")
    assert again.exit_code == 0, again.stderr
    assert "resuming: 1 object finished by an earlier run not read again" in again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": 1,
        "sent": 0,
        "unchanged": 1,  # only its current person found, no trait to write
        "skipped": 0,
        "failed": 0,
    }
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT previous_id, user_id FROM input_aliases").fetchall()
    assert rows == [("user-old", "user-new")]


def test_a_window_that_meets_no_object_says_so(sandbox: Sandbox, tmp_path: Path) -> None:
    """A mistyped year read nothing and said nothing: an empty report, exit 0."""
    root = tmp_path / "backup"
    path = root / key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(10))
    path.parent.mkdir(parents=True)
    path.write_bytes(archive(identify("early")))

    run = rpd_send(sandbox, tmp_path, root, args=("--since", "2042-05-01"))

    assert run.exit_code == 0, run.stderr
    assert run.stderr.splitlines()[0] == (
        "warning: no backup object meets --since/--until: none was read (check the dates)"
    )
    assert run.report is not None and run.report["events"]["read"] == 0


@pytest.mark.parametrize("command", ["dry-run", "send"])
def test_a_window_that_meets_no_object_says_so_under_q(
    sandbox: Sandbox, tmp_path: Path, command: str
) -> None:
    """-q keeps the warning that nothing was read: no rerun would tell it, and a cron's -q run
    whose dates are mistyped read nothing, said nothing (stdout and stderr empty) and exited 0."""
    root = tmp_path / "backup"
    path = root / key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(10))
    path.parent.mkdir(parents=True)
    path.write_bytes(archive(identify("early")))
    args = [command, str(root), "--config", str(EXAMPLE_CONFIG), "--since", "2042-05-01", "-q"]
    args += ["--base-url", sandbox.url, "--state", str(tmp_path / "state.sqlite")]
    result = CliRunner().invoke(app, args, env={**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN})

    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "",
        "warning: no backup object meets --since/--until: none was read (check the dates)\n",
    )


def test_an_object_whose_name_is_not_utf8_is_finished_and_skipped_by_the_rerun(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A folder's file name is bytes: one that is not UTF-8 is named `\\xNN` in its sources, in
    the ledger of finished objects and in the state alike, so the rerun skips it as finished
    (it was never recorded, and once other objects were, the rerun crashed with exit 70)."""
    root = tmp_path / "backup"
    bad = B_08.replace("ws-1", os.fsdecode(b"w\xffs"))  # the byte 0xff, as Python holds it
    for name, events in IN_WINDOW.items():
        path = root / (bad if name == B_08 else name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(archive(*events))
    escaped = f"{root}/" + B_08.replace("ws-1", r"w\xffs")

    first = rpd_send(sandbox, tmp_path, root)
    assert first.exit_code == 0, first.stderr
    assert first.report is not None and first.report["events"]["sent"] == 6
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        finished = {name for (name,) in db.execute("SELECT name FROM objects_done")}
    assert len(finished) == 5 and escaped in finished
    persons = holdings(sandbox).persons

    again = rpd_send(sandbox, tmp_path, root, name="rerun")
    assert again.exit_code == 0, again.stderr
    assert "resuming: 5 objects finished by an earlier run not read again" in again.stderr
    assert again.report is not None and again.report["events"]["read"] == 0
    assert holdings(sandbox).persons == persons


def test_dry_run_over_s3_names_each_event_by_its_url_and_line(tmp_path: Path, s3: S3) -> None:
    env = dict(CLEAN_ENV)
    command = ["dry-run", "s3://backups/rs/", "--config", str(EXAMPLE_CONFIG), "-f", "ndjson"]
    result = CliRunner().invoke(app, [*command, *WINDOW_ARGS], env=env)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["source"], r["id"]) for r in records] == expected_sources("s3://backups/rs")


def test_a_bucket_url_without_its_extra_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed
    monkeypatch.delitem(_registry, "gs", raising=False)
    result = CliRunner().invoke(
        app, ["dry-run", "gs://bucket/rs", "--config", str(EXAMPLE_CONFIG)], env=dict(CLEAN_ENV)
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: reading gs:// needs rpd's optional gcs extra (gcsfs)",
        "hint: pip install 'rudder_pipedrive_cli[gcs]'",
    ]


def test_plain_progress_counts_objects_done() -> None:
    @dataclass
    class Reading:  # a reader of a bucket: bytes and objects
        bytes_read: int = 250
        total_bytes: int | None = 1000
        objects_done: int = 2
        objects_total: int = 6

    sink = io.StringIO()
    console = Console(file=sink, width=200, color_system=None)
    tally = Tally()
    now = [100.0]
    progress = SendProgress(console, tally, Reading(), mode="plain", clock=lambda: now[0])
    with progress:
        for _ in progress.counted([parse_event(identify("b-01"), "in")]):
            tally.add_outcome("identify", Outcome(status="sent"))
        now[0] = 101.0
        line = progress.line()
    assert line == (
        "progress: 25% of events done (1 of ~4), 1/s, 0:00:03 left; sent 1, unchanged 0, "
        "skipped 0, failed 0; retries 0, 429 waits 0; objects 2/6"
    )


SECRET_KEY, SESSION_TOKEN = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLE-token"


@pytest.mark.parametrize(
    ("denied", "said"),
    [
        (
            Answer(403, {}, error_xml("AccessDenied", "Access Denied")),
            [
                "error: cannot list s3://b/rs: S3 refused access (AccessDenied): Access Denied",
                "hint: check the URL, the credentials' permissions and the bucket's policy "
                "(nothing was read or sent)",
            ],
        ),
        (  # S3's answer holds the string it signed, the key id and (some stores) the token
            Answer(403, {}, error_xml(
                "SignatureDoesNotMatch",
                f"The request signature we calculated does not match ({SESSION_TOKEN}).",
                AWSAccessKeyId="AKID", StringToSign=f"AWS4-HMAC-SHA256 {SECRET_KEY}",
                SignatureProvided="0badc0de",
            )),
            [
                "error: cannot list s3://b/rs: S3 refused the credentials (SignatureDoesNotMatch): "
                "The request signature we calculated does not match ((hidden)).",
                "hint: check the secret access key (AWS_SECRET_ACCESS_KEY, or the profile's "
                "aws_secret_access_key): it is not the one of the access key id, then rerun the "
                "same command (nothing was read or sent)",
            ],
        ),
    ],
    ids=["access-denied", "wrong-secret"],
)  # fmt: skip
def test_a_bucket_that_denies_the_listing_is_a_usage_error_and_no_secret_is_shown(
    denied: Answer, said: list[str]
) -> None:
    secret, token = SECRET_KEY, SESSION_TOKEN
    with CannedS3(lambda _: denied) as server:
        env = {
            **CLEAN_ENV,
            "AWS_ACCESS_KEY_ID": "AKID",
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_SESSION_TOKEN": token,
            "AWS_ENDPOINT_URL": server.url,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        }
        for verbose in ([], ["-v"]):
            command = ["dry-run", "s3://b/rs", "--config", str(EXAMPLE_CONFIG), *verbose]
            result = CliRunner().invoke(app, command, env=env)
            assert result.exit_code == 2
            assert result.stderr.splitlines()[-2:] == said
            for hidden in (secret, token, "0badc0de", "AKID"):
                assert hidden not in result.output + result.stderr
        assert [(seen.method, seen.path) for seen in server.seen] == [
            ("HEAD", "/b/rs"),
            ("GET", "/b?delimiter=%2F&encoding-type=url&list-type=2&max-keys=1&prefix=rs%2F"),
        ] * 2


@pytest.mark.parametrize("command", ["dry-run", "send"])
def test_a_store_unreachable_at_the_listing_stops_early_with_exit_4(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str
) -> None:
    """AWS_ENDPOINT_URL naming a store that is down (a port nobody listens on): one error
    naming the network, exit 4, nothing read or sent and no secret shown, where it was exit 2
    with the hint to check the URL and the credentials, which were right."""
    monkeypatch.setitem(S3FileSystem.__init__.__kwdefaults__, "delays", ())  # no backoff
    with socket.socket() as closed:  # bound, not listening: a connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {**CLEAN_ENV, **canned_s3_env(f"http://127.0.0.1:{port}")}
        args = [command, "s3://b/rs", "--config", str(EXAMPLE_CONFIG)]
        if command == "send":
            args += ["--sandbox", "--report", str(tmp_path / "report.json")]
        result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 4, result.stderr
    assert result.stderr.splitlines()[-2:] == [
        "error: cannot list s3://b/rs: the store cannot be reached ([Errno 111] Connection "
        "refused)",
        "hint: check the network and the store's endpoint, then rerun the same command (nothing "
        "was read or sent)",
    ]
    assert "never-shown" not in result.output + result.stderr


def canned_s3_env(endpoint: str) -> dict[str, str]:
    """What rpd's environment holds for a send from the S3 at `endpoint` (no config file of the
    machine read): its credentials must never be shown."""
    return {
        "PIPEDRIVE_API_TOKEN": TOKEN,
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "secret-key-never-shown",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }


# What rpd says of S3's ExpiredToken, and hints.
EXPIRED_SAID = "S3 refused the credentials (ExpiredToken): The provided token has expired."
EXPIRED = "renew the credentials: their session token expired (aws sso login, or a new session)"


@pytest.mark.parametrize(
    ("with_state", "rerun"),
    [
        (True, "it resumes at this object"),
        # The built-in sandbox without --state keeps nothing: no resume to promise.
        (False, "--sandbox keeps no state, so a rerun starts over in a new, empty sandbox"),
    ],
    ids=["state", "sandbox-without-state"],
)
def test_credentials_that_expire_mid_run_stop_the_send_with_exit_4(
    sandbox: Sandbox, tmp_path: Path, with_state: bool, rerun: str
) -> None:
    """An S3 session token that expires hours into a backfill: the send stops at the object it
    could not read (exit 4, what to do said), with what it sent in the report and no failed
    event or dead letter for the objects it did not read; they wait for the rerun."""
    line = b'{"type": "identify", "userId": "u-1", "messageId": "m-1", "traits": {"name": "A"}}\n'
    keys = {"rs/a.json": line, "rs/b.json": line.replace(b"1", b"2").replace(b'"A"', b'"B"')}

    expired = Answer(400, {}, error_xml("ExpiredToken", "The provided token has expired."))
    # b.json is read by the first pass, then refused to the main pass.
    answer, _ = bucket(
        "b", keys, lambda seen, get: expired if seen.path == "/b/rs/b.json" and get > 1 else None
    )
    ok, _ = bucket("b", keys)
    with CannedS3(answer) as server:
        env = {
            **CLEAN_ENV,
            **canned_s3_env(server.url),
            "AWS_SESSION_TOKEN": "session-token-never-shown",
        }
        report, letters = tmp_path / "report.json", tmp_path / "failed.ndjson"
        command = ["send", "s3://b/rs", "--config", str(EXAMPLE_CONFIG), "--report", str(report)]
        command += ["--dead-letter", str(letters)]
        if with_state:
            command += ["--base-url", sandbox.url, "--plan", "unlimited"]
            command += ["--state", str(tmp_path / "state.sqlite")]
        else:
            command += ["--sandbox"]
        result = CliRunner().invoke(app, command, env=env)

    assert result.exit_code == 4, result.stderr
    assert result.stderr.splitlines()[-2:] == [
        f"error: cannot read s3://b/rs/b.json: {EXPIRED_SAID}",
        f"hint: {EXPIRED}, then rerun the same command: {rerun}",
    ]
    assert "never-shown" not in result.output + result.stderr
    events = orjson.loads(report.read_bytes())["events"]
    assert events["failed"] == 0
    assert events["read"] == events["sent"] + events.get("not_attempted", 0)
    assert not letters.exists()
    if not with_state:
        return

    renewed = {**env, "AWS_SESSION_TOKEN": "renewed"}
    # Renewed: its first pass and its main pass read b.json, answered this time.
    with CannedS3(ok) as fixed:
        again = CliRunner().invoke(app, command, env={**renewed, "AWS_ENDPOINT_URL": fixed.url})
    assert again.exit_code == 0, again.stderr
    assert sorted(p["name"] for p in holdings(sandbox).persons) == ["A", "B"]


LINE_A = b'{"type": "identify", "userId": "u-1", "messageId": "m-1", "traits": {"name": "A"}}\n'
A_AND_B = {"rs/a.json": LINE_A, "rs/b.json": LINE_A.replace(b"1", b"2").replace(b'"A"', b'"B"')}


def store_goes_down(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event that, while set, has every connection to the S3 endpoint refused (a MinIO
    restarted, a VPN dropped); the feed's tries of an object made at once."""
    monkeypatch.setattr("rudder_pipedrive_cli.io.objects.RETRY_DELAYS", (0.0,) * 5)
    down = threading.Event()
    real_connect = S3FileSystem._connect

    def connect(self: Any, *args: Any) -> Any:
        if down.is_set():
            raise ConnectionRefusedError(111, "Connection refused")
        return real_connect(self, *args)

    monkeypatch.setattr(S3FileSystem, "_connect", connect)
    return down


def send_with_state(sandbox: Sandbox, tmp_path: Path) -> tuple[list[str], Path, Path]:
    """`rpd send s3://b/rs` to the sandbox with a state: the command, its report, its dead
    letters."""
    report, letters = tmp_path / "report.json", tmp_path / "failed.ndjson"
    command = ["send", "s3://b/rs", "--config", str(EXAMPLE_CONFIG), "--report", str(report)]
    command += ["--dead-letter", str(letters), "--base-url", sandbox.url]
    command += ["--plan", "unlimited", "--state", str(tmp_path / "state.sqlite")]
    return command, report, letters


def test_a_store_that_goes_unreachable_mid_run_stops_the_send_with_exit_4_and_the_rerun_resumes(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 endpoint goes down after a.json's events are sent (a MinIO restarted, a VPN
    dropped): b.json's six tries find no one to connect to, and the send stops there (exit 4,
    what to do said), a.json sent, no failed event and no dead letter; the rerun reads b.json
    and sends it, a.json not again. (b.json and every object after it failed, each after six
    tries, 15.5 s: exit 1, dead letters holding no event, a backfill failing for hours.)"""
    down = store_goes_down(monkeypatch)

    def goes_down(seen: Any, get: int) -> None:
        if seen.path == "/b/rs/a.json" and get == 2:  # the main pass reads it: the last answer
            down.set()

    answer, gets = bucket("b", A_AND_B, goes_down)
    with CannedS3(answer) as server:
        env = {**CLEAN_ENV, **canned_s3_env(server.url)}
        command, report, letters = send_with_state(sandbox, tmp_path)
        result = CliRunner().invoke(app, command, env=env)
        assert result.exit_code == 4, result.stderr
        assert result.stderr.splitlines()[-2:] == [
            "error: cannot read s3://b/rs/b.json: the store cannot be reached (Connection "
            "refused, 6 tries)",
            "hint: check the network and the store's endpoint, then rerun the same command: it "
            "resumes at this object",
        ]
        assert "never-shown" not in result.output + result.stderr
        events = orjson.loads(report.read_bytes())["events"]
        assert (events["read"], events["sent"], events["failed"]) == (1, 1, 0)
        assert not letters.exists()
        assert [p["name"] for p in holdings(sandbox).persons] == ["A"]

        down.clear()  # back up
        again = CliRunner().invoke(app, command, env=env)
    assert again.exit_code == 0, again.stderr
    assert sorted(p["name"] for p in holdings(sandbox).persons) == ["A", "B"]
    assert gets == {"/b/rs/a.json": 2, "/b/rs/b.json": 3}  # the rerun reads b.json alone


def test_dry_run_lists_a_folder_once_as_send_does(tmp_path: Path) -> None:
    """dry-run's first pass (the input's aliases) reads the main pass's listing of s3://b/rs,
    as send's does (listed=reader.listed): it listed the folder twice, a bucket of thousands of
    objects paged through twice, and two views of a store written meanwhile."""
    answer, _ = bucket("b", A_AND_B)
    with CannedS3(answer) as server:
        env = {**CLEAN_ENV, **canned_s3_env(server.url)}
        command = ["dry-run", "s3://b/rs", "--config", str(EXAMPLE_CONFIG), "-f", "ndjson"]
        result = CliRunner().invoke(
            app, [*command, "--state", str(tmp_path / "none.sqlite")], env=env
        )
        assert result.exit_code == 0, result.stderr
        listings = [seen.path for seen in server.seen if "list-type" in seen.path]
    assert len(result.stdout.splitlines()) == 2  # both events planned
    assert [path for path in listings if "max-keys" not in path] == [
        "/b?delimiter=%2F&encoding-type=url&list-type=2&prefix=rs%2F"
    ], listings


def test_a_store_that_goes_unreachable_after_the_listing_stops_the_first_pass_with_its_report(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 endpoint goes down once the input is listed, before the first pass reads it (the
    account's and the catalog's requests come between): the send listed the input again for its
    first pass, and stopped there, exit 4, 'cannot list', with no report. It lists it once now,
    and stops at the first pass's first object as a store gone mid-run does: its report (none
    read), what to do and what the rerun does; the rerun sends every event."""
    down, went_down = store_goes_down(monkeypatch), threading.Event()
    monkeypatch.setitem(S3FileSystem.__init__.__kwdefaults__, "delays", ())  # no backoff
    answer, gets = bucket("b", A_AND_B)

    def listed_then_down(seen: Any) -> Answer:
        if "list-type" in seen.path and "max-keys" not in seen.path and not went_down.is_set():
            down.set()  # after the first run's listing of the folder
            went_down.set()
        return answer(seen)

    with CannedS3(listed_then_down) as server:
        env = {**CLEAN_ENV, **canned_s3_env(server.url)}
        command, report, _ = send_with_state(sandbox, tmp_path)
        result = CliRunner().invoke(app, command, env=env)
        assert result.exit_code == 4, result.stderr
        assert result.stderr.splitlines()[-2:] == [
            "error: cannot read s3://b/rs/a.json: the store cannot be reached (Connection "
            "refused, 6 tries)",
            "hint: check the network and the store's endpoint, then rerun the same command: no "
            "event was sent by this run, so the rerun starts from the first object",
        ]
        # The report, printed: its last line, with the first object's 5 reads again
        assert any(
            line.startswith("retries: 0; store retries: 5; 429 waits: 0;")
            for line in result.stderr.split("\n")
        )
        events = orjson.loads(report.read_bytes())["events"]
        assert events == {"read": 0, "sent": 0, "unchanged": 0, "skipped": 0, "failed": 0}
        assert holdings(sandbox).persons == []
        listings = [seen.path for seen in server.seen if "list-type" in seen.path]
        assert len(listings) == 2  # the prefix's probe and its listing: once

        down.clear()  # back up
        again = CliRunner().invoke(app, command, env=env)
    assert again.exit_code == 0, again.stderr
    assert sorted(p["name"] for p in holdings(sandbox).persons) == ["A", "B"]
    assert gets == {"/b/rs/a.json": 2, "/b/rs/b.json": 2}  # the rerun's two passes


# What a send of the example config lists before its first pass (its rules' pipelines, stages
# and activity types too), 10 API tokens each.
CATALOG_LISTINGS = (
    "/api/v2/dealFields",
    "/api/v2/organizationFields",
    "/api/v2/personFields",
    "/api/v2/pipelines",
    "/api/v2/stages",
    "/v1/activityTypes",
    "/v1/leadLabels",
)


def test_a_stop_is_heard_at_once_while_the_main_pass_waits_for_an_object(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SIGTERM while the main pass waits for an object's answer (a stalled connection: the
    store's read timeout is a minute, and the feed tries it six times) stops the send then, with
    its report (exit 143); it stopped only once the feed gave up, six minutes later: the event
    loop was blocked in the read, deaf to the signal."""
    line = b'{"type": "identify", "userId": "u-1", "messageId": "m-1", "traits": {"name": "A"}}\n'
    keys = {"rs/a.json": line, "rs/b.json": line.replace(b"1", b"2").replace(b'"A"', b'"B"')}
    stalled, released = threading.Event(), threading.Event()

    def stall(seen: Any, get: int) -> None:  # b.json read whole by the first pass, then waits
        if seen.path == "/b/rs/b.json" and get > 1:
            stalled.set()
            released.wait()

    answer, _ = bucket("b", keys, stall)
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "send", "s3://b/rs"]
    command += ["--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url, "--plan", "unlimited"]
    command += ["--report", str(report), "--dead-letter", str(tmp_path / "failed.ndjson")]
    command += ["--state", str(tmp_path / "state.sqlite")]
    with CannedS3(answer) as server:
        env = {name: value for name, value in os.environ.items() if name not in CLEAN_ENV}
        env |= canned_s3_env(server.url)
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert stalled.wait(60), "the main pass never asked for b.json"
            process.send_signal(signal.SIGTERM)
            try:  # a bound on a hang, not a measure: it ends well before
                _, stderr = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                stderr = None
        finally:
            released.set()
            if process.poll() is None:
                process.kill()
            process.communicate()
    assert stderr is not None, "the send did not stop while it waited for b.json"
    assert process.returncode == 143, stderr.decode()[-2000:]
    # a.json's event may be answered before the signal or not yet sent (the feed reads ahead
    # of the sends): accounted for either way, never failed.
    events = orjson.loads(report.read_bytes())["events"]
    attempted = {"sent": 1} if events["sent"] else {"sent": 0, "not_attempted": 1}
    assert events == {"read": 1, "unchanged": 0, "skipped": 0, "failed": 0, **attempted}
    names = [person["name"] for person in holdings(sandbox).persons]
    # Not yet answered, the create may still have reached Pipedrive: the next run reconciles it.
    assert names == ["A"] if events["sent"] else names in ([], ["A"])


def test_an_object_whose_event_fails_is_read_again_though_a_later_ones_name_goes_on_from_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Objects `a` and `a:2` (a key may hold ':'): the page of `a:2` (source `a:2:1`) ended while
    `a`'s event was still in flight and was counted as `a`'s, so `a` was recorded finished; its
    event then failed, and the rerun skipped `a` unread: the person was never sent."""
    person = b'{"type": "identify", "userId": "u-1", "messageId": "m-1", "traits": {"name": "A"}}\n'
    page = b'{"type": "page", "userId": "u-9", "messageId": "p-1", "name": "Home"}\n'
    keys = {"rs/a": person, "rs/a:2": page}

    def slow_then_failing(seen: Any, get: int) -> None:  # once the main pass reads `a`
        if seen.path == "/b/rs/a" and get == 2:
            sandbox.set_faults(fail_5xx=1.0, latency_ms=1000)

    answer, _ = bucket("b", keys, slow_then_failing)

    def unquoted(seen: Any) -> Answer:  # the GET of rs/a:2 asks for rs/a%3A2
        return answer(replace(seen, path=unquote(seen.path)))

    command = ["send", "s3://b/rs", "--config", str(EXAMPLE_CONFIG), "--base-url", sandbox.url]
    command += ["--plan", "unlimited", "--max-retries", "0", "--state", str(tmp_path / "state")]
    command += ["--dead-letter", str(tmp_path / "failed.ndjson")]
    with CannedS3(unquoted) as server:
        env = {**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN, "AWS_ENDPOINT_URL": server.url}
        env |= {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret"}
        env |= {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
        result = CliRunner().invoke(app, command, env=env)
        assert result.exit_code == 1, result.stderr
        with sqlite3.connect(tmp_path / "state") as db:
            assert db.execute("SELECT name FROM objects_done").fetchall() == [("s3://b/rs/a:2",)]
        sandbox.set_faults(fail_5xx=0.0, latency_ms=0)
        again = CliRunner().invoke(app, command, env=env)
    assert again.exit_code == 0, again.stderr
    assert [p["name"] for p in holdings(sandbox).persons] == ["A"]


def test_credentials_refused_in_the_first_pass_stop_the_send_with_its_report(
    sandbox: Sandbox, tmp_path: Path, s3: S3
) -> None:
    """Refused while the first pass reads the input for its aliases, before any event is sent:
    the send stops at that object with exit 4 and a refusal's message, and writes its report
    (it wrote none): nothing sent, the events the first pass read before it read and not
    attempted (as a stop mid-run counts the events it read and did not finish), the objects
    after it not read. The rerun, renewed, sends every event once."""
    refused = B_08  # the fourth object in time order
    s3.proxy.recorder.refused.add(refused)

    run = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS)

    assert run.exit_code == 4, run.stderr
    url = f"s3://backups/rs/{refused}"
    assert run.stderr.splitlines()[-2:] == [
        f"error: cannot read {url}: {EXPIRED_SAID}",
        f"hint: {EXPIRED}, then rerun the same command: no event was sent by this run, so the "
        "rerun starts from the first object",
    ]
    assert "not attempted: 4 events were read but not finished when the run stopped" in run.stderr
    read = TIME_ORDER[: TIME_ORDER.index(refused)]  # by the first pass: 4 events
    assert list(object_gets(s3.proxy.recorder.requests, "backups")) == [
        f"rs/{name}" for name in [*read, refused]
    ]
    assert run.report is not None
    assert {**run.report, "duration_s": 0} == {
        "events": {
            "read": 4,
            "sent": 0,
            "unchanged": 0,
            "skipped": 0,
            "failed": 0,
            "not_attempted": 4,
        },
        "by_type": {},
        "skipped_by_reason": {},
        "requests": {  # who the token is, and the listings made before the first pass
            "GET /v1/users/me": 1,
            **{f"GET {path}": 1 for path in CATALOG_LISTINGS},
        },
        "retries": 0,
        "rate_limited": 0,
        "tokens": 2 + 10 * len(CATALOG_LISTINGS),
        "duration_s": 0,
        "dead_letter": None,
        "identities": None,  # none was chosen: no identity was resolved
        "stopped": {"exit": 4, "reason": f"cannot read {url}: {EXPIRED_SAID}"},
    }
    db = sqlite3.connect(tmp_path / "state.sqlite")
    try:  # the state keeps it as the run's, as it keeps a stop mid-run's
        assert db.execute("SELECT counts_json FROM runs").fetchall() == [
            (orjson.dumps(run.report).decode(),)
        ]
    finally:
        db.close()
    assert holdings(sandbox).persons == []
    assert not run.dead_letter.exists()

    s3.proxy.recorder.refused.clear()  # renewed
    again = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS, name="again")
    assert again.exit_code == 0, again.stderr
    assert again.report is not None and again.report["events"]["sent"] == EVENTS
    assert len(holdings(sandbox).persons) == EVENTS


def test_dry_run_whose_first_pass_is_refused_stops_as_send_does(tmp_path: Path, s3: S3) -> None:
    """dry-run makes send's first pass too: refused there, it stops with send's exit 4 and
    error, before any event is planned (it writes nothing, so it has no report to keep)."""
    s3.proxy.recorder.refused.add(B_08)
    command = ["dry-run", "s3://backups/rs", "--config", str(EXAMPLE_CONFIG), *WINDOW_ARGS]
    for output in (["-f", "table"], ["-f", "json"]):
        result = CliRunner().invoke(app, [*command, *output], env=dict(CLEAN_ENV))
        assert result.exit_code == 4, result.stderr
        url = f"s3://backups/rs/{B_08}"
        assert result.stderr.splitlines()[-2:] == [
            f"error: cannot read {url}: {EXPIRED_SAID}",
            f"hint: {EXPIRED}, then rerun the same command",  # it keeps nothing
        ]
        assert result.stdout == ""


class RefusingBucket(MemoryFileSystem):
    """A GCS or Azure bucket (fsspec's memory filesystem, of its own) whose object `refused`
    raises `refusal` when opened after its first `answered` opens (by default the send's first
    pass's), as gcsfs or adlfs would once the credentials expire."""

    protocol = ("gs", "az")
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    refused = ""
    refusal: Exception | None = None
    opened: ClassVar[list[str]] = []
    answered = 1  # opens of `refused` answered before it is refused

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return "/" + path.split("://", 1)[-1].strip("/")

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        self.opened.append(path)
        refused = path == self.refused and self.opened.count(path) > self.answered
        if refused and self.refusal is not None:
            raise self.refusal
        return super()._open(path, mode, **kwargs)


@pytest.mark.parametrize(
    ("scheme", "refusal", "said"),
    [
        *[
            pytest.param(scheme, *refused, id=f"{scheme}-{type(refused[0]).__name__}-{n}")
            for scheme in ("gs", "az")
            for n, refused in enumerate(CREDENTIALS_REFUSED)
        ],
    ],
)
def test_gcs_or_azure_credentials_refused_mid_run_stop_the_send_with_exit_4(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    refusal: Exception,
    said: str,
) -> None:
    """As S3's: gcsfs's and adlfs's errors for refused credentials (look-alikes: neither is
    installed here) stop the send at the object refused, exit 4 (they were retried as
    transient for 15 s, then each object a failed item and a dead letter holding no event)."""
    line = b'{"type": "identify", "userId": "u-1", "messageId": "m-1", "traits": {"name": "A"}}\n'
    RefusingBucket.store = {
        "/b/rs/a.json": MemoryFile(None, None, line),
        "/b/rs/b.json": MemoryFile(None, None, line.replace(b"1", b"2").replace(b'"A"', b'"B"')),
    }
    monkeypatch.setattr(RefusingBucket, "refused", "/b/rs/b.json")
    monkeypatch.setattr(RefusingBucket, "refusal", refusal)
    monkeypatch.setattr(RefusingBucket, "opened", [])
    monkeypatch.setitem(_registry, scheme, RefusingBucket)
    letters = tmp_path / "failed.ndjson"

    run = rpd_send(sandbox, tmp_path, f"{scheme}://b/rs", dead_letter=letters)

    assert run.exit_code == 4, run.stderr
    assert run.stderr.splitlines()[-2:] == [
        f"error: cannot read {scheme}://b/rs/b.json: {said}",
        "hint: renew the credentials, then rerun the same command: it resumes at this object",
    ]
    assert run.report is not None
    events = run.report["events"]
    assert events["failed"] == 0
    assert events["read"] == events["sent"] + events.get("not_attempted", 0)
    assert not letters.exists()

    monkeypatch.setattr(RefusingBucket, "refusal", None)  # renewed
    again = rpd_send(sandbox, tmp_path, f"{scheme}://b/rs", name="again")
    assert again.exit_code == 0, again.stderr
    assert sorted(p["name"] for p in holdings(sandbox).persons) == ["A", "B"]


@pytest.mark.parametrize(
    ("denial", "said"),
    [
        pytest.param(*GCS_FORBIDDEN, id="gcsfs-403"),  # a plain OSError
        # io/s3.py's AccessDenied on one object, for the same bucket: the run GCS's 403 matches
        pytest.param(
            PermissionError("access denied to s3://b/rs/b.json (AccessDenied)"),
            "access denied (check the credentials)",
            id="s3-access-denied",
        ),
    ],
)
def test_gcs_403_fails_that_object_only_and_the_send_reads_on(
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    denial: Exception,
    said: str,
) -> None:
    """GCS's 403 is one object's permission denied (its ACL, a CMEK key), not credentials gone
    (a 401): that object is a failed item, as S3's AccessDenied is, not tried again, and the
    objects after it are read and sent; exit 1. (It stopped the whole run with exit 4, so every
    rerun stopped at that same object and never read the ones after it.)"""
    line = b'{"type": "identify", "userId": "u-1", "messageId": "m-1", "traits": {"name": "A"}}\n'
    RefusingBucket.store = {
        f"/b/rs/{name.lower()}.json": MemoryFile(
            None, None, line.replace(b"1", n).replace(b"A", name.encode())
        )
        for n, name in ((b"1", "A"), (b"2", "B"), (b"3", "C"))
    }
    monkeypatch.setattr(RefusingBucket, "refused", "/b/rs/b.json")
    monkeypatch.setattr(RefusingBucket, "refusal", denial)
    monkeypatch.setattr(RefusingBucket, "opened", [])
    monkeypatch.setitem(_registry, "gs", RefusingBucket)
    letters = tmp_path / "failed.ndjson"

    run = rpd_send(sandbox, tmp_path, "gs://b/rs", dead_letter=letters)

    assert run.exit_code == 1, run.stderr
    assert "renew the credentials" not in run.stderr
    assert run.report is not None
    assert run.report["events"]["failed"] == 1 and run.report["events"]["sent"] == 2
    assert [orjson.loads(row) for row in letters.read_bytes().splitlines()] == [
        {
            "event": None,
            "error": {
                "reason": f"cannot read object: {said}",
                "stage": "read",
                "status": None,
                "retryable": False,
            },
            "source": "gs://b/rs/b.json",
        }
    ]
    assert sorted(p["name"] for p in holdings(sandbox).persons) == ["A", "C"]
    assert RefusingBucket.opened.count("/b/rs/b.json") == 2  # the first pass's, then once


def test_credentials_refused_in_a_resumed_runs_first_pass_say_it_reads_on_from_there(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run (its state holds objects an earlier run finished) refused in its first
    pass: its hint said the rerun "starts from the first object", which it does not (it skips
    those objects). It now says the rerun reads on from the objects not yet finished."""
    line = b'{"type": "identify", "userId": "u-1", "messageId": "m-1", "traits": {"name": "A"}}\n'
    RefusingBucket.store = {
        "/b/rs/a.json": MemoryFile(None, None, line),
        "/b/rs/b.json": MemoryFile(None, None, line.replace(b"1", b"2").replace(b'"A"', b'"B"')),
    }
    refusal, said = CREDENTIALS_REFUSED[0]  # gcsfs's 401
    monkeypatch.setattr(RefusingBucket, "refused", "/b/rs/c.json")
    monkeypatch.setattr(RefusingBucket, "answered", 0)
    monkeypatch.setattr(RefusingBucket, "refusal", refusal)
    monkeypatch.setattr(RefusingBucket, "opened", [])
    monkeypatch.setitem(_registry, "gs", RefusingBucket)
    renew = "hint: renew the credentials, then rerun the same command"

    first = rpd_send(sandbox, tmp_path, "gs://b/rs", name="first")  # finishes a.json, b.json
    assert first.exit_code == 0, first.stderr
    RefusingBucket.store["/b/rs/c.json"] = MemoryFile(
        None, None, line.replace(b"1", b"3").replace(b'"A"', b'"C"')
    )  # uploaded since; refused from its first read

    opened = len(RefusingBucket.opened)
    run = rpd_send(sandbox, tmp_path, "gs://b/rs", name="resumed")
    assert run.exit_code == 4, run.stderr
    assert "resuming: 2 objects finished by an earlier run not read again" in run.stderr
    assert run.stderr.splitlines()[-2:] == [
        f"error: cannot read gs://b/rs/c.json: {said}",
        f"{renew}: no event was sent by this run; the rerun reads on from the objects not yet "
        "finished",
    ]
    assert RefusingBucket.opened[opened:] == ["/b/rs/c.json"]  # by the first pass
    assert run.report is not None and run.report["events"]["sent"] == 0

    monkeypatch.setattr(RefusingBucket, "refusal", None)  # renewed
    opened = len(RefusingBucket.opened)
    again = rpd_send(sandbox, tmp_path, "gs://b/rs", name="again")
    assert again.exit_code == 0, again.stderr
    assert RefusingBucket.opened[opened:] == ["/b/rs/c.json", "/b/rs/c.json"]  # both passes
    assert sorted(p["name"] for p in holdings(sandbox).persons) == ["A", "B", "C"]


def test_a_backup_folder_resumes_however_its_path_is_spelled(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state records a folder's finished files by their absolute paths: a rerun that names
    the folder another way (relative, `./` and a slash, absolute) reads none of them again,
    where it read them all (the journal kept their events from being sent twice)."""
    folder = tmp_path / "backup"
    folder.mkdir()
    for number in (1, 2):
        event = {"type": "identify", "messageId": f"m-{number}", "userId": f"u-{number}",
                 "traits": {"name": f"Person {number}"}}  # fmt: skip
        (folder / f"day{number}.ndjson").write_bytes(orjson.dumps(event) + b"\n")
    monkeypatch.chdir(tmp_path)
    first = rpd_send(sandbox, tmp_path, "backup")
    assert first.exit_code == 0, first.stderr
    assert first.report is not None and first.report["events"]["sent"] == 2

    for number, spelled in enumerate(("./backup/", str(folder)), 1):
        again = rpd_send(sandbox, tmp_path, spelled, name=f"again{number}")
        assert again.exit_code == 0, again.stderr
        assert "resuming: 2 objects finished by an earlier run not read again" in again.stderr
        assert again.report is not None and again.report["events"]["read"] == 0
    assert len(holdings(sandbox).persons) == 2


def test_an_object_whose_first_line_is_a_list_fails_that_line_alone_and_sends_the_rest(
    sandbox: Sandbox, tmp_path: Path, s3: S3
) -> None:
    """A backup object is NDJSON: a stray first line that is a whole JSON list (`[1, 2]`) made it
    one JSON document that failed whole, every event after it unsent in one dead letter holding
    none of them (a 300,000-event backfill lost 1,199 events so)."""
    lines = [b"[1, 2]\n", *(orjson.dumps(identify(name)) + b"\n" for name in ("s-1", "s-2"))]
    s3.upload({B_08: gzip.compress(b"".join(lines))})
    run = rpd_send(sandbox, tmp_path, f"s3://backups/rs/{B_08}")
    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    events = run.report["events"]
    assert events == {"read": 3, "sent": 2, "unchanged": 0, "skipped": 0, "failed": 1}
    [letter] = run.dead_letters
    assert letter["source"] == f"s3://backups/rs/{B_08}:1"
    assert letter["error"]["reason"] == "expected a JSON object, got a list"
    assert sorted(p["name"] for p in holdings(sandbox).persons) == ["Person s-1", "Person s-2"]


def test_the_report_counts_the_object_store_s_retries_apart_from_pipedrive_s(
    sandbox: Sandbox, tmp_path: Path, s3: S3
) -> None:
    """An object whose read the store cut twice (a reset, a 5xx, S3's SlowDown) is read again
    twice: the report says so, as `store retries`, not Pipedrive's `retries` (requests to
    Pipedrive tried again, under --max-retries). Before, the reader counted them and the report
    said 'retries: 0' and nothing else."""
    target = TIME_ORDER[2]
    s3.proxy.recorder.cut = {f"rs/{target}": 2}
    run = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS)
    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert (run.report["retries"], run.report["store_retries"]) == (0, 2)
    assert "retries: 0; store retries: 2; 429 waits: 0;" in run.stderr
    assert s3.proxy.recorder.cuts_made == [f"rs/{target}"] * 2
