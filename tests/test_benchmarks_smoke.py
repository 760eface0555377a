"""The benchmark runner still runs: `python -m benchmarks --quick` (tiny sizes) ends well and
writes results.json in the documented shape. Only the shape is checked, never a figure: timed
assertions do not belong in the test suite (STYLE.md); benchmarks/README.md has the figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {
    "planning",
    "memory",
    "efficiency",
    "saturation",
    "unthrottled",
    "objects",
    "startup",
    "identity_index",
}
TARGET_KEYS = {"figure", "measured", "baseline", "target", "met"}


def test_quick_run_writes_every_benchmark_with_its_targets(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "verdict" in done.stdout  # the table's header
    document = orjson.loads(out.read_bytes())
    assert document["quick"] is True
    assert set(document["machine"]) >= {"python", "cpus"}
    assert set(document["benchmarks"]) == BENCHMARKS
    for name, result in document["benchmarks"].items():
        assert set(result) == {"title", "bound", "figures", "baseline", "targets", "seconds"}, name
        assert result["targets"], name
        for target in result["targets"]:
            assert set(target) == TARGET_KEYS, name
            assert target["met"] in (True, False, None), name
    assert not out.with_name("results.json.tmp").exists()  # written aside, then renamed


def printed(*module_and_args: str) -> list[str]:
    """The lines `python -m BENCHMARK ARGS...` prints, once it ended well."""
    done = subprocess.run(
        [sys.executable, "-m", *module_and_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_identity_index_memory_benchmark_runs_and_prints_each_measurement() -> None:
    """`benchmarks.memory --index-persons`: a seeded sandbox, one fresh process per account size
    and per place of the index's rows (each checks that every userId is found once)."""
    command = ["benchmarks.memory", "--sizes", "", "--send-sizes", ""]
    lines = printed(*command, "--index-persons", "10,20", "--cache-entries", "8")
    header = lines.index("index in   persons  peak MB  before  list s  lookup us")
    rows = [line.split()[:2] for line in lines[header + 1 : header + 5]]
    assert rows == [["dicts", "10"], ["dicts", "20"], ["bounded", "10"], ["bounded", "20"]]
    targets = orjson.loads("\n".join(lines[header + 5 :]))
    assert [target["figure"] for target in targets] == [
        "identity index without a state file, bounded: peak RSS at the largest account / smallest"
    ]


def test_the_person_origins_benchmark_runs_and_prints_each_measurement() -> None:
    """`benchmarks.person_origins`: a dry-run, a state file and a read-only state per size."""
    lines = printed("benchmarks.person_origins", "--sizes", "20,40")
    assert lines[0].split() == ["tracks", "where", "CPU", "s", "us/track", "us/added", "track"]
    rows = [line.split()[:2] for line in lines[1:]]
    assert rows == [
        ["20", "dry-run"],
        ["40", "dry-run"],
        ["20", "state"],
        ["40", "state"],
        ["20", "read-only"],
        ["40", "read-only"],
    ]


def test_the_state_size_benchmark_prints_each_table_s_bytes_per_event() -> None:
    """`benchmarks.state_size`: a state filled with 40 events, each table and index, VACUUM."""
    lines = printed("benchmarks.state_size", "--events", "40", "--vacuum")
    assert lines[0].startswith("filled with 40 events: ")
    assert lines[0].split(", ")[1] == "40 events journaled"
    assert lines[1].split()[3:] == ["rows", "bytes", "share", "B/event", "payload", "unused"]
    shown = {line.split()[0]: line.split()[1] for line in lines[2:-2]}
    assert shown["journal"] == "40"
    assert shown["identities"] == "40"
    assert shown["lead_origins"] == "10"
    assert shown["source_files"] == "1"
    assert lines[-2].split()[:2] == ["free", "pages"]
    assert lines[-1].startswith("  VACUUM: ")


def test_the_alias_chains_benchmark_prints_the_searches_of_its_dry_run() -> None:
    """`benchmarks.alias_chains`: an identify of each previousId, then its aliases (no send)."""
    lines = printed(
        "benchmarks.alias_chains", "--aliases", "6", "--previous", "2", "--send-aliases", "0"
    )
    assert [line.split(" s (")[0].rsplit(", ", 1)[0] for line in lines] == [
        "dry-run 6 aliases over 2 previousIds (8 events): 14 searches planned"
    ]
