"""An alias whose userId an earlier alias of the input named as its previousId, that earlier
alias having failed (neither person found), sent twice, the second time with a fresh state
(SPEC 5: a replay creates each record exactly once, with or without the state file):
- alias a -> b (neither found: fails), track b (creates b's person 1 and its lead rpd:m-2),
  alias c -> d (neither found: fails), track a (a not found: the input aliases it to b, whose
  person 1 it takes: an activity rpd:m-4), alias a -> c (a is person 1, c not found: re-keyed
  to c). Person 1 ends the first run as c's, holding the lead and the activity.
The rerun's track b finds no b: the first pass linked the alias a -> c from a's chain's end (b)
to c's chain's end, d (as if c -> d had moved c's person), so b was looked for at d alone, not
found, and its person, lead and activity were made again (merged into 1 by alias a -> c)."""

from __future__ import annotations

from pathlib import Path

from e2e_support import ONE, alias, holdings, rpd_send, track, write_events

from rudder_pipedrive_cli.core.rules import markers
from rudder_pipedrive_cli.sandbox import Sandbox


def named(event: dict, name: str) -> dict:
    return {**event, "context": {"traits": {"name": name}}}


EVENTS = [
    alias("m-1", "u-a", "u-b"),
    named(track("m-2", "u-b", "Order Completed"), "B"),
    alias("m-3", "u-c", "u-d"),
    named(track("m-4", "u-a", "Call Scheduled", topic="intro"), "A"),
    alias("m-5", "u-a", "u-c"),
]


def test_a_rerun_with_a_fresh_state_makes_no_second_person_lead_or_activity(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "in.ndjson", EVENTS)

    def holds(user: str) -> None:
        people = holdings(sandbox)
        assert [(p["id"], people.user_of(p["id"])) for p in people.persons] == [(1, user)]
        assert [(lead["origin_id"], lead["person_id"]) for lead in people.leads] == [("rpd:m-2", 1)]
        activities = people.state["activities"]
        assert [(markers(a["note"]), a["participants"][0]["person_id"]) for a in activities] == [
            ({"rpd:m-4"}, 1)
        ]
        assert people.merges == []

    first = rpd_send(sandbox, tmp_path, events, state=tmp_path / "first.sqlite", args=ONE)
    assert first.exit_code == 1, first.stderr  # the two aliases that find neither person
    assert first.report is not None
    assert first.report["by_type"] == {"alias": {"sent": 1, "failed": 2}, "track": {"sent": 2}}
    holds("u-c")

    again = rpd_send(
        sandbox, tmp_path, events, state=tmp_path / "fresh.sqlite", args=ONE, name="again"
    )
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    # b and a taken as person 1 (c's), where the aliases lead them; the track's lead and activity
    # found there; a -> b and a -> c of one person; c -> d re-keys it.
    assert again.report["by_type"] == {
        "alias": {"sent": 1, "unchanged": 2},
        "track": {"skipped": 2},
    }
    assert [key for key in again.report["requests"] if key.startswith("POST")] == []
    holds("u-d")  # its alias c -> d, failed before, re-keys c's person now
