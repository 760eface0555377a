"""An identify naming a person by its person_id external id with another userId writes that userId
into the person's userId field (SPEC 4: the external id wins): the userId the person held before
no longer finds it in Pipedrive, so its later events search it, as a run without the cache does,
and make its own person; the cache (this run's, or the state an earlier send kept) must not send
them to the person the external id re-keyed (its email and name would land on u-99's person, u-5
left with none, every event reported sent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e2e_support import alias, identify, rpd_send, write_events

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import USER_ID_FIELD


def rekey() -> dict[str, Any]:
    event = identify("m-2", "u-99", name="Ninety")
    event["context"] = {"externalId": [{"type": "person_id", "id": 1}]}
    return event


FIRST = [identify("m-1", "u-5", name="Five"), rekey()]
LATER = identify("m-3", "u-5", name="Five", email="five@example.com")


def persons(sandbox: Sandbox) -> list[tuple[int, str, str, list[str]]]:
    return [
        (p["id"], p["name"], p["custom_fields"][USER_ID_FIELD], [e["value"] for e in p["emails"]])
        for p in sandbox.state()["persons"]
    ]


EXPECTED = [(1, "Ninety", "u-99", []), (2, "Five", "u-5", ["five@example.com"])]


def test_a_userid_an_external_id_took_its_person_from_gets_its_own_in_the_same_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "in.ndjson", [*FIRST, LATER])
    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "1"))
    assert run.exit_code == 0, run.stderr
    assert persons(sandbox) == EXPECTED


def test_and_in_a_later_send_that_carries_the_state(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    first = write_events(tmp_path / "first.ndjson", FIRST)
    made = rpd_send(
        sandbox, tmp_path, first, state=state, name="first", args=("--concurrency", "1")
    )
    assert made.exit_code == 0, made.stderr
    later = write_events(tmp_path / "later.ndjson", [LATER])
    run = rpd_send(sandbox, tmp_path, later, state=state, name="later")
    assert run.exit_code == 0, run.stderr
    assert persons(sandbox) == EXPECTED


def test_an_alias_of_the_userid_it_gave_leaves_the_earlier_userid_its_own_person_later(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """u-99 (the userId the external id gave person 1, u-5's) aliased to u-7 re-keys person 1:
    the alias names u-99 and u-7 that person's, not u-5, which a later send carrying the state
    still searches (making its own person), and u-99 is still taken as u-7's person."""
    state = tmp_path / "state.sqlite"
    first = write_events(tmp_path / "first.ndjson", [*FIRST, alias("m-4", "u-99", "u-7")])
    made = rpd_send(
        sandbox, tmp_path, first, state=state, name="first", args=("--concurrency", "1")
    )
    assert made.exit_code == 0, made.stderr
    later = write_events(tmp_path / "later.ndjson", [LATER, identify("m-5", "u-99", name="Seven")])
    run = rpd_send(sandbox, tmp_path, later, state=state, name="later", args=("--concurrency", "1"))
    assert run.exit_code == 0, run.stderr
    assert persons(sandbox) == [(1, "Seven", "u-7", []), (2, "Five", "u-5", ["five@example.com"])]
