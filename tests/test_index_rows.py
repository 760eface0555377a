"""The identity index of a run without a state file (core/index.py's `MemoryIndexRows`) on
bounded tables (io/scratch.py, issue 18): the same answers as a plain model of the index with a
budget of one entry per table, so that nearly every row lives in SQLite."""

from __future__ import annotations

import random
from collections.abc import MutableMapping
from typing import Any

import pytest

from rudder_pipedrive_cli.core.index import IdentityIndex, MemoryIndexRows, id_order
from rudder_pipedrive_cli.core.plans.common import PERSON, index_listing, probe_steps
from rudder_pipedrive_cli.core.protocol import ApiResponse, Learned, Outcome, PdId
from rudder_pipedrive_cli.io.scratch import Spill, SpillTable

KEY = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
RECORDS: list[PdId] = [*range(1, 40), "{person:u-1}", "{person:u-2}"]  # dry-run placeholders too
VALUES = [f"u-{n}" for n in range(12)]  # fewer values than records: ambiguity happens


class Model:
    """What the index answers, written as plainly as possible: record -> value, per kind."""

    def __init__(self) -> None:
        self.values: dict[str, dict[PdId, str]] = {}
        self.marks: dict[str, tuple[str, str]] = {}

    def ids(self, kind: str, value: str) -> list[PdId]:
        held = self.values.get(kind, {})
        return sorted((r for r, v in held.items() if v == value), key=id_order)

    def put(self, kind: str, rows: list[tuple[PdId, str | None]]) -> None:
        held = self.values.setdefault(kind, {})
        for record, value in rows:
            held.pop(record, None)
            if value is not None:
                held[record] = value

    def add(self, kind: str, record: PdId, value: str) -> None:
        self.values.setdefault(kind, {}).setdefault(record, value)

    def drop(self, kind: str, record: PdId) -> None:
        self.values.get(kind, {}).pop(record, None)

    def forget(self, kind: str) -> None:
        self.values.pop(kind, None)

    def size(self, kind: str) -> int:
        return len(self.values.get(kind, {}))


def recording(spill: Spill, made: list[SpillTable[Any, Any]]) -> Any:
    def table() -> MutableMapping[Any, Any]:
        made.append(spill.table())
        return made[-1]

    return table


@pytest.mark.parametrize(("entries", "batch"), [(1, 1), (3, 2), (10_000, 1024)])
def test_the_index_on_bounded_tables_answers_as_the_plain_model(entries: int, batch: int) -> None:
    """Random pages, creates, merges, rebuilds and lookups: the same answers at every step from
    the index on dicts, on bounded tables, and from the model; memory stays within budget."""
    chance = random.Random(entries)
    model = Model()
    made: list[SpillTable[Any, Any]] = []
    with Spill(entries, batch=batch) as spill:
        bounded = MemoryIndexRows(recording(spill, made))
        unbounded = MemoryIndexRows()
        for _ in range(4000):
            kind = chance.choice(("person", "person", "person", "org"))
            action = chance.random()
            if action < 0.25:  # a listing page: records with a value, some with none
                page = [
                    (chance.choice(RECORDS), chance.choice([*VALUES, None]))
                    for _ in range(chance.randint(1, 8))
                ]
                for rows in (bounded, unbounded, model):
                    rows.put(kind, page)
            elif action < 0.35:
                record, value = chance.choice(RECORDS), chance.choice(VALUES)
                for rows in (bounded, unbounded, model):
                    rows.add(kind, record, value)
            elif action < 0.45:
                record = chance.choice(RECORDS)
                for rows in (bounded, unbounded, model):
                    rows.drop(kind, record)
            elif action < 0.46:
                for rows in (bounded, unbounded, model):
                    rows.forget(kind)
            elif action < 0.9:
                value = chance.choice(VALUES)
                expected = model.ids(kind, value)
                assert (bounded.ids(kind, value), unbounded.ids(kind, value)) == (expected,) * 2
            else:
                expected_size = model.size(kind)
                assert (bounded.size(kind), unbounded.size(kind)) == (expected_size,) * 2
        for kind in ("person", "org"):
            for value in VALUES:
                assert bounded.ids(kind, value) == model.ids(kind, value)
        assert len(made) == 4  # two tables a kind, made when the kind is first written
        assert all(table.in_memory <= entries + batch for table in made)
        if entries == 1:  # rows did move out: the answers above came from SQLite too
            assert sum(len(table) - table.in_memory for table in made) > 10


def test_ambiguous_ids_come_lowest_first_and_a_changed_value_moves_out_of_memory() -> None:
    with Spill(1, batch=1) as spill:
        rows = MemoryIndexRows(spill.table)
        rows.put("person", [(30, "u-1"), (4, "u-1"), ("{person:u-1}", "u-1"), (9, "u-2")])
        rows.put("person", [(12, "u-3"), (13, "u-4"), (14, None)])
        assert rows.ids("person", "u-1") == [4, 30, "{person:u-1}"]
        assert rows.size("person") == 6
        rows.put("person", [(4, "u-9"), (30, None)])  # 4 now holds u-9, 30 holds nothing
        rows.add("person", 9, "u-1")  # known already: kept as listed
        rows.add("org", 9, "g-1")  # another kind: its own rows
        assert [rows.ids("person", v) for v in ("u-1", "u-2", "u-9")] == [
            ["{person:u-1}"],
            [9],
            [4],
        ]
        assert (rows.size("person"), rows.size("org"), rows.ids("org", "g-1")) == (5, 1, [9])
        rows.drop("person", 9)
        rows.forget("org")
        assert (rows.ids("person", "u-2"), rows.size("person")) == ([], 4)
        assert (rows.ids("org", "g-1"), rows.size("org")) == ([], 0)


def test_a_listing_of_many_pages_in_a_tiny_budget_finds_every_record() -> None:
    """Three pages of 500 persons listed through the pure exchange into a budget of two keys per
    table; merges and creates that follow go in and out as with dicts."""
    with Spill(2, batch=1) as spill:
        index = IdentityIndex(MemoryIndexRows(spill.table), {"person": KEY}, clock=lambda: 0.0)
        steps = probe_steps(index_listing(index, PERSON))
        request = next(steps)
        for page in range(3):
            assert (request.path, request.query.get("cursor")) == (
                "/api/v2/persons",
                None if page == 0 else f"c-{page}",
            )
            records = [
                {"id": n, "custom_fields": {KEY: f"u-{n % 1400}"}}
                for n in range(page * 500 + 1, page * 500 + 501)
            ]
            more = {"next_cursor": f"c-{page + 1}"} if page < 2 else {"next_cursor": None}
            answer = ApiResponse(
                status=200, data=records, additional_data=more, sent_at="2026-12-05T10:00:00Z"
            )
            try:
                request = steps.send(answer)
            except StopIteration:
                assert page == 2
        assert index.stats.pages == 3 and index.rows.size("person") == 1500
        assert index.lookup("person", "u-7") == [7, 1407]  # two records hold u-7
        assert index.lookup("person", "u-1399") == [1399]
        index.learn(
            Outcome(
                status="sent",
                learned=Learned(identities={("person", "u-new"): 1501}, merged={7: 8}),
            )
        )
        assert (index.lookup("person", "u-new"), index.lookup("person", "u-7")) == ([1501], [1407])
        assert index.rows.size("person") == 1500


def test_a_spill_table_cleared_after_moving_keys_out_moves_new_ones_out_again() -> None:
    """`clear()` (a rebuild of the index forgets a kind) then more keys than the budget: they
    move out to the database as before (an assertion failed on the second move)."""
    with Spill(1, batch=1) as spill:
        table: SpillTable[str, int] = spill.table()
        for n in range(5):
            table[f"a-{n}"] = n
        table.clear()
        for n in range(5):
            table[f"b-{n}"] = n
        assert table.in_memory <= 2
        assert [table.get(f"a-{n}") for n in range(5)] == [None] * 5
        assert [table[f"b-{n}"] for n in range(5)] == list(range(5))
        assert sorted(table) == [f"b-{n}" for n in range(5)]
