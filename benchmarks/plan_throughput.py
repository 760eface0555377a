"""Planning throughput: `rpd dry-run --format ndjson -o /dev/null` against a bare orjson loop.

    python -m benchmarks.plan_throughput [--sizes 20000,200000] [--repeat 2]
    python -m benchmarks.plan_throughput --bounded USERS [--sizes ...] [--cache-entries N]

For each size it writes that many realistic events, times a bare `orjson.loads` loop over the
same lines (the floor of any reader), then runs the dry-run in a fresh subprocess and prints
events/s, the ratio to the bare loop, and the dry-run's peak memory. Targets (issue 2): at least
100,000 events/s, at least 0.2 of the bare loop, and peak memory that does not grow with input
size (the larger size is 10x the smaller).

`--bounded USERS` instead compares, in this process (CPU time, best of `--repeat`), the dry-run
with its identity cache in bounded tables (as `rpd dry-run` keeps it, issue 18) against the same
code with plain dicts, on events of USERS distinct userIds (0: every userId distinct).

`run(quick)` is the runner's entry (`python -m benchmarks`): one size, the best of a few runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.measure import measured
from benchmarks.verdict import check, result
from benchmarks.workload import write_events

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.example.toml"


TARGET_RATE = 100_000  # events/s
TARGET_RATIO = 0.2  # of the bare orjson loop


def bare_rate(path: Path) -> float:
    loads = orjson.loads
    start = time.perf_counter()
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            loads(line)
            count += 1
    return count / (time.perf_counter() - start)


def stage_costs(path: Path, repeat: int = 3) -> dict[str, float]:
    """Microseconds per event of the dry-run's stages, in this process (best of `repeat`).

    - `parse`: the bare orjson loop;
    - `read`: `EventReader` and `intake` (sniffing, unwrapping, `parse_event`, filters);
    - `read_render`: that, plus each event's NDJSON line with no plan run (what every dry-run
      pays before any planning);
    - `dry_run`: `preview` with the example config, plus the lines, as `rpd dry-run` runs them
      (without its start-up); `planning` is the difference.
    """
    from rudder_pipedrive_cli.core.filters import EventFilter
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.intake import intake
    from rudder_pipedrive_cli.core.preview import Recorder, preview
    from rudder_pipedrive_cli.core.protocol import Outcome
    from rudder_pipedrive_cli.core.responder import OfflineResponder
    from rudder_pipedrive_cli.core.tally import Tally
    from rudder_pipedrive_cli.io.config import load_settings
    from rudder_pipedrive_cli.io.readers import EventReader

    config = load_settings(str(CONFIG), env={}).plan_config()
    no_plan = Outcome(status="skipped", reason="not planned")
    every = EventFilter.from_options(None, None, None)
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE

    def read() -> int:
        return sum(1 for _ in intake(EventReader([str(path)]), every))

    def read_render() -> int:
        count = 0
        with open(os.devnull, "wb") as sink:
            for item in intake(EventReader([str(path)]), every):
                outcome = item.decided or no_plan  # the record preview makes, without requests
                record = {
                    "source": item.source,
                    "id": item.id,
                    "type": item.kind,
                    "outcome": outcome.status,
                    "reason": outcome.reason,
                    "warnings": outcome.warnings,
                    "dropped": outcome.dropped,
                    "requests": [],
                }
                sink.write(dumps(record, option=newline))
                count += 1
        return count

    def dry_run() -> int:
        count = 0
        items = intake(EventReader([str(path)]), every)
        respond = Recorder(OfflineResponder(config, "missing"), Tally())
        with open(os.devnull, "wb") as sink:
            for planned in preview(items, config, respond, IdentityStore()):
                sink.write(dumps(planned, option=newline))
                count += 1
        return count

    def best(stage: Callable[[], int]) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            count = stage()
            times.append((time.perf_counter() - start) / count * 1e6)
        return round(min(times), 2)

    costs = {
        "parse": round(1e6 / max(bare_rate(path) for _ in range(repeat)), 2),
        "read": best(read),
        "read_render": best(read_render),
        "dry_run": best(dry_run),
    }
    costs["planning"] = round(costs["dry_run"] - costs["read_render"], 2)
    return costs


# The layers of issue 12's table, in its order.
LAYERS = (
    ("reading", "reading and intake (lines, parse, one Event each)"),
    ("intake", "filters and --limit (intake)"),
    ("identity", "identity resolution, ordering keys, per-event state"),
    ("plans", "plan generators and driving"),
    ("fields", "field mapping and coercion"),
    ("records", "request records (made while planning now)"),
    ("rendering", "rendering"),
    ("tally", "report tally"),
)
# The report's functions outside core/tally.py: the tally's layer, timed on its own.
TALLY_FUNCTIONS = {("core/errors.py", "redacted_warning")}
PLANNING = ("identity", "plans", "fields")  # measured together, split by the profile's shares
# Which planning layer a function's own time belongs to: by module, then by (module, function).
MODULE_LAYERS = {
    "core/identity_cache.py": "identity",
    "core/index.py": "identity",
    "core/recency.py": "identity",
    "core/ordering.py": "identity",
    "io/scratch.py": "identity",
    "core/intake.py": "identity",  # during planning: the finished ids (Finished)
    "core/fields.py": "fields",
}
FUNCTION_LAYERS = {
    ("core/plans/common.py", "find"): "identity",
    ("core/plans/common.py", "lookup"): "identity",
    ("core/plans/common.py", "aliased_away"): "identity",
    ("core/plans/common.py", "require_field"): "identity",
    ("core/plans/common.py", "learn"): "identity",
    ("core/plans/common.py", "forget"): "identity",
    ("core/plans/common.py", "outcome"): "identity",
    ("core/plans/common.py", "finish"): "identity",
    ("core/plans/common.py", "at"): "identity",
    ("core/plans/common.py", "times_of"): "identity",
    ("core/plans/common.py", "wrote_fields"): "identity",
    ("core/plans/common.py", "entity_body"): "fields",
    ("core/plans/common.py", "with_identity"): "fields",
    ("core/plans/common.py", "person_create_body"): "fields",
    ("core/plans/common.py", "drop"): "fields",
    ("core/plans/track.py", "lead_body"): "fields",
    ("core/plans/track.py", "properties_body"): "fields",
}


def _where(filename: str) -> str:
    """A profiled function's file, relative to the package ("core/fields.py"), or ""."""
    marker = "rudder_pipedrive_cli/"
    return filename.split(marker, 1)[1] if marker in filename else ""


def planning_shares(profile: Any) -> dict[str, float]:
    """The share of each planning layer in the profiled planning time. Builtins and generated
    `__init__`s count for the layer of the function that called them."""
    own: dict[str, float] = dict.fromkeys(PLANNING, 0.0)

    def layer_of(function: tuple[str, int, str]) -> str | None:
        where = _where(function[0])
        if where in ("io/readers.py", "core/wrappers.py", "core/events.py", "core/filters.py"):
            return None  # reading and intake, timed on their own
        if where in ("core/tally.py", "core/costs.py") or (where, function[2]) in TALLY_FUNCTIONS:
            return None  # the tally, timed on its own
        if where == "core/intake.py" and function[2] in ("intake", "_taken"):
            return None
        found = FUNCTION_LAYERS.get((where, function[2])) or MODULE_LAYERS.get(where)
        return found or ("plans" if where else None)

    for function, (_cc, _calls, tottime, _cum, callers) in profile.stats.items():
        layer = layer_of(function)
        if layer is not None:
            own[layer] += tottime
        elif not _where(function[0]) and function[0] in ("~", "<string>"):
            for caller, figures in callers.items():
                layer = layer_of(caller)
                if layer is not None:
                    own[layer] += figures[2]
    total = sum(own.values()) or 1.0
    return {layer: seconds / total for layer, seconds in own.items()}


def layer_costs(path: Path, chunk: int = 5_000) -> dict[str, float]:
    """CPU microseconds per event of each layer of the table in issue 12, in this process.

    Reading and intake are timed alone (the reader; the reader and `intake`, less the reader);
    the dry-run then runs a chunk of events at a time, and each chunk's rendering (orjson lines
    to /dev/null) and the tally of their outcomes (into a second `Tally`, as the product counts
    them: requests by `key`, each outcome as `preview` counts it) are timed on their own.
    What is left of the run is planning, split into its three layers by their shares of a
    cProfile of the first chunks. Request records are made once, in the run, as `preview` plans
    each event (its records are what it yields): their time is in "plan generators and
    driving", and "request records" reads 0.
    """
    import cProfile

    from rudder_pipedrive_cli.core.filters import EventFilter
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore
    from rudder_pipedrive_cli.core.intake import intake
    from rudder_pipedrive_cli.core.preview import Recorder, preview
    from rudder_pipedrive_cli.core.protocol import Outcome
    from rudder_pipedrive_cli.core.responder import OfflineResponder
    from rudder_pipedrive_cli.core.tally import Tally
    from rudder_pipedrive_cli.io.config import load_settings
    from rudder_pipedrive_cli.io.readers import EventReader
    from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, ScratchIds, Spill

    config = load_settings(str(CONFIG), env={}).plan_config()
    every = EventFilter.from_options(None, None, None)
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    # CPU time, not wall time: on a shared machine the wait for a core is no layer's cost.
    clock = time.process_time

    start = clock()
    count = sum(1 for _ in EventReader([str(path)]))
    reading = clock() - start
    start = clock()
    sum(1 for _ in intake(EventReader([str(path)]), every))
    intake_s = clock() - start - reading

    def run(profile: cProfile.Profile | None, limit: int | None) -> dict[str, float]:
        spent = dict.fromkeys(("run", "records", "rendering", "tally"), 0.0)
        tally = Tally()
        counts, add_outcome = tally.requests, tally.add_outcome
        items = intake(EventReader([str(path)]), every)
        respond = Recorder(OfflineResponder(config, "missing"), Tally())
        # Bounded tables, as `rpd dry-run` keeps what earlier events would create (issue 18).
        with (
            Spill(CACHE_ENTRIES) as spill,
            ScratchIds() as finished,
            open(os.devnull, "wb") as sink,
        ):
            known = IdentityStore(spill.table)
            planned = preview(items, config, respond, known, None, finished, spill.table)
            done = 0
            while limit is None or done < limit:
                batch: list[dict[str, Any]] = []
                start = clock()
                if profile is not None:
                    profile.enable()
                for each in planned:
                    batch.append(each)
                    if len(batch) == chunk:
                        break
                if profile is not None:
                    profile.disable()
                spent["run"] += clock() - start
                if not batch:
                    break
                done += len(batch)
                start = clock()
                for record in batch:
                    sink.write(dumps(record, option=newline))
                spent["rendering"] += clock() - start
                # Each event's outcome, as the product has it when it counts (made untimed).
                ends = [
                    Outcome(r["outcome"], r["reason"], warnings=r["warnings"], dropped=r["dropped"])
                    for r in batch
                ]
                start = clock()
                for record, outcome in zip(batch, ends, strict=True):  # as the product counts
                    for request in record["requests"]:
                        try:  # a plain dict, as the dry-run's Recorder counts
                            counts[request.key] += 1
                        except KeyError:
                            counts[request.key] = 1
                    add_outcome(record["type"], outcome)
                spent["tally"] += clock() - start
        return spent

    spent = run(None, None)
    profile = cProfile.Profile()
    run(profile, 4 * chunk)
    profile.create_stats()
    shares = planning_shares(profile)
    planning = spent["run"] - reading - intake_s - spent["tally"]
    seconds = {
        "reading": reading,
        "intake": intake_s,
        **{layer: planning * shares[layer] for layer in PLANNING},
        "records": spent["records"],
        "rendering": spent["rendering"],
        "tally": spent["tally"],
    }
    return {layer: round(seconds[layer] / count * 1e6, 2) for layer, _ in LAYERS}


def bounded_vs_unbounded(path: Path, repeat: int = 3, entries: int | None = None) -> dict[str, Any]:
    """Issue 18: µs per event of the dry-run (`preview` and each line, in this process) with
    the identity cache in bounded tables as `rpd dry-run` keeps it (io/scratch.py's SpillTable,
    `entries` per table) and in plain dicts, interleaved, best of `repeat`; and their ratio."""
    from rudder_pipedrive_cli.core.filters import EventFilter
    from rudder_pipedrive_cli.core.identity_cache import IdentityStore, Tables
    from rudder_pipedrive_cli.core.intake import intake
    from rudder_pipedrive_cli.core.preview import Recorder, preview
    from rudder_pipedrive_cli.core.responder import OfflineResponder
    from rudder_pipedrive_cli.core.tally import Tally
    from rudder_pipedrive_cli.io.config import load_settings
    from rudder_pipedrive_cli.io.readers import EventReader
    from rudder_pipedrive_cli.io.scratch import CACHE_ENTRIES, ScratchIds, Spill

    config = load_settings(str(CONFIG), env={}).plan_config()
    every = EventFilter.from_options(None, None, None)
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE

    def dry_run(tables: Tables | None) -> float:
        count = 0
        items = intake(EventReader([str(path)]), every)
        respond = Recorder(OfflineResponder(config, "missing"), Tally())
        with (
            Spill(entries or CACHE_ENTRIES) as spill,
            ScratchIds() as finished,
            open(os.devnull, "wb") as sink,
        ):
            known = IdentityStore(tables or spill.table)
            bounds = (None, finished, tables or spill.table)
            start = time.process_time()
            for planned in preview(items, config, respond, known, *bounds):
                sink.write(dumps(planned, option=newline))
                count += 1
            return (time.process_time() - start) / count * 1e6

    bounded, unbounded = [], []
    for _ in range(repeat):
        bounded.append(dry_run(None))
        unbounded.append(dry_run(dict))
    return {
        "bounded_us": round(min(bounded), 2),
        "unbounded_us": round(min(unbounded), 2),
        "throughput_ratio": round(min(unbounded) / min(bounded), 3),
    }


def measure_size(size: int, repeat: int, folder: Path) -> dict[str, Any]:
    """Dry-run `size` events `repeat` times, a bare loop before each; the best of each."""
    path = folder / f"events-{size}.ndjson"
    write_events(path, size, compress=False)
    args = ["dry-run", str(path), "--config", str(CONFIG), "--format", "ndjson"]
    # A state file that does not exist: nothing an earlier send left beside the config is read.
    args += ["-o", "/dev/null", "-q", "--state", str(folder / "no-state.sqlite")]
    bares, runs = [], []
    for _ in range(repeat):  # interleaved, so both see the same load on a shared machine
        bares.append(bare_rate(path))
        runs.append(measured(args, folder))
    bare = max(bares)
    best = min(runs, key=lambda r: r["seconds"])
    rate = size / best["seconds"]
    stages = stage_costs(path, repeat)
    return {
        "stages_us": stages,
        "layers_us": layer_costs(path),
        # Each target as time per event: 10 us at 100,000 events/s, 5x the parse at 0.2 of it.
        "budget_us": round(min(1e6 / TARGET_RATE, stages["parse"] / TARGET_RATIO), 2),
        "events": size,
        "events_per_s": round(rate),
        "events_per_cpu_s": round(size / min(r["cpu_s"] for r in runs)),
        "bare_per_s": round(bare),
        "ratio": round(rate / bare, 3),
        "peak_mb": round(max(r["peak_mb"] for r in runs), 1),
    }


def run(quick: bool) -> dict[str, Any]:
    """Benchmark 1: dry-run events/s against the bare loop over the same file."""
    started = time.perf_counter()
    size, repeat = (200, 1) if quick else (200_000, 3)
    with tempfile.TemporaryDirectory() as folder:
        figures = measure_size(size, repeat, Path(folder))
    return result(
        "planning throughput: rpd dry-run --format ndjson -o /dev/null",
        bound="CPU: one Python thread reads, plans and renders every event",
        figures=figures,
        baseline={"bare_orjson_loop_per_s": figures["bare_per_s"]},
        targets=[
            check("events/s", figures["events_per_s"], at_least=TARGET_RATE),
            check(
                "share of the bare orjson loop",
                figures["ratio"],
                at_least=TARGET_RATIO,
                baseline=figures["bare_per_s"],
            ),
        ],
        seconds=time.perf_counter() - started,
    )


def print_layers(results: list[dict[str, Any]]) -> None:
    """Issue 12's table: us per event of each layer, one column per size."""
    print()
    print(f"{'us per event, by layer':<54}" + "".join(f"{r['events']:>10,}" for r in results))
    for layer, title in LAYERS:
        print(f"{title:<54}" + "".join(f"{r['layers_us'][layer]:>10.2f}" for r in results))
    totals = "".join(f"{sum(r['layers_us'].values()):>10.2f}" for r in results)
    print(f"{'all layers':<54}{totals}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--bounded",
        metavar="USERS",
        type=int,
        help="instead: the dry-run with bounded tables against dicts (issue 18), on each size "
        "with USERS distinct userIds (0: every userId distinct)",
    )
    parser.add_argument("--cache-entries", type=int, help="with --bounded: entries per table")
    args = parser.parse_args(argv)
    results = []
    if args.bounded is not None:
        with tempfile.TemporaryDirectory() as folder:
            for size in (int(s) for s in args.sizes.split(",")):
                path = Path(folder) / f"events-{size}.ndjson"
                write_events(path, size, compress=False, users=args.bounded)
                figures = bounded_vs_unbounded(path, args.repeat, args.cache_entries)
                print(f"{size:>9} events, {args.bounded or 'all distinct'} users: {figures}")
                results.append(figures)
        return results
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            results.append(measure_size(size, args.repeat, Path(folder)))
    # ev/CPU-s: events per CPU second of the dry-run (imports excluded), steadier than wall time
    # on a shared machine.
    print(
        f"{'events':>9} {'dry-run ev/s':>13} {'ev/CPU-s':>9} {'bare ev/s':>11} {'ratio':>6} "
        f"{'peak MB':>8}"
    )
    for r in results:
        print(
            f"{r['events']:>9} {r['events_per_s']:>13,} {r['events_per_cpu_s']:>9,} "
            f"{r['bare_per_s']:>11,} {r['ratio']:>6.3f} {r['peak_mb']:>8.1f}"
        )
    for r in results:
        stages, budget = r["stages_us"], r["budget_us"]
        print(
            f"{r['events']:>9} events, us per event in this process: parse {stages['parse']}, "
            f"read {stages['read']}, read+render {stages['read_render']}, "
            f"dry-run {stages['dry_run']} (planning {stages['planning']}); "
            f"both targets leave {budget} for everything"
        )
    print_layers(results)
    if len(results) > 1:
        growth = results[-1]["peak_mb"] / results[0]["peak_mb"]
        print(f"peak memory, largest vs smallest input: {growth:.2f}x")
    return results


if __name__ == "__main__":
    main()
