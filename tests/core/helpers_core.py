"""A scripted Pipedrive for driving plans: each expected request (method, path, query, body) with
the answer to give it. `run` fails on any request that differs from the script, on an extra one,
and on a script that was not used up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from rudder_pipedrive_cli.core.events import parse_event
from rudder_pipedrive_cli.core.identity_cache import AliasesRead, IdentityStore
from rudder_pipedrive_cli.core.index import IdentityIndex
from rudder_pipedrive_cli.core.plans import plan_event
from rudder_pipedrive_cli.core.plans.base import FieldInfo, PlanConfig
from rudder_pipedrive_cli.core.protocol import ApiRequest, ApiResponse, Learned, Outcome, PdId

# The sandbox's seeded keys (SPEC 7), so these cases read like the real account.
USER_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
ROLE = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
PLAN = "2166d04123ea6d974ed242877a8d769fe934c896"
GROUP_FIELD = "872513dc3f908b99275edf2d09fcc9a467df9fa5"
INDUSTRY = "defb159c0eed85085c8281ba35dedef9760c65bd"
EMPLOYEES = "30ad8f346a94dd54e680b1f9410672d8c6253b5b"
SOURCE = "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e"
CAMPAIGN = "0ad278b60b7e6b783e51a7f5b9cef17d732fe978"
HOT = "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"
WARM = "5d17ffad-6b12-5006-b8d6-314a56d08b1a"
COLD = "de8cb1cf-2bc1-5b1e-9553-cacf123b23c7"
SENT_AT = "2026-11-28T10:00:05Z"
SINCE = "2026-11-28T10:00:03Z"  # SENT_AT minus the 2 s slack

CONFIG = PlanConfig(
    user_id_field=USER_FIELD,
    group_id_field=GROUP_FIELD,
    create_persons=True,
    person_fields={"role": ROLE, "plan": PLAN},
    org_fields={"industry": INDUSTRY, "employees": EMPLOYEES},
    lead_fields={"source": SOURCE, "utm.campaign": CAMPAIGN},
    lead_labels={"Hot": HOT, "Warm": WARM, "Cold": COLD},
    field_types={
        PLAN: FieldInfo(
            key=PLAN, name="Plan", field_type="enum", options={"Free": 1, "Pro": 2, "Enterprise": 3}
        ),
        INDUSTRY: FieldInfo(
            key=INDUSTRY,
            name="Industry",
            field_type="enum",
            options={"Software": 4, "Retail": 5, "Finance": 6},
        ),
        EMPLOYEES: FieldInfo(key=EMPLOYEES, name="Employees", field_type="double"),
    },
)

# Every request a scripted run saw, for tests/test_openapi_requests.py.
SEEN: list[ApiRequest] = []


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    response: ApiResponse = field(default_factory=lambda: ApiResponse(status=200))


def ok(data: Any = None, status: int = 200, additional: Any = None) -> ApiResponse:
    return ApiResponse(status=status, data=data, additional_data=additional)


UNKNOWN = ApiResponse(status=0, sent_at=SENT_AT)


def search(entity: str, term: str, *ids: PdId, field_key: str = "") -> Call:
    key = field_key or (USER_FIELD if entity == "person" else GROUP_FIELD)
    return Call(
        method="GET",
        path="/api/v2/itemSearch/field",
        query={"term": term, "entity_type": entity, "field": key, "match": "exact"},
        response=ok([{"id": i, "name": f"record {i}"} for i in ids]),
    )


def search_person(user_id: str, *ids: PdId) -> Call:
    return search("person", user_id, *ids)


def search_org(group_id: str, *ids: PdId) -> Call:
    return search("organization", group_id, *ids)


def post(path: str, body: Mapping[str, Any], response: ApiResponse) -> Call:
    return Call(method="POST", path=path, body=body, response=response)


def create_person(body: Mapping[str, Any], pid: PdId = 100) -> Call:
    return post("/api/v2/persons", body, ok({"id": pid, **body}))


def create_org(body: Mapping[str, Any], oid: PdId = 500) -> Call:
    return post("/api/v2/organizations", body, ok({"id": oid, **body}))


def patch(collection: str, rid: PdId, body: Mapping[str, Any], response: ApiResponse) -> Call:
    return Call(method="PATCH", path=f"/api/v2/{collection}/{rid}", body=body, response=response)


def patch_person(pid: PdId, body: Mapping[str, Any], status: int = 200) -> Call:
    return patch("persons", pid, body, ok({"id": pid, **body}, status=status))


def patch_org(oid: PdId, body: Mapping[str, Any], status: int = 200) -> Call:
    return patch("organizations", oid, body, ok({"id": oid, **body}, status=status))


def list_leads(
    pid: PdId,
    *origins: str | None,
    more: bool = False,
    start: int = 0,
    path: str = "/v1/leads",
) -> Call:
    """One page of a person's leads (`path`: "/v1/leads/archived" for the archived ones)."""
    leads = [{"id": f"lead-{i}", "origin_id": o} for i, o in enumerate(origins)]
    return Call(
        method="GET",
        path=path,
        query={"person_id": pid, "start": start, "limit": 500},
        response=ok(
            leads, additional={"start": start, "limit": 500, "more_items_in_collection": more}
        ),
    )


def list_archived(pid: PdId, *origins: str | None) -> Call:
    return list_leads(pid, *origins, path="/v1/leads/archived")


def leads_of(pid: PdId, *origins: str | None, archived: Sequence[str] = ()) -> tuple[Call, Call]:
    """A person's whole lead listing: its leads, then its archived leads (SPEC 1)."""
    return list_leads(pid, *origins), list_archived(pid, *archived)


def create_lead(body: Mapping[str, Any], response: ApiResponse | None = None) -> Call:
    return post("/v1/leads", body, response or ok({"id": "lead-new", **body}, status=201))


def listing(collection: str, records: Sequence[Mapping[str, Any]], cursor: str = "") -> Call:
    query: dict[str, Any] = {
        "updated_since": SINCE,
        "sort_by": "update_time",
        "sort_direction": "desc",
        "limit": 500,
    }
    return Call(
        method="GET",
        path=f"/api/v2/{collection}",
        query=query,
        response=ok(list(records), additional={"next_cursor": cursor or None}),
    )


def person_record(pid: PdId, user_id: str) -> dict[str, Any]:
    return {"id": pid, "name": "someone", "custom_fields": {USER_FIELD: user_id}}


def run(
    raw: Mapping[str, Any],
    calls: Sequence[Call],
    *,
    config: PlanConfig = CONFIG,
    known: IdentityStore | None = None,
    index: IdentityIndex | None = None,
    read: AliasesRead | None = None,
) -> Outcome:
    """Drive the plan of `raw` through `calls` and return its outcome; `read`, when given, reads
    the event first (the input's aliases read before it, as the planning pass counts them)."""
    event = parse_event({"messageId": "m-1", **raw}, "test.ndjson:1")
    if read is not None:
        read(event)
    plan = plan_event(event, config, known if known is not None else IdentityStore(), index)
    if isinstance(plan, Outcome):  # decided without a request
        assert not calls, f"no request made, {len(calls)} expected"
        return plan
    index = 0
    try:
        request = next(plan)
        while True:
            assert index < len(calls), f"unexpected request #{index + 1}: {request}"
            call = calls[index]
            got = (request.method, request.path, dict(request.query), request.body)
            want = (call.method, call.path, dict(call.query), call.body)
            assert got == want, f"request #{index + 1} differs:\n got {got}\nwant {want}"
            assert request.note, f"request #{index + 1} has no note"
            SEEN.append(request)
            index += 1
            request = plan.send(call.response)
    except StopIteration as stop:
        assert index == len(calls), f"plan ended after {index} of {len(calls)} requests"
        outcome: Outcome = stop.value
        return outcome


NOTHING = Learned()  # what an outcome that taught nothing (`learned` None) taught
LEARNED = frozenset(f.name for f in fields(Learned))


def taught(outcome: Outcome) -> Learned:
    """What the outcome taught: its `learned`, or `NOTHING` (every table empty)."""
    return NOTHING if outcome.learned is None else outcome.learned


def check(outcome: Outcome, **expected: Any) -> None:
    """Outcome fields, and fields of what it taught (`Learned`), as expected;
    `warnings`/`dropped` compare as tuples."""
    actual = {
        name: getattr(taught(outcome) if name in LEARNED else outcome, name) for name in expected
    }
    for name in ("warnings", "dropped"):
        if name in expected:
            expected[name] = tuple(expected[name])
    assert actual == expected


def refused(reason: str, redacted: str | None = None) -> dict[str, Any]:
    """The expected outcome of an event refused for its data, before or instead of any write."""
    return {
        "status": "failed",
        "reason": reason,
        "redacted": redacted,
        "stage": "validate",
        "retryable": False,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One event, the conversation it should have with Pipedrive, and how it should end."""

    name: str
    raw: Mapping[str, Any]
    calls: Sequence[Call] = ()
    expect: Mapping[str, Any] = field(default_factory=dict)
    config: PlanConfig = CONFIG
    persons: Mapping[str, PdId] = field(default_factory=dict)
    orgs: Mapping[str, PdId] = field(default_factory=dict)
    leads: Mapping[PdId, frozenset[str]] = field(default_factory=dict)
    memberships: Mapping[PdId, PdId] = field(default_factory=dict)

    def known(self) -> IdentityStore:
        known = IdentityStore()
        known.persons.update(self.persons)
        known.orgs.update(self.orgs)
        for key, origins in self.leads.items():
            known.leads.put(key, origins)
        known.memberships.update(self.memberships)
        return known

    def play(self) -> Outcome:
        return run(self.raw, self.calls, config=self.config, known=self.known())

    def verify(self) -> None:
        check(self.play(), **self.expect)
