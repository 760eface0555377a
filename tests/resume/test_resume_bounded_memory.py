"""Issue 18: what a run remembers per identity is bounded (`--cache-entries`), with the same
answers as when everything stays in memory. A cache of one entry per table, so that nearly every
lookup misses memory, must give the same records, reports and dry-run lines as the default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from fakes import FakeClock
from resume_support import EXAMPLE_CONFIG, TOKEN, Rig, normalised, workload, write_events
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli import identities, send_cmd
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.io.config import KEYS
from rudder_pipedrive_cli.io.scratch import Spill, SpillTable
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py
TINY = ("--cache-entries", "1")
# One event at a time: how many searches a concurrent run makes depends on timing (the chaos
# tests run concurrently with a tiny cache and compare the records).
ONE_AT_A_TIME = ("--concurrency", "1")
# Users' stories interleaved (identify, groups, tracks), then merges and re-keys by alias.
EVENTS = workload(60, tracks=2, groups=6, merges=4, rekeys=3)
SMALL = workload(20, tracks=1, groups=4, merges=3, rekeys=2)
CLEAN_ENV: dict[str, str | None] = {key.env: None for key in KEYS} | {"RPD_CONFIG": None}


def invoke(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(app, list(args), env=CLEAN_ENV | {"PIPEDRIVE_API_TOKEN": TOKEN})
    return result.exit_code, result.stdout_bytes, result.stderr


def test_a_send_with_a_tiny_cache_ends_as_one_with_the_default(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    ends = []
    for name, extra in (("default", ()), ("tiny", TINY)):
        sandbox = make_sandbox(plan="unlimited")
        rig = Rig.make(sandbox, tmp_path / name, tmp_path / name / "state.sqlite")
        first = rig.send(EVENTS, "run", *ONE_AT_A_TIME, *extra)
        assert first.exit_code == 0, first.stderr
        again = rig.send(EVENTS, "again", *extra)  # from the state: every event already done
        assert again.exit_code == 0, again.stderr
        assert first.report is not None and again.report is not None
        assert again.report["events"]["skipped"] == len(EVENTS)
        ends.append((normalised(sandbox.state()), first.report["events"], first.report["requests"]))
    assert ends[0] == ends[1]
    assert len(ends[0][0]["persons"]) == 60 - 4  # four merged away


def test_a_send_without_a_state_file_and_a_tiny_cache_makes_the_same_requests(
    tmp_path: Path,
) -> None:
    """`--sandbox` keeps no state: the run's own identity cache and alias groups are bounded.
    Plan unlimited: pacing to a plan's limits hangs on timing, which a loaded machine changes."""
    events = write_events(tmp_path / "events.ndjson", EVENTS)
    reports = []
    for name, extra in (("default", ()), ("tiny", TINY)):
        report = tmp_path / f"{name}.json"
        code, _, stderr = invoke(
            "send", str(events), "--config", str(EXAMPLE_CONFIG), "--sandbox", "-q",
            "--report", str(report), "--dead-letter", str(tmp_path / f"{name}.failed"),
            "--plan", "unlimited", *ONE_AT_A_TIME, *extra,
        )  # fmt: skip
        assert code == 0, stderr
        document = orjson.loads(report.read_bytes())
        reports.append((document["events"], document["by_type"], document["requests"]))
    assert reports[0] == reports[1]
    assert reports[0][0]["sent"] == len(EVENTS)


def test_dry_run_lines_are_the_same_byte_for_byte_with_a_tiny_cache(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "events.ndjson", EVENTS)
    # Without a state file, and then with one that a send of half the input left.
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path / "half", tmp_path / "state.sqlite")
    half = rig.send(EVENTS[: len(EVENTS) // 2], "half")
    assert half.exit_code == 0, half.stderr
    config = str(tmp_path / "half" / "rpd.toml")
    for state in (tmp_path / "none.sqlite", tmp_path / "state.sqlite"):
        outputs = []
        for extra in ((), TINY):
            code, stdout, stderr = invoke(
                "dry-run", str(events), "--config", config, "--state", str(state),
                "--format", "ndjson", "-q", *extra,
            )  # fmt: skip
            assert code == 0, stderr
            outputs.append(stdout)
        assert outputs[0] == outputs[1]
        lines = [orjson.loads(line) for line in outputs[0].splitlines()]
        assert len(lines) == len(EVENTS)
        skipped = sum(line["outcome"] == "skipped" for line in lines)
        assert skipped == (len(EVENTS) // 2 if state.name == "state.sqlite" else 0)


def test_a_send_by_index_without_a_state_file_says_the_same_with_a_tiny_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--sandbox --identities index`: the identity index is the run's own, in bounded tables.
    Each lookup that misses it refreshes it (the index's clock moves 11 s a reading), so listed
    pages replace rows that moved out of memory, merges take persons out and creates go in; the
    output is the same byte for byte but for the sandbox's port and what depends on time (the
    progress lines a slow run prints, the duration and rate). Plan unlimited: a plan's pacing
    waited 12 s of its 13 and proves nothing here."""
    events = write_events(tmp_path / "events.ndjson", SMALL)
    outputs = []
    monkeypatch.setattr(send_cmd, "Spill", Kept)
    for name, extra in (("default", ()), ("tiny", TINY)):
        Kept.tables.clear()
        monkeypatch.setattr(identities, "CLOCK", FakeClock(step=11.0))
        report = tmp_path / f"{name}.json"
        code, stdout, stderr = invoke(
            "send", str(events), "--config", str(EXAMPLE_CONFIG), "--sandbox",
            "--identities", "index", "--report", str(report), "--plan", "unlimited",
            "--dead-letter", str(tmp_path / f"{name}.failed"), *ONE_AT_A_TIME, *extra,
        )  # fmt: skip
        assert code == 0, stderr
        document = orjson.loads(report.read_bytes())
        assert document.pop("duration_s") > 0
        lines = [
            line
            for line in stderr.splitlines()
            if not line.startswith(("sandbox: Pipedrive emulator at", "progress: ", "retries: "))
        ]
        outputs.append((stdout, lines, document))
        # The index's tables (each value's ids), as the run ended: persons merged away (1, 2, 4)
        # are out; u-6's and u-7's re-keys are in, taken from the PATCHes that wrote them
        # (Learned.updates; u-7's came after the last refresh).
        # (Each value a tuple of ids: the first pass's aliases of each previousId are tuples of
        # userIds.)
        held = [(c, n) for c, n in Kept.kept if c and all(map(ids, c.values()))]
        persons = {"u-1": (3,), "u-3": (5,), "u-5": (7,), "u-6-new": (6,), "u-7-new": (8,)}
        persons |= {f"u-{n}": (n + 1,) for n in range(8, 20)}
        orgs = {"g-0": (1,), "g-1": (3,), "g-2": (2,), "g-3": (4,)}
        assert [contents for contents, _ in held] == [persons, orgs]
        assert [in_memory for _, in_memory in held] == ([1, 1] if extra else [17, 4])
    assert outputs[0] == outputs[1]
    _, lines, document = outputs[0]
    assert document["events"]["sent"] == len(SMALL)
    assert document["identity_index"] == {"pages": 33, "refreshes": 31, "lead_pages": 0}
    assert "GET /api/v2/itemSearch/field" not in document["requests"]
    assert lines[-2:] == [
        "identities: by index (33 listing pages; 31 refreshes)",
        "17 persons, 4 organizations, 23 leads, 3 merges",
    ]


def ids(value: Any) -> bool:
    """Whether a table's value is a tuple of Pipedrive ids, as the identity index's are."""
    return type(value) is tuple and all(type(one) is int for one in value)


class Kept(Spill):
    """The run's bounded tables, each one's contents and keys in memory kept as it closes."""

    tables: ClassVar[list[SpillTable[Any, Any]]] = []
    kept: ClassVar[list[tuple[dict[Any, Any], int]]] = []

    def table(self) -> SpillTable[Any, Any]:
        self.tables.append(super().table())
        return self.tables[-1]

    def close(self) -> None:
        self.kept[:] = [(dict(table.items()), table.in_memory) for table in self.tables]
        super().close()


def test_dry_run_by_index_with_lookups_is_the_same_byte_for_byte_with_a_tiny_cache(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """dry-run `--identities index` keeps no index of its own: it estimates from the one a send
    kept in the state file. Its lines, summary and estimate, with real lookups over loopback, do
    not depend on the cache's size."""
    events = write_events(tmp_path / "events.ndjson", SMALL)
    sandbox = make_sandbox(plan="unlimited")
    rig = Rig.make(sandbox, tmp_path / "half", tmp_path / "state.sqlite")
    half = rig.send(SMALL[: len(SMALL) // 2], "half", "--identities", "index")
    assert half.exit_code == 0, half.stderr
    config = str(tmp_path / "half" / "rpd.toml")
    outputs = []
    for extra in ((), TINY):
        for form in ("ndjson", "json"):
            code, stdout, stderr = invoke(
                "dry-run", str(events), "--config", config, "--state", str(rig.state),
                "--identities", "index", "--lookups", "--format", form, *extra,
            )  # fmt: skip
            assert code == 0, stderr
            outputs.append((stdout, stderr))
    assert outputs[:2] == outputs[2:]
    assert orjson.loads(outputs[1][0])["identities"] == {
        "way": "index",
        "search": {"requests": 47, "tokens": 502, "duration_s": 0.0},
        # The index the half send kept in the state file is refreshed, not listed whole: a page.
        "index": {"requests": 46, "tokens": 472, "duration_s": 0.0, "pages": 1, "refreshes": 1},
    }
    assert (
        "identities by search: 502 API tokens, 0.0 s; by index: 472 API tokens, 0.0 s (1 listing "
        "page; 1 refresh); a send would resolve them by index (--identities index)"
    ) in outputs[1][1].splitlines()
