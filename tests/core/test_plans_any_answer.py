"""Whatever the event and whatever Pipedrive answers, a plan ends with one Outcome, in few steps,
and every request it makes conforms to Pipedrive's OpenAPI descriptions."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from helpers_core import CONFIG, SENT_AT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rudder_pipedrive_cli.core.driver import drive
from rudder_pipedrive_cli.core.events import EventError, parse_event
from rudder_pipedrive_cli.core.identity_cache import IdentityStore
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse

sys.path.insert(0, str(Path(__file__).parent.parent))
from openapi_contract import check_request

MAX_STEPS = 60
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**13),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "Pro", "pro", "Gold", "2021-04-27", "2021-04-27T10:00:00Z", "3"]),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
trait_keys = st.sampled_from(
    [
        "name", "firstName", "last_name", "email", "phone", "visible_to", "add_time", "role",
        "plan", "industry", "employees", "userId", "id", "groupId", "previousId", "owner_id",
    ]
)  # fmt: skip
prop_keys = st.sampled_from(
    [
        "revenue", "value", "total", "amount", "currency", "expected_close_date", "label_ids",
        "source", "utm", "order_id",
    ]
)  # fmt: skip
ids = st.one_of(st.none(), st.sampled_from(["u-1", "u-2", 7, "", "g-1"]))
external = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "person_id",
                    "pipedrivePersonId",
                    "org_id",
                    "prev_person_id",
                    "curr_person_id",
                    "x",
                ]
            ),
            "id": st.one_of(st.integers(1, 50), st.sampled_from(["12", "abc", ""])),
        }
    ),
    max_size=2,
)
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["identify", "group", "alias", "track", "page"]),
        "userId": ids,
        "anonymousId": st.one_of(st.none(), st.just("anon")),
        "groupId": ids,
        "previousId": ids,
        "event": st.one_of(st.none(), st.just("Signed Up"), st.just("")),
        "timestamp": st.sampled_from(["2020-02-02T00:23:09.544Z", "bad", ""]),
        "traits": st.dictionaries(trait_keys, values, max_size=5),
        "properties": st.dictionaries(prop_keys, values, max_size=5),
        "context": st.fixed_dictionaries(
            {"traits": st.dictionaries(trait_keys, values, max_size=4), "externalId": external}
        ),
    }
)


def answer(request: ApiRequest, data: st.DataObject) -> ApiResponse:
    pick = data.draw
    if request.method == "GET":
        if request.is_search:
            hits = pick(st.lists(st.integers(1, 9), max_size=3))
            return ApiResponse(status=200, data=[{"id": i, "name": "x"} for i in hits])
        if request.endpoint == "/v1/leads":
            origins = pick(st.lists(st.sampled_from(["rpd:m-1", "rpd:x", None]), max_size=3))
            return ApiResponse(status=200, data=[{"origin_id": o} for o in origins])
        if request.endpoint.endswith("{id}"):
            return ApiResponse(status=pick(st.sampled_from([200, 404, 410])), data={"id": 1})
        records = pick(st.lists(st.sampled_from(["u-1", "u-2", "g-1"]), max_size=2))
        return ApiResponse(
            status=200,
            data=[
                {"id": n + 1, "custom_fields": {CONFIG.user_id_field: r, CONFIG.group_id_field: r}}
                for n, r in enumerate(records)
            ],
        )
    status = pick(st.sampled_from([200, 201, 400, 404, 410, 0]))
    if status == 0 and request.method in ("POST", "PUT"):
        return ApiResponse(status=0, sent_at=pick(st.sampled_from([SENT_AT, ""])))
    return ApiResponse(status=status or 200, data={"id": pick(st.integers(1, 9)), "org_id": None})


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(raw=events, data=st.data(), create=st.booleans())
def test_any_event_any_answers(raw: dict[str, Any], data: st.DataObject, create: bool) -> None:
    raw = {"messageId": "m-1", **{k: v for k, v in raw.items() if v is not None}}
    config = replace(CONFIG, create_persons=create)
    known = IdentityStore()
    known.persons.update(
        data.draw(
            st.dictionaries(st.sampled_from(["u-1", "u-2", "7"]), st.integers(1, 9), max_size=2)
        )
    )
    steps: list[ApiRequest] = []
    # Writes Pipedrive confirmed (2xx). An unknown outcome is the plan's to settle: a reconciling
    # read may show it did not apply (the previous person of a merge still there, say).
    applied: list[ApiRequest] = []

    def send(request: ApiRequest) -> ApiResponse:
        steps.append(request)
        assert len(steps) <= MAX_STEPS, "the plan does not end"
        check_request(request)
        response = answer(request, data)
        if request.is_write and response.ok:
            applied.append(request)
        return response

    try:
        event = parse_event(raw, "fuzz:1")
    except EventError:
        return  # not an event (e.g. an id too large to compare): intake fails it, no plan runs
    outcome = drive(plan_event(event, config, known), send)
    assert outcome.status in ("sent", "unchanged", "skipped", "failed")
    if outcome.status == "failed":
        assert outcome.reason and "\n" not in outcome.reason
    if outcome.status == "unchanged":
        # A write Pipedrive refused (404 on a stale id, say) changed nothing: still unchanged.
        assert applied == []
