"""Injected failures, drawn from seeded RNGs so a run with `fault_seed` replays exactly.

Every API request draws the same numbers whatever the rates (one draw for 5xx/429, one more for
writes), so a given request sequence meets the same faults at any rates of the same seed.
Mangled answers draw from an RNG of their own (two numbers per successful lookup), so turning
them on leaves the other faults of a seed where they were.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["", "5xx", "429", "reset"]
_5XX_STATUSES = (500, 502, 503)
# The malformed bodies `fail_mangle` puts in place of a successful lookup's answer (all 200):
# {"success": false}; an HTML page; an empty body; {"success": true} without `data`; and v1's
# search shape, `data` an object holding the items instead of a list.
MANGLE_KINDS = ("unsuccessful", "html", "empty", "no-data", "v1-shape")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSettings:
    fail_5xx: float = 0.0
    fail_429: float = 0.0
    fail_reset: float = 0.0
    latency_ms: int = 0
    index_lag_ms: int = 0
    fail_mangle: float = 0.0
    mangle_kinds: tuple[str, ...] = MANGLE_KINDS

    def __post_init__(self) -> None:
        rates = {"fail_5xx": self.fail_5xx, "fail_429": self.fail_429}
        rates |= {"fail_reset": self.fail_reset, "fail_mangle": self.fail_mangle}
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a rate between 0 and 1, not {rate}")
        if self.fail_5xx + self.fail_429 > 1.0:
            raise ValueError("fail_5xx + fail_429 must not exceed 1")
        for name, ms in (("latency_ms", self.latency_ms), ("index_lag_ms", self.index_lag_ms)):
            if ms < 0:
                raise ValueError(f"{name} must not be negative, not {ms}")
        if not self.mangle_kinds:
            raise ValueError("mangle_kinds must name at least one kind")
        for kind in self.mangle_kinds:
            if kind not in MANGLE_KINDS:
                raise ValueError(
                    f"mangle kind must be one of {', '.join(MANGLE_KINDS)}, not {kind!r}"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    status: int = 0


class Faults:
    def __init__(self, settings: FaultSettings, seed: int | None) -> None:
        self.settings = settings
        self.rng = random.Random(seed)
        self.mangle_rng = random.Random(None if seed is None else f"mangle:{seed}")

    def draw(self, *, write: bool) -> Fault:
        """Before the request is applied: a 5xx or a spurious 429 (neither applies it)."""
        roll = self.rng.random()
        status = _5XX_STATUSES[self.rng.randrange(len(_5XX_STATUSES))]
        reset = self.rng.random() if write else 1.0
        s = self.settings
        if roll < s.fail_5xx:
            return Fault(kind="5xx", status=status)
        if roll < s.fail_5xx + s.fail_429:
            return Fault(kind="429", status=429)
        if reset < s.fail_reset:
            return Fault(kind="reset")
        return Fault(kind="")

    def mangle(self) -> str:
        """After a lookup succeeded: the kind of malformed body to answer instead, or ""."""
        roll = self.mangle_rng.random()
        kinds = self.settings.mangle_kinds
        kind = kinds[int(self.mangle_rng.random() * len(kinds))]
        return kind if roll < self.settings.fail_mangle else ""
