"""The sandbox's ways of writing and reading times: v2's RFC 3339, v1's two older formats."""

from __future__ import annotations

import datetime as dt
import re

from rudder_pipedrive_cli.core.fields import rfc3339 as to_rfc3339
from rudder_pipedrive_cli.sandbox.replies import ApiError
from rudder_pipedrive_cli.sandbox.validation import parse_rfc3339

_CLOCK = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")


def rfc3339(epoch: float) -> str:
    """v2 time: RFC 3339 UTC to the second."""
    return to_rfc3339(dt.datetime.fromtimestamp(int(epoch), dt.UTC))


def v1_time(epoch: float) -> str:
    """v1 lead time: ISO 8601 UTC to the millisecond."""
    stamp = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def v1_seconds(epoch: float) -> str:
    """v1 note time: "YYYY-MM-DD HH:MM:SS" in UTC."""
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def epoch(stamp: str) -> float:
    """Seconds of a time the sandbox wrote (any of the three formats)."""
    return parse_time(stamp, "time")


def parse_time(value: str, name: str) -> float:
    """A time a body gives: RFC 3339, or Pipedrive's "YYYY-MM-DD HH:MM:SS" (UTC)."""
    if " " in value and "T" not in value:
        value = value.replace(" ", "T", 1) + "Z"
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise ApiError(400, f"{name}: must be RFC 3339 or YYYY-MM-DD HH:MM:SS, got {value!r}")
    return parsed.timestamp()


def clock_time(value: str, name: str) -> str:
    """HH:MM or HH:MM:SS -> HH:MM:SS (an activity's due_time and duration)."""
    found = _CLOCK.match(value)
    if not found or int(found[1]) > 23 or int(found[2]) > 59 or int(found[3] or 0) > 59:
        raise ApiError(400, f"{name}: must be HH:MM or HH:MM:SS, got {value!r}")
    return f"{found[1]}:{found[2]}:{found[3] or '00'}"
