"""A previousId aliased twice, its first alias having failed (neither person found), sent twice,
the second time with a fresh state (SPEC 5: a replay creates each record exactly once, with or
without the state file; dup23's case-chain-first-found.ndjson, narrowed from the mixed workload):
- alias a -> b (neither found: fails), track a (a note: a not found, nor b nor c, so a's person 1
  is created and the note rpd:m-2 made on it), identify b (b's own person 2), alias a -> c (a is
  person 1, c not found: re-keyed to c). Person 1 ends the first run as c's, with the note;
  person 2, b's, has none.
The rerun's track a finds no a. The first pass chains a's aliases a -> b -> c (as if a -> b had
moved a's person to b's), and a was taken as the first person found along it, b's person 2, and
the note made again there. a's alias after the track, a -> c, is where the track's person went:
c's person 1. The track comes after one of a's own aliases and before another: the look-ahead
takes first the persons of the userIds along a's chain that an event before the track named (none:
b is named after it, so a first run found no b's person), then follows a's aliases after the track
(a -> c), then a's chain (core.identity_cache.ahead_of).
Leading a to its last alias's userId first (a -> c, b -> c) for every event fixes this rerun but
breaks a first run whose event of a comes before a's earlier aliases (the second test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_support import ONE, SendRun, alias, holdings, identify, rpd_send, track, write_events

from rudder_pipedrive_cli.core.rules import markers
from rudder_pipedrive_cli.sandbox import Sandbox

EVENTS = [
    alias("m-1", "u-a", "u-b"),
    {
        **track("m-2", "u-a", "Support Ticket Opened", subject="s", priority="high"),
        "context": {"traits": {"name": "A"}},
    },
    identify("m-3", "u-b", name="B"),
    alias("m-4", "u-a", "u-c"),
]


def sent(sandbox: Sandbox, tmp_path: Path, events: Path, name: str) -> SendRun:
    """A send of `events` one at a time, with a state of its own."""
    return rpd_send(
        sandbox, tmp_path, events, state=tmp_path / f"{name}.sqlite", args=ONE, name=name
    )


def test_a_rerun_with_a_fresh_state_makes_the_note_once_on_the_last_alias_s_person(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "in.ndjson", EVENTS)

    def holds() -> None:
        people = holdings(sandbox)
        assert [(p["id"], people.user_of(p["id"])) for p in people.persons] == [
            (1, "u-c"),
            (2, "u-b"),
        ]
        notes = people.state["notes"]
        assert [(markers(note["content"]), note["person_id"]) for note in notes] == [
            ({"rpd:m-2"}, 1)
        ]
        assert people.leads == []
        assert people.merges == []

    first = sent(sandbox, tmp_path, events, "first")
    assert first.exit_code == 1, first.stderr  # the alias that finds neither person
    assert first.report is not None
    assert first.report["by_type"] == {
        "alias": {"sent": 1, "failed": 1},
        "track": {"sent": 1},
        "identify": {"sent": 1},
    }
    holds()

    again = sent(sandbox, tmp_path, events, "again")  # a fresh state
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    # a -> b finds b's person alone now: nothing to merge, no traits (unchanged); a is taken as c's
    # person 1, whose note is listed there (skipped); identify b PATCHes b's person 2 again (a
    # fresh state knows none of its values: updates are idempotent); a -> c of one person.
    assert again.report["by_type"] == {
        "alias": {"unchanged": 2},
        "track": {"skipped": 1},
        "identify": {"sent": 1},
    }
    writes = {key: n for key, n in again.report["requests"].items() if not key.startswith("GET")}
    assert writes == {"PATCH /api/v2/persons/{id}": 1}
    holds()


# A first run must follow a previousId's aliases in input order: u-a's track comes before u-a ->
# u-y (whose chain leads to u-b's person 1) and u-a -> u-e (u-e's person 2). Taking u-e's person 2
# for the track, where u-a's LAST alias leads, made u-a -> u-y re-key person 2 to u-y (u-y led to
# person 1, another), so u-e's person was gone and a fresh rerun made u-a's lead again. Taking the
# first found along u-a -> u-y -> u-x -> u-b -> u-e (person 1, merged into 2 by u-a -> u-e) does
# not (dup23's seed 31 workload, narrowed).
IN_ORDER = [
    identify("m-1", "u-b", name="B"),
    identify("m-2", "u-e", name="E"),
    alias("m-3", "u-x", "u-b"),
    {**track("m-4", "u-a", "Order Completed"), "context": {"traits": {"name": "A"}}},
    alias("m-5", "u-y", "u-x"),
    alias("m-6", "u-a", "u-y"),
    alias("m-7", "u-a", "u-e"),
]


def test_a_previousid_s_aliases_are_followed_in_order_on_a_first_run_and_its_rerun(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "in.ndjson", IN_ORDER)

    def holds() -> None:
        people = holdings(sandbox)
        assert people.user_ids() == {"u-e": 1}
        assert [
            (lead["origin_id"], people.user_of(lead["person_id"])) for lead in people.leads
        ] == [("rpd:m-4", "u-e")]

    for name in ("first", "again"):  # the second with a fresh state
        run = sent(sandbox, tmp_path, events, name)
        assert run.exit_code == 0, run.stderr
        holds()


# db609e4's chain (the test below): the events narrowed from the mixed workload, as they were.
ALIASED_USERID: list[dict[str, Any]] = [
    {
        "type": "identify",
        "messageId": "m-389",
        "timestamp": "2026-10-19T13:00:00Z",
        "userId": "u-263",
        "anonymousId": "a-187",
        "traits": {"name": "Person 287", "role": "CTO"},
    },
    {
        "type": "alias",
        "messageId": "m-1035",
        "timestamp": "2026-10-21T18:00:07Z",
        "userId": "u-7",
        "anonymousId": "a-475",
        "previousId": "u-263",
        "traits": {"name": "Person 126", "email": "p27@x.example", "role": {"x": 1}, "plan": "Pro"},
    },
    {
        "type": "track",
        "messageId": "m-1292",
        "timestamp": "2026-10-11T16:00:06Z",
        "userId": "u-150",
        "event": "Demo Requested",
        "properties": {
            "revenue": None,
            "currency": "usd",
            "campaign": "spring",
            "topic": "intro",
            "page": "/p",
            "label": "Nope",
            "source": "ads",
        },
        "traits": {
            "email": "p119@x.example",
            "role": {"x": 1},
            "visible_to": 3,
            "extra": {"deep": {"x": 1}},
        },
    },
    {
        "type": "alias",
        "messageId": "m-1524",
        "timestamp": "2026-10-18T13:00:06Z",
        "userId": "u-263",
        "anonymousId": "a-413",
        "context": {"traits": {"role": "Buyer", "plan": "Free", "visible_to": 4}},
        "previousId": "u-150",
    },
    {
        "type": "identify",
        "messageId": "m-2612",
        "timestamp": "2026-10-24T17:00:01Z",
        "userId": "u-7",
        "context": {"traits": {"name": "Person 3"}},
    },
    {
        "type": "alias",
        "messageId": "m-3314",
        "timestamp": "2026-10-27T10:00:04Z",
        "userId": "u-53",
        "previousId": "u-263",
        "traits": {"email": "", "visible_to": 3, "extra": {"deep": {"x": 1}}},
    },
]


def test_a_rerun_with_a_fresh_state_makes_the_deal_of_an_alias_to_an_aliased_userid_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """An alias to a userId whose own earlier alias failed, sent twice, the second time with a fresh
    state (SPEC 5: a replay creates each record exactly once, with or without the state file).
    Narrowed from the mixed workload without external ids and with unique messageIds (seed 13,
    5,000 lines), where db609e4 (alias_into links to the userId itself) added this duplicate deal:
    identify u-263, alias u-263 -> u-7 (fails: a trait Pipedrive's field refuses), track u-150 (a
    deal, rpd:m-1292), alias u-150 -> u-263, identify u-7, alias u-263 -> u-53.
    The first pass chains u-150 -> u-263 -> u-7 -> u-53. The first run takes u-263's person 1 for
    the track (the first found along it) and makes the deal there; identify u-7 makes person 2, and
    alias u-263 -> u-53 re-keys person 1 to u-53. The fresh rerun takes u-7's person 2 for the track
    (now the first found along the chain), lists its deals (none) and makes the deal again there;
    alias u-263 -> u-53 then merges person 2 into 1: two rpd:m-1292 deals on person 1. Before
    db609e4 (u-150 -> u-7 -> u-53) the first run found no person for the track (failed: no name)
    and the rerun made the deal once.
    Now the order depends on where each event stands among the own aliases of each userId along
    its chain (core.identity_cache.ahead_of): the rerun's identify u-263, before both of u-263's
    aliases, looks first where the last took u-263's person, u-53's person 1 (not u-7's 2, named
    after it), and the track, taking u-263's person as the first run did, finds it there; without
    u-263's person known, the track, between u-263's aliases, looks at u-263, then u-53 (where
    u-263's alias after it leads), then u-7."""
    events = write_events(tmp_path / "aliased.ndjson", ALIASED_USERID)
    for name in ("first", "again"):  # each with a state of its own: the second a fresh one
        assert sent(sandbox, tmp_path, events, name).exit_code in (0, 1)
    deals = holdings(sandbox).state["deals"]
    assert [deal["origin_id"] for deal in deals] == ["rpd:m-1292"]


# An event between two of u-a's aliases on a first run that found u-b's person there (an event
# before it named u-b): the rerun takes u-b's first too, as the first run did, not u-c's (where
# u-a's alias after it leads), whatever Pipedrive holds by then (dup23's seed 15 workload with
# unique messageIds, narrowed). The track m-1, before both aliases, finds no person on the first
# run (no name, nothing to take) and fails; the rerun finds u-c's for it (u-b's merged there).
NAMED_BEFORE = [
    track("m-1", "u-a", "Support Ticket Opened", subject="s"),
    identify("m-2", "u-b", name="B"),
    alias("m-3", "u-a", "u-b"),
    identify("m-4", "u-c", name="C"),
    {
        **track("m-5", "u-a", "Support Ticket Opened", subject="s"),
        "context": {"traits": {"name": "A"}},
    },
    alias("m-6", "u-a", "u-c"),
]


def test_an_event_between_two_aliases_takes_first_the_person_of_a_userid_named_before_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "in.ndjson", NAMED_BEFORE)
    first = sent(sandbox, tmp_path, events, "first")
    assert first.exit_code == 1, first.stderr  # m-1: no person found, none to create
    people = holdings(sandbox)
    assert [(p["id"], people.user_of(p["id"])) for p in people.persons] == [(2, "u-c")]
    assert people.merges == [{"merged_id": 1, "survivor_id": 2}]  # u-b's, with m-5's note
    again = sent(sandbox, tmp_path, events, "again")  # a fresh state
    assert again.exit_code == 0, again.stderr
    notes = holdings(sandbox).state["notes"]
    assert [(markers(note["content"]), note["person_id"]) for note in notes] == [
        ({"rpd:m-5"}, 2),
        ({"rpd:m-1"}, 2),  # failed on the first run
    ]
