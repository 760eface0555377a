"""Does the preview tell the truth? `rpd dry-run --lookups` and `rpd send` of one input against
one sandbox, compared event by event (SPEC 6: the preview says what the send will do): the same
requests in order (method, path, query, body; ids made by writes compared as "<id>", since
dry-run names them by placeholder), the same outcome, reason, warnings and dropped keys.

The dry-run runs first (it writes nothing), then the send, on the same account. What send
requested for each event is taken from the plan it ran (`Replay.start`), and its outcome as the
report tells it (`Replay.on_done`), both in-process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    HOT,
    ONE,
    PLAN_FIELD,
    TOKEN,
    SendRun,
    alias,
    identify,
    rpd_send,
    track,
    write_events,
)
from objects_support import archive, key, stamp
from test_send_catalog import PersonsUnlisted, Unavailable
from typer.testing import CliRunner

from benchmarks.golden import mixed_events
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.backups import StoredObject
from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Planned
from rudder_pipedrive_cli.io.objects import Feed
from rudder_pipedrive_cli.replay import Replay
from rudder_pipedrive_cli.sandbox import Sandbox, routes

ID = "<id>"
PLACEHOLDER = re.compile(r"\{[a-z]+:[^}]*\}")  # dry-run's id of a record a write would make
ID_IN_PATH = re.compile(r"/(\d+|[0-9a-f-]{36})(?=/|$)")
ID_KEYS = frozenset({"id", "person_id", "org_id", "merge_with_id"})
ID_IN_TEXT = re.compile(r"\b(person|organization) \d+")

# A listing answered 503 is retried at once by both commands (the back-off's lengths are
# tests/http's, on fake clocks): what each says and plans or sends does not depend on them.
pytestmark = pytest.mark.usefixtures("no_waits")


def told(text: str) -> str:
    """A reason or warning, the ids in it named "<id>"."""
    return ID_IN_TEXT.sub(rf"\1 {ID}", PLACEHOLDER.sub(ID, text))


def dry_run(
    sandbox: Sandbox,
    tmp_path: Path,
    *inputs: Path,
    args: tuple[str, ...] = (),
    form: str = "ndjson",
    said: list[str] | None = None,
) -> Any:
    """`rpd dry-run --lookups` in-process: its records, one per event (`--format ndjson`), or
    its summary (`form="json"`); its warnings go to `said` when given."""
    out = tmp_path / f"dry.{form}"
    command = ["dry-run", *map(str, inputs), "--config", str(EXAMPLE_CONFIG), "--lookups"]
    command += ["--base-url", sandbox.url, "--plan", "unlimited", "--format", form]
    command += ["-o", str(out), *args]
    result = CliRunner().invoke(app, command, env={**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.stderr
    if said is not None:
        said.extend(warnings(result.stderr))
    if form == "json":
        return orjson.loads(out.read_bytes())
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: ")]


def recorded(plan: Planned, requests: list[ApiRequest]) -> Planned:
    if type(plan) is Outcome:
        return plan
    return _recording(plan, requests)


def _recording(
    plan: Generator[ApiRequest, ApiResponse, Outcome], requests: list[ApiRequest]
) -> Generator[ApiRequest, ApiResponse, Outcome]:
    answer: Any = None
    while True:
        try:
            request = plan.send(answer)
        except StopIteration as stop:
            outcome: Outcome = stop.value
            return outcome
        requests.append(request)
        answer = yield request


def send(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path, *inputs: Path, **kw: Any
) -> tuple[SendRun, dict[str, dict[str, Any]]]:
    """`rpd send` in-process, one event at a time; by source, what each event requested and its
    outcome as the report tells it."""
    events: dict[str, dict[str, Any]] = {}
    start, done = Replay.start, Replay.done

    def start_recorded(replay: Replay, item: Event) -> Planned:
        events[item.source] = {"requests": []}
        return recorded(start(replay, item), events[item.source]["requests"])

    def done_recorded(replay: Replay, item: Event, outcome: Outcome) -> None:
        told = replay.on_done

        def tell(item: Event, outcome: Outcome) -> None:
            events[item.source]["outcome"] = outcome
            if told is not None:
                told(item, outcome)

        replay.on_done = tell
        try:
            done(replay, item, outcome)
        finally:
            replay.on_done = told

    monkeypatch.setattr(Replay, "start", start_recorded)
    monkeypatch.setattr(Replay, "done", done_recorded)
    args = ("--identities", "search", "--concurrency", "1", *kw.pop("args", ()))
    run = rpd_send(sandbox, tmp_path, *inputs, args=args, **kw)
    monkeypatch.undo()
    return run, events


def ids_named(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: ids_named(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [ids_named(v, key) for v in value]
    if key in ID_KEYS and value is not None:
        return ID
    return value


def shown(request: dict[str, Any]) -> tuple[Any, ...]:
    path = ID_IN_PATH.sub("/" + ID, PLACEHOLDER.sub(ID, request["path"]))
    return (request["method"], path, ids_named(request["query"]), ids_named(request["body"]))


def disagreements(
    planned: list[dict[str, Any]],
    sent: dict[str, dict[str, Any]],
    heeded: Callable[[str], bool] = lambda warning: True,
) -> list[tuple[Any, ...]]:
    """Each event where the dry-run's record and the send disagree: (source, what, dry, send);
    of the warnings, those `heeded`."""
    found: list[tuple[Any, ...]] = []
    for record in planned:
        source = record["source"]
        event = sent.get(source, {})
        outcome: Outcome | None = event.get("outcome")
        status = "sent" if record["outcome"] == "planned" else record["outcome"]
        dry = (status, told(record["reason"]), [told(w) for w in record["warnings"] if heeded(w)])
        said = outcome and (
            outcome.status,
            told(outcome.reason),
            [told(w) for w in outcome.warnings if heeded(w)],
        )
        if said != dry or outcome is None or list(outcome.dropped) != record["dropped"]:
            found.append((source, "outcome", (*dry, record["dropped"]), said))
        dry_requests = [shown(r) for r in record["requests"]]
        sent_requests = [shown(r) for r in event.get("requests", ())]
        if dry_requests != sent_requests:
            found.append((source, "requests", dry_requests, sent_requests))
    return found


def test_an_event_of_a_previous_id_the_input_aliases_later_is_planned_as_send_runs_it(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """send's first pass reads the input's aliases: an identify of u-old (no name: it cannot
    create) before the alias u-old -> u-new updates u-new's person, and the alias then finds
    both on that person (unchanged). dry-run planned without the aliases: the identify failed
    ('cannot create person without a name') and the alias updated u-new's person."""
    events = write_events(
        tmp_path / "in.ndjson",
        [
            identify("m-1", "u-new", name="Ada"),
            identify("m-2", "u-old", role="CTO"),
            alias("m-3", "u-old", "u-new", role="CEO"),
        ],
    )
    planned = dry_run(sandbox, tmp_path, events)
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 0, run.stderr
    assert [(r["outcome"], r["reason"]) for r in planned] == [
        ("planned", ""),
        ("planned", ""),
        ("unchanged", ""),
    ]
    assert disagreements(planned, sent) == []


def test_a_user_id_an_earlier_event_moved_off_its_person_is_not_found_by_the_dry_run_either(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """An identify with a person_id external id and another userId writes that userId into the
    person (SPEC 4): a later event of the person's old userId finds nobody in the send. dry-run
    --lookups asked Pipedrive, which still holds the old userId (the dry-run wrote nothing),
    and planned an update of that person where the send fails."""
    earlier = rpd_send(
        sandbox,
        tmp_path,
        write_events(tmp_path / "seed.ndjson", [identify("s-1", "u-old", name="Old")]),
        state=tmp_path / "seed.sqlite",
        name="seed",
    )
    assert earlier.exit_code == 0, earlier.stderr
    moved = identify("m-1", "u-new", role="CEO")
    moved["context"] = {"externalId": [{"type": "person_id", "id": 1}]}
    events = write_events(tmp_path / "in.ndjson", [moved, identify("m-2", "u-old", role="CTO")])

    planned = dry_run(sandbox, tmp_path, events)
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 1, run.stderr
    assert [(r["outcome"], r["reason"]) for r in planned] == [
        ("planned", ""),
        ("failed", "cannot create person without a name"),
    ]
    assert disagreements(planned, sent) == []


def test_dry_run_with_the_state_plans_with_the_aliases_an_earlier_send_kept(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The state keeps the aliases of every input a send read (its first pass): a later send of
    another file takes u-old for u-new's person by an alias of the first file (that failed:
    neither person existed then), and dry-run --state plans that too."""
    first = write_events(tmp_path / "first.ndjson", [alias("m-1", "u-old", "u-new")])
    state = tmp_path / "state.sqlite"
    earlier = rpd_send(sandbox, tmp_path, first, state=state, name="first")
    assert earlier.report is not None
    assert earlier.report["events"]["failed"] == 1
    later = [identify("m-2", "u-new", name="Ada"), identify("m-3", "u-old", role="CTO")]
    events = write_events(tmp_path / "later.ndjson", later)

    planned = dry_run(sandbox, tmp_path, events, args=("--state", str(state)))
    run, sent = send(monkeypatch, sandbox, tmp_path, events, state=state)

    assert run.exit_code == 0, run.stderr
    assert [r["outcome"] for r in planned] == ["planned", "planned"]
    assert disagreements(planned, sent) == []


def test_a_rerun_with_the_state_plans_the_reconciling_of_a_write_left_in_flight(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A failed event keeps its writes in flight in the state (one may have landed): a rerun
    lists the person's deals before creating the deal again. dry-run --state did not look at
    the writes in flight, so it showed the create alone."""
    deal = track("m-1", "u-a", "Demo Requested")  # person 1 does not exist yet: refused
    deal["context"] = {"externalId": [{"type": "person_id", "id": 1}]}
    events = write_events(tmp_path / "in.ndjson", [deal, identify("m-2", "u-b", name="B")])
    state = tmp_path / "state.sqlite"
    first = rpd_send(sandbox, tmp_path, events, state=state, args=("--concurrency", "1"))
    assert first.report is not None
    assert first.report["events"]["failed"] == 1

    planned = dry_run(sandbox, tmp_path, events, args=("--state", str(state)))
    run, sent = send(monkeypatch, sandbox, tmp_path, events, state=state)

    assert run.exit_code == 0, run.stderr
    assert [(r["method"], r["path"]) for r in planned[0]["requests"]] == [
        ("GET", "/api/v2/deals"),
        ("GET", "/api/v2/deals/archived"),
        ("POST", "/api/v2/deals"),
    ]
    assert disagreements(planned, sent) == []


def mixed_workload(sandbox: Sandbox, tmp_path: Path, seed: int) -> Path:
    """benchmarks/golden.py's mixed workload (every event kind and [[track]] rule kind of
    config.example.toml, merges and re-keys, external ids, bad values, repeated and missing
    messageIds, lines that are not events), 1,500 lines, over an account holding 80 of its
    persons (u-0..u-79, ids 1..80: those its person_id external ids name)."""
    known = [identify(f"s-{n}", f"u-{n}", name=f"Seed {n}") for n in range(80)]
    earlier = rpd_send(
        sandbox,
        tmp_path,
        write_events(tmp_path / "seed.ndjson", known),
        name="seed",
        state=tmp_path / "seed.sqlite",
        args=("--concurrency", "1"),  # ids in the order of the lines, whatever the timing
    )
    assert earlier.exit_code == 0, earlier.stderr
    persons = {person["id"]: person["name"] for person in sandbox.state()["persons"]}
    assert persons == {n + 1: f"Seed {n}" for n in range(80)}
    events = tmp_path / "mixed.ndjson"
    events.write_bytes(b"".join(mixed_events(1500, seed)))
    return events


@pytest.mark.parametrize("seed", [12, 14])
def test_the_mixed_workload_is_planned_as_send_runs_it_over_an_account_holding_some_users(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path, seed: int
) -> None:
    """Lookups find the 80 persons the account holds; every other identity is created. Every
    event alike, and the summary."""
    events = mixed_workload(sandbox, tmp_path, seed)

    planned = dry_run(sandbox, tmp_path, events, args=("--identities", "search"))
    # Its summary: as the send's, which has a state (so it asks who the account is).
    state = ("--state", str(tmp_path / "state.sqlite"))
    summary = dry_run(
        sandbox, tmp_path, events, args=("--identities", "search", *state), form="json"
    )
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 1, run.stderr  # bad values fail events, alike
    assert len(planned) == len(sent) == 1500
    assert disagreements(planned, sent) == []
    assert run.report is not None
    for part in (
        "events",
        "by_type",
        "skipped_by_reason",
        "failed_by_reason",
        "requests",
        "tokens",
    ):
        assert summary[part] == run.report[part], part
    assert summary["identities"]["way"] == run.report["identities"]


def test_dry_run_with_the_state_reads_no_finished_object_for_its_aliases(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """As send's first pass: the state holds the aliases of the objects an earlier send
    finished, so dry-run --state over the backup reads only the objects it did not finish
    (a bucket's finished objects are not downloaded again), and plans as the send does."""
    folder = tmp_path / "backup"

    def put(hour: int, *events: dict[str, Any]) -> str:
        first = stamp(hour)
        name = key("src", "2024-05-01", hour, "i-1", first, first + 60)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(archive(*events))
        return name

    put(7, identify("m-1", "u-new", name="Ada"))
    put(8, alias("m-2", "u-old", "u-new"))
    state = tmp_path / "state.sqlite"
    earlier = rpd_send(sandbox, tmp_path, folder, state=state, name="first")
    assert earlier.exit_code == 0, earlier.stderr
    later = put(9, identify("m-3", "u-old", role="CTO"))
    fetched: list[str] = []
    fetch = Feed._fetch

    def fetch_recorded(feed: Feed, index: int, stored: StoredObject) -> bool:
        fetched.append(stored.name)
        return fetch(feed, index, stored)

    monkeypatch.setattr(Feed, "_fetch", fetch_recorded)
    planned = dry_run(sandbox, tmp_path, folder, args=("--state", str(state)))
    monkeypatch.undo()
    run, sent = send(monkeypatch, sandbox, tmp_path, folder, state=state)

    assert run.exit_code == 0, run.stderr
    assert fetched == [str(folder / later)] * 2  # the first pass, then the plan
    assert [r["outcome"] for r in planned] == ["planned"]
    assert disagreements(planned, sent) == []


def test_a_send_by_index_does_not_take_a_user_id_an_earlier_event_moved_off_its_person(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """dry-run plans by search (and says so): after an identify with a person_id external id
    writes u-new into u-old's person, u-old's next event finds nobody and fails. A send by
    index took the index's row (person 1 holds u-old, as listed before the run) and wrote the
    event's role into u-new's person: the index learned what events create and merge, not what
    an update writes into the identity field."""
    earlier = rpd_send(
        sandbox,
        tmp_path,
        write_events(tmp_path / "seed.ndjson", [identify("s-1", "u-old", name="Old")]),
        state=tmp_path / "seed.sqlite",
        name="seed",
    )
    assert earlier.exit_code == 0, earlier.stderr
    moved = identify("m-1", "u-new", role="CEO")
    moved["context"] = {"externalId": [{"type": "person_id", "id": 1}]}
    events = write_events(tmp_path / "in.ndjson", [moved, identify("m-2", "u-old", role="CTO")])

    planned = dry_run(sandbox, tmp_path, events, args=("--identities", "index"))
    run, sent = send(monkeypatch, sandbox, tmp_path, events, args=("--identities", "index"))

    assert run.report is not None
    assert run.report["identities"] == "index"
    assert planned[1]["reason"] == "cannot create person without a name"
    assert sent[str(events) + ":2"]["outcome"].status == "failed"


HELD_TOO = re.compile(r"\) now holds (userId|groupId) .*, which .* too: merge them")


@pytest.mark.parametrize("seed", [3, 14])
def test_the_mixed_workload_ends_alike_when_the_send_resolves_identities_by_index(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path, seed: int
) -> None:
    """dry-run plans by search, whatever way the send takes (it says which, and what each
    costs): by index, a send's requests differ, but every event ends as planned. But for one
    warning: that the record an external id gave a userId is not the only one holding it
    (named_by_external) is said from the cache and the index alone, and the index knows every
    holder the account had, the dry-run (as a send by search) only those it learned (seed 3,
    line 887: person 65 holds u-64 since before the run, and no event before looked u-64 up)."""
    events = mixed_workload(sandbox, tmp_path, seed)

    planned = dry_run(sandbox, tmp_path, events, args=("--identities", "index"))
    run, sent = send(monkeypatch, sandbox, tmp_path, events, args=("--identities", "index"))

    assert run.report is not None
    assert run.report["identities"] == "index"
    found = disagreements(planned, sent, heeded=lambda warning: not HELD_TOO.search(warning))
    assert [d for d in found if d[1] == "outcome"] == []


@pytest.mark.parametrize(
    ("refused", "said"),
    [
        (
            ("FIELDS", PersonsUnlisted()),
            [
                "warning: GET /api/v2/personFields: HTTP 503 after 3 attempts; the values of its "
                "fields will be sent without type conversion"
            ],
        ),
        (
            ("ACTIVITY_TYPES", Unavailable()),
            [
                "warning: GET /v1/activityTypes: HTTP 503 after 3 attempts; what track rules name "
                "from it cannot be resolved",
                "warning: track #3.type = 'call' cannot be resolved without the listings: the "
                "events of those track rules fail (retryable)",
            ],
        ),
    ],
    ids=["personFields", "activityTypes"],
)
def test_a_listing_pipedrive_refuses_is_planned_without_as_send_goes_on_without_it(
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Sandbox,
    tmp_path: Path,
    refused: tuple[str, Any],
    said: list[str],
) -> None:
    """One listing answering 503 (its retries spent): send goes on without it (only what needs
    it goes unconverted or unresolved); dry-run --lookups stopped at it with an error and no
    plan. Now it plans as the send runs: the same warnings, the person's values as they are
    (person fields) or the activity rule's events failed, retryable, naming the listing
    (activity types), the other listings used (the deal's pipeline and stage, the lead's label).
    The send is retried as the dry-run (twice) so that their reasons agree."""
    monkeypatch.setattr(routes, *refused)
    events = write_events(
        tmp_path / "in.ndjson",
        [
            identify("m-1", "u-1", name="Ann", role="CTO"),
            track("m-2", "u-1", "Demo Requested", campaign="autumn"),
            track("m-3", "u-1", "Trial Started", label_ids=["Hot"]),
            track("m-4", "u-1", "Call Scheduled", topic="pricing"),  # last: none waits for it
        ],
    )
    dry_said: list[str] = []

    planned = dry_run(sandbox, tmp_path, events, said=dry_said)
    run, sent = send(monkeypatch, sandbox, tmp_path, events, args=("--max-retries", "2"))

    assert (dry_said, warnings(run.stderr)) == (said, said)
    assert disagreements(planned, sent) == []
    failed = [(r["source"].rsplit(":", 1)[1], r["reason"]) for r in planned if r["reason"]]
    if refused[0] == "ACTIVITY_TYPES":
        assert failed == [
            (
                "4",
                "track #3: type = 'call' cannot be resolved: GET /v1/activityTypes: HTTP 503 "
                "after 3 attempts; retry later",
            )
        ]
        assert run.exit_code == 1, run.stderr
    else:
        assert failed == []
        assert run.exit_code == 0, run.stderr
    assert planned[1]["requests"][-1]["body"]["stage_id"] == 2  # "Demo" in "Sales"
    assert planned[2]["requests"][-1]["body"]["label_ids"] == [HOT]


def test_a_refused_listing_the_state_saved_is_planned_from_it_as_send_takes_it(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """personFields answering 503 where an earlier send saved it: send converts the person's
    values with the saved listing and says so; dry-run --lookups --state does the same (the
    plan's body holds the enum's option id, not its label)."""
    state = tmp_path / "state.sqlite"
    first = write_events(tmp_path / "first.ndjson", [identify("m-1", "u-1", name="One")])
    assert rpd_send(sandbox, tmp_path, first, state=state, name="first").exit_code == 0
    monkeypatch.setattr(routes, "FIELDS", PersonsUnlisted())
    events = write_events(tmp_path / "in.ndjson", [identify("m-2", "u-2", name="Two", plan="Pro")])
    dry_said: list[str] = []

    planned = dry_run(sandbox, tmp_path, events, args=("--state", str(state)), said=dry_said)
    run, sent = send(
        monkeypatch, sandbox, tmp_path, events, state=state, args=("--max-retries", "2")
    )

    said = [
        "warning: GET /api/v2/personFields: HTTP 503 after 3 attempts; using the one the state "
        "saved last time"
    ]
    assert (dry_said, warnings(run.stderr)) == (said, said)
    assert run.exit_code == 0, run.stderr
    assert disagreements(planned, sent) == []
    assert planned[0]["requests"][-1]["body"]["custom_fields"][PLAN_FIELD] == 102  # "Pro"


def test_a_person_the_dry_run_created_is_found_again_when_its_user_id_is_searched(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """u-1's person is created (m-1); an external id gives person 1 u-1 too (m-2: the cache maps
    u-1 to it), then u-2 (m-3), so u-1's next identify searches u-1 again: the send finds the
    person m-1 created and updates it. dry-run's search went to Pipedrive alone, which holds no
    u-1, and planned the event failing ('cannot create person without a name'; mixed workload
    seed 3, line 927). A search now adds the records the dry-run's writes gave that identity."""
    seeding = write_events(tmp_path / "seed.ndjson", [identify("s-1", "u-0", name="Zero")])
    earlier = rpd_send(sandbox, tmp_path, seeding, state=tmp_path / "seed.sqlite", name="seed")
    assert earlier.exit_code == 0, earlier.stderr
    to_one, to_two = identify("m-2", "u-1", role="CTO"), identify("m-3", "u-2", role="CEO")
    to_one["context"] = to_two["context"] = {"externalId": [{"type": "person_id", "id": 1}]}
    events = write_events(
        tmp_path / "in.ndjson",
        [identify("m-1", "u-1", name="One"), to_one, to_two, identify("m-4", "u-1", role="Buyer")],
    )

    planned = dry_run(sandbox, tmp_path, events)
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 0, run.stderr
    assert [(r["outcome"], r["reason"]) for r in planned] == [("planned", "")] * 4
    assert [(r["method"], r["path"]) for r in planned[3]["requests"]] == [
        ("GET", "/api/v2/itemSearch/field"),
        ("PATCH", "/api/v2/persons/{person:u-1}"),
    ]
    assert disagreements(planned, sent) == []


def test_a_person_the_dry_run_merged_away_is_not_found_by_its_user_id(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, tmp_path: Path
) -> None:
    """The alias merges u-1's person (2) into u-2's (3); an external id then gives person 3
    u-9, so u-1's identify searches u-1 and u-2 again: the send finds neither (person 2 is gone,
    3 holds u-9) and fails the event. dry-run's search found person 2 in Pipedrive, where the
    merge was not made, and planned an update of it (mixed workload seed 49, line 884)."""
    known = [identify(f"s-{n}", f"u-{n}", name=f"Seed {n}") for n in range(3)]
    seeding = write_events(tmp_path / "seed.ndjson", known)
    state = tmp_path / "seed.sqlite"
    earlier = rpd_send(sandbox, tmp_path, seeding, state=state, name="seed", args=ONE)
    assert earlier.exit_code == 0, earlier.stderr
    nine = identify("m-2", "u-9", role="CEO")
    nine["context"] = {"externalId": [{"type": "person_id", "id": 3}]}
    events = write_events(
        tmp_path / "in.ndjson",
        [alias("m-1", "u-1", "u-2"), nine, identify("m-3", "u-1", role="CTO")],
    )

    planned = dry_run(sandbox, tmp_path, events)
    run, sent = send(monkeypatch, sandbox, tmp_path, events)

    assert run.exit_code == 1, run.stderr
    assert [(r["outcome"], r["reason"]) for r in planned] == [
        ("planned", ""),
        ("planned", ""),
        ("failed", "cannot create person without a name"),
    ]
    assert disagreements(planned, sent) == []
