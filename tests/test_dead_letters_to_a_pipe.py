"""Dead letters to a pipe (`--dead-letter /dev/stdout | ...`, `--dead-letter >(gzip > f.gz)`, a
named pipe): written as to a file. They stopped the send at its first failed event, exit 2,
'cannot write dead letters to /dev/stdout: File or stream is not seekable.': the file was opened
for appending and reading (to look at its end), which a pipe cannot be."""

from __future__ import annotations

import io
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.cli.render import print_send_report
from rudder_pipedrive_cli.cli.send_cmd import write_report
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.events import take
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.core.tally import Tally
from rudder_pipedrive_cli.io import deadletter
from rudder_pipedrive_cli.io.deadletter import DeadLetters, open_output, owner_only, probe_writable

IDENTIFY = {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "A"}}
CONFIG = str(Path(__file__).resolve().parents[1] / "config.example.toml")
FAILED = Outcome(status="failed", reason="person not found", stage="lookup person")


def test_dead_letters_are_written_to_a_named_pipe(tmp_path: Path) -> None:
    pipe = tmp_path / "dead.fifo"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    letters = DeadLetters(pipe)
    letters.add(take(IDENTIFY, "in.ndjson:1"), FAILED)
    letters.add(take(IDENTIFY | {"messageId": "m-2"}, "in.ndjson:2"), FAILED)
    letters.close()
    reader.join(timeout=10)
    assert letters.written == str(pipe)
    records = [orjson.loads(line) for line in received[0].splitlines()]
    assert [(r["event"]["messageId"], r["source"]) for r in records] == [
        ("m-1", "in.ndjson:1"),
        ("m-2", "in.ndjson:2"),
    ]


def test_the_probe_of_a_named_pipe_does_not_open_it(tmp_path: Path) -> None:
    # Opened and closed by the probe at the start of a send, the pipe told its reader the end
    # (`cat dead.fifo > failed.ndjson` exited, having read nothing), and the first dead letter's
    # open then waited for a reader forever, deaf to SIGTERM (Python opens again after a signal).
    pipe = tmp_path / "dead.fifo"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        probe_writable(pipe)
        watch = select.poll()
        watch.register(reader, select.POLLIN)
        assert watch.poll(0) == []  # POLLHUP: a writer came and went
    finally:
        os.close(reader)


def test_a_send_with_dead_letters_to_a_pipe_says_how_to_send_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hint was `rpd send dead.fifo` (`rpd send /dev/stdout`), which reads the pipe again,
    # not what was written to it.
    for name in ("RPD_CONFIG", "PIPEDRIVE_API_TOKEN", "RPD_PLAN", "RPD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    events = tmp_path / "in.ndjson"
    events.write_bytes(orjson.dumps({"type": "identify", "messageId": "m-1"}) + b"\n")
    pipe = tmp_path / "dead.fifo"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    args = ["send", str(events), "--config", CONFIG, "--sandbox", "--state", "s.sqlite"]
    result = CliRunner().invoke(app, [*args, "--dead-letter", str(pipe), "-q"])
    reader.join(timeout=10)
    assert (result.exit_code, result.stderr.splitlines()) == (
        1,
        [
            f"1 event failed, written to {pipe}: fix the cause, then `rpd send` what it "
            "received to send it again",
        ],
    )
    assert [orjson.loads(line)["event"]["messageId"] for line in received[0].splitlines()] == [
        "m-1"
    ]


def test_a_report_of_dead_letters_to_a_pipe_says_how_to_send_them_again() -> None:
    out = Console(file=io.StringIO(), width=200)
    print_send_report(out, Tally(), duration_s=1.0, dead_letter="/dev/stdout", readable=False)
    assert out.file.getvalue().splitlines()[-1] == (  # type: ignore[attr-defined]
        "failed events written to /dev/stdout: fix the cause, then `rpd send` what it "
        "received to send them again"
    )


def test_dead_letters_to_a_descriptor_leading_to_a_file_are_not_sent_again_by_its_name(
    tmp_path: Path,
) -> None:
    # `--dead-letter /dev/stdout > failed.ndjson`: the descriptor leads to a regular file, but
    # `rpd send /dev/stdout` reads the next command's own standard output, not the letters.
    with (tmp_path / "failed.ndjson").open("wb") as file:
        letters = DeadLetters(Path(f"/dev/fd/{file.fileno()}"))
        letters.add(take(IDENTIFY, "in.ndjson:1"), FAILED)
        letters.close()
    assert orjson.loads((tmp_path / "failed.ndjson").read_bytes())["source"] == "in.ndjson:1"
    assert letters.a_file is False


@pytest.fixture
def pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A named pipe no process reads, refused at once (no READER_WAIT for a late reader)."""
    monkeypatch.setattr(deadletter, "READER_WAIT", 0.0)
    made = tmp_path / "unread.fifo"
    os.mkfifo(made)
    return made


def test_dead_letters_to_a_named_pipe_no_process_reads_stop_the_send(pipe: Path) -> None:
    # The probe no longer opens a named pipe (c2243e3), so the first dead letter's open was the
    # first to meet a pipe nobody reads: it waited for a reader forever, mid-run, deaf to
    # SIGTERM. It is now a write refused, which stops the send as any other is.
    letters = DeadLetters(pipe)
    refused = refusal(pipe, lambda: letters.add(take(IDENTIFY, "in.ndjson:1"), FAILED))
    assert refused == [f"cannot write dead letters to {pipe}: no process reads this named pipe"]


def refusal(pipe: Path, write: Callable[[], None]) -> list[str]:
    """What `write` to the named pipe `pipe`, which no process reads, was refused for: run in a
    thread, given a reader if it is still waiting for one after a while (so the thread ends)."""
    refused: list[str] = []

    def attempt() -> None:
        try:
            write()
        except UsageError as error:
            refused.append(error.message)

    writer = threading.Thread(target=attempt, daemon=True)
    writer.start()
    writer.join(timeout=30)
    if writer.is_alive():  # waiting for a reader: give it one, so the thread ends
        os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=30)
    return refused


def test_dead_letters_to_a_socket_are_refused_in_the_systems_words(tmp_path: Path) -> None:
    # Not 'no process reads this named pipe': a socket is none, and the system says why.
    import socket

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "dead.sock"))
        letters = DeadLetters(tmp_path / "dead.sock")
        with pytest.raises(UsageError) as refused:
            letters.add(take(IDENTIFY, "in.ndjson:1"), FAILED)
    assert refused.value.message == (
        f"cannot write dead letters to {tmp_path / 'dead.sock'}: No such device or address"
    )


def test_a_report_to_a_named_pipe_no_process_reads_is_refused(pipe: Path) -> None:
    # `send --report PIPE` with no reader: the run ended, then waited for one forever, deaf to
    # SIGTERM (the report is written while a SIGTERM is held for it), and never exited.
    refused = refusal(pipe, lambda: write_report(pipe, {"events": {}}))
    assert refused == [f"cannot write the report to {pipe}: no process reads this named pipe"]


def test_a_report_is_written_to_a_named_pipe_and_to_a_new_file(tmp_path: Path) -> None:
    pipe = tmp_path / "report.fifo"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # a reader already there
    try:
        write_report(pipe, {"events": {"read": 1}})
        assert orjson.loads(os.read(reader, 4096)) == {"events": {"read": 1}}
    finally:
        os.close(reader)
    made = tmp_path / "report.json"
    write_report(made, {"events": {"read": 1}})
    assert orjson.loads(made.read_bytes()) == {"events": {"read": 1}}
    assert made.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # as open() makes it


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_dry_run_output_to_a_named_pipe_no_process_reads_is_refused(pipe: Path) -> None:
    # `rpd dry-run -o PIPE` with no reader waited for one for ever, without a word.
    def plan() -> None:
        open_output(pipe, "wb", "--output", "choose another --output path", owner_only).close()

    refused = refusal(pipe, plan)
    assert refused == [f"cannot write --output {pipe}: no process reads this named pipe"]


def test_a_file_made_for_personal_data_is_its_owner_s_only(tmp_path: Path) -> None:
    made = tmp_path / "plan.ndjson"
    open_output(made, "wb", "--output", "choose another --output path", owner_only).close()
    assert made.stat().st_mode & 0o777 == 0o600


def test_a_report_to_a_descriptor_appending_to_a_file_keeps_what_the_file_held(
    tmp_path: Path,
) -> None:
    # Cron: `rpd send ... --report /dev/stdout >> runs.log` kept only the last run's report: the
    # descriptor was opened again "wb", which truncated runs.log, each run's report over the last.
    log = tmp_path / "runs.log"
    log.write_bytes(b"the report of an earlier run\n")
    with log.open("ab") as file:
        write_report(Path(f"/dev/fd/{file.fileno()}"), {"sent": 1})
    assert log.read_bytes() == b'the report of an earlier run\n{\n  "sent": 1\n}\n'
