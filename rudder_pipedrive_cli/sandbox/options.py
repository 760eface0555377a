"""How a sandbox is started: address, token, plan, seats and faults."""

from __future__ import annotations

from dataclasses import dataclass, fields

from rudder_pipedrive_cli.core.costs import PLAN_NAMES
from rudder_pipedrive_cli.sandbox.faults import FaultSettings

DEFAULT_TOKEN = "sandbox-token"
# Larger request bodies get a 413 before they are read (rpd's largest is a few kB).
MAX_BODY_BYTES = 1024 * 1024
# A connection that sends nothing for this long (mid-request or idle between requests) is closed.
READ_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxOptions(FaultSettings):
    """How a sandbox starts: its fault settings (inherited), address, token, plan and limits."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str = DEFAULT_TOKEN
    plan: str = "unlimited"
    seats: int = 1
    fault_seed: int | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    read_timeout_s: float = READ_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.plan not in PLAN_NAMES:
            raise ValueError(f"plan must be one of {', '.join(PLAN_NAMES)}, not {self.plan!r}")
        if self.seats < 1:
            raise ValueError(f"seats must be at least 1, not {self.seats}")
        if not self.token:
            raise ValueError("token must not be empty")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        if self.max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must not be negative, not {self.max_body_bytes}")
        if self.read_timeout_s <= 0:
            raise ValueError(f"read_timeout_s must be positive, not {self.read_timeout_s}")
        FaultSettings.__post_init__(self)  # checks the fault values

    def fault_settings(self) -> FaultSettings:
        return FaultSettings(**{f.name: getattr(self, f.name) for f in fields(FaultSettings)})
