"""Every call to the input's object store that was tried again is counted as a store retry: the
listing's and the HEAD's (io/s3.py), beside the object reads the feed makes again (io/objects.py),
in send's report and its JSON, and in dry-run's summary, which said none. moto's S3 on loopback
behind the recording proxy, which answers the next HEADs and listings 503 SlowDown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from e2e_support import CLEAN_ENV, EXAMPLE_CONFIG, rpd_send
from objects_support import S3, SINCE, TIME_ORDER, UNTIL, backup_objects, moto_s3
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.io.s3 import RETRY_DELAYS, S3FileSystem
from rudder_pipedrive_cli.sandbox import Sandbox

WINDOW_ARGS = ("--since", SINCE, "--until", UNTIL)
# The probe of the prefix (a HEAD of rs, a one-key listing), then the listings of its folders.
BUSY = {"HEAD": 1, "LIST": 2}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    pytest.importorskip("moto")
    # Tried again at once: the count, not the back-off, is what is asserted.
    monkeypatch.setitem(S3FileSystem.__init__.__kwdefaults__, "delays", (0.0,) * len(RETRY_DELAYS))
    monkeypatch.setattr("rudder_pipedrive_cli.io.objects.RETRY_DELAYS", (0.0,) * 5)
    with moto_s3(monkeypatch) as store:
        store.upload(backup_objects())
        yield store


def refused(s3: S3) -> list[tuple[str, str]]:
    """The HEADs and listings the proxy saw, in order (each busy one is followed by its try
    again)."""
    return [
        (method, path.partition("?")[0])
        for method, path in s3.proxy.recorder.requests
        if method == "HEAD" or "list-type=" in path
    ]


def test_send_counts_the_listing_s_and_the_head_s_retries_as_store_retries(
    sandbox: Sandbox, tmp_path: Path, s3: S3
) -> None:
    """Before, only object reads were counted: 'retries: 0; 429 waits: 0;' and no key."""
    s3.proxy.recorder.busy = dict(BUSY)
    run = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS)
    assert run.exit_code == 0, run.stderr
    assert s3.proxy.recorder.busy == {"HEAD": 0, "LIST": 0}
    assert refused(s3)[:4] == [
        ("HEAD", "/backups/rs"),
        ("HEAD", "/backups/rs"),
        ("GET", "/backups"),
        ("GET", "/backups"),
    ]
    assert run.report is not None
    assert (run.report["retries"], run.report["store_retries"]) == (0, 3)
    assert "retries: 0; store retries: 3; 429 waits: 0;" in run.stderr
    assert run.report["events"]["sent"] == 7


def test_send_counts_object_reads_and_listings_tried_again_together(
    sandbox: Sandbox, tmp_path: Path, s3: S3
) -> None:
    s3.proxy.recorder.busy = {"LIST": 1}
    s3.proxy.recorder.cut = {f"rs/{TIME_ORDER[2]}": 1}
    run = rpd_send(sandbox, tmp_path, "s3://backups/rs", args=WINDOW_ARGS)
    assert run.exit_code == 0, run.stderr
    assert s3.proxy.recorder.cuts_made == [f"rs/{TIME_ORDER[2]}"]
    assert run.report is not None
    assert run.report["store_retries"] == 2


def test_dry_run_s_summary_says_its_store_retries(tmp_path: Path, s3: S3) -> None:
    """dry-run counted them (its --format json had the key) but its summary said nothing: a
    HEAD and 2 listings refused once, and an object cut once (its first pass reads it again)."""
    s3.proxy.recorder.busy = dict(BUSY)
    s3.proxy.recorder.cut = {f"rs/{TIME_ORDER[2]}": 1}
    command = ["dry-run", "s3://backups/rs", "--config", str(EXAMPLE_CONFIG), *WINDOW_ARGS]
    result = CliRunner().invoke(app, command, env=CLEAN_ENV)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    estimate = next(i for i, line in enumerate(lines) if line.startswith("estimated API tokens"))
    assert lines[estimate + 1] == "store retries: 4"
    assert s3.proxy.recorder.cuts_made == [f"rs/{TIME_ORDER[2]}"]

    s3.proxy.recorder.busy = dict(BUSY)
    s3.proxy.recorder.cut = {f"rs/{TIME_ORDER[2]}": 1}
    as_json = CliRunner().invoke(app, [*command, "--format", "json"], env=CLEAN_ENV)
    assert as_json.exit_code == 0, as_json.stderr
    assert orjson.loads(as_json.stdout)["store_retries"] == 4
    assert "store retries: 4" in as_json.stderr.splitlines()


def test_dry_run_s_summary_has_no_store_retries_line_when_none_was_made(
    tmp_path: Path, s3: S3
) -> None:
    command = ["dry-run", "s3://backups/rs", "--config", str(EXAMPLE_CONFIG), *WINDOW_ARGS]
    result = CliRunner().invoke(app, command, env=CLEAN_ENV)
    assert result.exit_code == 0, result.stderr
    assert not [line for line in result.stdout.splitlines() if "store retries" in line]
