"""A tiny TOML writer for rpd's own flat config tables (the stdlib reads TOML but cannot write it).

Only what rpd's config holds: tables of string, boolean, integer and string-list values, each line
with an optional trailing comment, comment lines under a table's header; arrays of tables
(`[[track]]`). Comments on one table line up.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Scalar = str | bool | int | tuple[str, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    key: str
    value: Scalar
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    name: str  # "identity", "fields.persons"
    entries: Sequence[Entry] = ()
    comment: str = ""  # on the header line
    notes: Sequence[str] = ()  # comment lines right under the header
    footer: Sequence[str] = ()  # comment lines after the entries
    array: bool = False  # one table of an array of tables: `[[name]]`


def toml_string(value: str) -> str:
    escaped = "".join(
        _ESCAPES.get(ch, f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch)
        for ch in value
    )
    return f'"{escaped}"'


def toml_key(key: str) -> str:
    """A bare key when TOML allows it, else a quoted one (a dotted trait path stays one key)."""
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_string(item) for item in value) + "]"
    return toml_string(value)


def _comment(text: str) -> str:
    """A comment line; control characters (which TOML refuses in comments) become spaces."""
    flat = "".join(" " if ch < " " or ch == "\x7f" else ch for ch in text)
    return ("# " + flat) if text else "#"


def render_table(table: Table) -> list[str]:
    header = ".".join(toml_key(part) for part in table.name.split("."))
    header = f"[[{header}]]" if table.array else f"[{header}]"
    lines = [f"{header}  {_comment(table.comment)}" if table.comment else header]
    lines.extend(_comment(note) for note in table.notes)
    assignments = [f"{toml_key(e.key)} = {toml_value(e.value)}" for e in table.entries]
    width = max((len(a) for a in assignments), default=0)
    for entry, assignment in zip(table.entries, assignments, strict=True):
        if entry.comment:
            lines.append(f"{assignment.ljust(width)}  {_comment(entry.comment)}")
        else:
            lines.append(assignment)
    lines.extend(_comment(note) for note in table.footer)
    return lines


def render(tables: Sequence[Table], *, header: Sequence[str] = ()) -> str:
    """The document: header comment lines, then each table, a blank line between them."""
    blocks = []
    if header:
        blocks.append("\n".join(_comment(line) for line in header))
    blocks.extend("\n".join(render_table(table)) for table in tables)
    return "\n\n".join(blocks) + "\n"
