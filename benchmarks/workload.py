"""The synthetic workload the benchmarks share: realistic RudderStack events, written as NDJSON."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

KINDS = ("identify", "group", "alias", "track", "page")


USERS = 5000  # distinct userIds of the default workload


def make_event(number: int, users: int = USERS) -> dict[str, Any]:
    """Event `number`: the kinds in turn, its userId one of `users` (the number itself when
    `users` is 0: every userId distinct)."""
    kind = KINDS[number % len(KINDS)]
    return {
        "type": kind,
        "messageId": f"msg-{number:09d}",
        "userId": f"user-{number % users if users else number}",
        "anonymousId": f"anon-{number:012x}",
        "groupId": f"org-{number % 300}" if kind == "group" else None,
        "previousId": f"old-{number}" if kind == "alias" else None,
        "event": "Order Completed" if kind == "track" else None,
        "timestamp": "2024-05-01T12:34:56.789Z",
        "originalTimestamp": "2024-05-01T12:34:55.001Z",
        "sentAt": "2024-05-01T12:34:56.700Z",
        "traits": {"name": f"Person {number}", "email": f"p{number}@example.com", "plan": "Pro"},
        "properties": {"revenue": number % 1000 + 0.5, "currency": "EUR", "label": "Hot"},
        "context": {
            "library": {"name": "rudder-sdk-js", "version": "2.48.1"},
            "traits": {"phone": "+49 30 1234567", "role": "Buyer"},
            "ip": "203.0.113.7",
        },
    }


def write_events(path: Path, lines: int, *, compress: bool, users: int = USERS) -> None:
    opener: Callable[..., Any] = gzip.open if compress else open
    with opener(path, "wb") as out:
        for number in range(lines):
            out.write(orjson.dumps(make_event(number, users)) + b"\n")
