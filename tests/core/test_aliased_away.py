"""A userId Pipedrive does not find while the input aliases it to another (issue 20 item 1): an
earlier run's alias merged or re-keyed it away, so its person is the one of the userId it was
aliased to. A replay without the state then creates no second person, lead or merge."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from helpers_core import (
    CONFIG,
    ROLE,
    USER_FIELD,
    Call,
    check,
    create_person,
    leads_of,
    ok,
    patch_person,
    run,
    search_person,
)

from rudder_pipedrive_cli.core.errors import Warned
from rudder_pipedrive_cli.core.events import Event, parse_event, take
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.identity_cache import (
    MAX_MERGE_HOPS,
    AliasesRead,
    IdentityStore,
    Walked,
    ahead_of,
    aliased_to,
)
from rudder_pipedrive_cli.core.index import input_aliases
from rudder_pipedrive_cli.core.intake import intake
from rudder_pipedrive_cli.core.ordering import OrderKeys
from rudder_pipedrive_cli.io.scratch import Spill

ALIASED = replace(CONFIG, aliases={"u-a": "u-b", "u-b": "u-c"})
IDENTIFY_A: dict[str, Any] = {"type": "identify", "userId": "u-a", "traits": {"name": "A"}}


def warning(target: str, pid: int) -> str:
    return (
        f"userId u-a not found: the input aliases it to {target}, whose person {pid} is taken "
        "as its own (the alias makes them one person: none is created for it)"
    )


def test_its_person_is_the_one_of_the_userid_it_was_aliased_to() -> None:
    calls = [search_person("u-a"), search_person("u-b", 42), patch_person(42, {"name": "A"})]
    outcome = run(IDENTIFY_A, calls, config=ALIASED)
    check(
        outcome,
        status="sent",
        identities={("person", "u-a"): 42},
        warnings=[warning("u-b", 42)],
    )
    assert isinstance(outcome.warnings[0], Warned)
    assert outcome.warnings[0].redacted == (
        "a userId not found is taken as the person of the userId the input aliases it to (the "
        "alias makes them one person: none is created for it)"
    )


def test_on_a_first_run_its_warning_claims_no_earlier_alias_but_the_one_to_come() -> None:
    """identify u-b, identify u-a, alias u-a -> u-b, on a first run: u-a's identify takes u-b's
    person, as a rerun without the state must (no second person), where no alias had merged or
    re-keyed anything yet; its warning said one had. The alias then finds one person."""
    aliased = replace(CONFIG, aliases={"u-a": "u-b"})
    known = IdentityStore()
    b_body = {"name": "B", "custom_fields": {USER_FIELD: "u-b"}}
    identify_b = {"type": "identify", "userId": "u-b", "traits": {"name": "B"}}
    known.learn(run(identify_b, [search_person("u-b"), create_person(b_body, 42)], config=aliased))
    a_traits = {"type": "identify", "userId": "u-a", "traits": {"role": "CTO"}}
    calls = [search_person("u-a"), patch_person(42, {"custom_fields": {ROLE: "CTO"}})]
    taken = run(a_traits, calls, config=aliased, known=known)
    check(taken, status="sent", warnings=[warning("u-b", 42)])
    assert "earlier" not in taken.warnings[0] and "earlier" not in taken.warnings[0].redacted
    known.learn(taken)
    alias = {"type": "alias", "previousId": "u-a", "userId": "u-b"}
    check(run(alias, [], config=aliased, known=known), status="unchanged", warnings=[])


def test_a_chain_of_aliases_is_followed() -> None:
    calls = [
        search_person("u-a"),
        search_person("u-b"),
        search_person("u-c", 7),
        patch_person(7, {"name": "A"}),
    ]
    outcome = run(IDENTIFY_A, calls, config=ALIASED)
    check(outcome, status="sent", identities={("person", "u-a"): 7})


def test_a_cached_target_is_not_searched() -> None:
    known = IdentityStore()
    known.persons["u-b"] = 42
    calls = [search_person("u-a"), patch_person(42, {"name": "A"})]
    check(run(IDENTIFY_A, calls, config=ALIASED, known=known), status="sent")


def test_a_cached_target_found_gone_is_forgotten_and_searched_again() -> None:
    """u-b's cached person 42 is gone (410): u-a's identify failed retryable ('person 42 no
    longer exists'), on every rerun, as the cache kept it. Gone, it is forgotten for u-b (the
    cache drops it) and for u-a, both are searched again, and said of nothing."""
    known = IdentityStore()
    known.persons["u-b"] = 42
    c_body = {"name": "A", "custom_fields": {USER_FIELD: "u-a"}}
    calls = [
        search_person("u-a"),
        patch_person(42, {"name": "A"}, status=410),
        search_person("u-a"),
        search_person("u-b"),
        search_person("u-c", 7),
        patch_person(7, {"name": "A"}),
    ]
    outcome = run(IDENTIFY_A, calls, config=ALIASED, known=known)
    check(
        outcome,
        status="sent",
        identities={("person", "u-a"): 7, ("person", "u-b"): None},
        warnings=[warning("u-c", 7)],
    )
    looped = replace(CONFIG, aliases={"u-a": "u-b", "u-b": "u-a"})
    calls = [search_person("u-a"), patch_person(42, {"name": "A"}, status=410)]
    calls += [search_person("u-a"), search_person("u-b"), create_person(c_body, pid=9)]
    outcome = run(IDENTIFY_A, calls, config=looped, known=known)
    check(
        outcome,
        status="sent",
        identities={("person", "u-a"): 9, ("person", "u-b"): None},
        warnings=[],
    )
    known.learn(outcome)
    assert known.person_id("u-b") is None


def test_found_nowhere_it_is_created_as_usual() -> None:
    looped = replace(CONFIG, aliases={"u-a": "u-b", "u-b": "u-a"})
    body = {"name": "A", "custom_fields": {USER_FIELD: "u-a"}}
    calls = [search_person("u-a"), search_person("u-b"), create_person(body, pid=9)]
    outcome = run(IDENTIFY_A, calls, config=looped)
    check(outcome, status="sent", identities={("person", "u-a"): 9}, warnings=[])


def test_its_track_finds_the_lead_an_earlier_run_made_on_that_person() -> None:
    raw = {"type": "track", "userId": "u-a", "event": "Signed Up"}
    calls = [search_person("u-a"), search_person("u-b", 42), *leads_of(42, "rpd:m-1")]
    check(run(raw, calls, config=ALIASED), status="skipped", reason="already done")


def test_without_aliases_in_the_input_nothing_more_is_searched() -> None:
    body = {"name": "A", "custom_fields": {USER_FIELD: "u-a"}}
    outcome = run(IDENTIFY_A, [search_person("u-a"), create_person(body, pid=9)])
    check(outcome, status="sent")


def items(*raws: dict[str, Any]) -> list[Event]:
    raw_items = [take(raw, f"f:{n}") for n, raw in enumerate(raws, 1)]
    return list(intake(raw_items, EventFilter(types=frozenset({"alias", "identify"}))))


def alias(number: int, previous_id: str, user_id: str) -> dict[str, Any]:
    return {"type": "alias", "messageId": str(number), "previousId": previous_id, "userId": user_id}


def test_the_first_pass_collects_where_the_aliases_that_will_run_lead() -> None:
    """Every alias of a previousId, in input order, and chains of them (`alias_into`): u-a -> u-b
    then u-a -> u-x leads u-a on through u-b, and u-b (merged as u-a's person into u-x's) with
    it; it kept the first alias of u-a alone, so a rerun without the state found neither u-a nor
    u-b (their persons merged into u-x's) and created both again."""
    found = input_aliases(
        items(
            alias(1, "u-a", "u-b"),
            alias(2, "u-a", "u-x"),  # u-a's person is u-b's: it goes into u-x's
            {"type": "alias", "messageId": "3", "previousId": "u-c"},  # no userId
            {"type": "track", "messageId": "4", "userId": "u-d", "event": "E"},  # filtered out
            {"type": "identify", "messageId": "5", "userId": "u-e"},
            alias(6, "u-b", "u-a"),  # one person already: nothing
            alias(7, "u-y", "u-a"),  # into u-a's person, which ends at u-x's
            alias(8, "u-x", "u-z"),
        )
    )
    assert found == {"u-a": "u-b", "u-b": "u-x", "u-y": "u-a", "u-x": "u-z"}
    assert list(aliased_to(found, "u-a")) == ["u-b", "u-x", "u-z"]
    assert list(aliased_to(found, "u-y")) == ["u-a", "u-b", "u-x", "u-z"]


def test_an_alias_to_a_userid_an_earlier_alias_named_leads_through_that_userid() -> None:
    """a -> b, c -> d, then a -> c: b's person (a's) goes where c's person is, which is c's own
    when c -> d failed (neither person found: tests/e2e's
    test_send_alias_after_a_failed_alias_rerun_fresh.py), else d's. b was linked to d, the end of
    c's chain, so a rerun without the state looked for b's person at d alone, found none (it was
    c's), and made b's person and its lead again."""
    found = input_aliases(
        items(alias(1, "u-a", "u-b"), alias(2, "u-c", "u-d"), alias(3, "u-a", "u-c"))
    )
    assert found == {"u-a": "u-b", "u-c": "u-d", "u-b": "u-c"}
    assert list(aliased_to(found, "u-b")) == ["u-c", "u-d"]


def test_the_first_pass_notes_each_previousid_s_own_aliases_in_input_order() -> None:
    """Beside the chains (`alias_into`), each alias of a previousId, whatever the chains link
    (u-a -> u-c links u-b on to u-c): an event between two of them follows the later first."""
    direct: dict[str, list[str]] = {}
    found = input_aliases(
        items(
            alias(1, "u-a", "u-b"),
            {"type": "alias", "messageId": "2", "previousId": "u-a"},  # no userId
            alias(3, "u-x", "u-a"),
            alias(4, "u-a", "u-c"),
        ),
        None,
        None,
        direct,
    )
    assert found == {"u-a": "u-b", "u-x": "u-a", "u-b": "u-c"}
    assert direct == {"u-a": ["u-b", "u-c"], "u-x": ["u-a"]}


class Asked(dict[str, Any]):
    """A table that counts the lookups made of it, and keeps each value written."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked = 0
        self.written: list[Any] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.asked += 1
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked += 1
        return super().__contains__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.append(value)
        super().__setitem__(key, value)


def test_a_previousid_aliased_again_walks_its_chain_on_from_where_it_ended() -> None:
    """An anonymousId aliased at every login: each alias of it asks the table a few times (is
    it there, where its chain ended leads, is the userId there), not once for each userId along
    its chain (up to MAX_MERGE_HOPS; 200,000 aliases of 1,000 previousIds took 2 minutes, each
    lookup SQLite's once the table was past its memory): the first 2, the second 5 (a chain of
    two userIds is walked from its start), the third 6, each on to the chain's cut at
    MAX_MERGE_HOPS 5 (is the previousId there, where the chain's end leads now, and on from
    there, is the end there, is the userId there), each past it 3."""
    aliases = Asked()
    input_aliases(
        items(*(alias(n, "anon", f"u-{n}") for n in range(MAX_MERGE_HOPS + 10))), None, aliases
    )
    assert aliases.asked == 2 + 5 + 6 + 5 * (MAX_MERGE_HOPS - 2) + 3 * 9
    assert aliases == {"anon": "u-0", **{f"u-{n}": f"u-{n + 1}" for n in range(MAX_MERGE_HOPS)}}


def test_a_previousid_s_own_aliases_grow_one_list_not_a_copy_each() -> None:
    """100,000 aliases of one previousId copied 5e9 userIds when each made a new tuple."""
    direct = Asked()
    input_aliases(items(*(alias(n, "anon", f"u-{n}") for n in range(5))), None, None, direct)
    assert direct == {"anon": [f"u-{n}" for n in range(5)]}
    assert all(value is direct["anon"] for value in direct.written)


def test_a_bounded_table_moving_rows_out_mid_pass_keeps_each_previousid_s_own_aliases() -> None:
    """The first pass reads a bounded table's memory while it holds all its keys (`table_get`),
    and the table once rows move out: each previousId's own aliases, in input order, as a dict
    takes them (30 previousIds, 2 rows in memory)."""
    rnd = random.Random(7)
    pairs = [(f"p-{rnd.randrange(30)}", f"u-{rnd.randrange(50)}") for _ in range(300)]
    events = items(*(alias(n, a, b) for n, (a, b) in enumerate(pairs)))
    expected: dict[str, list[str]] = {}
    for previous, user in pairs:
        expected.setdefault(previous, []).append(user)
    with Spill(2, batch=2) as spill:
        direct = spill.table()
        input_aliases(events, None, spill.table(), direct)
        assert direct.moved
        assert {key: direct[key] for key in direct} == expected


def random_aliases(rnd: random.Random) -> tuple[dict[str, str], list[Event]]:
    """400 aliases among a few or many userIds at random, and the links an older rpd kept before
    them (a loop among them)."""
    users = [f"u-{n}" for n in range(rnd.choice((4, 12, 90)))]
    kept = {
        a: b
        for a, b in zip(users, rnd.sample(users, len(users)), strict=True)
        if rnd.random() < 0.2
    }
    ring = rnd.sample(users, rnd.randint(2, 4))  # a loop an older rpd kept
    kept.update(zip(ring, ring[1:] + ring[:1], strict=True))
    pairs = [(rnd.choice(users), rnd.choice(users)) for _ in range(400)]
    return kept, items(*(alias(n, a, b) for n, (a, b) in enumerate(pairs)))


@pytest.mark.parametrize("seed", range(40))
def test_chains_walked_on_from_where_they_ended_are_the_chains_walked_from_their_start(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pass keeps the chains it walked (`Walked`) and walks them on from their end:
    what it links is what walking each from its start links, loops an older rpd kept and chains
    cut at MAX_MERGE_HOPS too."""
    kept, events = random_aliases(random.Random(seed))
    walked = input_aliases(events, None, dict(kept))
    monkeypatch.setattr(Walked, "chain", lambda _, aliases, key: (key, *aliased_to(aliases, key)))
    assert walked == input_aliases(events, None, dict(kept))


def read_in_order(
    direct: dict[str, tuple[str, ...]], chains: dict[str, str], *raws: Any
) -> list[Event]:
    """`raws` as events the planning pass read in turn (`AliasesRead`)."""
    read = AliasesRead(direct, chains)
    events = [parse_event({"messageId": str(n), **raw}, f"f:{n}") for n, raw in enumerate(raws)]
    for event in events:
        read(event)
    return events


def among(event: Event, user: str) -> tuple[int, tuple[str, ...]] | None:
    """Where the planning pass says `event` stands among `user`'s own aliases."""
    at, read = event.among_aliases
    return read.among(user, at)


def test_the_planning_pass_marks_where_an_event_stands_among_each_userid_s_aliases() -> None:
    """As the planning pass reads the input in order: each event with a userId, where it was
    read; for u-a (aliased to u-b, then u-c), an event before both (none before it), between
    them (1 before it), with the userIds along u-a's chain that an event before it named (not an
    alias: u-a -> u-b names u-b, but makes no person), and after both: none (its chain alone).
    An alias of u-a stands before itself. What the pass reads later changes none of it (u-c
    named after the first three)."""
    chains = {"u-a": "u-b", "u-b": "u-c"}
    events = read_in_order(
        {"u-a": ("u-b", "u-c")},
        chains,
        IDENTIFY_A,
        alias(1, "u-a", "u-b"),
        IDENTIFY_A,
        {**IDENTIFY_A, "userId": "u-c"},
        alias(4, "u-y", "u-a"),  # not one of u-a's own
        IDENTIFY_A,
        alias(6, "u-a", "u-c"),
        IDENTIFY_A,
    )
    assert [event.among_aliases[0] for event in events] == list(range(8))
    assert [among(event, "u-a") for event in events] == [
        (0, ()), (0, ()), (1, ()), (1, ()), (1, ("u-c",)), (1, ("u-c",)), (1, ("u-c",)), None,
    ]  # fmt: skip
    assert [among(event, "u-c") for event in events] == [None] * 8  # no aliases of its own
    direct = {"u-a": ("u-b", "u-c")}
    orders = [list(ahead_of(chains, direct, "u-a", events[at])) for at in (0, 2, 5, 7)]
    # Before both, u-a's person is where the last alias took it: u-c, then u-b.
    assert orders == [["u-c", "u-b"], ["u-c", "u-b"], ["u-c", "u-b"], ["u-b", "u-c"]]
    named = read_in_order(
        {"u-a": ("u-b", "u-c")},
        chains,
        alias(0, "u-a", "u-b"),
        {**IDENTIFY_A, "userId": "u-b"},
        IDENTIFY_A,
    )[-1]  # u-b's person was there when it ran: taken first
    assert (among(named, "u-a"), list(ahead_of(chains, direct, "u-a", named))) == (
        (1, ("u-b",)),
        ["u-b", "u-c"],
    )
    assert list(ahead_of(chains, direct, "u-a", parse_event(IDENTIFY_A, "f:1"))) == [
        "u-b",
        "u-c",
    ]  # not read (no previousId aliased twice): its chain


# identify u-263, alias u-263 -> u-7, an event of u-150, alias u-150 -> u-263, identify u-7,
# alias u-263 -> u-53: chain u-150 -> u-263 -> u-7 -> u-53 (tests/e2e's
# test_send_realias_after_a_failed_alias_rerun_fresh.py, narrowed from the mixed workload).
HOPS = {"u-150": "u-263", "u-263": "u-7", "u-7": "u-53"}
HOPS_OWN = {"u-263": ("u-7", "u-53"), "u-150": ("u-263",)}


def hop_events(event: dict[str, Any]) -> list[Event]:
    return read_in_order(
        HOPS_OWN,
        HOPS,
        {**IDENTIFY_A, "userId": "u-263"},
        alias(1, "u-263", "u-7"),
        event,
        alias(3, "u-150", "u-263"),
        {**IDENTIFY_A, "userId": "u-7"},
        alias(5, "u-263", "u-53"),
        event,
    )


def test_the_next_hop_is_looked_at_as_the_event_stands_among_its_own_aliases() -> None:
    """An event of u-150 before u-150's one alias follows its chain to u-263, where it comes
    between u-263's two aliases: there it looks where u-263's alias after it leads (u-53) before
    the rest of the chain (u-7, named after it); after u-263's last alias, the chain alone."""
    events = hop_events({**IDENTIFY_A, "userId": "u-150"})
    between, after = events[2], events[-1]
    assert among(between, "u-263") == (1, ())
    assert list(ahead_of(HOPS, HOPS_OWN, "u-150", between)) == ["u-263", "u-53", "u-7"]
    assert list(ahead_of(HOPS, HOPS_OWN, "u-150", after)) == ["u-263", "u-7", "u-53"]
    # u-263's own event, before both its aliases: where the last took its person first.
    assert list(ahead_of(HOPS, HOPS_OWN, "u-263", events[0])) == ["u-53", "u-7"]


def test_a_rerun_takes_the_person_the_next_hop_s_later_alias_took() -> None:
    """The rerun of the event of u-150 between u-263's aliases, u-263's person 1 re-keyed to u-53
    by the first run, u-7's person 2 made after the event: u-53's person 1, as the first run
    took u-263's person 1, not u-7's 2, the first found along the chain (a deal made twice)."""
    config = replace(CONFIG, aliases=HOPS, aliases_of=HOPS_OWN)
    raw = {**IDENTIFY_A, "userId": "u-150"}
    read = AliasesRead(HOPS_OWN, HOPS)
    for event in hop_events(raw)[:2]:
        read(event)
    calls = [
        search_person("u-150"),
        search_person("u-263"),
        search_person("u-53", 1),
        patch_person(1, {"name": "A"}),
    ]
    outcome = run(raw, calls, config=config, read=read)
    found = warning("u-53", 1).replace("u-a", "u-150")
    check(outcome, status="sent", identities={("person", "u-150"): 1}, warnings=[found])


@pytest.mark.parametrize("seed", range(40))
def test_the_userids_ahead_of_an_event_read_are_its_chain_s_each_once(seed: int) -> None:
    """Wherever the planning pass read an event of a userId, `ahead_of` gives each userId along
    its chain once (as `aliased_to`, in another order), never the userId itself: random aliases
    (the chains the first pass links, over a loop an older rpd kept), an event of each userId
    before, between and after each two of its aliases, some of them named before."""
    rnd = random.Random(seed)
    kept, aliased = random_aliases(rnd)
    direct: dict[str, list[str]] = {}
    aliases = input_aliases(aliased, None, dict(kept), direct)
    users = sorted({user for pair in aliases.items() for user in pair})
    raws: list[dict[str, Any]] = []
    for event in aliased:
        raws.append(event.raw)
        if rnd.random() < 0.3:
            raws.append({**IDENTIFY_A, "userId": rnd.choice(users)})
    raws += [{**IDENTIFY_A, "userId": user} for user in users]
    read = AliasesRead(direct, aliases)
    compared = 0
    for n, raw in enumerate(raws):
        event = parse_event({"messageId": str(n), **raw}, f"f:{n}")
        read(event)
        key = event.user_id
        if event.type == "alias" or key is None:
            continue
        chain = list(aliased_to(aliases, key))
        found = list(ahead_of(aliases, direct, key, event))
        assert len(found) == len(set(found)) and key not in found
        if len(set(chain) | set(found)) < MAX_MERGE_HOPS:
            assert set(chain) <= set(found)
        compared += 1
    assert compared > len(users)


def test_the_userids_ahead_of_an_event_among_aliases_are_walked_as_they_are_asked_for() -> None:
    """`find` stops at the first person found: an event of u-a after the first of its 40 aliases
    (u-a -> u-0 ... u-a -> u-39: chain u-a to u-0 to ... u-39) is given u-39 once u-a's chain is
    walked (41 lookups: which of it an event before it named), u-38 after one lookup more (where
    u-39 leads), u-0 last, after each one's chain and u-a's (862: a list of them all, each walked
    along its chain, read 821 before any search)."""
    direct: dict[str, list[str]] = {}
    aliases = Asked()
    raws = [alias(n, "u-a", f"u-{n}") for n in range(40)]
    input_aliases(items(*raws), None, aliases, direct)
    event = read_in_order(direct, aliases, raws[0], IDENTIFY_A, *raws[1:])[1]
    aliases.asked = 0
    order = ahead_of(aliases, direct, "u-a", event)
    assert (next(order), aliases.asked) == ("u-39", 41)
    assert (next(order), aliases.asked) == ("u-38", 42)
    assert [*order, aliases.asked] == [*(f"u-{n}" for n in range(37, -1, -1)), 862]


REALIASED = replace(
    CONFIG,
    aliases={"u-a": "u-b", "u-b": "u-c"},  # alias u-a -> u-b, then u-a -> u-c
    aliases_of={"u-a": ("u-b", "u-c")},
)


def test_an_event_between_two_of_its_userid_s_aliases_looks_where_the_later_lead_first() -> None:
    """alias u-a -> u-b (neither found), track u-a (u-a's person 1), identify u-b (person 2),
    alias u-a -> u-c (person 1 re-keyed to u-c), sent again with a fresh state: the event of u-a
    between its two aliases took u-b's person 2, the first found along u-a -> u-b -> u-c, where
    u-a -> u-c took its person: u-c's 1 (tests/e2e's
    test_send_realias_after_a_failed_alias_rerun_fresh.py, a note made twice)."""
    read = AliasesRead(REALIASED.aliases_of, REALIASED.aliases)
    read(parse_event(alias(1, "u-a", "u-b"), "f:1"))
    calls = [search_person("u-a"), search_person("u-c", 1), patch_person(1, {"name": "A"})]
    outcome = run(IDENTIFY_A, calls, config=REALIASED, read=read)
    check(outcome, status="sent", identities={("person", "u-a"): 1}, warnings=[warning("u-c", 1)])
    # Before both, too: the last alias took u-a's person wherever the first did (or did not).
    calls = [search_person("u-a"), search_person("u-c", 1), patch_person(1, {"name": "A"})]
    unread = AliasesRead(REALIASED.aliases_of, REALIASED.aliases)
    before = run(IDENTIFY_A, calls, config=REALIASED, read=unread)
    check(before, status="sent", identities={("person", "u-a"): 1}, warnings=[warning("u-c", 1)])
    # After both, it follows u-a's chain as ever: u-b's person first.
    after = AliasesRead(REALIASED.aliases_of, REALIASED.aliases)
    for number, user in enumerate(("u-b", "u-c")):
        after(parse_event(alias(number, "u-a", user), f"f:{number}"))
    calls = [search_person("u-a"), search_person("u-b", 2), patch_person(2, {"name": "A"})]
    last = run(IDENTIFY_A, calls, config=REALIASED, read=after)
    check(last, status="sent", identities={("person", "u-a"): 2}, warnings=[warning("u-b", 2)])


RERUN = replace(
    CONFIG, aliases=input_aliases(items(alias(1, "u-a", "u-b"), alias(2, "u-a", "u-c")))
)


@pytest.mark.parametrize("user", ["u-a", "u-b"])
def test_a_rerun_takes_each_userid_as_the_person_its_aliases_lead_to(user: str) -> None:
    """identify u-a, identify u-b, alias u-a -> u-b, alias u-a -> u-c sent, then again with a
    fresh state: neither u-a nor u-b is found (merged into u-c's person); each takes u-c's, the
    first person Pipedrive still has where the aliases lead it (tests/e2e's
    test_send_alias_twice_rerun_fresh.py: a track of u-a's made its lead twice)."""
    calls = [search_person(user)]
    calls += [search_person("u-b")] if user == "u-a" else []
    calls += [search_person("u-c", 3), patch_person(3, {"name": "A"})]
    outcome = run({**IDENTIFY_A, "userId": user}, calls, config=RERUN)
    check(
        outcome,
        status="sent",
        identities={("person", user): 3},
        warnings=[warning("u-c", 3).replace("u-a", user)],
    )


def test_events_of_userids_the_input_aliases_keep_their_order_from_the_start() -> None:
    order = OrderKeys(IdentityStore(), {"u-a": "u-b"})
    first = order(parse_event({**IDENTIFY_A, "messageId": "1"}, "f:1"))
    second = order(parse_event({**IDENTIFY_A, "messageId": "2", "userId": "u-b"}, "f:2"))
    assert first & second == {"u:u-b"}
    assert (
        OrderKeys(IdentityStore())(parse_event({**IDENTIFY_A, "messageId": "1"}, "f:1")) & {"u:u-b"}
        == frozenset()
    )


ALIAS_A_B = {"type": "alias", "previousId": "u-a", "userId": "u-b"}


def test_an_alias_whose_userid_the_aliases_lead_to_its_previous_person_is_unchanged() -> None:
    """identify u-a, alias u-a -> u-b (a re-key), alias u-a -> u-c (a merge) sent, then again
    with a fresh state: u-a's identify took u-c's person 3; its alias to u-b, not found, re-keyed
    that person to u-b (u-c's identify then made another person). The aliases lead u-b to
    person 3, u-a's own: one person already."""
    known = IdentityStore()
    known.persons["u-a"] = 3
    calls = [search_person("u-b"), search_person("u-c", 3)]
    outcome = run(ALIAS_A_B, calls, config=RERUN, known=known)
    check(
        outcome,
        status="unchanged",
        identities={("person", "u-a"): 3, ("person", "u-b"): 3},
        warnings=[warning("u-c", 3).replace("u-a", "u-b")],
    )


def test_an_alias_whose_userid_the_aliases_lead_to_another_person_re_keys_its_previous() -> None:
    """A first run (tests/e2e/test_send_alias_chain_order.py): u-b is new, the alias re-keys
    u-a's person to it; that u-b's aliases lead on to u-c's person is for a later alias."""
    known = IdentityStore()
    known.persons["u-a"] = 1
    calls = [
        search_person("u-b"),
        search_person("u-c", 3),
        patch_person(1, {"custom_fields": {USER_FIELD: "u-b"}}),
    ]
    outcome = run(ALIAS_A_B, calls, config=RERUN, known=known)
    check(outcome, status="sent", identities={("person", "u-a"): 1, ("person", "u-b"): 1})


def test_an_alias_of_a_chain_longer_than_is_followed_links_nothing() -> None:
    """A chain of aliases is followed MAX_MERGE_HOPS userIds deep (a loop in corrupt data else):
    an alias of a userId further along is not linked at a userId inside the chain, whose link
    it would replace."""
    chain = [alias(n, f"u-{n}", f"u-{n + 1}") for n in range(MAX_MERGE_HOPS + 5)]
    found = input_aliases(items(*chain))
    assert len(found) == MAX_MERGE_HOPS + 5
    assert input_aliases(items(alias(99, "u-0", "u-x")), None, dict(found)) == found


def test_both_persons_of_a_merge_left_unknown_gone_it_is_taken_as_the_aliases_persons() -> None:
    """u-a's cached person 7 has a merge into 8 left unknown, and both are gone (8 merged on,
    by u-b's alias in another run): u-a, searched and not found, is taken as the person the
    input's aliases lead it to (u-b's, 42), not created again. `find` named the merge's survivor
    `into` too, the name of the person an alias's userId must lead to: 8, so 42 was refused and
    u-a's identify created a second person."""
    known = IdentityStore(pending=True)
    known.persons.update({"u-a": 7, "u-b": 42})
    known.pending_merges[7] = 8
    gets = [
        Call(method="GET", path=f"/api/v2/persons/{pid}", response=ok({}, 404)) for pid in (7, 8)
    ]
    calls = [*gets, search_person("u-a"), patch_person(42, {"name": "A"})]
    outcome = run(IDENTIFY_A, calls, config=replace(CONFIG, aliases={"u-a": "u-b"}), known=known)
    check(outcome, status="sent", warnings=[warning("u-b", 42)])


def test_an_alias_of_a_loop_an_older_rpd_kept_is_linked_on_from_it() -> None:
    """A state kept by an rpd before alias_into holds the first alias of each previousId, loops
    too (a -> b, then b -> a). An alias of a userId in the loop (a -> c) leads it on to c: it
    was taken for a chain cut at MAX_MERGE_HOPS and linked nothing, so a rerun without those
    userIds' persons cached looked for them at a and b alone."""
    kept = {"u-a": "u-b", "u-b": "u-a"}
    found = input_aliases(items(alias(1, "u-a", "u-c")), None, dict(kept))
    assert found == {"u-a": "u-b", "u-b": "u-c"}
    assert list(aliased_to(found, "u-a")) == ["u-b", "u-c"]
    assert input_aliases(items(alias(2, "u-b", "u-a")), None, dict(kept)) == kept


def test_a_loop_linked_on_in_the_middle_of_a_chain_walked_is_walked_again() -> None:
    """u-z -> u-b walks u-b's chain through the loop an older rpd kept (u-b, u-c, u-a); u-a -> u-d
    links the loop on at u-c, so u-b's chain is u-b, u-c, u-d from then on: u-b -> u-e links u-d
    on, not u-a (as the chain walked before said)."""
    kept = {"u-a": "u-b", "u-b": "u-c", "u-c": "u-a"}
    events = items(alias(1, "u-z", "u-b"), alias(2, "u-a", "u-d"), alias(3, "u-b", "u-e"))
    found = input_aliases(events, None, dict(kept))
    assert found == {"u-a": "u-b", "u-b": "u-c", "u-c": "u-d", "u-z": "u-b", "u-d": "u-e"}
