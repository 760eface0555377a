"""What stopped a send, in its --report JSON (`"stopped"`): a scheduler reading the report of a
run that ended with an error tells it from one that finished."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e_support import (
    CLEAN_ENV,
    STALE_REPORT,
    assert_stopped_while_starting,
    identify,
    rpd_send,
    write_events,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli import send_cmd
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.errors import AuthRefused
from rudder_pipedrive_cli.http.client import AUTH_HINT
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_file import StateUnusable
from rudder_pipedrive_cli.sandbox import Sandbox

REFUSED = "cannot write the state file s.sqlite: the disk is full"


def test_a_run_whose_state_cannot_keep_its_report_says_it_stopped_in_the_report(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The state refused the run's end (a full disk) after every event was sent: exit 2, and the
    # --report file, written after, read as a run that finished (no "stopped").
    def refused(state: ReplayState, document: dict[str, Any]) -> None:
        raise StateUnusable(REFUSED, hint="free some space, then rerun the same command")

    monkeypatch.setattr(ReplayState, "finish_run", refused)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])

    run = rpd_send(sandbox, tmp_path, events, state=tmp_path / "s.sqlite")

    assert run.exit_code == 2, run.stderr
    assert run.report is not None and run.report["events"]["sent"] == 1
    assert run.report["stopped"] == {"exit": 2, "reason": REFUSED}


def test_a_refused_token_replaces_an_earlier_run_s_report_with_its_stop(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Refused at the account's request (exit 3), the send wrote no report: the one an earlier
    # run left at --report stayed, and a script reading it after the run took 9 sent as this
    # run's. Now the refusal writes its report as Pipedrive unreachable's does: nothing read.
    (tmp_path / "run-report.json").write_bytes(STALE_REPORT)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])

    run = rpd_send(sandbox, tmp_path, events, token="not-the-token")

    assert run.exit_code == 3, run.stderr
    assert_stopped_while_starting(run.report, 3, "Pipedrive refused the API token (401)")
    assert run.stderr.splitlines()[-2:] == [
        "error: Pipedrive refused the API token (401)",
        "hint: check $PIPEDRIVE_API_TOKEN, the token sent (it wins over [pipedrive] api_token)",
    ]
    assert b"not-the-token" not in (tmp_path / "run-report.json").read_bytes()
    assert sandbox.state()["persons"] == []
    # The one request it made, which Pipedrive refused unspent (a token of no account): the
    # report said 2 tokens (users/me's x-token-cost) where the sandbox charged none.
    assert (run.report["requests"], run.report["tokens"]) == ({"GET /v1/users/me": 1}, 0)
    assert sandbox.stats()["tokens"] == 0


def test_a_token_refused_as_the_identity_index_is_listed_reports_what_the_first_pass_read(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After the first pass (the token revoked since the field listings): exit 3 with no report,
    # where a stop of the index's listing (unreachable, the budget) reports the pass's items
    # as read, not attempted.
    def refused(*_args: object, **_kwargs: object) -> None:
        raise AuthRefused("Pipedrive refused the API token (401)", hint=AUTH_HINT)

    monkeypatch.setattr(send_cmd, "prepare", refused)
    (tmp_path / "run-report.json").write_bytes(STALE_REPORT)
    events = write_events(
        tmp_path / "e.ndjson", [identify(f"m-{n}", f"u-{n}", name="Ann") for n in range(3)]
    )

    run = rpd_send(sandbox, tmp_path, events)

    assert run.exit_code == 3, run.stderr
    assert run.report is not None
    assert run.report["events"] == {
        "read": 3,
        "sent": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "not_attempted": 3,
    }
    assert run.report["stopped"] == {"exit": 3, "reason": "Pipedrive refused the API token (401)"}
    assert run.stderr.splitlines()[-2:] == [
        "error: Pipedrive refused the API token (401)",
        "hint: check $PIPEDRIVE_API_TOKEN, the token sent (it wins over [pipedrive] api_token)",
    ]


def refused_report(reason: str) -> dict[str, Any]:
    """The whole --report of a send refused before it read anything (exit 2); its duration
    aside."""
    return {
        "events": {"read": 0, "sent": 0, "unchanged": 0, "skipped": 0, "failed": 0},
        "by_type": {},
        "skipped_by_reason": {},
        "requests": {},
        "retries": 0,
        "rate_limited": 0,
        "tokens": 0,
        "dead_letter": None,
        "identities": None,
        "stopped": {"exit": 2, "reason": reason},
    }


def without_duration(report: dict[str, Any] | None) -> dict[str, Any]:
    assert report is not None
    assert isinstance(report.pop("duration_s"), float)
    return report


@pytest.mark.parametrize("wrong", ["config typo", "missing input"])
def test_a_send_refused_for_its_usage_replaces_an_earlier_run_s_report_with_its_stop(
    sandbox: Sandbox, tmp_path: Path, wrong: str
) -> None:
    # Refused with exit 2 (an unknown config key, an input not there), the send left the report
    # an earlier run wrote at --report: a scheduler reading it took 9 sent as this run's.
    (tmp_path / "run-report.json").write_bytes(STALE_REPORT)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])
    config = tmp_path / "typo.toml"
    config.write_text('[pipedrive]\nplann = "gold"\n')
    if wrong == "config typo":
        run = rpd_send(sandbox, tmp_path, events, config=config)
        said = [f"error: {config}:2: unknown key pipedrive.plann", "hint: did you mean 'plan'?"]
    else:
        run = rpd_send(sandbox, tmp_path, events, tmp_path / "day2.ndjosn")
        said = [
            f"error: cannot read {tmp_path / 'day2.ndjosn'}: No such file or directory",
            "hint: check the path (nothing was read or sent)",
        ]

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == said
    assert without_duration(run.report) == refused_report(said[0].removeprefix("error: "))
    assert sandbox.stats()["requests"] == {}


def test_a_send_refused_as_another_process_holds_its_state_leaves_that_run_s_report(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Another run holding the state (its lock) refused this one, exit 2: a scheduled run's
    # overlap shares its --report, which that run writes before it lets go of the state. The
    # refusal's report was written over it (ef76f77): that run's counts were lost.
    state = tmp_path / "state.sqlite"
    report = tmp_path / "run-report.json"
    hold = (
        "import sys; from pathlib import Path; from rudder_pipedrive_cli.io.state_file import "
        f"FileLock; FileLock(Path({str(state)!r})).acquire(); "
        f"Path({str(report)!r}).write_bytes({STALE_REPORT!r}); print('held', flush=True); "
        "sys.stdin.read()"
    )
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])
    with subprocess.Popen(
        [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == b"held\n"  # the lock taken: no time waited
            run = rpd_send(sandbox, tmp_path, events, state=state)
        finally:
            holder.stdin.close()
    assert holder.returncode == 0

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == [
        f"warning: --report {report} left as it was: the run holding the state may have written "
        "its own report there",
        f"error: state file {state} is in use by another rpd process (pid {holder.pid})",
        "hint: wait for it to finish, or give another state file with --state FILE",
    ]
    assert report.read_bytes() == STALE_REPORT
    assert sandbox.stats()["requests"] == {}


@pytest.mark.parametrize("where", ["an input", "a full disk"])
def test_a_refused_send_whose_report_cannot_be_written_there_says_so_in_a_line(
    sandbox: Sandbox, tmp_path: Path, where: str
) -> None:
    # The config refused before --report was checked: the refusal's report is not written over
    # the events it names, and a line says why none was written (as one on a full disk).
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])
    before = events.read_bytes()
    config = tmp_path / "typo.toml"
    config.write_text('[pipedrive]\nplann = "gold"\n')
    report = events if where == "an input" else Path("/dev/full")
    said = {
        "an input": f"--report {events} is one of the input files, and writing there would "
        "destroy the events it holds: give --report another file (nothing was sent)",
        "a full disk": "cannot write the report to /dev/full: No space left on device",
    }[where]

    run = rpd_send(sandbox, tmp_path, events, config=config, args=("--report", str(report)))

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == [
        f"warning: {said}",
        f"error: {config}:2: unknown key pipedrive.plann",
        "hint: did you mean 'plan'?",
    ]
    assert events.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ("--concurrency", "0"),
            "Invalid value for '--concurrency': 0 is not in the range 1<=x<=256.",
        ),
        (
            ("--max-retries", "many"),
            "Invalid value for '--max-retries': 'many' is not a valid integer range.",
        ),
        (("--bogus", "1"), "No such option: --bogus (Possible options: --verbose)"),
        (("--concurrency",), "Option '--concurrency' requires an argument."),
        ((), "Missing argument 'PATH...'."),
    ],
    ids=["out of range", "not a number", "unknown option", "no value", "no input"],
)
def test_a_send_refused_by_its_options_replaces_an_earlier_run_s_report_with_its_stop(
    sandbox: Sandbox, tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    # Refused by Typer's own checks before send ran, exit 2 as every other refusal, it left the
    # report an earlier run wrote at --report: a scheduler took 9 sent as this run's.
    (tmp_path / "run-report.json").write_bytes(STALE_REPORT)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])

    run = rpd_send(sandbox, tmp_path, *([events] if args else []), args=args)

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == [f"error: {said}", "hint: see `rpd send --help`"]
    assert without_duration(run.report) == refused_report(said)
    assert sandbox.stats()["requests"] == {}


def test_a_send_refused_by_its_options_never_writes_its_report_over_an_input(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])
    before = events.read_bytes()

    run = rpd_send(sandbox, tmp_path, events, args=("--report", str(events), "--concurrency", "0"))

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == [
        f"warning: --report {events} is one of the input files, and writing there would "
        "destroy the events it holds: give --report another file (nothing was sent)",
        "error: Invalid value for '--concurrency': 0 is not in the range 1<=x<=256.",
        "hint: see `rpd send --help`",
    ]
    assert events.read_bytes() == before


def test_a_send_refused_for_an_option_given_before_it_replaces_an_earlier_run_s_report(
    tmp_path: Path,
) -> None:
    # `rpd -v send ...`: refused by rpd itself before send was loaded.
    report = tmp_path / "run-report.json"
    report.write_bytes(STALE_REPORT)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])

    args = ["-v", "send", str(events), "--report", str(report)]
    result = CliRunner().invoke(app, args, env=CLEAN_ENV)

    assert result.exit_code == 2
    said = "No such option: -v"
    assert result.stderr.splitlines() == [
        f"error: {said}",
        "hint: options go after the command: `rpd send -v ...`",
    ]
    assert without_duration(orjson.loads(report.read_bytes())) == refused_report(said)


def test_a_report_path_its_option_refuses_is_not_written(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    events = write_events(tmp_path / "e.ndjson", [identify("m-1", "u-1", name="Ann")])

    run = rpd_send(sandbox, tmp_path, events, args=("--report", " "))

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines()[0] == (
        "error: Invalid value for '--report': an empty path: give a file, or leave the option out"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.ndjson"]
