"""Who the token belongs to, as a pure exchange: `GET /v1/users/me` (`rpd check`, and the account
that names a send's namespace in the replay state, SPEC 5)."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass

from rudder_pipedrive_cli.core.errors import PlanFailure
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
