"""A cached id that Pipedrive contradicts (SPEC 5): the person was merged away behind rpd's back
(the sandbox has no delete; a merge is how a person disappears there). A rerun with the state
meets 404/410 on the cached id, drops it, looks the userId up again and writes to the person that
now holds it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from resume_support import TOKEN, Rig, alias, census, group, identify, track

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.seed import USER_ID_FIELD

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

FIRST = [
    identify("m-1", "u-1", name="One"),
    track("m-2", "u-1", "First", revenue=1, currency="EUR"),
]


def person_of(sandbox: Sandbox, user_id: str) -> dict[str, Any]:
    persons: list[dict[str, Any]] = sandbox.state()["persons"]
    (person,) = [p for p in persons if p["custom_fields"][USER_ID_FIELD] == user_id]
    return person


def merge_away_behind_rpds_back(sandbox: Sandbox, user_id: str) -> int:
    """Create a person directly and merge `user_id`'s person into it; the survivor takes over
    the userId (its own field was empty) and the leads. Returns the survivor's id."""
    merged = person_of(sandbox, user_id)["id"]
    with httpx.Client(base_url=sandbox.url, headers={"x-api-token": TOKEN}) as api:
        created = api.post("/api/v2/persons", json={"name": "Merged Elsewhere"})
        survivor = int(created.raise_for_status().json()["data"]["id"])
        api.put(f"/v1/persons/{merged}/merge", json={"merge_with_id": survivor}).raise_for_status()
    assert person_of(sandbox, user_id)["id"] == survivor
    return survivor


@pytest.fixture
def rig(make_sandbox: MakeSandbox, tmp_path: Path) -> Rig:
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, tmp_path / "state.sqlite")
    assert rig.send(FIRST, "first").exit_code == 0
    return rig


def test_a_cached_person_merged_away_is_looked_up_again(rig: Rig) -> None:
    survivor = merge_away_behind_rpds_back(rig.sandbox, "u-1")
    before = Counter(rig.sandbox.stats()["requests"])

    rerun = rig.send(
        [
            identify("m-3", "u-1", name="One Again", role="returning"),
            track("m-4", "u-1", "Second", revenue=2, currency="EUR"),
        ],
        "rerun",
    )

    assert rerun.exit_code == 0, rerun.stderr
    assert rerun.report is not None
    assert rerun.report["events"]["sent"] == 2
    assert census(rig.sandbox.state()) == {
        "persons": Counter({"u-1": 1}),
        "organizations": Counter(),
        "leads": Counter({"rpd:m-2": 1, "rpd:m-4": 1}),
        "merges": Counter({"u-1": 1}),
    }
    person = person_of(rig.sandbox, "u-1")
    assert (person["id"], person["name"]) == (survivor, "One Again")
    assert {lead["person_id"] for lead in rig.sandbox.state()["leads"]} == {survivor}
    requests = Counter(rig.sandbox.stats()["requests"]) - before
    # The PATCH on the cached id meets 410, the userId is searched again and the PATCH goes to
    # the survivor; the survivor's leads and archived leads are listed once (they came with the
    # merge), then the new lead is created.
    assert requests == Counter(
        {
            "GET /api/v2/personFields": 1,
            "GET /api/v2/organizationFields": 1,
            "GET /api/v2/dealFields": 1,
            "GET /v1/leadLabels": 1,
            "GET /v1/users/me": 1,
            "PATCH /api/v2/persons/{id}": 2,
            "GET /api/v2/itemSearch/field": 1,
            "GET /v1/leads": 1,
            "GET /v1/leads/archived": 1,
            "POST /v1/leads": 1,
        }
    )


def test_a_track_for_a_cached_person_merged_away_goes_to_the_survivor(rig: Rig) -> None:
    survivor = merge_away_behind_rpds_back(rig.sandbox, "u-1")

    rerun = rig.send([track("m-4", "u-1", "Second", revenue=2, currency="EUR")], "rerun")

    assert rerun.exit_code == 0, rerun.stderr
    assert census(rig.sandbox.state())["leads"] == Counter({"rpd:m-2": 1, "rpd:m-4": 1})
    assert {lead["person_id"] for lead in rig.sandbox.state()["leads"]} == {survivor}


@pytest.fixture
def pair(make_sandbox: MakeSandbox, tmp_path: Path) -> Rig:
    rig = Rig.make(make_sandbox(plan="unlimited"), tmp_path, tmp_path / "state.sqlite")
    both = [identify("m-1", "u-a", name="A"), identify("m-2", "u-b", name="B")]
    assert rig.send(both, "first").exit_code == 0
    return rig


def test_an_alias_whose_cached_previous_person_was_merged_away_merges_its_successor(
    pair: Rig,
) -> None:
    successor = merge_away_behind_rpds_back(pair.sandbox, "u-a")
    survivor = person_of(pair.sandbox, "u-b")["id"]

    rerun = pair.send([alias("m-3", "u-a", "u-b")], "rerun")

    assert rerun.exit_code == 0, rerun.stderr
    assert pair.sandbox.state()["merges"][-1] == {"merged_id": successor, "survivor_id": survivor}
    assert census(pair.sandbox.state())["persons"] == Counter({"u-b": 1})


def test_an_alias_whose_cached_survivor_was_merged_away_merges_into_its_successor(
    pair: Rig,
) -> None:
    successor = merge_away_behind_rpds_back(pair.sandbox, "u-b")
    previous = person_of(pair.sandbox, "u-a")["id"]

    rerun = pair.send([alias("m-3", "u-a", "u-b")], "rerun")

    assert rerun.exit_code == 0, rerun.stderr
    assert pair.sandbox.state()["merges"][-1] == {"merged_id": previous, "survivor_id": successor}
    assert census(pair.sandbox.state())["persons"] == Counter({"u-b": 1})


def test_a_group_event_links_a_person_moved_away_behind_rpds_back(rig: Rig) -> None:
    assert rig.send([group("m-3", "u-1", "g-1", name="Org One")], "group").exit_code == 0
    person = person_of(rig.sandbox, "u-1")["id"]
    with httpx.Client(base_url=rig.sandbox.url, headers={"x-api-token": TOKEN}) as api:
        created = api.post("/api/v2/organizations", json={"name": "Elsewhere"})
        elsewhere = int(created.raise_for_status().json()["data"]["id"])
        api.patch(f"/api/v2/persons/{person}", json={"org_id": elsewhere}).raise_for_status()

    rerun = rig.send([group("m-4", "u-1", "g-1", name="Org One")], "rerun")

    assert rerun.exit_code == 0, rerun.stderr
    (org,) = [o for o in rig.sandbox.state()["organizations"] if o["name"] == "Org One"]
    assert person_of(rig.sandbox, "u-1")["org_id"] == org["id"]
