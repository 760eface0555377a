"""Events sharing an identity take effect in input order while other identities run
concurrently (SPEC 5), seen from the sandbox's records at `--concurrency 32`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e_support import (
    ROLE_FIELD,
    alias,
    example_without_rules,
    group,
    holdings,
    identify,
    rpd_send,
    track,
    write_events,
)

from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
USERS = 40


def one_user(n: int) -> list[dict[str, Any]]:
    """identify, track, identify again (a new role), track: each after the one before."""
    user = f"u-{n}"
    return [
        identify(f"{user}-1", user, name=f"User {n}", role="r1"),
        track(f"{user}-2", user, "First Touch"),
        identify(f"{user}-3", user, role="r2"),
        track(f"{user}-4", user, "Second Touch"),
    ]


def test_one_users_events_keep_their_order_while_users_run_concurrently(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Latency on every answer, and seeded 5xx whose retries back off by a random time, so the
    # users' requests finish in an order unrelated to the input's.
    sandbox = make_sandbox(plan="unlimited", latency_ms=15, fail_5xx=0.05, fault_seed=42)
    events = write_events(
        tmp_path / "events.ndjson", [e for n in range(USERS) for e in one_user(n)]
    )

    # Without track rules: the listings their names need would shift the seeded faults.
    config = tmp_path / "rpd.toml"
    config.write_text(example_without_rules())
    run = rpd_send(sandbox, tmp_path, events, config=config, args=("--concurrency", "32"))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["events"]["sent"] == 4 * USERS
    assert run.report["retries"] > 0
    held = holdings(sandbox)
    # Had the first track run before the identify, it would have failed (no name to create
    # the person with); had the second identify run first, the role would be r1.
    assert held.user_ids() == {f"u-{n}": 1 for n in range(USERS)}
    order = {lead["origin_id"]: index for index, lead in enumerate(held.leads)}
    for n in range(USERS):
        person = held.person(f"u-{n}")
        assert person["name"] == f"User {n}"
        assert person["custom_fields"][ROLE_FIELD] == "r2"  # the later identify, applied last
        first, second = held.lead(f"rpd:u-{n}-2"), held.lead(f"rpd:u-{n}-4")
        assert first["person_id"] == second["person_id"] == person["id"]
        assert order[f"rpd:u-{n}-2"] < order[f"rpd:u-{n}-4"]
        assert first["add_time"] <= second["add_time"]
    # Run one after another, each user's second lead would come right after its first. Running
    # concurrently, other users' leads were created in between for some users (which ones, and
    # how many, depends on the machine's load: one is proof that the users ran concurrently).
    interleaved = [
        n
        for n in range(USERS)
        if any(
            order[f"rpd:u-{n}-2"] < index < order[f"rpd:u-{n}-4"]
            and not origin.startswith(f"rpd:u-{n}-")
            for origin, index in order.items()
        )
    ]
    assert interleaved, order


def test_each_alias_takes_effect_between_the_events_around_it(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # An alias orders against every event: its merge moves whatever was cached to the merged
    # person, which its own identities do not name.
    sandbox = make_sandbox(plan="unlimited", latency_ms=5, fail_5xx=0.05, fault_seed=7)
    stories = [
        [
            identify(f"u-{n}-1", f"u-{n}", name=f"User {n}", role="r1"),
            track(f"u-{n}-2", f"u-{n}", "First Touch"),
            alias(f"u-{n}-3", f"u-{n}", f"u-{n}-new", role="r2"),
            track(f"u-{n}-4", f"u-{n}-new", "Second Touch"),
        ]
        for n in range(10)
    ]
    events = write_events(tmp_path / "events.ndjson", [e for story in stories for e in story])

    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "16"))

    assert run.exit_code == 0, run.stderr
    held = holdings(sandbox)
    assert held.user_ids() == {f"u-{n}-new": 1 for n in range(10)}
    assert held.merges == []  # each alias re-keyed its one person
    for n in range(10):
        person = held.person(f"u-{n}-new")
        assert person["custom_fields"][ROLE_FIELD] == "r2"
        assert {held.lead(f"rpd:u-{n}-{k}")["person_id"] for k in (2, 4)} == {person["id"]}


CHAIN = [
    identify("c1", "ch-a", name="Chain A", role="a"),
    identify("c2", "ch-b", name="Chain B", role="b"),
    identify("c3", "ch-c", name="Chain C", role="c"),
    alias("c4", "ch-a", "ch-b"),
    alias("c5", "ch-b", "ch-c"),
    identify("c6", "ch-a", name="Chain A again", role="a2"),
    track("c7", "ch-a", "After chain", revenue=1, currency="EUR"),
]


def assert_chain_ends_in_one_person(sandbox: Sandbox) -> None:
    held = holdings(sandbox)
    assert held.user_ids() == {"ch-c": 1}  # u-a and u-b were merged into u-c's person
    survivor = held.person("ch-c")
    assert [(m["merged_id"], m["survivor_id"]) for m in held.merges] == [
        (held.merges[0]["merged_id"], held.merges[1]["merged_id"]),
        (held.merges[1]["merged_id"], survivor["id"]),
    ]
    assert survivor["name"] == "Chain A again"  # the identify of u-a after the merges
    assert survivor["custom_fields"][ROLE_FIELD] == "a2"
    assert held.lead("rpd:c7")["person_id"] == survivor["id"]


def test_a_chain_of_aliases_keeps_one_person_in_one_run(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", latency_ms=5)
    events = write_events(tmp_path / "chain.ndjson", CHAIN)
    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "8"))
    assert run.exit_code == 0, run.stderr
    assert_chain_ends_in_one_person(sandbox)


def test_a_chain_of_aliases_keeps_one_person_across_runs_sharing_a_state(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # The cache maps u-a to u-b's person after the first merge; the second merge moves that
    # person into u-c's, and a later run must follow it there instead of creating u-a again.
    sandbox = make_sandbox(plan="unlimited")
    state = tmp_path / "state.sqlite"
    for name, part in (("one", CHAIN[:4]), ("two", CHAIN[4:5]), ("three", CHAIN[5:])):
        events = write_events(tmp_path / f"{name}.ndjson", part)
        run = rpd_send(sandbox, tmp_path, events, state=state, name=name)
        assert run.exit_code == 0, run.stderr
    assert_chain_ends_in_one_person(sandbox)


def test_a_merge_that_moves_unlisted_leads_makes_the_survivor_list_them(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Run 1 sends only the track: u-a's person and its lead. Run 2 (a fresh state) creates u-b,
    # merges u-a into it (moving the lead rpd:m4), then meets the track again: the survivor was
    # new to this run, but its leads are no longer "none", so they are listed, not assumed.
    sandbox = make_sandbox(plan="unlimited")
    signed_up = track("m4", "u-a", "Signed Up") | {"context": {"traits": {"name": "Ann"}}}
    events = write_events(
        tmp_path / "events.ndjson",
        [
            identify("m1", "u-a", name="Ann"),
            identify("m2", "u-b", name="Bob"),
            alias("m3", "u-a", "u-b"),
            signed_up,
        ],
    )
    one = rpd_send(
        sandbox, tmp_path, events, args=("--type", "track"), state=tmp_path / "1.sqlite", name="1"
    )
    assert one.exit_code == 0, one.stderr
    two = rpd_send(sandbox, tmp_path, events, state=tmp_path / "2.sqlite", name="2")
    assert two.exit_code == 0, two.stderr
    held = holdings(sandbox)
    assert held.origin_ids() == {"rpd:m4": 1}
    assert held.lead("rpd:m4")["person_id"] == held.person("u-b")["id"]


AFTER_MERGE = [
    identify("o4", "u-b", name="First (b)"),
    identify("o5", "u-a", name="Second (a)"),
    group("o6", "u-b", "g-1", name="G1"),
    group("o7", "u-a", "g-2", name="G2"),
]
MERGE = [
    identify("o1", "u-a", name="Ann"),
    identify("o2", "u-b", name="Bob"),
    alias("o3", "u-a", "u-b"),
]


def assert_input_order_won(sandbox: Sandbox) -> None:
    held = holdings(sandbox)
    survivor = held.person("u-b")
    assert held.user_ids() == {"u-b": 1}
    assert survivor["name"] == "Second (a)"  # u-a's identify came after u-b's
    assert held.group_of(survivor["org_id"]) == "g-2"


def test_two_ids_of_one_merged_person_keep_input_order(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", latency_ms=40)
    events = write_events(tmp_path / "events.ndjson", MERGE + AFTER_MERGE)
    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "8"))
    assert run.exit_code == 0, run.stderr
    assert_input_order_won(sandbox)


def test_two_ids_merged_in_an_earlier_run_keep_input_order(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    sandbox = make_sandbox(plan="unlimited", latency_ms=40)
    state = tmp_path / "state.sqlite"
    for name, part in (("merge", MERGE), ("after", AFTER_MERGE)):
        events = write_events(tmp_path / f"{name}.ndjson", part)
        run = rpd_send(
            sandbox, tmp_path, events, state=state, args=("--concurrency", "8"), name=name
        )
        assert run.exit_code == 0, run.stderr
    assert_input_order_won(sandbox)


def test_a_messageid_repeated_for_another_user_is_one_event(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # QA: pairs of tracks sharing a messageId but not a user ran concurrently; the journal
    # skipped the second copy only when the first had finished, so some origin_ids got 2 leads.
    sandbox = make_sandbox(plan="unlimited", latency_ms=20)
    people = [identify(f"id-{n}", f"d-{n}", name=f"D {n}") for n in range(21)]
    pairs = [
        e
        for n in range(20)
        for e in (track(f"tr-{n}", f"d-{n}", "Order"), track(f"tr-{n}", f"d-{n + 1}", "Order v2"))
    ]
    events = write_events(tmp_path / "events.ndjson", people + pairs)

    run = rpd_send(sandbox, tmp_path, events, args=("--concurrency", "8"))

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["events"] == {
        "read": 61,
        "sent": 41,
        "unchanged": 0,
        "skipped": 20,
        "failed": 0,
    }
    leads = holdings(sandbox).leads
    assert sorted(lead["origin_id"] for lead in leads) == sorted(f"rpd:tr-{n}" for n in range(20))
    assert all(lead["title"] == "Order" for lead in leads)  # the first of each pair, in order


def test_an_event_of_a_previousid_that_failed_holds_back_the_userid_it_is_aliased_to(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """u-a's identify fails (a 5xx, no retries) before u-b's track creates u-b; the alias
    u-a -> u-b that follows waits for u-a. The rerun must end as an undisturbed run does: u-a's
    person made, then merged into u-b's. u-b's track ran on, so the rerun found u-b for u-a (the
    input aliases u-a to it: `aliased_away`) and wrote u-a's fields on u-b's person, merging
    nothing (found by the differential send tests: reruns after 5xx faults, 3 merges short)."""
    config = tmp_path / "rpd.toml"
    config.write_text(example_without_rules())
    config.chmod(0o600)
    events = write_events(
        tmp_path / "events.ndjson",
        [
            identify("a-1", "u-a", name="Ann A", email="a@example.com"),
            {**track("b-1", "u-b", "Signed Up"), "context": {"traits": {"name": "Bob B"}}},
            alias("ab", "u-a", "u-b"),
        ],
    )
    # Seeded so that the five listings pass, u-a's search fails and u-b's requests pass.
    sandbox = make_sandbox(plan="unlimited", fail_5xx=0.5, fault_seed=407)
    args = ("--max-retries", "0", "--concurrency", "1")
    first = rpd_send(sandbox, tmp_path, events, config=config, args=args, name="first")
    assert first.exit_code == 1, first.stderr
    assert [letter["event"]["messageId"] for letter in first.dead_letters][:1] == ["a-1"]
    sandbox.set_faults(fail_5xx=0.0)

    rerun = rpd_send(sandbox, tmp_path, events, config=config, args=args, name="rerun")

    assert rerun.exit_code == 0, rerun.stderr
    held = holdings(sandbox)
    assert held.user_ids() == {"u-b": 1}
    assert len(held.merges) == 1
    assert held.person("u-b")["name"] == "Bob B"


def test_an_alias_whose_previousid_is_found_nowhere_updates_the_current_person(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """SPEC 4, alias, only current found: update it with the mapped traits. Sent from a file,
    whose first pass collects the input's aliases, the alias took its own previousId for the
    current person (`aliased_away`: "an earlier alias merged it"), found one person and counted
    itself unchanged, its traits dropped; from standard input (no first pass) it updated them
    (found by the differential send tests: a file and stdin ended with other plans)."""
    sandbox = make_sandbox(plan="unlimited")
    events = [
        identify("i-1", "u-1", name="One", role="Buyer"),
        alias("a-1", "anon-1", "u-1", role="CTO"),
    ]
    path = write_events(tmp_path / "events.ndjson", events)

    run = rpd_send(sandbox, tmp_path, path)

    assert run.exit_code == 0, run.stderr
    assert run.report is not None
    assert run.report["by_type"]["alias"] == {"sent": 1}
    assert holdings(sandbox).person("u-1")["custom_fields"][ROLE_FIELD] == "CTO"
