"""Field-level recency over loopback HTTP against the sandbox (issue 13 item 6): a rerun, a
dead-letter resend, an archive read out of time order and an older event of a merged-away userId
all leave the newest value of every field in place."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from process_support import answers_held
from resume_support import (
    ROLE_FIELD,
    Event,
    Rig,
    kill_when,
    run_send,
    send_command,
    served_at_least,
)
from resume_support import group as timeless_group
from resume_support import identify as timeless_identify
from resume_support import track as timeless_track

from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import USER_ID_FIELD

MakeSandbox = Callable[..., Sandbox]

T0, T1, T2, T3 = (f"2026-10-0{day}T09:00:00Z" for day in (1, 2, 3, 4))
SUPERSEDED = "superseded by a later event"


def identify(message_id: str, user_id: str, at: str, **traits: Any) -> Event:
    return {**timeless_identify(message_id, user_id, **traits), "timestamp": at}


# e1: older, no name (its person does not exist yet: it fails, not retryably); e2: newer.
E1 = identify("e1", "u-1", T1, email="old@example.com", role="Intern")
E2 = identify("e2", "u-1", T2, name="Ann", email="new@example.com", role="CTO")


def persons(sandbox: Sandbox) -> list[tuple[str, str, list[str], str | None]]:
    return sorted(
        (
            p["custom_fields"][USER_ID_FIELD],
            p["name"],
            [e["value"] for e in p["emails"]],
            p["custom_fields"][ROLE_FIELD],
        )
        for p in sandbox.state()["persons"]
    )


def journal(state: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(state) as db:
        rows = db.execute("SELECT event_id, status, reason FROM journal").fetchall()
    return {event_id: (status, reason) for event_id, status, reason in rows}


ANN_NEW = [("u-1", "Ann", ["new@example.com"], "CTO")]


def first_run(rig: Rig) -> None:
    run = rig.send([E1, E2], "run")
    assert run.exit_code == 1, run.stderr
    assert rig.state is not None
    assert journal(rig.state) == {
        "e1": ("failed", "cannot create person without a name"),
        "e2": ("sent", ""),
    }
    assert persons(rig.sandbox) == ANN_NEW


def test_a_rerun_does_not_overwrite_newer_values_with_an_older_events(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path, tmp_path / "state.sqlite")
    first_run(rig)

    again = rig.send([E1, E2], "run")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["by_type"] == {"identify": {"unchanged": 1, "skipped": 1}}
    assert "PATCH /api/v2/persons/{id}" not in again.report["requests"]
    assert persons(sandbox) == ANN_NEW
    assert journal(tmp_path / "state.sqlite")["e1"] == ("unchanged", SUPERSEDED)


def test_a_dead_letter_resend_does_not_overwrite_newer_values(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path, tmp_path / "state.sqlite")
    first_run(rig)
    letters = tmp_path / "run-report.failed"
    (record,) = [orjson.loads(line) for line in letters.read_bytes().splitlines()]
    assert record["event"]["messageId"] == "e1"

    command = send_command(
        letters,
        tmp_path / "rpd.toml",
        state=tmp_path / "state.sqlite",
        report=tmp_path / "resend-report.json",
    )
    resend = run_send(command, tmp_path)

    assert resend.exit_code == 0, resend.stderr
    assert resend.report is not None
    assert resend.report["by_type"] == {"identify": {"unchanged": 1}}
    assert persons(sandbox) == ANN_NEW


def test_an_archive_read_out_of_time_order_ends_with_the_newest_values(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Without a state file too: the run itself remembers what it wrote when.
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path, None)
    older = identify("e0", "u-1", T0, name="Ann Old", email="old@example.com", role="Intern")

    run = rig.send([E2, older], "run")

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["by_type"] == {"identify": {"sent": 1, "unchanged": 1}}
    assert persons(sandbox) == ANN_NEW


def test_an_older_event_of_a_merged_away_user_leaves_the_survivor_alone(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path, tmp_path / "state.sqlite")
    merged = [
        identify("a-0", "u-a", T0, name="A", email="a@example.com"),
        identify("b-2", "u-b", T2, name="B", email="new@example.com", role="CTO"),
        {
            "type": "alias",
            "messageId": "a-3",
            "previousId": "u-a",
            "userId": "u-b",
            "timestamp": T3,
        },
    ]
    assert rig.send(merged, "run").exit_code == 0
    survivor = persons(sandbox)
    assert [(user, name, role) for user, name, _, role in survivor] == [("u-b", "B", "CTO")]

    # An older event of u-a arrives later (another archive file, a dead letter).
    late = identify("a-1", "u-a", T1, name="A", email="old@example.com", role="Intern")
    again = rig.send([late], "late")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["by_type"] == {"identify": {"unchanged": 1}}
    assert persons(sandbox) == survivor
    assert journal(tmp_path / "state.sqlite")["a-1"] == ("unchanged", SUPERSEDED)


def test_a_merged_away_persons_later_value_does_not_hold_back_the_survivors_fields(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """The merge keeps the survivor's role (Buyer, T0) and drops u-a's later one (Intern, T2):
    an event of u-b from T1, sent later (a rerun of what failed, a resume), is newer than what
    the survivor holds and writes (it was held back as older than T2, leaving T0's value)."""
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path, tmp_path / "state.sqlite")
    made = [
        identify("b-0", "u-b", T0, name="B", email="b@example.com", role="Buyer"),
        identify("a-2", "u-a", T2, name="A", email="a@example.com", role="Intern"),
    ]
    assert rig.send(made, "made").exit_code == 0  # the alias apart: u-a gets its own person
    alias = {"type": "alias", "messageId": "a-3", "previousId": "u-a", "userId": "u-b"}
    assert rig.send([alias], "alias").exit_code == 0
    assert persons(sandbox) == [("u-b", "B", ["b@example.com"], "Buyer")]

    again = rig.send([identify("b-1", "u-b", T1, role="CTO")], "late")

    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["by_type"] == {"identify": {"sent": 1}}
    assert persons(sandbox) == [("u-b", "B", ["b@example.com"], "CTO")]
    assert journal(tmp_path / "state.sqlite")["b-1"] == ("sent", "")


def test_the_state_keeps_the_times_per_record_and_field(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path, tmp_path / "state.sqlite")
    assert rig.send([E2], "run").exit_code == 0
    (person,) = sandbox.state()["persons"]
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        rows = db.execute("SELECT kind, pd_id, field, stamp FROM field_recency").fetchall()
    at = "2026-10-03T09:00:00.000000Z"
    assert sorted(rows) == sorted(
        [
            ("person", f"i:{person['id']}", "emails", at),
            ("person", f"i:{person['id']}", "name", at),
            ("person", f"i:{person['id']}", ROLE_FIELD, at),
        ]
    )


def test_a_state_file_from_before_field_recency_reads_as_knowing_no_times(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, "ns") as state:
        state.record_outcome(
            "m-1", "f:1", Outcome(status="sent", learned=Learned(identities={("person", "u"): 7}))
        )
    with sqlite3.connect(path) as db:  # as rpd wrote it before the table existed
        db.execute("DROP TABLE field_recency")
    times = Outcome(
        status="sent",
        learned=Learned(recency={("person", 7): {"name": "2026-10-01T09:00:00.000000Z"}}),
    )

    with ReplayState.open(path, "ns", readonly=True) as state:
        assert state.times_at(("person", 7)) is None
        state.learn(times)  # a read-only state (dry-run) remembers in memory only
        assert state.times_at(("person", 7)) == {"name": "2026-10-01T09:00:00.000000Z"}
    with ReplayState.open(path, "ns") as state:  # opened for writing: the table is added
        assert state.person_id("u") == 7
        assert state.times_at(("person", 7)) is None
        state.record_outcome("m-2", "f:2", times)
    with ReplayState.open(path, "ns", readonly=True) as state:
        assert state.times_at(("person", 7)) == {"name": "2026-10-01T09:00:00.000000Z"}


def test_clearing_a_namespace_forgets_its_times_only(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    times = Outcome(
        status="sent",
        learned=Learned(recency={("person", 7): {"name": "2026-10-01T09:00:00.000000Z"}}),
    )
    for namespace in ("a", "b"):
        with ReplayState.open(path, namespace) as state:
            state.record_outcome("m-1", "f:1", times)
    with ReplayState.open(path, "a") as state:
        state.clear("a")
        assert state.times_at(("person", 7)) is None
    with ReplayState.open(path, "b") as state:
        assert state.times_at(("person", 7)) == {"name": "2026-10-01T09:00:00.000000Z"}
        state.clear()
        assert state.times_at(("person", 7)) is None


# Events that create a person from context.traits and do not update one they find.
CREATING = {
    "track": timeless_track("t2", "u-1", "Signed Up"),
    "group": timeless_group("t2", "u-1", "g-1", name="Org One"),
}


@pytest.mark.parametrize("kind", CREATING)
def test_a_create_left_in_flight_by_a_killed_run_keeps_its_fields_newer_than_older_events(
    make_sandbox: MakeSandbox, tmp_path: Path, kind: str
) -> None:
    # A track or group (newer) creates the person from context.traits; an identify (older)
    # follows in the file. Killed after the sandbox applied the create, before rpd heard of it,
    # the rerun reconciles the create and must end as an undisturbed run does: the newer name.
    created = {**CREATING[kind], "timestamp": T2, "context": {"traits": {"name": "Ann New"}}}
    older = identify("e1", "u-1", T1, name="Ann Old", email="old@example.com")
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path, tmp_path / "state.sqlite")
    with answers_held(sandbox, "POST /api/v2/persons"):
        killed = rig.start([created, older], "killed")
        assert kill_when(killed, served_at_least(sandbox, 1, "POST /api/v2/persons"))

    rerun = rig.send([created, older], "rerun")

    assert rerun.exit_code == 0, rerun.stderr
    assert persons(sandbox) == [("u-1", "Ann New", ["old@example.com"], None)]
    undisturbed = make_sandbox(plan="unlimited")
    Rig.make(undisturbed, tmp_path / "undisturbed", None).send([created, older], "run")
    assert persons(undisturbed) == persons(sandbox)
