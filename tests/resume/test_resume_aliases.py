"""A send over a backup folder killed once an object finished, then resumed: the resumed run reads
no finished object again, its first pass neither, yet knows the aliases in them (kept in the
state): it ends as one uninterrupted run does (SPEC 2, 5)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from objects_support import ALIAS, MAY_1, archive, identify, key, stamp
from process_support import answers_held
from resume_support import (
    kill_when,
    normalised,
    run_send,
    send_command,
    start_send,
    write_config,
)

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

# Then, in a later object and after others (time for the kill to land), an event of that
# previousId: the input's alias says its person is person 1.
OBJECTS = {
    key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(9, 10)): archive(identify("cur"), ALIAS),
    key("src-a", MAY_1, 10, "i-1", stamp(10), stamp(10, 10)): archive(
        *(identify(f"filler-{n}") for n in range(60)), identify("old")
    ),
}
FIRST = next(iter(OBJECTS))


def backup(root: Path) -> Path:
    for name, data in OBJECTS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def finished_objects(state: Path) -> list[str]:
    """The objects the state says are finished, as committed (another process's view)."""
    try:
        with sqlite3.connect(f"{state.resolve().as_uri()}?mode=ro", uri=True) as db:
            return [row[0] for row in db.execute("SELECT name FROM objects_done")]
    except sqlite3.OperationalError:  # no file or no table yet
        return []


def test_a_send_killed_once_an_object_finished_resumes_as_one_run_with_its_aliases(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    root = backup(tmp_path / "backup")

    whole = make_sandbox()
    config = write_config(tmp_path, whole, name="whole.toml")
    once = run_send(
        send_command(root, config, state=tmp_path / "whole.sqlite", report=tmp_path / "whole.json"),
        tmp_path,
    )
    assert once.exit_code == 0, once.stderr
    expected = normalised(whole.state())
    assert [p[0] for p in expected["persons"]].count("user-old") == 0

    sandbox = make_sandbox()
    config = write_config(tmp_path, sandbox)
    state = tmp_path / "state.sqlite"
    command = send_command(
        root, config, state=state, report=tmp_path / "report.json", concurrency=1
    )
    # The second object's first create (the first object's is cur's) and all after it wait for
    # the kill: 60 fillers were all that kept the kill before old's event (they take under 0.3 s).
    with answers_held(sandbox, "POST /api/v2/persons", 2):
        killed = start_send(command, tmp_path)
        assert kill_when(killed, lambda: f"{root}/{FIRST}" in finished_objects(state))
    # Killed before the previousId's event was sent: no person took its name yet.
    assert "Person old" not in {person["name"] for person in sandbox.state()["persons"]}

    resumed = run_send(command, tmp_path)
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming: 1 object finished by an earlier run not read again" in resumed.stderr
    assert normalised(sandbox.state()) == expected
