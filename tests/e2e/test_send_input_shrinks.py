"""An input file cut while rpd reads it (truncated, rewritten shorter: a log rotated under a send)
ends short of the size it had when the run began. QA: the events past the cut were neither read
nor counted anywhere, and the send exited 0, telling a cron the whole input was replayed. Now it
is warned when found, and the send exits 2 after its report, saying to send it again once whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_support import holdings, identify, rpd_send, write_events

from rudder_pipedrive_cli.cli import send_cmd
from rudder_pipedrive_cli.io.readers import EventReader
from rudder_pipedrive_cli.sandbox import Sandbox

EVENTS = [identify(f"m-{n}", f"u-{n}", name=f"User {n}") for n in range(1, 7)]


def lines(path: Path, count: int) -> bytes:
    return b"".join(path.read_bytes().splitlines(keepends=True)[:count])


def test_a_file_cut_between_the_passes_exits_2_and_its_rerun_sends_the_rest(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = write_events(tmp_path / "events.ndjson", EVENTS)
    whole = events.read_bytes()
    kept = lines(events, 4)
    first_pass = send_cmd.input_aliases

    def then_cut(*args: Any) -> Any:  # the first pass read it whole; the main pass reads this
        aliases = first_pass(*args)
        events.write_bytes(kept)
        return aliases

    monkeypatch.setattr(send_cmd, "input_aliases", then_cut)
    cut = rpd_send(sandbox, tmp_path, events, name="cut")
    assert cut.exit_code == 2, cut.stderr
    what = f"{events} shrank while it was read (from {len(whole):,} bytes to {len(kept):,})"
    said = cut.stderr.splitlines()
    warned = [line for line in said if line.startswith("warning: ")]  # progress lines aside
    assert warned == [f"warning: {what}: what it held past byte {len(kept):,} was not read"]
    assert said[-2:] == [
        f"error: {what}: the events it held past byte {len(kept):,} were not read or sent",
        "hint: send it again once it is whole: what this run sent is not sent twice",
    ]
    assert cut.report is not None
    assert cut.report["events"] == {
        "read": 4, "sent": 4, "unchanged": 0, "skipped": 0, "failed": 0
    }  # fmt: skip

    monkeypatch.setattr(send_cmd, "input_aliases", first_pass)
    events.write_bytes(whole)
    again = rpd_send(sandbox, tmp_path, events, name="again")
    assert again.exit_code == 0, again.stderr
    assert again.report is not None
    assert again.report["events"] == {
        "read": 6, "sent": 2, "unchanged": 0, "skipped": 4, "failed": 0
    }  # fmt: skip
    assert holdings(sandbox).user_ids() == {f"u-{n}": 1 for n in range(1, 7)}


def test_a_file_cut_while_it_is_read_is_said_once_it_ends(tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.ndjson", EVENTS * 2000)  # more than a read's worth
    size = events.stat().st_size
    said: list[str] = []
    reader = EventReader([str(events)], warn=said.append)
    items = iter(reader)
    next(items)
    read = reader._current.count if reader._current is not None else 0  # what is read so far
    assert 0 < read < size
    events.write_bytes(lines(events, 2))  # what is left to read there is gone
    rest = list(items)
    assert [item.source for item in rest] == [f"{events}:{n}" for n in range(2, len(rest) + 2)]
    assert said == [
        f"{events} shrank while it was read (from {size:,} bytes to {len(lines(events, 2)):,}): "
        f"what it held past byte {read:,} was not read"
    ]
    assert reader.shrunk is not None


def test_a_file_read_whole_or_grown_is_not_said_to_have_shrunk(tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.ndjson", EVENTS)
    said: list[str] = []
    reader = EventReader([str(events)], warn=said.append)
    items = iter(reader)
    next(items)
    with events.open("ab") as grown:  # appended while read: read too
        grown.write(b'{"type": "identify", "userId": "u-9", "traits": {"name": "Ann"}}\n')
    assert len(list(items)) == len(EVENTS)
    assert (said, reader.shrunk) == ([], None)
