"""API token cost of each operation rpd uses (from the `x-token-cost` of Pipedrive's OpenAPI), and
each plan's rate limits.

Keys are "METHOD endpoint" as in `ApiRequest.key`. tests/sandbox/test_sandbox_openapi.py checks this
table against `tests/data/pipedrive-openapi/` so it cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Pipedrive's rate limits per plan, the one table of them: requests per token in a rolling
# window of WINDOW_S seconds, SEARCH_LIMIT of them searches, and a daily budget of DAILY_TOKENS
# API tokens per seat times the plan's multiplier ("unlimited": the sandbox's, no limits). The
# pacer (http/pacing.py) keeps to them, a report's time estimate (core/tally.py) and `rpd check`
# reckon at them, and the sandbox (sandbox/limits.py) enforces them.
WINDOW_S = 2.0
SEARCH_LIMIT = 10
DAILY_TOKENS = 30_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanLimits:
    burst: int
    multiplier: int


PLANS: Mapping[str, PlanLimits | None] = {
    "lite": PlanLimits(burst=20, multiplier=1),
    "growth": PlanLimits(burst=40, multiplier=2),
    "premium": PlanLimits(burst=100, multiplier=5),
    "ultimate": PlanLimits(burst=120, multiplier=7),
    "unlimited": None,
}
PLAN_NAMES = tuple(PLANS)
BURST_LIMITS: Mapping[str, int | None] = {
    name: None if limits is None else limits.burst for name, limits in PLANS.items()
}

TOKEN_COST: Mapping[str, int] = {
    "GET /api/v2/itemSearch/field": 20,
    "GET /api/v2/persons": 10,
    "GET /api/v2/persons/{id}": 1,
    "POST /api/v2/persons": 5,
    "PATCH /api/v2/persons/{id}": 5,
    "GET /api/v2/organizations": 10,
    "GET /api/v2/organizations/{id}": 1,
    "POST /api/v2/organizations": 5,
    "PATCH /api/v2/organizations/{id}": 5,
    "GET /api/v2/personFields": 10,
    "GET /api/v2/organizationFields": 10,
    "GET /api/v2/dealFields": 10,
    "PUT /v1/persons/{id}/merge": 40,
    "POST /v1/leads": 10,
    "GET /v1/leads": 20,
    "GET /v1/leads/archived": 40,
    "GET /v1/leads/{id}": 2,
    "PATCH /v1/leads/{id}": 10,
    "GET /v1/leadLabels": 10,
    "GET /v1/users/me": 2,
    "POST /api/v2/deals": 5,
    "GET /api/v2/deals": 10,
    "GET /api/v2/deals/archived": 20,
    "POST /api/v2/activities": 5,
    "GET /api/v2/activities": 10,
    "POST /v1/notes": 10,
    "GET /v1/notes": 20,
    "GET /api/v2/pipelines": 5,
    "GET /api/v2/stages": 5,
    "GET /v1/activityTypes": 20,
}


def token_cost(key: str) -> int:
    return TOKEN_COST.get(key, 0)
