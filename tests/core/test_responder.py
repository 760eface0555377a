"""core/responder.py: the dry-run's offline answers, chosen by the request's "METHOD endpoint"."""

from __future__ import annotations

from typing import Any

import pytest

from rudder_pipedrive_cli.core.plans.alias import MERGE
from rudder_pipedrive_cli.core.plans.base import PlanConfig
from rudder_pipedrive_cli.core.plans.common import SEARCH
from rudder_pipedrive_cli.core.protocol import ApiRequest
from rudder_pipedrive_cli.core.responder import NO_HITS, NONE_V1, NONE_V2, OfflineResponder

CONFIG = PlanConfig(user_id_field="u" * 40, group_id_field="g" * 40)


def answer(
    method: Any, endpoint: str, body: dict[str, Any] | None = None, responder: Any = None
) -> tuple[int, Any]:
    request = ApiRequest(method, endpoint, endpoint, "stage", None, body)
    response = (responder or OfflineResponder(CONFIG))(request)
    return response.status, response.data


def test_creates_answer_with_a_placeholder_of_their_kind_numbered_in_turn() -> None:
    responder = OfflineResponder(CONFIG)
    made = [
        answer("POST", endpoint, {"title": "t"}, responder)
        for endpoint in ("/v1/leads", "/api/v2/deals", "/api/v2/activities", "/v1/notes")
    ]
    assert made == [
        (201, {"id": "{lead:1}"}),
        (201, {"id": "{deal:2}"}),
        (201, {"id": "{activity:3}"}),
        (201, {"id": "{note:4}"}),
    ]


def test_a_new_person_or_organization_is_named_by_its_identity_else_by_a_serial() -> None:
    responder = OfflineResponder(CONFIG)
    person = {"name": "A", "custom_fields": {"u" * 40: "u-1"}}
    org = {"name": "O", "custom_fields": {"g" * 40: "g-1"}}
    assert answer("POST", "/api/v2/persons", person, responder) == (
        201,
        {"id": "{person:u-1}", **person},
    )
    assert answer("POST", "/api/v2/organizations", org, responder) == (
        201,
        {"id": "{org:g-1}", **org},
    )
    assert answer("POST", "/api/v2/persons", {"name": "B"}, responder) == (
        201,
        {"id": "{person:1}", "name": "B"},
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("PATCH", "/api/v2/persons/7"), ("GET", "/api/v2/organizations/7"), ("POST", "/v1/other/7")],
)
def test_other_requests_succeed_and_echo_their_body_with_the_id_of_their_path(
    method: Any, path: str
) -> None:
    assert answer(method, path, {"name": "A"}) == (200, {"id": "7", "name": "A"})


def test_searches_find_nothing_or_a_placeholder_and_listings_are_empty() -> None:
    missing = OfflineResponder(CONFIG, "missing")
    existing = OfflineResponder(CONFIG, "existing")
    query = {"term": "u-1", "entity_type": "organization", "field": "f", "match": "exact"}
    search = ApiRequest("GET", SEARCH, SEARCH, "lookup organization", query)
    assert missing(search) is NO_HITS
    found = existing(search)
    assert (found.status, found.data) == (200, [{"id": "{org:u-1}", "name": "{org:u-1}"}])
    for responder in (missing, existing):
        assert responder(ApiRequest("GET", "/v1/notes", "/v1/notes", "s")) is NONE_V1
        assert responder(ApiRequest("GET", "/api/v2/deals", "/api/v2/deals", "s")) is NONE_V2


def test_a_merge_answers_with_the_survivor_and_no_organization_which_it_cannot_know() -> None:
    merge = ApiRequest(
        "PUT", "/v1/persons/7/merge", MERGE, "merge persons", None, {"merge_with_id": 8}
    )
    merged = OfflineResponder(CONFIG)(merge)
    assert (merged.status, merged.data) == (200, {"id": 8, "merge_what_id": "7"})
