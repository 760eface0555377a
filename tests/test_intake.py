"""Every input item comes out of intake exactly once; dead letters round-trip as input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from rudder_pipedrive_cli.core.events import INVALID, Event, invalid, take
from rudder_pipedrive_cli.core.filters import EventFilter
from rudder_pipedrive_cli.core.intake import intake
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.deadletter import (
    DeadLetters,
    check_output_path,
    default_dead_letter_path,
)
from rudder_pipedrive_cli.io.readers import EventReader

IDENTIFY = {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "A"}}
PAGE = {"type": "Page ", "messageId": "m-2", "userId": "u-1", "timestamp": "2026-01-02T00:00:00Z"}


def test_each_item_is_accounted_for_once() -> None:
    items = [
        take(IDENTIFY, "f:1"),
        invalid("f:2", "{oops", "line 2 is not valid JSON", "read"),
        take({"no": "type"}, "f:3"),
        take(PAGE, "f:4"),
    ]
    out = list(intake(items, EventFilter(types=frozenset({"identify"}))))
    assert [(i.source, i.kind) for i in out] == [
        ("f:1", "identify"),
        ("f:2", INVALID),
        ("f:3", INVALID),
        ("f:4", "page"),
    ]
    assert out[0].decided is None and out[0].id == "m-1"
    assert out[1].decided == Outcome(
        status="failed", reason="line 2 is not valid JSON", stage="read"
    )
    assert out[1].raw == "{oops"
    assert out[2].decided == Outcome(status="failed", reason='event has no "type"', stage="parse")
    assert out[3].decided == Outcome(status="skipped", reason="filtered out: type page")


def test_limit_counts_what_passes_the_filters_and_reads_no_further() -> None:
    pulled: list[str] = []

    def items() -> Iterator[Event]:
        for n, kind in enumerate(["page", "identify", "page", "identify", "identify"], 1):
            pulled.append(f"f:{n}")
            yield take(IDENTIFY | {"type": kind}, f"f:{n}")

    only = EventFilter(types=frozenset({"identify"}))
    out = list(intake(items(), only, limit=2))
    assert [(i.source, i.kind, i.decided is None) for i in out] == [
        ("f:1", "page", False),  # skipped by the filter: shown, not counted
        ("f:2", "identify", True),
        ("f:3", "page", False),
        ("f:4", "identify", True),
    ]
    assert pulled == ["f:1", "f:2", "f:3", "f:4"]  # the fifth item is never read
    assert list(intake(items(), EventFilter(), limit=0)) == []
    bad = [invalid("f:1", "{", "bad", "read"), take(IDENTIFY, "f:2")]
    assert [i.source for i in intake(bad, EventFilter(), limit=1)] == ["f:1", "f:2"]


def test_dead_letters_are_created_lazily_and_replay_as_input(tmp_path: Path) -> None:
    path = tmp_path / "failed.ndjson"
    letters = DeadLetters(path)
    letters.close()
    assert not path.exists() and letters.written is None
    items = list(
        intake(
            [
                take(IDENTIFY, "in.ndjson:7"),
                invalid("in.ndjson:8", "{", "bad", "read"),
            ],
            EventFilter(),
        )
    )
    failure = Outcome(
        status="failed",
        reason="person not found and create_persons is off",
        stage="lookup person",
        http_status=None,
        retryable=False,
    )
    letters.add(items[0], failure)
    letters.add(items[1], items[1].decided or failure)
    letters.close()
    assert letters.written == str(path) and letters.count == 2
    first, second = (orjson.loads(line) for line in path.read_bytes().splitlines())
    assert first == {
        "event": IDENTIFY,
        "error": {
            "reason": "person not found and create_persons is off",
            "stage": "lookup person",
            "status": None,
            "retryable": False,
        },
        "source": "in.ndjson:7",
    }
    assert second["event"] == "{" and second["error"]["stage"] == "read"
    replayed = list(intake(EventReader([str(path)]), EventFilter()))
    assert replayed[0].event is not None and replayed[0].event.raw == IDENTIFY
    assert replayed[0].source == f"{path}:1"
    assert replayed[1].kind == INVALID


def test_dead_letters_sent_again_keep_where_each_item_was_first_read(tmp_path: Path) -> None:
    """A dead letter sent again and failing again said only where this run read it (the earlier
    dead-letter file's line): two generations on, the input's line was lost. Each record now
    says both: `source`, this run's, and `origin`, the first (SPEC 5's keys as they were)."""
    failure = Outcome(status="failed", reason="HTTP 500", stage="create person", retryable=True)
    first = [take(IDENTIFY, "in.ndjson:7"), invalid("in.ndjson:8", "{", "bad", "read")]
    paths = [tmp_path / f"dl{n}.ndjson" for n in (1, 2, 3)]
    for path in paths:
        letters = DeadLetters(path)
        for item in first:
            letters.add(item, item.decided or failure)
        letters.close()
        first = list(intake(EventReader([str(path)]), EventFilter()))
    records = [orjson.loads(line) for line in paths[0].read_bytes().splitlines()]
    assert [(r["source"], "origin" in r) for r in records] == [
        ("in.ndjson:7", False),  # read first there: no origin apart from the source
        ("in.ndjson:8", False),
    ]
    records = [orjson.loads(line) for line in paths[2].read_bytes().splitlines()]
    assert [(r["source"], r["origin"], r["event"]) for r in records] == [
        (f"{paths[1]}:1", "in.ndjson:7", IDENTIFY),
        (f"{paths[1]}:2", "in.ndjson:8", "{"),
    ]
    assert records[1]["error"] == {
        "reason": "bad",
        "stage": "read",
        "status": None,
        "retryable": False,
    }


def test_default_dead_letter_name() -> None:
    assert default_dead_letter_path(0).name.startswith("rpd-failed-19")
    assert default_dead_letter_path(0).suffix == ".ndjson"


@pytest.fixture
def taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default dead-letter name of second 0, which a file in the working folder has."""
    monkeypatch.chdir(tmp_path)
    path = default_dead_letter_path(0)
    path.write_bytes(b"theirs\n")
    return path


def test_the_default_dead_letter_name_is_one_no_file_has(taken: Path) -> None:
    # The name holds the second the run started: a second run started in it added its failures
    # to the first run's file.
    assert default_dead_letter_path(0) == Path(f"{taken.stem}-2.ndjson")
    Path(f"{taken.stem}-2.ndjson").symlink_to("nowhere")  # a link, even a dangling one, is taken
    assert default_dead_letter_path(0) == Path(f"{taken.stem}-3.ndjson")


def test_a_default_dead_letter_file_made_since_its_name_was_chosen_is_left_alone(
    taken: Path,
) -> None:
    # A run started in the same second, in parallel, made the file after this one chose the name:
    # appending there mixed the two runs' records (each buffering its writes, cut into each other).
    letters = DeadLetters(taken, renamed=lambda: default_dead_letter_path(0))
    failure = Outcome(status="failed", reason="boom", stage="send")
    letters.add(next(intake([take(IDENTIFY, "in:1")], EventFilter())), failure)
    letters.close()
    assert taken.read_bytes() == b"theirs\n"
    assert letters.written == f"{taken.stem}-2.ndjson"
    assert orjson.loads(Path(letters.written).read_bytes())["source"] == "in:1"


def test_a_dead_letter_file_made_while_its_name_is_probed_is_no_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run started in the same second made the default file (or its own probe of it) between
    # this run's probe looking for it and making it: this run stopped, exit 2, "cannot write
    # --dead-letter rpd-failed-...ndjson: File exists". It is probed as the file it now is (the
    # run's first dead letter takes the next name), and left as it was.
    monkeypatch.chdir(tmp_path)
    path = default_dead_letter_path(0)
    looked = Path.is_symlink

    def made_meanwhile(self: Path) -> bool:  # asked right after `exists` said no
        if self == path and not self.exists():
            self.write_bytes(b"theirs\n")
        return looked(self)

    monkeypatch.setattr(Path, "is_symlink", made_meanwhile)
    check_output_path(path, "--dead-letter")
    assert path.read_bytes() == b"theirs\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_dead_letter_file_removed_while_its_name_is_probed_is_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another run's probe made the default file and removed it again: seen there by this
    # probe's look, it was gone by its open, which, to append, made it anew and left it, an
    # empty dead-letter file that no run wrote. It is looked for again and probed as it then is.
    monkeypatch.chdir(tmp_path)
    path = default_dead_letter_path(0)
    looked, exists = Path.is_symlink, Path.exists
    theirs = ["made", "removed"]

    def made_meanwhile(self: Path) -> bool:  # their probe made it after this one looked
        if self == path and theirs[:1] == ["made"] and not exists(self):
            self.write_bytes(b"")
            theirs.pop(0)
        return looked(self)

    def removed_meanwhile(self: Path) -> bool:  # and removed it after this one saw it there
        there = exists(self)
        if self == path and there and theirs == ["removed"]:
            self.unlink()
            theirs.pop(0)
        return there

    monkeypatch.setattr(Path, "is_symlink", made_meanwhile)
    monkeypatch.setattr(Path, "exists", removed_meanwhile)
    check_output_path(path, "--dead-letter")
    assert (theirs, list(tmp_path.iterdir())) == ([], [])


@pytest.mark.parametrize("default_name", [False, True])
def test_a_new_dead_letter_file_is_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_name: bool
) -> None:
    # Dead letters hold whole events, names and emails (SPEC 8): a new file was made readable by
    # everyone (0644 under umask 022), where the state, which holds only ids, is owner-only.
    monkeypatch.chdir(tmp_path)
    old_mask = os.umask(0o022)
    try:
        path = default_dead_letter_path(0) if default_name else Path("runs/failed.ndjson")
        letters = DeadLetters(path, renamed=default_dead_letter_path if default_name else None)
        failure = Outcome(status="failed", reason="boom", stage="send")
        letters.add(next(intake([take(IDENTIFY, "in:1")], EventFilter())), failure)
        letters.close()
        kept = Path("kept.ndjson")  # an existing file keeps the mode its owner gave it
        kept.write_bytes(b"")
        kept.chmod(0o640)
        DeadLetters(kept).add(next(intake([take(IDENTIFY, "in:2")], EventFilter())), failure)
    finally:
        os.umask(old_mask)
    assert (path.stat().st_mode & 0o777, kept.stat().st_mode & 0o777) == (0o600, 0o640)


def test_dead_letters_after_a_record_cut_mid_way_start_on_a_new_line(tmp_path: Path) -> None:
    # A full disk cut the last record of an earlier run (issue 13 item 7): the new records start
    # on their own line, so the earlier whole records and the new ones all read back.
    path = tmp_path / "failed.ndjson"
    failure = Outcome(status="failed", reason="boom", stage="send", retryable=True)
    earlier = DeadLetters(path)
    earlier.add(next(intake([take(IDENTIFY, "in:1")], EventFilter())), failure)
    earlier.close()
    whole = path.read_bytes()
    path.write_bytes(whole + whole[: len(whole) // 2])  # the second record, cut mid-way
    later = DeadLetters(path)
    later.add(next(intake([take(PAGE, "in:2")], EventFilter())), failure)
    later.add(next(intake([take(IDENTIFY, "in:3")], EventFilter())), failure)
    later.close()
    items = list(EventReader([str(path)]))
    assert [(item.source, item.raw, item.decided is None) for item in items] == [
        (f"{path}:1", IDENTIFY, True),
        (f"{path}:2", whole[: len(whole) // 2].decode(), False),  # the cut record, as it was
        (f"{path}:3", PAGE, True),
        (f"{path}:4", IDENTIFY, True),
    ]
    assert path.read_bytes().startswith(whole + whole[: len(whole) // 2] + b"\n")


def test_dead_letters_appended_to_a_whole_file_add_no_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "failed.ndjson"
    failure = Outcome(status="failed", reason="boom", stage="send")
    for source in ("in:1", "in:2"):
        letters = DeadLetters(path)
        letters.add(next(intake([take(IDENTIFY, source)], EventFilter())), failure)
        letters.close()
    assert [orjson.loads(line)["source"] for line in path.read_bytes().split(b"\n")[:-1]] == [
        "in:1",
        "in:2",
    ]


def test_without_filters_or_limit_the_readers_items_pass_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "in.ndjson"
    path.write_bytes(orjson.dumps(IDENTIFY) + b"\n{oops\n")
    items = iter(EventReader([str(path)]))
    assert intake(items, EventFilter()) is items  # no loop around them
    first, second = items  # one object per item: the reader's Event, planned as it is
    assert (first.source, first.event is first, first.decided) == (f"{path}:1", True, None)
    assert (second.source, second.event, second.kind) == (f"{path}:2", None, INVALID)
