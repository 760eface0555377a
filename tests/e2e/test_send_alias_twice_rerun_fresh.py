"""An alias of a previousId aliased before, sent twice, the second time with a fresh state
(SPEC 5: a replay creates each record exactly once, with or without the state file). The first
run leaves one person, c's, holding a's lead. The rerun finds neither a nor b (their persons
merged away or re-keyed) and must take both as c's person, where the input's aliases lead them
(a -> b, then a -> c: b's person went with a's), not create persons again, make a second lead
of origin rpd:m-3 and merge them into c's:
- identify a, identify b, track a, alias a -> b, identify c, alias a -> c: the look-ahead
  (core/plans/common.py `aliased_away`) kept only the first alias of a previousId (a -> b), and
  b's person was gone; persons 4 and 5 were made, and merged into 3 with their lead;
- the same without identify b (a's person re-keyed to b, then merged into c's): the rerun's
  alias a -> b found a's person (c's) and took b, not found, as new: it re-keyed c's person to
  b, so identify c made person 3 and alias a -> c merged 2 into it."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import ONE, Holdings, alias, holdings, identify, rpd_send, track, write_events

from rudder_pipedrive_cli.sandbox import Sandbox

EVENTS = [
    identify("m-1", "a", name="A"),
    identify("m-2", "b", name="B"),
    track("m-3", "a", "Signed Up"),
    alias("m-4", "a", "b"),
    identify("m-5", "c", name="C"),
    alias("m-6", "a", "c"),
]
# (events, c's person, merges of run 1, the rerun's events by type)
CASES = {
    "b identified": (
        EVENTS,
        3,
        [{"merged_id": 1, "survivor_id": 2}, {"merged_id": 2, "survivor_id": 3}],
        {"alias": {"unchanged": 2}, "identify": {"sent": 3}, "track": {"skipped": 1}},
    ),
    "b never identified": (
        EVENTS[:1] + EVENTS[2:],
        2,
        [{"merged_id": 1, "survivor_id": 2}],
        {"alias": {"unchanged": 2}, "identify": {"sent": 2}, "track": {"skipped": 1}},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_rerun_with_a_fresh_state_creates_no_person_and_no_second_lead(
    sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    sent, person, merges, by_type = CASES[case]
    events = write_events(tmp_path / "in.ndjson", sent)

    def holds(people: Holdings) -> None:
        assert [(p["id"], people.user_of(p["id"])) for p in people.persons] == [(person, "c")]
        leads = [(lead["origin_id"], lead["person_id"]) for lead in people.leads]
        assert leads == [("rpd:m-3", person)]
        assert people.merges == merges

    first = rpd_send(sandbox, tmp_path, events, state=tmp_path / "first.sqlite", args=ONE)
    assert first.exit_code == 0, first.stderr
    assert first.report is not None
    assert first.report["events"]["sent"] == len(sent)
    holds(holdings(sandbox))

    again = rpd_send(
        sandbox, tmp_path, events, state=tmp_path / "fresh.sqlite", args=ONE, name="again"
    )
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    holds(holdings(sandbox))
    # a and b taken as c's person, the track's lead found there, both aliases one person's.
    assert again.report["by_type"] == by_type
    assert "POST /api/v2/persons" not in again.report["requests"]
    assert "PATCH /api/v2/persons/{id}" in again.report["requests"]  # the identifies
