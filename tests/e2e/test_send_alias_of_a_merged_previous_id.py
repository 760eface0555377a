"""identify a, identify b, alias a -> b (a's person merged into b's), identify c, alias a -> c
(SPEC 4, alias): a's person is b's survivor, the cache says so (it maps previousId and userId to
the survivor), so the second alias merges that person into c's, b's userId with it: one person
left, c's, in one run as in two runs that carry one state; not an alias ended `unchanged`."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import ONE, alias, holdings, identify, rpd_send, write_events

from rudder_pipedrive_cli.sandbox import Sandbox

EVENTS = [
    identify("m-1", "a", name="A"),
    identify("m-2", "b", name="B"),
    alias("m-3", "a", "b"),
    identify("m-4", "c", name="C"),
    alias("m-5", "a", "c"),
]


@pytest.mark.parametrize("runs", [1, 2], ids=["one run", "two runs, one state"])
def test_an_alias_of_a_previous_id_merged_before_merges_its_survivor_into_the_current_person(
    sandbox: Sandbox, tmp_path: Path, runs: int
) -> None:
    cut = len(EVENTS) if runs == 1 else 3
    state = tmp_path / "state.sqlite"
    sent = {"sent": 0, "unchanged": 0}
    for n, part in enumerate((EVENTS[:cut], EVENTS[cut:])[:runs]):
        events = write_events(tmp_path / f"in-{n}.ndjson", part)
        run = rpd_send(sandbox, tmp_path, events, state=state, args=ONE, name=f"run-{n}")
        assert run.exit_code == 0, run.stderr
        assert run.report is not None
        for outcome in sent:
            sent[outcome] += run.report["events"][outcome]

    assert sent == {"sent": 5, "unchanged": 0}
    people = holdings(sandbox)
    assert [(p["id"], people.user_of(p["id"])) for p in people.persons] == [(3, "c")]
    assert people.merges == [
        {"merged_id": 1, "survivor_id": 2},
        {"merged_id": 2, "survivor_id": 3},
    ]
