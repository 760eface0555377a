"""io/scratch.py: the ids a dry-run finished and the tables of a run without a state file,
remembered exactly in bounded memory (issue 18)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from rudder_pipedrive_cli.core.events import parse_event, take
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.index import input_aliases
from rudder_pipedrive_cli.core.intake import Finished, intake
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.preview import Recorder, preview
from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.core.responder import OfflineResponder
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.io.scratch import Lru, ScratchIds, Spill, SpillTable


@pytest.mark.parametrize("filter_bits", [1, 64, 1 << 24])  # 1: every lookup reaches SQLite
def test_every_id_added_is_found_and_no_other(filter_bits: int) -> None:
    with ScratchIds(recent=16) as older:
        ids = Finished(None, older, filter_bits)
        added = [f"msg-{n}" for n in range(0, 200, 2)]
        for event_id in added:
            assert not ids.has(event_id)
            ids.add(event_id, "sent")
            assert ids.has(event_id)
        ids.add("msg-0", "sent")  # again: still one id
        ids.add("msg-1", "failed")  # not done: not kept
        assert [n for n in range(200) if ids.has(f"msg-{n}")] == list(range(0, 200, 2))
        assert not ids.has("") and not ids.has("msg-00")


def test_ids_stay_in_memory_until_the_window_fills_then_move_out() -> None:
    older = ScratchIds(recent=3)
    ids = Finished(None, older)
    ids.add("a", "sent")
    ids.add("b", "skipped")
    assert older._db is None and "a" not in older  # a small run never opens the database
    ids.add("c", "unchanged")
    assert older._db is not None and ids._ids == {}
    assert sorted(older._db.execute("SELECT id FROM ids").fetchall()) == [("a",), ("b",), ("c",)]
    assert [i for i in "abcd" if ids.has(i)] == ["a", "b", "c"]
    assert [i for i in "abcd" if i in older] == ["a", "b", "c"]
    older.close()
    assert older._db is None


def test_only_ids_the_filter_may_hold_are_asked_of_the_database() -> None:
    class Counted(ScratchIds):
        __slots__ = ("asked",)

        def __contains__(self, event_id: str) -> bool:
            self.asked.append(event_id)
            return super().__contains__(event_id)

    with Counted(recent=3) as older:
        older.asked = []
        ids = Finished(None, older)
        for event_id in "abc":
            ids.add(event_id, "sent")
        assert ids.has("a") and ids.has("c") and older.asked == ["a", "c"]
        older.asked.clear()
        # 100 ids never seen: a clear bit each (3 bits set of 2**24), so SQLite is not asked.
        assert not any(ids.has(f"new-{n}") for n in range(100))
        assert len(older.asked) <= 1


@pytest.mark.parametrize("nul", [True, False])
def test_ids_of_any_text_move_out_exactly(nul: bool) -> None:
    """A batch goes to SQLite as one JSON array, whose strings SQLite ends at a NUL: a batch
    with one goes a row at a time, so "a\\x00b" is not stored as "a" (a later "a" would be
    taken as already done)."""
    texts = ["é", "😀", "tab\there", 'quote"', "back\\slash", "\u2028", " padded ", "\ufeff"]
    texts += ["x" * 5000, "\\u0000"]  # the last one's JSON has the text \u0000, not a NUL
    if nul:
        texts += ["a\x00b", "\x00"]
    with ScratchIds(recent=len(texts)) as older:
        ids = Finished(None, older)
        for text in texts:
            ids.add(text, "sent")
        assert ids._ids == {}  # all moved out
        assert [text for text in texts if not ids.has(text)] == []
        assert [text for text in ("a", "a\x00", "", "x" * 4999) if ids.has(text)] == []
        stored = older._db.execute("SELECT id FROM ids").fetchall()  # type: ignore[union-attr]
        assert sorted(text for (text,) in stored) == sorted(texts)


def test_a_dry_run_skips_a_repeat_of_an_id_that_moved_out_of_memory() -> None:
    config = PlanConfig(user_id_field="f" * 40, create_persons=True)
    events = [
        {"type": "identify", "messageId": message_id, "userId": "u-1", "traits": {"name": "A"}}
        for message_id in ("same-1", "m-2", "m-3", "m-4", "same-1")
    ]
    items = intake((take(e, f"in:{n}") for n, e in enumerate(events, 1)), EventFilter())
    with ScratchIds(recent=2) as finished:
        send = Recorder(OfflineResponder(config), Tally())
        planned = preview(items, config, send, IdentityStore(), None, finished)
        outcomes = [(p["source"], p["outcome"], p["reason"]) for p in planned]
    assert outcomes == [
        ("in:1", "planned", ""),
        ("in:2", "planned", ""),
        ("in:3", "planned", ""),
        ("in:4", "planned", ""),
        ("in:5", "skipped", "already done"),
    ]


# -- SpillTable: a dict in bounded memory ---------------------------------------------------------

KEYS: list[Any] = [
    *(f"u-{n}" for n in range(40)),
    *range(20),
    *(str(n) for n in range(20)),  # 5 and "5" are two keys
    *(("person", n) for n in range(10)),
    *(("person", str(n)) for n in range(10)),
]


@pytest.mark.parametrize(("entries", "batch"), [(1, 1), (3, 2), (7, 64), (1000, 1024)])
def test_a_spill_table_answers_as_a_dict_does(entries: int, batch: int) -> None:
    """Random operations on a dict and on a table whose memory holds only `entries` keys (its
    own `in` and `setdefault` too): the same answers at every step, and never more than
    `entries` + `batch` keys in memory."""
    chance = random.Random(entries)
    expected: dict[Any, Any] = {}
    with Spill(entries, batch=batch) as spill:
        table = spill.table()
        for step in range(3000):
            key = chance.choice(KEYS)
            action = chance.random()
            if action < 0.45:
                value = chance.choice([step, f"v{step}", frozenset({f"rpd:{step}"}), {"a": "t"}])
                table[key] = value
                expected[key] = value
            elif action < 0.6:
                assert table.pop(key, "none") == expected.pop(key, "none")
            elif action < 0.65 and key in expected:
                del table[key]
                del expected[key]
            elif action < 0.7:  # the input's aliases: the first of each key stays
                assert table.setdefault(key, step) == expected.setdefault(key, step)
            elif action < 0.8:
                assert (key in table) == (key in expected)
            else:
                assert table.get(key) == expected.get(key)
            assert table.in_memory <= entries + batch
        assert len(table) == len(expected)
        assert dict(table.items()) == expected
        table.clear()
        assert [key for key in KEYS if key in table] == [] and len(table) == 0


def test_a_spill_table_keeps_only_its_budget_in_memory() -> None:
    with Spill(100, batch=10) as spill:
        table: SpillTable[str, int] = spill.table()
        for n in range(10_000):
            table[f"u-{n}"] = n
        assert table.in_memory <= 110
        assert [table[f"u-{n}"] for n in (0, 5_000, 9_999)] == [0, 5_000, 9_999]
        assert table.get("u-10000") is None
        assert bool(table) and not spill.table()


def test_a_spill_table_keeps_the_newest_written_keys_and_reads_reorder_nothing() -> None:
    """A read is one memory lookup: it does not make a key newer. The key written longest ago
    moves out first, read or not, and a write (or a read back from the database) makes it the
    newest again; every answer stays a dict's."""
    with Spill(2, batch=1) as spill:
        table: SpillTable[str, int] = spill.table()
        table["a"], table["b"] = 1, 2
        assert table.get("a") == 1  # read: "a" stays the oldest
        table["c"] = 3
        assert list(table.hot) == ["b", "c"]
        assert table.get("a") == 1  # back from the database, as the newest
        assert list(table.hot) == ["c", "a"]
        table["c"] = 30  # a write makes "c" the newest
        table["d"] = 4
        assert list(table.hot) == ["c", "d"]
        assert dict(table.items()) == {"a": 1, "b": 2, "c": 30, "d": 4}


def test_an_empty_budget_and_a_filter_of_odd_size_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        Spill(0)
    with pytest.raises(ValueError, match="power of two"):
        Finished(None, ScratchIds(), filter_bits=1000)


def test_the_read_cache_drops_the_least_recently_used() -> None:
    cache: Lru[str, int | None] = Lru(2)
    cache.put("a", 1)
    cache.put("b", None)  # "not there" is an answer too
    assert cache.get("a") == 1  # now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b", "absent"), cache.get("c")) == (1, "absent", 3)
    cache.put("d", 4)  # "a" is now the least recently used
    assert (cache.get("a", "absent"), cache.get("c"), cache.get("d")) == ("absent", 3, 4)


def test_memory_known_on_spill_tables_learns_as_with_dicts() -> None:
    """The dry-run of a run without a state: the same plans with one key in memory per table."""
    config = PlanConfig(user_id_field="f" * 40, create_persons=True)
    events: list[dict[str, Any]] = []
    for n in range(30):
        events.append(
            {"type": "identify", "messageId": f"i-{n}", "userId": f"u-{n}", "traits": {"name": "A"}}
        )
    for n in range(30):  # each a lookup of a person that an earlier event would create
        events.append(
            {"type": "identify", "messageId": f"j-{n}", "userId": f"u-{n}", "traits": {"name": "B"}}
        )

    def plan(known: IdentityStore) -> list[tuple[str, str, list[tuple[str, str]]]]:
        items = intake((take(e, f"in:{n}") for n, e in enumerate(events, 1)), EventFilter())
        planned = preview(items, config, Recorder(OfflineResponder(config), Tally()), known)
        return [
            (p["source"], p["outcome"], [(r["method"], r["path"]) for r in p["requests"]])
            for p in planned
        ]

    with Spill(1, batch=1) as spill:
        bounded = plan(IdentityStore(spill.table))
    unbounded = plan(IdentityStore())
    assert bounded == unbounded
    assert unbounded[30] == ("in:31", "planned", [("PATCH", "/api/v2/persons/{person:u-0}")])


def test_root_causes_in_a_bounded_table_still_explain_the_failures_that_follow() -> None:
    """Each userId's first failure (Tally.roots) is kept past the budget too."""
    root = Outcome(status="failed", reason="cannot convert plan", stage="validate")
    no_name = Outcome(
        status="failed", reason="cannot create person without a name", stage="create person"
    )

    def event(kind: str, user: str, n: int) -> Any:
        value = {"type": kind, "messageId": f"m-{n}", "userId": user, "event": "x"}
        return parse_event(value, f"f:{n}")

    with Spill(1, batch=1) as spill:
        tally = Tally(roots=spill.table())
        for n in range(20):
            assert tally.add_outcome("identify", root, event("identify", f"u-{n}", n)) is None
        explained = [
            tally.add_outcome("track", no_name, event("track", f"u-{n}", 100 + n))
            for n in range(20)
        ]
    assert tally.knock_ons == {"cannot convert plan": 20}
    assert explained[0] is not None
    assert explained[0].told == (
        "no person for u-0: its identify failed earlier (cannot convert plan)"
    )


def test_an_outcome_writing_two_records_as_keys_first_move_out_keeps_both_records_times() -> None:
    # A group event writes the organization, then its person. When the first write moves the
    # bounded table's keys out for the first time, the person's stored times are out of memory:
    # they are read there and merged, not replaced (the older event must not win a field).
    person, org = ("person", "1"), ("org", "2")
    with Spill(1, batch=1) as spill:
        store = IdentityStore(spill.table)
        store.learn(
            Outcome(
                status="sent",
                learned=Learned(recency={person: {"name": "2024-01-01", "email": "2024-01-05"}}),
            )
        )
        store.learn(
            Outcome(
                status="sent",
                learned=Learned(
                    recency={org: {"name": "2024-01-02"}, person: {"name": "2024-01-03"}}
                ),
            )
        )

        assert dict(store.times_at(person)) == {"name": "2024-01-03", "email": "2024-01-05"}
        assert dict(store.times_at(org)) == {"name": "2024-01-02"}


@pytest.mark.parametrize("entries", [3, 100])
def test_the_input_s_aliases_read_after_the_first_pass_answer_as_the_table_does(
    entries: int,
) -> None:
    """input_aliases gives the plans its table `settled`: its memory while every alias is there
    (3 aliases in a budget of 100), else the table (moved out past a budget of 3)."""
    lines = [
        {"type": "alias", "messageId": f"a-{n}", "previousId": f"old-{n}", "userId": f"u-{n}"}
        for n in range(6)
    ]
    with Spill(entries, batch=1) as spill:
        table = spill.table()
        aliases = input_aliases((take(line, "in") for line in lines), None, table)
        assert (aliases is table) == (entries == 3)
        assert [(f"old-{n}" in aliases, aliases.get(f"old-{n}")) for n in range(7)] == [
            *((True, f"u-{n}") for n in range(6)),
            (False, None),
        ]
        assert "u-0" not in aliases and dict(aliases) == dict(table)
