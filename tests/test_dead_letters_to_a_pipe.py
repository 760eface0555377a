"""Dead letters to a pipe (`--dead-letter /dev/stdout | ...`, `--dead-letter >(gzip > f.gz)`, a
named pipe): written as to a file. They stopped the send at its first failed event, exit 2,
'cannot write dead letters to /dev/stdout: File or stream is not seekable.': the file was opened
for appending and reading (to look at its end), which a pipe cannot be."""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

import orjson

from rudder_pipedrive_cli.core.events import take
from rudder_pipedrive_cli.core.protocol import Outcome
from rudder_pipedrive_cli.io.deadletter import DeadLetters, probe_writable

IDENTIFY = {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "A"}}
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
