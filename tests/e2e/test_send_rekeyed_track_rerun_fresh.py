"""A track whose person the input re-keys afterwards, sent twice, the second time with a fresh
state and `--identities index` (SPEC 4: exactly once, with or without the state file, for every
kind): identify u-1, track k-2 (its record on person 1), identify u-2 with external id
person_id 1 (person 1 re-keyed to u-2). The rerun finds no u-1 (person 1 holds u-2 now) and
makes a person for it again; its track is for that new person, whose records are none, while
k-2's record is on person 1. Where the run listed the account's records of the kind, k-2's
origin is on one of them: the track is `skipped` (already done), whoever holds it. Before, the
origin was looked for among the new person's records only, and the record was made twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_support import ONE, identify, rpd_send, track, write_events

from rudder_pipedrive_cli.sandbox import Sandbox

# The kind of record each of config.example.toml's rules makes, by an event name it matches,
# and where the record keeps its origin.
RULES = {
    "lead": ("Signed Up", "leads", "origin_id"),
    "deal": ("Demo Requested", "deals", "origin_id"),
    "activity": ("Call Scheduled", "activities", "note"),
    "note": ("Support Ticket opened", "notes", "content"),
}
# Two more persons with tracks of the kind, found by the index on the rerun: listing the
# account's records (one page) costs less than listing theirs one by one (core/index.py's
# account_listing_pays).
OTHERS = ("u-3", "u-4")


def rekeyed(name: str) -> list[dict[str, Any]]:
    events = [identify("k-1", "u-1", name="Ann"), track("k-2", "u-1", name)]
    events.append(
        identify("k-3", "u-2", name="Bob")
        | {"context": {"externalId": [{"type": "person_id", "id": 1}]}}
    )
    for n, user in enumerate(OTHERS, start=4):
        events += [identify(f"k-{n}", user, name=user), track(f"k-{n}0", user, name)]
    return events


def origins(sandbox: Sandbox, records: str, key: str) -> list[str]:
    """The `rpd:` origin of each record of `records` in the sandbox, sorted."""
    found = []
    for record in sandbox.state()[records]:
        text = record[key] or ""
        found.append(text.rsplit("<p>", 1)[-1].removesuffix("</p>") if key != "origin_id" else text)
    return sorted(found)


@pytest.mark.parametrize("kind", list(RULES))
def test_a_record_on_the_person_its_user_was_re_keyed_away_from_is_not_made_again(
    sandbox: Sandbox, tmp_path: Path, kind: str, index_clock_stopped: None
) -> None:
    name, records, key = RULES[kind]
    events = write_events(tmp_path / "in.ndjson", rekeyed(name))
    made = ["rpd:k-2", "rpd:k-40", "rpd:k-50"]
    args = (*ONE, "--identities", "index")

    first = rpd_send(sandbox, tmp_path, events, state=tmp_path / "first.sqlite", args=args)
    assert first.exit_code == 0, first.stderr
    assert origins(sandbox, records, key) == made

    again = rpd_send(
        sandbox, tmp_path, events, state=tmp_path / "fresh.sqlite", args=args, name="again"
    )
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert origins(sandbox, records, key) == made
    assert again.report["by_type"]["track"] == {"skipped": 3}
    assert again.report["identity_index"][f"{kind}_pages" if kind != "lead" else "lead_pages"]
