"""The dead-letter file: every failed event, as valid rpd input (SPEC 5)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO, Any

import orjson

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.intake import Intake
from rudder_pipedrive_cli.core.protocol import Outcome


def default_dead_letter_path(now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return Path(f"rpd-failed-{stamp}.ndjson")


def dead_letter_record(item: Intake, outcome: Outcome) -> dict[str, Any]:
    return {
        "event": item.raw,
        "error": {
            "reason": outcome.reason,
            "stage": outcome.stage,
            "status": outcome.http_status,
            "retryable": outcome.retryable,
        },
        "source": item.source,
    }


class DeadLetters:
    """Appends records to `path`, creating the file only when the first failure arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[bytes] | None = None

    def add(self, item: Intake, outcome: Outcome) -> None:
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("ab")
            self._handle.write(orjson.dumps(dead_letter_record(item, outcome)) + b"\n")
        except OSError as error:
            raise UsageError(
                f"cannot write dead letters to {self.path}: {error.strerror or error}",
                hint="choose another --dead-letter path; rerun to resume",
            ) from None
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @property
    def written(self) -> str | None:
        return str(self.path) if self.count else None


def check_output_path(path: Path, option: str, inputs: tuple[str, ...] = ()) -> None:
    """Refuse, before anything is sent, a path rpd could not write or must not write to."""
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory", hint=f"give {option} a file path")
    for name in inputs:
        if name != "-" and path.exists() and Path(name).exists() and path.samefile(name):
            raise UsageError(
                f"{option} {path} is also an input: rpd would read back what it appends",
                hint=f"choose another {option} path",
            )
