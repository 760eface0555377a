"""`rpd check` against the sandbox: exact lines for every pass and failure, and the exit codes
(0 all pass, 2 a failed check or an invalid config, 3 token refused, 4 Pipedrive unreachable or
failing: a listing or users/me with no answer, or a 5xx, its retries spent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_map_fields import (
    CAMPAIGN,
    EMPLOYEES,
    GROUP_FIELD,
    INDUSTRY,
    PLAN,
    ROLE,
    SOURCE,
    TOKEN,
    USER_FIELD,
    MakeSandbox,
    clean_env,  # noqa: F401 - autouse fixture
    invoke,
    refuse_listing,
    start_account,
    write_config,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.check_cmd import plan_limits
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.http.client import UNREACHABLE_HINT
from rudder_pipedrive_cli.io.config import Settings, require_token

FIELDS = f"""
[fields.persons]
role = "{ROLE}"
plan = "Plan"

[fields.organizations]
industry = "{INDUSTRY}"

[fields.leads]
"utm.source" = "{SOURCE}"
"""
TOKEN_OK = (
    'ok    token: accepted: Sandbox User <sandbox@example.com>, company "rpd sandbox" '
    "(rpd-sandbox.pipedrive.com)"
)
USER_OK = (
    f"ok    identity.user_id_field = '{USER_FIELD}': \"RudderStack userId\" (varchar), "
    "a searchable person field"
)
GROUP_OK = (
    f"ok    identity.group_id_field = '{GROUP_FIELD}': \"RudderStack groupId\" (varchar), "
    "a searchable organization field"
)
UNLIMITED = "info  plan unlimited: no pacing (for the sandbox; a real account has limits)"


def check(tmp_path: Path, url: str, *args: str, **config: str) -> tuple[int, list[str], str]:
    path = write_config(tmp_path / "rpd.toml", url, **config)
    code, out, err = invoke("check", "--config", path, *args)
    assert TOKEN not in out + err
    return code, out.splitlines(), err


def test_all_checks_pass(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    account = start_account(make_sandbox)
    code, lines, err = check(tmp_path, account.url, fields=FIELDS)
    assert (code, err) == (0, "")
    assert lines == [
        f"ok    config: {tmp_path / 'rpd.toml'} is valid",
        TOKEN_OK,
        USER_OK,
        GROUP_OK,
        f"ok    fields.persons.role = '{ROLE}': \"Role\" (varchar)",
        f"ok    fields.persons.plan = 'Plan': \"Plan\" (enum: Free, Pro, Enterprise) "
        f"(by its name; key {PLAN})",
        f"ok    fields.organizations.industry = '{INDUSTRY}': \"Industry\" (enum: Software, "
        "Retail, Finance)",
        f"ok    fields.leads.utm.source = '{SOURCE}': \"Source\" (varchar)",
        UNLIMITED,
        "all 8 checks passed",
    ]
    assert account.stats()["requests"] == {
        "GET /v1/users/me": 1,
        "GET /api/v2/personFields": 1,
        "GET /api/v2/organizationFields": 1,
        "GET /api/v2/dealFields": 1,
        "GET /v1/leadLabels": 1,
    }


@pytest.mark.parametrize("sent_from", ["environment", "file"])
def test_refused_token_exits_3_naming_where_it_came_from_without_showing_it(
    make_sandbox: MakeSandbox, tmp_path: Path, sent_from: str
) -> None:
    # The hint said "check PIPEDRIVE_API_TOKEN / [pipedrive] api_token", whichever was sent.
    account = start_account(make_sandbox)
    path = write_config(tmp_path / "rpd.toml", account.url)
    wrong = "tok-REFUSED-distinctive-0xbeef"
    if sent_from == "file":
        text = Path(path).read_text()
        Path(path).write_text(
            text.replace("[pipedrive]\n", f'[pipedrive]\napi_token = "{wrong}"\n')
        )
        Path(path).chmod(0o600)
    code, out, err = invoke("check", "--config", path, token=wrong if sent_from != "file" else "")
    assert (code, err) == (3, "")
    hint = {
        "environment": "check $PIPEDRIVE_API_TOKEN, the token sent (it wins over [pipedrive] "
        "api_token)",
        "file": f"check [pipedrive] api_token in {path}, the token sent ($PIPEDRIVE_API_TOKEN "
        "is unset)",
    }[sent_from]
    assert out.splitlines() == [
        f"ok    config: {path} is valid",
        "FAIL  token: Pipedrive refused the API token (401)",
        f"      hint: {hint}",
        "1 of 2 checks failed",
    ]
    assert wrong not in out and TOKEN not in out


@pytest.mark.parametrize(
    ("identity", "failure"),
    [
        pytest.param(
            f'user_id_field = "{"a" * 40}"\ngroup_id_field = "{GROUP_FIELD}"\n',
            [
                f"FAIL  identity.user_id_field = '{'a' * 40}': the account has no such person "
                "field",
                "      hint: create a person custom field for it, or pick one from "
                "`rpd map-fields --entity persons`",
            ],
            id="missing",
        ),
        pytest.param(
            f'user_id_field = "{PLAN}"\ngroup_id_field = "{GROUP_FIELD}"\n',
            [
                f"FAIL  identity.user_id_field = '{PLAN}': \"Plan\" (enum: Free, Pro, Enterprise) "
                "is not of a searchable type, so rpd cannot look records up by it",
                "      hint: use a field of type address, phone, text, varchar, varchar_auto",
            ],
            id="unsearchable type",
        ),
        pytest.param(
            f'user_id_field = "{GROUP_FIELD}"\ngroup_id_field = "{GROUP_FIELD}"\n',
            [
                f"FAIL  identity.user_id_field = '{GROUP_FIELD}': the account has no such person "
                "field (it is an organization field)",
                "      hint: create a person custom field for it, or pick one from "
                "`rpd map-fields --entity persons`",
            ],
            id="wrong entity",
        ),
        pytest.param(
            f'user_id_field = "job_title"\ngroup_id_field = "{GROUP_FIELD}"\n',
            [
                "FAIL  identity.user_id_field = 'job_title': \"Job title\" (varchar) is a "
                "standard person field",
                "      hint: create a person custom field (varchar) to hold the id",
            ],
            id="standard field",
        ),
    ],
)
def test_identity_field_failures_exit_2(
    make_sandbox: MakeSandbox, tmp_path: Path, identity: str, failure: list[str]
) -> None:
    account = start_account(make_sandbox)
    code, lines, _ = check(tmp_path, account.url, identity=identity)
    assert code == 2
    assert lines[2:] == [*failure, GROUP_OK, UNLIMITED, "1 of 4 checks failed"]


def test_unsearchable_group_field(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    account = start_account(make_sandbox)
    identity = f'user_id_field = "{USER_FIELD}"\ngroup_id_field = "{INDUSTRY}"\n'
    code, lines, _ = check(tmp_path, account.url, identity=identity)
    assert code == 2
    assert lines[3] == (
        f"FAIL  identity.group_id_field = '{INDUSTRY}': \"Industry\" (enum: Software, Retail, "
        "Finance) is not of a searchable type, so rpd cannot look records up by it"
    )


def test_numeric_group_field(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    account = start_account(make_sandbox)
    identity = f'user_id_field = "{USER_FIELD}"\ngroup_id_field = "{EMPLOYEES}"\n'
    code, lines, _ = check(tmp_path, account.url, identity=identity)
    assert code == 2
    assert lines[3:5] == [
        f"FAIL  identity.group_id_field = '{EMPLOYEES}': \"Employees\" (double) holds numbers, "
        "but ids are text: Pipedrive would refuse every record rpd creates",
        "      hint: use a text field (varchar, varchar_auto, text) to hold the id",
    ]


def test_unknown_mapped_keys_exit_2(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    account = start_account(make_sandbox)
    fields = f"""
[fields.persons]
role = "{ROLE}"
employees = "{EMPLOYEES}"

[fields.leads]
campaign = "{CAMPAIGN}"
budget = "Budget"
"""
    code, lines, _ = check(tmp_path, account.url, fields=fields)
    assert code == 2
    assert lines[4:] == [
        f"ok    fields.persons.role = '{ROLE}': \"Role\" (varchar)",
        f"FAIL  fields.persons.employees = '{EMPLOYEES}': the account has no such person field "
        "(it is an organization field)",
        "      hint: run `rpd map-fields` to list them",
        f"ok    fields.leads.campaign = '{CAMPAIGN}': \"Campaign\" (varchar)",
        "FAIL  fields.leads.budget = 'Budget': the account has no such deal field",
        "      hint: run `rpd map-fields` to list them",
        UNLIMITED,
        "2 of 8 checks failed",
    ]


def test_a_standard_field_rpd_cannot_write_fails_the_check(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    account = start_account(make_sandbox)
    fields = '[fields.persons]\ngiven = "First name"\ntitle = "job_title"\n'
    code, lines, _ = check(tmp_path, account.url, fields=fields)
    assert code == 2
    assert lines[4:] == [
        "FAIL  fields.persons.given = 'First name': \"First name\" (varchar) is a standard person "
        "field that rpd cannot write (Pipedrive's API does not take it, or rpd sets it itself): "
        "its values would be dropped",
        "      hint: map the trait to a custom field (`rpd map-fields --entity persons "
        "--custom-only`)",
        "ok    fields.persons.title = 'job_title': \"Job title\" (varchar)",
        UNLIMITED,
        "1 of 6 checks failed",
    ]


def test_quiet_prints_only_the_problems_and_the_summary(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    account = start_account(make_sandbox)
    fields = '[fields.leads]\nbudget = "Budget"\n'
    code, lines, _ = check(tmp_path, account.url, "-q", fields=fields)
    assert code == 2
    assert lines == [
        "FAIL  fields.leads.budget = 'Budget': the account has no such deal field",
        "      hint: run `rpd map-fields` to list them",
        "1 of 5 checks failed",
    ]


def test_sandbox_without_a_config_fails_on_the_unset_user_id_field(tmp_path: Path) -> None:
    # Issue 14 item 8: it said "all 4 checks passed", and send then failed every event.
    code, out, err = invoke("check", "--sandbox")
    assert code == 2
    assert err.startswith("sandbox: Pipedrive emulator at http://127.0.0.1:")
    assert out.splitlines() == [
        "warn  config: no config file (rpd.toml): using the environment and defaults",
        "      hint: write one with `rpd init`",
        TOKEN_OK,
        "FAIL  identity.user_id_field: not set: only events with external ids can be replayed",
        "      hint: set it to the key of a searchable person custom field "
        "(`rpd map-fields --entity persons`)",
        "warn  identity.group_id_field: not set: only events with external ids can be replayed",
        "      hint: set it to the key of a searchable organization custom field "
        "(`rpd map-fields --entity organizations`)",
        "info  plan growth: up to 40 requests every 2 s, 10 of them searches",
        "      a day: 60,000 API tokens per seat (3,000 searches or 12,000 creates)",
        "      when they are spent, rpd stops; rerun it the next day to resume",
        "1 of 4 checks failed (2 with a warning)",
    ]


def test_invalid_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "rpd.toml"
    path.write_text('[identity]\nuser_id_feld = "x"\n')
    code, out, err = invoke("check", "--config", str(path))
    assert (code, out) == (2, "")
    assert err == (
        f"error: {path}:2: unknown key identity.user_id_feld\nhint: did you mean 'user_id_field'?\n"
    )


def test_missing_token_is_a_failed_token_check(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    # It was a bare `error:` line on stderr after the checklist's `ok config` row.
    account = start_account(make_sandbox)
    path = write_config(tmp_path / "rpd.toml", account.url)
    code, out, err = invoke("check", "--config", path, token="")
    assert (code, err) == (2, "")
    assert out.splitlines() == [
        f"ok    config: {path} is valid",
        "FAIL  token: no Pipedrive API token configured",
        "      hint: set $PIPEDRIVE_API_TOKEN (preferred) or [pipedrive] api_token, or use "
        "--sandbox",
        "1 of 2 checks failed",
    ]
    assert account.stats()["requests"] == {}


def test_an_unusable_proxy_is_an_error_not_the_token_s_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The token's row took every error of making the client (session 14's review).
    monkeypatch.setenv("HTTPS_PROXY", "ftp://127.0.0.1:1")
    path = write_config(tmp_path / "rpd.toml", "https://api.pipedrive.com")
    code, out, err = invoke("check", "--config", path)
    assert (code, out) == (2, f"ok    config: {path} is valid\n")
    assert err.splitlines() == [
        "error: cannot use the proxy in $HTTPS_PROXY: not a proxy URL (http://, https:// or "
        "socks5://HOST:PORT)",
        "hint: correct it, or unset it",
    ]


@pytest.mark.parametrize("name", ["PIPEDRIVE_TOKEN", "pipedrive_api_token", "RPD_API_KEY"])
@pytest.mark.parametrize("command", [["check"], ["map-fields"], ["send", "e.ndjson"]])
def test_a_token_in_a_variable_of_another_name_is_named_never_shown(
    make_sandbox: MakeSandbox, tmp_path: Path, name: str, command: list[str]
) -> None:
    account = start_account(make_sandbox)
    path = write_config(tmp_path / "rpd.toml", account.url)
    (tmp_path / "e.ndjson").write_text('{"type": "identify", "userId": "u-1"}\n')
    token = "0123456789abcdef0123456789abcdef01234567"

    result = CliRunner().invoke(
        app,
        [command[0], "--config", path, *(str(tmp_path / a) for a in command[1:])],
        env={"PIPEDRIVE_API_TOKEN": "", name: token},
    )

    assert result.exit_code == 2
    if command == ["check"]:  # a row of its checklist
        assert (result.stderr, result.stdout.splitlines()[-3:]) == (
            "",
            [
                "FAIL  token: no Pipedrive API token configured",
                f"      hint: ${name} is set, but rpd reads $PIPEDRIVE_API_TOKEN: "
                f'export PIPEDRIVE_API_TOKEN="${name}"',
                "1 of 2 checks failed",
            ],
        )
    else:
        assert result.stderr.splitlines()[-2:] == [
            "error: no Pipedrive API token configured",
            f"hint: ${name} is set, but rpd reads $PIPEDRIVE_API_TOKEN: "
            f'export PIPEDRIVE_API_TOKEN="${name}"',
        ]
    assert token not in result.stdout + result.stderr


def test_a_variable_naming_a_token_file_is_not_taken_for_a_token() -> None:
    settings = Settings()
    for name in ("PIPEDRIVE_TOKEN_FILE", "RPD_API_KEY_PATH"):
        with pytest.raises(UsageError) as caught:
            require_token(settings, {name: "/run/secrets/pd"})
        assert caught.value.hint.startswith("set $PIPEDRIVE_API_TOKEN (preferred)")


@pytest.mark.parametrize(
    ("plan", "line"),
    [
        (
            "lite",
            "plan lite: up to 20 requests every 2 s, 10 of them searches\n"
            "      a day: 30,000 API tokens per seat (1,500 searches or 6,000 creates)\n"
            "      when they are spent, rpd stops; rerun it the next day to resume",
        ),
        (
            "ultimate",
            "plan ultimate: up to 120 requests every 2 s, 10 of them searches\n"
            "      a day: 210,000 API tokens per seat (10,500 searches or 42,000 creates)\n"
            "      when they are spent, rpd stops; rerun it the next day to resume",
        ),
    ],
)
def test_plan_limits(plan: str, line: str) -> None:
    assert plan_limits(plan) == line


def test_an_unreachable_pipedrive_names_the_url_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rudder_pipedrive_cli.core.errors import PlanFailure
    from rudder_pipedrive_cli.http.blocking import BlockingClient

    def unreachable(self: BlockingClient, request: object) -> None:
        raise PlanFailure(
            "GET /v1/users/me: ConnectError: [Errno -2] Name or service not known after 7 attempts",
            retryable=True,
        )

    monkeypatch.setattr(BlockingClient, "send", unreachable)
    code, out, _ = check(tmp_path, "https://acme-typo.pipedrive.com")
    assert code == 4
    assert out[-3:] == [
        "FAIL  pipedrive: GET /v1/users/me: ConnectError: [Errno -2] Name or service not known "
        "after 7 attempts",
        "      hint: is https://acme-typo.pipedrive.com right (base_url, company_domain) and "
        "reachable? then try again",
        "1 of 2 checks failed",
    ]


def test_a_refused_connection_fails_after_two_retries_over_real_loopback_exit_4(
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, _ = check(tmp_path, f"http://127.0.0.1:{port}")
    assert code == 4  # SPEC 6: Pipedrive unreachable (it was 1)
    # In a send's words (it said 'FAIL  pipedrive: GET /v1/users/me: ConnectError: ... after 3
    # attempts', hint 'is URL right (base_url, company_domain) and reachable? then try again').
    assert re.fullmatch(
        rf"FAIL  pipedrive: Pipedrive is unreachable at http://127\.0\.0\.1:{port}: 3 connection "
        r"failures in a row over \d+\.\d s, no answer between them \(last: ConnectError: All "
        r"connection attempts failed\)",
        out[-3],
    ), out
    assert out[-2] == f"      hint: {UNREACHABLE_HINT}"
    assert out[-1] == "1 of 2 checks failed"


def test_a_trait_mapped_to_the_identity_field_fails_the_check(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # QA: it passed as ok; an identify then overwrote the person's userId in Pipedrive, and a
    # replay with a fresh state created a second person.
    account = start_account(make_sandbox)
    fields = '[fields.persons]\nexternal_ref = "RudderStack userId"\n'
    code, lines, _ = check(tmp_path, account.url, fields=fields)
    assert code == 2
    assert lines[4:] == [
        "FAIL  fields.persons.external_ref = 'RudderStack userId': \"RudderStack userId\" "
        "(varchar) is the identity field ([identity] user_id_field): rpd fills it itself, and a "
        "trait written there would replace the identity, so a later replay could not find the "
        "record",
        "      hint: map the trait to another field, or remove it",
        UNLIMITED,
        "1 of 5 checks failed",
    ]


def test_track_rules_are_checked_against_the_account(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    account = start_account(make_sandbox)
    fields = f"""
[fields.deals]
campaign = "{CAMPAIGN}"
role = "{ROLE}"

[[track]]
events = ["Page *", "Button Clicked"]
create = "skip"

[[track]]
events = ["Demo Requested"]
create = "deal"
pipeline = "Partners"
stage = "Intro"
fields = {{ plan = "Plan" }}

[[track]]
events = ["Contract Signed"]
create = "deal"
stage = "Qualifed"

[[track]]
events = ["Call Scheduled"]
create = "activity"
type = "Meeting"

[[track]]
events = ["Ticket"]
create = "activity"
type = "cal"

[[track]]
events = ["*"]
create = "note"
"""
    code, lines, _ = check(tmp_path, account.url, fields=fields)
    assert code == 2
    assert lines[4:] == [
        f"ok    fields.deals.campaign = '{CAMPAIGN}': \"Campaign\" (varchar)",
        f"FAIL  fields.deals.role = '{ROLE}': the account has no such deal field (it is a "
        "person field)",
        "      hint: run `rpd map-fields` to list them",
        "FAIL  track #2.fields.plan = 'Plan': the account has no such deal field (it is a "
        "person field)",
        "      hint: run `rpd map-fields` to list them",
        "ok    track #1: skip for 'Page *', 'Button Clicked'",
        "ok    track #2: a deal in pipeline 'Partners' (2), stage 'Intro' (4) for 'Demo Requested'",
        "FAIL  track #3: stage 'Qualifed': the account has no such stage",
        "      hint: did you mean 'Qualified'? stages: Qualified, Demo, Proposal, Intro",
        "ok    track #4: an activity of type 'meeting' for 'Call Scheduled'",
        "FAIL  track #5: type 'cal': the account has no such activity type",
        "      hint: did you mean 'call'? activity types: call, meeting, task, deadline, email, "
        "lunch",
        "ok    track #6: a note for '*'",
        UNLIMITED,
        "4 of 13 checks failed",
    ]


def test_a_refused_listing_is_a_failed_check_of_its_own_and_every_other_check_is_made(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """personFields answering 503 (its retries spent): check stopped there ("FAIL  pipedrive:
    GET /api/v2/personFields: ..."), checking nothing else, though a send goes on without that
    one listing. Now that listing is a failed check naming what it leaves unchecked, every
    other check is made, and the exit status is 4: the checks could not all be made, those made
    passed, and a rerun later may make them (SPEC 6; it was 1, a code for failed events)."""
    account = start_account(make_sandbox)
    refuse_listing(monkeypatch, "person")
    code, lines, err = check(tmp_path, account.url, fields=FIELDS)
    assert (code, err) == (4, "")
    assert lines == [
        f"ok    config: {tmp_path / 'rpd.toml'} is valid",
        TOKEN_OK,
        "FAIL  pipedrive: GET /api/v2/personFields: HTTP 503 after 3 attempts; not checked: "
        "identity.user_id_field, fields.persons",
        "      hint: try again later",
        GROUP_OK,
        f"ok    fields.organizations.industry = '{INDUSTRY}': \"Industry\" (enum: Software, "
        "Retail, Finance)",
        f"ok    fields.leads.utm.source = '{SOURCE}': \"Source\" (varchar)",
        UNLIMITED,
        "1 of 6 checks failed",
    ]
    assert account.stats()["requests"] == {
        "GET /v1/users/me": 1,
        "GET /api/v2/personFields": 3,
        "GET /api/v2/organizationFields": 1,
        "GET /api/v2/dealFields": 1,
        "GET /v1/leadLabels": 1,
    }


RULES = """
[[track]]
events = ["Demo Requested"]
create = "deal"
pipeline = "Partners"
stage = "Intro"

[[track]]
events = ["Call Scheduled"]
create = "activity"
type = "Meeting"
"""


@pytest.mark.parametrize(
    ("refused", "identity", "code", "lines"),
    [
        (
            # The rule naming from the refused listings is not judged (it said "a deal in the
            # default pipeline"); the other is.
            "STAGES",
            None,
            4,
            [
                "FAIL  pipedrive: GET /api/v2/stages: HTTP 503 after 3 attempts; not checked: "
                "track #1",
                "      hint: try again later",
                USER_OK,
                GROUP_OK,
                "ok    track #2: an activity of type 'meeting' for 'Call Scheduled'",
                UNLIMITED,
                "1 of 6 checks failed",
            ],
        ),
        (
            # A check that was made failed as well: the config's fault comes first (exit 2).
            "LEAD_LABELS",
            f'user_id_field = "{"0" * 40}"\ngroup_id_field = "{GROUP_FIELD}"\n',
            2,
            [
                "FAIL  pipedrive: GET /v1/leadLabels: HTTP 503 after 3 attempts",
                "      hint: try again later",
                f"FAIL  identity.user_id_field = '{'0' * 40}': the account has no such person "
                "field",
                "      hint: create a person custom field for it, or pick one from `rpd "
                "map-fields --entity persons`",
                GROUP_OK,
                "ok    track #1: a deal in pipeline 'Partners' (2), stage 'Intro' (4) for "
                "'Demo Requested'",
                "ok    track #2: an activity of type 'meeting' for 'Call Scheduled'",
                UNLIMITED,
                "2 of 7 checks failed",
            ],
        ),
    ],
)
def test_a_refused_sales_or_labels_listing_leaves_only_what_needs_it_unchecked(
    make_sandbox: MakeSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refused: str,
    identity: str | None,
    code: int,
    lines: list[str],
) -> None:
    account = start_account(make_sandbox)
    refuse_listing(monkeypatch, refused)
    path = write_config(tmp_path / "rpd.toml", account.url, identity=identity, fields=RULES)
    got, out, err = invoke("check", "--config", path)
    assert (got, err) == (code, "")
    assert out.splitlines()[2:] == lines
