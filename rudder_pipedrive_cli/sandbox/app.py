"""The sandbox without sockets: one request in (method, target, headers, body), one `Answer` out.

The order of checks is Pipedrive's: auth, then the edge and the rate limits, then (injected)
server faults, then routing, validation and the write. `/_sandbox/*` needs the token but is never
rate limited, faulted or counted in the stats. One lock makes every request atomic.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from rudder_pipedrive_cli.core.costs import token_cost
from rudder_pipedrive_cli.sandbox.faults import Faults
from rudder_pipedrive_cli.sandbox.limits import Limiter
from rudder_pipedrive_cli.sandbox.options import SandboxOptions
from rudder_pipedrive_cli.sandbox.replies import (
    Answer,
    ApiError,
    edge_forbidden,
    failure,
    mangled,
    plain,
    server_error,
)
from rudder_pipedrive_cli.sandbox.routes import LOOKUPS, ROUTES, Request, match_route
from rudder_pipedrive_cli.sandbox.schemas import QUERY_PARAMETERS
from rudder_pipedrive_cli.sandbox.store import Store

_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_RATE_LIMITED = {
    "burst": "Request over limit: rate limit of the 2-second window reached",
    "search": "Request over limit: search rate limit of the 2-second window reached",
    "daily": "Request over limit: daily API token budget spent",
}


class SandboxApp:
    def __init__(self, options: SandboxOptions, clock: Callable[[], float]) -> None:
        self.options = options
        self.clock = clock
        self.lock = threading.Lock()
        self.faults = Faults(options.fault_settings(), options.fault_seed)
        self.store = Store(index_lag_ms=options.index_lag_ms, plan=options.plan)
        self.limiter = Limiter(options.plan, options.seats)
        self._clear_stats()

    def _clear_stats(self) -> None:
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.rate_limited = 0
        self.forbidden = 0
        self.resets = 0
        self.mangled = 0

    # ---- introspection ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self.lock:
            return self.store.state()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(sorted(self.requests.items())),
                "statuses": dict(sorted(self.statuses.items())),
                "tokens": self.limiter.spent,
                "rate_limited": self.rate_limited,
                "forbidden": self.forbidden,
                "resets": self.resets,
                "mangled": self.mangled,
            }

    def reset(self) -> None:
        """Back to a fresh company: no records, no stats, empty rate-limit windows."""
        with self.lock:
            self.store.clear()
            self.limiter.clear()
            self._clear_stats()

    def set_faults(self, **changes: Any) -> None:
        with self.lock:
            settings = replace(self.faults.settings, **changes)  # checks the values
            self.faults.settings = settings
            self.store.index_lag_ms = settings.index_lag_ms

    # ---- requests ------------------------------------------------------------------------------

    def screen(
        self, method: str, target: str, headers: Mapping[str, str], length: int
    ) -> Answer | None:
        """The answer to a request refused before its body is read, or None to read it: a wrong
        token (401) or a body over `max_body_bytes` (413) costs the sandbox no memory."""
        url = urlsplit(target)
        if _token(url.query, headers) != self.options.token:
            return self.handle(method, target, headers, b"")
        if length <= self.options.max_body_bytes:
            return None
        cap = self.options.max_body_bytes
        answer = failure(413, f"Request body too large: at most {cap} bytes")
        if not url.path.startswith("/_sandbox/"):
            with self.lock:
                self.requests[_routed(method, url.path)[1]] += 1
                self.statuses["413"] += 1
        return answer

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        url = urlsplit(target)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        token = _token(url.query, headers)
        query.pop("api_token", None)
        # A parameter given twice: Pipedrive takes a list as one comma-separated value, and
        # keeping either one would hide a client's mistake (QA: the last was used silently).
        names = [name for name, _ in pairs if name != "api_token"]
        twice = next((name for name in names if names.count(name) > 1), None)
        if url.path.startswith("/_sandbox/"):
            if token != self.options.token:
                return failure(401, "unauthorized access")
            return self._introspect(method, url.path)
        with self.lock:
            answer = self._api(method, url.path, query, token, body, twice)
            self.statuses[str(answer.status)] += 0 if answer.drop else 1
            self.resets += 1 if answer.drop else 0
            self.rate_limited += answer.status == 429
            self.forbidden += answer.status == 403 and answer.content_type.startswith("text/html")
        latency = self.faults.settings.latency_ms
        return replace(answer, delay_s=latency / 1000.0) if latency else answer

    def _introspect(self, method: str, path: str) -> Answer:
        if (method, path) == ("GET", "/_sandbox/state"):
            return plain(self.state())
        if (method, path) == ("GET", "/_sandbox/stats"):
            return plain(self.stats())
        if (method, path) == ("POST", "/_sandbox/reset"):
            self.reset()
            return plain({"reset": True})
        return failure(404, f"Unknown sandbox method {method} {path}")

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        token: str | None,
        body: bytes,
        twice: str | None,
    ) -> Answer:
        route, key = _routed(method, path)
        self.requests[key] += 1
        if token != self.options.token:
            return failure(401, "unauthorized access")
        now = self.clock()
        verdict = self.limiter.admit(now=now, search="/itemSearch" in key, cost=token_cost(key))
        if verdict.refused == "edge":
            return edge_forbidden()
        if verdict.refused:
            return replace(failure(429, _RATE_LIMITED[verdict.refused]), headers=verdict.headers)
        if twice is not None:
            return failure(400, f"{twice}: given more than once (a list is one value)")
        answer = self._faulted_or_applied(method, key, route, query, body, now)
        return answer if answer.headers is not None else replace(answer, headers=verdict.headers)

    def _faulted_or_applied(
        self,
        method: str,
        key: str,
        route: tuple[str, dict[str, str]] | None,
        query: dict[str, str],
        body: bytes,
        now: float,
    ) -> Answer:
        fault = self.faults.draw(write=method in _WRITES)
        if fault.kind == "5xx":
            return server_error(fault.status)
        if fault.kind == "429":
            search = "/itemSearch" in key
            self.limiter.unadmit(search=search, cost=token_cost(key))  # like a real 429
            headers = self.limiter.headers(now=now, search=search)
            headers |= {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}
            return replace(failure(429, _RATE_LIMITED["burst"]), headers=headers)
        handler = ROUTES.get((method, route[0])) if route else None
        if route is None or handler is None:
            return failure(404, f"Unknown method {key}")
        known = QUERY_PARAMETERS.get(key, ())  # an operation not listed takes none
        unknown = next((name for name in query if name not in known), None)
        if unknown is not None:
            return failure(400, f"{unknown}: not a parameter of {key}")
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return failure(400, "Validation failed: body: not valid JSON")
        request = Request(
            method=method, template=route[0], params=route[1], query=query, body=parsed, now=now
        )
        try:
            answer = handler(self.store, request)
        except ApiError as err:
            return failure(err.status, err.message)
        applied = fault.kind == "reset" and answer.status < 300
        if applied:
            return replace(answer, drop=True)
        if key in LOOKUPS and answer.status == 200:
            kind = self.faults.mangle()
            if kind:
                self.mangled += 1
                return mangled(kind, answer)
        return answer


def _routed(method: str, path: str) -> tuple[tuple[str, dict[str, str]] | None, str]:
    """The route `path` matches (None: none) and the "METHOD template" it is counted under."""
    route = match_route(path)
    return route, f"{method} {route[0] if route else '(unknown)'}"


def _token(query: str, headers: Mapping[str, str]) -> str | None:
    """The token a request carries: the `x-api-token` header, else the `api_token` query."""
    return headers.get("x-api-token") or dict(parse_qsl(query, keep_blank_values=True)).get(
        "api_token"
    )
