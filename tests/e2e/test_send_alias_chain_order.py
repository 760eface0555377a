"""An alias chain u-a -> u-b -> u-c with an identify of u-b between its two aliases (SPEC 4, alias):
the first alias finds u-a's person and not u-b's, so it re-keys u-a's person to u-b; the identify
updates that person; the second alias merges it into u-c's, which survives with its own values
where both hold one (Pipedrive's merge, as the sandbox's). That is what the same events give sent
in two runs that carry one state (the last alias alone in the second), and now in one run too:
there, send's first pass knows the second alias before the first runs, and `aliased_away`
(core/plans/common.py), made for a userId an EARLIER run's alias merged away, took u-c's person
as u-b's already: the first alias merged u-a's person into u-c's at once (warning 'an earlier
alias merged or re-keyed it', though none had), the identify wrote u-b's role onto u-c's person
over u-c's own, and the second alias was unchanged."""

from __future__ import annotations

from pathlib import Path

from e2e_support import alias, identify, rpd_send, write_events

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import USER_ID_FIELD

ROLE = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
EVENTS = [
    identify("m-1", "u-a", name="A", role="a-role"),
    identify("m-2", "u-c", name="C", role="c-role"),
    alias("m-3", "u-a", "u-b"),
    identify("m-4", "u-b", role="b-role"),
    alias("m-5", "u-b", "u-c"),
]
EXPECTED = [(2, "C", "u-c", "c-role")]


def persons(sandbox: Sandbox) -> list[tuple[int, str, str, str]]:
    return [
        (p["id"], p["name"], p["custom_fields"][USER_ID_FIELD], p["custom_fields"][ROLE])
        for p in sandbox.state()["persons"]
    ]


def test_sent_in_two_runs_the_survivor_keeps_its_own_role(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    first = write_events(tmp_path / "first.ndjson", EVENTS[:4])
    run = rpd_send(sandbox, tmp_path, first, state=state, name="first", args=("--concurrency", "1"))
    assert run.exit_code == 0, run.stderr
    last = write_events(tmp_path / "last.ndjson", EVENTS[4:])
    run = rpd_send(sandbox, tmp_path, last, state=state, name="last")
    assert run.exit_code == 0, run.stderr
    assert persons(sandbox) == EXPECTED


def test_sent_in_one_run_the_same(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(tmp_path / "in.ndjson", EVENTS)
    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "1"))
    assert run.exit_code == 0, run.stderr
    assert persons(sandbox) == EXPECTED
