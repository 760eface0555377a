"""The one HTTP client rpd talks to Pipedrive with: pooled httpx, pacing, retries (SPEC 1, 5, 8).

`PipedriveClient.send` turns one `ApiRequest` into the `ApiResponse` a plan expects: it waits for
the rate limits, retries what is safe to retry, and reports a write whose fate it cannot know as
`status == 0` so the plan reconciles instead of repeating it. The token travels only in the
`x-api-token` header: never in a URL, a repr, a log line or an exception message. An error that
repeats it (a proxy or a wrong base_url echoing the request), in any letter case, has it replaced
by `REDACTED`, so it cannot reach a message, a dead letter or the state. A token as long as a real
one (`LONG_TOKEN` characters) is replaced in the whole answer, data too (`rpd check` prints the
user's name); a shorter one, a sandbox's "10" say, only in the error text, since it also appears
in ids and dates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx
import orjson
from tenacity import RetryError

from rudder_pipedrive_cli import __version__
from rudder_pipedrive_cli.core.costs import WINDOW_S
from rudder_pipedrive_cli.core.errors import (
    AuthRefused,
    NeverConnected,
    PlanFailure,
    RateLimitStop,
    Unreachable,
    UsageError,
    after_attempts,
)
from rudder_pipedrive_cli.core.events import json_word
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse
from rudder_pipedrive_cli.core.tally import Tally, charged
from rudder_pipedrive_cli.http.pacing import Clock, Pacer, RateHeaders, Sleep, stopped
from rudder_pipedrive_cli.http.retry import (
    DEFAULT_MAX_RETRIES,
    RESUME_HINT,
    Attempts,
    Retry,
    RetryPolicy,
)
from rudder_pipedrive_cli.http.server_clock import ServerClock, utc_now
from rudder_pipedrive_cli.io.config import (
    LONG_TOKEN,
    REDACTED,
    TokenPattern,
    is_loopback,
    redact_strings,
    resolve_base_url,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.pipedrive.com"
AUTH_HINT = "check PIPEDRIVE_API_TOKEN / [pipedrive] api_token"
# A write these methods make may have been applied even when no answer came back: the plan
# reconciles it. PATCH (and GET) are idempotent, so they are simply sent again.
UNKNOWN_WHEN_LOST = frozenset({"POST", "PUT"})
# Errors raised before any byte of the request left: safe to repeat for every method.
NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)
# Of those, the failures to make the connection at all (refused, no route, DNS, timed out
# connecting): a request whose every attempt failed so raises `NeverConnected`.
UNCONNECTED: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
# The most of an answer's body rpd reads (decoded): Pipedrive's largest, a page of 500 records or
# a field listing with its options, is a few MB. An endless one (a proxy's, a wrong base_url's)
# was read whole, then held several times over: a 400 MB body took a send to 4.2 GB.
MAX_ANSWER_BYTES = 64 << 20
# How long one answer may take to arrive whole. httpx's timeout bounds each read only, so a body
# that trickled in (a byte every few seconds: a stalled proxy) never ended, nor did the run: a
# stop signal waited for it too.
ANSWER_DEADLINE_S = 120.0

# A request body the server stopped reading is refused for its size when it is over this many
# bytes (rpd's own are a few kB): Pipedrive's 413, or the connection it closed before reading the
# body whole, whose 413 asyncio leaves unread (it closes the socket at the failed write). Either
# way nothing was applied and the same body meets the same refusal: the request fails once, not
# retried (`too_large`). A smaller body cut off is a connection lost before the request was
# delivered: not applied either, it is tried again as one never sent.
LARGE_BODY = 64 << 10
SHORTEN = (
    "shorten what fills it (a property mapped or templated there) or map fewer fields, then send "
    "the event again"
)

# Why a request the pacer held back (another's 429, a full window) when the run was stopped fails.
HELD_AT_THE_STOP = "held back by the rate limit when the run was stopped; not sent"

# Pipedrive is unreachable after this many connection failures in a row (every lane, every
# request of the run), or after this long of them, with no answer in between: the run stops
# (exit 4) instead of trying every event 7 times (a dead port took hours for 3,000 events).
UNREACHABLE_FAILURES = 20
UNREACHABLE_SECONDS = 60.0


# Said by every command (map-fields, check and init too): what resumes is a send's.
def unreachable_hint(proxy: str = "") -> str:
    """What to check, the proxy first when the clients connect through one (its variable)."""
    through = f"the proxy in ${proxy}, " if proxy else ""
    return (
        f"check {through}the network and base_url / company_domain, then rerun the same command "
        "(a send resumes: events not attempted are sent then; writes left in flight are "
        "reconciled, not repeated)"
    )


UNREACHABLE_HINT = unreachable_hint()


class Reachability:
    """Connection failures in a row with no answer between them, shared by the clients of a run.

    Any HTTP answer (a 5xx or a 429 too) proves Pipedrive reachable and ends the streak."""

    def __init__(self, clock: Clock = time.monotonic, seconds: float = UNREACHABLE_SECONDS) -> None:
        self._clock = clock
        self.seconds = seconds  # the streak's length that stops the run (a shorter timeout's)
        self.failures = 0
        self.since = 0.0  # when the streak began
        self.last = ""
        # The variable naming the proxy the clients connect through (PipedriveClient sets it):
        # a connection never made is then the proxy's, which the stop names.
        self.proxy = ""

    def answered(self) -> None:
        self.failures = 0

    def failed(self, reason: str) -> None:
        if not self.failures:
            self.since = self._clock()
        self.failures += 1
        self.last = reason

    def check(self, base_url: str) -> None:
        """Stop the run (`Unreachable`) once the streak makes Pipedrive look unreachable."""
        if self.failures < 2:
            return
        elapsed = self._clock() - self.since
        if self.failures >= UNREACHABLE_FAILURES or elapsed >= self.seconds:
            raise self.unreachable(base_url)

    def unreachable(self, base_url: str) -> Unreachable:
        """The stop the streak so far says: `check`'s, and a send's whose first requests never
        connected (`NeverConnected`), which need not wait for the rest of the streak."""
        elapsed = self._clock() - self.since
        via = f" through the proxy in ${self.proxy}" if self.proxy else ""
        return Unreachable(
            f"Pipedrive is unreachable at {base_url}{via}: {self.failures} connection failures "
            f"in a row over {elapsed:.1f} s, no answer between them (last: {self.last})",
            hint=unreachable_hint(self.proxy),
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def serving_proxy(url: httpx.URL) -> tuple[str | None, list[str]]:
    """The proxy that serves `url`, as urllib (and httpx) choose it: its scheme's variable,
    else ALL_PROXY, none where NO_PROXY bypasses the host; and the variables set in the
    environment that may hold it. Only it is used: another variable, usable or not, is no
    business of this client."""
    lowers = (f"{url.scheme}_proxy", "all_proxy")
    names = [name for lower in lowers for name in (lower.upper(), lower) if os.environ.get(name)]
    if not names or urllib.request.proxy_bypass(url.host):  # NO_PROXY
        return None, []
    proxies = urllib.request.getproxies()  # the lower-case variable wins, as in urllib
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and "://" not in proxy:  # `proxy.corp:3128`: http://, as curl, pip and httpx take it
        proxy = f"http://{proxy}"
    return proxy, names


def made_once(make: Callable[..., ssl.SSLContext]) -> Callable[..., ssl.SSLContext]:
    """httpx's `create_ssl_context`, whose verifying context is made once for the certificates it
    would load, not again by each caller: loading the CA bundle is 20 to 80 ms of CPU a time, and
    a send makes four clients (tests make thousands). The certificates it would load are the key:
    $SSL_CERT_FILE and $SSL_CERT_DIR (read under trust_env, as httpx reads them) and what their
    paths hold (a path pointed elsewhere gets a context of its own, and one that cannot be read
    its error, never cached). Nothing changes a context once made (rpd's lanes share one), so a
    shared one verifies as a fresh one would."""
    made: dict[tuple[Any, ...], ssl.SSLContext] = {}

    def stat_of(path: str | None) -> tuple[int, int, int] | None:
        try:
            found = os.stat(path) if path else None
        except OSError:
            return None
        return None if found is None else (found.st_ino, found.st_size, found.st_mtime_ns)

    def cached(verify: Any = True, cert: Any = None, trust_env: bool = True) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            return make(verify=verify, cert=cert, trust_env=trust_env)
        where = [
            os.environ.get(n) if trust_env else None for n in ("SSL_CERT_FILE", "SSL_CERT_DIR")
        ]
        key = (trust_env, *where, *(stat_of(path) for path in where))
        if key not in made:
            made[key] = make(verify=verify, cert=cert, trust_env=trust_env)
        return made[key]

    return cached


verifying_context = made_once(httpx.create_ssl_context)


def trusted_tls() -> ssl.SSLContext:
    """The TLS context of every lane: certificates verified, against $SSL_CERT_FILE or
    $SSL_CERT_DIR when set (as httpx reads them); one that cannot be read is a usage error."""
    try:
        return verifying_context()
    except (OSError, ssl.SSLError) as error:
        named = [f"${n}" for n in ("SSL_CERT_FILE", "SSL_CERT_DIR") if os.environ.get(n)]
        where = " / ".join(named) or "the system's certificates"
        raise UsageError(
            f"cannot load the TLS certificates of {where}: {error.strerror or error}",
            hint="point it at a readable PEM file (or folder), or unset it",
        ) from None


def unusable_proxy(error: Exception, names: list[str]) -> UsageError:
    """A proxy variable httpx cannot use (its value is not shown: it may hold a password)."""
    named = " / ".join(f"${name}" for name in names) or "the proxy settings"
    if isinstance(error, ImportError):
        why, hint = "a SOCKS proxy needs the socksio package", "pip install 'httpx[socks]'"
    else:
        why, hint = "not a proxy URL (http://, https:// or socks5://HOST:PORT)", "correct it"
    return UsageError(f"cannot use the proxy in {named}: {why}", hint=f"{hint}, or unset it")


def untrusted_certificate(error: BaseException, base_url: str) -> UsageError | None:
    """A TLS handshake no retry mends, as the error to stop with: counted as a connection
    failure it made every run wait 40 s to say 'unreachable, rerun'. A certificate that did not
    verify; or an https:// base_url whose server speaks plain HTTP (`rpd sandbox`'s, a local
    proxy's), which said only '[SSL: WRONG_VERSION_NUMBER]'."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return UsageError(
            f"the TLS certificate of {base_url} is not trusted: {cause.verify_message}",
            hint="behind a proxy that inspects TLS, point $SSL_CERT_FILE at its CA certificates "
            "(PEM); else check base_url / company_domain",
        )
    if isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER":
        return UsageError(
            f"{base_url} answered a TLS handshake in plain HTTP: it is not an https:// server",
            hint="if it is `rpd sandbox` or a local proxy, write its URL with http://",
        )
    return None


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer as read: `over` when its body passed MAX_ANSWER_BYTES (then not kept)."""

    status: int
    headers: httpx.Headers
    content: bytes
    over: bool = False


async def read_answer(response: httpx.Response, most: int) -> Answer:
    """`response`'s body, read until it ends or passes `most` bytes (then left unread)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > most:
            return Answer(response.status_code, response.headers, b"", over=True)
    return Answer(response.status_code, response.headers, bytes(body))


def longest_value(body: Any, path: str = "") -> tuple[str, int]:
    """Where in a request body its longest string is (a dotted path), and its length."""
    if isinstance(body, str):
        return path, len(body)
    if isinstance(body, Mapping):
        items: Any = ((f"{path}.{key}" if path else str(key), v) for key, v in body.items())
    elif isinstance(body, list | tuple):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(body))
    else:
        return path, 0
    return max(
        (longest_value(v, at) for at, v in items), key=lambda found: found[1], default=(path, 0)
    )


def too_large(request: ApiRequest, size: int, answered: bool) -> PlanFailure:
    """The failure of a write whose body of `size` bytes the server refused for its size
    (`answered`: its 413 read), not retried (`LARGE_BODY`)."""
    if answered:
        how = f"HTTP 413, its body of {size:,} bytes is too large"
    else:
        how = (
            f"Pipedrive closed the connection before reading its body of {size:,} bytes whole, "
            "as it refuses one too large"
        )
    where, length = longest_value(request.body)
    return PlanFailure(
        f"{request.stage} refused: {how} (its longest value, {where}, holds {length:,} "
        f"characters): {SHORTEN}",
        stage=request.stage,
        status=413 if answered else None,
        retryable=False,
    )


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def envelope(
    status: int, content: bytes, is_json: bool, sent_at: str, token: str = ""
) -> ApiResponse:
    """The plan-facing response for a definitive answer, from Pipedrive's envelope; `token` is
    redacted from its error text (and from all of it when it is `LONG_TOKEN` long). The error
    text is Pipedrive's own words, empty when it gave none: every message that shows it says
    the status already ("HTTP 404: ..."), which it once said twice ("HTTP 404 HTTP 404")."""
    body: Any = None
    if is_json and content:
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            body = None
    if len(token) >= LONG_TOKEN and body is not None:
        # In the decoded strings, not the raw bytes: JSON escapes ("\/") cannot hide it there,
        # and numbers or the document's syntax are never touched.
        body = redact_strings(body, TokenPattern(token))
    if not isinstance(body, Mapping):
        problem = not_an_envelope(content, is_json, body) if 200 <= status < 300 else ""
        return ApiResponse(status=status, data=body, sent_at=sent_at, malformed=problem)
    error = str(body.get("error") or "")
    info = str(body.get("error_info") or "")
    if info and info != error:
        error = f"{error} ({info})" if error else info
    if token:
        error = re.sub(re.escape(token), REDACTED, error, flags=re.IGNORECASE)
    malformed = ""
    if 200 <= status < 300:
        if body.get("success") is not True:
            malformed = '"success" is not true'
        elif "data" not in body:
            malformed = 'no "data"'
    return ApiResponse(
        status=status,
        data=body.get("data"),
        additional_data=body.get("additional_data"),
        error=error,
        sent_at=sent_at,
        malformed=malformed,
    )


def not_an_envelope(content: bytes, is_json: bool, body: Any) -> str:
    """Why a 2xx body that is no JSON object is not Pipedrive's envelope (ApiResponse.malformed)."""
    if not content.strip():
        return "an empty body"
    if not is_json:
        return "not JSON"
    if body is None and content.strip() != b"null":
        return "not valid JSON"
    return f"{json_word(body)}, not an object"


class PipedriveClient:
    """One pooled connection set to Pipedrive (or the sandbox), shared by every running plan.

    Use as `async with PipedriveClient(...) as client:` and pass `client.send` to the runner.
    What it sent, retried and was refused for the rate limit is counted in `tally`.
    """

    def __init__(
        self,
        *,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        plan: str = "growth",
        concurrency: int = 8,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = 30.0,
        tally: Tally | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = random.random,
        now: Callable[[], datetime] = utc_now,
        pacer: Pacer | None = None,  # share one with another client of the same run
        reach: Reachability | None = None,  # likewise
        unanswered_stops: bool = False,
        most_answer_bytes: int = MAX_ANSWER_BYTES,
        answer_deadline: float = ANSWER_DEADLINE_S,
        stopping: asyncio.Event | None = None,  # the run's stop (`drive_all`'s): retry no more
    ) -> None:
        # Header values are ASCII: anything else is no Pipedrive token (and httpx would fail).
        if not token.strip() or not token.isprintable() or not token.isascii():
            raise UsageError("the Pipedrive API token is empty or malformed", hint=AUTH_HINT)
        if concurrency < 1 or max_retries < 0:
            raise UsageError("concurrency must be at least 1 and max-retries at least 0")
        self.base_url = resolve_base_url(base_url, "")
        self._token = token
        self.tally = tally if tally is not None else Tally()
        self.pacer = pacer if pacer is not None else Pacer(plan, clock=clock, sleep=sleep)
        self.reach = reach if reach is not None else Reachability(clock)
        # A request none of whose attempts got an answer stops the command (`Unreachable`), as
        # the streak of them stops a send: for a person at a terminal (cli/account.py), who
        # needs no patience for a blip and has nothing to go on with.
        self.unanswered_stops = unanswered_stops
        self.most_answer_bytes = most_answer_bytes
        self.answer_deadline = answer_deadline
        self.stopping = stopping
        self.policy = RetryPolicy(max_retries=max_retries, sleep=sleep, random=random)
        self.server_clock = ServerClock(now, clock)  # send times on Pipedrive's clock
        # One single-connection client per lane, not one pool of `concurrency` connections:
        # httpcore's pool rescans every connection for every queued request, which profiled at
        # half of a send's CPU at concurrency 32. Lanes share one TLS context (building one per
        # client costs ~20 ms).
        tls = trusted_tls()  # verification stays on
        # The proxy from the environment that serves base_url, if any; the sandbox is local.
        url = httpx.URL(self.base_url)
        proxy, through = (None, []) if is_loopback(url.host) else serving_proxy(url)
        # A connection failure through a proxy says so: the proxy may be what is unreachable.
        self._via = f" (through the proxy in ${through[0]})" if through else ""
        if through:
            self.reach.proxy = through[0]
        try:
            self._lanes = [
                httpx.AsyncClient(
                    base_url=self.base_url,
                    headers={
                        "x-api-token": token,
                        "accept": "application/json",
                        "user-agent": f"rpd/{__version__}",
                    },
                    timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                    transport=transport,
                    follow_redirects=False,
                    verify=tls,
                    proxy=proxy,
                    trust_env=False,  # the proxy is chosen above; TLS has its own context
                )
                for _ in range(concurrency)
            ]
        except (httpx.InvalidURL, ValueError, ImportError) as error:  # the proxy's: all else
            raise unusable_proxy(error, through) from None  # base_url, token: checked above
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for lane in self._lanes:
            self._idle.put_nowait(lane)

    def __repr__(self) -> str:
        return f"PipedriveClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> PipedriveClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()

    async def send(self, request: ApiRequest) -> ApiResponse:
        """One logical request, with pacing and retries; see the module doc for the outcomes.

        Raises `AuthRefused`, `RateLimitStop`, `Unreachable` (stop the run; with
        `unanswered_stops`, also when no attempt got an answer) or `PlanFailure` (fail the
        event).
        """
        attempts = Attempts()

        def on_retry(retry: Retry, wait: float) -> None:
            self.tally.retries += 1
            log.debug("%s: %s; retrying in %.2fs", request.key, retry.reason, wait)

        retrying = self.policy.retrying(attempts, on_retry, self.stopping)
        try:
            async for attempt in retrying:
                with attempt:
                    if attempts.last is not None and stopped(self.stopping):
                        raise attempts.last  # stopped during the back-off: no attempt more
                    return await self._attempt(request, attempts)
        except RetryError:
            pass
        if self.unanswered_stops and attempts.unanswered == attempts.sent:
            raise self.reach.unreachable(self.base_url)
        last, tried = attempts.last, after_attempts(attempts.sent)
        failure = NeverConnected if attempts.unconnected == attempts.sent else PlanFailure
        raise failure(
            f"{request.key}: {last.reason if last else 'no answer'} {tried}",
            stage=request.stage,
            status=last.status if last else None,
            retryable=True,
        )

    async def _on_a_lane(self, method: str, path: str, **options: Any) -> Answer:
        lane = await self._idle.get()
        try:
            async with asyncio.timeout(self.answer_deadline):
                async with lane.stream(method, path, **options) as response:
                    return await read_answer(response, self.most_answer_bytes)
        except TimeoutError:  # a transport error, as httpx's own timeouts are
            raise httpx.ReadTimeout(f"no whole answer in {self.answer_deadline:g} s") from None
        finally:
            self._idle.put_nowait(lane)

    async def _attempt(self, request: ApiRequest, attempts: Attempts) -> ApiResponse:
        self.reach.check(self.base_url)  # another request may have found it so: try no more
        ticket = await self.pacer.acquire(request, self.stopping)
        if ticket is None:  # stopped while the rate limit held it back: not sent
            if attempts.last is not None:
                raise attempts.last  # fails with it, as a stop in the back-off
            raise PlanFailure(
                f"{request.key}: {HELD_AT_THE_STOP}", stage=request.stage, retryable=True
            )
        attempts.sent += 1
        sent_at = self.server_clock.stamp()

        cut = False  # the request never left whole: the server stopped reading it

        async def trace(event: str, info: Mapping[str, Any]) -> None:
            nonlocal cut
            if event.endswith("send_request_body.complete"):
                self.pacer.sent(ticket)
            elif event.endswith(".failed") and ".send_request_" in event:
                cut = True

        body = None if request.body is None else orjson.dumps(request.body, default=_json_default)
        try:
            response = await self._on_a_lane(
                request.method,
                request.path,
                params=dict(request.query) or None,
                content=body,
                headers=None if body is None else {"content-type": "application/json"},
                extensions={"trace": trace},
            )
        except NOT_SENT as error:
            if (refused := untrusted_certificate(error, self.base_url)) is not None:
                raise refused from None
            attempts.unconnected += isinstance(error, UNCONNECTED)
            attempts.unanswered += 1
            reason = _describe(error) + self._via
            self._no_answer(reason)
            raise attempts.failed(reason) from error
        except httpx.TransportError as error:
            # The request may have reached Pipedrive: count it, and never blindly repeat a write.
            self.pacer.sent(ticket)
            self.tally.add_request(request)
            if cut and body is not None and len(body) > LARGE_BODY:
                raise too_large(request, len(body), answered=False) from None
            attempts.unanswered += 1
            reason = _describe(error) + self._via
            self._no_answer(reason)
            if request.method in UNKNOWN_WHEN_LOST and not cut:  # cut off: not applied
                return ApiResponse(status=0, error=reason, sent_at=sent_at)
            raise attempts.failed(reason) from error
        self.reach.answered()
        self.pacer.sent(ticket)  # no trace (a test transport): the answer bounds the arrival
        is_json = "json" in response.headers.get("content-type", "").lower()
        self.tally.add_request(request, charged=charged(response.status, is_json=is_json))
        if response.status == 413 and body is not None:
            raise too_large(request, len(body), answered=True)
        return self._answer(request, response, sent_at, attempts, is_json)

    def _no_answer(self, reason: str) -> None:
        """A connection failure: counted, and the run stopped once they make Pipedrive look
        unreachable (the write left unknown, if any, stays in flight for the rerun)."""
        self.reach.failed(reason)
        self.reach.check(self.base_url)

    def _answer(
        self,
        request: ApiRequest,
        response: Answer,
        sent_at: str,
        attempts: Attempts,
        is_json: bool,
    ) -> ApiResponse:
        self.server_clock.observe(response.headers.get("date"))
        headers = RateHeaders.parse(response.headers)
        self.pacer.observe(request, headers)
        status = response.status
        if status == 401 or (status == 403 and is_json):
            raise AuthRefused(f"Pipedrive refused the API token ({status})", hint=AUTH_HINT)
        if status == 429:
            if headers.remaining is not None and headers.remaining > 0:
                self.tally.rate_limited += 1
                raise RateLimitStop(
                    f"daily API token budget spent (HTTP 429 with {headers.remaining} requests"
                    " left in the burst window)",
                    hint=RESUME_HINT,
                )
            raise self._refused(request, attempts, status, headers, headers.wait_hint)
        if status == 403:
            # An HTML 403 comes from the edge, which blocks clients that ignored 429s: it holds
            # back everything (its headers, if any, are not the API's).
            raise self._refused(request, attempts, status, None, WINDOW_S)
        if status == 408:
            raise attempts.failed("HTTP 408", status)
        if status >= 500:
            if request.method in UNKNOWN_WHEN_LOST:
                return ApiResponse(status=0, error=f"HTTP {status}", sent_at=sent_at)
            raise attempts.failed(f"HTTP {status}", status)
        answer = envelope(status, response.content, is_json, sent_at, self._token)
        if response.over and 200 <= status < 300:
            answer = replace(answer, malformed=f"larger than {self.most_answer_bytes:,} bytes")
        if answer.malformed and request.method != "GET":
            # A write's 2xx that is not Pipedrive's envelope (a proxy's or the edge's page, a cut
            # body) says nothing of whether it was applied: taken as done, a PATCH, a lead or a
            # merge the proxy never passed on was reported sent and journalled, and the rerun
            # skipped it. Unknown, as a lost answer is: reconciled, or (PATCH) sent again.
            reason = f"HTTP {status} with a malformed answer ({answer.malformed})"
            if request.method in UNKNOWN_WHEN_LOST:
                return ApiResponse(status=0, error=reason, sent_at=sent_at)
            raise attempts.failed(reason, status)
        return answer

    def _refused(
        self,
        request: ApiRequest,
        attempts: Attempts,
        status: int,
        headers: RateHeaders | None,
        hint: float | None,
    ) -> Retry:
        """A rate-limit answer: count it and hold back what it refused (`headers` None: all)."""
        self.tally.rate_limited += 1
        retry = attempts.refused(
            f"HTTP {status} (rate limited)", status, hint, cap=self.policy.rate_wait_cap
        )
        if retry.rate_wait is not None:
            self.pacer.hold(
                request,
                headers or RateHeaders(),
                retry.rate_wait,
                widen=status == 429,
                everything=headers is None,
            )
        return retry
