"""One state file, its namespaces and the ways it can be unusable (SPEC 5, 6): two accounts in one
file never see each other's cache or journal; a file another rpd holds, a corrupt file and a file
from a newer rpd each stop the send before any request, with a one-line error (and its hint),
exit 2, and the file left byte for byte as it was."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from process_support import answers_held
from resume_support import (
    RPD,
    TOKEN,
    Event,
    Finished,
    Rig,
    alias,
    census,
    identify,
    journal,
    rpd_env,
    run_send,
    served_at_least,
    track,
    user_story,
    wait_for,
)

from rudder_pipedrive_cli.cli.send_cmd import HELD_REPORT
from rudder_pipedrive_cli.io.state_accounts import account_namespace, token_fingerprint
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

ACCOUNT = "GET /v1/users/me"  # a send's first request, the state already open and locked
EVENTS = [
    identify("m-1", "u-1", name="One"),
    track("m-2", "u-1", "Signed Up", revenue=5, currency="EUR"),
]
EXACTLY_ONCE = {
    "persons": Counter({"u-1": 1}),
    "organizations": Counter(),
    "leads": Counter({"rpd:m-2": 1}),
    "merges": Counter(),
}


def namespaces(state: Path) -> list[str]:
    with sqlite3.connect(state) as db:
        return sorted(row[0] for row in db.execute("SELECT DISTINCT ns FROM journal"))


def test_two_accounts_in_one_state_file_see_only_their_own_cache(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    first = Rig.make(make_sandbox(plan="unlimited"), tmp_path / "first", state)
    other_token = make_sandbox(plan="unlimited", token="second-token")
    second = Rig.make(other_token, tmp_path / "second", state, token="second-token")

    assert first.send(EVENTS, "run").exit_code == 0
    on_second = second.send(EVENTS, "run")

    # Nothing the first account's run cached or journaled applies: the second one looks the
    # person up, creates it and its lead, as on an empty state.
    assert on_second.exit_code == 0, on_second.stderr
    assert on_second.report is not None
    assert on_second.report["events"]["sent"] == 2
    assert census(second.sandbox.state()) == EXACTLY_ONCE
    second_requests = second.sandbox.stats()["requests"]
    assert second_requests["GET /api/v2/itemSearch/field"] == 1
    assert second_requests["POST /api/v2/persons"] == 1
    assert len(namespaces(state)) == 2

    # And the first account's journal is intact: a rerun there finds everything done.
    first_requests = Counter(first.sandbox.stats()["requests"])
    again = first.send(EVENTS, "again")
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"]["skipped"] == 2
    assert census(first.sandbox.state()) == EXACTLY_ONCE
    new_requests = Counter(first.sandbox.stats()["requests"]) - first_requests
    assert set(new_requests) == {
        "GET /v1/users/me",
        "GET /api/v2/personFields",
        "GET /api/v2/organizationFields",
        "GET /api/v2/dealFields",
        "GET /v1/leadLabels",
    }


def assert_refused_untouched(
    rig: Rig, state: Path, message: str, hint: str, *, held: bool = False
) -> None:
    """The send stops with exit 2 and the two lines, before any request, its --report saying so
    (nothing read), but when another process holds the state (`held`: a line says that run's
    report is left); the file is as it was."""
    content = state.read_bytes()
    served = rig.sandbox.stats()["requests"]

    refused = rig.send(EVENTS, "refused")

    assert refused.exit_code == 2
    left = [
        f"warning: --report {rig.directory / 'refused-report.json'} left as it was: {HELD_REPORT}"
    ]
    assert refused.stderr.splitlines() == [*left[:held], f"error: {message}", f"hint: {hint}"]
    if held:
        assert refused.report is None
    else:
        assert refused.report is not None
        assert (refused.report["events"]["read"], refused.report["stopped"]) == (
            0,
            {"exit": 2, "reason": message},
        )
    assert rig.sandbox.stats()["requests"] == served
    assert state.read_bytes() == content


def test_a_state_file_held_by_another_rpd_is_refused(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    # The holder opens (and locks) the state before its first request, whose answer then waits
    # until the other run is refused: meanwhile it writes nothing to the file (a latency of 1 s
    # raced the other run's start on a slow machine).
    slow = Rig.make(make_sandbox(plan="unlimited"), tmp_path / "slow", state)
    with answers_held(slow.sandbox, ACCOUNT):
        holder = slow.start(EVENTS, "holder")
        try:
            assert wait_for(served_at_least(slow.sandbox, 1, ACCOUNT))
            other = Rig.make(make_sandbox(plan="unlimited"), tmp_path / "other", state)
            assert_refused_untouched(
                other,
                state,
                f"state file {state} is in use by another rpd process (pid {holder.pid})",
                "wait for it to finish, or give another state file with --state FILE",
                held=True,
            )
        finally:
            holder.kill()
            holder.wait()


def test_a_corrupt_state_file_is_refused_and_left_as_it_was(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, state)

    assert_refused_untouched(
        rig,
        state,
        f"state file {state} is damaged (SQLite: file is not a database); nothing in it can be "
        "read",
        f"`rpd state clear --state {state}` starts over (events already sent are then found by "
        "their lookups, not created again), or restore a copy of the file",
    )
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("state")) == [
        "state.sqlite"
    ]


def sent_once(make_sandbox: MakeSandbox, tmp_path: Path) -> tuple[Rig, Path]:
    """A rig whose state file holds one run of EVENTS."""
    state = tmp_path / "state.sqlite"
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, state)
    assert rig.send(EVENTS, "first").exit_code == 0
    return rig, state


def test_a_state_file_from_a_newer_rpd_is_refused_and_left_as_it_was(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    rig, state = sent_once(make_sandbox, tmp_path)
    with sqlite3.connect(state) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()

    assert_refused_untouched(
        rig,
        state,
        f"state file {state} was written by a newer rpd (schema 99)",
        "upgrade rpd or use another --state",
    )


@pytest.mark.parametrize("link", ["symlink", "hard link"])
def test_a_state_file_held_through_another_name_is_refused(
    make_sandbox: MakeSandbox, tmp_path: Path, link: str
) -> None:
    # Issue 13 item 5: the lock is on the file, not on the name a run was given.
    state = tmp_path / "state.sqlite"
    other_name = tmp_path / "elsewhere" / "link.sqlite"
    other_name.parent.mkdir()
    slow = Rig.make(make_sandbox(plan="unlimited"), tmp_path / "slow", state)
    assert slow.send(EVENTS[:1], "first").exit_code == 0  # the file exists: a hard link needs it
    (os.symlink if link == "symlink" else os.link)(state, other_name)
    other = Rig.make(make_sandbox(plan="unlimited"), tmp_path / "other", other_name)
    with answers_held(slow.sandbox, ACCOUNT):  # as above: the holder waits at its first request
        holder = slow.start(EVENTS, "holder")
        try:
            assert wait_for(served_at_least(slow.sandbox, 2, ACCOUNT))
            assert_refused_untouched(
                other,
                state,
                f"state file {other_name} is in use by another rpd process (pid {holder.pid})",
                "wait for it to finish, or give another state file with --state FILE",
                held=True,
            )
        finally:
            holder.kill()
            holder.wait()

    # Once the holder is gone (killed: the kernel dropped its lock), the other name may run; a
    # second hard link is worth a warning (a killed run's -wal sits beside the name it used).
    then = other.send(EVENTS, "then")
    assert then.exit_code == 0, then.stderr
    warnings = [line for line in then.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == (
        []
        if link == "symlink"
        else [
            f"warning: state file {other_name} has 2 names (hard links): SQLite keeps a killed "
            "run's last changes beside the name that run used, unseen through another; use one "
            "name (a symlink is fine)"
        ]
    )


def rpd(rig: Rig, *args: str) -> tuple[int, list[str]]:
    """Another rpd command, as a subprocess in the rig's folder: exit code and stderr lines."""
    done = subprocess.run(
        [sys.executable, "-m", "rudder_pipedrive_cli", *args],
        cwd=rig.directory,
        env=rpd_env(),
        capture_output=True,
        check=False,
    )
    return done.returncode, done.stderr.decode().splitlines()


def test_a_damaged_state_file_is_said_with_what_it_held_and_how_to_start_over(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Issue 13 item 9: one page of a real state file zeroed; send, dry-run and state show each
    # exit 2 with the same two lines (exit 70 "a bug in rpd" before), and clear starts over.
    rig, state = sent_once(make_sandbox, tmp_path)
    with sqlite3.connect(state) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'journal'").fetchone()
    db.close()
    content = bytearray(state.read_bytes())
    content[(root[0] - 1) * page_size : root[0] * page_size] = bytes(page_size)
    state.write_bytes(bytes(content))
    expected = [
        f"error: state file {state} is damaged (SQLite's check found a broken page); "
        f"readable: 1 identity for {rig.sandbox.url}",
        f"hint: `rpd state clear --state {state}` starts over (events already sent are then "
        "found by their lookups, not created again), or restore a copy of the file",
    ]

    assert_refused_untouched(rig, state, expected[0].removeprefix("error: "), expected[1][6:])
    events = rig.directory / "first.ndjson"
    for command in (["state", "show"], ["dry-run", str(events), "--config", "rpd.toml"]):
        assert rpd(rig, *command, "--state", str(state)) == (2, expected)
    assert state.read_bytes() == content

    assert rpd(rig, "state", "clear", "--state", str(state), "--yes")[0] == 0
    again = rig.send(EVENTS, "again")
    assert again.exit_code == 0, again.stderr
    assert census(rig.sandbox.state()) == EXACTLY_ONCE  # found by lookups, not created again


# `rpd send` whose state file can grow by PAGES pages only (SQLite's max_page_count): the state's
# disk fills up mid-run, as a full disk would (SQLITE_FULL, "database or disk is full").
SMALL_DISK = """
import sys
from rudder_pipedrive_cli.io import state_file
pages = int(sys.argv.pop(1))
prepare = state_file.prepare
def small_disk(connection, *, empty):
    prepare(connection, empty=empty)
    used = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {used + pages}")
state_file.prepare = small_disk
from rudder_pipedrive_cli.cli.main import app
app(prog_name="rpd")
"""


INDEX = ("--identities", "index")


def sent_on_a_small_disk(
    rig: Rig, events: list[Event], *, pages: int, more: tuple[str, ...] = (), warm: bool = True
) -> Finished:
    """`events` sent (as "full", with `more` options) with room for `pages` more pages in the
    state, after a send of the first alone (`warm`: the schema and the field listings)."""
    assert not warm or rig.send(events[:1], "warm-up").exit_code == 0
    command = rig.command(events, "full", *more)
    command[: len(RPD)] = [sys.executable, "-c", SMALL_DISK, str(pages)]
    return run_send(command, rig.directory)


def assert_stopped_by_a_full_disk(finished: Finished, state: Path) -> None:
    assert finished.exit_code == 2, finished.stderr
    assert [line for line in finished.stderr.splitlines() if "disk full" in line] == [
        f"error: disk full: state file {state}",  # said once: not warned as well
    ]
    assert finished.stderr.splitlines()[-2:] == [
        f"error: disk full: state file {state}",
        "hint: free space on its disk, then rerun the same command: it resumes where this run "
        "stopped (what it sent is recorded)",
    ]


def test_a_full_disk_stops_the_run_with_its_report_and_the_rerun_resumes(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Issue 13 item 8: before, the run went on and failed every later event as "internal error
    # ... a bug in rpd", exit 70, no report.
    state = tmp_path / "state.sqlite"
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, state)
    events = [event for n in range(60) for event in user_story(n, tracks=2, groups=4)]
    full = sent_on_a_small_disk(rig, events, pages=3)

    assert_stopped_by_a_full_disk(full, state)
    assert full.report is not None  # the report was written, and printed before the error
    assert "events" in full.stderr.split("error: disk full")[0]
    finished = full.report["events"]
    assert finished["sent"] > 0 and finished["read"] < len(events)
    assert finished["failed"] == 0
    assert not (rig.directory / "full-report.failed").exists()

    again = rig.send(events, "full")
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"]["failed"] == 0
    assert set(journal(state).values()) <= {"sent", "unchanged", "skipped"}
    assert len(journal(state)) == len(events)
    census_now = census(rig.sandbox.state())
    assert census_now["persons"] == Counter({f"u-{n}": 1 for n in range(60)})
    assert set(census_now["organizations"].values()) == {1}
    assert set(census_now["leads"].values()) == {1}


def spelled(rig: Rig, url: str, name: str) -> Rig:
    """The rig with its config's base_url spelled `url` (in a folder of its own)."""
    other = Rig.make(rig.sandbox, rig.directory / name, rig.state)
    config = other.directory / "rpd.toml"
    config.write_text(config.read_text().replace(f'"{rig.sandbox.url}"', f'"{url}"'))
    return other


ALIASED = [
    identify("a-1", "u-old", name="Old"),
    identify("a-2", "u-new", name="New"),
    alias("a-3", "u-old", "u-new"),
    track("a-4", "u-new", "Signed Up"),
]


def test_one_account_is_one_namespace_however_its_url_is_spelled(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Issue 13 item 10: each spelling made a namespace of its own, and each rerun resent
    # everything, re-created the aliased person and merged it again.
    state = tmp_path / "state.sqlite"
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, state)
    port = rig.sandbox.url.rsplit(":", 1)[1]
    assert rig.send(ALIASED, "events").exit_code == 0
    done = census(rig.sandbox.state())
    assert done["merges"] == Counter({"u-new": 1})
    for number, url in enumerate(
        [f"HTTP://127.0.0.1:{port}", f"http://localhost:{port}", f"http://127.0.0.1:{port}/."]
    ):
        again = spelled(rig, url, f"spelling-{number}").send(ALIASED, "events")
        assert again.exit_code == 0, again.stderr
        assert again.report is not None
        assert again.report["events"]["skipped"] == len(ALIASED), url
    assert census(rig.sandbox.state()) == done
    with sqlite3.connect(state) as db:
        namespaces = [row[0] for row in db.execute("SELECT DISTINCT ns FROM journal")]
    db.close()
    me = httpx.get(f"{rig.sandbox.url}/v1/users/me", headers={"x-api-token": TOKEN}).json()
    assert namespaces == [account_namespace(str(me["data"]["company_id"]), TOKEN)]
    # Offline, dry-run finds the account from any spelling a send used, and sees it all done.
    code, lines = rpd(
        spelled(rig, f"http://LOCALHOST:{port}/", "dry"),
        "dry-run",
        str(rig.directory / "events.ndjson"),
        "--config",
        "rpd.toml",
        "--state",
        str(state),
        "-f",
        "json",
        "-o",
        str(tmp_path / "plan.json"),
        "-q",
    )
    assert (code, lines) == (0, [])
    planned = orjson.loads((tmp_path / "plan.json").read_bytes())
    assert planned["events"]["skipped"] == len(ALIASED)


def test_a_state_keyed_on_the_url_by_an_older_rpd_is_moved_into_the_account(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, state)
    assert rig.send(ALIASED, "events").exit_code == 0
    # What an older rpd wrote: the same rows under 'URL#FINGERPRINT'.
    with sqlite3.connect(state) as db:
        for table in ("identities", "lead_origins", "leads_listed", "journal", "runs"):
            db.execute(
                f"UPDATE {table} SET ns = ?", (f"{rig.sandbox.url}#{token_fingerprint(TOKEN)}",)
            )
        db.execute("DELETE FROM meta WHERE key != 'schema_version'")
    db.close()
    served = Counter(rig.sandbox.stats()["requests"])

    again = rig.send(ALIASED, "events")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"]["skipped"] == len(ALIASED)
    new = Counter(rig.sandbox.stats()["requests"]) - served
    assert set(new) == {
        "GET /v1/users/me",
        "GET /api/v2/personFields",
        "GET /api/v2/organizationFields",
        "GET /api/v2/dealFields",
        "GET /v1/leadLabels",
    }
    assert len(namespaces(state)) == 1 and namespaces(state)[0].startswith("company:")


def test_a_disk_full_in_the_first_pass_still_writes_the_report_and_the_rerun_sends_all(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Its input's aliases fill the disk before any event: it said the disk full, exit 2, but
    # wrote no --report, so a scheduler read the last run's report at that path as this one's.
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, tmp_path / "state.sqlite")
    events = [event for n in range(20) for event in user_story(n, tracks=1, groups=2)]
    events += [alias(f"al-{n}", f"v-{n}", f"u-{n}") for n in range(20)]
    full, state = sent_on_a_small_disk(rig, events, pages=0), rig.state

    assert_stopped_by_a_full_disk(full, state)
    assert full.report is not None
    assert full.report["stopped"] == {"exit": 2, "reason": f"disk full: state file {state}"}
    finished = full.report["events"]
    assert finished["read"] == finished["not_attempted"] > 0
    assert finished["sent"] == finished["failed"] == 0
    assert rig.sandbox.state()["persons"] == [rig.sandbox.state()["persons"][0]]  # the warm-up's

    again = rig.send(events, "full")
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"]["failed"] == 0
    assert census(rig.sandbox.state())["persons"] == Counter({f"u-{n}": 1 for n in range(20)})


def test_a_disk_full_while_the_index_is_listed_still_writes_the_report_and_the_rerun_sends_all(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # The index's rows, kept in the state, fill its disk before any event: no --report either.
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, tmp_path / "state.sqlite")
    events = [event for n in range(300) for event in user_story(n, tracks=0, groups=4)]
    assert rig.send(events[:300], "warm-up").exit_code == 0  # 150 persons for the index to list
    full = sent_on_a_small_disk(rig, events, pages=0, more=INDEX)

    assert_stopped_by_a_full_disk(full, rig.state)
    assert "listing the identity index" in full.stderr
    assert full.report is not None
    assert full.report["stopped"] == {"exit": 2, "reason": f"disk full: state file {rig.state}"}
    assert full.report["events"] == {
        "read": 600,
        **{outcome: 0 for outcome in ("sent", "unchanged", "skipped", "failed")},
        "not_attempted": 600,
    }

    again = rig.send(events, "full", *INDEX)
    assert again.exit_code == 0, again.stderr
    assert census(rig.sandbox.state())["persons"] == Counter({f"u-{n}": 1 for n in range(300)})


def test_a_disk_full_before_the_first_pass_still_writes_the_report_and_the_rerun_sends_all(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # A new state's first writes (the account users/me named, the field listings) fill its disk:
    # exit 2 and its two lines, but no --report, before the first pass.
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, tmp_path / "state.sqlite")
    events = [event for n in range(10) for event in user_story(n, tracks=0, groups=4)]
    full = sent_on_a_small_disk(rig, events, pages=0, warm=False)

    assert_stopped_by_a_full_disk(full, rig.state)
    assert full.report is not None
    assert full.report["stopped"] == {"exit": 2, "reason": f"disk full: state file {rig.state}"}
    assert full.report["events"] == {
        **{outcome: 0 for outcome in ("read", "sent", "unchanged", "skipped", "failed")},
    }
    assert rig.sandbox.state()["persons"] == []

    again = rig.send(events, "full")
    assert again.exit_code == 0, again.stderr
    assert census(rig.sandbox.state())["persons"] == Counter({f"u-{n}": 1 for n in range(10)})
