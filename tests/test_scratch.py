"""io/scratch.py: the ids a dry-run finished, remembered exactly with flat memory."""

from __future__ import annotations

import pytest

from rudder_pipedrive_cli.core.envelopes import RawItem
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.intake import intake
from rudder_pipedrive_cli.core.known import MemoryKnown
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.preview import preview
from rudder_pipedrive_cli.core.responder import OfflineResponder
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.io.scratch import ScratchIds


@pytest.mark.parametrize("filter_bits", [1, 64, 1 << 23])  # 1: every lookup reaches SQLite
def test_every_id_added_is_found_and_no_other(filter_bits: int) -> None:
    with ScratchIds(recent=16, filter_bits=filter_bits) as ids:
        added = [f"msg-{n}" for n in range(0, 200, 2)]
        for event_id in added:
            assert event_id not in ids
            ids.add(event_id)
            assert event_id in ids
        ids.add("msg-0")  # again: still one id
        assert [n for n in range(200) if f"msg-{n}" in ids] == list(range(0, 200, 2))
        assert "" not in ids and "msg-00" not in ids


def test_ids_stay_in_memory_until_the_window_fills_then_move_out() -> None:
    ids = ScratchIds(recent=3)
    ids.add("a")
    ids.add("b")
    assert ids._db is None  # a small run never opens the temporary database
    ids.add("c")
    assert ids._db is not None and ids._recent == set()
    assert ids._db.execute("SELECT id FROM ids ORDER BY id").fetchall() == [("a",), ("b",), ("c",)]
    assert [i for i in "abcd" if i in ids] == ["a", "b", "c"]
    ids.close()
    assert ids._db is None


def test_a_dry_run_skips_a_repeat_of_an_id_that_moved_out_of_memory() -> None:
    config = PlanConfig(user_id_field="f" * 40, create_persons=True)
    events = [
        {"type": "identify", "messageId": message_id, "userId": "u-1", "traits": {"name": "A"}}
        for message_id in ("same-1", "m-2", "m-3", "m-4", "same-1")
    ]
    items = intake(
        (RawItem(source=f"in:{n}", value=e) for n, e in enumerate(events, 1)), EventFilter()
    )
    with ScratchIds(recent=2, filter_bits=1) as finished:
        planned = preview(
            items, config, OfflineResponder(config), MemoryKnown(), Tally(), None, finished
        )
        outcomes = [(p.item.source, p.planned_status, p.outcome.reason) for p in planned]
    assert outcomes == [
        ("in:1", "planned", ""),
        ("in:2", "planned", ""),
        ("in:3", "planned", ""),
        ("in:4", "planned", ""),
        ("in:5", "skipped", "already done"),
    ]
