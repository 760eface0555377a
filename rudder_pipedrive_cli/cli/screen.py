"""Text for people: what reaches a terminal never carries a control character from data.

Event data (a userId, a trait name, a file name) and an account's data (a field's name) may hold
escape sequences: cursor-up and erase-line would rewrite what a user reads, a title sequence
would retitle the window. Everything rpd prints for people goes through `printable`, which shows
each C0 control (but the line breaks rpd itself writes), DEL and C1 control as a visible `\\xNN`;
machine outputs (NDJSON, JSON, TOML written for a file) keep the data as it is.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.cells import cell_len

if TYPE_CHECKING:
    from rich.console import Console

CONTROLS = {
    code: f"\\x{code:02x}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if code != ord("\n")
}


def printable(text: str) -> str:
    """`text` with every control character but the newline shown as `\\xNN`."""
    return text.translate(CONTROLS) if not text.isprintable() else text


def say(console: Console, text: str, *, indent: str = "") -> None:
    """Print one message for people: no markup, no highlighting, no control characters from
    the data it quotes, and never cut. On a terminal a line wider than the terminal is wrapped
    between words (`wrap`), its next lines indented by `indent` more than its own indentation;
    in a file or a pipe each line stays one line, whole, for grep."""
    text = printable(text)
    if console.is_terminal:
        text = wrap(text, console.width, indent=indent)
    console.print(text, markup=False, highlight=False, soft_wrap=True)


WORD = re.compile(r" *[^ ]+")  # a word and the spaces before it


def wrap(text: str, width: int, *, indent: str = "") -> str:
    """`text` with each line wider than `width` columns broken between words, never inside one:
    the lines it continues on start with the line's own leading spaces plus `indent`. A word
    wider than the room (a long path, a URL) is kept whole on a line of its own."""
    return "\n".join(
        piece for line in text.split("\n") for piece in _wrap_line(line, width, indent)
    )


def _wrap_line(line: str, width: int, indent: str) -> list[str]:
    if cell_len(line) <= width:
        return [line]
    rest = line.lstrip(" ")
    lead = line[: len(line) - len(rest)]
    pieces: list[str] = []
    current, start = lead, lead
    for match in WORD.finditer(rest):
        token = match.group()
        if current != start and cell_len(current + token) > width:
            pieces.append(current)
            current = start = lead + indent
            token = token.lstrip(" ")
        current += token
    pieces.append(current)
    return pieces


def plural(count: int, word: str, words: str = "") -> str:
    """`1 merge`, `2 merges`, `1,000 identities` (`words` when adding an s is not the plural)."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"
