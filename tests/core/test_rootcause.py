"""A failure caused by an earlier failure of the same userId says so (issue 14 item 4): the
tally's roots (core/tally.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from rudder_pipedrive_cli.core.errors import UNSHOWN, Warned
from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.io.scratch import Spill

ROOT = Outcome(
    status="failed",
    reason="cannot convert plan = 'Starter' for field Plan (enum): expected one of ...",
    redacted="cannot convert plan for field Plan (enum)",
    stage="validate",
)
NO_NAME = Outcome(
    status="failed", reason="cannot create person without a name", stage="create person"
)


def event(kind: str, user: str, n: int = 1, **more: Any) -> Any:
    return parse_event({"type": kind, "messageId": f"m-{n}", "userId": user, **more}, f"f:{n}")


def count(tally: Tally, event: Any, outcome: Outcome) -> Outcome:
    """What send makes of an event's end (replay.py): the outcome its dead letter tells."""
    root = tally.add_outcome(event.kind, outcome, event)
    return outcome if root is None else root.retell(outcome)


def explain(tally: Tally, event: Any, outcome: Outcome) -> tuple[Outcome, str]:
    """What `count` makes of an event's end: the outcome its record tells, and the root's
    reason it is counted under ("" when it is not a knock-on)."""
    before = Counter(tally.knock_ons)
    told = count(tally, event, outcome)
    added = Counter(tally.knock_ons) - before
    assert sum(added.values()) <= 1
    return told, next(iter(added), "")


def test_a_later_failure_for_want_of_a_person_names_the_first_failure_of_its_user() -> None:
    tally = Tally()
    assert explain(tally, event("identify", "u-1"), ROOT) == (ROOT, "")

    outcome, root = explain(tally, event("track", "u-1", 2, event="Signed up"), NO_NAME)

    assert root == "cannot convert plan for field Plan (enum)"
    assert outcome.reason == (
        "no person for u-1: its identify failed earlier (cannot convert plan = 'Starter' for "
        "field Plan (enum): expected one of ...)"
    )
    assert outcome.redacted_reason == (
        "no person for its userId: its identify failed earlier (cannot convert plan for field "
        "Plan (enum))"
    )
    assert outcome.stage == "create person"
    # Another user's failure is a root of its own.
    assert explain(tally, event("track", "u-2", 3, event="x"), NO_NAME) == (NO_NAME, "")


WAITING = Outcome(
    status="failed",
    reason="an earlier event of userId u-1 failed: this one waits for it",
    stage="order",
    retryable=True,
)
REFUSED = Outcome(
    status="failed",
    reason="create person refused: HTTP 400",
    stage="create person",
    http_status=400,
)


@pytest.mark.parametrize(
    ("outcome", "root"),
    [
        (WAITING, ROOT.redacted_reason),  # its reason says so already: grouped under the root
        (REFUSED, ""),  # a cause of its own: Pipedrive's answer
        (Outcome(status="failed", reason="cannot convert amount", stage="validate"), ""),
        (Outcome(status="sent"), ""),
    ],
)
def test_other_later_outcomes_keep_their_reason(outcome: Outcome, root: str) -> None:
    tally = Tally()
    explain(tally, event("identify", "u-1"), ROOT)
    assert explain(tally, event("track", "u-1", 2, event="x"), outcome) == (outcome, root)


def test_an_alias_failure_keeps_its_own_reason() -> None:
    # An alias is about two users and never creates: "neither person found" is its own cause.
    tally = Tally()
    explain(tally, event("identify", "u-1"), ROOT)
    neither = Outcome(
        status="failed",
        reason="alias: neither previous nor current person found",
        stage="lookup person",
    )
    alias = event("alias", "u-1", 2, previousId="u-0")
    assert explain(tally, alias, neither) == (neither, "")


@pytest.mark.parametrize("failed", ["u-1", "u-0"], ids=["its userId", "its previousId"])
def test_an_alias_waiting_for_a_failure_of_either_user_is_grouped_under_it(failed: str) -> None:
    # Seen replaying the examples: an identify's lookup failed and the alias after it waited,
    # and the report listed "an earlier event ... waits for it" as a cause of its own.
    tally = Tally()
    explain(tally, event("identify", failed), ROOT)
    waiting = Outcome(
        status="failed",
        reason=f"an earlier event of userId {failed} failed: this one waits for it",
        stage="order",
        retryable=True,
    )
    alias = event("alias", "u-1", 2, previousId="u-0")

    assert explain(tally, alias, waiting) == (waiting, ROOT.redacted_reason)
    # Waiting for a failure of another run (none in this one): a cause of its own.
    assert explain(Tally(), alias, waiting) == (waiting, "")


def test_a_knock_on_keeps_every_field_of_its_outcome_but_the_reason() -> None:
    """send's dead letter and journal get the knock-on's whole outcome, only its reason retold
    (each field set to a value of its own, none its default, but `http_status`: a knock-on is
    a failure decided by rpd, with no answer from Pipedrive)."""
    values: dict[str, Any] = {
        "status": "failed",
        "reason": "cannot create person without a name",
        "stage": "create person",
        "http_status": None,
        "retryable": True,
        "warnings": ("w",),
        "dropped": ("d",),
        "redacted": "cannot create person without a name",
        "writes": ("persons updated",),
        "learned": Learned(
            identities={("person", "u-1"): 7},
            lead_origins={7: frozenset({"rpd:m-1"})},
            memberships={7: 8},
            merged={6: 7},
            pending_creates={("org", "g-1"): "2026-12-05T00:00:00Z"},
            pending_merges={5: 7},
            held_back=frozenset({("person", "u-1")}),
            recency={("person", 7): {"name": "2026-12-05T00:00:00Z"}},
            updates=(("person", 7, {"name": "Ada"}),),
            holders={("person", 7): ("u-1",)},
        ),
    }
    assert set(values) == set(Outcome.__slots__)
    tally = Tally()
    explain(tally, event("identify", "u-1"), ROOT)
    knock_on, root = explain(tally, event("track", "u-1", 2, event="x"), Outcome(**values))
    assert root == ROOT.redacted_reason
    assert {name: getattr(knock_on, name) for name in Outcome.__slots__} == {
        **values,
        "reason": "no person for u-1: its identify failed earlier (" + ROOT.reason + ")",
        "redacted": "no person for its userId: its identify failed earlier ("
        + ROOT.redacted_reason
        + ")",
    }


def test_count_explains_only_failures_with_a_userid_and_counts_words_without_event_data() -> None:
    """send and dry-run count each event's end through `count` (replay.py, core/preview.py)."""
    tally = Tally()
    warned = Outcome(
        status="sent",
        warnings=(Warned("ann@example.com is no email", "a value is no email"), "plain u-1"),
        dropped=("traits.x",),
        writes=("persons created",),
    )
    assert count(tally, event("identify", "u-1"), warned) is warned
    # A success is no root: the failure after it is one of its own.
    assert count(tally, event("identify", "u-1", 2), ROOT) is ROOT
    knock_on = count(tally, event("track", "u-1", 3, event="x"), NO_NAME)
    assert knock_on.reason.startswith("no person for u-1: its identify failed earlier")
    # Input that is not an event (no id) and a failure without a userId are counted as they are.
    invalid = parse_event({"type": "identify", "userId": "u-1"}, "f:4")
    invalid.id = ""
    assert count(tally, invalid, NO_NAME) is NO_NAME
    anonymous = parse_event({"type": "track", "messageId": "m-5", "anonymousId": "a"}, "f:5")
    assert count(tally, anonymous, NO_NAME) is NO_NAME
    assert dict(tally.by_type) == {
        "identify": {"sent": 1, "failed": 2},
        "track": {"failed": 2},
    }
    assert tally.failures == {ROOT.redacted_reason: 1, NO_NAME.reason: 2}  # the knock-on: below
    assert tally.knock_ons == {ROOT.redacted_reason: 1}
    assert tally.warnings == {"a value is no email": 1, UNSHOWN: 1}
    assert (tally.dropped, tally.writes) == ({"traits.x": 1}, {"persons created": 1})


def test_roots_are_found_in_a_bounded_table_after_they_moved_out_of_its_memory() -> None:
    """Roots are read from a bounded table's memory until keys first move out, then from the
    table: a root that moved to disk still explains its user's later failure."""
    with Spill(2, batch=1) as spill:
        tally = Tally(roots=spill.table())
        explain(tally, event("identify", "u-0"), ROOT)
        explain(tally, event("identify", "u-1", 2), ROOT)  # both in memory: read there
        _, root = explain(tally, event("track", "u-1", 3, event="x"), NO_NAME)
        assert root == ROOT.redacted_reason
        for n in range(2, 6):  # more roots than the memory holds: u-0 moves out
            explain(tally, event("identify", f"u-{n}", 10 + n), ROOT)
        outcome, root = explain(tally, event("track", "u-0", 20, event="x"), NO_NAME)
    assert root == ROOT.redacted_reason
    assert outcome.redacted_reason == (
        "no person for its userId: its identify failed earlier (cannot convert plan for field "
        "Plan (enum))"
    )
