"""Injected failures, drawn from one seeded RNG so a run with `fault_seed` replays exactly.

Every API request draws the same numbers whatever the rates (one draw for 5xx/429, one more for
writes), so a given request sequence meets the same faults at any rates of the same seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["", "5xx", "429", "reset"]
_5XX_STATUSES = (500, 502, 503)


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultSettings:
    fail_5xx: float = 0.0
    fail_429: float = 0.0
    fail_reset: float = 0.0
    latency_ms: int = 0
    index_lag_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    status: int = 0


class Faults:
    def __init__(self, settings: FaultSettings, seed: int | None) -> None:
        self.settings = settings
        self.rng = random.Random(seed)

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
