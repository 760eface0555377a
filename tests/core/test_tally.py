"""Counting skips by reason (issue 14, item 6), and the time requests take at a plan's limits."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator

import pytest
from rich.console import Console

from rudder_pipedrive_cli.cli.render import print_warnings_and_failures
from rudder_pipedrive_cli.core.errors import Warned
from rudder_pipedrive_cli.core.events import Event, parse_event
from rudder_pipedrive_cli.core.protocol import ApiRequest, Outcome
from rudder_pipedrive_cli.core.tally import (
    MAX_OTHER_TYPES,
    OTHER_TYPE,
    Tally,
    add_count,
    estimated_seconds,
)


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
    tally = Tally()
    tally.add_outcome(event_type, Outcome(status="skipped", reason=reason))
    assert tally.skips == {counted_as: 1}


def test_a_type_rpd_does_not_know_is_named_only_when_it_reads_as_one() -> None:
    # A malformed export's "type" may hold anything, a name or an email (SPEC 8: event data goes
    # to dead letters and dry-run only): it went by name into the report table, the --report
    # JSON and the state's last run, one row per distinct value.
    tally = Tally()
    unsupported = Outcome(status="skipped", reason="unsupported type")
    for event_type in ("audiencelist", "alice smith <alice@example.com>", "bob@example.com"):
        tally.add_outcome(event_type, unsupported)
    for number in range(MAX_OTHER_TYPES + 5):  # a type per event: rows past the first ones go
        tally.add_outcome(f"custom_{number}", unsupported)
    tally.add_outcome("identify", Outcome(status="sent"))
    named = [f"custom_{number}" for number in range(MAX_OTHER_TYPES - 2)]
    assert list(tally.by_type) == ["audiencelist", OTHER_TYPE, *named, "identify"]
    assert tally.by_type[OTHER_TYPE] == {"skipped": 9}  # the two of event data, 7 past the rows
    assert tally.skips[f"unsupported type: {OTHER_TYPE}"] == 9
    assert sum(tally.skips.values()) == tally.read - 1 == MAX_OTHER_TYPES + 8


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
        tally.add_outcome(kind, Outcome(status=status, reason=reason))

    report = tally.to_json(duration_s=1.0, dead_letter=None)

    assert list(report["skipped_by_reason"].items()) == [
        ("track rule: skip", 3),
        ("filtered", 2),
        ("unsupported type: page", 1),
    ]
    assert sum(report["skipped_by_reason"].values()) == report["events"]["skipped"]


def test_reasons_that_tie_are_reported_in_the_same_order_however_the_events_finished() -> None:
    """send ends events concurrently: the report must not follow the order they happened to
    finish in (a flaky report, and a flaky test of it, before)."""
    ends = [
        ("page", "skipped", "unsupported type"),
        ("track", "skipped", "track rule: skip"),
        ("identify", "failed", "b: cannot convert plan"),
        ("identify", "failed", "a: cannot convert plan"),
        ("identify", "sent", ""),
    ]
    texts = []
    for order in (ends, ends[::-1]):
        tally = Tally()
        for kind, status, reason in order:
            outcome = Outcome(status=status, reason=reason, warnings=(reason[:1] or "w",))
            tally.add_outcome(kind, outcome)
        console = Console(file=io.StringIO(), width=80)
        print_warnings_and_failures(console, tally, skipped="skipped", failed="failed")
        texts.append((tally.to_json(duration_s=0, dead_letter=None), console.file.getvalue()))
    assert texts[0] == texts[1]
    report, text = texts[0]
    assert list(report["skipped_by_reason"]) == ["track rule: skip", "unsupported type: page"]
    assert text.index("a: cannot convert plan") < text.index("b: cannot convert plan")


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


@pytest.mark.parametrize(
    ("plan", "seconds"),
    [("lite", 6.0), ("growth", 3.0), ("premium", 1.2), ("ultimate", 1.0), ("unlimited", 0.0)],
)
def test_the_time_estimate_reckons_at_the_limits_the_pacer_keeps(plan: str, seconds: float) -> None:
    """60 creates take 60 / (burst limit / 2 s) at each plan's rate, the pacer's own table; 20
    searches alone take 20 / (10 / 2 s) = 4 s whatever the plan (the search window)."""
    create = ApiRequest(
        method="POST", path="/api/v2/persons", endpoint="/api/v2/persons", stage="c", body={}
    )
    search = ApiRequest(
        method="GET",
        path="/api/v2/itemSearch/field",
        endpoint="/api/v2/itemSearch/field",
        stage="s",
    )
    creates, searches = Tally(), Tally()
    for _ in range(60):
        creates.add_request(create)
    for _ in range(20):
        searches.add_request(search)
    assert estimated_seconds(creates, plan) == seconds
    assert estimated_seconds(searches, plan) == (0.0 if plan == "unlimited" else 4.0)


def test_skip_reasons_knock_ons_and_warnings_are_bounded_each_in_its_own_counter() -> None:
    from rudder_pipedrive_cli.core.tally import (
        MAX_REASONS,
        OTHER_REASONS,
        OTHER_TRAITS,
        OTHER_WARNINGS,
    )

    def event(kind: str, n: int) -> Event:
        return parse_event({"type": kind, "messageId": f"{kind}-{n}", "userId": f"u-{n}"}, "f:1")

    tally = Tally()
    for n in range(MAX_REASONS + 3):
        tally.add_outcome("track", Outcome(status="skipped", reason=f"skip {n}"))
        root = Outcome(status="failed", reason=f"root {n}", stage="validate")
        assert tally.add_outcome("identify", root, event("identify", n)) is None
        knock_on = Outcome(status="failed", reason=f"no person {n}", stage="create person")
        assert tally.add_outcome("track", knock_on, event("track", n)) is not None
        warnings = (Warned(f"warning {n}"), Warned("warning 0"))
        dropped = (f"trait {n}", "trait 0")  # review: trait names were counted unbounded
        tally.add_outcome("identify", Outcome(status="sent", warnings=warnings, dropped=dropped))
    # counted before the bound: its own
    tally.add_outcome("track", Outcome(status="skipped", reason="skip 1"))

    assert len(tally.skips) == len(tally.knock_ons) == len(tally.warnings) == MAX_REASONS + 1
    assert len(tally.failures) == MAX_REASONS + 1
    assert (tally.skips["skip 1"], tally.skips[OTHER_REASONS]) == (2, 3)
    assert (tally.knock_ons["root 0"], tally.knock_ons[OTHER_REASONS]) == (1, 3)
    assert (tally.failures["root 0"], tally.failures[OTHER_REASONS]) == (1, 3)
    assert "no person 0" not in tally.failures  # knock-ons are counted under their root only
    assert (tally.warnings["warning 0"], tally.warnings[OTHER_WARNINGS]) == (MAX_REASONS + 4, 3)
    assert len(tally.dropped) == MAX_REASONS + 1
    assert (tally.dropped["trait 0"], tally.dropped[OTHER_TRAITS]) == (MAX_REASONS + 4, 3)
    assert tally.outcomes == {"skipped": MAX_REASONS + 4, "failed": 2 * (MAX_REASONS + 3),
                              "sent": MAX_REASONS + 3}  # fmt: skip


@pytest.fixture
def eager_thread_switches() -> Iterator[None]:
    """Threads switch every microsecond: a race in Python code shows within a few rounds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switches")
def test_the_live_view_reads_the_counts_while_new_types_and_outcomes_are_counted() -> None:
    """`send`'s live view (cli/progress.py) reads `outcomes`, `read` and the time estimate from
    its refresh thread while the run counts; a type or outcome counted for the first time
    meanwhile must not break its read ("dictionary changed size during iteration"), which would
    print a traceback without -v and freeze the view."""
    errors: list[Exception] = []
    for _ in range(60):
        tally = Tally()
        stop = threading.Event()

        def read(tally: Tally = tally, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    assert tally.read >= 0
                    estimated_seconds(tally, "growth")
                except RuntimeError as error:
                    errors.append(error)
                    return

        reader = threading.Thread(target=read)
        reader.start()
        for kind in ("identify", "track", "group", "alias", "page", "invalid"):
            for status in ("sent", "unchanged", "skipped", "failed"):
                for _ in range(20):
                    tally.add_outcome(kind, Outcome(status=status))
                add_count(tally.requests, f"GET /{kind}/{status}")
        stop.set()
        reader.join()
        assert tally.outcomes == {"sent": 120, "unchanged": 120, "skipped": 120, "failed": 120}
    assert errors == []


def test_counts_count_as_a_counter_does() -> None:
    """`Counts` (every table of a Tally but `requests`) is a Counter whose stores are dict's
    own: a missing key counts from 0, and what the report and estimates use of a Counter works
    on it."""
    from collections import Counter

    from rudder_pipedrive_cli.core.tally import Counts

    counts = Counts()
    counts["b"] += 1
    counts["a"] += 2
    counts.update({"b": 2})
    assert counts == {"a": 2, "b": 3} and counts["c"] == 0 and "c" not in counts
    assert counts.most_common() == [("b", 3), ("a", 2)]
    assert counts + Counter(a=1) == {"a": 3, "b": 3}
    assert Counter(counts) == {"a": 2, "b": 3}
    assert type(Tally().skips) is Counts and type(Tally().requests) is dict
    with pytest.raises(KeyError):
        del counts["c"]  # as a dict's: nothing deletes from a tally
