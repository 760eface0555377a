"""Pipedrive's envelopes and error bodies, and the answer the core hands to the HTTP shell."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."

_EDGE_403 = (
    b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n"
    b"<body><h1>403 Forbidden</h1><p>Request blocked: too many requests after rate limiting."
    b"</p><hr><p>edge (rpd sandbox)</p></body></html>\n"
)

_EDGE_5XX = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
    b"</body></html>\n",
    503: b"<html><head><title>503 Service Unavailable</title></head><body>"
    b"<h1>503 Service Unavailable</h1></body></html>\n",
}


class ApiError(Exception):
    """Raised by the store and routes: answered with Pipedrive's error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What to send back. `drop` closes the connection without any response (after applying)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] | None = None
    drop: bool = False
    delay_s: float = 0.0


def success(data: Any, additional_data: Any = None, *, status: int = 200) -> Answer:
    envelope: dict[str, Any] = {"success": True, "data": data}
    if additional_data is not None:
        envelope["additional_data"] = additional_data
    return Answer(status=status, body=orjson.dumps(envelope))


def plain(payload: Any) -> Answer:
    """Introspection answers: bare JSON, no envelope."""
    return Answer(status=200, body=orjson.dumps(payload))


def failure(status: int, message: str) -> Answer:
    body: dict[str, Any] = {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }
    if status in (401, 429):
        body["errorCode"] = status
    return Answer(status=status, body=orjson.dumps(body))


_MANGLED_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Pipedrive</title></head>\n"
    b"<body><h1>We'll be right back</h1><p>Pipedrive is undergoing maintenance.</p></body></html>\n"
)
# The mangled kinds with a fixed body: kind -> (body, content type).
_MANGLED = {
    "html": (_MANGLED_HTML, "text/html; charset=utf-8"),
    "empty": (b"", "application/json"),
    "unsuccessful": (b'{"success":false}', "application/json"),
    "no-data": (b'{"success":true}', "application/json"),
}


def mangled(kind: str, answer: Answer) -> Answer:
    """A malformed stand-in for a successful lookup's answer (faults.MANGLE_KINDS), status 200."""
    if kind in _MANGLED:
        body, content_type = _MANGLED[kind]
        return replace(answer, body=body, content_type=content_type)
    # v1-shape: v1's search answer, the items in an object under `data`, v1's pagination.
    items = orjson.loads(answer.body)["data"]
    pagination = {"start": 0, "limit": 100, "more_items_in_collection": False}
    v1 = {
        "success": True,
        "data": {"items": items},
        "additional_data": {"pagination": pagination},
    }
    return replace(answer, body=orjson.dumps(v1))


def edge_forbidden() -> Answer:
    return Answer(status=403, body=_EDGE_403, content_type="text/html; charset=utf-8")


def server_error(status: int) -> Answer:
    """500 comes from the API (JSON); 502 and 503 from the edge in front of it (HTML)."""
    if status in _EDGE_5XX:
        return Answer(status=status, body=_EDGE_5XX[status], content_type="text/html")
    return failure(status, "Internal server error")
