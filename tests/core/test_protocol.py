"""A request is built once as the dict a dry-run's record shows (issue 12 item 5)."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields

import orjson

from rudder_pipedrive_cli.core.plans.common import ORG, PERSON, SEARCH, search_request
from rudder_pipedrive_cli.core.preview import Recorder
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, reply, request_of
from rudder_pipedrive_cli.core.tally import Tally


def test_a_request_is_the_record_it_shows_and_carries_what_is_not_shown() -> None:
    request = ApiRequest(
        method="POST",
        path="/api/v2/persons",
        endpoint="/api/v2/persons",
        stage="create person",
        body={"name": "Ada"},
        note="create person u-1",
        creates=("person", "u-1"),
    )
    assert orjson.dumps(request) == (
        b'{"method":"POST","path":"/api/v2/persons","query":{},"body":{"name":"Ada"},'
        b'"note":"create person u-1"}'
    )
    assert (request.method, request.path, request.query, request.body, request.note) == (
        "POST",
        "/api/v2/persons",
        {},
        {"name": "Ada"},
        "create person u-1",
    )
    assert (request.endpoint, request.stage, request.key) == (
        "/api/v2/persons",
        "create person",
        "POST /api/v2/persons",
    )
    assert (request.creates, request.merges, request.is_write, request.is_search) == (
        ("person", "u-1"),
        None,
        True,
        False,
    )


def test_the_recorder_keeps_each_request_itself_and_counts_it_by_key() -> None:
    search = ApiRequest(
        method="GET",
        path="/api/v2/itemSearch/field",
        endpoint="/api/v2/itemSearch/field",
        stage="lookup person",
        query={"term": "u-1"},
    )
    tally = Tally()
    recorder = Recorder(lambda request: ApiResponse(status=200, data=[{"id": 7}]), tally)
    answer = recorder.record(search)
    assert answer.data == [{"id": 7}]
    assert recorder.requests == [search] and recorder.requests[0] is search
    assert tally.requests == Counter({"GET /api/v2/itemSearch/field": 1})
    assert (recorder.searches, recorder.found) == (Counter(person=1), Counter(person=1))


def test_a_search_is_made_without_the_constructor_yet_is_the_request_it_would_make() -> None:
    made = search_request(ORG, "a1b2", "g-1")
    expected = ApiRequest(
        "GET",
        SEARCH,
        SEARCH,
        "lookup organization",
        {"term": "g-1", "entity_type": "organization", "field": "a1b2", "match": "exact"},
        None,
        "search organization by groupId g-1",
    )
    assert type(made) is ApiRequest
    assert (
        orjson.dumps(made)
        == orjson.dumps(expected)
        == (
            b'{"method":"GET","path":"/api/v2/itemSearch/field","query":{"term":"g-1",'
            b'"entity_type":"organization","field":"a1b2","match":"exact"},"body":null,'
            b'"note":"search organization by groupId g-1"}'
        )
    )
    # every attribute the constructor sets, the search sets too, to the same value
    assert {name: getattr(made, name) for name in ApiRequest.__slots__} == {
        name: getattr(expected, name) for name in ApiRequest.__slots__
    }
    assert (made.key, made.is_search, made.is_write) == (
        "GET /api/v2/itemSearch/field",
        True,
        False,
    )


def test_the_recorder_counts_the_searches_of_each_kind_and_those_that_found_a_record() -> None:
    """Counted by a search's stage, read by kind: the kinds searched and no other."""
    answers = {"u-1": [{"id": 7}], "u-2": [], "g-1": [{"id": 3}], "g-2": None, None: {"id": 7}}
    recorder = Recorder(
        lambda r: ApiResponse(status=200, data=answers[r.query.get("term")]), Tally()
    )
    for entity, term in ((PERSON, "u-1"), (PERSON, "u-2"), (ORG, "g-1"), (ORG, "g-2")):
        recorder.record(search_request(entity, "a1b2", term))
    recorder.record(ApiRequest("GET", "/api/v2/persons/7", "/api/v2/persons/{id}", "get person"))
    assert (recorder.searches, recorder.found) == (
        Counter(person=2, org=2),
        Counter(person=1, org=1),
    )
    only = Recorder(lambda _: ApiResponse(status=200, data=None), Tally())
    only.record(search_request(ORG, "a1b2", "g-1"))
    assert (list(only.searches.items()), list(only.found.items())) == ([("org", 1)], [])


def test_an_update_and_an_offline_answer_are_made_without_their_constructors_yet_are_theirs() -> (
    None
):
    """`request_of` and `reply` make their values by stores, not by `__init__`: an attribute added
    to `ApiRequest`, or a field to `ApiResponse`, that they do not store would be unset (an
    AttributeError where it is read), a default changed there would differ here."""
    path, endpoint, body = "/api/v2/persons/7", "/api/v2/persons/{id}", {"name": "Ada"}
    made = request_of("PATCH", path, endpoint, "update person", "PATCH " + endpoint, body, "n")
    expected = ApiRequest("PATCH", path, endpoint, "update person", None, body, "n")
    assert type(made) is ApiRequest
    assert orjson.dumps(made) == orjson.dumps(expected)
    assert {name: getattr(made, name, "unset") for name in ApiRequest.__slots__} == {
        name: getattr(expected, name) for name in ApiRequest.__slots__
    }
    answer = reply(201, {"id": 7})
    assert type(answer) is ApiResponse
    assert [getattr(answer, f.name, "unset") for f in fields(ApiResponse)] == [
        getattr(ApiResponse(status=201, data={"id": 7}), f.name) for f in fields(ApiResponse)
    ]
