"""Field-level recency (issue 13 item 6): a write from an older event leaves newer fields alone.

The state remembers, per Pipedrive record and field, the time of the event whose value rpd last
wrote there (`Learned.recency`, `IdentityStore.times_at`). A write keeps only the fields no later
event wrote, so reruns, dead-letter resends and archives read out of time order all end with the
newest value of every field. Emails and phones are one field each: an older event's list never
replaces a newer one.

An event's time is its `timestamp`, else `originalTimestamp`, else `sentAt` (filters.event_time),
as a fixed-width UTC stamp that sorts as text. An event with none has the empty stamp, older than
any time: it writes where no timed event wrote, and among such events input order decides (the
later write wins a tie, as in a replay in input order).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rudder_pipedrive_cli.core.events import Event
from rudder_pipedrive_cli.core.filters import event_time

CUSTOM = "custom_fields"
# Never held back: add_time is sent on create only, and the identity field is how the record is
# found (a re-key must land whatever the fields' times).
UNTIMED = "add_time"
# What a Go producer writes for a time it never set; the separators of the usual forms, by length.
GO_ZERO = ("0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00Z")
USUAL = {24: "--T::.", 20: "--T::Z"}  # at 4, 7, 10, 13, 16 and 19; both end in Z


def stamp(event: Event) -> str:
    """The event's time as a stamp that sorts as text ("" when it has none). RudderStack's usual
    `timestamp`s, "2024-05-01T12:34:56.789Z" and "2024-05-01T12:34:56Z" (real times, not Go's
    zero), are one already, but for the microseconds: their own characters, once read as a time."""
    text = event.raw.get("timestamp")
    if type(text) is str and USUAL.get(len(text)) == text[4:20:3] and text[-1] == "Z":
        try:  # a real date and time
            if text.isascii() and text not in GO_ZERO and datetime.fromisoformat(text):
                return text[:23] + "000Z" if len(text) == 24 else text[:19] + ".000000Z"
        except ValueError:
            pass
    when = event_time(event)  # in UTC
    if when is None:
        return ""
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (fixed width, fast)
        when.year, when.month, when.day, when.hour, when.minute, when.second, when.microsecond
    )  # fmt: skip


def fresh(
    body: Mapping[str, Any], times: Mapping[str, str], at: str, identity: str
) -> tuple[dict[str, Any], bool]:
    """`body` without the fields a later event wrote (their stored time is after `at`), and
    whether any was left out."""
    kept: dict[str, Any] = {}
    left_out = False
    for key, value in body.items():
        if key == CUSTOM and isinstance(value, Mapping):
            custom = {}
            for name, item in value.items():
                if name == identity or times.get(name, "") <= at:
                    custom[name] = item
                else:
                    left_out = True
            if custom:
                kept[key] = custom
        elif key == UNTIMED or times.get(key, "") <= at:
            kept[key] = value
        else:
            left_out = True
    return kept, left_out


def newest(first: Mapping[str, str], *others: Mapping[str, str]) -> dict[str, str]:
    """Per field, the latest of the times given."""
    merged = dict(first)  # as it is: only the others are compared
    for each in others:
        for name, at in each.items():
            if at >= merged.get(name, ""):
                merged[name] = at
    return merged
