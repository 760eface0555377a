"""Text for people: what reaches a terminal never carries a control character from data.

Event data (a userId, a trait name, a file name) and an account's data (a field's name) may hold
escape sequences: cursor-up and erase-line would rewrite what a user reads, a title sequence
would retitle the window. Everything rpd prints for people goes through `printable`, which shows
each C0 control (but the line breaks rpd itself writes), DEL and C1 control as a visible `\\xNN`;
machine outputs (NDJSON, JSON, TOML written for a file) keep the data as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

CONTROLS = {
    code: f"\\x{code:02x}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if code != ord("\n")
}


def printable(text: str) -> str:
    """`text` with every control character but the newline shown as `\\xNN`."""
    return text.translate(CONTROLS) if not text.isprintable() else text


def say(console: Console, text: str) -> None:
    """Print one message for people: no markup, no highlighting, no control characters from
    the data it quotes, and never cut (soft wrap: a terminal wraps it, a file keeps one line)."""
    console.print(printable(text), markup=False, highlight=False, soft_wrap=True)


def plural(count: int, word: str, words: str = "") -> str:
    """`1 merge`, `2 merges`, `1,000 identities` (`words` when adding an s is not the plural)."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"
