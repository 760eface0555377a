"""A file in a local folder that rpd may not read (chmod 000) names its permissions: it said
'access denied (check the credentials)', a bucket's words, sending the user to credentials a
folder has none of. A store's refusal is said as before."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem

from rudder_pipedrive_cli.io.objects import _why
from rudder_pipedrive_cli.io.readers import EventReader

IDENTIFY = {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "A"}}


def test_a_folder_s_file_rpd_may_not_read_names_its_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.ndjson", "b.ndjson"):
        (tmp_path / name).write_text(json.dumps(IDENTIFY) + "\n")
    opened = LocalFileSystem._open

    def chmod_000(fs: LocalFileSystem, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.endswith("b.ndjson"):  # as open(2) refuses it to a user who is not root
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return opened(fs, path, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "_open", chmod_000)
    items = list(EventReader([str(tmp_path)], sleep=lambda _: None))
    assert [(item.source, item.decided and item.decided.reason) for item in items] == [
        (f"{tmp_path}/a.ndjson:1", None),
        (
            f"{tmp_path}/b.ndjson",
            "cannot read object: Permission denied (check the file's permissions)",
        ),
    ]


def test_a_store_s_refusal_still_names_the_credentials() -> None:
    denied = PermissionError("access denied to s3://b/rs/b.json (AccessDenied)")  # io/s3.py's
    assert _why(denied) == "access denied (check the credentials)"
