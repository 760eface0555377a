"""A failure caused by an earlier failure of the same userId says so (issue 14 item 4)."""

from __future__ import annotations

from typing import Any

import pytest

from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.rootcause import RootCauses, _with

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


def test_a_later_failure_for_want_of_a_person_names_the_first_failure_of_its_user() -> None:
    roots = RootCauses()
    assert roots.explain(event("identify", "u-1"), ROOT) == (ROOT, "")

    outcome, root = roots.explain(event("track", "u-1", 2, event="Signed up"), NO_NAME)

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
    assert roots.explain(event("track", "u-2", 3, event="x"), NO_NAME) == (NO_NAME, "")


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
    roots = RootCauses()
    roots.explain(event("identify", "u-1"), ROOT)
    assert roots.explain(event("track", "u-1", 2, event="x"), outcome) == (outcome, root)


def test_an_alias_failure_keeps_its_own_reason() -> None:
    # An alias is about two users and never creates: "neither person found" is its own cause.
    roots = RootCauses()
    roots.explain(event("identify", "u-1"), ROOT)
    neither = Outcome(
        status="failed",
        reason="alias: neither previous nor current person found",
        stage="lookup person",
    )
    alias = event("alias", "u-1", 2, previousId="u-0")
    assert roots.explain(alias, neither) == (neither, "")


@pytest.mark.parametrize("failed", ["u-1", "u-0"], ids=["its userId", "its previousId"])
def test_an_alias_waiting_for_a_failure_of_either_user_is_grouped_under_it(failed: str) -> None:
    # Seen replaying the examples: an identify's lookup failed and the alias after it waited,
    # and the report listed "an earlier event ... waits for it" as a cause of its own.
    roots = RootCauses()
    roots.explain(event("identify", failed), ROOT)
    waiting = Outcome(
        status="failed",
        reason=f"an earlier event of userId {failed} failed: this one waits for it",
        stage="order",
        retryable=True,
    )
    alias = event("alias", "u-1", 2, previousId="u-0")

    assert roots.explain(alias, waiting) == (waiting, ROOT.redacted_reason)
    # Waiting for a failure of another run (none in this one): a cause of its own.
    assert RootCauses().explain(alias, waiting) == (waiting, "")


def test_a_knock_on_keeps_every_field_of_its_outcome_but_the_reason() -> None:
    """`_with` copies Outcome field by field: a field added to Outcome and not copied fails here
    (each field set to a value of its own, none its default)."""
    values: dict[str, Any] = {
        "status": "failed",
        "reason": "cannot create person without a name",
        "stage": "create person",
        "http_status": 422,
        "retryable": True,
        "warnings": ("w",),
        "dropped": ("d",),
        "identities": {("person", "u-1"): 7},
        "lead_origins": {7: frozenset({"rpd:m-1"})},
        "memberships": {7: 8},
        "merged": {6: 7},
        "pending_creates": {("org", "g-1"): "2026-12-05T00:00:00Z"},
        "pending_merges": {5: 7},
        "held_back": frozenset({("person", "u-1")}),
        "recency": {("person", 7): {"name": "2026-12-05T00:00:00Z"}},
        "redacted": "cannot create person without a name",
        "writes": ("persons updated",),
    }
    assert set(values) == set(Outcome.__slots__)
    knock_on = _with(Outcome(**values), "the reason", "the redacted reason")
    assert {name: getattr(knock_on, name) for name in Outcome.__slots__} == {
        **values,
        "reason": "the reason",
        "redacted": "the redacted reason",
    }
