"""Every request `rpd send` puts on the wire conforms to Pipedrive's OpenAPI descriptions.

tests/test_openapi_requests.py checks the requests the plans make in tests/core's scenarios; the
requests made around them (the account, the field, label and sales listings, the identity index
and its refreshes, lead listings) are not plans' and were checked nowhere. Here the sandbox
records what reaches it during real sends of the shipped examples, by search and by index, and
each request is checked against the descriptions as it arrived (path, query text, JSON body).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from e2e_support import EXAMPLES, rpd_send
from openapi_contract import check

from rudder_pipedrive_cli.sandbox import Sandbox
from rudder_pipedrive_cli.sandbox.app import SandboxApp

INPUTS = (
    EXAMPLES / "events.ndjson",
    EXAMPLES / "batch.json",
    EXAMPLES / "archive.ndjson.gz",
    EXAMPLES / "external-ids.json",
)


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, bytes]]:
    """The API requests the sandbox receives: method, target, body."""
    seen: list[tuple[str, str, bytes]] = []
    handle = SandboxApp.handle

    def recording(app: SandboxApp, method: str, target: str, headers: Any, body: bytes) -> Any:
        if not target.startswith("/_sandbox/"):
            seen.append((method, target, body))
        return handle(app, method, target, headers, body)

    monkeypatch.setattr(SandboxApp, "handle", recording)
    return seen


@pytest.mark.parametrize("identities", ["search", "index"])
def test_every_request_of_a_send_conforms(
    wire: list[tuple[str, str, bytes]], sandbox: Sandbox, tmp_path: Path, identities: str
) -> None:
    args = ("--identities", identities)
    first = rpd_send(sandbox, tmp_path, *INPUTS, args=args, name="first")
    # Again with a fresh state: what a rerun elsewhere asks (reconciling, listing leads).
    again = rpd_send(sandbox, tmp_path, *INPUTS, args=args, name="again", state=tmp_path / "b")
    assert first.exception is None and again.exception is None, (first.stderr, again.stderr)
    asked = set()
    for method, target, body in wire:
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        check(method, url.path, query, orjson.loads(body) if body else None)
        asked.add((method, url.path, tuple(sorted(query))))
    paths = {path for _, path, _ in asked}
    assert paths >= {"/v1/users/me", "/api/v2/personFields", "/v1/leadLabels", "/api/v2/stages"}
    if identities == "index":  # the index's own listing was among them
        assert ("GET", "/api/v2/persons", ("custom_fields", "limit")) in asked
