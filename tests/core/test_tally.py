"""Counting skips by reason (issue 14, item 6): the words a report and `skipped_by_reason` use."""

from __future__ import annotations

import pytest

from rudder_pipedrive_cli.core.protocol import ApiRequest
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


def test_tokens_are_derived_from_the_counts_and_a_refused_request_costs_none() -> None:
    search = ApiRequest(
        method="GET",
        path="/api/v2/itemSearch/field",
        endpoint="/api/v2/itemSearch/field",
        stage="s",
    )
    create = ApiRequest(
        method="POST", path="/api/v2/persons", endpoint="/api/v2/persons", stage="c", body={}
    )
    tally = Tally()
    tally.add_request(search)
    tally.add_request(search, charged=False)  # a 429: counted, not charged
    tally.add_request(create)
    assert tally.requests == {"GET /api/v2/itemSearch/field": 2, "POST /api/v2/persons": 1}
    assert tally.tokens_by == {"GET /api/v2/itemSearch/field": 20, "POST /api/v2/persons": 5}
    assert tally.tokens == 25
    total = Tally()
    total.add_request(create, charged=False)
    total.add_requests(tally)
    assert total.requests == {"GET /api/v2/itemSearch/field": 2, "POST /api/v2/persons": 2}
    assert total.tokens_by == {"GET /api/v2/itemSearch/field": 20, "POST /api/v2/persons": 5}
    assert total.to_json(duration_s=0, dead_letter=None)["tokens"] == 25
