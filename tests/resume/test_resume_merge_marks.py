"""A merge's "left to settle" mark (io/state.py begin_write), found by review:
(a) a merge refused outright (a 4xx) was never made: its mark is settled, as a refused create's;
(b) a later merge of the same person into another survivor marks that survivor: killed mid-merge,
    the next event must settle it into the person it went into, not an earlier merge's;
(c) an alias whose merge an earlier run made is `unchanged`, "merged in an earlier run", never
    `sent` without a write (issue 14 item 11), nor failed on the merged-away person's 404/410.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fakes import FakePipedrive, Killed

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Learned, Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.replay import journaled

USER_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
CONFIG = PlanConfig(user_id_field=USER_FIELD, create_persons=True)
STAMP = "2026-01-02T03:04:05Z"

CACHED = Outcome(
    status="sent",
    learned=Learned(identities={("person", "u-a"): 1, ("person", "u-b"): 2, ("person", "u-c"): 3}),
)


def replay(
    state: ReplayState,
    raw: dict[str, Any],
    send: Callable[[ApiRequest], ApiResponse],
    config: PlanConfig = CONFIG,
) -> Outcome:
    event = parse_event(raw, "f:1")
    plan = journaled(plan_event(event, config, state), event.id, state, lambda: STAMP)
    outcome = drive(plan, send)
    state.record_outcome(event.id, "f:1", outcome)
    return outcome


def open_state(path: Path) -> ReplayState:
    return ReplayState.open(path, "ns", now=lambda: STAMP)


def alias(mid: str, previous: str, user: str) -> dict[str, Any]:
    return {"type": "alias", "messageId": mid, "previousId": previous, "userId": user}


def test_a_refused_merge_settles_its_mark(tmp_path: Path) -> None:
    pd = FakePipedrive({1: "u-a", 2: "u-b", 3: "u-c"})
    pd.refuse_merge.add((1, 2))
    with open_state(tmp_path / "s.sqlite") as state:
        state.learn(CACHED)
        outcome = replay(state, alias("m-1", "u-a", "u-b"), pd)
        assert (outcome.status, outcome.retryable) == ("failed", False)  # refused: never made
    with open_state(tmp_path / "s.sqlite") as state:
        (summary,) = state.summary()
        assert summary.to_settle == 0
        assert state.merging_into(1) is None


def test_a_later_merge_of_a_person_marks_its_own_survivor(tmp_path: Path) -> None:
    pd = FakePipedrive({1: "u-a", 2: "u-b", 3: "u-c"})
    pd.refuse_merge.add((1, 2))
    pd.kill_after_merge.add((1, 3))
    path = tmp_path / "s.sqlite"
    with open_state(path) as state:
        state.learn(CACHED)
        replay(state, alias("m-1", "u-a", "u-b"), pd)  # refused: mark 1 -> 2 stays
        with pytest.raises(Killed):  # merge 1 -> 3 applied, then kill -9
            replay(state, alias("m-2", "u-a", "u-c"), pd)
    assert 1 not in pd.persons  # person 1 is merged into 3
    with open_state(path) as state:
        assert state.merging_into(1) == 3
    pd.seen.clear()
    with open_state(path) as state:
        outcome = replay(
            state,
            {"type": "identify", "messageId": "m-3", "userId": "u-a", "traits": {"name": "Ann"}},
            pd,
        )
        assert outcome.status == "sent"
        assert "PATCH /api/v2/persons/3" in pd.seen, pd.seen
        assert state.person_id("u-a") == 3


MERGED_BEFORE = ("unchanged", "merged in an earlier run")


def test_an_alias_whose_merge_a_killed_run_made_is_unchanged_on_the_rerun(tmp_path: Path) -> None:
    pd = FakePipedrive({1: "u-a", 2: "u-b"})
    pd.kill_after_merge.add((1, 2))
    path = tmp_path / "s.sqlite"
    with open_state(path) as state:
        state.learn(CACHED)
        with pytest.raises(Killed):  # the merge is made, then kill -9
            replay(state, alias("m-1", "u-a", "u-b"), pd)
    pd.seen.clear()
    with open_state(path) as state:
        outcome = replay(state, alias("m-1", "u-a", "u-b"), pd)
        # Before: `sent`, though this run wrote nothing.
        assert (outcome.status, outcome.reason) == MERGED_BEFORE
        assert pd.seen == ["GET /api/v2/persons/1", "GET /api/v2/persons/2"]  # settled, no PUT
        assert state.person_id("u-a") == state.person_id("u-b") == 2
        assert state.merging_into(1) is None


def test_an_alias_whose_previous_person_search_still_finds_merged_is_unchanged(
    tmp_path: Path,
) -> None:
    # What was seen: the merge made, the first run then failed the alias with HTTP 410 on the
    # merged-away person (search still found it), and the resumed run said `sent`, no write.
    pd = FakePipedrive({2: "u-b"})
    pd.index[1] = "u-a"  # merged into 2 earlier; search has not caught up
    path = tmp_path / "s.sqlite"
    with open_state(path) as state:
        outcome = replay(state, alias("m-1", "u-a", "u-b"), pd)
        assert (outcome.status, outcome.reason) == MERGED_BEFORE
        assert pd.seen == [
            "GET /api/v2/itemSearch/field",
            "GET /api/v2/itemSearch/field",
            "PUT /v1/persons/1/merge",  # answered 404: gone
            "GET /api/v2/persons/2",  # the survivor is there: the merge is done
        ]
        assert state.person_id("u-a") == state.person_id("u-b") == 2
        assert state.merging_into(1) is None
        (summary,) = state.summary()
        assert summary.to_settle == 0


def test_a_merge_left_by_a_kill_whose_survivor_merged_on_leaves_its_user_to_the_aliases_person(
    tmp_path: Path,
) -> None:
    """Killed mid-merge of u-a's person 1 into u-b's 2; a later run (the same state, the next
    day's file) merges 2 into u-c's 3 by alias u-b -> u-c before anything of u-a comes. u-a's
    identify then finds its merge left to settle with both persons gone, no u-a by search, and
    the input's aliases leading it to u-b, now person 3: it updates 3. It created a person for
    u-a: the merge's survivor 2 was taken as the person an alias's userId must lead to."""
    pd = FakePipedrive({1: "u-a", 2: "u-b", 3: "u-c"})
    pd.kill_after_merge.add((1, 2))
    path = tmp_path / "s.sqlite"
    with open_state(path) as state:
        state.learn(CACHED)
        with pytest.raises(Killed):
            replay(state, alias("m-1", "u-a", "u-b"), pd)
    config = replace(CONFIG, aliases={"u-a": "u-b", "u-b": "u-c"})
    with open_state(path) as state:
        assert replay(state, alias("m-2", "u-b", "u-c"), pd, config).status == "sent"
        assert pd.persons == {3: "u-c"}
        pd.seen.clear()
        identify = {
            "type": "identify",
            "messageId": "m-3",
            "userId": "u-a",
            "traits": {"name": "A"},
        }
        outcome = replay(state, identify, pd, config)
        assert outcome.status == "sent"
        assert pd.seen == [
            "GET /api/v2/persons/1",  # the merge left to settle: both gone
            "GET /api/v2/persons/2",
            "GET /api/v2/itemSearch/field",  # u-a: not found
            "PATCH /api/v2/persons/3",  # u-b's person, where the aliases lead
        ]
        assert state.person_id("u-a") == 3
