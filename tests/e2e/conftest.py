"""Fixtures for the end-to-end tests of `rpd send` (run in-process, tests/e2e/e2e_support.py)."""

from __future__ import annotations

import pytest

from rudder_pipedrive_cli.cli import identities


@pytest.fixture
def index_clock_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The identity index's clock stands still: no refresh falls due mid-run (MAX_AGE_S,
    core/index.py). Tests that count the index's listings and refreshes of runs that take a
    fraction of a second locally counted more on a slow machine, where a run passed 10 s and
    refreshed the index (the counts a slow run makes are the SteppedClock tests')."""
    monkeypatch.setattr(identities, "CLOCK", lambda: 0.0)
