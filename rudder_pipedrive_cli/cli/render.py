"""Rich renderings of plans and reports. Only presentation lives here."""

from __future__ import annotations

from collections import Counter
from copy import copy
from typing import Any

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from rudder_pipedrive_cli.cli.screen import plural, printable, say, seconds_text, show, wrap
from rudder_pipedrive_cli.core.events import quoted
from rudder_pipedrive_cli.core.tally import OUTCOMES, Tally, ranked

PROSE = "  "  # how much further a wrapped line of the report goes on (screen.wrap)
STYLE = {
    "planned": "green",
    "sent": "green",
    "unchanged": "cyan",
    "skipped": "dim",
    "failed": "bold red",
}


def plain(value: object) -> Text:
    """A table cell or title holding data (event types, names, field names, URLs): shown as is,
    never read as Rich markup ("[/x]" would raise, "[bold]" would vanish), and with no control
    character that would move the cursor or erase what is on the screen."""
    return Text(printable(str(value)))


def wanted_width(console: Console, table: Table) -> int:
    """How wide `table` must be to cut no word (rich measures it for any width): wrapped
    between words a cell still reads well; cut to `Nam…` it does not."""
    return console.measure(table, options=console.options.update_width(10_000)).minimum


UNBROKEN = "\u00a0"  # a space `wrap` does not break at: a count kept with its name


def print_table(console: Console, table: Table) -> None:
    """`table`; on a terminal too narrow for it to cut no word (a tmux pane: rich cut `unchang…`
    at 60 columns, `ide…` and `/api/v2/organi…` at 40), its rows as lines under its title,
    each wrapped between words, never between a column's name and its cell's first word:
    `identify: sent 7, unchanged 0, skipped 1, failed 0, total 8`. In a file or a pipe, its
    title is a line of its own, as a terminal shows it: rich pads a title to the table's width,
    and `grep 'Deal fields (11)$'` found nothing."""
    if not console.is_terminal:
        if table.title:
            say(console, cell_text(table.title))
            table = copy(table)
            table.title = None
        console.print(table)
        return
    if wanted_width(console, table) <= console.width:
        console.print(table)
        return
    indent = ""
    if table.title:
        say(console, cell_text(table.title))
        indent = PROSE
    names = [cell_text(column.header) if table.show_header else "" for column in table.columns]
    for row in zip(*(column.cells for column in table.columns), strict=True):
        first, *rest = map(cell_text, row)
        told = ", ".join(
            f"{name.replace(' ', UNBROKEN)}{UNBROKEN}{cell}" if name else cell
            for name, cell in zip(names[1:], rest, strict=True)
            if cell
        )
        line, more = f"{indent}{first}" + (f": {told}" if told else ""), PROSE
        if told and cell_len(f"{indent}{first}:") > console.width:  # a 40-character key at 40
            show(console, first)  # columns: whole on a line of its own, the rest under it
            line, more = f"{indent}{PROSE}{told}", ""
        wrapped = wrap(printable(line), console.width, indent=more, pair=False)
        show(console, wrapped.replace(UNBROKEN, " "))


def cell_text(cell: RenderableType) -> str:
    """What a cell (a title, a header) says, its lines as one."""
    return (cell.plain if isinstance(cell, Text) else str(cell)).replace("\n", "; ")


def planned_line(record: dict[str, Any]) -> Text:
    """One event of a dry-run (its NDJSON record, core/preview.py) as a line: source, type,
    outcome, then its requests."""
    status = record["outcome"]
    line = Text()
    line.append(printable(record["source"]), style="bold")
    line.append(f"  {printable(record['type'])}  ")
    line.append(status, style=STYLE.get(status, ""))
    if record["reason"]:
        line.append(f"  ({printable(record['reason'])})")
    if "rule" in record:
        line.append(f"  [{record['rule']}]", style="magenta")
    for request in record["requests"]:
        line.append(f"\n    {request['method']} {printable(request['path'])}", style="cyan")
        if query := request["query"]:
            # A value as messages quote it: a userId's line break or 100 kB stay out of the line.
            line.append(printable("?" + "&".join(f"{k}={quoted(v)}" for k, v in query.items())))
        if request["note"]:
            line.append(f"  # {printable(request['note'])}", style="dim")
    for warning in record["warnings"]:
        line.append(f"\n    warning: {printable(warning)}", style="yellow")
    if record["dropped"]:
        dropped = printable(", ".join(record["dropped"]))
        line.append(f"\n    dropped: {dropped}", style="dim")
    return line


def events_table(tally: Tally, *, title: str, sent_label: str = "sent") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("type")
    for name in OUTCOMES:
        table.add_column(sent_label if name == "sent" else name, justify="right")
    table.add_column("total", justify="right")
    for kind, counts in sorted(tally.by_type.items()):
        table.add_row(
            plain(kind), *(f"{counts[name]:,}" for name in OUTCOMES), f"{sum(counts.values()):,}"
        )
    outcomes = tally.outcomes
    table.add_row(
        "all", *(f"{outcomes[name]:,}" for name in OUTCOMES), f"{tally.read:,}", style="bold"
    )
    return table


def requests_table(tally: Tally, *, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("request")
    table.add_column("count", justify="right")
    table.add_column("API tokens", justify="right")
    for key, count in sorted(tally.requests.items()):
        table.add_row(plain(key), f"{count:,}", f"{tally.tokens_by[key]:,}")  # a 429 costs none
    table.add_row("all", f"{sum(tally.requests.values()):,}", f"{tally.tokens:,}", style="bold")
    return table


TOP_REASONS = 5


def print_warnings_and_failures(
    console: Console, tally: Tally, *, skipped: str, failed: str
) -> None:
    """Why events were skipped, what rpd warned about, then why events failed, the most common
    first: what to fix (or accept) before a replay. A warning leaves something out of an event
    that still went on. All in words without event data (SPEC 8): one line per cause. First,
    the unmapped traits left out, the most common ten."""
    if tally.dropped:
        dropped = ", ".join(f"{k} ({n:,})" for k, n in ranked(tally.dropped, 10))
        say(console, f"unmapped traits dropped: {dropped}", indent=PROSE)
    _print_counted(console, tally.skips, skipped)
    _print_counted(console, tally.warnings, "warnings")
    # A cause first by all it failed: its own events and later ones of the same users.
    _print_counted(console, Counter(dict(tally.causes())), failed, later=tally.knock_ons)


def _print_counted(
    console: Console, counts: Counter[str], heading: str, later: Counter[str] | None = None
) -> None:
    if not counts:
        return
    top = ranked(counts, TOP_REASONS)
    width = len(f"{top[0][1]:,}")
    shown = f"top {len(top)} of {len(counts)}" if len(counts) > len(top) else ""
    lines = [f"{heading}{f' ({shown})' if shown else ''}:"]
    for reason, count in top:
        knock_ons = later[reason] if later else 0
        lines.append(f"  {count - knock_ons:>{width},}  {reason or '(no reason given)'}")
        if knock_ons:
            events = "event" if knock_ons == 1 else "events"
            lines.append(f"  {'':>{width}}  +{knock_ons:,} later {events} of the same users")
    say(console, "\n".join(lines), indent=" " * (width + 2))


def print_dry_run_summary(
    console: Console, tally: Tally, *, plan: str, seconds: float, identities: str = ""
) -> None:
    print_table(console, events_table(tally, title="Planned events", sent_label="planned"))
    print_table(console, requests_table(tally, title="Requests a replay would make"))
    pace = f"at the {plan} plan's rate limit" if plan != "unlimited" else "(no rate limit)"
    say(
        console,
        f"estimated API tokens: {tally.tokens:,}; estimated duration {pace}: "
        f"{seconds_text(seconds)}",
        indent=PROSE,
    )
    if tally.store_retries:  # the input was read, as send's is: said as send's report says it
        say(console, store_retries(tally, then=""), indent=PROSE)
    if tally.rules:
        say(console, counted_line("track events by rule", tally.rules), indent=PROSE)
    if tally.writes:
        say(console, counted_line("planned writes", tally.writes), indent=PROSE)
    if identities:  # both ways to resolve identities (cli/identities.py)
        say(console, identities, indent=PROSE)
    print_warnings_and_failures(
        console,
        tally,
        skipped="why events would be skipped",
        failed="why events would fail",
    )


def store_retries(tally: Tally, then: str = "; ") -> str:
    """The count of the input's store calls tried again (object reads, listings, HEADs), then
    `then`, when there were some."""
    return f"store retries: {tally.store_retries:,}{then}" if tally.store_retries else ""


def print_send_report(
    console: Console,
    tally: Tally,
    *,
    duration_s: float,
    dead_letter: str | None,
    identities: str = "",
    readable: bool = True,
) -> None:
    print_table(console, events_table(tally, title="Events"))
    print_table(console, requests_table(tally, title="Requests"))
    rate = tally.read / duration_s if duration_s > 0 else 0.0
    say(
        console,
        f"retries: {tally.retries:,}; {store_retries(tally)}429 waits: {tally.rate_limited:,}; "
        f"API tokens: "
        f"{tally.tokens:,}; duration: {seconds_text(duration_s)}; {rate:,.1f} events/s",
        indent=PROSE,
    )
    if tally.writes:
        say(console, counted_line("writes", tally.writes), indent=PROSE)
    if identities:  # by search or by index, and what the index cost (cli/identities.py)
        say(console, identities, indent=PROSE)
    if tally.not_attempted:
        say(console, not_attempted_line(tally.not_attempted), indent=PROSE)
    # send counts failures in words without the event data a reason may quote (SPEC 8): each
    # event's full reason is in its dead letter, when the letters were written (none is when
    # their write failed: a full disk, a named pipe nobody reads, which stopped the send).
    in_letters = " (each event's full reason is in its dead letter)" if dead_letter else ""
    print_warnings_and_failures(
        console,
        tally,
        skipped="why events were skipped",
        failed=f"why events failed{in_letters}",
    )
    if dead_letter:
        say(
            console,
            f"failed events written to {dead_letter}: fix the cause, then "
            f"{send_again(dead_letter, readable)} to send them again",
            indent=PROSE,
        )


def send_again(dead_letter: str, readable: bool) -> str:
    """The command that sends the dead letters again: `rpd send` of their file, or of what a
    pipe they were written to (/dev/stdout, a fifo) received, which its name cannot read back."""
    return f"`rpd send {dead_letter}`" if readable else "`rpd send` what it received"


def counted_line(heading: str, counts: Counter[str]) -> str:
    """`heading: a (2), b (1)`, in the order of the kinds' names."""
    return f"{heading}: " + ", ".join(f"{key} {n:,}" for key, n in sorted(counts.items()))


def not_attempted_line(count: int) -> str:
    events = "1 event was" if count == 1 else f"{count:,} events were"
    return (
        f"not attempted: {events} read but not finished when the run stopped (not failed, not "
        "dead-lettered; the rest of the input was not read): a rerun of the same command sends "
        "them"
    )


def print_sandbox_holdings(console: Console, state: dict[str, Any], *, records: bool) -> None:
    """What the emulator holds after a `--sandbox` run, so a first-time user sees the effect.
    Names and emails are event data (SPEC 8): the records are shown (`records`) on a terminal,
    where someone is looking, but not written into a log or a file; there, the counts only."""
    persons = state.get("persons", [])
    if records and persons:  # none: the counts say so, not a header above no row
        _holdings_table(console, state)
    made = [  # what track rules make, when they made any
        plural(len(state[kind]), noun, kind)
        for kind, noun in (("deals", "deal"), ("activities", "activity"), ("notes", "note"))
        if state.get(kind)
    ]
    counts = (
        plural(len(persons), "person"),
        plural(len(state.get("organizations", [])), "organization"),
        plural(len(state.get("leads", [])), "lead"),
        *made,
        plural(len(state.get("merges", [])), "merge"),
    )
    say(console, ", ".join(counts), indent=PROSE)


def _holdings_table(console: Console, state: dict[str, Any]) -> None:
    persons = state.get("persons", [])
    table = Table(title="The sandbox now holds", title_justify="left")
    for column in ("person", "name", "email", "organization", "leads"):
        # An email has no word to wrap at: whole, the names and titles beside it wrap instead
        # (at 80 columns rich cut it to `ada@analytical…`).
        table.add_column(column, no_wrap=column == "email")
    orgs = {org.get("id"): org.get("name", "") for org in state.get("organizations", [])}
    leads: dict[Any, list[str]] = {}
    for lead in state.get("leads", []):
        leads.setdefault(lead.get("person_id"), []).append(str(lead.get("title", "")))
    for person in persons:
        emails = person.get("emails") or []
        email = next((e.get("value", "") for e in emails if isinstance(e, dict)), "")
        table.add_row(
            plain(person.get("id")),
            plain(person.get("name", "")),
            plain(email),
            plain(orgs.get(person.get("org_id"), "")),
            plain(", ".join(leads.get(person.get("id"), []))),
        )
    print_table(console, table)
