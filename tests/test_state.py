"""SPEC 5 and 8: the replay state keeps identities, the journal and writes in flight durably,
per namespace, never the token, and refuses files it must not touch without changing them."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeClock

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Learned, Outcome, Plan
from rudder_pipedrive_cli.core.rules import SKIP_REASON
from rudder_pipedrive_cli.io import state_aliases, state_file
from rudder_pipedrive_cli.io.catalog_cache import CachedFields
from rudder_pipedrive_cli.io.paths import default_state_path
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import account_namespace, namespace_key, normalised_url
from rudder_pipedrive_cli.io.state_file import StateUnusable, discard_leftovers, discard_state
from rudder_pipedrive_cli.io.state_schema import REVISION
from rudder_pipedrive_cli.io.state_summary import NamespaceSummary, RunSummary, summaries
from rudder_pipedrive_cli.replay import journaled

TOKEN = "pd-token-5f0c1e9a7b3d4c2e8f6a"
NS = namespace_key("https://api.pipedrive.com", TOKEN)
OTHER_NS = namespace_key("http://127.0.0.1:8787", "sandbox-token")
STAMP = "2026-01-02T03:04:05Z"
# The journal with each row's source spelled out again (schema 2 keeps its file's name apart).
JOURNALED, SOURCE = "journal JOIN source_files ON id = file", "name || place"
LEAD = ApiRequest(
    method="POST", path="/v1/leads", endpoint="/v1/leads", stage="create lead", body={"title": "t"}
)
PATCH_5 = ApiRequest(
    method="PATCH",
    path="/api/v2/persons/5",
    endpoint="/api/v2/persons/{id}",
    stage="update person",
    body={"name": "Ada"},
)
SENT = Outcome(status="sent")
OK = ApiResponse(status=201, data={"id": "lead-1"})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".rpd" / "state.sqlite"


def open_state(path: Path, namespace: str = NS, **kwargs: Any) -> ReplayState:
    return ReplayState.open(path, namespace, now=lambda: STAMP, **kwargs)


@pytest.fixture
def state(path: Path) -> Iterator[ReplayState]:
    with open_state(path) as opened:
        yield opened


def in_flight(state: ReplayState) -> int:
    """The writes left in flight in `state`'s namespace, as `rpd state show` counts them."""
    return sum(held.inflight for held in state.summary() if held.namespace == state.namespace)


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """What another process would see: only committed data."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_default_path_is_beside_the_config_or_in_the_working_directory() -> None:
    assert default_state_path(Path("/etc/rpd/prod.toml")) == Path("/etc/rpd/.rpd/state.sqlite")
    assert default_state_path(None) == Path(".rpd/state.sqlite")


def test_namespace_is_base_url_and_a_salted_token_fingerprint() -> None:
    assert NS == "https://api.pipedrive.com#7f87dc59a5ac3bce"
    assert namespace_key("https://api.pipedrive.com/", TOKEN) == NS
    assert namespace_key("https://api.pipedrive.com", TOKEN + "x") != NS
    assert TOKEN not in NS


def test_state_implements_known() -> None:
    def reads(known: IdentityStore) -> None:
        assert known.person_id("nobody") is None

    with ReplayState.open(Path("/nonexistent/state.sqlite"), NS, readonly=True) as state:
        reads(state)


def test_a_persons_organization_is_replaced_and_forgotten_as_answers_say(path: Path) -> None:
    with open_state(path) as state:
        state.learn(Outcome(status="sent", learned=Learned(memberships={5: 77, 6: 78})))
    with open_state(path) as state:
        # Moved; in none.
        state.learn(Outcome(status="sent", learned=Learned(memberships={5: 79, 6: None})))
        assert (state.person_org(5), state.person_org(6)) == (79, None)
    with open_state(path) as state:
        assert (state.person_org(5), state.person_org(6)) == (79, None)
    assert rows(path, "SELECT key, pd_id FROM identities WHERE kind = 'member'") == [
        ("i:5", "i:79")
    ]


def test_identities_round_trip_with_int_and_string_ids(path: Path) -> None:
    with open_state(path) as state:
        state.learn(
            Outcome(
                status="sent",
                learned=Learned(
                    identities={
                        ("person", "u-1"): 5,
                        ("person", "u-2"): "{person:u-2}",
                        ("org", "g-1"): 77,
                        ("org", "123"): "9",
                    },
                    memberships={5: 77, "5": "x"},
                ),
            )
        )
        assert state.person_id("u-1") == 5  # visible before the batch is committed
        assert state.person_org(5) == 77
        assert state.person_org("5") == "x"  # 5 and "5" are different ids
        assert state.person_org(6) is None
        assert state.org_this_run(5) == 77  # this run learned it
    with open_state(path) as state:
        assert state.person_id("u-1") == 5
        assert state.person_id("u-2") == "{person:u-2}"
        assert state.org_id("g-1") == 77
        assert state.org_id("123") == "9"
        assert state.person_id("g-1") is None  # kinds do not mix
        # A person's organization is kept for later runs' deals, activities and notes, while a
        # group links again what an earlier run linked (Pipedrive may have moved the person).
        assert (state.person_org(5), state.person_org("5")) == (77, "x")
        assert state.org_this_run(5) is None
    assert sorted(rows(path, "SELECT kind, key, pd_id, updated_at FROM identities")) == [
        ("member", "i:5", "i:77", STAMP),
        ("member", "s:5", "s:x", STAMP),
        ("org", "123", "s:9", STAMP),
        ("org", "g-1", "i:77", STAMP),
        ("person", "u-1", "i:5", STAMP),
        ("person", "u-2", "s:{person:u-2}", STAMP),
    ]


def test_learning_none_forgets_and_a_new_id_replaces(state: ReplayState) -> None:
    state.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "u"): 5, ("person", "v"): 6}))
    )
    state.learn(
        Outcome(
            status="sent", learned=Learned(identities={("person", "u"): None, ("person", "v"): 8})
        )
    )
    assert state.person_id("u") is None
    assert state.person_id("v") == 8
    state.learn(
        Outcome(status="sent", learned=Learned(identities={("person", "never-known"): None}))
    )
    assert state.person_id("never-known") is None


@pytest.mark.parametrize("readonly", [False, True])
def test_identities_follow_merges_across_runs(path: Path, readonly: bool) -> None:
    # u-a was merged into u-b's person (2), which was then merged into u-c's (3).
    with open_state(path) as state:
        state.learn(
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u-a"): 2, ("person", "u-b"): 2, ("person", "u-c"): 3},
                    merged={1: 2},
                ),
            )
        )
    with open_state(path, readonly=readonly) as state:
        state.learn(
            Outcome(
                status="sent", learned=Learned(identities={("person", "u-b"): 3}, merged={2: 3})
            )
        )
        assert [state.person_id(u) for u in ("u-a", "u-b", "u-c")] == [3, 3, 3]
        assert state.summary()[0].identities == {"person": 3, "org": 0}  # merges not counted
    with open_state(path) as state:
        assert state.person_id("u-a") == (2 if readonly else 3)  # read-only: nothing written


def test_a_re_key_counts_as_a_merge_for_ordering_in_this_run_and_the_next(path: Path) -> None:
    # An alias that re-keyed u-a's person to u-b (no merge): both name person 6 from now on.
    with open_state(path) as state:
        state.learn(
            Outcome(
                status="sent",
                learned=Learned(identities={("person", "u-a"): 6, ("person", "u-c"): 7}),
            )
        )
        assert not state.merges
        state.learn(
            Outcome(
                status="sent",
                learned=Learned(identities={("person", "u-a"): 6, ("person", "u-b"): 6}),
            )
        )
        assert state.merges
    with open_state(path) as state:
        assert state.merges
        assert (state.person_id("u-a"), state.person_id("u-b")) == (6, 6)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_pending_create_is_kept_across_runs_until_settled(path: Path, readonly: bool) -> None:
    sent = "2026-11-28T10:00:05Z"
    with open_state(path) as state:
        assert state.pending_create("person", "u-1") is None
        state.learn(
            Outcome(
                status="failed",
                reason="x",
                learned=Learned(pending_creates={("person", "u-1"): sent}),
            )
        )
        assert state.pending_create("person", "u-1") == sent
    with open_state(path, readonly=readonly) as state:
        assert state.pending_create("person", "u-1") == sent
        assert state.pending_create("org", "u-1") is None  # kinds do not mix
        assert state.person_id("u-1") is None  # not an identity
        assert state.summary()[0].identities == {"person": 0, "org": 0}
        state.learn(
            Outcome(status="sent", learned=Learned(pending_creates={("person", "u-1"): None}))
        )
        assert state.pending_create("person", "u-1") is None
    with open_state(path) as state:
        assert state.pending_create("person", "u-1") == (sent if readonly else None)


def test_learning_the_record_settles_a_pending_create(state: ReplayState) -> None:
    sent = "2026-11-28T10:00:05Z"
    state.learn(
        Outcome(
            status="failed", reason="x", learned=Learned(pending_creates={("org", "g-1"): sent})
        )
    )
    state.learn(
        Outcome(
            status="sent", learned=Learned(identities={("org", "g-1"): 9, ("person", "g-1"): 3})
        )
    )
    assert state.pending_create("org", "g-1") is None
    assert state.org_id("g-1") == 9


@pytest.mark.parametrize("readonly", [False, True])
def test_a_lead_list_made_incomplete_is_listed_again(path: Path, readonly: bool) -> None:
    with open_state(path) as state:
        state.learn(
            Outcome(status="sent", learned=Learned(lead_origins={5: frozenset({"rpd:m1"})}))
        )
    with open_state(path, readonly=readonly) as state:
        # A merge moved leads in.
        state.learn(Outcome(status="sent", learned=Learned(lead_origins={5: None})))
        assert state.lead_origins(5) is None
        # Listed.
        state.learn(
            Outcome(status="sent", learned=Learned(lead_origins={5: frozenset({"rpd:m2"})}))
        )
        assert state.lead_origins(5) == {"rpd:m1", "rpd:m2"}


def test_a_loop_of_merges_in_corrupt_data_ends(state: ReplayState) -> None:
    state.learn(
        Outcome(
            status="sent", learned=Learned(identities={("person", "u"): 1}, merged={1: 2, 2: 1})
        )
    )
    assert state.person_id("u") in (1, 2)


def test_lead_origins_distinguish_never_listed_from_no_leads(path: Path) -> None:
    with open_state(path) as state:
        assert state.lead_origins(5) is None
        state.learn(Outcome(status="sent", learned=Learned(lead_origins={5: frozenset()})))
        assert state.lead_origins(5) == frozenset()
        state.learn(
            Outcome(status="sent", learned=Learned(lead_origins={5: frozenset({"rpd:a", "rpd:b"})}))
        )
        state.learn(Outcome(status="sent", learned=Learned(lead_origins={5: frozenset({"rpd:c"})})))
        state.learn(
            Outcome(status="sent", learned=Learned(lead_origins={"5": frozenset({"rpd:z"})}))
        )
    with open_state(path) as state:
        assert state.lead_origins(5) == frozenset({"rpd:a", "rpd:b", "rpd:c"})
        assert state.lead_origins("5") == frozenset({"rpd:z"})
        assert state.lead_origins(6) is None


def test_record_outcome_journals_the_latest_outcome(path: Path) -> None:
    with open_state(path) as state:
        assert state.journal_status("e1") is None
        failed = Outcome(status="failed", reason="HTTP 500", retryable=True)
        state.record_outcome("e1", "in.ndjson:1", failed)
        assert state.journal_status("e1") == "failed"
        state.record_outcome("e1", "retry.ndjson:4", Outcome(status="unchanged"))
        state.record_outcome("e2", "in.ndjson:2", Outcome(status="skipped", reason="anonymous"))
        assert state.journal_status("e1") == "unchanged"
    assert sorted(
        rows(path, f"SELECT event_id, status, reason, {SOURCE}, finished_at FROM {JOURNALED}")
    ) == [
        ("e1", "unchanged", "", "retry.ndjson:4", STAMP),
        ("e2", "skipped", "anonymous", "in.ndjson:2", STAMP),
    ]


def test_record_outcome_learns_what_the_event_taught(state: ReplayState) -> None:
    state.record_outcome(
        "e1",
        "f:1",
        Outcome(
            status="sent",
            learned=Learned(
                identities={("person", "u"): 5},
                lead_origins={5: frozenset({"rpd:e1"})},
                memberships={5: 9},
            ),
        ),
    )
    assert (state.person_id("u"), state.person_org(5)) == (5, 9)
    assert state.lead_origins(5) == frozenset({"rpd:e1"})


def test_a_create_or_merge_begun_is_left_to_settle_until_its_outcome_is_known(path: Path) -> None:
    # Journaled before the write is sent: after a kill -9 any event of the identity settles it.
    def creating(user: str) -> ApiRequest:
        return ApiRequest(
            method="POST",
            path="/api/v2/persons",
            endpoint="/api/v2/persons",
            stage="create person",
            body={"name": "Ada"},
            creates=("person", user),
        )

    create = creating("u-1")
    merge = ApiRequest(
        method="PUT",
        path="/v1/persons/1/merge",
        endpoint="/v1/persons/{id}/merge",
        stage="merge persons",
        body={"merge_with_id": 2},
        merges=(1, 2),
    )
    with open_state(path) as state:
        state.begin_write("e1", create, "2026-01-02T03:04:00Z")
        state.begin_write("e1", create, "2026-01-02T03:04:09Z")  # a repeat keeps the first time
        state.begin_write("e2", merge, "2026-01-02T03:04:01Z")
    with open_state(path) as state:  # the run was killed: nothing more was recorded
        assert state.pending_create("person", "u-1") == "2026-01-02T03:04:00Z"
        assert state.merging_into(1) == 2
        state.record_outcome(
            "e1", "f", Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 7}))
        )
        state.record_outcome("e2", "f", Outcome(status="sent", learned=Learned(merged={1: 2})))
        assert (state.pending_create("person", "u-1"), state.merging_into(1)) == (None, None)
        state.begin_write("e3", creating("u-3"), STAMP)
        refused = Outcome(
            status="failed",
            reason="create person refused",
            learned=Learned(pending_creates={("person", "u-3"): None}),
        )
        state.record_outcome("e3", "f", refused)  # refused: never made, nothing to settle
        assert state.pending_create("person", "u-3") is None


def test_begin_write_is_committed_before_it_returns_with_the_buffer(path: Path) -> None:
    with open_state(path, batch_size=1000) as state:
        state.record_outcome("e0", "f:1", SENT)
        assert rows(path, "SELECT event_id FROM journal") == []  # still buffered
        state.begin_write("e1", LEAD, "2026-01-02T03:04:00Z")
        assert rows(path, "SELECT event_id, method, endpoint, path, sent_at FROM inflight") == [
            ("e1", "POST", "/v1/leads", "/v1/leads", "2026-01-02T03:04:00Z")
        ]
        assert rows(path, "SELECT event_id FROM journal") == [("e0",)]
        assert in_flight(state) == 1


def test_record_outcome_clears_in_flight_rows_in_the_same_transaction(path: Path) -> None:
    with open_state(path, batch_size=1000) as state:
        state.begin_write("e1", LEAD, "2026-01-02T03:04:00Z")
        state.begin_write("e1", PATCH_5, "2026-01-02T03:04:01Z")
        state.begin_write("e2", LEAD, "2026-01-02T03:04:02Z")
        state.record_outcome("e1", "f:1", SENT)
        assert in_flight(state) == 1
        # Not committed yet: another reader sees neither the journal row nor the deletion.
        assert rows(path, "SELECT count(*) FROM inflight") == [(3,)]
        assert rows(path, "SELECT count(*) FROM journal") == [(0,)]
        state.flush()
        assert rows(path, "SELECT event_id FROM inflight") == [("e2",)]
        assert rows(path, "SELECT event_id, status FROM journal") == [("e1", "sent")]


def test_a_failed_event_keeps_its_writes_in_flight_for_the_retry(path: Path) -> None:
    with open_state(path) as state:
        state.begin_write("e1", LEAD, "2026-01-02T03:04:00Z")
        lost = Outcome(status="failed", reason="lead lookup: HTTP 503", retryable=True)
        state.record_outcome("e1", "f:1", lost)
    with open_state(path) as retry:
        assert retry.journal_status("e1") == "failed"
        assert retry.pending_write("e1", LEAD) == "2026-01-02T03:04:00Z"
        retry.record_outcome("e1", "f:1", SENT)
        assert in_flight(retry) == 0


def test_a_write_left_in_flight_is_handed_back_once(path: Path) -> None:
    with open_state(path) as interrupted:
        interrupted.begin_write("e1", LEAD, "2026-01-02T03:04:00Z")
        interrupted.begin_write("e1", LEAD, "2026-01-02T03:09:00Z")  # a retry keeps the first
        assert interrupted.pending_write("e1", LEAD) is None  # its own writes are not left over
    with open_state(path) as rerun:
        assert in_flight(rerun) == 1
        assert rerun.pending_write("e1", PATCH_5) is None  # another write of the same event
        assert rerun.pending_write("e2", LEAD) is None  # the same write of another event
        assert rerun.pending_write("e1", LEAD) == "2026-01-02T03:04:00Z"
        assert rerun.pending_write("e1", LEAD) is None
        # Still in flight until the event is done: a rerun that dies or fails while reconciling
        # must reconcile again next time, not resend.
        assert in_flight(rerun) == 1
    with open_state(path) as died_while_reconciling:
        assert died_while_reconciling.pending_write("e1", LEAD) == "2026-01-02T03:04:00Z"
        died_while_reconciling.record_outcome(
            "e1", "f:1", Outcome(status="failed", reason="lead listing: HTTP 503", retryable=True)
        )
    with open_state(path) as last:
        assert last.pending_write("e1", LEAD) == "2026-01-02T03:04:00Z"
        last.record_outcome("e1", "f:1", SENT)
        assert in_flight(last) == 0


def test_outcomes_are_batched_by_count(path: Path) -> None:
    with open_state(path, batch_size=3, batch_seconds=1e9) as state:
        state.record_outcome("e1", "f:1", SENT)
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u"): 1})))
        assert rows(path, "SELECT count(*) FROM journal") == [(0,)]
        state.record_outcome("e2", "f:2", SENT)
        assert rows(path, "SELECT count(*) FROM journal") == [(2,)]
        assert rows(path, "SELECT key FROM identities") == [("u",)]
        state.record_outcome("e3", "f:3", SENT)
        assert rows(path, "SELECT count(*) FROM journal") == [(2,)]
    assert rows(path, "SELECT count(*) FROM journal") == [(3,)]  # close flushes


def test_outcomes_are_batched_by_time(path: Path) -> None:
    clock = FakeClock()
    with open_state(path, batch_size=1000, batch_seconds=2.0, clock=clock) as state:
        state.record_outcome("e1", "f:1", SENT)
        clock.now = 1.9
        state.record_outcome("e2", "f:2", SENT)
        assert rows(path, "SELECT count(*) FROM journal") == [(0,)]
        clock.now = 2.0
        state.record_outcome("e3", "f:3", SENT)
        assert rows(path, "SELECT count(*) FROM journal") == [(3,)]
        clock.now = 3.0
        state.record_outcome("e4", "f:4", SENT)  # a new batch opened at 3.0
        assert rows(path, "SELECT count(*) FROM journal") == [(3,)]
        state.flush()
        assert rows(path, "SELECT count(*) FROM journal") == [(4,)]


def test_close_after_an_exception_keeps_what_was_recorded(path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), open_state(path) as state:
        state.record_outcome("e1", "f:1", SENT)
        raise KeyboardInterrupt
    assert rows(path, "SELECT event_id FROM journal") == [("e1",)]


def test_the_file_is_private_and_the_lock_goes_with_the_run(path: Path) -> None:
    with open_state(path) as state:
        state.record_outcome("e1", "f:1", SENT)
        assert path.with_name("state.sqlite.lock").read_text() == str(os.getpid())
        assert path.with_name("state.sqlite-wal").stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["state.sqlite"]


def test_two_namespaces_in_one_file_never_see_each_other(path: Path) -> None:
    with open_state(path, NS) as prod:
        prod.record_outcome(
            "e1", "f:1", Outcome(status="sent", learned=Learned(identities={("person", "u"): 5}))
        )
        prod.begin_write("e2", LEAD, STAMP)
        prod.put_fields("persons", [{"key": "a"}])
    with open_state(path, OTHER_NS) as sandbox:
        assert sandbox.person_id("u") is None
        assert sandbox.journal_status("e1") is None
        assert sandbox.pending_write("e2", LEAD) is None
        assert in_flight(sandbox) == 0
        assert sandbox.get_fields("persons") is None
        sandbox.record_outcome("e1", "f:1", Outcome(status="failed", reason="x"))
        sandbox.learn(Outcome(status="sent", learned=Learned(identities={("person", "u"): 1})))
    with open_state(path, NS) as prod:
        assert prod.person_id("u") == 5
        assert prod.journal_status("e1") == "sent"
        assert in_flight(prod) == 1
        cleared = prod.clear(OTHER_NS)
        assert [summary.namespace for summary in cleared] == [OTHER_NS]
        assert [summary.namespace for summary in prod.summary()] == [NS]
        assert prod.person_id("u") == 5


def test_runs_and_summary(path: Path) -> None:
    with open_state(path) as state:
        assert state.summary() == []
        state.start_run()
        state.record_outcome(
            "e1",
            "f:1",
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u"): 5, ("org", "g"): 9},
                    lead_origins={5: frozenset({"rpd:e1", "rpd:old"})},
                    memberships={5: 9},
                ),
            ),
        )
        state.record_outcome("e2", "f:2", Outcome(status="failed", reason="HTTP 500"))
        state.record_outcome("e3", "f:3", Outcome(status="failed", reason="HTTP 500"))
        state.begin_write("e4", LEAD, STAMP)
        state.finish_run({"read": 4, "sent": 1, "failed": 2})
        state.start_run()  # an interrupted second run
        assert state.summary() == [
            NamespaceSummary(
                namespace=NS,
                base_url="https://api.pipedrive.com",
                fingerprint="7f87dc59a5ac3bce",
                identities={"person": 1, "org": 1},
                memberships=1,
                leads_listed={"lead": 1, "deal": 0, "activity": 0, "note": 0},
                lead_origins={"lead": 2, "deal": 0, "activity": 0, "note": 0},
                journal={"sent": 1, "unchanged": 0, "skipped": 0, "failed": 2},
                inflight=1,
                to_settle=0,
                last_run=RunSummary(started_at=STAMP, finished_at=None, counts=None, latest=True),
                inflight_events=1,
            )
        ]
    assert rows(path, "SELECT ns, started_at, finished_at, counts_json FROM runs") == [
        (NS, STAMP, STAMP, '{"read":4,"sent":1,"failed":2}'),
        (NS, STAMP, None, None),
    ]


def test_finish_run_needs_start_run(state: ReplayState) -> None:
    with pytest.raises(RuntimeError, match=r"finish_run\(\) without start_run\(\)"):
        state.finish_run({})


def test_field_listing_cache_round_trip(path: Path) -> None:
    payload = [{"key": "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48", "name": "RudderStack userId"}]
    with open_state(path) as state:
        assert state.get_fields("persons") is None
        state.put_fields("persons", payload)
    with open_state(path) as state:
        assert state.get_fields("persons") == CachedFields(fetched_at=STAMP, payload=payload)
        assert state.get_fields("organizations") is None


def test_clear_all_namespaces(path: Path) -> None:
    with open_state(path, OTHER_NS) as sandbox:
        sandbox.record_outcome(
            "e1", "f:1", Outcome(status="sent", learned=Learned(identities={("org", "g"): 1}))
        )
    with open_state(path) as state:
        taught = Outcome(
            status="sent", learned=Learned(identities={("org", "g"): 2}, memberships={5: 2})
        )
        state.record_outcome("e1", "f:1", taught)
        cleared = state.clear()
        assert sorted(summary.namespace for summary in cleared) == sorted([NS, OTHER_NS])
        assert state.summary() == []
        assert (state.org_id("g"), state.person_org(5), state.org_this_run(5)) == (None,) * 3
        state.record_outcome("e2", "f:2", SENT)  # still usable
    assert rows(path, "SELECT ns, event_id FROM journal") == [(NS, "e2")]


def test_the_input_aliases_are_kept_the_first_of_each_previous_id(path: Path) -> None:
    """send's first pass writes them (replay.py's `input_aliases`); a resumed run reads those of
    the objects it finished from here. The table is made on first use: a file without it (an
    older rpd's) reads as holding none."""
    with open_state(path, batch_size=1000) as state:
        aliases = state.input_aliases()
        assert ("u-old" in aliases, aliases.get("u-old"), len(aliases), list(aliases)) == (
            False,
            None,
            0,
            [],
        )
        assert rows(path, "SELECT name FROM sqlite_master WHERE name = 'input_aliases'") == []
        aliases.setdefault("u-old", "u-new")
        aliases.setdefault("u-old", "u-other")  # a later alias of the previousId: the first stays
        aliases.setdefault("u-new", "u-last")
        # In the open batch, with the object they were read from: committed with it or before.
        state.finish_object("s3://b/k.json.gz", "etag:abc")
        made = "SELECT name FROM sqlite_master WHERE name IN ('input_aliases', 'objects_done')"
        assert rows(path, made) == []  # neither committed yet
        state.flush()
        assert rows(path, "SELECT * FROM input_aliases ORDER BY previous_id") == [
            (NS, "u-new", "u-last"),
            (NS, "u-old", "u-new"),
        ]
    with open_state(path) as state:
        assert dict(state.input_aliases()) == {"u-old": "u-new", "u-new": "u-last"}
    with open_state(path, OTHER_NS) as other:
        assert dict(other.input_aliases()) == {}


def test_the_input_aliases_are_read_whole_a_page_at_a_time(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_aliases, "PAGE", 2)
    with open_state(path) as state:
        aliases = state.input_aliases()
        kept = {"": "u-0", "a": "u-1", "b": "u-2", "c": "u-3", "d": "u-4"}
        for previous_id, user_id in kept.items():
            aliases[previous_id] = user_id
        assert (dict(aliases.items()), sorted(aliases), len(aliases)) == (kept, sorted(kept), 5)
        del aliases["a"]
        with pytest.raises(KeyError):
            del aliases["a"]
        assert dict(aliases) == {k: v for k, v in kept.items() if k != "a"}


def test_the_input_aliases_go_with_their_namespace_and_are_cleared_with_it(path: Path) -> None:
    with open_state(path, OTHER_NS) as sandbox:
        sandbox.input_aliases()["u-a"] = "u-b"
    with open_state(path) as state:
        state.record_outcome("e1", "f:1", SENT)
        aliases = state.input_aliases()
        aliases["u-old"] = "u-new"
        # Keyed on the account once Pipedrive says which: what was keyed on the URL moves in.
        state.use_account("42", "https://api.pipedrive.com", TOKEN)
        assert dict(aliases) == {"u-old": "u-new"}
        moved = rows(path, "SELECT DISTINCT ns FROM input_aliases")
        assert sorted(moved) == sorted([(OTHER_NS,), (account_namespace("42", TOKEN),)])
        state.clear(state.namespace)
        assert dict(aliases) == {}
        assert rows(path, "SELECT ns, previous_id FROM input_aliases") == [(OTHER_NS, "u-a")]
        state.clear()
        assert rows(path, "SELECT count(*) FROM input_aliases") == [(0,)]


@pytest.mark.parametrize("namespace", [None, OTHER_NS])
def test_cleared_data_is_gone_from_the_bytes(path: Path, namespace: str | None) -> None:
    with open_state(path, OTHER_NS) as sandbox:
        for number in range(200):
            sandbox.record_outcome(
                f"evt-{number}",
                f"customers.ndjson:{number}",
                Outcome(
                    status="sent",
                    learned=Learned(identities={("person", f"ada{number}@example.com"): 1}),
                ),
            )
            sandbox.input_aliases()[f"anon{number}@example.com"] = f"ada{number}@example.com"
    with open_state(path) as state:
        state.record_outcome("e1", "f:1", SENT)
        state.clear(namespace)
        files = [path, path.with_name("state.sqlite-wal")]
        assert all(b"@example.com" not in file.read_bytes() for file in files)
        assert all(b"customers.ndjson" not in file.read_bytes() for file in files)


def test_readonly_never_creates_the_file_and_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / ".rpd" / "state.sqlite"
    with ReplayState.open(path, NS, readonly=True) as state:
        assert state.person_id("u") is None
        assert state.journal_status("e1") is None
        assert state.summary() == []
        state.learn(
            Outcome(status="sent", learned=Learned(identities={("person", "u"): "{person:u}"}))
        )
        assert state.person_id("u") == "{person:u}"
        with pytest.raises(RuntimeError, match="is open read-only"):
            state.record_outcome("e1", "f:1", SENT)
        with pytest.raises(RuntimeError, match="is open read-only"):
            state.begin_write("e1", LEAD, STAMP)
    assert list(tmp_path.iterdir()) == []


def test_readonly_reads_the_file_learns_in_memory_and_never_writes(path: Path) -> None:
    with open_state(path) as state:
        state.record_outcome(
            "e1",
            "f:1",
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u"): 5, ("person", "v"): 6},
                    lead_origins={5: frozenset({"rpd:a"})},
                ),
            ),
        )
        state.begin_write("e2", LEAD, STAMP)
    before = path.read_bytes()
    with ReplayState.open(path, NS, readonly=True) as dry:
        assert dry.journal_status("e1") == "sent"
        dry.learn(
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u"): None, ("person", "w"): 7},
                    lead_origins={5: frozenset({"rpd:b"}), 8: frozenset()},
                    memberships={5: 3},
                ),
            )
        )
        assert dry.person_id("u") is None  # forgotten in memory shadows the file
        assert (dry.person_id("v"), dry.person_id("w"), dry.person_org(5)) == (6, 7, 3)
        assert dry.lead_origins(5) == frozenset({"rpd:a", "rpd:b"})
        assert dry.lead_origins(8) == frozenset()
        # dry-run shows the rerun reconciling it (once), and writes nothing of that either.
        assert dry.pending_write("e2", LEAD) == STAMP
        assert dry.pending_write("e2", LEAD) is None
        assert in_flight(dry) == 1
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["state.sqlite"]  # no -wal, -shm left
    with open_state(path) as state:
        assert state.person_id("u") == 5
        assert state.person_id("w") is None


def test_a_read_only_state_answers_as_the_writable_one_after_the_same_outcomes(
    path: Path,
) -> None:
    # One identity store over the file's rows: a read-only state keeps what it learns in memory
    # over them, and answers as the writable state that wrote it would (lead lists made
    # incomplete then listed again keep their stored origins; recency keeps the newest time;
    # merges, pending creates and merges settle the same way), without writing a byte.
    with open_state(path) as state:
        state.record_outcome(
            "e1",
            "f:1",
            Outcome(
                status="sent",
                learned=Learned(
                    identities={("person", "u"): 5, ("person", "v"): 6},
                    lead_origins={5: frozenset({"rpd:a"}), 6: frozenset({"rpd:z"})},
                    pending_creates={("org", "g"): STAMP},
                    pending_merges={6: 9},
                    recency={("person", 5): {"name": "2024-05-01T12:00:00Z"}},
                ),
            ),
        )
    copy = path.with_name("copy.sqlite")
    copy.write_bytes(path.read_bytes())
    taught = [
        Outcome(status="sent", learned=Learned(lead_origins={5: None})),
        Outcome(status="sent", learned=Learned(lead_origins={5: frozenset({"rpd:b"})})),
        Outcome(
            status="sent",
            learned=Learned(
                recency={("person", 5): {"name": "2024-04-01T00:00:00Z", "email": "2024-06-01Z"}}
            ),
        ),
        Outcome(status="sent", learned=Learned(identities={("org", "g"): 11}, merged={5: 6})),
    ]

    def answers(store: IdentityStore) -> tuple[object, ...]:
        return (
            store.person_id("u"),
            store.person_id("v"),
            store.org_id("g"),
            store.lead_origins(5),
            store.lead_origins(6),
            dict(store.times_at(("person", 5)) or {}),
            store.pending_create("org", "g"),
            store.merging_into(6),
            store.merges,
        )

    before = path.read_bytes()
    with ReplayState.open(path, NS, readonly=True) as dry:
        for outcome in taught:
            dry.learn(outcome)
        read_only = answers(dry)
    assert path.read_bytes() == before
    with ReplayState.open(copy, NS) as writable:
        for number, outcome in enumerate(taught):
            writable.record_outcome(f"t{number}", "f:2", outcome)
        assert answers(writable) == read_only
    assert read_only == (
        6,
        6,
        11,
        frozenset({"rpd:a", "rpd:b"}),
        frozenset({"rpd:z"}),
        {"name": "2024-05-01T12:00:00Z", "email": "2024-06-01Z"},
        None,
        9,
        True,
    )


@pytest.mark.parametrize("link_folder_writable", [True, False])
def test_a_symlinked_state_in_a_folder_rpd_cannot_write_is_judged_by_the_real_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link_folder_writable: bool
) -> None:
    # SQLite resolves a symlinked database's name (3.40: the -wal and -shm of names/state.sqlite
    # -> real/state.sqlite are made in real/), and rpd opens it resolved. A read-only open in a
    # folder rpd cannot write reads the file as it is unless its -wal holds changes; that was
    # judged by the link's folder: writable, the open failed with SQLite's error instead; not,
    # the -wal was looked for beside the link, and the state was read without its last changes.
    real = tmp_path / "real" / "state.sqlite"
    open_state(real).close()
    (tmp_path / "real" / "state.sqlite-wal").write_bytes(b"\0" * 4096)  # a killed run's
    link = tmp_path / "names" / "state.sqlite"
    link.parent.mkdir()
    link.symlink_to(real)
    shut = {real.parent} | (set() if link_folder_writable else {link.parent})
    access = os.access
    monkeypatch.setattr(
        os, "access", lambda name, mode: Path(name) not in shut and access(name, mode)
    )
    checked = state_file._checked

    def without_a_shm(path: Path, readonly_mode: str | None) -> tuple[sqlite3.Connection, bool]:
        if readonly_mode == "mode=rw":  # as SQLite fails, root or not, in a folder it cannot write
            raise state_file.damaged(path, "SQLite: unable to open database file")
        return checked(path, readonly_mode)

    monkeypatch.setattr(state_file, "_checked", without_a_shm)

    with pytest.raises(UsageError) as refused:
        state_file.connect(link, readonly=True)
    assert (refused.value.message, refused.value.hint) == (
        f"state file {link} is in a folder rpd cannot write, and its last run left changes in "
        "state.sqlite-wal that only a writable folder lets SQLite read",
        "copy the state file with its -wal to a folder you can write, and use that",
    )


def test_readonly_reads_an_empty_file_as_an_empty_state(path: Path) -> None:
    path.parent.mkdir()
    path.touch()
    with ReplayState.open(path, NS, readonly=True) as state:
        assert (state.summary(), state.journal_status("e1"), in_flight(state)) == (
            [],
            None,
            0,
        )
    assert path.read_bytes() == b""


def test_a_running_rpd_holds_the_file(path: Path) -> None:
    with open_state(path) as running:
        running.record_outcome("e1", "f:1", SENT)
        running.flush()
        before = path.read_bytes()
        with pytest.raises(UsageError) as caught:
            open_state(path)
        assert caught.value.message == (
            f"state file {path} is in use by another rpd process (pid {os.getpid()})"
        )
        assert caught.value.hint == (
            "wait for it to finish, or give another state file with --state FILE"
        )
        with pytest.raises(UsageError, match="in use by another rpd process"):
            discard_state(path)
        assert path.read_bytes() == before
        with ReplayState.open(path, NS, readonly=True) as reader:  # dry-run may still read
            assert reader.journal_status("e1") == "sent"
    with open_state(path) as after:  # released on close
        assert after.journal_status("e1") == "sent"


@pytest.mark.parametrize("readonly", [False, True])
@pytest.mark.parametrize(
    "held",
    # One byte is what SQLite reads as an empty file (os_unix.c unixFileSize: its own 1-byte
    # mark on OS X's msdos disks), so it was written over; 2 to 15 bytes it refuses itself.
    [b'{"not": "a database"}\n' * 200, b"x", b"\n", b"SQLite format", b"SQLite format 3"],
    ids=["a JSON file", "one byte", "a newline", "13 bytes", "15 bytes"],
)
def test_a_file_that_is_not_sqlite_is_refused_untouched(
    path: Path, readonly: bool, held: bytes
) -> None:
    path.parent.mkdir()
    path.write_bytes(held)
    with pytest.raises(UsageError) as caught:
        ReplayState.open(path, NS, readonly=readonly)
    assert caught.value.message == f"{path} is not an rpd state file (not an SQLite database)"
    assert caught.value.hint == "check --state: this file is not rpd's, and rpd leaves it alone"
    assert path.read_bytes() == held
    assert [p.name for p in path.parent.iterdir()] == ["state.sqlite"]


@pytest.mark.parametrize(
    "held",
    # Nothing (a `touch`, or rpd killed before SQLite's first write), or SQLite's own mark of an
    # empty database on OS X's msdos disks (one 'S'): an empty state, no one's data in it.
    [b"", b"S"],
    ids=["0 bytes", "SQLite's own byte"],
)
def test_a_file_that_holds_nothing_yet_is_a_new_state(path: Path, held: bytes) -> None:
    path.parent.mkdir()
    path.write_bytes(held)
    with ReplayState.open(path, NS, readonly=True) as reader:
        assert reader.journal_status("e1") is None
    with open_state(path) as state:
        state.record_outcome("e1", "in.ndjson:1", SENT)
    with open_state(path, readonly=True) as reader:
        assert reader.journal_status("e1") == "sent"


def test_another_programs_database_is_refused_untouched(path: Path) -> None:
    path.parent.mkdir()
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
    other.commit()
    other.close()
    before = path.read_bytes()
    with pytest.raises(UsageError) as caught:
        ReplayState.open(path, NS)
    assert caught.value.message == (
        f"{path} is not an rpd state file (an SQLite database without rpd's tables)"
    )
    assert path.read_bytes() == before


def test_a_state_path_that_cannot_be_created_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "state.sqlite"
    with pytest.raises(UsageError) as caught:
        ReplayState.open(path, NS)
    assert (
        caught.value.message
        == f"cannot open state file {path}: {path.parent} is a file, not a folder"
    )
    assert caught.value.hint == (
        "give --state a path under folders, not under a file (rpd makes the folders that are "
        "missing)"
    )


def test_a_state_name_too_long_is_a_usage_error(tmp_path: Path) -> None:
    # Before: exit 70, "internal error: OSError" (Path.is_dir raises ENAMETOOLONG).
    long = tmp_path / ("s" * 300)
    for readonly in (False, True):
        with pytest.raises(UsageError) as caught:
            ReplayState.open(long, NS, readonly=readonly)
        assert caught.value.message == f"--state {long}: File name too long"
        assert caught.value.hint == "give --state a file path it can reach"


def test_a_newer_schema_is_refused_untouched(path: Path) -> None:
    with open_state(path) as state:
        state.record_outcome("e1", "f:1", SENT)
    newer = sqlite3.connect(path)
    newer.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    newer.commit()
    newer.close()
    before = path.read_bytes()
    for readonly in (False, True):
        with pytest.raises(UsageError) as caught:
            ReplayState.open(path, NS, readonly=readonly)
        assert caught.value.message == f"state file {path} was written by a newer rpd (schema 4)"
        assert caught.value.hint == "upgrade rpd or use another --state"
        assert path.read_bytes() == before


def test_the_token_never_reaches_the_file(path: Path) -> None:
    with open_state(path) as state:
        state.start_run()
        for number in range(50):
            state.begin_write(f"e{number}", LEAD, STAMP)
            state.record_outcome(
                f"e{number}",
                f"in.ndjson:{number}",
                Outcome(
                    status="sent", learned=Learned(identities={("person", f"u{number}"): number})
                ),
            )
        state.put_fields("persons", [{"key": "k"}])
        state.finish_run({"read": 50})
        contents = [path.read_bytes(), path.with_name("state.sqlite-wal").read_bytes()]
        assert b"7f87dc59a5ac3bce" in b"".join(contents)  # the data is where we look
        assert all(TOKEN.encode() not in content for content in contents)
    for file in path.parent.iterdir():
        assert TOKEN.encode() not in file.read_bytes()


def test_discard_removes_the_file_and_says_what_it_held(path: Path) -> None:
    with open_state(path) as state:
        state.record_outcome(
            "e1", "f:1", Outcome(status="sent", learned=Learned(identities={("org", "g"): 1}))
        )
    discarded = discard_state(path)
    assert [summary.namespace for summary in discarded.namespaces] == [NS]
    assert discarded.unreadable == ""
    assert list(path.parent.iterdir()) == []


def test_discard_removes_an_unreadable_file(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"SQLite format 3\x00" + b"garbage" * 100)  # a damaged database
    discarded = discard_state(path)
    assert (discarded.namespaces, discarded.unreadable) == (
        [],
        "is damaged (SQLite: file is not a database); nothing in it can be read",
    )
    assert list(path.parent.iterdir()) == []


def test_discarding_leftovers_keeps_a_state_file_made_meanwhile(path: Path) -> None:
    # `rpd state clear` found no state file beside a -wal, then a send made one and finished
    # before clear took the lock: that -wal is the send's now, and stays.
    path.parent.mkdir()
    path.write_bytes(b"SQLite format 3\x00")
    Path(f"{path}-wal").write_bytes(b"journal")
    with pytest.raises(UsageError) as caught:
        discard_leftovers(path)
    assert (caught.value.message, caught.value.hint) == (
        f"state file {path} was made while clearing",
        f"run `rpd state clear --state {path}` again",
    )
    assert (path.read_bytes(), Path(f"{path}-wal").read_bytes()) == (
        b"SQLite format 3\x00",
        b"journal",
    )
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, f"{path.name}-wal"]


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rudder_pipedrive_cli.core.protocol import ApiRequest, Learned, Outcome
    from rudder_pipedrive_cli.io.state import ReplayState

    state = ReplayState.open(Path(sys.argv[1]), "ns", batch_size=10, batch_seconds=1e9)
    lead = ApiRequest(method="POST", path="/v1/leads", endpoint="/v1/leads", stage="s",
                      body={"title": "t"})
    for number in range(25):  # two batches of 10 committed, 5 buffered
        state.record_outcome(f"a{number}", "f", Outcome(status="sent"))
    state.begin_write("w", lead, "2026-01-02T03:04:05Z")  # commits the 5 with it
    for number in range(7):
        state.record_outcome(f"b{number}", "f", Outcome(status="sent"))
    learned = Learned(identities={("person", "u"): 1})
    state.record_outcome("w", "f", Outcome(status="sent", learned=learned))
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_kill_9_loses_at_most_the_unflushed_batch_never_a_begun_write(path: Path) -> None:
    path.parent.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    with ReplayState.open(path, "ns", readonly=True) as reader:  # `state show` after the crash
        assert (in_flight(reader), reader.journal_status("a24")) == (1, "sent")
    with ReplayState.open(path, "ns") as state:  # the kernel released the lock
        journal = {f"a{number}": state.journal_status(f"a{number}") for number in range(25)}
        assert set(journal.values()) == {"sent"}
        assert [state.journal_status(f"b{number}") for number in range(7)] == [None] * 7
        assert state.journal_status("w") is None
        assert state.person_id("u") is None
        assert state.pending_write("w", LEAD) == "2026-01-02T03:04:05Z"
    assert rows(path, "SELECT count(*) FROM journal") == [(25,)]


def test_discard_refuses_what_is_no_database(path: Path) -> None:
    path.parent.mkdir()
    path.write_text("[pipedrive]\n")  # a mistyped --state: the config
    with pytest.raises(UsageError):
        discard_state(path)
    assert path.read_text() == "[pipedrive]\n"


@pytest.mark.parametrize("readonly", [False, True])
def test_a_device_is_no_state_file(readonly: bool) -> None:
    with pytest.raises(UsageError, match=r"^--state /dev/null is not a regular file$"):
        ReplayState.open(Path("/dev/null"), NS, readonly=readonly)


@pytest.mark.parametrize("readonly", [False, True])
def test_a_merge_left_unknown_is_kept_until_settled(path: Path, readonly: bool) -> None:
    with open_state(path) as state:
        assert state.merging_into(1) is None
        state.learn(Outcome(status="failed", reason="x", learned=Learned(pending_merges={1: 2})))
    with open_state(path, readonly=readonly) as state:
        assert state.merging_into(1) == 2
        assert state.summary()[0].to_settle == 1
        state.learn(Outcome(status="sent", learned=Learned(merged={1: 2})))  # settled: it landed
        assert state.merging_into(1) is None


def test_failed_identities_are_kept_for_the_run(path: Path) -> None:
    with open_state(path) as state:
        state.learn(
            Outcome(
                status="failed", reason="x", learned=Learned(held_back=frozenset({("person", "A")}))
            )
        )
        assert state.held_back("person", "A") and not state.held_back("org", "A")
    with open_state(path) as state:
        assert not state.held_back("person", "A")  # the next run retries that event first


def test_a_full_disk_stops_at_the_first_failed_write_and_keeps_what_was_committed(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 13 item 8. SQLite's max_page_count makes the disk "full" (SQLITE_FULL) two pages on.
    prepare = state_file.prepare

    def small_disk(connection: sqlite3.Connection, *, empty: bool) -> None:
        prepare(connection, empty=empty)
        used = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {used + 2}")

    monkeypatch.setattr(state_file, "prepare", small_disk)
    full = f"disk full: state file {path}"
    with open_state(path, batch_size=1) as state:
        state.begin_write("e0", LEAD, STAMP)
        state.record_outcome("e0", "f:0", SENT)
        with pytest.raises(StateUnusable) as caught:
            for number in range(1, 1000):
                state.record_outcome(f"e{number}", f"in.ndjson:{number}", SENT)
        assert caught.value.message == full
        assert caught.value.hint == (
            "free space on its disk, then rerun the same command: it resumes where this run "
            "stopped (what it sent is recorded)"
        )
        committed = rows(path, "SELECT count(*) FROM journal")[0][0]
        assert 1 < committed < 1000
        # Every later operation, read or write, is refused the same way: the run stops here.
        for operation in (
            lambda: state.begin_write("e9", LEAD, STAMP),
            lambda: state.journal_status("e0"),
            lambda: state.put_fields("persons", []),
        ):
            with pytest.raises(StateUnusable, match=full):
                operation()
    # Closing does not raise again, and what was committed stays.
    monkeypatch.undo()
    with open_state(path) as after:
        assert after.journal_status("e0") == "sent"
        assert rows(path, "SELECT count(*) FROM journal")[0][0] == committed


def test_a_plan_whose_write_cannot_be_recorded_stops_the_run_and_is_not_sent(
    path: Path,
) -> None:
    # The exception reaches the runner (which stops the run) instead of failing the one event as
    # "a bug in rpd" while the run goes on writing nothing down.
    def plan() -> Plan:
        yield LEAD
        return SENT

    sent: list[ApiRequest] = []
    with open_state(path) as state:
        state._db.failure = StateUnusable(f"disk full: state file {path}")
        with pytest.raises(StateUnusable):
            drive(journaled(plan(), "e1", state, lambda: STAMP), lambda r: sent.append(r) or OK)
    assert sent == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
        ("HTTP://127.0.0.1:8787/", "http://127.0.0.1:8787"),
        ("http://127.0.0.1:8787/.", "http://127.0.0.1:8787"),
        ("http://LocalHost:8787/./", "http://localhost:8787"),
        ("https://Acme.Pipedrive.com:443", "https://acme.pipedrive.com"),
        ("https://acme.pipedrive.com/api/../x//", "https://acme.pipedrive.com/x"),
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_a_url_is_shown_normalised(url: str, shown: str) -> None:
    assert normalised_url(url) == shown


def test_every_spelling_of_one_server_finds_the_account_a_send_keyed(path: Path) -> None:
    with open_state(path, "") as state:
        state.use_account("42", "http://127.0.0.1:8787", TOKEN)
        assert state.namespace == account_namespace("42", TOKEN) == "company:42#7f87dc59a5ac3bce"
        state.record_outcome("e1", "f:1", SENT)
    with ReplayState.open(path, "", readonly=True) as state:
        for url in (
            "HTTP://127.0.0.1:8787",
            "http://localhost:8787",
            "http://127.0.0.1:8787/.",
            "http://[::1]:8787/",
        ):
            assert state.accounts_for(url, TOKEN) == [account_namespace("42", TOKEN)], url
            assert state.accounts_for(url, "") == [account_namespace("42", TOKEN)], url
        assert state.accounts_for("http://127.0.0.1:8788", TOKEN) == []  # another server
        assert state.accounts_for("http://127.0.0.1:8787", "another-token") == []
        (summary,) = state.summary()
        assert (summary.base_url, summary.company_id) == ("http://127.0.0.1:8787", "42")


def test_the_namespace_remembered_for_a_url_and_token_is_used_only_when_there_is_one(
    path: Path,
) -> None:
    # What send's and dry-run's opens go by: with one namespace remembered, the state reads it
    # (what it learned under the one it was opened with is forgotten); with none or several, the
    # state stays where it was and the caller is told which there are.
    first = namespace_key("http://127.0.0.1:8787", TOKEN)
    second = namespace_key("http://localhost:8787", TOKEN)
    with open_state(path, first) as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u"): 5})))
    with ReplayState.open(path, "", readonly=True) as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u"): 9})))
        assert state.use_remembered("http://localhost:8787", TOKEN) == [first]
        assert (state.namespace, state.person_id("u")) == (first, 5)
    with open_state(path, second) as state:
        state.learn(Outcome(status="sent", learned=Learned(identities={("person", "u"): 6})))
    with ReplayState.open(path, "", readonly=True) as state:
        assert state.use_remembered("http://localhost:8787", TOKEN) == sorted([first, second])
        assert (state.namespace, state.person_id("u")) == ("", None)
        assert state.use_remembered("http://127.0.0.1:8788", TOKEN) == []
        assert state.namespace == ""


def test_an_older_rpds_namespaces_for_the_url_move_into_the_account(path: Path) -> None:
    # Two spellings of one URL, keyed apart by an older rpd: their rows come together, a write in
    # flight in either is kept (the next run must reconcile it), and an event done in one and
    # failed in the other stays done.
    first = namespace_key("http://127.0.0.1:8787", TOKEN)
    second = namespace_key("HTTP://localhost:8787/.", TOKEN)
    elsewhere = namespace_key("https://api.pipedrive.com", TOKEN)
    with open_state(path, first) as state:
        state.record_outcome("e1", "f:1", Outcome(status="failed", reason="HTTP 500"))
        state.record_outcome(
            "e2", "f:2", Outcome(status="sent", learned=Learned(identities={("person", "u"): 5}))
        )
        state.begin_write("e3", LEAD, STAMP)
        state.index_rows().put("person", [(5, "u")])
        state.index_rows().mark("person", "email", "2024-05-01 12:00:00")
    with open_state(path, second) as state:
        state.record_outcome("e1", "f:1", SENT)
        state.begin_write("e4", PATCH_5, STAMP)
    with open_state(path, elsewhere) as state:
        state.record_outcome("e9", "f:9", SENT)
    with open_state(path, "") as state:
        assert state.accounts_for("http://localhost:8787", TOKEN) == sorted([first, second])
        state.use_account("42", "http://localhost:8787", TOKEN)
        assert state.journal_status("e1") == "sent"
        assert state.journal_status("e2") == "sent"
        assert state.person_id("u") == 5
        assert state.pending_write("e3", LEAD) == STAMP
        assert state.pending_write("e4", PATCH_5) == STAMP
        # The identity index moves too: the account's next run refreshes it, not lists it anew.
        assert state.index_rows().ids("person", "u") == [5]
        assert state.index_rows().since("person", "email") == "2024-05-01 12:00:00"
    assert rows(path, "SELECT DISTINCT ns FROM journal ORDER BY ns") == [
        (account_namespace("42", TOKEN),),
        (elsewhere,),
    ]
    for table in ("identity_index", "identity_index_marks"):
        assert rows(path, f"SELECT DISTINCT ns FROM {table}") == [(account_namespace("42", TOKEN),)]


def test_clearing_an_account_forgets_the_urls_that_led_to_it(path: Path) -> None:
    with open_state(path, "") as state:
        state.use_account("42", "http://127.0.0.1:8787", TOKEN)
        state.record_outcome("e1", "f:1", SENT)
        state.clear(account_namespace("42", TOKEN))
        assert state.accounts_for("http://127.0.0.1:8787", TOKEN) == []
    assert rows(path, "SELECT key FROM meta") == [("schema_version",)]


def test_a_send_starting_while_state_show_probes_the_lock_waits_it_out(path: Path) -> None:
    """`rpd state show` probes the lock shared for an instant (state_file.lock_holder); a send
    opening the file in that instant takes the lock once the probe lets go, instead of failing
    with "in use by another rpd process"."""
    with open_state(path) as first:
        first.record_outcome("e1", "f:1", SENT)
    probe = os.open(path, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # the probe, caught mid-instant
    releaser = threading.Timer(0.05, os.close, (probe,))
    releaser.start()
    try:
        with open_state(path) as running:
            assert running.journal_status("e1") == "sent"
    finally:
        releaser.join()


def test_state_show_probing_a_filesystem_without_flock_says_nothing_of_a_holder(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_state(path) as first:
        first.record_outcome("e1", "f:1", SENT)

    def no_locks(handle: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(state_file.fcntl, "flock", no_locks)
    assert state_file.lock_holder(path) is None


def test_a_file_from_before_the_index_and_listing_fixes_forgets_them_once(path: Path) -> None:
    # An older rpd kept index values trimmed and marked a person's listing complete without its
    # archived deals: read now, a lookup would miss or a deal be made twice. The first writable
    # open lists them anew (the index rows and marks, the complete marks go); what is still true
    # stays (origins found, the journal, identities), and a later open forgets nothing.
    with open_state(path) as state:
        state.record_outcome(
            "e1", "f:1", Outcome(status="sent", learned=Learned(identities={("person", "u"): 5}))
        )
        state.index_rows().put("person", [(5, "u")])
        state.index_rows().mark("person", "email", "2024-05-01 12:00:00")
    assert rows(path, "PRAGMA user_version") == [(REVISION,)]  # a new file is marked at once
    older = sqlite3.connect(path)
    with older:
        older.execute("INSERT INTO leads_listed (ns, person_id) VALUES (?, 'i:5')", (NS,))
        older.execute("INSERT INTO lead_origins VALUES (?, 'i:5', 'deal:1')", (NS,))
        older.execute("PRAGMA user_version = 0")
    older.close()
    # A read-only open (dry-run) changes nothing, and reads the file as the first writable open
    # will leave it: it planned with what send forgets (an exact value missed, a deal made twice).
    with open_state(path, readonly=True) as state:
        assert state.index_rows().ids("person", "u") == []
        assert state.index_rows().since("person", "email") is None
        assert state.lead_origins(5) is None
        assert (state.journal_status("e1"), state.person_id("u")) == ("sent", 5)
    assert rows(path, "PRAGMA user_version") == [(0,)]
    assert rows(path, "SELECT person_id FROM leads_listed") == [("i:5",)]
    with open_state(path) as state:
        assert state.index_rows().ids("person", "u") == []
        assert state.index_rows().since("person", "email") is None
        assert state.journal_status("e1") == "sent"
        assert state.person_id("u") == 5
        state.index_rows().put("person", [(6, "v")])
    assert rows(path, "SELECT * FROM leads_listed") == []
    assert rows(path, "SELECT person_id, origin_id FROM lead_origins") == [("i:5", "deal:1")]
    assert rows(path, "PRAGMA user_version") == [(REVISION,)]
    with open_state(path) as state:
        assert state.index_rows().ids("person", "v") == [6]


def test_a_file_from_before_rule_skips_were_left_out_forgets_them_once(path: Path) -> None:
    # An older rpd journaled an event a skip rule took as done, and finished an object of such
    # events whatever rules it was read under: a changed rule never reached them. The first
    # writable open forgets those journal rows, and the finished objects of their namespace.
    other = namespace_key("https://other.example", TOKEN)
    with open_state(path) as state:
        state.record_outcome("e1", "f:1", SENT)
        state.record_outcome("e2", "f:2", Outcome(status="skipped", reason=SKIP_REASON))
        state.record_outcome("e3", "f:3", Outcome(status="skipped", reason="anonymous"))
        state.finish_object("s3://b/k.json.gz", "etag:abc")
    with open_state(path, other) as state:
        state.record_outcome("e1", "f:1", SENT)
        state.finish_object("s3://b/k.json.gz", "etag:abc")
    older = sqlite3.connect(path)
    with older:
        older.execute("PRAGMA user_version = 1")
    older.close()
    statuses = ("e1", "e2", "e3")
    # A read-only open (dry-run) changes nothing, and reads the file as the send will.
    for readonly in (True, False):
        with open_state(path, readonly=readonly) as state:
            assert [state.journal_status(e) for e in statuses] == ["sent", None, "skipped"]
            assert not state.object_finished("s3://b/k.json.gz", "etag:abc")
        with open_state(path, other, readonly=readonly) as state:
            assert state.object_finished("s3://b/k.json.gz", "etag:abc")
        if readonly:
            assert rows(path, "PRAGMA user_version") == [(1,)]
            assert len(rows(path, "SELECT * FROM journal")) == 4
            # rpd state show says it as the send will leave it, as dry-run reads it
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                shown = {summary.namespace: summary for summary in summaries(db)}
            assert dict(shown[NS].journal) == {"sent": 1, "unchanged": 0, "skipped": 1, "failed": 0}
            assert (shown[NS].objects_finished, shown[other].objects_finished) == (0, 1)
            assert shown[other].journal["sent"] == 1
    assert rows(path, "PRAGMA user_version") == [(REVISION,)]
    assert rows(path, "SELECT ns, event_id FROM journal ORDER BY ns, event_id") == sorted(
        [(NS, "e1"), (NS, "e3"), (other, "e1")]
    )
    assert rows(path, "SELECT ns FROM objects_done") == [(other,)]
    with open_state(path) as state:  # forgotten once: a later open forgets nothing
        state.finish_object("s3://b/k.json.gz", "etag:abc")
    assert len(rows(path, "SELECT ns FROM objects_done")) == 2


def test_a_folder_where_the_pid_file_goes_is_left_as_it_is(path: Path) -> None:
    # A folder named STATE.lock (the pid file's name, only for messages): the send went on, then
    # ended 'internal error: IsADirectoryError', exit 70, as the state closed and unlinked it.
    path.parent.mkdir(parents=True)
    (path.parent / "state.sqlite.lock").mkdir()
    with open_state(path) as state:
        state.record_outcome("e1", "f:1", SENT)
    assert (path.parent / "state.sqlite.lock").is_dir()
    with open_state(path, readonly=True) as state:
        assert state.journal_status("e1") == "sent"
