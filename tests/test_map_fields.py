"""`rpd map-fields` against the sandbox: every format, paging past one page, filters, warnings,
usage errors, and a token that never shows. The helpers here serve test_check and test_init too."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.http.client import UNREACHABLE_HINT
from rudder_pipedrive_cli.sandbox import Sandbox, routes, seed
from rudder_pipedrive_cli.sandbox.replies import ApiError

MakeSandbox = Callable[..., Sandbox]  # the make_sandbox fixture of conftest.py

TOKEN = "tok-Zq8-DISTINCTIVE-7c1e"
USER_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
GROUP_FIELD = "872513dc3f908b99275edf2d09fcc9a467df9fa5"
ROLE = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
PLAN = "2166d04123ea6d974ed242877a8d769fe934c896"
INDUSTRY = "defb159c0eed85085c8281ba35dedef9760c65bd"
EMPLOYEES = "30ad8f346a94dd54e680b1f9410672d8c6253b5b"
SOURCE = "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e"
CAMPAIGN = "0ad278b60b7e6b783e51a7f5b9cef17d732fe978"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RPD_CONFIG", "PIPEDRIVE_API_TOKEN", "RPD_PLAN", "RPD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables at a known width
    monkeypatch.chdir(tmp_path)


def start_account(make_sandbox: MakeSandbox) -> Sandbox:
    """A sandbox that only accepts TOKEN, so a leak of it would be a leak of a real secret."""
    return make_sandbox(plan="unlimited", token=TOKEN)


@pytest.fixture
def account(make_sandbox: MakeSandbox) -> Sandbox:
    return start_account(make_sandbox)


def write_config(
    path: Path, base_url: str, *, identity: str | None = None, fields: str = ""
) -> str:
    """A config pointing at `base_url` with the sandbox's identity fields (or `identity`)."""
    if identity is None:
        identity = f'user_id_field = "{USER_FIELD}"\ngroup_id_field = "{GROUP_FIELD}"\n'
    path.write_text(
        f'[pipedrive]\nbase_url = "{base_url}"\nplan = "unlimited"\n\n'
        f"[identity]\n{identity}\n{fields}"
    )
    return str(path)


def invoke(*args: str, token: str = TOKEN) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"PIPEDRIVE_API_TOKEN": token})
    return result.exit_code, result.stdout, result.stderr


class RefusedFields(dict[str, Any]):
    """The sandbox's fields, whose listing for one entity ("person", "organization", "deal")
    answers HTTP 503."""

    def __init__(self, entity: str) -> None:
        super().__init__(seed.FIELDS)
        self.entity = entity

    def __getitem__(self, entity: str) -> Any:
        if entity == self.entity:
            raise ApiError(503, f"{entity} fields are unavailable")
        return super().__getitem__(entity)


class Refused(tuple[Any, ...]):
    """A sandbox listing (LEAD_LABELS, PIPELINES, STAGES, ACTIVITY_TYPES) answering HTTP 503."""

    def __iter__(self) -> Any:
        raise ApiError(503, "unavailable")


def refuse_listing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The sandbox's listing `name` (a field entity or a table of routes) answers HTTP 503; the
    others answer as ever."""
    refused = RefusedFields(name) if name in seed.FIELDS else Refused()
    monkeypatch.setattr(routes, "FIELDS" if name in seed.FIELDS else name, refused)


def map_fields(account: Sandbox, tmp_path: Path, *args: str, **config: Any) -> tuple[int, str, str]:
    path = write_config(tmp_path / "rpd.toml", account.url, **config)
    return invoke("map-fields", "--config", path, *args)


TOML = f"""\
# Paste into rpd.toml: event trait path = Pipedrive field key.
# Trait names are made from the field names: rename them to your events' traits.

[fields.persons]
role = "{ROLE}"  # "Role" (varchar)
plan = "{PLAN}"  # "Plan" (enum: Free, Pro, Enterprise)
# "RudderStack userId" is identity.user_id_field: rpd fills it

[fields.organizations]
industry = "{INDUSTRY}"   # "Industry" (enum: Software, Retail, Finance)
employees = "{EMPLOYEES}"  # "Employees" (double)
# "RudderStack groupId" is identity.group_id_field: rpd fills it

[fields.leads]  # leads use deal fields
source = "{SOURCE}"    # "Source" (varchar)
campaign = "{CAMPAIGN}"  # "Campaign" (varchar)
# lead labels (names work in label_ids): Hot, Warm, Cold
"""


def test_toml_prints_fields_tables_ready_to_paste(account: Sandbox, tmp_path: Path) -> None:
    code, out, err = map_fields(account, tmp_path, "--format", "toml")
    assert (code, err) == (0, "")
    assert out == TOML
    # Its own words fit an 80-column terminal (a line with a field key and its name may not).
    assert all(len(line) <= 80 for line in out.splitlines() if line.startswith("#"))
    pasted = tomllib.loads(out)["fields"]
    assert pasted["persons"] == {"role": ROLE, "plan": PLAN}
    assert pasted["leads"] == {"source": SOURCE, "campaign": CAMPAIGN}


def test_toml_knows_identity_fields_given_by_name(account: Sandbox, tmp_path: Path) -> None:
    by_name = 'user_id_field = "RudderStack userId"\ngroup_id_field = "RudderStack groupId"\n'
    code, out, err = map_fields(account, tmp_path, "--format", "toml", identity=by_name)
    assert (code, err) == (0, "")
    assert out == TOML


def test_toml_without_identity_fields_suggests_every_custom_field(
    account: Sandbox, tmp_path: Path
) -> None:
    code, out, _ = map_fields(account, tmp_path, "-f", "toml", "--entity", "persons", identity="")
    assert code == 0
    assert out.splitlines()[3:] == [
        "[fields.persons]",
        f'rudder_stack_user_id = "{USER_FIELD}"  # "RudderStack userId" (varchar)',
        f'role = "{ROLE}"                  # "Role" (varchar)',
        f'plan = "{PLAN}"                  # "Plan" (enum: Free, Pro, Enterprise)',
    ]


def test_toml_offers_an_entitys_field_that_the_other_entitys_identity_setting_names(
    account: Sandbox, tmp_path: Path
) -> None:
    # user_id_field set, by mistake, to the organizations' groupId field: rpd fills it on
    # persons only, so the organizations' table still offers that field, and no footer says
    # rpd fills it there (the warning says what is wrong with the setting).
    swapped = f'user_id_field = "{GROUP_FIELD}"\ngroup_id_field = "{USER_FIELD}"\n'
    code, out, _ = map_fields(
        account, tmp_path, "-f", "toml", "-q", "-e", "organizations", identity=swapped
    )
    assert code == 0
    assert out.split("\n\n")[1:] == [
        f"""[fields.organizations]
rudder_stack_group_id = "{GROUP_FIELD}"  # "RudderStack groupId" (varchar)
industry = "{INDUSTRY}"               # "Industry" (enum: Software, Retail, Finance)
employees = "{EMPLOYEES}"              # "Employees" (double)
"""
    ]


def test_pasted_toml_makes_a_config_that_passes_check(account: Sandbox, tmp_path: Path) -> None:
    _, out, _ = map_fields(account, tmp_path, "-f", "toml")
    config = write_config(tmp_path / "pasted.toml", account.url, fields=out)
    code, stdout, _ = invoke("check", "--config", config)
    assert code == 0, stdout
    assert stdout.splitlines()[-1] == "all 10 checks passed"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize("format", ["json", "toml"])
def test_json_and_toml_stay_valid_whatever_stdout_can_encode(
    account: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    format: str,
    encoding: str,
) -> None:
    # Review: documents were written as text in stdout's encoding: under PYTHONIOENCODING=latin-1
    # "R\u00f4le" came out as the byte 0xf4, no UTF-8 (and "\u03a9" only escaped by luck).
    # They go out as UTF-8 bytes, as dry-run's JSON does.
    renamed = tuple(
        replace(field, name="R\u00f4le \u03a9") if field.code == ROLE else field
        for field in routes.FIELDS["person"]
    )
    monkeypatch.setitem(routes.FIELDS, "person", renamed)
    config = write_config(tmp_path / "rpd.toml", account.url)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "map-fields", "--config", config]
    env = {**os.environ, "PIPEDRIVE_API_TOKEN": TOKEN, "PYTHONIOENCODING": encoding}
    done = subprocess.run([*command, "-f", format], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if format == "json":
        names = {field["key"]: field["name"] for field in json.loads(done.stdout)["persons"]}
        assert names[ROLE] == "R\u00f4le \u03a9"
    else:
        tomllib.loads(done.stdout.decode())
        assert f'"{ROLE}"  # "R\u00f4le \u03a9" (varchar)'.encode() in done.stdout


def test_json_lists_each_field_with_flags_and_options(account: Sandbox, tmp_path: Path) -> None:
    code, out, err = map_fields(account, tmp_path, "--format", "json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert list(document) == ["persons", "organizations", "leads", "lead_labels"]
    assert [f["key"] for f in document["persons"]] == [
        "name", "first_name", "last_name", "emails", "phones", "org_id", "owner_id",
        "visible_to", "add_time", "update_time", "job_title", "postal_address", "notes",
        USER_FIELD, ROLE, PLAN,
    ]  # fmt: skip
    assert document["persons"][0] == {
        "key": "name",
        "name": "Name",
        "type": "varchar",
        "custom": False,
        "searchable": True,
        "options": [],
    }
    assert document["persons"][-1] == {
        "key": PLAN,
        "name": "Plan",
        "type": "enum",
        "custom": True,
        "searchable": False,
        "options": [
            {"id": 101, "label": "Free"},
            {"id": 102, "label": "Pro"},
            {"id": 103, "label": "Enterprise"},
        ],
    }
    assert document["organizations"][-1] == {
        "key": EMPLOYEES,
        "name": "Employees",
        "type": "double",
        "custom": True,
        "searchable": True,
        "options": [],
    }
    assert document["lead_labels"] == [
        {"id": "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa", "name": "Hot"},
        {"id": "5d17ffad-6b12-5006-b8d6-314a56d08b1a", "name": "Warm"},
        {"id": "de8cb1cf-2bc1-5b1e-9553-cacf123b23c7", "name": "Cold"},
    ]


def test_custom_only_and_entity_narrow_the_listing(account: Sandbox, tmp_path: Path) -> None:
    code, out, _ = map_fields(
        account, tmp_path, "-f", "json", "--custom-only", "--entity", "organizations"
    )
    assert code == 0
    document = json.loads(out)
    assert list(document) == ["organizations"]  # no lead labels without leads
    assert [f["name"] for f in document["organizations"]] == [
        "RudderStack groupId",
        "Industry",
        "Employees",
    ]
    assert account.stats()["requests"] == {"GET /api/v2/organizationFields": 1}


@pytest.mark.parametrize(
    ("refused", "entity", "listed", "requests"),
    [
        (
            "person",
            "all",
            ["organizations", "leads", "lead_labels"],
            {
                "GET /api/v2/personFields": 3,
                "GET /api/v2/organizationFields": 1,
                "GET /api/v2/dealFields": 1,
                "GET /v1/leadLabels": 1,
            },
        ),
        (
            "LEAD_LABELS",
            "leads",
            ["leads"],
            {"GET /api/v2/dealFields": 1, "GET /v1/leadLabels": 3},
        ),
    ],
)
def test_a_listing_pipedrive_refuses_is_said_and_the_others_are_listed_exit_4(
    account: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refused: str,
    entity: str,
    listed: list[str],
    requests: dict[str, int],
) -> None:
    """One listing answering 503 (its retries spent): map-fields listed nothing ("error: GET
    /api/v2/personFields: HTTP 503 after 3 attempts"), as send no longer does. Now what answered
    is listed, with no identity warning about the unlisted entity, and the one that failed is
    said last; exit 4 (it could not list everything; a rerun later may: SPEC 6)."""
    refuse_listing(monkeypatch, refused)
    code, out, err = map_fields(account, tmp_path, "-f", "json", "-e", entity)
    endpoint, what = {
        "person": ("/api/v2/personFields", "person fields"),
        "LEAD_LABELS": ("/v1/leadLabels", "lead labels"),
    }[refused]
    assert err.splitlines() == [
        f"warning: GET {endpoint}: HTTP 503 after 3 attempts; {what} not listed"
    ]
    assert code == 4
    assert list(json.loads(out)) == listed
    assert account.stats()["requests"] == requests


def test_every_listing_refused_is_one_error_and_exit_4(
    account: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_listing(monkeypatch, "organization")
    code, out, err = map_fields(account, tmp_path, "-e", "organizations")
    assert (code, out) == (4, "")
    assert err.splitlines() == [
        "error: GET /api/v2/organizationFields: HTTP 503 after 3 attempts",
        "hint: try again later",
    ]


class GoneFields(RefusedFields):
    """The sandbox's fields, whose listing for one entity answers HTTP 404."""

    def __getitem__(self, entity: str) -> Any:
        if entity == self.entity:
            raise ApiError(404, "Not found")
        return super().__getitem__(entity)


def test_a_listing_refused_404_at_an_origin_asks_nothing_more_exit_2(
    account: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 404 at a base URL with no path says nothing of the URL (not_pipedrive): the users/me
    # that e99c10e asked after it there was a request for nothing, its answer thrown away.
    monkeypatch.setattr(routes, "FIELDS", GoneFields("organization"))
    code, out, err = map_fields(account, tmp_path, "-e", "organizations")
    # Exit 2 (SPEC 6: the config's to change, which the hint names; no rerun mends a 404): it
    # was 1, a code for failed events.
    assert (code, out, err.splitlines()) == (
        2,
        "",
        [
            "error: listing organization fields failed: HTTP 404 Not found (Please check "
            "developers.pipedrive.com for more information about Pipedrive API.)",
            # It said no more (SPEC 6: an error says what to do).
            "hint: check base_url and company_domain: every Pipedrive account answers this "
            "listing, so they may name another server (`rpd check` asks the account there)",
        ],
    )
    assert account.stats()["requests"] == {"GET /api/v2/organizationFields": 1}


def test_toml_leaves_out_the_entity_whose_listing_was_refused(
    account: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_listing(monkeypatch, "deal")
    code, out, err = map_fields(account, tmp_path, "-f", "toml")
    assert code == 4
    assert (
        err
        == "warning: GET /api/v2/dealFields: HTTP 503 after 3 attempts; deal fields not listed\n"
    )
    assert list(tomllib.loads(out)["fields"]) == ["persons", "organizations"]


@pytest.mark.parametrize("entity", ["all", "leads"])
def test_toml_keeps_the_lead_labels_that_answered_when_the_deal_fields_were_refused(
    account: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entity: str
) -> None:
    """The labels were said only inside [fields.leads], which a refused dealFields leaves out:
    they were lost, though Pipedrive listed them. They are said under the header instead (an
    empty [fields.leads] would claim the account has no deal custom fields)."""
    refuse_listing(monkeypatch, "deal")
    code, out, err = map_fields(account, tmp_path, "-f", "toml", "-e", entity)
    assert code == 4
    assert (
        err
        == "warning: GET /api/v2/dealFields: HTTP 503 after 3 attempts; deal fields not listed\n"
    )
    labels = "# lead labels (names work in label_ids): Hot, Warm, Cold\n"
    header, _, tables = TOML.partition("\n\n")  # the header's lines, then the tables
    if entity == "all":
        assert out == f"{header}\n{labels}\n{tables.partition(chr(10) + '[fields.leads]')[0]}"
        assert list(tomllib.loads(out)["fields"]) == ["persons", "organizations"]
    else:
        assert out == f"{header}\n{labels}"


def test_listings_are_paged_to_the_end(account: Sandbox, tmp_path: Path) -> None:
    code, out, _ = map_fields(account, tmp_path, "-f", "json", "--page-size", "3")
    assert code == 0
    document = json.loads(out)
    assert [len(document[e]) for e in ("persons", "organizations", "leads")] == [16, 10, 11]
    assert account.stats()["requests"] == {
        "GET /api/v2/personFields": 6,  # 16 fields, 3 a page
        "GET /api/v2/organizationFields": 4,
        "GET /api/v2/dealFields": 4,
        "GET /v1/leadLabels": 1,
    }
    assert document["persons"][-1]["key"] == PLAN  # the last page arrived


def cells(out: str) -> list[list[str]]:
    """The rows of the rich tables in `out`, header rows included, as lists of cell texts."""
    return [
        [cell.strip() for cell in re.split("[│┃]", line.strip())[1:-1]]
        for line in out.splitlines()
        if line.startswith(("│", "┃"))
    ]


def test_table_shows_fields_and_lead_labels(account: Sandbox, tmp_path: Path) -> None:
    code, out, _ = map_fields(account, tmp_path, "--custom-only")
    assert code == 0
    # Not a terminal: no line ends in spaces (rich padded each title to its table's width).
    assert [line for line in out.splitlines() if line.endswith(" ")] == []
    titles = [line for line in out.splitlines() if line[:1].isalpha()]
    assert titles == [
        "Person fields (3)",
        "Organization fields (3)",
        "Deal fields (2)",
        "Lead labels (3)",
    ]
    header = ["key", "name", "type", "custom", "searchable", "options"]
    assert cells(out) == [
        header,
        [USER_FIELD, "RudderStack userId", "varchar", "yes", "yes", ""],
        [ROLE, "Role", "varchar", "yes", "yes", ""],
        [PLAN, "Plan", "enum", "yes", "", "Free=101, Pro=102, Enterprise=103"],
        header,
        [GROUP_FIELD, "RudderStack groupId", "varchar", "yes", "yes", ""],
        [INDUSTRY, "Industry", "enum", "yes", "", "Software=201, Retail=202, Finance=203"],
        [EMPLOYEES, "Employees", "double", "yes", "yes", ""],
        header,
        [SOURCE, "Source", "varchar", "yes", "yes", ""],
        [CAMPAIGN, "Campaign", "varchar", "yes", "yes", ""],
        ["name", "id"],
        ["Hot", "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"],
        ["Warm", "5d17ffad-6b12-5006-b8d6-314a56d08b1a"],
        ["Cold", "de8cb1cf-2bc1-5b1e-9553-cacf123b23c7"],
    ]


def test_table_lists_standard_fields_too(account: Sandbox, tmp_path: Path) -> None:
    code, out, _ = map_fields(account, tmp_path, "--entity", "leads")
    assert code == 0
    assert out.splitlines()[0] == "Deal fields (11)"
    rows = cells(out)
    assert rows[1] == ["title", "Title", "varchar", "", "", ""]
    assert rows[2] == ["value", "Value", "monetary", "", "", ""]
    assert rows[-4:] == [
        ["name", "id"],
        ["Hot", "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"],
        ["Warm", "5d17ffad-6b12-5006-b8d6-314a56d08b1a"],
        ["Cold", "de8cb1cf-2bc1-5b1e-9553-cacf123b23c7"],
    ]


def test_sandbox_flag_lists_the_seeded_fields(tmp_path: Path) -> None:
    code, out, err = invoke("map-fields", "--sandbox", "-f", "toml", "-e", "leads")
    assert code == 0
    no_config, started = err.splitlines()
    assert no_config == (
        "warning: no config file found (rpd.toml here; --config or $RPD_CONFIG name another): "
        "using the environment and defaults"
    )
    assert started.startswith("sandbox: Pipedrive emulator at http://127.0.0.1:")
    assert f'source = "{SOURCE}"' in out


@pytest.mark.parametrize(
    ("identity", "warning"),
    [
        (
            f'user_id_field = "{"0" * 40}"\n',
            [
                f"warning: identity.user_id_field = '{'0' * 40}': the account has no such person "
                "field",
                "hint: create a person custom field for it, or pick one from "
                "`rpd map-fields --entity persons`",
            ],
        ),
        (
            f'user_id_field = "{PLAN}"\n',
            [
                f"warning: identity.user_id_field = '{PLAN}': \"Plan\" (enum: Free, Pro, "
                "Enterprise) is not of a searchable type, so rpd cannot look records up by it",
                "hint: use a field of type address, phone, text, varchar, varchar_auto",
            ],
        ),
        (
            f'group_id_field = "{USER_FIELD}"\n',
            [
                f"warning: identity.group_id_field = '{USER_FIELD}': the account has no such "
                "organization field (it is a person field)",
                "hint: create an organization custom field for it, or pick one from "
                "`rpd map-fields --entity organizations`",
            ],
        ),
    ],
)
def test_warns_when_an_identity_field_is_missing_or_unsearchable(
    account: Sandbox, tmp_path: Path, identity: str, warning: list[str]
) -> None:
    code, out, err = map_fields(account, tmp_path, "-f", "json", identity=identity)
    assert code == 0
    assert err.splitlines() == warning
    assert json.loads(out)["persons"]


def test_no_identity_warning_for_entities_not_listed(account: Sandbox, tmp_path: Path) -> None:
    identity = f'user_id_field = "{"0" * 40}"\n'
    code, _, err = map_fields(account, tmp_path, "-f", "json", "-e", "leads", identity=identity)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--format", "yaml"), "error: unknown --format 'yaml'\nhint: use table, json or toml\n"),
        (
            ("--entity", "deals"),
            "error: unknown --entity 'deals'\nhint: use persons, organizations, leads or all\n",
        ),
    ],
)
def test_usage_errors_exit_2(
    account: Sandbox, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, out, err = map_fields(account, tmp_path, *args)
    assert (code, out, err) == (2, "", message)


def test_refused_token_exits_3_and_never_shows_a_token(account: Sandbox, tmp_path: Path) -> None:
    path = write_config(tmp_path / "rpd.toml", account.url)
    wrong = "tok-WRONG-also-distinctive-42"
    code, out, err = invoke("map-fields", "--config", path, token=wrong)
    assert code == 3
    assert err.splitlines()[0] == "error: Pipedrive refused the API token (401)"
    assert wrong not in out + err and TOKEN not in out + err


def test_no_token_is_a_usage_error(account: Sandbox, tmp_path: Path) -> None:
    path = write_config(tmp_path / "rpd.toml", account.url)
    code, _, err = invoke("map-fields", "--config", path, token="")
    assert code == 2
    assert err.splitlines()[0] == "error: no Pipedrive API token configured"


def test_output_never_holds_the_token(account: Sandbox, tmp_path: Path) -> None:
    for fmt in ("table", "json", "toml"):
        code, out, err = map_fields(account, tmp_path, "-f", fmt, "-v")
        assert code == 0
        assert TOKEN not in out + err


def test_a_base_url_with_a_path_is_said_as_check_and_send_say_it_exit_2(
    account: Sandbox, tmp_path: Path
) -> None:
    # Before: "error: listing person fields failed: HTTP 404 Unknown method GET (unknown) (...)",
    # no hint, exit 1 ("try again"), where check and send name base_url and the slip, exit 2.
    url = f"{account.url}/crm"  # a path rpd adds itself (/api/v2) is refused before: config
    path = write_config(tmp_path / "rpd.toml", url)
    for command in (["map-fields"], ["init", "-o", "-"]):
        code, out, err = invoke(*command, "--config", path)
        assert (code, out, err.splitlines()) == (
            2,
            "",
            [
                f"error: base_url {url} is not Pipedrive's API: /v1/users/me answered HTTP 404 "
                "there",
                "hint: give base_url (--base-url, $RPD_BASE_URL) the origin only, with no path: "
                "https://COMPANY.pipedrive.com or https://api.pipedrive.com; rpd adds /v1 and "
                "/api/v2 itself",
            ],
        )


def test_a_listing_that_cannot_get_through_is_one_error_and_exit_4(tmp_path: Path) -> None:
    # A port where nothing listens, over real loopback: no answer at all is more often a wrong
    # address than a passing fault, so the hint says where to look, as send's does. QA: dry-run
    # --lookups, a preview at a terminal too, tried 7 times over some 26 s, as a send does.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_config(tmp_path / "rpd.toml", f"http://127.0.0.1:{port}")
    events = tmp_path / "in.ndjson"
    events.write_text('{"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}}\n')
    for command in (["map-fields"], ["init", "-o", "-"], ["dry-run", "--lookups", str(events)]):
        code, out, err = invoke(*command, "--config", path)
        assert (code, out) == (4, ""), err  # SPEC 6: Pipedrive unreachable (it was 1)
        # In a send's words (map-fields and init said 'GET /api/v2/personFields: ConnectError:
        # All connection attempts failed after 3 attempts', hint '... then try again').
        assert re.sub(r"over \d+\.\d s", "over 9.9 s", err).splitlines() == [
            f"error: Pipedrive is unreachable at http://127.0.0.1:{port}: 3 connection failures "
            "in a row over 9.9 s, no answer between them (last: ConnectError: All connection "
            "attempts failed)",
            f"hint: {UNREACHABLE_HINT}",
        ]


@pytest.mark.parametrize(
    "command",
    [
        ["map-fields", "--format", "json"],
        ["check"],
        ["init", "-o", "-"],
        ["dry-run", "--lookups", "-f", "json"],
    ],
    ids=lambda command: command[0],
)
def test_base_url_on_every_command_that_talks_to_pipedrive(
    account: Sandbox, tmp_path: Path, command: list[str]
) -> None:
    # The config points nowhere; --base-url points at the account.
    config = write_config(tmp_path / "rpd.toml", "https://nowhere.invalid")
    events = tmp_path / "in.ndjson"
    events.write_text('{"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}}\n')
    inputs = [str(events)] if command[0] == "dry-run" else []

    code, out, err = invoke(*command, *inputs, "--config", config, "--base-url", account.url)

    # dry-run: u-1 is looked up for real, not found, and create_persons is off.
    assert code == (1 if command[0] == "dry-run" else 0), err
    assert "nowhere.invalid" not in out + err
    requests = account.stats()["requests"]
    assert requests["GET /api/v2/personFields"] == 1
    if command[0] == "dry-run":
        assert requests["GET /api/v2/itemSearch/field"] == 1
