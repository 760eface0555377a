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
