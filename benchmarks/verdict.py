"""The shape every benchmark's `run(quick)` returns, and its target checks.

    {"title", "bound": what limits the figure, "figures": {...}, "baseline": {...},
     "targets": [{"figure", "measured", "baseline", "target", "met"}], "seconds"}

`met` is None when the figure could not be measured (for instance a workload too small to fill
a rate-limit window in a quick run).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import orjson


def check(
    figure: str,
    measured: float | None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    baseline: float | str | None = None,
    unit: str = "",
) -> dict[str, Any]:
    """One target: `measured` against a lower (`at_least`) or an upper (`at_most`) bound."""
    if (at_least is None) == (at_most is None):
        raise ValueError("give exactly one of at_least and at_most")
    if at_least is not None:
        target = f">= {at_least:g}{unit}"
        met = None if measured is None else measured >= at_least
    else:
        assert at_most is not None
        target = f"<= {at_most:g}{unit}"
        met = None if measured is None else measured <= at_most
    return {
        "figure": figure,
        "measured": measured,
        "baseline": baseline,
        "target": target,
        "met": met,
    }


def result(
    title: str,
    *,
    bound: str,
    figures: dict[str, Any],
    baseline: dict[str, Any],
    targets: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    return {
        "title": title,
        "bound": bound,
        "figures": figures,
        "baseline": baseline,
        "targets": targets,
        "seconds": round(seconds, 1),
    }


def main_for(run: Callable[[bool], dict[str, Any]], doc: str | None) -> None:
    """`python -m benchmarks.NAME [--quick]`: run one benchmark and print its result as JSON."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    print(orjson.dumps(run(parser.parse_args().quick), option=orjson.OPT_INDENT_2).decode())
