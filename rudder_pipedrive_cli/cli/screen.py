"""Text for people: what reaches a terminal never carries a control character from data.

Event data (a userId, a trait name, a file name) and an account's data (a field's name) may hold
escape sequences: cursor-up and erase-line would rewrite what a user reads, a title sequence
would retitle the window. Everything rpd prints for people goes through `printable`, which shows
each C0 control (but the line breaks rpd itself writes), DEL and C1 control as a visible `\\xNN`;
machine outputs (NDJSON, JSON, TOML written for a file) keep the data as it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import typer
from rich.cells import cell_len

if TYPE_CHECKING:  # `rpd --help` loads this module: rich's text and console only when used
    from rich.console import Console
    from rich.text import Text

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
    show(console, wrap(text, console.width, indent=indent) if console.is_terminal else text)


def show(console: Console, text: str) -> None:
    """Print a document (JSON) as `say` does, but never wrapped: a line break inside one of
    its strings would make what is copied from the terminal another document, or none."""
    console.print(printable(text), markup=False, highlight=False, soft_wrap=True)


# DEL and the C1 controls as a JSON document's UTF-8 holds them (orjson escapes C0 itself).
RAW_CONTROLS = re.compile(rb"\x7f|\xc2[\x80-\x9f]")


def document_for_screen(data: bytes) -> bytes:
    """A JSON document (orjson's UTF-8 bytes) as it may reach a terminal: DEL and each C1
    control as a `\\u00NN` escape, so the document stays valid JSON and the same data."""
    return RAW_CONTROLS.sub(lambda raw: b"\\u%04x" % ord(raw.group().decode()), data)


def write_document(data: bytes) -> None:
    """Write a document (JSON, TOML) to stdout as UTF-8 bytes: one that stdout's encoding
    cannot write (PYTHONIOENCODING=ascii, a Latin-1 locale) would be escaped as text is, and
    `"d\\xf6"` is no JSON; dry-run's JSON is written the same way."""
    typer.echo(data, nl=False)


def say_text(console: Console, text: Text, *, indent: str = "") -> None:
    """`say` for a styled line (a dry-run's event and its requests): on a terminal wrapped
    between words as `wrap` does, the styles kept; elsewhere each line whole."""
    if console.is_terminal:
        text = wrap_text(text, console.width, indent=indent)
    console.print(text, soft_wrap=True)


FALLBACK_COLUMNS = 80  # a terminal that tells no width: rich's guess (and shutil's)


def columns(stream: TextIO) -> int:
    """The width text for people written to `stream` is wrapped to: 0 (never wrapped) in a file
    or a pipe; on a terminal $COLUMNS when set, else that terminal's own width (not stdout's:
    `rpd send ... > out.txt` shows its errors on the terminal stderr is), as rpd's rich
    consoles take it."""
    try:
        if not stream.isatty():
            return 0
    except ValueError:  # closed
        return 0
    setting = os.environ.get("COLUMNS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    try:
        return os.get_terminal_size(stream.fileno()).columns or FALLBACK_COLUMNS
    except (OSError, ValueError):  # no file descriptor, or a terminal that tells no size
        return FALLBACK_COLUMNS


WORD = re.compile(r" *[^ ]+")  # a word and the spaces before it
# A command in backticks (`chmod 600 rpd.toml`) and what follows it to the next space, or a word:
# a command cut across lines is one a copy of either line does not run.
PHRASE = re.compile(r" *(?:`[^`]*`[^ ]*|[^ ]+)")


def wrap(text: str, width: int, *, indent: str = "", pair: bool = True) -> str:
    """`text` with each line wider than `width` columns broken between words, never inside one:
    the lines it continues on start with the line's own leading spaces plus `indent`. A word
    wider than the room (a long path, a URL) is kept whole on a line of its own. A line's first
    word stays with its second unless not `pair`."""
    lines = []
    for line in text.split("\n"):
        spans, more = _breaks(line, width, indent, pair)
        lines += [line[:end] if at == 0 else more + line[at:end] for at, end in spans]
    return "\n".join(lines)


def wrap_text(text: Text, width: int, *, indent: str = "") -> Text:
    """`wrap` for a styled Text: the same breaks, each piece keeping its styles."""
    wrapped = text.blank_copy()
    for number, line in enumerate(text.split("\n", allow_blank=True)):
        spans, more = _breaks(line.plain, width, indent)
        for at, end in spans:
            if number or at:
                wrapped.append("\n")
            if at:
                wrapped.append(more)
            wrapped.append_text(line[at:end])
    return wrapped


def _breaks(
    line: str, width: int, indent: str, pair: bool = True
) -> tuple[list[tuple[int, int]], str]:
    """Where `line` is cut: the (start, end) of each piece (a piece after the first starts at a
    word, its spaces before dropped), and what the pieces after the first start with."""
    rest = line.lstrip(" ")
    lead = line[: len(line) - len(rest)]
    more = lead + indent
    if cell_len(line) <= width:
        return [(0, len(line))], more
    spans: list[tuple[int, int]] = []
    first = WORD.search(line)  # a line's first word stays with its second: `GET` with its path,
    keep = first.end() if first and pair else len(lead)  # a check's mark with what it says
    start, end, used = 0, len(lead), cell_len(lead)
    for match in _words(line, len(lead), width - cell_len(more)):
        token = match.group()
        if end > keep and used + cell_len(token) > width:
            spans.append((start, end))
            token = token.lstrip(" ")
            start = end = keep = match.end() - len(token)
            used = cell_len(more)
        used += cell_len(token)
        end = match.end()
    spans.append((start, end))
    return spans, more


def _words(line: str, start: int, room: int) -> Iterator[re.Match[str]]:
    """The words of `line` from `start`, a command in backticks as one when it fits in `room`
    columns (else its own words: none runs past the width)."""
    for match in PHRASE.finditer(line, start):
        if " " in match.group().lstrip(" ") and cell_len(match.group().lstrip(" ")) > room:
            yield from WORD.finditer(line, match.start(), match.end())
        else:
            yield match


def clock_text(seconds: float | None) -> str:
    """`H:MM:SS`, or `-:--:--` when not known yet."""
    if seconds is None:
        return "-:--:--"
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def seconds_text(seconds: float) -> str:
    """`2.4 s`; from a minute on with its time on a clock too, `5,432.1 s (1:30:32)`: a run (or
    a replay's estimate) of hours read as `98765.4 s` said nothing at a glance."""
    shown = f"{seconds:,.1f} s"
    return f"{shown} ({clock_text(seconds)})" if seconds >= 60 else shown


def plural(count: int, word: str, words: str = "") -> str:
    """`1 merge`, `2 merges`, `1,000 identities` (`words` when adding an s is not the plural)."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"
