"""The repository stands alone: a clone with nothing beside it installs and passes its tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Spelled in parts so that this file does not hold the paths it looks for (a grep for them, as the
# before-stop check runs, would find the guard itself).
SHARED = "shared"
OUTSIDE = (f"../{SHARED}", f"{SHARED}/pipedrive-openapi", "/" + "work/")


def tracked_code() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py", "*.toml", ".ci/*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout (an sdist): read the tree instead
        return [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    return [ROOT / name for name in listed.stdout.splitlines()]


def test_no_file_reaches_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in tracked_code()
        if path.is_file()
        for needle in OUTSIDE
        if needle in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert offenders == []


def test_openapi_descriptions_are_in_the_repository() -> None:
    from openapi_contract import load, specs_dir

    assert specs_dir().is_relative_to(ROOT)
    assert load("v2.yaml")["info"]["title"] == "Pipedrive API v2"
    assert load("v1.yaml")["info"]["title"] == "Pipedrive API v1"
