"""Who the token belongs to, as a pure exchange: `GET /v1/users/me` (`rpd check`, and the account
that names a send's namespace in the replay state, SPEC 5)."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from rudder_pipedrive_cli.core.errors import PlanFailure, UsageError
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse

USERS_ME = "/v1/users/me"
USERS_ME_REQUEST = ApiRequest(
    method="GET", path=USERS_ME, endpoint=USERS_ME, stage="check token", note="who am I"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """The Pipedrive company a token works in: one account, however its URL is spelled."""

    company_id: str


def account_of(response: ApiResponse) -> Account | None:
    """The account in an answer to `USERS_ME_REQUEST`, or None when it does not say."""
    data = response.data
    if not response.ok or not isinstance(data, Mapping):
        return None
    company = data.get("company_id")
    if isinstance(company, bool) or not isinstance(company, int | str) or company == "":
        return None
    return Account(company_id=str(company))


def fetch_account() -> Generator[ApiRequest, ApiResponse, Account]:
    response = yield USERS_ME_REQUEST
    if response.failed is not None:  # no answer to read (`ApiResponse.failed`)
        raise response.failed
    account = account_of(response)
    if account is None:
        answer = f"HTTP {response.status} {response.error}".rstrip()
        raise PlanFailure(
            f"{USERS_ME} answered {answer}"
            + ("" if not response.ok else " without the account's company id"),
            stage=USERS_ME_REQUEST.stage,
            status=response.status,
            retryable=response.status >= 500,
        )
    return account


NOT_FOUND = 404


def not_pipedrive(status: int | None, url: str) -> UsageError | None:
    """What `GET /v1/users/me` answering 404 at `url` (the API's base URL) means, else None.
    Every Pipedrive account has that route, so at a URL with a path after its host (such as
    /api/v2 or /v1, which rpd adds itself) the path is the slip, and every request of the run would
    fail the same way. At an origin (any company_domain's URL) nothing says so: a gateway may
    forward every route but that one, so the caller goes on as when Pipedrive cannot say."""
    if status != NOT_FOUND or not urlsplit(url).path:
        return None
    return UsageError(
        f"base_url {url} is not Pipedrive's API: {USERS_ME} answered HTTP 404 there",
        hint=ORIGIN_ONLY,
    )


ORIGIN_ONLY = (
    "give base_url (--base-url, $RPD_BASE_URL) the origin only, with no path: "
    "https://COMPANY.pipedrive.com or https://api.pipedrive.com; rpd adds /v1 and /api/v2 itself"
)
API_PATHS = ("/api/v1", "/api/v2", "/v1")  # what rpd puts after base_url: none ends it
# A gateway's own version (https://gw.example.com/pipedrive/v1, forwarding to Pipedrive's
# origin) ends in /v1 too: only on Pipedrive's own host is that path certainly the slip.
PIPEDRIVE_DOMAIN = "pipedrive.com"


def ends_in_an_api_path(url: str) -> UsageError | None:
    """A base URL whose path ends in one rpd adds itself (https://x/api/v2, whose requests go to
    /api/v2/v1/users/me) is no Pipedrive API, whatever answers there, else None: said before any
    request, where none is made (a conversion) to find it as `not_pipedrive` does. Any other
    path (a gateway's prefix, and its /v1 off Pipedrive's host) may be right."""
    parts = urlsplit(url)
    path, host = parts.path.rstrip("/"), (parts.hostname or "").rstrip(".")
    own = host == PIPEDRIVE_DOMAIN or host.endswith(f".{PIPEDRIVE_DOMAIN}")
    ending = next((api for api in API_PATHS if path.endswith(api)), None)
    if ending == "/v1" and not own:
        return None  # a gateway's /v1: its 404 says it, where it is wrong (`not_pipedrive`)
    if ending is None:
        return None
    return UsageError(
        f"base_url {url} is not Pipedrive's API: it ends in {ending}, which rpd adds to it",
        hint=ORIGIN_ONLY,
    )
