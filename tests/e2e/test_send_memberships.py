"""A person's organization, learned from a group event, kept in the replay state (SPEC 4 track
rules: a deal, an activity and a note carry the person's organization when known): a later run
with the same state gives it to the deals, activities and notes it makes, so a backfill split
across runs (files, `--since` windows) ends as one run over the same input would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    TOKEN,
    Holdings,
    alias,
    group,
    holdings,
    identify,
    rpd_send,
    track,
    write_events,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

LINKED = [
    identify("m-1", "u-1", name="Ada Lovelace"),
    group("m-2", "u-1", "g-1", name="Analytical Engines"),
]
# What config.example.toml's track rules make of these: a deal, an activity, a note.
TRACKS = [
    track("m-3", "u-1", "Demo Requested", campaign="webinar"),
    track("m-4", "u-1", "Call Scheduled", topic="Pricing", page="/pricing"),
    track("m-5", "u-1", "Support Ticket Opened", subject="Export fails", priority="high"),
]
KINDS = ("deals", "activities", "notes")


def made(held: Holdings) -> dict[str, list[tuple[str, str | None]]]:
    """Each deal, activity and note as (its person's userId, its organization's groupId)."""
    return {
        kind: [(held.user_of(r["person_id"]), held.group_of(r["org_id"])) for r in held.state[kind]]
        for kind in KINDS
    }


def test_a_later_run_gives_the_persons_organization_to_what_track_rules_make(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    first = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", LINKED), state=state)
    assert first.exit_code == 0, first.stderr

    later = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "b.ndjson", TRACKS), state=state, name="b"
    )

    assert later.exit_code == 0, later.stderr
    assert later.report is not None
    assert later.report["events"]["sent"] == 3
    assert made(holdings(sandbox)) == {kind: [("u-1", "g-1")] for kind in KINDS}
    assert "PATCH /api/v2/persons/{id}" not in later.report["requests"]  # no request to learn it


def on_day(event: dict[str, Any], day: str) -> dict[str, Any]:
    return {**event, "timestamp": f"2026-10-0{day}T09:00:00Z"}


# The same input cut three ways: two files, one file read a day at a time (`--since` windows),
# and a run cut short (`--limit`: stopped after the group) resumed over the whole file.
DAYS = [*(on_day(e, "1") for e in LINKED), *(on_day(e, "2") for e in TRACKS)]
SPLITS: dict[str, Callable[[Path], list[tuple[Path, tuple[str, ...]]]]] = {
    "two files": lambda d: [
        (write_events(d / "day1.ndjson", DAYS[:2]), ()),
        (write_events(d / "day2.ndjson", DAYS[2:]), ()),
    ],
    "since windows": lambda d: [
        (write_events(d / "all.ndjson", DAYS), ("--until", "2026-10-02")),
        (d / "all.ndjson", ("--since", "2026-10-02")),
    ],
    "resumed": lambda d: [
        (write_events(d / "all.ndjson", DAYS), ("--limit", "2")),
        (d / "all.ndjson", ()),
    ],
}


@pytest.mark.parametrize("split", SPLITS)
def test_a_backfill_split_across_runs_ends_as_one_run_would(
    make_sandbox: MakeSandbox, tmp_path: Path, split: str
) -> None:
    whole = make_sandbox(plan="unlimited")
    one = rpd_send(whole, tmp_path, write_events(tmp_path / "one.ndjson", DAYS), name="one")
    assert one.exit_code == 0, one.stderr
    parts = make_sandbox(plan="unlimited")
    state = tmp_path / "split.sqlite"

    for n, (events, args) in enumerate(SPLITS[split](tmp_path)):
        run = rpd_send(parts, tmp_path, events, state=state, args=args, name=f"part{n}")
        assert run.exit_code == 0, run.stderr

    assert made(holdings(parts)) == made(holdings(whole)) == {k: [("u-1", "g-1")] for k in KINDS}


def test_a_state_that_knows_no_membership_still_works(sandbox: Sandbox, tmp_path: Path) -> None:
    # A file an rpd before memberships were kept wrote: its identities, none of its links.
    state = tmp_path / "state.sqlite"
    first = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", LINKED), state=state)
    assert first.exit_code == 0, first.stderr
    with sqlite3.connect(state) as db:
        assert db.execute("DELETE FROM identities WHERE kind = 'member'").rowcount == 1

    later = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "b.ndjson", TRACKS), state=state, name="b"
    )

    assert later.exit_code == 0, later.stderr
    assert made(holdings(sandbox)) == {kind: [("u-1", None)] for kind in KINDS}
    # A group event of the later run links (and learns) the person's organization again.
    again = [group("m-6", "u-1", "g-1"), track("m-7", "u-1", "Demo Requested", campaign="x")]
    rerun = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "c.ndjson", again), state=state, name="c"
    )
    assert rerun.exit_code == 0, rerun.stderr
    assert made(holdings(sandbox))["deals"] == [("u-1", None), ("u-1", "g-1")]


def test_a_dry_run_over_the_state_plans_the_deal_with_the_persons_organization(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    first = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", LINKED), state=state)
    assert first.exit_code == 0, first.stderr
    before = state.read_bytes()
    tracks = write_events(tmp_path / "b.ndjson", TRACKS[:1])

    command = ["dry-run", str(tracks), "--config", str(EXAMPLE_CONFIG), "--state", str(state)]
    command += ["--base-url", sandbox.url, "-f", "ndjson", "-q"]
    result = CliRunner().invoke(app, command, env={**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN})

    assert result.exit_code == 0, result.stderr
    (planned,) = (orjson.loads(line) for line in result.stdout.splitlines())
    (deal,) = [r for r in planned["requests"] if r["path"] == "/api/v2/deals"]
    held = holdings(sandbox)
    assert (deal["method"], deal["body"]["person_id"], deal["body"]["org_id"]) == (
        "POST",
        held.person("u-1")["id"],
        held.org("g-1")["id"],
    )
    assert state.read_bytes() == before  # read-only


def test_an_answer_naming_another_organization_replaces_the_one_kept(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    first = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", LINKED), state=state)
    assert first.exit_code == 0, first.stderr
    person = holdings(sandbox).person("u-1")["id"]
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}) as api:
        created = api.post("/api/v2/organizations", json={"name": "Elsewhere"})
        elsewhere = created.raise_for_status().json()["data"]["id"]
        api.patch(f"/api/v2/persons/{person}", json={"org_id": elsewhere}).raise_for_status()

    # The identify's PATCH is answered with the person as it is now: in Elsewhere.
    later = [identify("m-6", "u-1", name="Ada King"), TRACKS[0]]
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "b.ndjson", later), state=state)

    assert run.exit_code == 0, run.stderr
    (deal,) = sandbox.state()["deals"]
    assert (deal["person_id"], deal["org_id"]) == (person, elsewhere)


def test_an_organization_kept_that_pipedrive_no_longer_has_is_forgotten_not_a_failure(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    first = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", LINKED), state=state)
    assert first.exit_code == 0, first.stderr
    # The organization deleted or merged away behind rpd's back (the sandbox deletes none).
    with sqlite3.connect(state) as db:
        db.execute("UPDATE identities SET pd_id = 'i:999999' WHERE kind = 'member'")

    later = rpd_send(
        sandbox, tmp_path, write_events(tmp_path / "b.ndjson", TRACKS), state=state, name="b"
    )

    assert later.exit_code == 0, later.stderr
    assert later.report is not None
    assert later.report["events"]["sent"] == 3
    assert made(holdings(sandbox)) == {kind: [("u-1", None)] for kind in KINDS}
    # One refusal: the first record's; the organization is forgotten for the others and later runs.
    assert later.report["requests"]["POST /api/v2/deals"] == 2
    assert (
        later.report["requests"]["POST /api/v2/activities"],
        later.report["requests"]["POST /v1/notes"],
    ) == (1, 1)
    with sqlite3.connect(state) as db:
        assert db.execute("SELECT count(*) FROM identities WHERE kind = 'member'").fetchone() == (
            0,
        )


def test_a_person_merged_away_gives_its_organization_to_no_survivor(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite"
    linked = [
        identify("m-1", "u-a", name="Ada"),
        identify("m-2", "u-b", name="Bea"),
        group("m-3", "u-a", "g-a", name="A Corp"),
        group("m-4", "u-b", "g-b", name="B Corp"),
    ]
    first = rpd_send(sandbox, tmp_path, write_events(tmp_path / "a.ndjson", linked), state=state)
    assert first.exit_code == 0, first.stderr

    # u-a's person merged into u-b's, which keeps its own organization (SPEC 1: its data wins).
    later = [alias("m-5", "u-a", "u-b"), track("m-6", "u-a", "Demo Requested", campaign="x")]
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "b.ndjson", later), state=state)

    assert run.exit_code == 0, run.stderr
    held = holdings(sandbox)
    assert held.group_of(held.person("u-b")["org_id"]) == "g-b"
    assert made(held)["deals"] == [("u-b", "g-b")]
