"""What compiling the core would buy: the planning stages, pure Python against mypyc-compiled.

    python -m benchmarks.compiled_ceiling [--events 50000] [--repeat 3]

Issue 2's planning targets leave about 9 us an event on this machine, and pure Python spends
about four times that (`benchmarks.plan_throughput` prints the stages). This script measures the
one way to run the same code faster without writing it twice: it copies the package to a
temporary folder, compiles `core/` and `io/readers.py` there with mypyc (which comes with mypy,
already a test dependency; it needs a C compiler), and measures the stages of
`plan_throughput.stage_costs` in fresh processes, the copy and the checkout interleaved. Nothing
is installed and the checkout is not touched.

It is an experiment, not a build option: rpd ships as pure Python.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks.workload import write_events

ROOT = Path(__file__).resolve().parents[1]
COMPILED = ("rudder_pipedrive_cli/core", "rudder_pipedrive_cli/io/readers.py")
STAGES = (
    "from pathlib import Path; import sys, orjson; "
    "from benchmarks.plan_throughput import stage_costs; "
    "import rudder_pipedrive_cli.core.plans.common as probe; "
    "costs = stage_costs(Path(sys.argv[1]), int(sys.argv[2])); "
    "costs['compiled'] = not probe.__file__.endswith('.py'); "
    "print(orjson.dumps(costs).decode())"
)


def compile_copy(folder: Path) -> Path:
    """The package copied under `folder`, with the core compiled by mypyc beside its sources."""
    copy = folder / "compiled"
    shutil.copytree(
        ROOT / "rudder_pipedrive_cli",
        copy / "rudder_pipedrive_cli",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    subprocess.run(
        [sys.executable, "-m", "mypyc", *COMPILED],
        cwd=copy,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return copy


def stages(path: Path, repeat: int, package_root: Path) -> dict[str, Any]:
    """Stage costs in a fresh interpreter that imports rpd from `package_root` first."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package_root), str(ROOT)]))
    done = subprocess.run(
        [sys.executable, "-c", STAGES, str(path), str(repeat)],
        cwd=package_root,  # `python -c` puts its folder first on sys.path
        env=env,
        check=True,
        capture_output=True,
    )
    costs: dict[str, Any] = orjson.loads(done.stdout)
    return costs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = folder / "events.ndjson"
        write_events(path, args.events, compress=False)
        copy = compile_copy(folder)
        runs: dict[str, list[dict[str, Any]]] = {"pure": [], "compiled": []}
        for _ in range(2):  # interleaved, so both see the same load on a shared machine
            runs["pure"].append(stages(path, args.repeat, ROOT))
            runs["compiled"].append(stages(path, args.repeat, copy))
    if any(r["compiled"] for r in runs["pure"]) or not all(r["compiled"] for r in runs["compiled"]):
        raise SystemExit("the pure run imported compiled code, or the compiled run did not")
    best = {kind: _best(found) for kind, found in runs.items()}
    budget = min(10.0, best["pure"]["parse"] * 5)  # 100,000 events/s; 0.2 of the bare loop
    print(f"{args.events:,} events, us per event (best of {2 * args.repeat} in each build)")
    print(f"{'stage':<12} {'pure':>8} {'compiled':>9} {'speed-up':>9}")
    for stage in ("parse", "read", "read_render", "planning", "dry_run"):
        pure, compiled = best["pure"][stage], best["compiled"][stage]
        print(f"{stage:<12} {pure:>8.2f} {compiled:>9.2f} {pure / compiled:>8.2f}x")
    print(
        f"both targets leave {budget:.2f} us an event: the compiled dry-run is "
        f"{best['compiled']['dry_run'] / budget:.1f}x that, the pure one "
        f"{best['pure']['dry_run'] / budget:.1f}x"
    )
    return best


def _best(runs: list[dict[str, Any]]) -> dict[str, float]:
    stages = ("parse", "read", "read_render", "dry_run")
    best = {stage: min(run[stage] for run in runs) for stage in stages}
    best["planning"] = round(best["dry_run"] - best["read_render"], 2)
    return best


if __name__ == "__main__":
    main()
