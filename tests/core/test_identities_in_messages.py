"""An identity value a message names (a request's note, a reason, a warning) is quoted as
core/events.py `quoted` does: one line of at most 60 characters and its length. Requests
themselves carry the value whole: only the words about them are shortened."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from helpers_core import CONFIG, USER_FIELD, ok, search_person

from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Learned, Outcome

BROKEN = "u-1\nBcc: x@y.io"  # a line break within: a dry-run table line of its own
SHOWN = '"u-1\\nBcc: x@y.io"'  # as quoted: JSON, escaped
LONG = "u" * 100_000
LONG_SHOWN = "u" * 60 + "... (100,000 characters)"


def drive(
    raw: dict[str, Any],
    answers: list[ApiResponse],
    config: PlanConfig = CONFIG,
    known: IdentityStore | None = None,
) -> tuple[list[ApiRequest], Outcome]:
    """The requests the plan of `raw` makes, each answered in turn by `answers`, and its end."""
    event = parse_event({"messageId": "m-1", "type": "identify", **raw}, "test.ndjson:1")
    plan = plan_event(event, config, known or IdentityStore(), None)
    if isinstance(plan, Outcome):
        return [], plan
    requests: list[ApiRequest] = []
    try:
        requests.append(next(plan))
        for answer in answers:
            requests.append(plan.send(answer))
    except StopIteration as stop:
        return requests, stop.value
    raise AssertionError(f"plan not ended after {len(answers)} answers: {requests[-1]}")


def test_a_userid_with_a_line_break_is_quoted_in_notes_and_sent_whole() -> None:
    requests, outcome = drive(
        {"userId": BROKEN, "traits": {"name": "Ann"}}, [ok(None), ok({"id": 100})]
    )
    assert [r.note for r in requests] == [
        f"search person by userId {SHOWN}",
        f"create person {SHOWN} (not found)",
    ]
    assert requests[0].query == search_person(BROKEN).query  # the term is the userId itself
    assert requests[1].body == {"name": "Ann", "custom_fields": {USER_FIELD: BROKEN}}
    assert outcome.status == "sent"


def test_a_long_userid_is_quoted_short_in_the_reason_it_fails_for() -> None:
    _, outcome = drive({"userId": LONG}, [], replace(CONFIG, user_id_field=""))
    assert (outcome.status, outcome.reason) == (
        "failed",
        f"[identity] user_id_field is not set: cannot look up userId {LONG_SHOWN}",
    )


def test_a_long_userid_is_quoted_short_in_its_search_note_and_ambiguity_warning() -> None:
    requests, outcome = drive(
        {"userId": LONG, "traits": {"name": "Ann"}},
        [ok([{"id": 8}, {"id": 7}]), ok({"id": 7})],
    )
    assert requests[0].note == f"search person by userId {LONG_SHOWN}"
    assert requests[0].query["term"] == LONG
    assert outcome.warnings == (
        f"ambiguous identity: 2 persons have userId {LONG_SHOWN}; using the lowest id",
    )


def test_an_alias_quotes_both_userids_in_its_notes_and_re_keys_to_the_whole_one() -> None:
    previous = "p-1\t" + "p" * 100
    requests, outcome = drive(
        {"type": "alias", "previousId": previous, "userId": BROKEN},
        [ok([{"id": 7}]), ok(None), ok({"id": 7})],
    )
    assert [r.note for r in requests] == [
        'search person by userId "p-1\\t' + "p" * 54 + "... (107 characters)",
        f"search person by userId {SHOWN}",
        f"re-key person 7 (found) to userId {SHOWN}",
    ]
    assert requests[2].body == {"custom_fields": {USER_FIELD: BROKEN}}
    assert outcome.status == "sent"


def test_an_event_held_back_quotes_the_userid_it_waits_for() -> None:
    known = IdentityStore()
    known.learn(
        Outcome(
            status="failed", reason="x", learned=Learned(held_back=frozenset({("person", LONG)}))
        )
    )
    _, outcome = drive({"userId": LONG}, [], known=known)
    assert (outcome.status, outcome.reason) == (
        "failed",
        f"an earlier event of userId {LONG_SHOWN} failed: this one waits for it (a rerun tries "
        "that one first)",
    )
