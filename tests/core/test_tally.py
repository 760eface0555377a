"""Counting skips by reason (issue 14, item 6): the words a report and `skipped_by_reason` use."""

from __future__ import annotations

import pytest

from rudder_pipedrive_cli.core.tally import Tally, skip_reason


@pytest.mark.parametrize(
    ("reason", "event_type", "counted_as"),
    [
        ("already done", "track", "already done"),
        ("anonymous", "identify", "anonymous"),
        ("unsupported type", "page", "unsupported type: page"),
        ("unsupported type", "screen", "unsupported type: screen"),
        ("filtered out: type page", "page", "filtered"),
        ("filtered out: before --since", "identify", "filtered"),
        ("filtered out: no timestamp", "track", "filtered"),
        ("track rule: skip", "track", "track rule: skip"),
        ("", "identify", "(no reason given)"),
    ],
)
def test_skip_reasons(reason: str, event_type: str, counted_as: str) -> None:
    assert skip_reason(reason, event_type) == counted_as


def test_skips_are_counted_by_reason_most_common_first() -> None:
    tally = Tally()
    for kind, status, reason in [
        ("track", "skipped", "track rule: skip"),
        ("page", "skipped", "unsupported type"),
        ("track", "skipped", "track rule: skip"),
        ("identify", "sent", ""),
        ("identify", "failed", "cannot create person without a name"),
        ("identify", "skipped", "filtered out: before --since"),
        ("track", "skipped", "track rule: skip"),
        ("identify", "skipped", "filtered out: no timestamp"),
    ]:
        tally.add_outcome(kind, status, reason=reason)

    report = tally.to_json(duration_s=1.0, dead_letter=None)

    assert list(report["skipped_by_reason"].items()) == [
        ("track rule: skip", 3),
        ("filtered", 2),
        ("unsupported type: page", 1),
    ]
    assert sum(report["skipped_by_reason"].values()) == report["events"]["skipped"]
