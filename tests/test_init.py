"""`rpd init`: a RudderStack destination config converted to rpd.toml (exact TOML, never the
token, the same planned requests as a config written by hand), or a config listed from the
account's fields; refusals to overwrite."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

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

from rudder_pipedrive_cli.cli import common, init_cmd
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.core.rudderstack import Converted, convert
from rudder_pipedrive_cli.io.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rudderstack-destination.json"
EVENTS = str(ROOT / "examples" / "events.ndjson")
SECRET = "rs-token-DISTINCTIVE-5eb1c0ffee"

CONVERTED = f"""\
# rpd config converted from the RudderStack Pipedrive destination in destination.json.
# Check it against the account with `rpd check`.

[pipedrive]
# api_token: not written here; set $PIPEDRIVE_API_TOKEN in the environment instead
plan = "growth"  # lite | growth | premium | ultimate | unlimited

[identity]
user_id_field = "{USER_FIELD}"   # UserId Token
group_id_field = "{GROUP_FIELD}"  # GroupId Token
create_persons = true                                        # Enable User Creation
default_currency = ""                                        # for a lead's value without a currency

[fields.persons]
role = "{ROLE}"
plan = "{PLAN}"

[fields.organizations]
industry = "{INDUSTRY}"
employees = "{EMPLOYEES}"

[fields.leads]  # leads use deal fields
source = "{SOURCE}"
campaign = "{CAMPAIGN}"
"""
HINT = [
    "The API token is not in the file. Set it in the environment:",
    "  export PIPEDRIVE_API_TOKEN=<the token from your RudderStack destination>",
]
# What a user migrating by hand would write for the same destination.
BY_HAND = f"""\
[identity]
user_id_field = "{USER_FIELD}"
group_id_field = "{GROUP_FIELD}"
create_persons = true

[fields.persons]
role = "{ROLE}"
plan = "{PLAN}"

[fields.organizations]
industry = "{INDUSTRY}"
employees = "{EMPLOYEES}"

[fields.leads]
source = "{SOURCE}"
campaign = "{CAMPAIGN}"
"""


def destination(tmp_path: Path, **changes: Any) -> Path:
    """The example destination with a distinctive token (and `changes` to its config)."""
    document = json.loads(EXAMPLE.read_text())
    document["config"].update(apiToken=SECRET, **changes)
    path = tmp_path / "destination.json"
    path.write_text(json.dumps(document))
    return path


def test_converts_a_destination_to_exact_toml_without_the_token(tmp_path: Path) -> None:
    source = destination(tmp_path)
    code, out, err = invoke("init", "--from-rudderstack", str(source))
    assert code == 0
    assert out == ""
    assert err.splitlines() == ["wrote rpd.toml", *HINT]
    written = (tmp_path / "rpd.toml").read_text()
    assert written == CONVERTED
    assert SECRET not in written + out + err


def test_a_base_url_given_to_a_conversion_is_written_into_it(tmp_path: Path) -> None:
    # Before: --base-url was taken and left out of the file without a word, so the config made
    # for that URL went to api.pipedrive.com.
    source = destination(tmp_path)
    url = "https://pipedrive.proxy.example.com"
    code, out, _ = invoke("init", "--from-rudderstack", str(source), "--base-url", url, "-o", "-")
    assert code == 0
    plans = "# lite | growth | premium | ultimate | unlimited"
    assert out == CONVERTED.replace(
        f'plan = "growth"  {plans}\n',
        f'plan = "growth"                                   {plans}\nbase_url = "{url}"\n',
    )


def test_a_base_url_given_to_a_conversion_is_checked_as_anywhere(tmp_path: Path) -> None:
    source = destination(tmp_path)
    url = "http://pipedrive.example.com"
    code, out, err = invoke("init", "--from-rudderstack", str(source), "--base-url", url)
    assert (code, out, err.splitlines()) == (
        2,
        "",
        [
            f"error: --base-url: base_url {url} uses http:// to a non-loopback host: the token "
            "would travel in clear text",
            "hint: use https://, or http:// only for 127.0.0.1, ::1 or localhost",
        ],
    )
    assert not (tmp_path / "rpd.toml").exists()


@pytest.mark.parametrize("path", ["/api/v2", "/v1/", "/api/v1"])
def test_a_base_url_ending_in_a_path_rpd_adds_is_refused_by_a_conversion(
    tmp_path: Path, path: str
) -> None:
    # It was written, and every send and check then stopped at 'GET /v1/users/me answered HTTP
    # 404' (https://x/api/v2/v1/users/me); a conversion asks no account, so nothing else says it.
    source = destination(tmp_path)
    url = f"https://acme.pipedrive.com{path}"
    code, out, err = invoke("init", "--from-rudderstack", str(source), "--base-url", url)
    assert (code, out, err.splitlines()) == (
        2,
        "",
        [
            f"error: --base-url: base_url {url.rstrip('/')} is not Pipedrive's API: it ends in "
            f"{path.rstrip('/')}, which rpd adds to it",
            "hint: give base_url (--base-url, $RPD_BASE_URL) the origin only, with no path: "
            "https://COMPANY.pipedrive.com or https://api.pipedrive.com; rpd adds /v1 and /api/v2 "
            "itself",
        ],
    )
    assert not (tmp_path / "rpd.toml").exists()
    gateway = "https://gateway.example.com/pipedrive"  # a path of its own: written as before
    code, out, _ = invoke(
        "init", "--from-rudderstack", str(source), "--base-url", gateway, "-o", "-"
    )
    assert code == 0 and f'base_url = "{gateway}"' in out


def test_the_converted_file_loads_as_the_destination_said(tmp_path: Path) -> None:
    invoke("init", "--from-rudderstack", str(destination(tmp_path)))
    settings = load_settings(str(tmp_path / "rpd.toml"), env={})
    assert settings.plan_config() == load_settings(str(by_hand(tmp_path)), env={}).plan_config()
    assert settings.api_token.reveal() == ""


def by_hand(tmp_path: Path) -> Path:
    path = tmp_path / "by-hand.toml"
    path.write_text(BY_HAND)
    return path


def planned(config: Path, *args: str) -> list[dict[str, Any]]:
    code, out, err = invoke("dry-run", EVENTS, "--config", str(config), "-f", "ndjson", *args)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_converted_config_plans_the_same_requests_as_one_written_by_hand(tmp_path: Path) -> None:
    invoke("init", "--from-rudderstack", str(destination(tmp_path)))
    converted = planned(tmp_path / "rpd.toml")
    assert converted == planned(by_hand(tmp_path))
    assert sum(len(record["requests"]) for record in converted) > 20


def test_same_requests_with_the_account_fields_looked_up(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = start_account(make_sandbox)
    monkeypatch.setenv("RPD_BASE_URL", account.url)
    invoke("init", "--from-rudderstack", str(destination(tmp_path)))
    converted = planned(tmp_path / "rpd.toml", "--lookups")
    assert converted == planned(by_hand(tmp_path), "--lookups")
    first = converted[0]["requests"][-1]["body"]["custom_fields"]
    assert first[PLAN] == 102  # "Pro" as the option id: values were coerced to the field types


def test_stdout_output_and_refusal_to_overwrite(tmp_path: Path) -> None:
    source = str(destination(tmp_path))
    code, out, err = invoke("init", "--from-rudderstack", source, "-o", "-")
    assert (code, out, err.splitlines()) == (0, CONVERTED, HINT)
    target = tmp_path / "mine.toml"
    target.write_text("# my own\n")
    code, out, err = invoke("init", "--from-rudderstack", source, "-o", str(target))
    assert (code, out) == (2, "")
    assert err == f"error: {target} already exists\nhint: use --force to overwrite it\n"
    assert target.read_text() == "# my own\n"
    code, _, _ = invoke("init", "--from-rudderstack", source, "-o", str(target), "--force")
    assert code == 0
    assert target.read_text() == CONVERTED


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_stdout_toml_is_utf8_whatever_stdout_can_encode(tmp_path: Path, encoding: str) -> None:
    # Review: `-o -` wrote the TOML as text in stdout's encoding: under latin-1 the trait
    # "r\u00f4le" came out as the byte 0xf4, no UTF-8, so no TOML.
    persons = [{"from": "r\u00f4le \u03a9", "to": ROLE}]
    source = destination(tmp_path, personsMap=persons)
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "init", "--from-rudderstack"]
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    done = subprocess.run([*command, str(source), "-o", "-"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert tomllib.loads(done.stdout.decode())["fields"]["persons"] == {"r\u00f4le \u03a9": ROLE}


def test_conversion_warnings_go_to_stderr(tmp_path: Path) -> None:
    source = destination(
        tmp_path,
        personsMap=[{"from": "role", "to": ROLE}, {"from": "plan"}, {"from": "role", "to": PLAN}],
        leadsMap="",
        userIdToken="",
        customMapping=True,
    )
    code, _, err = invoke("init", "--from-rudderstack", str(source), "-o", "-")
    assert code == 0
    assert err.splitlines()[:4] == [
        f"warning: {source}: customMapping is not a Pipedrive destination setting; ignored",
        f"warning: {source}: personsMap[1] needs both from and to; ignored",
        f"warning: {source}: personsMap[2]: 'role' is mapped again; the last row wins, as in "
        "RudderStack",
        f"warning: {source}: userIdToken is empty: only events with external ids can be replayed",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "the RudderStack destination config must be a JSON object"),
        # Another destination's config (QA: HubSpot's wrote an empty rpd.toml, exit 0).
        (
            '{"config": {"hubID": "123", "apiKey": "k"}}',
            "the document holds no Pipedrive destination setting",
        ),
    ],
)
def test_unreadable_destinations_are_usage_errors(
    tmp_path: Path, content: str, message: str
) -> None:
    source = tmp_path / "destination.json"
    source.write_text(content)
    code, _, err = invoke("init", "--from-rudderstack", str(source))
    assert code == 2
    assert message in err.splitlines()[0]
    assert not (tmp_path / "rpd.toml").exists()


def test_a_destination_larger_than_a_mib_is_refused_unread(tmp_path: Path) -> None:
    # QA: `--from-rudderstack /dev/zero` read until the memory ran out; an export is kilobytes.
    code, out, err = invoke("init", "--from-rudderstack", "/dev/zero", "-o", "-")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: /dev/zero: larger than 1 MiB, so not a RudderStack destination's export",
        "hint: check the --from-rudderstack path",
    ]


def test_a_destination_is_read_from_stdin_given_as_dash(tmp_path: Path) -> None:
    # `--from-rudderstack -` opened a file named "-": 'cannot read -: No such file or directory'.
    # As `rpd send -` reads events, `-` is standard input.
    source = destination(tmp_path).read_bytes()
    result = CliRunner().invoke(
        app,
        ["init", "--from-rudderstack", "-", "-o", "-"],
        env={"PIPEDRIVE_API_TOKEN": TOKEN},
        input=source,
    )
    assert (result.exit_code, result.stdout) == (
        0,
        CONVERTED.replace("in destination.json.", "read from standard input."),
    )


@pytest.mark.parametrize(
    ("source", "code", "said"),
    [
        (
            b" " * (1 << 20) + b"{}",
            2,
            "error: standard input (-): larger than 1 MiB, so not a RudderStack destination's "
            "export",
        ),
        (b"{not json", 2, "error: standard input (-): not valid JSON: "),
        (
            b"[1, 2]",
            2,
            "error: standard input (-): the RudderStack destination config must be a JSON object",
        ),
        (
            b'{"config": {"userIdToken": "", "customMapping": true}}',
            0,
            "warning: standard input (-): customMapping is not a Pipedrive destination setting; "
            "ignored",
        ),
    ],
    ids=["large", "not-json", "not-an-object", "warning"],
)
def test_a_destination_from_stdin_is_named_standard_input(
    source: bytes, code: int, said: str
) -> None:
    # Its errors and warnings named a file '-' ('error: -: larger than 1 MiB'), where
    # `rpd send -` says 'standard input (-)'.
    result = CliRunner().invoke(app, ["init", "--from-rudderstack", "-", "-o", "-"], input=source)
    assert result.exit_code == code
    assert result.stderr.splitlines()[0].startswith(said)


def test_a_destination_from_a_closed_standard_input_is_a_usage_error(tmp_path: Path) -> None:
    # `rpd init --from-rudderstack - <&-` was 'internal error: AttributeError (a bug in rpd)'.
    command = [sys.executable, "-m", "rudder_pipedrive_cli", "init", "--from-rudderstack", "-"]
    run = subprocess.run(
        [*command, "-o", str(tmp_path / "rpd.toml")],
        capture_output=True,
        preexec_fn=lambda: os.close(0),
        timeout=60,
        check=False,
    )
    assert (run.returncode, run.stderr.decode().splitlines()) == (
        2,
        [
            "error: cannot read standard input (-): it is closed",
            "hint: pipe the destination's JSON in, or give its file (nothing was written)",
        ],
    )
    assert not (tmp_path / "rpd.toml").exists()


def test_a_destination_read_from_a_terminal_says_how_to_end_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--from-rudderstack -` at a terminal waited without a word, as `rpd send -` did.
    monkeypatch.setattr(init_cmd, "stdin_is_interactive", lambda: True)
    source = destination(tmp_path).read_bytes()
    result = CliRunner().invoke(app, ["init", "--from-rudderstack", "-", "-o", "-"], input=source)
    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        0,
        "reading the destination's JSON from standard input (-): paste or type it, then press "
        "Ctrl-D on a new line to end (Ctrl-C cancels)",
    )


def test_missing_destination_file(tmp_path: Path) -> None:
    code, _, err = invoke("init", "--from-rudderstack", str(tmp_path / "nope.json"))
    assert code == 2
    assert err.splitlines()[
        0
    ] == f"error: cannot read {tmp_path / 'nope.json'}: No such file or " + ("directory")


# --- the pure conversion -----------------------------------------------------------------------


def test_convert_accepts_a_bare_config_and_both_wrappers() -> None:
    config = {
        "apiToken": SECRET,
        "userIdToken": f" {USER_FIELD} ",
        "enableUserCreation": True,
        "organizationMap": [{"from": "industry", "to": "Industry"}, {"from": "", "to": ""}],
    }
    expected = Converted(
        user_id_field=USER_FIELD,
        create_persons=True,
        fields={"persons": {}, "organizations": {"industry": "Industry"}, "leads": {}},
    )
    assert convert(config) == expected
    assert convert({"config": config, "id": "d-1"}) == expected
    assert convert({"Config": config}) == expected
    assert SECRET not in repr(convert(config))


def test_convert_reads_flags_and_nested_paths() -> None:
    converted = convert(
        {"userIdToken": USER_FIELD, "enableUserCreation": False, "leadsMap": [
            {"from": "utm.campaign", "to": CAMPAIGN}
        ]}
    )  # fmt: skip
    assert converted.create_persons is False
    assert converted.fields["leads"] == {"utm.campaign": CAMPAIGN}
    assert converted.warnings == ("leadsMap[0]: rpd reads 'utm.campaign' as a nested trait path",)


@pytest.mark.parametrize("value", ["yes", "true", "false", 1])
def test_enable_user_creation_that_is_no_boolean_is_warned_about_and_left_false(value: Any) -> None:
    # RudderStack's dashboard stores the checkbox as a JSON boolean: "yes" was read as true
    # without a word (and "false" as false), guessing at a value RudderStack never writes.
    converted = convert({"userIdToken": USER_FIELD, "enableUserCreation": value})
    assert (converted.create_persons, converted.warnings) == (
        False,
        (
            f"enableUserCreation is {value!r}, not true or false (a checkbox in RudderStack): "
            "create_persons left false; set it to true in the file if rpd is to create persons",
        ),
    )
    for unset in (None, ""):  # no checkbox value at all: false, as RudderStack's default
        assert convert({"userIdToken": USER_FIELD, "enableUserCreation": unset}).warnings == ()


def test_convert_refuses_what_is_not_an_object() -> None:
    with pytest.raises(UsageError, match="must be a JSON object"):
        convert(["userIdToken"])


# --- from the account --------------------------------------------------------------------------


def test_init_from_the_account_keeps_configured_identity(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    account = start_account(make_sandbox)
    config = write_config(tmp_path / "current.toml", account.url)
    code, out, err = invoke("init", "--config", config, "-o", "-")
    assert code == 0
    assert err.splitlines() == [
        "The API token is not in the file. Set it in the environment:",
        "  export PIPEDRIVE_API_TOKEN=<your Pipedrive API token>",
    ]
    # The comments line up after the longest line, which holds the sandbox's port: squeeze them.
    assert [re.sub(r"\s+#", "  #", line) for line in out.splitlines()[:13]] == [
        "# rpd config listed from the account's fields (`rpd map-fields`).",
        "# Trait names are made from the field names: rename them to your events' traits.",
        "",
        "[pipedrive]",
        "# api_token: not written here; set $PIPEDRIVE_API_TOKEN in the environment instead",
        'plan = "unlimited"  # lite | growth | premium | ultimate | unlimited',
        f'base_url = "{account.url}"',
        "",
        "[identity]",
        f'user_id_field = "{USER_FIELD}"  # "RudderStack userId" (varchar)',
        f'group_id_field = "{GROUP_FIELD}"  # "RudderStack groupId" (varchar)',
        "create_persons = false  # Enable User Creation",
        'default_currency = ""  # for a lead\'s value without a currency',
    ]
    assert tomllib.loads(out)["fields"]["organizations"] == {
        "industry": INDUSTRY,
        "employees": EMPLOYEES,
    }
    assert TOKEN not in out + err


def test_init_from_the_account_warns_of_a_kept_identity_field_it_lacks(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # Before: group_id_field = "nope" was written back without a word, commented as the
    # "organization field holding the groupId", though the account has none (map-fields warns).
    account = start_account(make_sandbox)
    identity = f'user_id_field = "{USER_FIELD}"\ngroup_id_field = "nope"\n'
    config = write_config(tmp_path / "current.toml", account.url, identity=identity)
    code, out, err = invoke("init", "--config", config, "-o", "-")
    assert code == 0
    assert 'group_id_field = "nope"' in out
    assert err.splitlines() == [
        "warning: identity.group_id_field = 'nope': the account has no such organization field",
        "hint: create an organization custom field for it, or pick one from `rpd map-fields "
        "--entity organizations`",
        "The API token is not in the file. Set it in the environment:",
        "  export PIPEDRIVE_API_TOKEN=<your Pipedrive API token>",
    ]


@pytest.mark.parametrize("refused", ["person", "LEAD_LABELS"])
def test_a_listing_pipedrive_refuses_writes_no_config(
    make_sandbox: MakeSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    """Unlike send, map-fields and check, init does not go on without a listing: the config it
    writes from part of the account would say the account has no such fields ("the account has
    no person custom fields") and guess no identity field. One error, exit 4 (a 503, its retries
    spent: a rerun later may list it; it was 1, no code of SPEC 6's), no file."""
    account = start_account(make_sandbox)
    refuse_listing(monkeypatch, refused)
    config = write_config(tmp_path / "current.toml", account.url)
    code, out, err = invoke("init", "--config", config, "-o", str(tmp_path / "new.toml"))
    endpoint = {"person": "/api/v2/personFields", "LEAD_LABELS": "/v1/leadLabels"}[refused]
    assert (code, out) == (4, "")
    assert err.splitlines() == [
        f"error: GET {endpoint}: HTTP 503 after 3 attempts",
        "hint: try again later",
    ]
    assert not (tmp_path / "new.toml").exists()


def test_init_with_sandbox_guesses_identity_fields_and_passes_check(tmp_path: Path) -> None:
    code, _, _ = invoke("init", "--sandbox")
    assert code == 0
    written = (tmp_path / "rpd.toml").read_text()
    assert f'user_id_field = "{USER_FIELD}"   # "RudderStack userId" (varchar), guessed ' in written
    assert "base_url" not in written  # the sandbox's port changes every run
    code, out, _ = invoke("check", "--sandbox", "--config", str(tmp_path / "rpd.toml"))
    assert code == 0, out
    assert out.splitlines()[-1] == "all 10 checks passed"


def test_trait_paths_and_odd_characters_survive_the_toml(tmp_path: Path) -> None:
    source = destination(
        tmp_path,
        leadsMap=[{"from": "utm.campaign", "to": CAMPAIGN}, {"from": 'say "hi"\\', "to": "Tag"}],
    )
    code, out, _ = invoke("init", "--from-rudderstack", str(source), "-o", "-")
    assert code == 0
    assert out.split("[fields.leads]  # leads use deal fields\n")[1] == (
        f'"utm.campaign" = "{CAMPAIGN}"\n"say \\"hi\\"\\\\" = "Tag"\n'
    )
    assert tomllib.loads(out)["fields"]["leads"] == {"utm.campaign": CAMPAIGN, 'say "hi"\\': "Tag"}


@pytest.mark.parametrize("force", [("--force",), ()], ids=["force", "no force"])
@pytest.mark.parametrize("where", ["no-such-folder/rpd.toml", "."])
def test_an_output_init_cannot_write_is_a_usage_error(where: str, force: tuple[str, ...]) -> None:
    # Before, a folder without --force was "error: . already exists" / "hint: use --force to
    # overwrite it", a hint that --force then refused ("Is a directory").
    code, out, err = invoke("init", "--from-rudderstack", str(EXAMPLE), "-o", where, *force)
    reason = "No such file or directory" if "/" in where else "Is a directory"
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: cannot write {where}: {reason}",
        "hint: give -o a file in an existing, writable folder (or '-' for stdout)",
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_said_with_what_to_do(tmp_path: Path) -> None:
    # Before: "hint: give -o a file in an existing, writable folder (or '-' for stdout)", as
    # if the folder were wrong (SPEC 6: a full disk, what to do is said).
    os.symlink("/dev/full", tmp_path / "full.toml")
    code, out, err = invoke(
        "init", "--from-rudderstack", str(EXAMPLE), "-o", "full.toml", "--force"
    )
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: cannot write full.toml: No space left on device (the disk is full)",
        "hint: free some space (or write the output elsewhere), then run it again",
    ]


@pytest.mark.parametrize(
    ("named", "hint"),
    [
        (
            ("-c", "events.ndjson/rpd.toml"),
            "give --config a file in an existing, writable folder, or -o - for stdout",
        ),
        ((), "set $RPD_CONFIG to a file in an existing, writable folder, or give -o - for stdout"),
    ],
)
def test_a_config_init_cannot_write_is_hinted_with_the_option_that_named_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: tuple[str, ...], hint: str
) -> None:
    # Newcomer: `rpd init -c events.ndjson/r.toml` was hinted "give -o a file", an option not
    # given, as if -c had not been.
    (tmp_path / "events.ndjson").write_text("{}\n")
    if not named:
        monkeypatch.setenv("RPD_CONFIG", "events.ndjson/rpd.toml")
    code, out, err = invoke("init", "--from-rudderstack", str(EXAMPLE), *named)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: cannot write events.ndjson/rpd.toml: Not a directory",
        f"hint: {hint}",
    ]


def test_a_destination_that_is_no_object_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "destination.json"
    path.write_text("[1, 2]")
    code, out, err = invoke("init", "--from-rudderstack", str(path), "-o", "-")
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == (
        f"error: {path}: the RudderStack destination config must be a JSON object"
    )


def test_an_identity_setting_that_is_no_string_is_warned_about() -> None:
    converted = convert({"userIdToken": "k", "groupIdToken": 5})
    assert converted.group_id_field == ""
    assert "groupIdToken is not a field key (a string): left empty" in converted.warnings


def test_a_map_that_is_no_list_of_rows_is_warned_about_and_ignored() -> None:
    converted = convert(
        {"userIdToken": "k", "personsMap": {"from": "role", "to": "x"}, "leadsMap": ["plan", ""]}
    )
    assert converted.fields == {"persons": {}, "organizations": {}, "leads": {}}
    assert converted.warnings == (
        "personsMap is not a list of {from, to} rows; ignored",
        "leadsMap[0] is not a {from, to} row; ignored",
        "leadsMap[1] is not a {from, to} row; ignored",
    )


ALLOWED = [{"eventName": "Demo Requested"}, {"eventName": " Signed Up "}, {"eventName": ""}]
DENIED = [{"eventName": "Page Viewed"}, {"eventName": "Button Clicked"}]
FILTERING = {
    "whitelistedEvents": (
        "[[track]]  # whitelistedEvents: these track events become leads\n"
        'events = ["Demo Requested", "Signed Up"]\n'
        'create = "lead"\n'
        "\n"
        "[[track]]  # every other track event: RudderStack would not send it\n"
        'events = ["*"]\n'
        'create = "skip"\n',
        # The examples' tracks: only the two allowed names make leads; the rest are skipped.
        {
            "msg-0007": ("planned", "track #1 (lead)"),  # Demo Requested
            "msg-0020": ("planned", "track #1 (lead)"),  # Signed Up
            "msg-0005": ("skipped", "track #2 (skip)"),  # Trial Started
            "msg-0022": ("skipped", "track #2 (skip)"),  # Page Viewed
        },
    ),
    "blacklistedEvents": (
        "[[track]]  # blacklistedEvents: RudderStack would not send these\n"
        'events = ["Page Viewed", "Button Clicked"]\n'
        'create = "skip"\n',
        {
            "msg-0022": ("skipped", "track #1 (skip)"),  # Page Viewed
            "msg-0023": ("skipped", "track #1 (skip)"),  # Button Clicked
            "msg-0005": ("planned", "no rule (lead)"),  # Trial Started
            "msg-0007": ("planned", "no rule (lead)"),  # Demo Requested
        },
    ),
}


@pytest.mark.parametrize("option", FILTERING)
def test_event_filtering_becomes_track_rules(tmp_path: Path, option: str) -> None:
    source = destination(
        tmp_path,
        eventFilteringOption=option,
        whitelistedEvents=ALLOWED,
        blacklistedEvents=DENIED,
    )
    code, out, err = invoke("init", "--from-rudderstack", str(source), "-o", "-")
    assert (code, err.splitlines()) == (0, HINT)
    rules, outcomes = FILTERING[option]
    assert out == CONVERTED + "\n" + rules
    (tmp_path / "rpd.toml").write_text(out)
    records = planned(tmp_path / "rpd.toml")
    seen = {r["id"]: (r["outcome"], r["rule"]) for r in records if r["id"] in outcomes}
    assert seen == outcomes
    assert {r["reason"] for r in records if r["id"] in outcomes} <= {"", "track rule: skip"}


STARRED = ("Trial*", "*", "Trial Started", "Other")  # two names RudderStack lists, two it does not


@pytest.mark.parametrize(
    ("option", "listed", "other"),
    [
        ("whitelistedEvents", ("planned", "track #1 (lead)"), ("skipped", "track #2 (skip)")),
        ("blacklistedEvents", ("skipped", "track #1 (skip)"), ("planned", "no rule (lead)")),
    ],
)
def test_listed_names_ending_in_a_star_stay_exact_names(
    tmp_path: Path, option: str, listed: tuple[str, str], other: tuple[str, str]
) -> None:
    """RudderStack's lists name events exactly, a `*` too: "Trial*" is the event of that name
    only, "*" the event named "*" (they were written as rpd's prefix and any-event patterns: an
    allowlist of "Trial*" made a lead of every trial event, one of "*" of every event)."""
    names = [{"eventName": name} for name in STARRED[:2]]
    source = destination(tmp_path, eventFilteringOption=option, **{option: names})
    code, out, err = invoke("init", "--from-rudderstack", str(source), "-o", "-")
    assert (code, err.splitlines()) == (0, HINT)
    assert 'events = ["Trial\\\\*", "\\\\*"]\n' in out
    (tmp_path / "rpd.toml").write_text(out)
    tracks = tmp_path / "tracks.ndjson"
    tracks.write_text(
        "".join(
            json.dumps(
                {"type": "track", "messageId": f"t-{n}", "userId": f"u-{n}", "event": name}
                | {"context": {"traits": {"name": "Ann"}}}
            )
            + "\n"
            for n, name in enumerate(STARRED)
        )
    )
    code, out, err = invoke(
        "dry-run", str(tracks), "--config", str(tmp_path / "rpd.toml"), "-f", "ndjson"
    )
    assert code == 0, err
    seen = [(r["outcome"], r["rule"]) for r in map(json.loads, out.splitlines())]
    assert seen == [listed, listed, other, other]


@pytest.mark.parametrize(
    ("changes", "rules", "warning"),
    [
        ({"eventFilteringOption": "disable", "whitelistedEvents": ALLOWED}, (), None),
        (
            {"eventFilteringOption": "whitelistedEvents", "whitelistedEvents": [{"eventName": ""}]},
            ((("*",), "skip"),),
            "whitelistedEvents is empty: RudderStack sends no track event; every track event "
            "is skipped",
        ),
        (
            {"eventFilteringOption": "blacklistedEvents", "blacklistedEvents": "Page Viewed"},
            (),
            "blacklistedEvents is not a list of {eventName} rows; ignored",
        ),
        (
            {"eventFilteringOption": "allowlist"},
            (),
            "eventFilteringOption 'allowlist' is not one of disable, whitelistedEvents, "
            "blacklistedEvents; no event filtering converted",
        ),
    ],
)
def test_event_filtering_edge_cases(
    changes: dict[str, Any], rules: tuple[Any, ...], warning: str | None
) -> None:
    document = json.loads(EXAMPLE.read_text())
    document["config"].update(changes)
    converted = convert(document)
    assert converted.track == rules
    assert list(converted.warnings) == ([warning] if warning else [])


@pytest.mark.parametrize("how", ["--config", "$RPD_CONFIG"])
def test_init_writes_the_config_the_other_commands_will_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # `rpd init -c new.toml` (and $RPD_CONFIG naming a new file) was "cannot read config
    # new.toml": init read the config it is there to write; with --from-rudderstack it wrote
    # ./rpd.toml instead, which the other commands then did not read.
    named = tmp_path / "conf" / "new.toml"
    named.parent.mkdir()
    args = ["--config", str(named)] if how == "--config" else []
    if how == "$RPD_CONFIG":
        monkeypatch.setenv("RPD_CONFIG", str(named))

    code, _, err = invoke("init", "--sandbox", *args)
    assert (code, err.splitlines()[1]) == (0, f"wrote {named}")
    assert f'user_id_field = "{USER_FIELD}"' in named.read_text()
    assert not (tmp_path / "rpd.toml").exists()
    code, out, _ = invoke("check", "--sandbox", *args)
    assert (code, out.splitlines()[0]) == (0, f"ok    config: {named} is valid")

    named.unlink()
    code, out, err = invoke("init", "--from-rudderstack", str(destination(tmp_path)), *args)
    assert (code, out, err.splitlines()) == (0, "", [f"wrote {named}", *HINT])
    assert named.read_text() == CONVERTED
    code, _, err = invoke("init", "--sandbox", *args)
    assert (code, err) == (2, f"error: {named} already exists\nhint: use --force to overwrite it\n")


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        (
            "[pipedrive\nplan = growth\n",
            ": invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 11)",
        ),
        ('[identity]\nuser_id_feld = "x"\n', ":2: unknown key identity.user_id_feld"),
    ],
)
def test_init_force_overwrites_a_config_it_cannot_read(
    tmp_path: Path, broken: str, reason: str
) -> None:
    # `rpd init --force` over an invalid rpd.toml failed reading it: the file it is to replace.
    named = tmp_path / "rpd.toml"
    named.write_text(broken)
    code, _, err = invoke("init", "--sandbox", "-c", str(named))
    assert (code, err) == (2, f"error: {named} already exists\nhint: use --force to overwrite it\n")
    assert named.read_text() == broken

    code, out, err = invoke("init", "--sandbox", "-c", str(named), "--force")
    assert (code, out) == (0, "")
    assert err.splitlines()[1:] == [
        f"warning: {named}{reason}: not read, as --force overwrites it",
        f"wrote {named}",
        "The API token is not in the file. Set it in the environment:",
        "  export PIPEDRIVE_API_TOKEN=<your Pipedrive API token>",
    ]
    fresh = tmp_path / "fresh.toml"
    assert invoke("init", "--sandbox", "-c", str(fresh), "-q")[0] == 0
    assert named.read_text() == fresh.read_text()

    # Not the file written (-o elsewhere): the config read stays an error.
    named.write_text(broken)
    code, _, err = invoke("init", "--sandbox", "-c", str(named), "-o", str(fresh), "--force")
    assert (code, err.splitlines()[0]) == (2, f"error: {named}{reason}")


@pytest.mark.usefixtures("on_a_terminal")
def test_a_conversion_warning_wrapped_on_a_terminal_goes_on_indented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 80 columns its second half went on in column 1, as if it were a warning of its own.
    destination(tmp_path, personsMap=[{"from": "role", "to": ROLE}, {"from": "role", "to": PLAN}])
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("init", "--from-rudderstack", "destination.json", "-o", "-")
    assert (code, err.splitlines()[:2]) == (
        0,
        [
            "warning: destination.json: personsMap[1]: 'role' is mapped again; the last row",
            "  wins, as in RudderStack",
        ],
    )


@pytest.mark.usefixtures("on_a_terminal")
def test_the_closing_lines_wrapped_on_a_terminal_go_on_indented_and_the_export_stays_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 80 columns `wrote PATH` went on in column 1, as if its end were a line of its own; the
    # export line, a command to copy, is printed whole at any width (wrapped, a copy of it
    # would be two commands).
    destination(tmp_path)
    monkeypatch.chdir(tmp_path)
    folder = "configs for the weekly replay of the marketing team's RudderStack events"
    (tmp_path / folder).mkdir()
    code, _, err = invoke(
        "init", "--from-rudderstack", "destination.json", "-o", f"{folder}/rpd.toml"
    )
    assert (code, err.splitlines()) == (
        0,
        [
            "wrote configs for the weekly replay of the marketing team's RudderStack",
            "  events/rpd.toml",
            *HINT,
        ],
    )

    # A narrower terminal: the export line still whole, wider than the terminal.
    def narrow() -> tuple[common.PipeConsole, common.PipeConsole]:
        options: dict[str, Any] = {"force_terminal": True, "width": 50, "color_system": None}
        return common.PipeConsole(**options), common.PipeConsole(stderr=True, **options)

    monkeypatch.setattr(init_cmd, "make_consoles", narrow)
    code, _, err = invoke("init", "--from-rudderstack", "destination.json", "-o", "-")
    assert (code, err.splitlines()) == (
        0,
        [
            "The API token is not in the file. Set it in the",
            "  environment:",
            "  export PIPEDRIVE_API_TOKEN=<the token from your RudderStack destination>",
        ],
    )
