"""Leads are exactly-once without the state file too (SPEC 5): replaying a file with a fresh state
against the account it already went to creates no second lead, and pays one `GET /v1/leads`
listing per person it finds by search."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from resume_support import Rig, alias, census, identify, interleave, normalised, track, user_story

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

USERS, TRACKS, GROUPS = 80, 3, 8


def test_a_replay_with_a_fresh_state_lists_each_persons_leads_once_and_creates_none(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    events = interleave([user_story(n, tracks=TRACKS, groups=GROUPS) for n in range(USERS)])
    first = Rig.make(sandbox, tmp_path / "first", tmp_path / "first.sqlite")
    assert first.send(events, "run").exit_code == 0
    expected = normalised(sandbox.state())
    before = Counter(sandbox.stats()["requests"])

    fresh = Rig.make(sandbox, tmp_path / "fresh", tmp_path / "fresh.sqlite")
    again = fresh.send(events, "run")

    assert again.exit_code == 0, again.stderr
    assert normalised(sandbox.state()) == expected
    requests = Counter(sandbox.stats()["requests"]) - before
    assert requests["GET /v1/leads"] == USERS  # every person has tracks, and is found by search
    assert requests["GET /v1/leads/archived"] == USERS
    assert requests["POST /v1/leads"] == 0
    assert requests["POST /api/v2/persons"] == requests["POST /api/v2/organizations"] == 0
    assert again.report is not None
    assert again.report["by_type"]["track"] == {"skipped": USERS * TRACKS}  # "already done"
    assert again.report["events"]["read"] == len(events)


def test_a_replay_with_a_fresh_state_after_a_merge_duplicates_nothing(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited")
    events = [
        identify("m-1", "u-a", name="A"),
        track("m-2", "u-a", "Trial", revenue=1, currency="EUR"),
        identify("m-3", "u-b", name="B"),
        alias("m-4", "u-a", "u-b"),
    ]
    first = Rig.make(sandbox, tmp_path / "first", tmp_path / "first.sqlite")
    assert first.send(events, "run").exit_code == 0
    holds = census(sandbox.state())
    assert holds["leads"] == Counter({"rpd:m-2": 1})
    first_persons = normalised(sandbox.state())["persons"]

    fresh = Rig.make(sandbox, tmp_path / "fresh", tmp_path / "fresh.sqlite")
    again = fresh.send(events, "run")

    assert again.exit_code == 0, again.stderr
    assert census(sandbox.state()) == holds
    assert again.report is not None
    assert again.report["by_type"]["track"] == {"skipped": 1}  # its lead is on the survivor
    assert again.report["by_type"]["alias"] == {"unchanged": 1}  # one person: nothing to merge
    assert normalised(sandbox.state())["persons"] == first_persons


def test_a_replay_with_a_fresh_state_after_a_re_key_duplicates_nothing(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Issue 20: prev-1 is re-keyed to new-1, so Pipedrive no longer answers to prev-1.
    sandbox = make_sandbox(plan="unlimited")
    events = [
        {
            "type": "identify",
            "messageId": "rk-1",
            "userId": "prev-1",
            "traits": {"name": "Ann Prev"},
        },
        {
            "type": "track",
            "messageId": "rk-2",
            "userId": "prev-1",
            "event": "Signed Up",
            "context": {"traits": {"name": "Ann Prev"}},
        },
        {"type": "alias", "messageId": "rk-3", "previousId": "prev-1", "userId": "new-1"},
    ]
    first = Rig.make(sandbox, tmp_path / "first", tmp_path / "first.sqlite")
    assert first.send(events, "run").exit_code == 0
    holds = census(sandbox.state())
    assert holds == {
        "persons": Counter({"new-1": 1}),
        "organizations": Counter(),
        "leads": Counter({"rpd:rk-2": 1}),
        "merges": Counter(),
    }
    before = Counter(sandbox.stats()["requests"])

    fresh = Rig.make(sandbox, tmp_path / "fresh", tmp_path / "fresh.sqlite")
    again = fresh.send(events, "run")

    assert again.exit_code == 0, again.stderr
    assert census(sandbox.state()) == holds
    assert again.report is not None
    assert again.report["by_type"] == {
        "identify": {"sent": 1},  # its traits, onto the person it became
        "track": {"skipped": 1},
        "alias": {"unchanged": 1},
    }
    requests = Counter(sandbox.stats()["requests"]) - before
    assert requests["POST /api/v2/persons"] == requests["POST /v1/leads"] == 0
    assert requests["PUT /v1/persons/{id}/merge"] == 0


def test_events_without_message_id_are_known_again_by_their_content(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Their identity is a hash of the event, so it must be the same in every process: the
    # journal skips them, and a fresh state finds their lead by origin_id.
    sandbox = make_sandbox(plan="unlimited")
    events = [identify("", "u-1", name="One"), track("", "u-1", "Trial", revenue=1, currency="EUR")]
    for event in events:
        del event["messageId"]
    rig = Rig.make(sandbox, tmp_path / "first", tmp_path / "first.sqlite")
    assert rig.send(events, "run").exit_code == 0
    holds = census(sandbox.state())
    (origin,) = holds["leads"]
    assert origin.startswith("rpd:sha1:")

    again = rig.send(events, "again")
    fresh = Rig.make(sandbox, tmp_path / "fresh", tmp_path / "fresh.sqlite").send(events, "run")

    assert again.report is not None and fresh.report is not None
    assert again.report["events"]["skipped"] == 2
    assert fresh.report["by_type"]["track"] == {"skipped": 1}
    assert census(sandbox.state()) == holds
