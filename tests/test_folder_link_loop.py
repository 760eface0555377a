"""A link loop in a folder of backups (`a -> b`, `b -> a`: a sync gone wrong) fails as an object
at once, as a dangling link does: ELOOP was taken for a store's passing fault and tried again
five times with backoff (15.5 s an object, each pass of a send), so a folder with two loops
held `rpd dry-run FOLDER` for 62 s before it said what `ls` says at once."""

from __future__ import annotations

import json
from pathlib import Path

from rudder_pipedrive_cli.io.readers import EventReader

IDENTIFY = {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "A"}}


def test_a_link_loop_in_a_folder_fails_at_once_and_the_rest_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_text(json.dumps(IDENTIFY) + "\n")
    (tmp_path / "loop-1").symlink_to("loop-2")
    (tmp_path / "loop-2").symlink_to("loop-1")
    slept: list[float] = []
    items = list(EventReader([str(tmp_path)], sleep=slept.append))
    assert slept == []
    assert [(item.source, item.decided and item.decided.reason) for item in items] == [
        (f"{tmp_path}/a.ndjson:1", None),
        (f"{tmp_path}/loop-1", "cannot read object: Too many levels of symbolic links"),
        (f"{tmp_path}/loop-2", "cannot read object: Too many levels of symbolic links"),
    ]
