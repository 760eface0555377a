"""Late events in a windowed backfill of a backup: an event a mobile SDK queued offline for days
is filed in an object received long after its time, so the window that reads the object leaves
it out as before --since, and the window of its time does not read that object. The run says
how many it left and which --since sends them; that rerun, with the same state, sends only them.
The mirror, a future-dated event (a device's clock running ahead), is filed before its time: the
run says which --until sends it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e_support import CLEAN_ENV, EXAMPLE_CONFIG, holdings, rpd_send
from objects_support import APRIL_30_2350, MAY_1, archive, identify, key, stamp
from typer.testing import CliRunner, Result

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.sandbox import Sandbox


def dated(message_id: str, when: str, **more: Any) -> dict[str, Any]:
    return {**identify(message_id), "timestamp": when, **more}


# Received on May 1 from 09:00: two late identifies (the earliest of April 28), one on time, and
# a late page (a page is skipped either way: not counted).
LATE_OBJECT = key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(10))
LATE = archive(
    dated("late-1", "2024-04-29T10:00:00Z"),
    identify("on-time"),
    dated("late-2", "2024-04-28T12:00:00Z"),
    dated("page", "2024-04-27T12:00:00Z", type="page", name="Home"),
)
# A day's last upload, received from April 30 23:50: an event of each day, none late (the window
# of April 30 reads this object too).
MIDNIGHT_OBJECT = key("src-b", MAY_1, 0, "i-9", APRIL_30_2350, stamp(0, 10))
MIDNIGHT = archive(dated("eve", "2024-04-30T23:55:00Z"), dated("dawn", "2024-05-01T00:05:00Z"))
APRIL_30 = ("--since", "2024-04-30", "--until", "2024-05-01")
MAY_1_WINDOW = ("--since", "2024-05-01", "--until", "2024-05-02")
WARNING = "warning: 2 late events before --since left out: rerun with --since 2024-04-28"


def backup(tmp_path: Path, objects: dict[str, bytes] | None = None) -> Path:
    root = tmp_path / "backup"
    for name, data in (objects or {LATE_OBJECT: LATE, MIDNIGHT_OBJECT: MIDNIGHT}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def names(sandbox: Sandbox) -> list[str]:
    return sorted(person["name"] for person in holdings(sandbox).persons)


def dry_run(tmp_path: Path, path: Path, *args: str) -> Result:
    """`rpd dry-run PATH -f json ARGS` offline, with a state file that does not exist."""
    command = ["dry-run", str(path), "--config", str(EXAMPLE_CONFIG), "-f", "json"]
    command += ["--state", str(tmp_path / "none.sqlite"), *args]
    return CliRunner().invoke(app, command, env=dict(CLEAN_ENV))


def test_a_day_by_day_backfill_says_which_since_sends_its_late_events_and_that_rerun_does(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    root = backup(tmp_path)
    april_30 = rpd_send(sandbox, tmp_path, root, args=APRIL_30, name="april-30")
    assert april_30.exit_code == 0, april_30.stderr
    assert "late" not in april_30.stderr  # dawn is left out by --until: the next day sends it
    assert names(sandbox) == ["Person eve"]

    may_1 = rpd_send(sandbox, tmp_path, root, args=MAY_1_WINDOW, name="may-1")
    assert may_1.exit_code == 0, may_1.stderr
    assert may_1.stderr.splitlines()[-1] == WARNING  # eve is not late: April 30 sent it
    assert names(sandbox) == ["Person dawn", "Person eve", "Person on-time"]
    assert may_1.report is not None
    assert may_1.report["skipped_by_reason"] == {"filtered": 4}  # the report JSON is as before

    rerun = rpd_send(
        sandbox, tmp_path, root, args=("--since", "2024-04-28", "--until", "2024-05-02"), name="re"
    )
    assert rerun.exit_code == 0, rerun.stderr
    assert "late" not in rerun.stderr
    assert rerun.report is not None
    assert rerun.report["events"] == {
        "read": 6,
        "sent": 2,
        "unchanged": 0,
        "skipped": 4,  # eve, dawn and on-time already done; the page
        "failed": 0,
    }
    assert names(sandbox) == [
        "Person dawn",
        "Person eve",
        "Person late-1",
        "Person late-2",
        "Person on-time",
    ]


def test_send_quiet_still_says_the_late_events_and_only_that(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """-q (a cron's) hides the report, not the events no window sends: it hid them too."""
    run = rpd_send(sandbox, tmp_path, backup(tmp_path), args=(*MAY_1_WINDOW, "--quiet"))
    assert run.exit_code == 0, run.stderr
    assert run.stderr == WARNING + "\n"


@pytest.mark.parametrize(
    ("args", "plain", "said"),
    [
        (MAY_1_WINDOW, False, WARNING),
        # Counted as read: the limit stops at on-time, before late-2 is read.
        (
            (*MAY_1_WINDOW, "--limit", "2"),
            False,
            "warning: 1 late event before --since left out: rerun with --since 2024-04-29",
        ),
        # Left out by --type: a rerun with an earlier --since would leave them out too.
        ((*MAY_1_WINDOW, "--type", "track"), False, None),
        (APRIL_30, False, None),
        # The object given as a file: every window reads all of it.
        (MAY_1_WINDOW, True, None),
        ((*MAY_1_WINDOW, "--quiet"), False, WARNING),  # no window sends them: said under -q
    ],
    ids=["window", "limit", "type", "none late", "plain file", "quiet"],
)
def test_dry_run_says_how_many_late_events_it_left_and_which_since_takes_them(
    tmp_path: Path, args: tuple[str, ...], plain: bool, said: str | None
) -> None:
    root = backup(tmp_path)
    path = root / LATE_OBJECT if plain else root
    result = dry_run(tmp_path, path, *args)
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["skipped_by_reason"]["filtered"] > 0
    lines = result.stderr.splitlines()
    assert [line for line in lines if "late" in line] == ([said] if said else [])
    if said:
        assert lines[-1] == said


def test_late_events_an_earlier_run_sent_are_not_said_to_be_left_out_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # The late object also holds an event that fails (no name), so no run finishes it and every
    # May 1 window reads it again: after the rerun the warning asked for sent the late events,
    # they are done, and a window that leaves them out must not send the user to that rerun again.
    nameless = {**identify("nameless"), "traits": {}}
    root = tmp_path / "backup"
    (root / LATE_OBJECT).parent.mkdir(parents=True)
    (root / LATE_OBJECT).write_bytes(
        archive(dated("late-1", "2024-04-29T10:00:00Z"), identify("on-time"), nameless)
    )
    first = rpd_send(sandbox, tmp_path, root, args=MAY_1_WINDOW, name="first")
    assert first.exit_code == 1, first.stderr
    late = "warning: 1 late event before --since left out: rerun with --since 2024-04-29"
    assert late in first.stderr.splitlines()
    rerun = rpd_send(sandbox, tmp_path, root, args=("--since", "2024-04-29"), name="rerun")
    assert rerun.exit_code == 1, rerun.stderr
    assert names(sandbox) == ["Person late-1", "Person on-time"]

    again = rpd_send(sandbox, tmp_path, root, args=MAY_1_WINDOW, name="again")
    assert again.exit_code == 1, again.stderr
    assert not [line for line in again.stderr.splitlines() if "late event" in line]
    assert again.report is not None
    assert again.report["skipped_by_reason"] == {"already done": 1, "filtered": 1}
    # dry-run over that state plans the window as send ran it: without the warning either.
    command = ["dry-run", str(root), "--config", str(EXAMPLE_CONFIG), "-f", "json", *MAY_1_WINDOW]
    command += ["--state", str(tmp_path / "state.sqlite"), "--base-url", sandbox.url]
    env = {**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": "sandbox-token"}
    planned = CliRunner().invoke(app, command, env=env)
    assert planned.exit_code == 1, planned.stderr  # the nameless event
    assert orjson.loads(planned.stdout)["skipped_by_reason"] == {"already done": 1, "filtered": 1}
    assert not [line for line in planned.stderr.splitlines() if "late event" in line]


# The mirror: a device whose clock runs ahead dates its events after their upload. Uploaded on
# April 30 from 10:00 to 10:30 (the May 1 window does not read this object): one on time, two
# dated May 1 (the April 30 window leaves them out as not before --until), and a page dated May 1
# (skipped either way: not counted).
APRIL_30_10 = int(datetime(2024, 4, 30, 10, tzinfo=UTC).timestamp())
AHEAD_OBJECT = key("src-a", "2024-04-30", 10, "i-1", APRIL_30_10, APRIL_30_10 + 1800)
AHEAD = archive(
    dated("apr-30", "2024-04-30T10:00:00Z"),
    dated("ahead-1", "2024-05-01T08:00:00Z"),
    dated("ahead-2", "2024-05-01T20:00:00Z"),
    dated("ahead-page", "2024-05-01T09:00:00Z", type="page", name="Home"),
)
# The day's last upload again, with an event dated ahead too (May 1 noon): the May 1 window reads
# this object and sends it, so the April 30 window must not count it.
SPANNING = archive(
    dated("eve", "2024-04-30T23:55:00Z"),
    dated("dawn", "2024-05-01T00:05:00Z"),
    dated("skew", "2024-05-01T12:00:00Z"),
)
AHEAD_WARNING = (
    "warning: 2 future-dated events at or after --until left out: rerun with --until 2024-05-02"
)


def test_a_day_by_day_backfill_says_which_until_sends_its_future_dated_events_and_that_rerun_does(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    root = backup(tmp_path, {AHEAD_OBJECT: AHEAD, MIDNIGHT_OBJECT: SPANNING})
    april_30 = rpd_send(sandbox, tmp_path, root, args=APRIL_30, name="april-30")
    assert april_30.exit_code == 0, april_30.stderr
    assert april_30.stderr.splitlines()[-1] == AHEAD_WARNING  # not dawn or skew: May 1 sends them
    assert [line for line in april_30.stderr.splitlines() if "left out" in line] == [AHEAD_WARNING]
    assert april_30.report is not None
    assert april_30.report["skipped_by_reason"] == {"filtered": 5}  # the report JSON is as before
    assert names(sandbox) == ["Person apr-30", "Person eve"]

    may_1 = rpd_send(sandbox, tmp_path, root, args=MAY_1_WINDOW, name="may-1")
    assert may_1.exit_code == 0, may_1.stderr
    assert "left out" not in may_1.stderr  # it warns of nothing April 30 warned of
    # ahead-1 and ahead-2 are in neither window's send: only the warning tells of them.
    assert names(sandbox) == ["Person apr-30", "Person dawn", "Person eve", "Person skew"]

    rerun = rpd_send(
        sandbox, tmp_path, root, args=("--since", "2024-04-30", "--until", "2024-05-02"), name="re"
    )
    assert rerun.exit_code == 0, rerun.stderr
    assert "left out" not in rerun.stderr
    assert rerun.report is not None
    assert rerun.report["events"] == {
        "read": 7,
        "sent": 2,
        "unchanged": 0,
        "skipped": 5,  # apr-30, eve, dawn and skew already done; the page
        "failed": 0,
    }
    assert names(sandbox) == [
        "Person ahead-1",
        "Person ahead-2",
        "Person apr-30",
        "Person dawn",
        "Person eve",
        "Person skew",
    ]


def test_dry_run_says_which_until_takes_the_future_dated_events(tmp_path: Path) -> None:
    root = backup(tmp_path, {AHEAD_OBJECT: AHEAD})
    result = dry_run(tmp_path, root, *APRIL_30)
    assert result.exit_code == 0, result.stderr
    assert orjson.loads(result.stdout)["skipped_by_reason"] == {"filtered": 3}
    assert [line for line in result.stderr.splitlines() if "left out" in line] == [AHEAD_WARNING]
    assert result.stderr.splitlines()[-1] == AHEAD_WARNING


def test_late_and_future_dated_events_of_one_window_make_one_line_and_one_rerun(
    tmp_path: Path,
) -> None:
    both = archive(
        dated("late-1", "2024-04-29T10:00:00Z"),
        identify("on-time"),
        dated("late-2", "2024-04-28T12:00:00Z"),
        dated("ahead", "2024-05-02T06:00:00Z"),  # uploaded May 1 from 09:00 to 10:00
    )
    root = backup(tmp_path, {LATE_OBJECT: both})
    result = dry_run(tmp_path, root, *MAY_1_WINDOW)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "warning: 2 late events before --since and 1 future-dated event at or after --until "
        "left out: rerun with --since 2024-04-28 --until 2024-05-03"
    )
    assert len([line for line in result.stderr.splitlines() if "left out" in line]) == 1
