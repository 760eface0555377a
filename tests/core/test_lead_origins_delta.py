"""A person's record origins cost the same per track event whatever their number: a create
teaches only its origin (`Added`, a delta), which the cache adds where the person's list is known
complete and never takes for the whole list; "is this origin known" asks one origin (one row of
the state file), never the whole list. In memory, in a bounded table, and in the state file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers_core import (
    CONFIG,
    UNKNOWN,
    Call,
    create_lead,
    leads_of,
    ok,
    post,
    run,
    search_person,
    taught,
)

from rudder_pipedrive_cli.core.identity_cache import Added, IdentityStore
from rudder_pipedrive_cli.core.index import origins_key
from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.io.scratch import Spill
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import namespace_key

NS = namespace_key("https://api.pipedrive.com", "pd-token-5f0c1e9a7b3d4c2e8f6a")
STAMP = "2026-01-02T03:04:05Z"
DEAL_7 = origins_key("deal", 7)


def track(message_id: str) -> dict[str, object]:
    return {"type": "track", "event": "Signed Up", "userId": "u-1", "messageId": message_id}


def lead(message_id: str) -> dict[str, object]:
    return {"title": "Signed Up", "origin_id": f"rpd:{message_id}", "person_id": 42}


# --- the plan's outcome --------------------------------------------------------------------------


def test_a_create_for_a_person_whose_list_is_known_teaches_only_its_origin() -> None:
    known = IdentityStore()
    known.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 42})))
    known.learn(Outcome(status="sent", learned=Learned(lead_origins={42: frozenset({"rpd:old"})})))
    outcome = run(track("m-1"), [create_lead(lead("m-1"))], known=known)
    assert outcome.status == "sent"
    assert dict(taught(outcome).lead_origins) == {42: {"rpd:m-1"}}
    assert type(taught(outcome).lead_origins[42]) is Added  # a delta, not the list
    known.learn(outcome)
    assert known.lead_origins(42) == {"rpd:old", "rpd:m-1"}
    assert (known.has_origin(42, "rpd:m-1"), known.has_origin(42, "rpd:m-2")) == (True, False)
    replayed = run(track("m-1"), [], known=known)
    assert (replayed.status, replayed.reason) == ("skipped", "already done")


def test_a_create_after_this_events_listing_teaches_the_whole_list() -> None:
    outcome = run(
        track("m-1"),
        [search_person("u-1", 42), *leads_of(42, "rpd:old", None), create_lead(lead("m-1"))],
    )
    assert dict(taught(outcome).lead_origins) == {42: {"rpd:old", "rpd:m-1"}}
    # Complete: the cache may take it whole.
    assert type(taught(outcome).lead_origins[42]) is frozenset
    known = IdentityStore()
    known.learn(outcome)
    assert known.lead_origins(42) == {"rpd:old", "rpd:m-1"}


def test_a_reconcile_listing_after_a_lost_answer_is_a_complete_listing() -> None:
    known = IdentityStore()
    known.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 42})))
    known.learn(Outcome(status="sent", learned=Learned(lead_origins={42: frozenset({"rpd:old"})})))
    outcome = run(
        track("m-1"),
        [post("/v1/leads", lead("m-1"), UNKNOWN), *leads_of(42, "rpd:listed", "rpd:m-1")],
        known=known,
    )
    assert outcome.status == "sent"
    assert dict(taught(outcome).lead_origins) == {42: {"rpd:listed", "rpd:m-1"}}
    assert type(taught(outcome).lead_origins[42]) is frozenset
    known.learn(outcome)
    assert known.lead_origins(42) == {"rpd:old", "rpd:listed", "rpd:m-1"}


# --- the cache, whatever holds it ----------------------------------------------------------------


@pytest.fixture(params=["dict", "bounded", "state", "read-only state"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdentityStore]:
    """A cache where person 5's leads and deals are listed complete ({"rpd:a"}; none), 6's leads
    were once and no longer are, 7's never were. A bounded table of one entry moves keys out
    at every other key; a read-only state learns over its file's rows."""
    known: list[Outcome] = [
        Outcome(
            status="sent",
            learned=Learned(lead_origins={5: frozenset({"rpd:a"}), 6: frozenset({"rpd:z"})}),
        ),
        Outcome(
            status="sent",
            learned=Learned(lead_origins={origins_key("deal", 5): frozenset(), 6: None}),
        ),
    ]
    if request.param in ("dict", "bounded"):
        with Spill(entries=1, batch=1) as spill:
            cache = IdentityStore(spill.table if request.param == "bounded" else dict)
            for outcome in known:
                cache.learn(outcome)
            yield cache
        return
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, NS, now=lambda: STAMP) as state:
        for outcome in known:
            state.learn(outcome)
    with ReplayState.open(path, NS, now=lambda: STAMP, readonly="read-only" in request.param) as s:
        yield s


def learn(store: IdentityStore, **origins: frozenset[str] | None) -> None:
    keys = {"p5": 5, "p6": 6, "p7": 7, "d5": origins_key("deal", 5), "d7": DEAL_7}
    store.learn(
        Outcome(
            status="sent", learned=Learned(lead_origins={keys[k]: v for k, v in origins.items()})
        )
    )


def test_a_delta_is_added_where_the_list_is_complete_and_only_there(store: IdentityStore) -> None:
    learn(store, p5=Added({"rpd:b"}), p6=Added({"rpd:c"}), p7=Added({"rpd:d"}))
    learn(store, d5=Added({"rpd:e"}), d7=Added({"rpd:f"}))
    assert store.lead_origins(5) == {"rpd:a", "rpd:b"}
    assert store.lead_origins(origins_key("deal", 5)) == {"rpd:e"}
    # Not known complete: a delta is not the list, the next track lists them.
    assert (store.lead_origins(6), store.lead_origins(7), store.lead_origins(DEAL_7)) == (None,) * 3
    answers = [store.has_origin(5, o) for o in ("rpd:a", "rpd:b", "rpd:c", "rpd:e")]
    assert answers == [True, True, False, False]
    assert (store.has_origin(6, "rpd:c"), store.has_origin(6, "rpd:z")) == (None, None)
    assert (store.has_origin(7, "rpd:d"), store.has_origin(DEAL_7, "rpd:f")) == (None, None)


def test_a_list_read_does_not_change_when_the_store_learns_after(store: IdentityStore) -> None:
    read = store.lead_origins(5)  # the store's sets grow in place: what it hands out is a copy
    learn(store, p5=Added({"rpd:b"}))
    assert (read, store.lead_origins(5)) == ({"rpd:a"}, {"rpd:a", "rpd:b"})
    assert isinstance(read, frozenset)
    learn(store, p5=None)
    assert read == {"rpd:a"}


def test_a_listing_makes_the_list_complete_and_deltas_then_add(store: IdentityStore) -> None:
    learn(store, p7=frozenset({"rpd:l"}), p6=frozenset({"rpd:y"}))
    learn(store, p7=Added({"rpd:m"}), p6=Added({"rpd:x"}))
    learn(store, p7=Added({"rpd:n"}))
    assert store.lead_origins(7) == {"rpd:l", "rpd:m", "rpd:n"}
    # Listed again after it was no longer complete: the origins known before stay (true still),
    # in memory as in the state file.
    assert store.lead_origins(6) == {"rpd:x", "rpd:y", "rpd:z"}
    assert [store.has_origin(7, o) for o in ("rpd:l", "rpd:n", "rpd:o")] == [True, True, False]
    learn(store, p7=None)  # no longer complete: asked again, nothing taken from a delta
    learn(store, p7=Added({"rpd:o"}))
    assert (store.lead_origins(7), store.has_origin(7, "rpd:l")) == (None, None)


STEPS: list[dict[str, frozenset[str] | None]] = [
    {"p5": frozenset({"rpd:a"}), "d5": frozenset({"rpd:d"})},
    {"p5": Added({"rpd:b"})},
    {"p5": None, "d5": None},  # a merge with an unknown side: no longer complete
    {"p5": Added({"rpd:c"}), "p7": Added({"rpd:x"})},  # not complete: not added
    {"p5": frozenset({"rpd:b", "rpd:e"}), "d5": frozenset()},  # listed again, "rpd:a" deleted
    {"p5": Added({"rpd:f"})},
]


def answers_of(store: IdentityStore) -> list[list[object]]:
    said: list[list[object]] = []
    for step in STEPS:
        learn(store, **step)
        lists = [store.lead_origins(k) for k in (5, 6, 7, origins_key("deal", 5))]
        has = [store.has_origin(5, o) for o in ("rpd:a", "rpd:b", "rpd:c", "rpd:g")]
        said.append([*lists, *has, store.has_origin(origins_key("deal", 5), "rpd:d")])
    return said


def test_every_store_answers_alike_when_a_deleted_record_is_not_listed_again(
    tmp_path: Path,
) -> None:
    """A merge with an unknown side makes 5's lists incomplete (None); a later complete listing
    lacks "rpd:a" and "rpd:d" (a user deleted them in Pipedrive). rpd made or saw them: they stay
    made (a replay must not create them again), in memory as in the state file."""
    complete = [True, True, False, False, True]
    expected = [
        [{"rpd:a"}, None, None, {"rpd:d"}, True, False, False, False, True],
        [{"rpd:a", "rpd:b"}, None, None, {"rpd:d"}, *complete],
        [None] * 9,
        [None] * 9,
        [{"rpd:a", "rpd:b", "rpd:e"}, None, None, {"rpd:d"}, *complete],
        [{"rpd:a", "rpd:b", "rpd:e", "rpd:f"}, None, None, {"rpd:d"}, *complete],
    ]
    assert answers_of(IdentityStore()) == expected
    with Spill(entries=1, batch=1) as spill:
        assert answers_of(IdentityStore(spill.table)) == expected
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, NS, now=lambda: STAMP) as state:
        assert answers_of(state) == expected
    with ReplayState.open(tmp_path / "dry.sqlite", NS, now=lambda: STAMP):
        pass  # an empty state file, for dry-run to learn over in memory
    with ReplayState.open(tmp_path / "dry.sqlite", NS, now=lambda: STAMP, readonly=True) as dry:
        assert answers_of(dry) == expected


def test_a_lead_made_before_a_merge_is_not_made_again_when_its_listing_lacks_it() -> None:
    """Through the plans: after a merge left 42's list incomplete, the next track lists it
    again, and the lead of m-1 (deleted in Pipedrive since) is not there; a replay of m-1 is
    still `already done`, not a second lead."""
    known = IdentityStore()
    known.learn(Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 42})))
    known.learn(run(track("m-1"), [*leads_of(42, None), create_lead(lead("m-1"))], known=known))
    # A merge with an unlisted side.
    known.learn(Outcome(status="sent", learned=Learned(lead_origins={42: None})))
    listed_again = [*leads_of(42, "rpd:other"), create_lead(lead("m-2"))]
    known.learn(run(track("m-2"), listed_again, known=known))
    assert known.lead_origins(42) == {"rpd:m-1", "rpd:other", "rpd:m-2"}
    replayed = run(track("m-1"), [], known=known)
    assert (replayed.status, replayed.reason, replayed.writes) == ("skipped", "already done", ())


def test_a_merge_joins_lists_grown_by_deltas() -> None:
    known = IdentityStore()
    known.learn(
        Outcome(
            status="sent", learned=Learned(identities={("person", "old"): 7, ("person", "new"): 8})
        )
    )
    learn(known, p7=frozenset({"rpd:a"}))
    known.learn(Outcome(status="sent", learned=Learned(lead_origins={8: frozenset()})))
    known.learn(
        Outcome(
            status="sent", learned=Learned(lead_origins={7: Added({"rpd:b"}), 8: Added({"rpd:c"})})
        )
    )
    alias = {"type": "alias", "previousId": "old", "userId": "new"}
    merge = Call(
        method="PUT", path="/v1/persons/7/merge", body={"merge_with_id": 8}, response=ok({"id": 8})
    )
    outcome = run(alias, [merge], config=CONFIG, known=known)
    assert dict(taught(outcome).lead_origins) == {8: {"rpd:a", "rpd:b", "rpd:c"}}
    known.learn(outcome)
    assert known.lead_origins(8) == {"rpd:a", "rpd:b", "rpd:c"}


# --- the state file: its rows, and one row per question ------------------------------------------


def rows(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    with sqlite3.connect(path) as db:
        origins = db.execute("SELECT person_id, origin_id FROM lead_origins ORDER BY 1, 2")
        listed = db.execute("SELECT person_id FROM leads_listed ORDER BY 1")
        return list(origins), [row[0] for row in listed]


def statements(state: ReplayState, action: Callable[[], object]) -> list[str]:
    seen: list[str] = []
    db = state._store.db._db  # the connection under the state's guard
    db.set_trace_callback(seen.append)
    try:
        action()
    finally:
        db.set_trace_callback(None)
    return seen


def test_the_state_file_adds_one_row_per_created_record_and_asks_one_row(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with ReplayState.open(path, NS, now=lambda: STAMP) as state:
        learn(state, p5=frozenset({"rpd:a", "rpd:b"}), p7=Added({"rpd:x"}))
        added = statements(state, lambda: learn(state, p5=Added({"rpd:c"})))
        asked = statements(state, lambda: state.has_origin(5, "rpd:c"))
    assert rows(path) == ([("i:5", "rpd:a"), ("i:5", "rpd:b"), ("i:5", "rpd:c")], ["i:5"])
    assert len(asked) == 1 and "origin_id = " in asked[0]  # not the person's whole list
    inserts = [s for s in added if s.startswith("INSERT")]
    assert inserts == [
        f"INSERT OR IGNORE INTO lead_origins (ns, person_id, origin_id) VALUES ('{NS}', 'i:5', "
        "'rpd:c')"
    ]
    with ReplayState.open(path, NS, now=lambda: STAMP, readonly=True) as dry:
        learn(dry, p5=Added({"rpd:d"}), p7=Added({"rpd:y"}))
        assert dry.lead_origins(5) == {"rpd:a", "rpd:b", "rpd:c", "rpd:d"}
        assert (dry.has_origin(5, "rpd:d"), dry.lead_origins(7)) == (True, None)
        asked = statements(dry, lambda: dry.has_origin(5, "rpd:b"))
        assert len(asked) == 1 and "origin_id = " in asked[0]
    assert rows(path) == ([("i:5", "rpd:a"), ("i:5", "rpd:b"), ("i:5", "rpd:c")], ["i:5"])
