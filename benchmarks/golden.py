"""Dry-run output, byte for byte: what a change that should not change behaviour must keep.

    python -m benchmarks.golden save DIR     # this tree's dry-run outputs on the golden inputs
    python -m benchmarks.golden check DIR    # the same, compared with DIR's; exit 1 on a change

The inputs: the examples, 50,000 events of the benchmark workload (workload.py) and a
deterministic 6,000-line mixed workload (`mixed_events`: every event kind, every [[track]] rule
kind of config.example.toml, merges and re-keys, bad values, repeated and missing messageIds,
lines that are not JSON or not an object), as NDJSON and as one JSON array; each under both
`--assume` modes, with the NDJSON output and its stderr and exit code, plus the mixed workload's
table. Made to compare two trees (run it in each, e.g. `git worktree add --detach`) or one tree
before and after a change; about 10 s a run.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from benchmarks.workload import write_events

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.example.toml"
EXAMPLES = ("events.ndjson", "batch.json", "archive.ndjson.gz", "external-ids.json")
NAMES = ("Demo Requested", "Call Scheduled", "Support Ticket Opened", "Page Viewed")
NAMES += ("Order Completed", "Signed Up", None)


def mixed_events(lines: int = 6000, seed: int = 12) -> list[bytes]:
    """The mixed workload's lines (the same every run for a seed)."""
    rng = random.Random(seed)
    chosen: list[str] = []
    out: list[bytes] = []
    kinds = ["identify"] * 4 + ["group"] * 2 + ["alias"] + ["track"] * 3 + ["page", "screen", "x"]
    for number in range(lines):
        kind = rng.choice(kinds)
        day, hour, second = 1 + rng.randrange(28), rng.randrange(24), rng.randrange(10)
        event: dict[str, Any] = {
            "type": kind,
            "messageId": f"m-{number}",
            "timestamp": f"2026-10-{day:02d}T{hour:02d}:00:0{second}Z",
        }
        draw = rng.random()
        if draw < 0.03:
            del event["messageId"]
        elif draw < 0.06 and chosen:
            event["messageId"] = rng.choice(chosen)
        chosen.append(event.get("messageId", ""))
        if rng.random() < 0.9:
            event["userId"] = f"u-{rng.randrange(400)}"
        if rng.random() < 0.3:
            event["anonymousId"] = f"a-{rng.randrange(500)}"
        if rng.random() < 0.05:
            event["context"] = {"externalId": [{"type": "person_id", "id": rng.randrange(1, 50)}]}
        if rng.random() < 0.05:
            event["timestamp"] = "not a time"
        traits = _traits(rng)
        if kind == "group":
            event["groupId"] = rng.choice([f"g-{rng.randrange(60)}", "", None, 5])
        if kind == "alias":
            event["previousId"] = rng.choice([f"u-{rng.randrange(400)}", f"old-{number}", None])
        if kind == "track":
            event["event"] = rng.choice(NAMES)
            event["properties"] = {
                "revenue": rng.choice([10, "99.5", "lots", None]),
                "currency": rng.choice(["EUR", "usd", "XX"]),
                "campaign": "spring",
                "topic": "intro",
                "page": "/p",
                "label": rng.choice(["Hot", "Cold", "Nope"]),
                "source": "ads",
            }
        if traits:
            if rng.random() < 0.3:
                event.setdefault("context", {})["traits"] = traits
            else:
                event["traits"] = traits
        if rng.random() < 0.02:
            out.append(b"{broken json\n")
        elif rng.random() < 0.01:
            out.append(b"[1,2]\n")
        else:
            out.append(orjson.dumps(event) + b"\n")
    return out


def _traits(rng: random.Random) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    if rng.random() < 0.7:
        traits["name"] = f"Person {rng.randrange(300)}"
    if rng.random() < 0.5:
        pair = ["a@b.example", "c@d.example"]
        traits["email"] = rng.choice([f"p{rng.randrange(300)}@x.example", pair, "", 5])
    if rng.random() < 0.3:
        traits["phone"] = rng.choice(["+1 555 0100", 12345, None])
    if rng.random() < 0.3:
        traits["role"] = rng.choice(["Buyer", "CTO", 7, {"x": 1}])
    if rng.random() < 0.3:
        traits["plan"] = rng.choice(["Pro", "Free", "Gold", "Enterprise"])
    if rng.random() < 0.2:
        traits["visible_to"] = rng.choice([1, 3, 4, "7"])
    if rng.random() < 0.2:
        traits["industry"] = rng.choice(["Software", "Mining"])
    if rng.random() < 0.2:
        traits["employees"] = rng.choice([10, "12.5", "many"])
    if rng.random() < 0.2:
        traits["extra"] = {"deep": {"x": 1}}
    return traits


def write_inputs(folder: Path) -> list[Path]:
    """The golden inputs, the generated ones written into `folder`."""
    lines = mixed_events()
    mixed = folder / "mixed.ndjson"
    mixed.write_bytes(b"".join(lines))
    objects = []
    for line in lines:
        try:
            objects.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    array = folder / "mixed.json"
    array.write_bytes(orjson.dumps(objects))
    workload = folder / "w50k.ndjson"
    write_events(workload, 50_000, compress=False)
    for name in EXAMPLES:  # beside the others: every source is named the same in each run
        shutil.copyfile(ROOT / "examples" / name, folder / name)
    return [*(folder / name for name in EXAMPLES), workload, mixed, array]


def dry_run(args: list[str], out: Path, folder: Path) -> None:
    """One dry-run of this tree in `folder`: its stdout, stderr and exit code into `out`.*."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    env.pop("PIPEDRIVE_API_TOKEN", None)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "dry-run", "-c", str(CONFIG), *args]
    run = subprocess.run(command, cwd=folder, env=env, capture_output=True, check=False)
    out.parent.joinpath(f"{out.name}.out").write_bytes(run.stdout)
    out.parent.joinpath(f"{out.name}.err").write_bytes(run.stderr)
    out.parent.joinpath(f"{out.name}.rc").write_text(f"{run.returncode}\n")


def save(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        inputs = write_inputs(folder)
        for path in inputs:
            for assume in ("missing", "existing"):
                args = ["--assume", assume, "--format", "ndjson", path.name]
                dry_run(args, target / f"{path.name}-{assume}", folder)
        dry_run([inputs[-2].name], target / "mixed-table", folder)


def check(saved: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        now = Path(scratch) / "now"
        save(now)
        names = sorted(p.name for p in saved.iterdir())
        _, changed, missing = filecmp.cmpfiles(saved, now, names, shallow=False)
    for name in changed + missing:
        print(f"changed: {name}")
    print("dry-run output byte for byte the same" if not changed + missing else "CHANGED")
    return 1 if changed + missing else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("save", "check"))
    parser.add_argument("folder", type=Path)
    options = parser.parse_args()
    if options.action == "save":
        save(options.folder)
        print(f"saved to {options.folder}")
    else:
        sys.exit(check(options.folder))


if __name__ == "__main__":
    main()
