"""One odd event must not stop a run: it gets its own outcome (or a one-line error) and every
other event is still planned. Cases found by exploratory testing of `rpd dry-run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dry_run_cli import CONFIG, IDENTIFY, dry_run, records, write_events

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Outcome, Plan

NEXT = IDENTIFY | {"messageId": "m-next", "userId": "u-next"}


@pytest.fixture(autouse=True)
def no_env_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RPD_CONFIG", "PIPEDRIVE_API_TOKEN", "RPD_PLAN", "RPD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("revenue", "amount"), [(1e20, 1e20), ("100000000000000000000", 1e20), (2.0**53, 2.0**53)]
)
def test_a_huge_whole_amount_stays_a_float_and_the_run_goes_on(
    tmp_path: Path, revenue: object, amount: float
) -> None:
    track = {
        "type": "track",
        "messageId": "m-big",
        "userId": "u-1",
        "event": "Deal",
        "properties": {"revenue": revenue, "currency": "EUR"},
        "context": {"traits": {"name": "Ada"}},
    }
    code, out, err = dry_run(
        write_events(tmp_path, track, NEXT), "--config", CONFIG, "-f", "ndjson"
    )
    assert code == 0, err
    big, following = records(out)
    (lead,) = [r for r in big["requests"] if r["path"] == "/v1/leads"]  # type: ignore[union-attr]
    assert lead["body"]["value"] == {"amount": amount, "currency": "EUR"}  # type: ignore[index]
    assert type(lead["body"]["value"]["amount"]) is float  # type: ignore[index]
    assert following["outcome"] == "planned"


def test_an_event_too_deep_to_hash_fails_alone(tmp_path: Path) -> None:
    deep: dict[str, object] = {}
    inner = deep
    for _ in range(300):
        inner["a"] = {}
        inner = inner["a"]  # type: ignore[assignment]
    event = {"type": "identify", "userId": "u-deep", "traits": {"name": "D", "nest": deep}}
    code, out, err = dry_run(
        write_events(tmp_path, event, NEXT), "--config", CONFIG, "-f", "ndjson"
    )
    assert code == 1, err
    failed, following = records(out)
    assert failed["outcome"] == "failed"
    assert failed["reason"] == (
        "event has no messageId and cannot be hashed instead (Recursion limit reached)"
    )
    assert following["outcome"] == "planned"


def test_a_plan_that_raises_fails_its_event_only() -> None:
    def broken() -> Plan:
        yield ApiRequest(method="GET", path="/v1/users/me", endpoint="/v1/users/me", stage="probe")
        raise TypeError("ada@example.com")

    outcome = drive(broken(), lambda request: ApiResponse(status=200, data={}))
    assert outcome == Outcome(
        status="failed",
        reason="internal error: TypeError while planning (a bug in rpd: please report it)",
        stage="probe",
    )
    assert "ada@example.com" not in json.dumps(outcome.reason)


def nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_dead_letters_write_events_deeper_than_orjson_can() -> None:
    from rudder_pipedrive_cli.io.deadletter import TOO_DEEP, dead_letter_line

    error = {"reason": "cannot create person without a name", "stage": "create person"}
    deep = {"event": {"type": "identify", "traits": nested(300)}, "error": error, "source": "f:1"}
    assert json.loads(dead_letter_line(deep)) == deep

    deeper = {**deep, "event": {"type": "identify", "traits": nested(1100)}}
    assert json.loads(dead_letter_line(deeper)) == {
        "event": None,
        "error": {**error, "reason": error["reason"] + TOO_DEEP},
        "source": "f:1",
    }


def test_markup_in_event_data_is_shown_as_written(tmp_path: Path) -> None:
    events = write_events(
        tmp_path,
        {"type": "[/x]", "userId": "u-1"},
        {"type": "[object Object]", "userId": "u-1"},
        NEXT,
    )
    code, out, err = dry_run(events, "--config", CONFIG)
    assert code == 0, err
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert rows[:2] == ["(other type)", "identify"]  # the summary names no type that is no name
    plans = [line.split("  ")[1] for line in out.splitlines() if line.startswith(str(events))]
    assert plans == ["[/x]", "[object object]", "identify"]  # types compare lowercased


def test_markup_in_names_shows_in_the_sandbox_holdings_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from rudder_pipedrive_cli.cli.render import print_sandbox_holdings

    shown = io.StringIO()
    terminal = Console(file=shown, force_terminal=True, highlight=False, width=120)
    person = {"id": 1, "name": "[/x] Ada [bold]Lovelace", "emails": [{"value": "ada@x.io"}]}
    print_sandbox_holdings(terminal, {"persons": [person]}, records=True)
    assert "[/x] Ada [bold]Lovelace" in shown.getvalue()
    assert shown.getvalue().endswith("1 person, 0 organizations, 0 leads, 0 merges\n")


def test_send_sandbox_into_a_log_shows_counts_not_names(tmp_path: Path) -> None:
    # SPEC 8 (QA): event data goes to dead letters and dry-run output only; a --sandbox run in
    # a CI job printed the persons' names and emails into its log.
    from typer.testing import CliRunner

    from rudder_pipedrive_cli.cli.main import app

    person = NEXT | {"traits": {"name": "Ada Lovelace", "email": "ada@example.com"}}
    result = CliRunner().invoke(  # FORCE_COLOR: rich takes the log for a terminal (review)
        app,
        ["send", write_events(tmp_path, person), "--config", CONFIG, "--sandbox"],
        env={"FORCE_COLOR": "1"},
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr.endswith("1 person, 0 organizations, 0 leads, 0 merges\n")
    assert "Ada" not in result.stderr and "ada@example.com" not in result.stderr


def test_limit_stops_before_a_bad_line_it_does_not_need(tmp_path: Path) -> None:
    events = write_events(tmp_path, IDENTIFY, NEXT, extra="garbage\n")
    code, out, err = dry_run(events, "--config", CONFIG, "-f", "ndjson", "--strict", "--limit", "2")
    assert code == 0, err
    assert [r["outcome"] for r in records(out)] == ["planned", "planned"]


def test_limit_counts_the_events_the_type_filter_keeps(tmp_path: Path) -> None:
    track = {"type": "track", "messageId": "m-t", "userId": "u-1", "event": "Signed Up"}
    track["context"] = {"traits": {"name": "Ada"}}
    events = write_events(tmp_path, IDENTIFY, track, NEXT, track | {"messageId": "m-t2"})
    args = ("--config", CONFIG, "-f", "ndjson", "--type", "track", "--limit", "1")
    code, out, err = dry_run(events, *args)
    assert code == 0, err
    assert [(r["type"], r["outcome"]) for r in records(out)] == [
        ("identify", "skipped"),
        ("track", "planned"),
    ]


@pytest.mark.parametrize("where", ["missing/dir/out.ndjson", "."])
def test_output_paths(tmp_path: Path, where: str) -> None:
    events = write_events(tmp_path, IDENTIFY)
    code, out, err = dry_run(events, "--config", CONFIG, "-f", "ndjson", "-o", where, "-q")
    if where == ".":
        assert (code, out) == (2, "")
        assert err.splitlines() == [
            "error: --output . is a directory",
            "hint: give --output a file path",
        ]
    else:  # folders are created, as for send's report
        assert code == 0, err
        assert [r["id"] for r in records((tmp_path / where).read_text())] == ["m-1"]


def test_an_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    events = write_events(tmp_path, IDENTIFY)
    code, _, err = dry_run(events, "--config", CONFIG, "-o", events)
    assert code == 2
    assert err.splitlines() == [
        f"error: --output {events} is one of the input files, and writing there would destroy "
        "the events it holds: give --output another file (nothing was planned)"
    ]


def test_an_output_onto_the_state_or_the_config_is_refused(tmp_path: Path) -> None:
    events = write_events(tmp_path, IDENTIFY)
    state = tmp_path / "state.sqlite"
    state.write_bytes(b"SQLite format 3\x00 kept")
    for target, what in ((state, "the replay state"), (Path(CONFIG), "the config file")):
        kept = target.read_bytes()
        code, _, err = dry_run(events, "--config", CONFIG, "--state", str(state), "-o", str(target))
        assert code == 2
        assert err.splitlines() == [
            f"error: --output {target} is also {what}: rpd would overwrite it",
            "hint: choose another --output path",
        ]
        assert target.read_bytes() == kept


@pytest.mark.parametrize("form", ["ndjson", "table"])  # table: written through rich
def test_a_closed_output_pipe_stops_quietly(tmp_path: Path, form: str) -> None:
    import subprocess
    import sys

    many = [IDENTIFY | {"messageId": f"m-{n}", "userId": f"u-{n}"} for n in range(20000)]
    events = write_events(tmp_path, *many)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", events]
    command += ["--config", CONFIG, "-f", form]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141
    if form == "ndjson":
        assert json.loads(first)["id"] == "m-0"
    else:
        assert first.endswith(b"in.ndjson:1  identify  planned\n")
    assert stderr == b""


def test_label_names_offline_say_why_they_are_left_out(tmp_path: Path) -> None:
    track = {"type": "track", "messageId": "m-t", "userId": "u-1", "event": "Signed Up"}
    track |= {"properties": {"label_ids": "Hot"}, "context": {"traits": {"name": "Ada"}}}
    events = write_events(tmp_path, track)
    code, out, err = dry_run(events, "--config", CONFIG, "-f", "ndjson")
    assert code == 0, err
    (record,) = records(out)
    assert record["warnings"] == [
        "lead label 'Hot' cannot be resolved without the account's label listing "
        "(dry-run: --lookups, or the state of an earlier send); left out"
    ]
    code, out, err = dry_run(events, "--config", CONFIG, "-f", "ndjson", "--sandbox", "--lookups")
    assert code == 0, err
    (record,) = records(out)
    assert record["warnings"] == []
    (lead,) = [r for r in record["requests"] if r["path"] == "/v1/leads"]  # type: ignore[union-attr]
    assert lead["body"]["label_ids"] == ["894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"]  # type: ignore[index]


def test_the_summary_says_why_events_failed_even_in_json(tmp_path: Path) -> None:
    nameless = [
        {"type": "identify", "messageId": f"m-{n}", "userId": f"u-{n}", "traits": {"x": 1}}
        for n in range(3)
    ]
    events = write_events(tmp_path, *nameless, {"type": "group", "userId": "u-9"}, NEXT)
    code, out, err = dry_run(events, "--config", CONFIG, "-f", "json")
    assert code == 1
    assert json.loads(out)["events"]["failed"] == 4
    tail = err.splitlines()[-3:]
    assert tail == [
        "why events would fail:",
        "  3  cannot create person without a name",
        "  1  group needs a groupId or an org_id external id",
    ]


def test_failure_reasons_are_bounded() -> None:
    from rudder_pipedrive_cli.core.tally import MAX_REASONS, OTHER_REASONS, Tally

    tally = Tally()
    for n in range(MAX_REASONS + 5):
        tally.add_outcome("identify", Outcome(status="failed", reason=f"bad value {n}"))
    tally.add_outcome("identify", Outcome(status="failed", reason="bad value 0"))
    assert len(tally.failures) == MAX_REASONS + 1
    assert tally.failures[OTHER_REASONS] == 5 and tally.failures["bad value 0"] == 2


def test_outputs_rpd_cannot_write_are_usage_errors_naming_them(tmp_path: Path) -> None:
    from rudder_pipedrive_cli.cli.send_cmd import write_report
    from rudder_pipedrive_cli.core.errors import UsageError
    from rudder_pipedrive_cli.core.events import parse_event
    from rudder_pipedrive_cli.core.protocol import Outcome
    from rudder_pipedrive_cli.io.deadletter import DeadLetters

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    under = blocker / "out.json"  # its folder is a file: nothing can be created there
    with pytest.raises(UsageError) as report:
        write_report(under, {"events": {}})
    assert (report.value.message, report.value.hint) == (
        f"cannot write the report to {under}: File exists",
        "the report above is complete; choose another --report path next time",
    )
    failed = Outcome(status="failed", reason="no")
    with pytest.raises(UsageError) as letters:
        DeadLetters(under).add(parse_event({"type": "identify"}, "f:1"), failed)
    assert (letters.value.message, letters.value.hint) == (
        f"cannot write dead letters to {under}: File exists",
        "choose another --dead-letter path; rerun to resume",
    )
