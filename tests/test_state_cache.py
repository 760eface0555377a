"""io/state.py's bounded memory (issue 18): a read cache in front of the identities table that
every write keeps true, and what a run learns in memory only (a read-only state's overlay, this
run's failures) held in bounded tables. With one entry per table, the answers stay the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from rudder_pipedrive_cli.core.protocol import ApiRequest, Learned, Outcome
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import namespace_key

NS = namespace_key("https://api.pipedrive.com", "pd-token-cache")
STAMP = "2026-01-02T03:04:05Z"
USERS = [f"u-{n}" for n in range(50)]
CREATE = ApiRequest(
    method="POST",
    path="/api/v2/persons",
    endpoint="/api/v2/persons",
    stage="create person",
    body={"name": "Ada"},
    creates=("person", "u-new"),
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite"


def open_state(path: Path, **kwargs: object) -> ReplayState:
    return ReplayState.open(path, NS, now=lambda: STAMP, **kwargs)  # type: ignore[arg-type]


def identities_selects(state: ReplayState) -> list[str]:
    """The queries of the identities table that `state` makes from now on."""
    seen: list[str] = []
    state._db._db.set_trace_callback(  # the connection under the state's failure guard
        lambda sql: seen.append(sql) if sql.startswith("SELECT pd_id FROM identities") else None
    )
    return seen


def test_a_repeated_lookup_is_answered_from_the_cache(path: Path) -> None:
    with open_state(path) as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 5})))
    with open_state(path, cache_entries=2) as state:
        queries = identities_selects(state)
        assert [state.person_id("u-1") for _ in range(3)] == [5, 5, 5]
        assert [state.person_id("u-2") for _ in range(3)] == [None, None, None]  # a miss too
        assert len(queries) == 2
        state.person_id("u-3")  # a third key: u-1, the least recently used, is dropped
        assert state.person_id("u-1") == 5
        assert len(queries) == 4


@pytest.mark.parametrize("entries", [1, 10_000])
def test_every_write_keeps_the_cache_true(path: Path, entries: int) -> None:
    with open_state(path, cache_entries=entries) as state:
        for n, user in enumerate(USERS):
            state.learn(Outcome(status="sent", learned=Learned(identities={("person", user): n})))
        assert [state.person_id(user) for user in USERS] == list(range(len(USERS)))
        # Forgotten.
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-3"): None})))
        # Replaced.
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-4"): 40})))
        assert [state.person_id(u) for u in ("u-3", "u-4", "u-5")] == [None, 40, 5]
        # Another create left to settle: from now on pending_create() asks (and caches) its answers.
        state.learn(
            Outcome(
                status="failed", reason="x", learned=Learned(pending_creates={("org", "g"): STAMP})
            )
        )
        assert state.pending_create("person", "u-new") is None
        state.begin_write("e1", CREATE, "2026-11-28T10:00:05Z")  # left to settle, until...
        assert state.pending_create("person", "u-new") == "2026-11-28T10:00:05Z"
        state.begin_write("e1", CREATE, "2026-11-28T10:09:00Z")  # a repeat keeps its first time
        assert state.pending_create("person", "u-new") == "2026-11-28T10:00:05Z"
        state.record_outcome(
            "e1",
            "f:1",
            Outcome(status="sent", learned=Learned(identities={("person", "u-new"): 99})),
        )
        assert (state.pending_create("person", "u-new"), state.person_id("u-new")) == (None, 99)
        state.clear(NS)
        assert [state.person_id(u) for u in ("u-4", "u-5", "u-new")] == [None, None, None]


@pytest.mark.parametrize("entries", [1, 10_000])
def test_a_read_only_state_remembers_what_it_learned_past_its_budget(
    path: Path, entries: int
) -> None:
    with open_state(path) as state:
        state.learn(
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u-0"): 100}, lead_origins={100: frozenset({"rpd:a"})}
                ),
            )
        )
    before = path.read_bytes()
    with open_state(path, readonly=True, cache_entries=entries) as dry:
        for n, user in enumerate(USERS[1:], 1):
            dry.learn(
                Outcome(
                    status="sent",
                    learned=Learned(
                        identities={("person", user): n},
                        lead_origins={n: frozenset({f"rpd:{n}"})},
                        memberships={n: 1000 + n},
                        held_back=frozenset({("person", user)}),
                        recency={("person", n): {"name": f"2026-10-01T09:00:{n:02d}Z"}},
                    ),
                )
            )
        dry.learn(
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u-0"): None},
                    lead_origins={100: frozenset({"rpd:b"}), 7: None},
                ),
            )
        )
        assert dry.person_id("u-0") is None  # forgotten in memory shadows the file
        assert [dry.person_id(user) for user in USERS[1:]] == list(range(1, len(USERS)))
        assert dry.lead_origins(100) == frozenset({"rpd:a", "rpd:b"})
        assert dry.lead_origins(7) is None  # no longer complete
        assert dry.lead_origins(8) == frozenset({"rpd:8"})
        assert [dry.person_org(n) for n in (1, 49)] == [1001, 1049]
        assert dict(dry.times_at(("person", 2))) == {"name": "2026-10-01T09:00:02Z"}
        assert all(dry.held_back("person", user) for user in USERS[1:])
        assert not dry.held_back("person", "u-0")
    assert path.read_bytes() == before
