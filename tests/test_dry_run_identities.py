"""dry-run's estimates of both ways to resolve identities, and the way a send would take
(issue 15 item 6): exact figures for a known input."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "config.example.toml")


def identifies(path: Path, users: int) -> Path:
    events = [
        {"type": "identify", "messageId": f"m-{n}", "userId": f"u-{n}", "traits": {"name": "N"}}
        for n in range(users)
    ]
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    return path


def dry_run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["dry-run", *args], env={"RPD_IDENTITIES": None})
    return result.exit_code, result.stdout, result.stderr


def test_both_estimates_for_200_new_users_and_auto_takes_the_index(tmp_path: Path) -> None:
    path = identifies(tmp_path / "in.ndjson", 200)
    code, out, _ = dry_run(str(path), "--config", CONFIG, "--format", "json", "-q")
    assert code == 0
    summary = orjson.loads(out)
    # Search: 200 searches (5 a second: 40 s), 200 creates, 4 field and label listings and the 3
    # listings the example's track rules name (pipelines 5, stages 5, activity types 20 tokens).
    # Index: one page of persons (none found), 200 creates and the 7 listings, 207 requests at
    # 20 a second (10.4 s): a refresh before creates in each of 2 rounds of 10 s.
    listings = 40 + 30
    assert summary["identities"] == {
        "way": "index",
        # + 2 tokens: the users/me a send with a state asks first (the account keys the state)
        "search": {
            "requests": 408,
            "tokens": 200 * 20 + 200 * 5 + listings + 2,
            "duration_s": 40.0,
        },
        "index": {
            "requests": 211,
            "tokens": 3 * 10 + 200 * 5 + listings + 2,
            "duration_s": 10.6,
            "pages": 3,
            "refreshes": 2,
        },
    }
    assert summary["tokens"] == 200 * 20 + 200 * 5 + listings + 2  # the plan as shown: search


@pytest.mark.parametrize(
    ("users", "flag", "way", "why"),
    [
        (199, (), "search", "auto: 199 person searches planned, the index from 200 on"),
        (200, (), "index", "auto: 200 person searches planned, the index from 200 on"),
        (3, ("--identities", "index"), "index", "--identities index"),
        (300, ("--identities", "search"), "search", "--identities search"),
    ],
)
def test_the_summary_says_both_ways_and_the_one_a_send_would_take(
    tmp_path: Path, users: int, flag: tuple[str, ...], way: str, why: str
) -> None:
    path = identifies(tmp_path / "in.ndjson", users)
    code, _, err = dry_run(str(path), "--config", CONFIG, "-o", str(tmp_path / "plan"), *flag)
    assert code == 0  # with -o, the summary goes to stderr
    (line,) = [line for line in err.splitlines() if line.startswith("identities by search")]
    assert line.endswith(f"a send would resolve them by {way} ({why})")


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (
            {"type": "track", "userId": "u-1", "event": "Demo Requested"},
            "auto: 3 person searches planned, the index from 200 on",
        ),
        (
            {"type": "group", "userId": "u-1", "groupId": "g-1", "traits": {}},
            "auto: 3 person and 3 organization searches planned, the index from 200 of a kind on",
        ),
    ],
)
def test_auto_says_it_weighs_the_searches_planned_of_each_kind(
    tmp_path: Path, event: dict[str, object], why: str
) -> None:
    """Three events of one user whose person cannot be made (no name) search for it three
    times: the line said '3 identities to resolve' of one identity, and summed the kinds,
    which auto weighs each on its own."""
    path = tmp_path / "in.ndjson"
    path.write_bytes(
        b"".join(orjson.dumps({**event, "messageId": f"m-{n}"}) + b"\n" for n in range(3))
    )
    code, _, err = dry_run(str(path), "--config", CONFIG, "-o", str(tmp_path / "plan"))
    assert code == 1  # the three would fail: cannot create person without a name
    (line,) = [line for line in err.splitlines() if line.startswith("identities by search")]
    assert line.endswith(f"a send would resolve them by search ({why})")


def test_standard_input_with_auto_would_search(tmp_path: Path) -> None:
    data = identifies(tmp_path / "in.ndjson", 250).read_bytes()
    result = CliRunner().invoke(
        app, ["dry-run", "-", "--config", CONFIG, "-o", str(tmp_path / "plan")], input=data
    )
    assert result.exit_code == 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("identities by")]
    assert line.endswith(
        "a send would resolve them by search (auto: standard input or a pipe is not counted first)"
    )


def test_a_named_pipe_with_auto_would_search(tmp_path: Path) -> None:
    """A named pipe is read once, as standard input is (no first pass to count identities)."""
    data = identifies(tmp_path / "in.ndjson", 250).read_bytes()
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as writer:  # opens once rpd opens the fifo to read it
            writer.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    result = CliRunner().invoke(
        app, ["dry-run", str(fifo), "--config", CONFIG, "-o", str(tmp_path / "plan")]
    )
    writer.join(timeout=10)
    assert result.exit_code == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("identities by")]
    assert line.endswith(
        "a send would resolve them by search (auto: standard input or a pipe is not counted first)"
    )


def test_the_index_estimate_counts_refreshes_before_updates_too(tmp_path: Path) -> None:
    """200 users all found (`--assume existing`): by index, each lookup over 10 s after the
    listing before refreshes it, found or not (a record may have been re-keyed meanwhile), as a
    send does; the estimate counted refreshes before creates only, and said none here."""
    path = identifies(tmp_path / "in.ndjson", 200)
    args = ("--config", CONFIG, "--format", "json", "-q", "--assume", "existing")
    code, out, _ = dry_run(str(path), *args)
    assert code == 0
    index = orjson.loads(out)["identities"]["index"]
    assert (index["pages"], index["refreshes"]) == (3, 2)
