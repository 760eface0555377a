"""What a fresh sandbox company holds: its fields, lead labels and user (SPEC 7).

The custom field keys and lead label ids are fixed so that examples, docs and tests agree.
Option ids are fixed too (Plan 101-103, Industry 201-203).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Entity = Literal["person", "organization", "deal"]

# Only these field types can be searched with itemSearch/field (SPEC 1).
SEARCHABLE_TYPES = frozenset(
    {"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"}
)

SEED_TIME = "2026-01-05T09:00:00Z"
# When every seeded row (lead label, pipeline, stage, activity type) was made and last changed.
_SEEDED = {"add_time": SEED_TIME, "update_time": SEED_TIME}


# The parts of an address field (v2.yaml's address objects), listed as its subfields.
ADDRESS_PARTS = (
    "street_number",
    "route",
    "sublocality",
    "locality",
    "admin_area_level_1",
    "admin_area_level_2",
    "country",
    "postal_code",
    "subpremise",
)
# What `include_fields` adds to a field listing's items, each entity's own shape (v2.yaml,
# getPersonFields', getOrganizationFields' and getDealFields' schemas and examples): the
# sandbox's fields are all visible, none in an add dialog, none important or required.
_NOT_IN_DIALOG = {"show": False, "order": None}
_VISIBLE = {"add_visible_flag": True, "details_visible_flag": True}
_NOT_IMPORTANT = {"enabled": False, "stage_ids": []}
FIELD_EXTRAS: Mapping[Entity, Mapping[str, Any]] = {
    "person": {
        "ui_visibility": _VISIBLE | {"show_in_add_deal_dialog": _NOT_IN_DIALOG},
        "important_fields": _NOT_IMPORTANT,
        "required_fields": {"enabled": False},
    },
    "organization": {
        "ui_visibility": _VISIBLE
        | dict.fromkeys(
            ("org_detail_visible_flag", "person_detail_visible_flag", "deal_detail_visible_flag"),
            True,
        )
        | {"show_in_add_deal_dialog": _NOT_IN_DIALOG, "show_in_add_person_dialog": _NOT_IN_DIALOG},
        "important_fields": _NOT_IMPORTANT,
        "required_fields": {"enabled": False},
    },
    "deal": {
        "ui_visibility": _VISIBLE
        | {
            "projects_detail_visible_flag": False,
            "show_in_pipelines": {"show_in_all": True, "pipeline_ids": []},
        },
        "important_fields": _NOT_IMPORTANT,
        "required_fields": {"enabled": False, "stage_ids": [], "statuses": {}},
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    code: str
    name: str
    type: str
    custom: bool = False
    options: tuple[tuple[int, str], ...] = ()
    description: str = ""

    def listing(self, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The field as the v2 field listings return it, with the `include_fields` extras (its
        entity's FIELD_EXTRAS asked for, by name)."""
        item: dict[str, Any] = {
            "field_code": self.code,
            "field_name": self.name,
            "description": self.description,
            "field_type": self.type,
            "options": None,
            "subfields": self._subfields(),
            "is_custom_field": self.custom,
            "is_optional_response_field": False,
        }
        if self.type in ("enum", "set"):
            # Every option documents its color (null: none) and times (made with the company).
            item["options"] = [
                {"id": oid, "label": label, "color": None} | _SEEDED for oid, label in self.options
            ]
        return item | dict(extras or {})

    def _subfields(self) -> list[dict[str, str]] | None:
        """A monetary field's amount and currency; an address's parts."""
        if self.type == "monetary":
            parts = [("value", "Amount", "double"), ("currency", "Currency", "varchar")]
        elif self.type == "address":
            parts = [(p, p.replace("_", " ").capitalize(), "varchar") for p in ADDRESS_PARTS]
        else:
            return None
        return [
            {"field_code": code, "field_name": f"{what} of {self.name}", "field_type": kind}
            for code, what, kind in parts
        ]

    def labelled(self, value: Any) -> Any:
        """A value as `include_option_labels=true` shows it: options as {id, label}."""
        names = dict(self.options)
        if self.type == "enum" and isinstance(value, int):
            return {"id": value, "label": names[value]}
        if self.type == "set" and isinstance(value, list):
            return [{"id": v, "label": names[v]} for v in value]
        return value

    @property
    def option_ids(self) -> frozenset[int]:
        return frozenset(oid for oid, _ in self.options)


def _custom(code: str, name: str, type_: str, *options: tuple[int, str]) -> Field:
    return Field(code=code, name=name, type=type_, custom=True, options=options)


def _standard(*rows: tuple[str, str, str, str]) -> tuple[Field, ...]:
    """Standard fields from (code, name, type, description) rows."""
    return tuple(Field(code=c, name=n, type=t, description=d) for c, n, t, d in rows)


USER_ID_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
GROUP_ID_FIELD = "872513dc3f908b99275edf2d09fcc9a467df9fa5"

_PERSON_FIELDS = (
    *_standard(
        ("name", "Name", "varchar", "The name of the person"),
        ("first_name", "First name", "varchar", "The first name of the person"),
        ("last_name", "Last name", "varchar", "The last name of the person"),
        ("emails", "Email", "varchar", "The email addresses of the person"),
        ("phones", "Phone", "phone", "The phone numbers of the person"),
        ("org_id", "Organization", "org", "The organization of the person"),
        ("owner_id", "Owner", "user", "The owner of the person"),
        ("visible_to", "Visible to", "visible_to", "Who can see the person"),
        ("add_time", "Person created", "date", "When the person was created"),
        ("update_time", "Update time", "date", "When the person was last changed"),
        ("job_title", "Job title", "varchar", "The job title of the person"),
        ("postal_address", "Postal address", "address", "The postal address of the person"),
        ("notes", "Notes", "text", "The notes of the person"),
    ),
    _custom(USER_ID_FIELD, "RudderStack userId", "varchar"),
    _custom("6098b979cd7506a9c2b183a7814c70e8a6a08a3f", "Role", "varchar"),
    _custom(
        "2166d04123ea6d974ed242877a8d769fe934c896",
        "Plan",
        "enum",
        (101, "Free"),
        (102, "Pro"),
        (103, "Enterprise"),
    ),
)

_ORGANIZATION_FIELDS = (
    *_standard(
        ("name", "Name", "varchar", "The name of the organization"),
        ("owner_id", "Owner", "user", "The owner of the organization"),
        ("visible_to", "Visible to", "visible_to", "Who can see the organization"),
        ("add_time", "Organization created", "date", "When the organization was created"),
        ("update_time", "Update time", "date", "When the organization was last changed"),
        ("address", "Address", "address", "The address of the organization"),
        ("website", "Website", "varchar", "The website of the organization"),
    ),
    _custom(GROUP_ID_FIELD, "RudderStack groupId", "varchar"),
    _custom(
        "defb159c0eed85085c8281ba35dedef9760c65bd",
        "Industry",
        "enum",
        (201, "Software"),
        (202, "Retail"),
        (203, "Finance"),
    ),
    _custom("30ad8f346a94dd54e680b1f9410672d8c6253b5b", "Employees", "double"),
)

_DEAL_FIELDS = (
    *_standard(
        ("title", "Title", "varchar", "The title of the deal"),
        ("value", "Value", "monetary", "The value of the deal"),
        ("person_id", "Contact person", "people", "The person the deal is with"),
        ("org_id", "Organization", "org", "The organization of the deal"),
        ("owner_id", "Owner", "user", "The owner of the deal"),
        (
            "expected_close_date",
            "Expected close date",
            "date",
            "The expected close date of the deal",
        ),
        ("visible_to", "Visible to", "visible_to", "Who can see the deal"),
        ("label_ids", "Label", "set", "The labels of the deal"),
        ("add_time", "Deal created", "date", "When the deal was created"),
    ),
    _custom("01bc2d5edda1b591f488b8eb969bde67eb7dcf5e", "Source", "varchar"),
    _custom("0ad278b60b7e6b783e51a7f5b9cef17d732fe978", "Campaign", "varchar"),
)

FIELDS: Mapping[Entity, tuple[Field, ...]] = {
    "person": _PERSON_FIELDS,
    "organization": _ORGANIZATION_FIELDS,
    "deal": _DEAL_FIELDS,
}

# Route of each v2 field listing -> the entity it lists.
FIELD_LISTINGS: Mapping[str, Entity] = {
    "/api/v2/personFields": "person",
    "/api/v2/organizationFields": "organization",
    "/api/v2/dealFields": "deal",
}


def custom_fields(entity: Entity) -> Mapping[str, Field]:
    return {f.code: f for f in FIELDS[entity] if f.custom}


def searchable_field(entity: Entity, code: str) -> Field | None:
    """The field itemSearch/field may search by `code`, or None when there is none."""
    for f in FIELDS[entity]:
        if f.code == code and f.type in SEARCHABLE_TYPES and (f.custom or code == "name"):
            return f
    return None


LEAD_LABELS: tuple[dict[str, str], ...] = tuple(
    {"id": label_id, "name": name, "color": color} | _SEEDED
    for label_id, name, color in (
        ("894a5e59-22f4-5b36-a557-3d4b8fe1cbfa", "Hot", "red"),
        ("5d17ffad-6b12-5006-b8d6-314a56d08b1a", "Warm", "yellow"),
        ("de8cb1cf-2bc1-5b1e-9553-cacf123b23c7", "Cold", "blue"),
    )
)
LEAD_LABEL_IDS = frozenset(label["id"] for label in LEAD_LABELS)

USER_ID = 7000001
COMPANY_ID = 7000
# The BCC address of the company's mailbox: a lead's and a person's cc_email.
CC_EMAIL = "sandbox@pipedrivemail.com"
# The visible_to of a new person, organization, lead or deal whose body gives none.
DEFAULT_VISIBLE_TO = 3

USER_ME: Mapping[str, Any] = {
    "id": USER_ID,
    "name": "Sandbox User",
    "default_currency": "EUR",
    "locale": "en_US",
    "lang": 1,
    "email": "sandbox@example.com",
    "phone": None,
    "activated": True,
    "last_login": "2026-01-05 09:00:00",
    "created": "2026-01-05 09:00:00",
    "modified": "2026-01-05 09:00:00",
    "has_created_company": True,
    "access": [{"app": "sales", "admin": True, "permission_set_id": "sandbox-admin"}],
    "active_flag": True,
    "timezone_name": "Europe/Tallinn",
    "timezone_offset": "+02:00",
    "role_id": 1,
    "icon_url": None,
    "is_you": True,
    "is_deleted": False,
    "company_id": COMPANY_ID,
    "company_name": "rpd sandbox",
    "company_domain": "rpd-sandbox",
    "company_country": "EE",
    "company_industry": "Software",
    "language": {"language_code": "en", "country_code": "US"},
}

# Pipelines and stages (SPEC 7): a new deal with neither goes to the first stage of "Sales".
PIPELINES: tuple[dict[str, Any], ...] = tuple(
    {
        "id": pipeline_id,
        "name": name,
        "order_nr": pipeline_id,
        "is_deleted": False,
        "is_deal_probability_enabled": False,
    }
    | _SEEDED
    for pipeline_id, name in ((1, "Sales"), (2, "Partners"))
)
STAGES: tuple[dict[str, Any], ...] = tuple(
    {
        "id": stage_id,
        "order_nr": order_nr,
        "name": name,
        "is_deleted": False,
        "deal_probability": 100,
        "pipeline_id": pipeline_id,
        "is_deal_rot_enabled": False,
        "days_to_rotten": None,
    }
    | _SEEDED
    for stage_id, order_nr, name, pipeline_id in (
        (1, 1, "Qualified", 1),
        (2, 2, "Demo", 1),
        (3, 3, "Proposal", 1),
        (4, 1, "Intro", 2),
    )
)

# Pipedrive's standard activity types (v1 shape; times RFC 3339 as v1.yaml's schema says).
ACTIVITY_TYPES: tuple[dict[str, Any], ...] = tuple(
    {
        "id": type_id,
        "order_nr": type_id,
        "name": key.capitalize(),
        "key_string": key,
        "icon_key": key,
        "active_flag": True,
        "color": None,
        "is_custom_flag": False,
    }
    | _SEEDED
    for type_id, key in enumerate(("call", "meeting", "task", "deadline", "email", "lunch"), 1)
)
