"""`rpd dry-run`: exact records, summaries, formats, errors and exit codes (SPEC 6)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.dryrun_cmd import write_lines
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.io.config import REDACTED

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "config.example.toml")
EVENTS = str(ROOT / "examples" / "events.ndjson")
USER_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
PLAN_FIELD = "2166d04123ea6d974ed242877a8d769fe934c896"
ROLE_FIELD = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"


@pytest.fixture(autouse=True)
def no_env_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RPD_CONFIG", "PIPEDRIVE_API_TOKEN", "RPD_PLAN", "RPD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def dry_run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["dry-run", *args])
    return result.exit_code, result.stdout, result.stderr


def records(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def write_events(tmp_path: Path, *events: object, extra: str = "") -> str:
    path = tmp_path / "in.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + extra)
    return str(path)


IDENTIFY = {
    "type": "identify",
    "messageId": "m-1",
    "userId": "u-1",
    "timestamp": "2026-10-01T09:00:00.500+02:00",
    "traits": {"name": "Ada", "email": "ada@example.com", "role": "Eng", "shoe": 42},
}
TRACK = {
    "type": "track",
    "messageId": "m-2",
    "userId": "u-1",
    "event": "Signed Up",
    "properties": {"revenue": 10, "currency": "EUR"},
}


def test_ndjson_record_has_the_exact_shape_and_requests(tmp_path: Path) -> None:
    code, out, err = dry_run(write_events(tmp_path, IDENTIFY), "--config", CONFIG, "-f", "ndjson")
    assert code == 0, err
    (record,) = records(out)
    assert record == {
        "source": f"{tmp_path / 'in.ndjson'}:1",
        "id": "m-1",
        "type": "identify",
        "outcome": "planned",
        "reason": "",
        "warnings": [],
        "dropped": ["shoe"],
        "requests": [
            {
                "method": "GET",
                "path": "/api/v2/itemSearch/field",
                "query": {
                    "term": "u-1",
                    "entity_type": "person",
                    "field": USER_FIELD,
                    "match": "exact",
                },
                "body": None,
                "note": "search person by userId u-1",
            },
            {
                "method": "POST",
                "path": "/api/v2/persons",
                "query": {},
                "body": {
                    "name": "Ada",
                    "emails": [{"value": "ada@example.com", "primary": True, "label": "work"}],
                    "add_time": "2026-10-01T07:00:00Z",
                    "custom_fields": {ROLE_FIELD: "Eng", USER_FIELD: "u-1"},
                },
                "note": "create person u-1 (not found)",
            },
        ],
    }
    assert "Planned events" in err  # the summary goes to stderr, keeping stdout valid NDJSON


def test_what_an_earlier_event_creates_counts_as_existing_later(tmp_path: Path) -> None:
    code, out, _ = dry_run(
        write_events(tmp_path, IDENTIFY, TRACK), "--config", CONFIG, "-f", "ndjson"
    )
    assert code == 0
    track = records(out)[1]
    assert [(r["method"], r["path"]) for r in track["requests"]] == [("POST", "/v1/leads")]  # type: ignore[index]
    body = track["requests"][0]["body"]  # type: ignore[index]
    assert body["person_id"] == "{person:u-1}"
    assert body["origin_id"] == "rpd:m-2"
    assert body["value"] == {"amount": 10, "currency": "EUR"}


def test_assume_existing_uses_placeholders_and_updates(tmp_path: Path) -> None:
    code, out, _ = dry_run(
        write_events(tmp_path, IDENTIFY),
        "--config",
        CONFIG,
        "-f",
        "ndjson",
        "--assume",
        "existing",
    )
    assert code == 0
    requests = records(out)[0]["requests"]
    assert [(r["method"], r["path"]) for r in requests] == [  # type: ignore[union-attr]
        ("GET", "/api/v2/itemSearch/field"),
        ("PATCH", "/api/v2/persons/{person:u-1}"),
    ]


def test_json_summary_of_the_examples() -> None:
    code, out, _ = dry_run(EVENTS, "--config", CONFIG, "--format", "json", "-q")
    assert code == 0
    summary = orjson.loads(out)
    assert summary["events"] == {"read": 25, "sent": 19, "unchanged": 0, "skipped": 6, "failed": 0}
    # Page Viewed and Button Clicked skipped by a rule, Viewed Pricing as anonymous.
    assert summary["by_type"]["track"] == {"sent": 7, "skipped": 3}
    assert summary["skipped_by_reason"] == {
        "anonymous": 2,
        "track rule: skip": 2,
        "unsupported type: page": 1,
        "unsupported type: screen": 1,
    }
    # What `rpd send` of the examples makes (tests/e2e/test_send_examples.py), the field, label,
    # pipeline, stage and activity type listings before the first event included (QA: the
    # estimate left them out), and the account a send with a state asks for. 12 searches: 10
    # identities and, as send's first pass reads the input's aliases, the userIds two aliases
    # lead to, looked up when their previousIds u-1003-old and lead-77 are not found.
    assert summary["requests"] == {
        "GET /api/v2/dealFields": 1,
        "GET /api/v2/itemSearch/field": 12,
        "GET /api/v2/organizationFields": 1,
        "GET /api/v2/personFields": 1,
        "GET /api/v2/pipelines": 1,
        "GET /api/v2/stages": 1,
        "GET /v1/activityTypes": 1,
        "GET /v1/leadLabels": 1,
        "GET /v1/users/me": 1,
        "PATCH /api/v2/persons/{id}": 5,
        "POST /api/v2/activities": 1,
        "POST /api/v2/deals": 1,
        "POST /api/v2/organizations": 2,
        "POST /api/v2/persons": 7,
        "POST /v1/leads": 4,
        "POST /v1/notes": 1,
        "PUT /v1/persons/{id}/merge": 1,
    }
    assert summary["tokens"] == (
        4 * 10 + 12 * 20 + 2 * 5 + 20 + 5 * 5 + 5 + 5 + 2 * 5 + 7 * 5 + 4 * 10 + 10 + 40 + 2
    )
    assert summary["duration_s"] == 2.4  # 12 searches at 5 per second on the growth plan
    # The writes by kind, and the track events by the rule that matched (config.example.toml).
    assert summary["writes"] == {
        "activities created": 1,
        "deals created": 1,
        "leads created": 4,
        "merges": 1,
        "notes created": 1,
        "organizations created": 2,
        "persons created": 7,
        "persons updated": 5,
    }
    assert summary["by_rule"] == {
        "track #1 (skip)": 2,
        "track #2 (deal)": 1,
        "track #3 (activity)": 1,
        "track #4 (note)": 1,
        "track #5 (lead)": 5,  # the anonymous Viewed Pricing too (skipped as anonymous)
    }
    assert set(summary) == {
        "events",
        "by_type",
        "skipped_by_reason",
        "requests",
        "retries",
        "rate_limited",
        "tokens",
        "duration_s",
        "dead_letter",
        "identities",  # both ways' estimates (tests/test_dry_run_identities.py)
        "writes",
        "by_rule",
    }


def test_table_output_and_summary() -> None:
    code, out, _ = dry_run(EVENTS, "--config", CONFIG)
    assert code == 0
    assert "examples/events.ndjson:13  alias  planned" in out
    assert "PUT /v1/persons/{person:u-1003-old}/merge" in out
    assert "examples/events.ndjson:6  identify  skipped  (anonymous)" in out
    assert (
        "estimated API tokens: 482; estimated duration at the growth plan's rate limit: 2.4 s"
        in out
    )
    # Not a terminal: each title a line of its own, as it reads (rich padded it with spaces to
    # its table's width: 'Planned events' and 47 more).
    lines = out.splitlines()
    assert {"Planned events", "Requests a replay would make"} <= set(lines)
    assert [line for line in lines if line.endswith(" ")] == []


def test_output_file(tmp_path: Path) -> None:
    target = tmp_path / "plan.ndjson"
    code, out, _ = dry_run(EVENTS, "--config", CONFIG, "-f", "ndjson", "-o", str(target), "-q")
    assert code == 0 and out == ""
    assert len(target.read_bytes().splitlines()) == 25


def test_a_new_output_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    # The plan shows whole events, names and emails (SPEC 8), as dead letters do: a new file was
    # made readable by everyone (0644 under umask 022); an existing one keeps its owner's mode.
    target, kept = tmp_path / "plan.ndjson", tmp_path / "kept.ndjson"
    kept.write_bytes(b"")
    kept.chmod(0o640)
    old_mask = os.umask(0o022)
    try:
        for path in (target, kept):
            code, _, _ = dry_run(EVENTS, "--config", CONFIG, "-f", "ndjson", "-o", str(path), "-q")
            assert code == 0
    finally:
        os.umask(old_mask)
    assert (target.stat().st_mode & 0o777, kept.stat().st_mode & 0o777) == (0o600, 0o640)
    assert len(kept.read_bytes().splitlines()) == 25


def test_output_dash_is_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `-o -` wrote a file named `-` (session 14's review): it is standard output, as without -o.
    monkeypatch.chdir(tmp_path)
    code, out, _ = dry_run(EVENTS, "--config", CONFIG, "-f", "ndjson", "-o", "-", "-q")
    assert code == 0
    assert out == dry_run(EVENTS, "--config", CONFIG, "-f", "ndjson", "-q")[1]
    assert len(out.splitlines()) == 25 and list(tmp_path.iterdir()) == []


def test_bad_lines_fail_alone_and_the_rest_is_planned(tmp_path: Path) -> None:
    path = write_events(tmp_path, IDENTIFY, extra='{"type": "track", oops\n[1, 2]\n')
    code, out, _ = dry_run(path, "--config", CONFIG, "-f", "ndjson")
    assert code == 1
    first, bad, not_object = records(out)
    assert first["outcome"] == "planned"
    assert bad["source"] == f"{path}:2" and bad["outcome"] == "failed"
    assert str(bad["reason"]).startswith("not valid JSON")
    assert not_object["reason"] == "expected a JSON object, got a list"


def test_failed_plans_exit_1_with_reason(tmp_path: Path) -> None:
    nameless = {"type": "identify", "messageId": "m-9", "userId": "u-9", "traits": {}}
    code, out, _ = dry_run(write_events(tmp_path, nameless), "--config", CONFIG, "-f", "ndjson")
    assert code == 1
    assert records(out)[0]["reason"] == "cannot create person without a name"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "error: unknown --format 'xml'"),
        (["--assume", "maybe"], "error: unknown --assume 'maybe'"),
        (["--type", "identfy"], "error: "),
        (["--since", "yesterday"], "error: "),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    code, _, err = dry_run(EVENTS, "--config", CONFIG, *args)
    assert code == 2
    assert err.startswith(message)
    assert len(err.strip().splitlines()) <= 2
    assert "Traceback" not in err


def test_named_missing_config_is_exit_2(tmp_path: Path) -> None:
    code, _, err = dry_run(EVENTS, "--config", str(tmp_path / "nope.toml"))
    assert code == 2
    assert (
        err.splitlines()[0]
        == f"error: cannot read config {tmp_path / 'nope.toml'}: No such file or directory"
    )


def test_lookups_use_the_live_account_and_coerce_values() -> None:
    code, out, err = dry_run(
        write_events(Path.cwd(), IDENTIFY | {"traits": {"name": "Ada", "plan": "Pro"}}),
        "--config",
        CONFIG,
        "--sandbox",
        "--lookups",
        "-f",
        "ndjson",
    )
    assert code == 0, err
    body = records(out)[0]["requests"][1]["body"]  # type: ignore[index]
    assert body["custom_fields"][PLAN_FIELD] == 102  # the "Pro" option's id in the sandbox


def test_a_bug_is_two_lines_exit_70_and_a_traceback_only_with_verbose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("ada@example.com")  # event data must not reach the message

    monkeypatch.setattr("rudder_pipedrive_cli.cli.dryrun_cmd.preview", broken)
    code, _, err = dry_run(EVENTS, "--config", CONFIG)
    assert code == 70
    assert err.splitlines() == [
        "error: internal error: ValueError (a bug in rpd)",
        "hint: rerun with -v for the traceback, and please report it",
    ]
    code, _, err = dry_run(EVENTS, "--config", CONFIG, "-v")
    assert code == 70
    assert "Traceback (most recent call last)" in err


def test_lookups_count_each_search_once_and_the_catalog_listing_a_send_makes_too() -> None:
    events = write_events(
        Path.cwd(),
        IDENTIFY | {"traits": {"name": "Ada"}},
        IDENTIFY | {"messageId": "m-2", "userId": "u-2", "traits": {"name": "Bo"}},
    )
    code, out, err = dry_run(events, "--config", CONFIG, "--sandbox", "--lookups", "-f", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["requests"] == {
        "GET /api/v2/dealFields": 1,
        "GET /api/v2/itemSearch/field": 2,  # the lookup is the plan's own search, counted once
        "GET /api/v2/organizationFields": 1,
        "GET /api/v2/personFields": 1,
        "GET /api/v2/pipelines": 1,  # config.example.toml's deal rule names a pipeline, a stage
        "GET /api/v2/stages": 1,
        "GET /v1/activityTypes": 1,  # and its activity rule a type
        "GET /v1/leadLabels": 1,
        "POST /api/v2/persons": 2,
    }
    assert report["tokens"] == 4 * 10 + 2 * 20 + 2 * 5 + 2 * 5 + 20


def test_an_input_with_no_events_is_said_in_one_warning_and_exits_0(tmp_path: Path) -> None:
    # It was planned as "0 events" with no word of why.
    (tmp_path / "empty.ndjson").write_bytes(b"\n\n")
    code, out, err = dry_run("empty.ndjson", "--config", CONFIG, "-f", "ndjson")
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert (code, out, warnings) == (0, "", ["warning: empty.ndjson holds no events"])
    assert err.splitlines()[0] == warnings[0]  # before the summary of what was planned


def test_an_empty_folder_is_said_to_hold_no_files(tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    code, out, err = dry_run("backup", "--config", CONFIG)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: cannot read backup: it holds no files",
        "hint: check the path (nothing was read or sent)",
    ]


def test_an_input_that_cannot_be_read_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ndjson"
    code, out, err = dry_run(EVENTS, str(missing), "--config", CONFIG)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"error: cannot read {missing}: No such file or directory",
        "hint: check the path (nothing was read or sent)",
    ]


def test_a_mistyped_input_file_is_hinted_with_the_file_meant(tmp_path: Path) -> None:
    # Newcomer: `rpd dry-run events.ndjosn` said "check the path" beside events.ndjson.
    (tmp_path / "events.ndjson").write_text("")
    (tmp_path / "notes.txt").write_text("")
    code, out, err = dry_run("events.ndjosn", "--config", CONFIG)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: cannot read events.ndjosn: No such file or directory",
        "hint: did you mean events.ndjson? (nothing was read or sent)",
    ]
    code, _, err = dry_run(f"{tmp_path}/evnets.ndjson", "--config", CONFIG)
    assert (code, err.splitlines()[1]) == (
        2,
        f"hint: did you mean {tmp_path}/events.ndjson? (nothing was read or sent)",
    )
    # Another name that shares only the extension is no typo of it.
    code, _, err = dry_run("failed.ndjson", "--config", CONFIG)
    assert (code, err.splitlines()[1]) == (2, "hint: check the path (nothing was read or sent)")


@pytest.mark.parametrize("url", ["https://example.com/e.ndjson", "ftp://h/e.ndjson"])
def test_a_url_rpd_cannot_read_is_said_so(url: str) -> None:
    # A newcomer's https:// link was "No such file or directory".
    code, out, err = dry_run(EVENTS, url, "--config", CONFIG)
    assert (code, out) == (2, "")
    scheme = url.split("//")[0] + "//"
    assert err.splitlines() == [
        f"error: cannot read {url}: rpd reads files, folders and bucket URLs (s3://, gs://, "
        f"az://, abfs://), not {scheme} URLs",
        "hint: download it first, then give the file (nothing was read or sent)",
    ]


@pytest.mark.parametrize("url", ["s3://", "S3:///", "gs://", "az://"])
def test_a_bucket_url_without_a_bucket_is_said_so(url: str) -> None:
    # `s3://` was "cannot list s3://: UnicodeError: encoding with 'idna' codec failed (...)".
    code, out, err = dry_run(EVENTS, url, "--config", CONFIG)
    assert (code, out) == (2, "")
    scheme = url.split(":")[0].lower()
    assert err.splitlines() == [
        f"error: cannot read {url}: it names no bucket",
        f"hint: give the bucket, and a prefix if you like: {scheme}://BUCKET/PREFIX/ (nothing "
        "was read or sent)",
    ]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_before_anything_is_read(device: str) -> None:
    # QA: /dev/zero (no newline, ever) and /dev/urandom were read until killed.
    code, out, err = dry_run(EVENTS, device, "--config", CONFIG)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: cannot read {device}: it is a device, not a file of events",
        "hint: give files, folders or bucket URLs, or - for standard input (nothing was read or "
        "sent)",
    ]


def test_the_null_device_reads_as_empty_as_it_did() -> None:
    # Review: the device check refused /dev/null too, which read as an empty input before (as
    # `- < /dev/null` still does): a script passing it for "no events" broke.
    code, out, err = dry_run("/dev/null", "--config", CONFIG, "--format", "ndjson")
    assert (code, out) == (0, ""), err


def test_a_named_pipe_is_read_whole_not_probed_first(tmp_path: Path) -> None:
    # Review: checking inputs by opening them released a fifo's writer, and closing the probe
    # lost what it wrote: 0 events read, exit 0.
    import os
    import subprocess
    import sys

    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", str(fifo)]
    command += ["--config", CONFIG, "-f", "json", "-q"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "w") as writer:  # opens once rpd opens the fifo to read it
        writer.write(json.dumps(IDENTIFY) + "\n")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert json.loads(out)["events"]["read"] == 1


def test_a_folder_s_named_pipe_and_links_to_a_device_or_folder_are_named_and_not_opened(
    tmp_path: Path,
) -> None:
    # Review: a folder holding a fifo (or a link to /dev/zero) hung: only a PATH given on the
    # command line was checked, and the folder's entries were opened as objects.
    import os
    import subprocess
    import sys

    folder = tmp_path / "backup"
    day = folder / "src" / "gw" / "2024-05-01" / "10" / "i-1"
    day.mkdir(parents=True)
    write_events(folder, IDENTIFY)
    os.mkfifo(folder / "events.fifo")
    (day / "1714557600_1714557900_ws.json.gz").symlink_to("/dev/zero")
    (folder / "elsewhere").symlink_to(tmp_path)  # review: read as a file, it failed each run
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", str(folder)]
    command += ["--config", CONFIG, "-f", "json"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["events"]["read"] == 1
    warnings = [line for line in run.stderr.splitlines() if "not a file" in line]
    assert warnings == [
        f"warning: {folder}/elsewhere is a link to a folder, not a file: not read (only a "
        "folder's files are)",
        f"warning: {folder}/events.fifo is a named pipe, not a file: not read (only a folder's "
        "files are)",
        f"warning: {day}/1714557600_1714557900_ws.json.gz is a device, not a file: not read "
        "(only a folder's files are)",
    ]


REPEATED = (  # one messageId twice (issue 20: 256 such events in a real corpus)
    IDENTIFY | {"messageId": "same-1", "traits": {"name": "Ada"}},
    IDENTIFY | {"messageId": "same-1", "traits": {"name": "Ada M"}},
)


@pytest.mark.parametrize("assume", ["missing", "existing"])
def test_a_repeated_message_id_is_already_done_without_a_state_as_send_has_it(
    tmp_path: Path, assume: str
) -> None:
    events = write_events(tmp_path, *REPEATED)
    code, out, err = dry_run(events, "--config", CONFIG, "-f", "ndjson", "--assume", assume)
    assert code == 0, err
    first, repeat = records(out)
    assert first["outcome"] == "planned"
    assert (repeat["outcome"], repeat["reason"], repeat["requests"]) == (
        "skipped",
        "already done",
        [],
    )
    assert (first["id"], repeat["id"]) == ("same-1", "same-1")


def test_send_without_a_state_skips_a_repeated_message_id_as_dry_run_plans_it(
    tmp_path: Path,
) -> None:
    """`send --sandbox` keeps no state file, so no journal: the run itself remembers."""
    report = tmp_path / "report.json"
    args = ["send", write_events(tmp_path, *REPEATED), "--config", CONFIG, "--sandbox"]
    result = CliRunner().invoke(app, [*args, "--report", str(report), "-q"])
    assert result.exit_code == 0, result.stderr
    sent = json.loads(report.read_text())
    assert sent["events"] == {"read": 2, "sent": 1, "unchanged": 0, "skipped": 1, "failed": 0}
    assert "PATCH /api/v2/persons/{id}" not in sent["requests"]  # Ada M was not sent
    assert sent["requests"]["POST /api/v2/persons"] == 1


def test_an_unusable_identity_fails_as_its_own_type_with_the_reason(tmp_path: Path) -> None:
    events = write_events(
        tmp_path,
        IDENTIFY | {"userId": {"id": 1}, "anonymousId": "anon-1"},
        IDENTIFY | {"messageId": "m-2", "context": {"externalId": {"type": "person_id", "id": 0}}},
    )
    code, out, err = dry_run(events, "--config", CONFIG, "-f", "ndjson")
    assert code == 1, err
    assert [(r["type"], r["outcome"], r["reason"], r["requests"]) for r in records(out)] == [
        ("identify", "failed", "userId is not a string or number (got an object)", []),
        (
            "identify",
            "failed",
            "external id person_id = 0 is not a Pipedrive id (a whole number from 1 up)",
            [],
        ),
    ]


@pytest.mark.parametrize("on_invalid", ["fail", "drop"])
def test_dry_run_shows_invalid_values_either_way(tmp_path: Path, on_invalid: str) -> None:
    config = tmp_path / "rpd.toml"
    text = Path(CONFIG).read_text()
    config.write_text(text.replace('on_invalid = "fail"', f'on_invalid = "{on_invalid}"'))
    events = write_events(
        tmp_path,
        IDENTIFY | {"traits": {"name": "Ada", "plan": "Starter"}},
        TRACK | {"properties": {"revenue": 10, "currency": ["EUR"]}},
    )
    args = ["--config", str(config), "--sandbox", "--lookups", "-f", "ndjson"]
    code, out, err = dry_run(events, *args)
    shown = [(r["outcome"], r["reason"], r["warnings"]) for r in records(out)]
    plan = (
        "cannot convert plan = Starter for field Plan (enum): expected one of Free, Pro, Enterprise"
    )
    currency = 'currency = ["EUR"] is not a 3-letter currency code'
    if on_invalid == "fail":
        assert code == 1, err
        assert shown == [("failed", plan, []), ("failed", currency, [])]
    else:
        assert code == 0, err
        assert shown == [
            ("planned", "", [plan + "; dropped"]),
            ("planned", "", [currency + "; the lead's value is left out"]),
        ]


def test_max_item_bytes_fails_a_larger_line_and_plans_the_rest(tmp_path: Path) -> None:
    large = {**IDENTIFY, "messageId": "m-big", "traits": {"name": "Big", "bio": "x" * 3000}}
    path = write_events(tmp_path, large, IDENTIFY)
    code, out, err = dry_run(path, "--config", CONFIG, "-f", "ndjson", "--max-item-bytes", "2KiB")
    assert code == 1, err
    too_large, planned = records(out)
    assert too_large == {
        "source": f"{path}:1",
        "id": "",
        "type": "invalid",
        "outcome": "failed",
        "reason": "line larger than --max-item-bytes (2 KiB): split it into smaller lines or "
        "raise --max-item-bytes, then send its file again (a dead letter cannot hold it)",
        "warnings": [],
        "dropped": [],
        "requests": [],
    }
    assert (planned["source"], planned["outcome"]) == (f"{path}:2", "planned")
    # The default (32 MiB) reads the same line as an event.
    code, out, _ = dry_run(path, "--config", CONFIG, "-f", "ndjson")
    assert [record["outcome"] for record in records(out)] == ["planned"] * 2


@pytest.mark.parametrize("value", ["0", "12XB", "-5", "lots"])
def test_max_item_bytes_refuses_what_is_not_a_size(tmp_path: Path, value: str) -> None:
    path = write_events(tmp_path, IDENTIFY)
    code, out, err = dry_run(path, "--config", CONFIG, "--max-item-bytes", value)
    assert code == 2 and out == ""
    words = " ".join(err.replace("│", " ").split())  # rich boxes and wraps usage errors
    assert (
        f"Invalid value for '--max-item-bytes': {value!r} is not a size: "
        "use e.g. 33554432, 64MiB or 512KiB"
    ) in words


def test_why_events_would_fail_is_grouped_by_cause_without_event_data(tmp_path: Path) -> None:
    bad_ids = [
        {
            "type": "identify",
            "messageId": f"m-{n}",
            "userId": f"u-{n}",
            "context": {"externalId": [{"type": "person_id", "id": f"p-{n}"}]},
        }
        for n in range(9)
    ]
    nameless = {"type": "group", "messageId": "m-g", "userId": "u-1", "groupId": "g-1"}
    path = write_events(tmp_path, *bad_ids, nameless)

    code, out, err = dry_run(path, "--config", CONFIG, "-f", "ndjson")

    assert code == 1
    first = records(out)[0]
    assert first["reason"] == (
        'external id person_id = "p-0" is not a Pipedrive id (a whole number from 1 up)'
    )
    assert err.endswith(
        "why events would fail:\n"
        "  9  external id person_id is not a Pipedrive id (a whole number from 1 up)\n"
        "  1  cannot create person without a name\n"
    )
    assert "p-0" not in err and "top " not in err


def test_track_calls_bodies_without_a_type_are_said_to_need_one(tmp_path: Path) -> None:
    # Newcomer: events saved from another tool, or the bodies posted to /v1/track, hold an
    # "event" but no "type" (the endpoint was the type); each failed with 'event has no "type"'
    # alone, which said nothing of what to add.
    bodies = [
        {"event": "Order Completed", "userId": f"u-{n}", "properties": {"total": 5}}
        for n in range(2)
    ]
    path = write_events(tmp_path, *bodies, {"userId": "u-1", "traits": {"name": "Ada"}})

    code, _, err = dry_run(path, "--config", CONFIG, "-f", "ndjson")

    assert code == 1
    assert err.endswith(
        "why events would fail:\n"
        '  2  event has no "type" (it names an "event", as a track call\'s body does: add '
        '"type": "track")\n'
        '  1  event has no "type"\n'
    )


def test_failures_an_earlier_one_caused_are_counted_under_it_as_send_does(tmp_path: Path) -> None:
    # QA: send said "2 cannot convert plan ... +2 later events of the same users" where dry-run
    # said "2 cannot convert plan ..." and "2 cannot create person without a name".
    identifies = [
        {
            "type": "identify",
            "messageId": f"u-{n}-i",
            "userId": f"u-{n}",
            "traits": {"name": f"User {n}", "plan": "Starter" if n < 2 else "Pro"},
        }
        for n in range(4)
    ]
    tracks = [
        {"type": "track", "messageId": f"u-{n}-t", "userId": f"u-{n}", "event": "Signed up"}
        for n in range(4)
    ]
    path = write_events(tmp_path, *identifies, *tracks)
    args = ("--config", CONFIG, "--sandbox", "--lookups")

    code, out, err = dry_run(path, *args, "-f", "ndjson")

    assert code == 1
    root = (
        "cannot convert plan = Starter for field Plan (enum): expected one of Free, Pro, Enterprise"
    )
    assert [
        (r["id"], r["outcome"], r["reason"]) for r in records(out) if r["outcome"] != "planned"
    ] == [
        ("u-0-i", "failed", root),
        ("u-1-i", "failed", root),
        ("u-0-t", "failed", f"no person for u-0: its identify failed earlier ({root})"),
        ("u-1-t", "failed", f"no person for u-1: its identify failed earlier ({root})"),
    ]
    assert err.endswith(
        "why events would fail:\n"
        "  2  cannot convert plan for field Plan (enum)\n"
        "     +2 later events of the same users\n"
    )
    code, out, _ = dry_run(path, *args, "-f", "json")
    assert json.loads(out)["failed_by_reason"] == {
        "cannot convert plan for field Plan (enum)": {"events": 2, "later_events": 2}
    }


ESCAPES = "\x1b[1A\x1b[2K"  # cursor up, erase line: would rewrite the line above


def test_terminal_escapes_in_event_data_never_reach_the_screen(tmp_path: Path) -> None:
    event = {
        "type": "identify",
        "messageId": "m-1",
        "userId": f"u-1{ESCAPES}",
        "traits": {"name": "Ada\x9b2J", f"shoe{ESCAPES}": 42, "email": "a\x07@example.com"},
    }
    path = write_events(tmp_path, event)

    code, table, summary = dry_run(path, "--config", CONFIG)
    _, ndjson, _ = dry_run(path, "--config", CONFIG, "-f", "ndjson")

    assert code == 0
    shown = table + summary
    for control in ("\x1b", "\x9b", "\x07"):
        assert control not in shown
    assert 'term="u-1\\u001b[1A\\u001b[2K"&' in table  # as JSON, as its note quotes it
    assert "dropped: shoe\\x1b[1A\\x1b[2K" in table
    # The machine output keeps the data as it is.
    (record,) = records(ndjson)
    assert record["requests"][0]["query"]["term"] == f"u-1{ESCAPES}"  # type: ignore[index]
    assert record["dropped"] == [f"shoe{ESCAPES}"]


def test_a_userid_with_a_line_break_or_100_kb_is_one_short_quote_in_each_table_line(
    tmp_path: Path,
) -> None:
    long = "u" * 100_000
    broken = {**IDENTIFY, "userId": "u-1\nBcc: x@y.io"}
    path = write_events(tmp_path, broken, {**IDENTIFY, "messageId": "m-2", "userId": long})

    code, table, _ = dry_run(path, "--config", CONFIG)
    _, ndjson, _ = dry_run(path, "--config", CONFIG, "-f", "ndjson")

    assert code == 0
    shown, cut = '"u-1\\nBcc: x@y.io"', "u" * 60 + "... (100,000 characters)"
    field = f"&entity_type=person&field={USER_FIELD}&match=exact"
    assert table.splitlines()[:7] == [
        f"{path}:1  identify  planned",
        f"    GET /api/v2/itemSearch/field?term={shown}{field}  # search person by userId {shown}",
        f"    POST /api/v2/persons  # create person {shown} (not found)",
        "    dropped: shoe",
        f"{path}:2  identify  planned",
        f"    GET /api/v2/itemSearch/field?term={cut}{field}  # search person by userId {cut}",
        f"    POST /api/v2/persons  # create person {cut} (not found)",
    ]
    # The requests themselves hold the userIds whole.
    terms = [r["requests"][0]["query"]["term"] for r in records(ndjson)]  # type: ignore[index]
    assert terms == [broken["userId"], long]


def test_emoji_codes_in_event_data_are_shown_as_they_are(tmp_path: Path) -> None:
    event = {"type": "identify", "userId": "u-1", "traits": {"name": "Ada", ":smile:": 1}}

    code, out, err = dry_run(write_events(tmp_path, event), "--config", CONFIG)

    assert code == 0
    assert "dropped: :smile:" in out
    assert "unmapped traits dropped: :smile: (1)" in out
    assert "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in out + err


def test_each_track_event_shows_its_rule_and_the_summary_counts_by_rule() -> None:
    code, out, err = dry_run(EVENTS, "--config", CONFIG, "-f", "ndjson")
    assert code == 0, err
    rules = {r["id"]: r.get("rule") for r in records(out) if r["type"] == "track"}
    assert rules == {
        "msg-0005": "track #5 (lead)",
        "msg-0007": "track #2 (deal)",
        "msg-0010": "track #5 (lead)",
        "msg-0018": "track #5 (lead)",
        "msg-0020": "track #5 (lead)",
        "msg-0021": "track #5 (lead)",
        "msg-0022": "track #1 (skip)",
        "msg-0023": "track #1 (skip)",
        "msg-0024": "track #3 (activity)",
        "msg-0025": "track #4 (note)",
    }
    assert all("rule" not in r for r in records(out) if r["type"] != "track")
    assert (
        "track events by rule: track #1 (skip) 2, track #2 (deal) 1, track #3 (activity) 1, "
        "track #4 (note) 1, track #5 (lead) 5"
    ) in err
    code, out, _ = dry_run(EVENTS, "--config", CONFIG)
    assert "examples/events.ndjson:21  track  skipped  (track rule: skip)  [track #1 (skip)]" in out
    assert "examples/events.ndjson:23  track  planned  [track #3 (activity)]" in out


def test_without_rules_no_rule_is_shown(tmp_path: Path) -> None:
    config = tmp_path / "rpd.toml"
    config.write_text(Path(CONFIG).read_text().split("[[track]]")[0])
    code, out, err = dry_run(EVENTS, "--config", str(config), "-f", "ndjson")
    assert code == 0, err
    assert all("rule" not in r for r in records(out))
    assert "by rule" not in err


def test_assume_existing_lists_a_persons_deals_activities_and_notes_once(tmp_path: Path) -> None:
    code, out, err = dry_run(EVENTS, "--config", CONFIG, "-f", "ndjson", "--assume", "existing")
    assert code == 0, err
    planned = {r["id"]: r for r in records(out)}
    assert [(r["method"], r["path"], r["query"]) for r in planned["msg-0024"]["requests"]] == [
        ("GET", "/api/v2/activities", {"person_id": "{person:u-1002}", "limit": 500}),
        ("POST", "/api/v2/activities", {}),
    ]
    assert [(r["method"], r["path"]) for r in planned["msg-0025"]["requests"]] == [
        ("GET", "/v1/notes"),
        ("POST", "/v1/notes"),
    ]
    assert planned["msg-0007"]["outcome"] == "planned"
    assert planned["msg-0007"]["requests"][-1]["body"]["person_id"] == "{person:u-1002}"


class Writes:
    """A sink that keeps each write it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return len(data)


def test_ndjson_lines_are_written_in_batches_of_whole_lines() -> None:
    sink = Writes()
    write_lines(sink, iter([b"1\n", b"2\n", b"3\n", b"4\n", b"5\n"]), batch=2)  # type: ignore[arg-type]
    assert sink.writes == [b"1\n2\n", b"3\n4\n", b"5\n"]


def test_lines_made_before_an_error_are_written_before_it_is_raised() -> None:
    def lines() -> Iterator[bytes]:
        yield from (b"1\n", b"2\n", b"3\n")
        raise KeyboardInterrupt

    sink = Writes()
    with pytest.raises(KeyboardInterrupt):
        write_lines(sink, lines(), batch=2)  # type: ignore[arg-type]
    assert sink.writes == [b"1\n2\n", b"3\n"]


def test_a_write_that_was_interrupted_is_not_made_again() -> None:
    class Interrupted(Writes):
        def write(self, chunk: bytes) -> int:
            super().write(chunk)  # the lines went out, then Ctrl-C arrived
            raise KeyboardInterrupt

    sink = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        write_lines(sink, iter([b"1\n", b"2\n", b"3\n"]), batch=2)  # type: ignore[arg-type]
    assert sink.writes == [b"1\n2\n"]


def test_strict_stops_at_a_bad_line_with_the_records_before_it_written(tmp_path: Path) -> None:
    later = '{"type": \n' + json.dumps(TRACK)  # a bad line, then an event never read
    events = write_events(tmp_path, IDENTIFY, {**IDENTIFY, "messageId": "m-3"}, extra=later)
    out = tmp_path / "out.ndjson"
    code, stdout, stderr = dry_run(
        events, "--config", CONFIG, "-f", "ndjson", "--strict", "-o", str(out), "-q"
    )
    assert (code, stdout) == (2, "")
    assert stderr.splitlines()[0] == (
        f"error: {events}:3: not valid JSON: unexpected end of data at column 10"
    )
    assert [(r["id"], r["outcome"]) for r in records(out.read_text())] == [
        ("m-1", "planned"),
        ("m-3", "planned"),
    ]


FULL = Path("/dev/full")  # a device every write to fails with ENOSPC


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
@pytest.mark.parametrize("form", ["ndjson", "json", "table"])
def test_a_full_disk_under_output_is_an_error_naming_it(tmp_path: Path, form: str) -> None:
    # It was "internal error: OSError (a bug in rpd)", exit 70 (review 11).
    events = write_events(tmp_path, IDENTIFY)
    code, stdout, stderr = dry_run(events, "--config", CONFIG, "-f", form, "-o", str(FULL), "-q")
    assert (code, stdout) == (2, "")
    assert stderr.splitlines() == [
        f"error: cannot write --output {FULL}: No space left on device",
        "hint: choose another --output path",
    ]


def test_an_output_that_cannot_be_made_is_refused_before_planning(tmp_path: Path) -> None:
    """Said before the plan, in dry-run's words: it never sends (it said "nothing was sent")."""
    events = write_events(tmp_path, IDENTIFY)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "out.ndjson"
    code, stdout, stderr = dry_run(events, "--config", CONFIG, "-f", "ndjson", "-o", str(out))
    assert (code, stdout) == (2, "")
    assert stderr.splitlines() == [
        f"error: cannot write --output {out}: Not a directory",
        "hint: choose another --output path; nothing was planned",
    ]


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
def test_a_full_disk_under_standard_output_is_an_environment_error_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    events = write_events(tmp_path, IDENTIFY)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", str(events)]
    command += ["--config", CONFIG, "-f", "ndjson", "-q"]
    with FULL.open("wb") as full:
        run = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, timeout=60, check=False)
    assert run.returncode == 2
    assert run.stderr.decode().splitlines() == [
        "error: cannot write the output: No space left on device (the disk is full)",
        "hint: free some space (or write the output elsewhere), then run it again",
    ]


def run_with_closed(descriptor: int, *args: str) -> tuple[int, list[str]]:
    """`rpd ARGS` in a fresh process whose file descriptor `descriptor` is closed (`<&-`, `>&-`)."""
    import os
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "rudder_pipedrive_cli", *args],
        stdout=subprocess.DEVNULL if descriptor != 1 else None,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(descriptor),
        timeout=60,
        check=False,
    )
    return run.returncode, run.stderr.decode().splitlines()


def test_reading_a_closed_standard_input_is_a_usage_error() -> None:
    # It was "internal error: AttributeError (a bug in rpd)", exit 70.
    code, stderr = run_with_closed(0, "dry-run", "-", "--config", CONFIG, "-q")
    assert (code, stderr) == (
        2,
        [
            "error: cannot read standard input (-): it is closed",
            "hint: pipe the events in, or give their files (nothing was read or sent)",
        ],
    )


def test_a_closed_standard_output_is_no_bug_the_run_goes_on(tmp_path: Path) -> None:
    # It was "internal error: AttributeError (a bug in rpd)", exit 70; the summary still says
    # what would be sent (stderr).
    events = write_events(tmp_path, IDENTIFY)
    code, stderr = run_with_closed(1, "dry-run", events, "--config", CONFIG, "-f", "ndjson")
    assert code == 0
    assert "planned writes: persons created 1" in stderr


def test_a_write_refused_for_want_of_space_says_which_kind() -> None:
    import errno

    from rudder_pipedrive_cli.cli.common import no_space

    full = no_space(OSError(errno.ENOSPC, "No space left on device"))
    quota = no_space(OSError(errno.EDQUOT, "Disk quota exceeded", "/x/out.ndjson"))
    assert full.message == "cannot write the output: No space left on device (the disk is full)"
    assert quota.message == "cannot write /x/out.ndjson: Disk quota exceeded"


@pytest.mark.parametrize("output_format", ["ndjson", "json", "table"])
def test_a_token_in_the_events_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output_format: str
) -> None:
    # Review: send redacted the API token held in event data; dry-run showed it in each event's
    # record (a request body, a skip reason) and in the summary's counts.
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", secret)
    path = write_events(
        tmp_path,
        {"type": secret.upper(), "messageId": "m-0", "userId": "u-0"},
        {**IDENTIFY, "traits": {**IDENTIFY["traits"], "name": f"Ada {secret}", "shoe": secret}},
    )
    code, stdout, stderr = dry_run("--config", CONFIG, "--format", output_format, path)
    assert code == 1, stderr
    assert secret not in (stdout + stderr).lower()
    # A type rpd skips is refused for its messageId only, the one value kept of it; the summary
    # does not name a type that does not read as one (core/tally.py, KNOWN_TYPES).
    assert "unsupported type: (other type)" in " ".join((stdout + stderr).split())
    if output_format == "ndjson":
        typed, traits = records(stdout)
        assert (typed["type"], typed["outcome"]) == (REDACTED, "skipped")
        assert traits["reason"] == (
            "its traits.name holds the API token: correct the event (it is not sent)"
        )
        assert traits["requests"] == []


@pytest.mark.parametrize(
    ("event", "where"),
    [
        (
            {"properties": {"items": [{"sku": "a"}, {"note": "{secret}"}]}},
            "properties.items[1].note",
        ),
        ({"traits": {"name": "Ada", "{secret}": 1}}, "traits (a key)"),
        ({"context": {"ip": "1.2.3.4"}, "deep": "{deep}"}, ("deep" + ".a" * 300)[:57] + "..."),
    ],
    ids=["a list", "a key", "300 deep"],
)
def test_an_event_holding_the_token_anywhere_is_failed_naming_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, event: dict[str, object], where: str
) -> None:
    # A token in a trait was sent into Pipedrive (and held in the state while its write was in
    # flight): such an event fails before it is planned, its reason naming the path, not the token.
    # One nested deeper than orjson writes (255 levels) is walked, not a crash.
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", secret)
    text = orjson.dumps({**IDENTIFY, **event}).decode()
    text = text.replace("{secret}", secret).replace(
        '"{deep}"', '{"a":' * 300 + f'"{secret}"' + "}" * 300
    )
    path = tmp_path / "events.ndjson"
    path.write_text(text + "\n")
    code, stdout, stderr = dry_run("--config", CONFIG, "--format", "ndjson", str(path))
    assert code == 1, stderr
    (record,) = records(stdout)
    assert (record["outcome"], record["requests"]) == ("failed", [])
    assert (
        record["reason"] == f"its {where} holds the API token: correct the event (it is not sent)"
    )
    assert secret not in (stdout + stderr).lower()


def test_an_event_whose_identities_hold_the_token_is_shown_failed_as_send_fails_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Send fails an event whose messageId, userId, groupId or previousId holds the token before
    # planning it (the state would keep the value): the dry-run's plan says the same.
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", secret)
    path = write_events(
        tmp_path, {**IDENTIFY, "userId": f"u-{secret}"}, {**IDENTIFY, "messageId": "m-2"}
    )
    code, stdout, stderr = dry_run("--config", CONFIG, "--format", "ndjson", path)
    assert code == 1, stderr
    first, second = records(stdout)
    assert first == {
        "source": f"{path}:1",
        "id": "m-1",
        "type": "identify",
        "outcome": "failed",
        "reason": "its userId holds the API token: correct the event (it is not sent)",
        "warnings": [],
        "dropped": [],
        "requests": [],
    }
    assert (second["outcome"], len(second["requests"])) == ("planned", 2)
    assert secret not in (stdout + stderr).lower()


def test_a_full_temporary_database_is_an_environment_error_not_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # QA: with $TMPDIR on a full disk, a dry-run past its memory budget was "internal error:
    # OperationalError (a bug in rpd)", exit 70. SQLite's own limit on pages gives the same
    # SQLITE_FULL a full disk does.
    from rudder_pipedrive_cli.io import scratch

    opened = scratch.open_scratch_db

    def on_a_full_disk() -> sqlite3.Connection:
        db = opened()
        db.execute("PRAGMA max_page_count = 2")
        return db

    monkeypatch.setattr(scratch, "open_scratch_db", on_a_full_disk)
    events = [{**IDENTIFY, "messageId": f"m-{n}", "userId": f"u-{n}"} for n in range(200)]
    path = write_events(tmp_path, *events)
    code, out, err = dry_run("--config", CONFIG, "--cache-entries", "1", "-f", "json", path)
    assert (code, out) == (2, "")
    assert err.splitlines()[-2:] == [
        "error: no space left for the temporary database of what this run remembers ($TMPDIR, "
        "else /var/tmp or /tmp)",
        "hint: free some space there, or point TMPDIR at a disk with room, then run it again",
    ]


def test_what_a_send_would_refuse_to_start_on_is_said_before_the_plan(tmp_path: Path) -> None:
    # The plan showed each event failing (on the account's HTTP 400) where `rpd send` refuses
    # to start, exit 2: the preview did not say the replay would never begin.
    config = tmp_path / "rpd.toml"
    config.write_text('[identity]\nuser_id_field = "deadbeef"\ncreate_persons = true\n')
    events = tmp_path / "e.ndjson"
    events.write_text('{"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}}\n')

    code, out, err = dry_run(
        str(events), "--config", str(config), "--sandbox", "--lookups", "-f", "ndjson"
    )

    assert code == 1
    assert records(out)[0]["outcome"] == "failed"  # each event still shows its end
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings[0].startswith(
        "warning: identity.user_id_field = 'deadbeef': the account has no such person field: "
        "every event that needs it would fail, so `rpd send` would not start ("
    )
    assert warnings[0].endswith("; `rpd check` runs every check)")


UNSET = "warning: identity.user_id_field: not set: only events with external ids can be replayed: "
UNSET_HINT = (
    "(set it to the key of a searchable person custom field (`rpd map-fields --entity "
    "persons`); `rpd check` runs every check"
)
BY_PERSON_ID = {
    "type": "identify",
    "traits": {"name": "Ada"},
    "context": {"externalId": [{"type": "person_id", "id": 7}]},
}
BY_USER_ID = {"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}}
NOT_SET = ("failed", "[identity] user_id_field is not set: cannot look up userId u-1")
# Its previous person by external id, its current one by userId: it needs the field too.
BY_PREV_PERSON_ID = {
    "type": "alias",
    "userId": "u-1",
    "context": {"externalId": [{"type": "prev_person_id", "id": 7}]},
}


@pytest.mark.parametrize(
    ("events", "stdin", "outcomes", "said"),
    [
        (
            [BY_PERSON_ID, BY_USER_ID],
            False,
            [("planned", ""), NOT_SET],
            f"{UNSET}the events that need it fail {UNSET_HINT})",
        ),
        (
            [BY_USER_ID],
            False,
            [NOT_SET],
            f"{UNSET}every event that needs it would fail, so `rpd send` would not start "
            f"{UNSET_HINT})",
        ),
        (
            [BY_PERSON_ID, BY_USER_ID],
            True,
            [("planned", ""), NOT_SET],
            f"{UNSET}every event that needs it would fail, so `rpd send` would not start "
            f"{UNSET_HINT}; from a file (not standard input or a pipe), events with external ids "
            "go without it)",
        ),
        (
            [BY_PREV_PERSON_ID],
            False,
            [NOT_SET],
            f"{UNSET}every event that needs it would fail, so `rpd send` would not start "
            f"{UNSET_HINT})",
        ),
    ],
    ids=[
        "some with external ids",
        "none with external ids",
        "standard input",
        "an alias with a userId to look up",
    ],
)
def test_an_unset_user_id_field_is_said_as_send_would_judge_the_input(
    tmp_path: Path,
    events: list[dict[str, object]],
    stdin: bool,
    outcomes: list[tuple[str, str]],
    said: str,
) -> None:
    # SPEC 4: identify needs user_id_field unless the external id is given. `rpd send` sends
    # the events with external ids after a warning, and refuses to start (exit 2) when its first
    # pass finds none, or when there is no first pass (standard input): the preview says which.
    # Before, it warned of neither (those with external ids), or always (send would not start).
    config = tmp_path / "rpd.toml"
    config.write_text("[identity]\ncreate_persons = true\n")
    lines = "".join(json.dumps(event) + "\n" for event in events)
    path = tmp_path / "e.ndjson"
    path.write_text(lines)
    args = ["dry-run", "-" if stdin else str(path), "--config", str(config), "-f", "ndjson"]

    result = CliRunner().invoke(app, args, input=lines if stdin else None)

    assert result.exit_code == 1
    assert [(r["outcome"], r["reason"]) for r in records(result.stdout)] == outcomes
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [said]


def test_a_state_file_inside_the_input_folder_is_refused(tmp_path: Path) -> None:
    """A dry-run over a backup folder would read the state's own bytes there as events, as a
    send would (which refuses it too); a state path there that holds no file reads nothing."""
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "events.ndjson").write_text(json.dumps(IDENTIFY) + "\n")
    state = folder / "state.sqlite"
    state.write_bytes(b"SQLite format 3\x00")

    code, stdout, stderr = dry_run(str(folder), "-c", CONFIG, "--state", str(state))

    assert code == 2
    assert stdout == ""
    assert stderr.splitlines() == [
        f"error: --state {state} is inside the input folder {folder}: a run over that folder "
        "would read it as events",
        f"hint: give --state a path outside {folder} (nothing was planned)",
    ]
    state.unlink()
    code, stdout, _ = dry_run(str(folder), "-c", CONFIG, "--state", str(state), "-f", "ndjson")
    assert code == 0
    assert [record["id"] for record in records(stdout)] == ["m-1"]


@pytest.mark.parametrize("pattern", ["*.nomatch", "backup/2024-0?-*.ndjson", "ev[12].json"])
def test_a_shell_pattern_that_matched_no_file_is_said_so(pattern: str) -> None:
    # Newcomer: `rpd dry-run *.nomatch`, which the shell passes as it is when nothing matches,
    # read "cannot read *.nomatch: No such file or directory", as if a file were so named.
    code, out, err = dry_run(EVENTS, pattern, "--config", CONFIG)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: cannot read {pattern}: no file matches this pattern",
        "hint: check the folder and the pattern (nothing was read or sent)",
    ]
