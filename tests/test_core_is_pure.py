"""The core stays sans-I/O (STYLE.md): no network, terminal, database or file access in
rudder_pipedrive_cli/core, checked on the syntax tree of every module there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rudder_pipedrive_cli.core

CORE = Path(rudder_pipedrive_cli.core.__file__).parent
MODULES = sorted(CORE.rglob("*.py"))
FORBIDDEN_MODULES = {"httpx", "rich", "typer", "sqlite3", "socket", "pathlib"}
FORBIDDEN_CALLS = {"open"}  # open(...), io.open(...), os.open(...), Path.open(...)


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def calls(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                names.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                names.add(node.func.attr)
    return names


def test_the_core_has_modules() -> None:
    names = {path.relative_to(CORE).as_posix() for path in MODULES}
    assert {"protocol.py", "fields.py", "plans/__init__.py", "plans/track.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[p.relative_to(CORE).as_posix() for p in MODULES])
def test_core_module_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = {name.split(".")[0] for name in imported(tree)}
    assert not roots & FORBIDDEN_MODULES, f"{path.name} imports {sorted(roots & FORBIDDEN_MODULES)}"
    assert not calls(tree) & FORBIDDEN_CALLS, f"{path.name} opens files"


@pytest.mark.parametrize(
    ("source", "pure"),
    [
        ("import httpx", False),
        ("from rich.console import Console", False),
        ("import sqlite3 as db", False),
        ("from pathlib import Path", False),
        ("socket = __import__('socket')", False),
        ("data = open('f').read()", False),
        ("import io\nio.open('f')", False),
        ("from collections.abc import Mapping\nimport orjson", True),
        ("from rudder_pipedrive_cli.core.events import get_parts", True),
    ],
)
def test_the_check_itself(source: str, pure: bool) -> None:
    tree = ast.parse(source)
    roots = {name.split(".")[0] for name in imported(tree)}
    clean = not roots & FORBIDDEN_MODULES and not calls(tree) & FORBIDDEN_CALLS
    assert clean is pure
