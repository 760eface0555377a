"""SPEC 3: precedence, unknown keys with hints, the https-unless-loopback rule, token hygiene."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.common import command_env
from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.errors import ConfigError, UsageError
from rudder_pipedrive_cli.io.config import (
    KEYS,
    REDACTED,
    Secret,
    load_settings,
    require_token,
    resolve_base_url,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def write(tmp_path: Path, text: str, name: str = "rpd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_example_config_loads_with_every_key() -> None:
    settings = load_settings(str(EXAMPLE), env={})
    assert settings.user_id_field == "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
    assert settings.group_id_field == "872513dc3f908b99275edf2d09fcc9a467df9fa5"
    assert settings.create_persons is True
    assert settings.plan == "growth"
    assert settings.person_fields["role"] == "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
    assert settings.api_url == "https://api.pipedrive.com"


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[pipedrive]\nplan = "lite"\n[identity]\ndefault_currency = "EUR"\n')
    assert load_settings(str(path), env={}).plan == "lite"
    assert load_settings(str(path), env={"RPD_PLAN": "premium"}).plan == "premium"
    flagged = load_settings(
        str(path), env={"RPD_PLAN": "premium"}, overrides={"pipedrive.plan": "ultimate"}
    )
    assert flagged.plan == "ultimate"
    assert load_settings(str(path), env={}).create_persons is False  # default
    assert load_settings(str(path), env={"RPD_CREATE_PERSONS": "true"}).create_persons is True


def test_config_path_from_env_and_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[pipedrive]\nplan = "premium"\n', name="other.toml")
    assert load_settings(None, env={"RPD_CONFIG": str(path)}).plan == "premium"
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, env={}).path is None  # no ./rpd.toml: defaults
    write(tmp_path, '[pipedrive]\nplan = "lite"\n')
    assert load_settings(None, env={}).plan == "lite"


def test_named_config_must_exist(tmp_path: Path) -> None:
    # Newcomer: `rpd check -c rpd.toml` before `rpd init` was told only to check --config.
    missing = tmp_path / "my config.toml"
    result = CliRunner().invoke(app, ["check", "--config", str(missing)])
    assert (result.exit_code, result.output) == (
        2,
        f"error: cannot read config {missing}: No such file or directory\n"
        f"hint: check --config / $RPD_CONFIG, or write it: `rpd init --config '{missing}'`\n",
    )


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ('[pipedrive]\nplna = "x"\n', "unknown key pipedrive.plna", "did you mean 'plan'?"),
        (
            "[identity]\nuser_id_feild = 'k'\n",
            "unknown key identity.user_id_feild",
            "did you mean 'user_id_field'?",
        ),
        ("[pipedrve]\n", "unknown section [pipedrve]", "did you mean 'pipedrive'?"),
        ('plan = "growth"\n', "plan is outside any section", "put it under [pipedrive]"),
        (
            "[fields.person]\nrole = 'k'\n",
            "unknown section [fields.person]",
            "did you mean 'persons'?",
        ),
        (
            "[identity]\ncreate_persons = 3\n",
            "identity.create_persons must be true or false, got 3",
            "e.g. create_persons = true",
        ),
        (
            "[pipedrive]\nplan = 5\n",
            "pipedrive.plan must be a string (in quotes), got 5",
            "use one of: lite, growth, premium, ultimate, unlimited",
        ),
        (
            "[identity]\nuser_id_field = 5\n",
            "identity.user_id_field must be a string (in quotes), got 5",
            'e.g. user_id_field = "VALUE"',
        ),
        ('[pipedrive]\nplan = "gold"\n', "unknown plan 'gold'", "lite, growth"),
        (
            "[fields.persons]\nrole = 5\n",
            "fields.persons.role must be a Pipedrive field key (a string), got 5",
            "rpd map-fields",
        ),
        ("[pipedrive\n", "invalid TOML", "a table's name is closed by ]"),
    ],
)
def test_bad_config_names_file_key_and_hint(
    tmp_path: Path, text: str, message: str, hint: str
) -> None:
    error = config_error(tmp_path, text)
    assert message in error.message
    assert hint in error.hint
    if "unknown" in message or "must be" in message or "TOML" in message:
        assert str(tmp_path / "rpd.toml") in error.message


def config_error(tmp_path: Path, text: str) -> ConfigError:
    """The error reading `text` as rpd.toml in `tmp_path` (no setting from the environment)."""
    with pytest.raises(ConfigError) as caught:
        load_settings(str(write(tmp_path, text)), env={})
    return caught.value


KINDS = "create = one of 'lead', 'deal', 'activity', 'note', 'skip'"
RULES = """[pipedrive]
plan = "growth"

[[track]]
events = ["Demo Requested"]
create = "deal"

[[track]]   # trials
events = ["Trial *"]
create = "activty"
"""


# A newcomer's slips in a config of some length (what `rpd init` writes is 30 lines): the error
# named the file and the key but not the line, so an editor had to search for it. Each now says
# FILE:LINE, as rpd's event sources and compilers do (editors and terminals jump to it).
@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            '[pipedrive]\nplan = "growth"\n\n[identity]\nuser_id_feild = "k"\n',
            "FILE:5: unknown key identity.user_id_feild",
            "did you mean 'user_id_field'?",
        ),
        (
            '[pipedrive]\nplan = "growth"\n\n[ identiy ]  # who is who\nuser_id_field = "k"\n',
            "FILE:4: unknown section [identiy]",
            "did you mean 'identity'?",
        ),
        (
            '# rpd\n\nplan = "growth"\n[pipedrive]\n',
            "FILE:3: plan is outside any section",
            "put it under [pipedrive]",
        ),
        (
            '[fields.deal]\nplan = "k"\n',
            "FILE:1: unknown section [fields.deal]",
            "did you mean 'deals'?",
        ),
        (
            '[fields]\non_invalid = "drop"\nperson.role = "k"\n',
            "FILE:3: unknown section [fields.person]",
            "did you mean 'persons'?",
        ),
        (
            '[identity]\n# create_persons = "yes"\ncreate_persons = "yes"\n',
            "FILE:3: identity.create_persons must be true or false, got 'yes'",
            "write create_persons = true, without quotes",
        ),
        (
            '[pipedrive]\nbase_url = "https://x"\nplan = "grwoth"\n',
            "FILE:3: unknown plan 'grwoth'",
            'did you mean plan = "growth"? use one of: lite, growth, premium, ultimate, unlimited',
        ),
        (  # a header within a multi-line string is text, not a table
            '[pipedrive]\nbase_url = """\n[identity]\n"""\nplna = "x"\n',
            "FILE:5: unknown key pipedrive.plna",
            "did you mean 'plan'?",
        ),
        (  # an escaped quote before three closes no multi-line string: line 3 is its text
            '[identity]\nuser_id_field = """a\\"""\nuser_id_feld = 1\n"""\nuser_id_feld = "a"\n',
            "FILE:5: unknown key identity.user_id_feld",
            "did you mean 'user_id_field'?",
        ),
        (
            '[fields.persons]\nrole = "k"\n"job title" = 5\n',
            "FILE:3: fields.persons.job title must be a Pipedrive field key (a string), got 5",
            "run `rpd map-fields --format toml` to list the keys",
        ),
        # A key of no section at the top (the [pipedrive] line left out, or a typo there) is a
        # key, not a section: it was "unknown section [api_tokn]", hint "valid keys: fields,
        # identity, pipedrive, track".
        (
            'api_tokn = "x"\n[pipedrive]\n',
            "FILE:1: unknown key api_tokn, outside any section",
            "did you mean 'api_token'? it goes under [pipedrive]",
        ),
        (
            '# rpd\ncolour = "red"\n',
            "FILE:2: unknown key colour, outside any section",
            "keys go under a section: [fields], [identity], [pipedrive]",
        ),
        # Newcomer: 'rpd.toml: track #2: create is ...' left the second [[track]] to be counted:
        # a rule's error names the line of its [[track]].
        (
            RULES,
            "FILE:8: track #2: create is 'activty'",
            f"did you mean create = 'activity'? {KINDS}",
        ),
        (
            RULES.replace('create = "deal"', 'create = "deal"\nstgae = "Demo"'),
            "FILE:4: track #1: unknown key 'stgae'",
            "did you mean 'stage'?",
        ),
        (  # a rule's table within a multi-line string is text, not a rule
            '[[track]]\nevents = ["a"]\ncreate = "note"\ncontent = """\n[[track]]\n"""\n'
            '[[track]]\nevents = ["b"]\ncreate = "nope"\n',
            "FILE:7: track #2: create is 'nope'",
            f"did you mean create = 'note'? {KINDS}",
        ),
        (
            '[[track]]\nevents = ["x"]\ncreate = "deal"\nfields = { plan = 5 }\n',
            "FILE:1: track #1.fields.plan must be a Pipedrive field key (a string), got 5",
            "run `rpd map-fields --format toml` to list the keys",
        ),
        (
            '[[track]]\nevents = ["x"]\ncreate = "note"\ncontent = "{propertes.x}"\n',
            "FILE:1: track #1: content: {propertes.x} in template '{propertes.x}' refers to "
            "nothing an event holds",
            "did you mean {properties.x}? use {event}, {userId}, {properties.PATH}, "
            "{context.traits.PATH} or {traits.PATH}",
        ),
        (
            '[[track]]\nevent = ["x"]\ncreate = "skip"\n',
            "FILE:1: track #1: unknown key 'event'",
            "did you mean 'events'?",
        ),
        (  # rules written inline: no header to name
            'track = [{events = ["a"], create = "nope"}]\n',
            "FILE: track #1: create is 'nope'",
            f"did you mean create = 'note'? {KINDS}",
        ),
    ],
)
def test_a_config_error_names_the_line_of_its_key(
    tmp_path: Path, text: str, message: str, hint: str
) -> None:
    error = config_error(tmp_path, text)
    assert (error.message, error.hint) == (
        message.replace("FILE", str(tmp_path / "rpd.toml")),
        hint,
    )


def test_check_names_the_line_of_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[pipedrive]\nplan = "growth"\n\n[identity]\nuser_id_feild = "k"\n')
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert (result.exit_code, result.output) == (
        2,
        f"error: {path}:5: unknown key identity.user_id_feild\n"
        "hint: did you mean 'user_id_field'?\n",
    )


@pytest.mark.parametrize(
    ("base_url", "domain", "expected"),
    [
        ("", "", "https://api.pipedrive.com"),
        ("", "acme", "https://acme.pipedrive.com"),
        ("https://proxy.example/", "", "https://proxy.example"),
        ("http://127.0.0.1:8787", "", "http://127.0.0.1:8787"),
        ("http://localhost:9", "", "http://localhost:9"),
        ("http://[::1]:9", "", "http://[::1]:9"),
    ],
)
def test_base_url_rules(base_url: str, domain: str, expected: str) -> None:
    assert resolve_base_url(base_url, domain) == expected


@pytest.mark.parametrize("url", ["http://api.pipedrive.com", "http://10.0.0.5:80", "ftp://x"])
def test_cleartext_or_odd_base_url_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        resolve_base_url(url, "")


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2-SECRET@api.pipedrive.com",
        "https://hunter2-SECRET@api.pipedrive.com",
        "https://api.pipedrive.com/?api_token=hunter2-SECRET",
        "https://api.pipedrive.com/#hunter2-SECRET",
        "ftp://user:hunter2-SECRET@example.com",
    ],
)
def test_base_url_with_a_secret_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_base_url(url, "")
    text = f"{caught.value.message} {caught.value.hint}"
    assert "hunter2-SECRET" not in text
    assert "base_url" in caught.value.message


@pytest.mark.parametrize(
    "domain", ["acme.evil.example", "acme/x", "user@acme", "-acme", "acme\n", "ac me", "a" * 64]
)
def test_company_domain_must_be_one_label(domain: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_base_url("", domain)
    assert caught.value.message.startswith("company_domain ")
    assert "pipedrive.com" in caught.value.hint


def test_company_domain_allows_hyphens_and_digits() -> None:
    assert resolve_base_url("", "acme-2") == "https://acme-2.pipedrive.com"


def test_token_from_env_is_masked_everywhere() -> None:
    token = "tok-DISTINCTIVE-4242"
    settings = load_settings(None, env={"PIPEDRIVE_API_TOKEN": token})
    assert require_token(settings) == token
    assert token not in repr(settings)
    assert token not in str(settings.api_token)
    assert token not in f"{settings}"
    assert Secret(token) == Secret(token)


def test_missing_token_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no Pipedrive API token"):
        require_token(load_settings(None, env={}))


def test_token_in_world_readable_config_warns(tmp_path: Path) -> None:
    path = write(tmp_path, '[pipedrive]\napi_token = "tok-xyz"\n')
    assert load_settings(str(path), env={}).warnings == ()
    os.chmod(path, 0o644)
    (warning,) = load_settings(str(path), env={}).warnings
    assert "readable by other users" in warning and "chmod 600" in warning
    assert "tok-xyz" not in warning


@pytest.mark.parametrize(
    ("value", "got"),
    [
        ('["tok-4b1d-SECRET"]', "an array"),
        ("424242424242", "an integer"),
        ("{ t = 'tok-4b1d-SECRET' }", "a table"),
    ],
)
def test_a_token_of_the_wrong_type_is_not_repeated(tmp_path: Path, value: str, got: str) -> None:
    path = write(tmp_path, f"[pipedrive]\napi_token = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    text = f"{caught.value.message} {caught.value.hint}"
    assert caught.value.message.endswith(
        f"pipedrive.api_token must be a string (in quotes), got {got}"
    )
    assert "4b1d" not in text
    assert "424242424242" not in text


def test_unquoted_dotted_traits_map_like_quoted_ones(tmp_path: Path) -> None:
    quoted = write(tmp_path, '[fields.persons]\n"address.city" = "k1"\nrole = "k2"\n')
    expected = load_settings(str(quoted), env={}).person_fields
    path = tmp_path / "dotted.toml"
    path.write_text('[fields.persons]\naddress.city = "k1"\nrole = "k2"\n')
    assert (
        load_settings(str(path), env={}).person_fields
        == expected
        == {
            "address.city": "k1",
            "role": "k2",
        }
    )
    path.write_text("[fields.persons]\naddress.geo.lat = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert caught.value.message == (
        f"{path}:2: fields.persons.address.geo.lat must be a Pipedrive field key (a string), got 5"
    )


@pytest.mark.parametrize(
    ("text", "env", "where"),
    [
        # The file's line, as every other error of the file says (it was the file alone).
        ('[pipedrive]\nplan = "growth"\nbase_url = "http://example.com"\n', {}, "FILE:3"),
        ('[pipedrive]\n\ncompany_domain = "a.b"\n', {}, "FILE:3"),
        ("", {"RPD_BASE_URL": "http://example.com"}, "$RPD_BASE_URL"),
        ("", {"RPD_COMPANY_DOMAIN": "a.b"}, "$RPD_COMPANY_DOMAIN"),
        (
            '[pipedrive]\nbase_url = "https://acme.pipedrive.com"\n',
            {"RPD_BASE_URL": "x"},
            "$RPD_BASE_URL",
        ),
    ],
)
def test_url_errors_name_where_the_value_came_from(
    tmp_path: Path, text: str, env: dict[str, str], where: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env=env)
    assert caught.value.message.partition(": ")[0] == where.replace("FILE", str(path))


def test_where_requests_go_follows_precedence_across_base_url_and_company_domain(
    tmp_path: Path,
) -> None:
    # QA: $RPD_COMPANY_DOMAIN was ignored when the file had a base_url, so requests (and the
    # production token) went to the file's host without a word.
    path = write(tmp_path, '[pipedrive]\nbase_url = "http://127.0.0.1:8787"\n')
    env = {"RPD_COMPANY_DOMAIN": "acme"}
    assert load_settings(str(path), env=env).api_url == "https://acme.pipedrive.com"
    flag = {"pipedrive.base_url": "http://127.0.0.1:9999"}
    assert load_settings(str(path), env=env, overrides=flag).api_url == "http://127.0.0.1:9999"
    both = write(
        tmp_path,
        '[pipedrive]\nbase_url = "http://127.0.0.1:8787"\ncompany_domain = "acme"\n',
        "both.toml",
    )
    assert (
        load_settings(str(both), env={}).api_url == "http://127.0.0.1:8787"
    )  # one place: base_url


def test_a_key_in_another_section_is_pointed_to_its_section(tmp_path: Path) -> None:
    path = write(tmp_path, '[pipedrive]\nuser_id_field = "abc"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert caught.value.message == f"{path}:2: unknown key pipedrive.user_id_field"
    assert caught.value.hint == "user_id_field belongs under [identity]"


def test_on_invalid_is_read_from_fields_with_its_tables(tmp_path: Path) -> None:
    path = write(tmp_path, '[fields]\non_invalid = "drop"\n[fields.persons]\nrole = "k"\n')
    settings = load_settings(str(path), env={})
    assert (settings.on_invalid, settings.person_fields) == ("drop", {"role": "k"})
    assert settings.plan_config().on_invalid == "drop"
    empty = write(tmp_path, "", name="empty.toml")
    assert load_settings(str(empty), env={}).plan_config().on_invalid == "fail"  # the default
    assert load_settings(str(path), env={"RPD_ON_INVALID": "fail"}).on_invalid == "fail"
    assert load_settings(str(EXAMPLE), env={}).on_invalid == "fail"  # the example shows it


@pytest.mark.parametrize(
    ("text", "env", "message", "hint"),
    [
        (
            '[fields]\non_invalids = "drop"\n',
            {},
            "FILE:2: unknown key fields.on_invalids",
            "did you mean 'on_invalid'?",
        ),
        (
            '[identity]\non_invalid = "drop"\n',
            {},
            "FILE:2: unknown key identity.on_invalid",
            "on_invalid belongs under [fields]",
        ),
        ('on_invalid = "drop"\n', {}, "FILE:1: on_invalid is outside any section", "[fields]"),
        ('[fields]\non_invalid = "skip"\n', {}, "FILE:2: unknown on_invalid 'skip'", "fail, drop"),
        ("", {"RPD_ON_INVALID": "ignore"}, "$RPD_ON_INVALID: unknown on_invalid 'ignore'", "drop"),
        (
            '[fields]\nperson = {role = "k"}\n',
            {},
            "FILE:2: unknown section [fields.person]",
            "did you mean 'persons'?",
        ),
        (
            '[fields]\npersons = "k"\n',
            {},
            "FILE:2: [fields.persons] must be a table of trait = field key, got a string",
            "write [fields.persons] on a line of its own (one pair of brackets), then "
            'trait = "field key" lines: `rpd map-fields --format toml` prints them',
        ),
        (  # the file's line, as the errors above (it was the file alone)
            '[identity]\ncreate_persons = true\ndefault_currency = "US Dollars"\n',
            {},
            "FILE:3: default_currency 'US Dollars' is not a 3-letter currency code",
            'e.g. default_currency = "USD"',
        ),
    ],
)
def test_on_invalid_and_currency_errors_name_the_key_and_what_to_do(
    tmp_path: Path, text: str, env: dict[str, str], message: str, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env=env)
    assert caught.value.message == message.replace("FILE", str(path))
    assert hint in caught.value.hint


def test_default_currency_is_upper_cased(tmp_path: Path) -> None:
    path = write(tmp_path, '[identity]\ndefault_currency = " eur "\n')
    assert load_settings(str(path), env={}).plan_config().default_currency == "EUR"


@pytest.mark.parametrize(
    ("content", "message", "hint"),
    [
        # Issue 13 item 13: each of these passed validation, then exited 70 "a bug in rpd".
        (
            b'[pipedrive]\nbase_url = "http://127.0.0.1:87 87"\n',
            "FILE:2: base_url 'http://127.0.0.1:87 87' holds a space, a control or a non-ASCII "
            "character",
            "give the URL without spaces, a non-ASCII host in its xn-- (punycode) form",
        ),
        (
            b'[pipedrive]\nbase_url = "http://127.0.0.1:8787:"\n',
            "FILE:2: base_url 'http://127.0.0.1:8787:' is not a valid URL (its host or port)",
            "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787",
        ),
        (
            b'[pipedrive]\nbase_url = "http://[::1"\n',
            "FILE:2: base_url 'http://[::1' is not a valid URL (its host or port)",
            "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787",
        ),
        # Hypothesis (HYPOTHESIS_PROFILE=explore): urlsplit took these, httpx did not (exit 70).
        (
            b'[pipedrive]\nbase_url = "http://[::1];"\n',
            "FILE:2: base_url 'http://[::1];' is not a valid URL (its host or port)",
            "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787",
        ),
        (
            b'[pipedrive]\nbase_url = "http://1127.0.0.1"\n',
            "FILE:2: base_url 'http://1127.0.0.1' is not a valid URL (its host or port)",
            "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787",
        ),
        (
            b'[pipedrive]\nbase_url = "https://a_b.example"\n',
            "FILE:2: base_url 'https://a_b.example' has no valid host name",
            "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787",
        ),
        (
            b'[pipedrive]\nplan = "gr\xffowth"\n',
            "FILE: line 2 is not UTF-8 text (byte 23 of the file)",
            "save the file as UTF-8",
        ),
        (  # the mark counted: byte 26 of the file, where 23 was said (of the text after it)
            b'\xef\xbb\xbf[pipedrive]\nplan = "gr\xffowth"\n',
            "FILE: line 2 is not UTF-8 text (byte 26 of the file)",
            "save the file as UTF-8",
        ),
        (  # UTF-16 (its mark says so) holding a lone low surrogate
            b"\xff\xfe" + '[pipedrive]\nplan = "gr'.encode("utf-16-le") + b"\x00\xdc",
            "FILE: line 2 is not UTF-16 text (byte 47 of the file)",
            "save the file as UTF-8",
        ),
        (
            '[pipedrive]\napi_token = "t\u00e9-SECRET"\n'.encode(),
            "FILE:2: api_token holds a control or a non-ASCII character",
            "a Pipedrive API token is 40 hex digits: copy it again into $PIPEDRIVE_API_TOKEN",
        ),
        (
            b'[pipedrive]\napi_token = "tok\\u0007-SECRET"\n',
            "FILE:2: api_token holds a control or a non-ASCII character",
            "a Pipedrive API token is 40 hex digits: copy it again into $PIPEDRIVE_API_TOKEN",
        ),
    ],
)
def test_config_errors_that_exited_70_name_the_file_and_key_and_exit_2(
    tmp_path: Path, content: bytes, message: str, hint: str
) -> None:
    path = tmp_path / "rpd.toml"
    path.write_bytes(content)
    path.chmod(0o600)
    result = CliRunner().invoke(
        app, ["check", "--config", str(path)], env={key.env: None for key in KEYS}
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {message.replace('FILE', str(path))}\nhint: {hint}\n"
    assert "SECRET" not in result.stderr


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # QA: Notepad's UTF-8 starts with a BOM; it was "invalid TOML: Invalid statement".
    path = tmp_path / "rpd.toml"
    path.write_bytes(b'\xef\xbb\xbf[pipedrive]\nplan = "premium"\n')
    assert load_settings(str(path), env={}).plan == "premium"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_config_in_utf_16_or_32_with_its_mark_is_read_as_the_same_text(
    tmp_path: Path, encoding: str
) -> None:
    # Newcomer on Windows: `rpd init -o - > rpd.toml` in PowerShell writes UTF-16 with its mark,
    # then every command said "rpd.toml: line 1 is not UTF-8 text" (events so written are read).
    path = tmp_path / "rpd.toml"
    text = '[pipedrive]\nplan = "premium"  # café\n[identity]\ncreate_persons = true\n'
    path.write_bytes(("\ufeff" + text).encode(encoding))
    settings = load_settings(str(path), env={})
    assert (settings.plan, settings.create_persons) == ("premium", True)


@pytest.mark.parametrize("size", [(1 << 20) + 1, None], ids=["large-file", "dev-zero"])
def test_a_config_larger_than_a_mib_is_refused_without_reading_it_whole(
    tmp_path: Path, size: int | None
) -> None:
    # QA: `--config /dev/zero` read until the memory ran out (killed); a config is kilobytes.
    path = Path("/dev/zero")
    if size is not None:
        path = tmp_path / "rpd.toml"
        path.write_bytes(b"#" * size)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert (caught.value.message, caught.value.hint) == (
        f"{path}: larger than 1 MiB, so not an rpd config",
        "check --config / $RPD_CONFIG",
    )


def test_a_malformed_token_from_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={"PIPEDRIVE_API_TOKEN": "tok\u00e9n"})
    assert caught.value.message == (
        "$PIPEDRIVE_API_TOKEN: api_token holds a control or a non-ASCII character"
    )


def test_a_token_read_with_spaces_at_its_ends_is_sent_without_them(tmp_path: Path) -> None:
    # The one rule (header_fault) `rpd sandbox --token` refuses such a token by: the header loses
    # those spaces, so the config strips them, and a sandbox never waits for a token with them.
    token = "tok-DISTINCTIVE-4242"
    settings = load_settings(None, env={"PIPEDRIVE_API_TOKEN": f" {token}\n"})
    assert require_token(settings) == token
    path = write(tmp_path, f'[pipedrive]\napi_token = " {token} "\n')
    assert require_token(load_settings(str(path), env={})) == token


def test_deal_fields_default_to_lead_fields_and_rules_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[fields.leads]\nsource = "k1"\n\n'
        '[[track]]\nevents = ["Demo Requested", "Trial *"]\ncreate = "deal"\n'
        'title = "{event}"\nstage = 2\nfields = { utm.campaign = "Campaign" }\n',
    )
    settings = load_settings(str(path), env={})
    config = settings.plan_config()
    assert config.deal_fields == {"source": "k1"}
    (rule,) = config.track_rules.rules
    assert (rule.events, rule.create, rule.stage, rule.fields) == (
        ("Demo Requested", "Trial *"),
        "deal",
        2,
        {"utm.campaign": "Campaign"},
    )
    assert config.track_rules.match("Trial Started") is rule
    assert config.track_rules.match("Signed Up") is None
    path = write(tmp_path, '[fields.leads]\nsource = "k1"\n\n[fields.deals]\nplan = "k2"\n')
    assert load_settings(str(path), env={}).plan_config().deal_fields == {"plan": "k2"}


NOT_TOML = "not an rpd config: it holds JSON, and rpd's config is TOML"
NOT_TOML_HINT = (
    "check --config / $RPD_CONFIG; `rpd init --from-rudderstack FILE` converts a RudderStack "
    "destination's JSON"
)


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            '[track]\nevents = ["x"]\ncreate = "deal"\n',
            "track must be an array of tables ([[track]])",
            'write each rule as [[track]] with events = [...] and create = "..."',
        ),
        # QA: `plan = growth` is the first slip of someone new to TOML; "fix the syntax" left
        # them to find out what is wrong with it.
        (
            "[pipedrive]\nplan = growth  # the pacing\n",
            "invalid TOML: Invalid value (at line 2, column 8)",
            'text needs quotes: plan = "growth"',
        ),
        (
            "[identity]\nuser_id_field = fee6cb40e6895dcf\n",
            "invalid TOML: Invalid value (at line 2, column 17)",
            'text needs quotes: user_id_field = "fee6cb40e6895dcf"',
        ),
        (
            '[[track]]\ntitle = Demo: "big" one\n',
            "invalid TOML: Invalid value (at line 2, column 9)",
            'text needs quotes: title = "Demo: \\"big\\" one"',
        ),
        (
            "[pipedrive\n",
            "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 11)",
            "a table's name is closed by ]: [pipedrive], or [[track]] for a rule",
        ),
        # Newcomer: the other first slips in TOML were "fix the syntax" too, tomllib's words
        # alone: a string left open, YAML's or JSON's colon, an array left open or without its
        # commas, quotes within quotes, a Windows path's backslashes, a value left out.
        (
            '[pipedrive]\nplan = "growth   # the pacing\n',
            "invalid TOML: Illegal character '\\n' (at line 2, column 30)",
            "a string ends on its line: close it with the quote it opens with",
        ),
        (
            '[pipedrive]\nplan = "growth',
            "invalid TOML: Unterminated string (at end of document)",
            "a string ends on its line: close it with the quote it opens with",
        ),
        (
            "[fields.persons]\nrole: '6098b979cd7506a9c2b183a7814c70e8a6a08a3f'\n",
            "invalid TOML: Expected '=' after a key in a key/value pair (at line 2, column 5)",
            'a key is set with "=", not ":": key = value (a key holding a space or a colon '
            'goes in quotes: "user id" = ...)',
        ),
        (
            '[[track]]\nevents = ["Trial Started" "Trial Ended"]\n',
            "invalid TOML: Unclosed array (at line 2, column 27)",
            'an array is written ["A", "B"]: its values separated by commas, then ]',
        ),
        (
            '[[track]]\nevents = ["Trial Started"\ncreate = "deal"\n',
            "invalid TOML: Unclosed array (at line 3, column 1)",
            'an array is written ["A", "B"]: its values separated by commas, then ]',
        ),
        (
            '[[track]]\ncontent = "a "quoted" word"\n',
            "invalid TOML: Expected newline or end of document after a statement (at line 2, "
            "column 15)",
            'one key = value a line; a " within a string is written \\", or the string quoted '
            "with '...'",
        ),
        (
            '[[track]]\ntitle = "C:\\temp\\{event}"\n',
            "invalid TOML: Unescaped '\\' in a string (at line 2, column 19)",
            'a backslash within "..." starts an escape: write it \\\\, or quote the text with '
            "'...'",
        ),
        (
            "[pipedrive]\nplan =\n",
            "invalid TOML: Invalid value (at line 2, column 7)",
            'a value is text in quotes ("..."), true or false, a number or an array [...]',
        ),
        # Newcomer: `create_persons = True` (Python's spelling) was told to write "True" in
        # quotes, and `role == "x"` to make its value the text `= "x"`.
        (
            "[identity]\ncreate_persons = True\n",
            "invalid TOML: Invalid value (at line 2, column 18)",
            "a boolean is true or false, in lower case: create_persons = true",
        ),
        (
            "[identity]\ncreate_persons = yes\n",
            "invalid TOML: Invalid value (at line 2, column 18)",
            "a boolean is true or false, in lower case: create_persons = true",
        ),
        (
            '[[track]]\nevents = ["Call"]\ncreate = "activity"\ndone = No\n',
            "invalid TOML: Invalid value (at line 4, column 8)",
            "a boolean is true or false, in lower case: done = false",
        ),
        (
            "[identity]\nuser_id_field = yes\n",  # a text key: yes may be its value
            "invalid TOML: Invalid value (at line 2, column 17)",
            'text needs quotes: user_id_field = "yes"',
        ),
        (
            '[identity]\nuser_id_field == "abc"\n',
            "invalid TOML: Invalid value (at line 2, column 16)",
            'one "=" between key and value: user_id_field = "abc"',
        ),
        (
            "[identity]\nuser_id_field = = abc\n",
            "invalid TOML: Invalid value (at line 2, column 17)",
            'one "=" between key and value: user_id_field = "abc"',
        ),
        (
            "[identity]\nrole = =\n",
            "invalid TOML: Invalid value (at line 2, column 8)",
            'a value is text in quotes ("..."), true or false, a number or an array [...]',
        ),
        # Newcomer: the events, or the RudderStack destination's JSON, given as --config were
        # "invalid TOML: Invalid statement (at line 1, column 1)", hint "fix the syntax".
        ('{"type": "identify", "userId": "u-1"}\n', NOT_TOML, NOT_TOML_HINT),
        ('[\n  {"config": {"apiToken": ""}}\n]\n', NOT_TOML, NOT_TOML_HINT),
    ],
)
def test_config_errors_name_the_file_rule_and_key(
    tmp_path: Path, text: str, message: str, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(str(path), env={})
    assert (raised.value.message, raised.value.hint) == (f"{path}: {message}", hint)


def test_a_boolean_from_the_environment_is_shown_as_the_line_to_export(tmp_path: Path) -> None:
    # It was `e.g. create_persons = true`, the config file's line, which no shell takes.
    with pytest.raises(ConfigError) as caught:
        load_settings(str(write(tmp_path, "")), env={"RPD_CREATE_PERSONS": "maybe"})
    assert (caught.value.message, caught.value.hint) == (
        "$RPD_CREATE_PERSONS: identity.create_persons must be true or false, got 'maybe'",
        "e.g. RPD_CREATE_PERSONS=true",
    )


def test_a_python_boolean_in_the_config_is_one_error_with_the_line_to_write(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[identity]\ncreate_persons = True\n")
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert (result.exit_code, result.output) == (
        2,
        f"error: {path}: invalid TOML: Invalid value (at line 2, column 18)\n"
        "hint: a boolean is true or false, in lower case: create_persons = true\n",
    )


@pytest.mark.parametrize(
    ("override", "message", "hint"),
    [
        (("pipedrive.plan", "gold"), "unknown --plan 'gold'", "lite, growth, premium"),
        (("pipedrive.identities", "all"), "unknown --identities 'all'", "auto, search, index"),
    ],
)
def test_a_bad_flag_value_is_named_as_the_flag_typed(
    tmp_path: Path, override: tuple[str, str], message: str, hint: str
) -> None:
    # QA: not "command line: unknown plan 'gold'".
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), overrides=dict([override]), env={})
    assert caught.value.message == message
    assert caught.value.hint.startswith(f"use one of: {hint}")


LEAKED = "4f9d2c1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"  # a token as long as a real one
NOT_A_STRING = "invalid TOML: Expected newline or end of document after a statement"


@pytest.mark.parametrize(
    ("text", "environ", "message", "hint"),
    [
        # Reviewer: the hint repeated the token it told to quote, and `==` did as well.
        (
            f"[pipedrive]\napi_token = {LEAKED}\n",
            {},
            f"FILE: {NOT_A_STRING} (at line 2, column 14)",
            'text needs quotes: api_token = "..."',
        ),
        (
            f"[pipedrive]\napi_token = {LEAKED}  # mine\n",
            {},
            f"FILE: {NOT_A_STRING} (at line 2, column 14)",
            'text needs quotes: api_token = "..."',
        ),
        (
            f'[pipedrive]\napi_token == "{LEAKED}"\n',
            {},
            "FILE: invalid TOML: Invalid value (at line 2, column 12)",
            'one "=" between key and value: api_token = "..."',
        ),
        (
            f"pipedrive.api_token = {LEAKED}\n",
            {},
            f"FILE: {NOT_A_STRING} (at line 1, column 24)",
            'text needs quotes: pipedrive.api_token = "..."',
        ),
        (  # a misspelled key holds the token just as well
            f"[pipedrive]\napi-token = {LEAKED}\n",
            {},
            f"FILE: {NOT_A_STRING} (at line 2, column 14)",
            'text needs quotes: api-token = "..."',
        ),
        # The token put in another key or variable too: known, so never repeated.
        (
            f'[pipedrive]\napi_token = "{LEAKED}"\nplan = "{LEAKED}"\n',
            {},
            "FILE:3: unknown plan '[token redacted]'",
            "use one of: lite, growth, premium, ultimate, unlimited",
        ),
        (
            f'[pipedrive]\napi_token = "{LEAKED}"\nbase_url = "{LEAKED}"\n',
            {},
            "FILE:3: base_url '[token redacted]' is not an http(s) URL",
            "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787",
        ),
        (
            "",
            {"RPD_PLAN": LEAKED},
            "$RPD_PLAN: unknown plan '[token redacted]'",
            "use one of: lite, growth, premium, ultimate, unlimited",
        ),
        (
            "",
            {"RPD_IDENTITIES": LEAKED.upper()},  # in any letter case
            "$RPD_IDENTITIES: unknown identities '[token redacted]'",
            "use one of: auto, search, index",
        ),
        (
            "",
            {"RPD_BASE_URL": LEAKED},
            "$RPD_BASE_URL: base_url '[token redacted]' is not an http(s) URL",
            "use e.g. https://api.pipedrive.com or http://127.0.0.1:8787",
        ),
        (
            "",
            {"RPD_COMPANY_DOMAIN": f"{LEAKED}."},
            "$RPD_COMPANY_DOMAIN: company_domain '[token redacted].' is not a Pipedrive company "
            "domain",
            'give the name before .pipedrive.com (letters, digits and hyphens), e.g. "acme" for '
            "https://acme.pipedrive.com",
        ),
        (
            "",
            {"RPD_CREATE_PERSONS": LEAKED},
            "$RPD_CREATE_PERSONS: identity.create_persons must be true or false, got "
            "'[token redacted]'",
            "e.g. RPD_CREATE_PERSONS=true",
        ),
        (
            "",
            {"RPD_DEFAULT_CURRENCY": LEAKED},
            f"$RPD_DEFAULT_CURRENCY: default_currency '{REDACTED}' is not a 3-letter currency code",
            'give an ISO 4217 code, e.g. default_currency = "USD"',
        ),
    ],
)
def test_a_config_error_never_shows_the_token(
    tmp_path: Path, text: str, environ: dict[str, str], message: str, hint: str
) -> None:
    # SPEC 8: not in any error or hint, wherever the token was given (file, environment).
    path = write(tmp_path, text)
    env: dict[str, str | None] = {key.env: None for key in KEYS} | {"RPD_CONFIG": None}
    if environ:
        env |= {"PIPEDRIVE_API_TOKEN": LEAKED, **environ}
    result = CliRunner().invoke(app, ["check", "--config", str(path)], env=env)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {message.replace('FILE', str(path))}\nhint: {hint}\n"
    assert LEAKED not in result.output.lower()


def test_a_config_init_force_overwrites_is_said_without_the_token(tmp_path: Path) -> None:
    path = write(tmp_path, f'[pipedrive]\napi_token = "{LEAKED}"\nplan = "{LEAKED}"\n')
    settings = load_settings(str(path), env={}, overwritten=True)
    assert settings.warnings == (
        f"{path}:3: unknown plan '[token redacted]': not read, as --force overwrites it",
    )


def test_a_relative_config_not_found_names_the_folder_it_was_looked_for_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Newcomer: `rpd check -c config.example.toml` run from another folder than the file's was
    # told only "No such file or directory", with nothing saying where rpd looked.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["check", "--config", "config.example.toml"])
    assert (result.exit_code, result.output) == (
        2,
        f"error: cannot read config config.example.toml ({tmp_path / 'config.example.toml'}): "
        "No such file or directory\n"
        "hint: check --config / $RPD_CONFIG, or write it: "
        "`rpd init --config config.example.toml`\n",
    )


def test_a_token_in_the_file_that_the_environment_overrides_is_warned_about(
    tmp_path: Path,
) -> None:
    # Newcomer: a stale $PIPEDRIVE_API_TOKEN (another account's) silently won over the token
    # just put in the file; `rpd check` said "ok token: accepted" for the other company.
    path = write(tmp_path, '[pipedrive]\napi_token = "file-token-0123456789"\n')
    os.chmod(path, 0o600)
    env = {"PIPEDRIVE_API_TOKEN": "env-token-9876543210"}
    assert load_settings(str(path), env=env).warnings == (
        f"{path}'s api_token is not used: $PIPEDRIVE_API_TOKEN holds another token, "
        "and wins (unset it to use the file's)",
    )
    same = {"PIPEDRIVE_API_TOKEN": "file-token-0123456789"}
    assert load_settings(str(path), env=same).warnings == ()  # one token: nothing to say
    result = CliRunner().invoke(app, ["dry-run", "-", "--config", str(path)], input="", env=env)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == (
        f"warning: {path}'s api_token is not used: $PIPEDRIVE_API_TOKEN holds another token, "
        "and wins (unset it to use the file's)"
    )
    assert "file-token" not in result.output and "env-token" not in result.output


def test_a_token_the_environment_overrides_is_not_warned_about_under_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --sandbox uses the emulator's own token: the warning's "$PIPEDRIVE_API_TOKEN ... wins" was
    # false there (neither token is used, no CRM is written to), noise before every sandbox run.
    path = write(tmp_path, '[pipedrive]\napi_token = "file-token-0123456789"\n')
    os.chmod(path, 0o600)
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", "env-token-9876543210")
    with command_env(config=str(path), verbose=False, quiet=True, sandbox=True) as sandboxed:
        assert sandboxed.settings.warnings == ()
    with command_env(config=str(path), verbose=False, quiet=True) as plain:  # as before
        assert plain.settings.warnings == (
            f"{path}'s api_token is not used: $PIPEDRIVE_API_TOKEN holds another token, "
            "and wins (unset it to use the file's)",
        )


@pytest.mark.parametrize(
    ("value", "got", "hint"),
    [
        ('"yes"', "'yes'", "write create_persons = true, without quotes"),
        ('"true"', "'true'", "write create_persons = true, without quotes"),
        ('"no"', "'no'", "write create_persons = false, without quotes"),
        ('""', "''", "e.g. create_persons = true"),
    ],
)
@pytest.mark.parametrize("command", [["send", "-", "--sandbox"], ["dry-run", "-"], ["check"]])
def test_text_for_a_boolean_in_the_config_is_an_error_naming_the_key_and_what_it_holds(
    tmp_path: Path, value: str, got: str, hint: str, command: list[str]
) -> None:
    # Newcomer: `create_persons = "yes"` was taken as true, "no" as false, and "" as false: the
    # spellings $RPD_CREATE_PERSONS takes, read from a file whose booleans are true and false.
    path = write(tmp_path, f"[identity]\ncreate_persons = {value}\n")
    env: dict[str, str | None] = {key.env: None for key in KEYS} | {"RPD_CONFIG": None}
    result = CliRunner().invoke(app, [*command, "--config", str(path)], input="", env=env)
    assert (result.exit_code, result.stdout) == (2, "")  # before a sandbox starts: nothing sent
    assert result.stderr == (
        f"error: {path}:2: identity.create_persons must be true or false, got {got}\nhint: {hint}\n"
    )


def test_text_for_a_boolean_is_still_read_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[identity]\ncreate_persons = false\n")
    for text, expected in (("yes", True), ("on", True), ("1", True), ("no", False), ("", False)):
        env = {"RPD_CREATE_PERSONS": text}
        assert load_settings(str(path), env=env).create_persons is expected, text


def assert_check_refuses(path: Path, message: str, hint: str) -> None:
    """`rpd check --config path`, no setting from the environment, exits 2 with this one error."""
    env: dict[str, str | None] = {key.env: None for key in KEYS} | {"RPD_CONFIG": None}
    result = CliRunner().invoke(app, ["check", "--config", str(path)], env=env)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {message.replace('FILE', str(path))}\nhint: {hint}\n"


NOT_A_TABLE = [
    # Newcomer: [[fields.persons]] (as [[track]] is written) and `identity = []` read "must be
    # a table" with no hint, neither what the file held nor how to write a table.
    (
        '[[fields.persons]]\nrole = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"\n',
        "FILE:1: [fields.persons] must be a table of trait = field key, got an array of tables "
        "([[...]])",
        "write [fields.persons] on a line of its own (one pair of brackets), then "
        'trait = "field key" lines: `rpd map-fields --format toml` prints them',
    ),
    (
        '[fields]\ndeals = ["01bc2d5edda1b591f488b8eb969bde67eb7dcf5e"]\n',
        "FILE:2: [fields.deals] must be a table of trait = field key, got an array",
        "write [fields.deals] on a line of its own (one pair of brackets), then "
        'trait = "field key" lines: `rpd map-fields --format toml` prints them',
    ),
    (
        "identity = []\n",
        "FILE:1: identity must be a table ([identity]), got an array",
        "write [identity] on a line of its own (one pair of brackets), its keys below it",
    ),
    (  # its kind, not its value: it may be the token
        'pipedrive = "growth"\n',
        "FILE:1: pipedrive must be a table ([pipedrive]), got a string",
        "write [pipedrive] on a line of its own (one pair of brackets), its keys below it",
    ),
]


GIVEN_TWICE = [
    # Newcomer: a key or table given twice (a line pasted from the example) read tomllib's
    # words with "fix the syntax", which sent them looking for a typo on a correct line.
    (
        '[pipedrive]\nplan = "growth"\nplan = "lite"\n',
        "FILE: invalid TOML: Cannot overwrite a value (at line 3, column 14)",
        "plan is set twice in its table: keep one of the two lines",
    ),
    (
        '[identity]\ncreate_persons = true\n[fields]\n[identity]\nuser_id_field = "k"\n',
        "FILE: invalid TOML: Cannot declare ('identity',) twice (at line 4, column 10)",
        "[identity] is written twice: put all its keys under one [identity]",
    ),
    (
        '[fields.persons]\nrole = "k"\n[fields.persons]\nplan = "k"\n',
        "FILE: invalid TOML: Cannot declare ('fields', 'persons') twice (at line 3, column 16)",
        "[fields.persons] is written twice: put all its keys under one [fields.persons]",
    ),
    (
        '[track]\nevents = ["a"]\ncreate = "skip"\n[[track]]\n',
        "FILE: invalid TOML: Cannot overwrite a value (at line 4, column 8)",
        "write every rule as [[track]] (two pairs of brackets), the first one too",
    ),
    (
        '[[track]]\nevents = ["a"]\ncreate = "skip"\n[track]\n',
        "FILE: invalid TOML: Cannot declare ('track',) twice (at line 4, column 7)",
        "write every rule as [[track]] (two pairs of brackets), the first one too",
    ),
    (
        "[identity]\ncreate_persons.x = 1\ncreate_persons = true\n",
        "FILE: invalid TOML: Cannot overwrite a value (at line 3, column 22)",
        "this line sets again what an earlier line set: keep one of them",
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), NOT_A_TABLE + GIVEN_TWICE)
def test_a_table_mistake_says_what_the_file_holds_and_how_to_write_it(
    tmp_path: Path, text: str, message: str, hint: str
) -> None:
    assert_check_refuses(write(tmp_path, text), message, hint)


def test_a_config_that_is_a_link_leading_nowhere_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Newcomer: rpd.toml linked to a dotfiles checkout not there read "No such file or
    # directory" beside the link they could see, with a hint to write it; unnamed (./rpd.toml),
    # it was no config at all: defaults, and a warning that there was none.
    link = tmp_path / "rpd.toml"
    link.symlink_to(tmp_path / "dotfiles" / "rpd.toml")
    why = f"it is a symbolic link to {tmp_path}/dotfiles/rpd.toml, which does not exist"
    hint = "check --config / $RPD_CONFIG and where the link points"
    with pytest.raises(ConfigError) as named:
        load_settings(str(link), env={})
    assert (named.value.message, named.value.hint) == (f"cannot read config {link}: {why}", hint)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as default:
        load_settings(None, env={})
    assert (default.value.message, default.value.hint) == (
        f"cannot read config rpd.toml ({link}): {why}",
        hint,
    )
    assert load_settings(None, env={}, to_be_made=True).path is None  # `rpd init` writes it


SHADOWED_HINT = (
    "hint: the first rule that matches an event wins: take the name out of one of the two rules, "
    "or put the rule it is meant for first"
)
NO_SETTING: dict[str, str | None] = {key.env: None for key in KEYS} | {"RPD_CONFIG": None}
IDENTITY = (  # the sandbox's identity fields: nothing else to say
    '[identity]\nuser_id_field = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"\n'
    'group_id_field = "872513dc3f908b99275edf2d09fcc9a467df9fa5"\n'
)


def rules_text(rules: list[tuple[str, ...]]) -> str:
    """`[[track]]` rules, each (event name, ..., create)."""
    return "".join(
        f"[[track]]\nevents = {json.dumps(names)}\ncreate = {json.dumps(create)}\n"
        for *names, create in rules
    )


@pytest.mark.parametrize(
    ("rules", "message", "first"),
    [
        # Newcomer: a rule for an event an earlier rule matches did nothing, without a word
        # ("Demo Requested" made a deal, not the activity the second rule said).
        (
            [("Demo Requested", "deal"), ("Call Scheduled", "Demo Requested", "activity")],
            "track #2: 'Demo Requested' in events is matched by track #1 first, so never by this "
            "rule",
            ("Demo Requested", "track #1 (deal)"),
        ),
        (
            [("Trial *", "skip"), ("Trial Started", "lead")],
            "track #2: 'Trial Started' in events is matched by track #1 first, so never by this "
            "rule",
            ("Trial Started", "track #1 (skip)"),
        ),
        (
            [("Trial *", "skip"), ("Trial Sta*", "lead")],
            "track #2: 'Trial Sta*' in events is matched by track #1 first, so never by this rule",
            ("Trial Stage", "track #1 (skip)"),
        ),
        (
            [("*", "lead"), ("Page Viewed", "skip")],
            "track #2: 'Page Viewed' in events is matched by track #1 first, so never by this rule",
            ("Page Viewed", "track #1 (lead)"),
        ),
    ],
)
def test_a_rule_pattern_an_earlier_rule_always_matches_first_is_warned_about_and_kept(
    tmp_path: Path, rules: list[tuple[str, ...]], message: str, first: tuple[str, str]
) -> None:
    # SPEC 4's "first match wins" makes such a rule legal (a test of that rule may hold one on
    # purpose): it was a config error, exit 2, refusing a config SPEC allows. Now said once, as
    # a warning, and the rules are used as SPEC says: the earlier rule takes the event.
    path = write(tmp_path, IDENTITY + rules_text(rules))
    result = CliRunner().invoke(
        app, ["dry-run", "-", "--config", str(path)], input="", env=NO_SETTING
    )
    assert (result.exit_code, result.stderr) == (
        0,
        f"warning: {path}: {message}\n{SHADOWED_HINT}\n"
        "warning: standard input (-) held no events\n",
    )
    name, label = first
    assert load_settings(str(path), env={}).track_rules.label(name) == label


def test_rpd_check_passes_a_rule_set_it_warns_about(tmp_path: Path) -> None:
    # `rpd check` exits 0 where nothing else is wrong; the warning is said once, as every
    # command loading the config says it (before check's rows, which judge the account).
    rules = [("Demo Requested", "deal"), ("Support * Ticket", "Demo Requested", "note")]
    path = write(tmp_path, IDENTITY + rules_text(rules))
    result = CliRunner().invoke(app, ["check", "--sandbox", "--config", str(path)], env=NO_SETTING)
    said = [line for line in result.stderr.splitlines() if not line.startswith("sandbox: ")]
    assert (result.exit_code, said) == (
        0,
        [
            f"warning: {path}: track #2: 'Support * Ticket' in events has a * before its end: it "
            "stands for a * in the event's name, not for any text",
            'hint: a * matches a prefix only at the end (e.g. "Trial *": every name starting '
            '"Trial "); if the * is part of the name, write it \\\\* to say so',
            f"warning: {path}: track #2: 'Demo Requested' in events is matched by track #1 first, "
            "so never by this rule",
            SHADOWED_HINT,
        ],
    )
    assert result.stdout.splitlines()[-1] == "all 6 checks passed"


def test_rules_the_first_match_leaves_something_to_are_read(tmp_path: Path) -> None:
    text = (
        '[[track]]\nevents = ["Trial Started"]\ncreate = "deal"\n'  # an exception before its prefix
        '[[track]]\nevents = ["Trial *", "Demo"]\ncreate = "skip"\n'
        '[[track]]\nevents = ["Tri*", "Demo *", "*"]\ncreate = "lead"\n'  # "Demo x" is left
    )
    settings = load_settings(str(write(tmp_path, text)), env={})
    assert settings.warnings == ()  # every pattern matches some event first
    rules = settings.track_rules
    names = ("Trial Started", "Trial Ended", "Demo", "Demo x", "Trip", "Other")
    assert [rules.label(name) for name in names] == [
        "track #1 (deal)",
        "track #2 (skip)",
        "track #2 (skip)",
        "track #3 (lead)",
        "track #3 (lead)",
        "track #3 (lead)",
    ]


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        # Newcomer: a field name mistyped, or a key copied in capitals or with a space, was
        # told only to list the fields, 40-hex keys among them to compare by eye.
        ("Rolle", "did you mean 'Role'? run `rpd map-fields` to list them"),
        (
            "6098B979CD7506A9C2B183A7814C70E8A6A08A3F",
            "did you mean '6098b979cd7506a9c2b183a7814c70e8a6a08a3f', the key of \"Role\" "
            "(varchar)? run `rpd map-fields` to list them",
        ),
        (
            "6098b979cd75 06a9c2b183a7814c70e8a6a08a3f",
            "did you mean '6098b979cd7506a9c2b183a7814c70e8a6a08a3f', the key of \"Role\" "
            "(varchar)? run `rpd map-fields` to list them",
        ),
        ("Something Else", "run `rpd map-fields` to list them"),  # nothing near: no guess
    ],
)
def test_a_mapped_field_the_account_lacks_is_hinted_with_the_one_meant(
    tmp_path: Path, value: str, hint: str
) -> None:
    text = EXAMPLE.read_text().replace(
        'role = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"', f'role = "{value}"'
    )
    path = write(tmp_path, text)
    env: dict[str, str | None] = {key.env: None for key in KEYS} | {"RPD_CONFIG": None}
    result = CliRunner().invoke(app, ["check", "--sandbox", "--config", str(path)], env=env)
    lines = result.stdout.splitlines()
    failed = next(n for n, line in enumerate(lines) if line.startswith("FAIL"))
    assert (result.exit_code, lines[failed : failed + 2]) == (
        2,
        [
            f"FAIL  fields.persons.role = '{value}': the account has no such person field",
            f"      hint: {hint}",
        ],
    )


def test_a_blank_variable_is_unset_as_an_empty_one_is(tmp_path: Path) -> None:
    # A `.env` line `RPD_USER_ID_FIELD= ` (a space after =) unset the file's identity field
    # without a word, `RPD_CREATE_PERSONS= ` turned creation off, and a blank token hid the
    # file's, warned about as "another token" before "no Pipedrive API token configured".
    path = write(
        tmp_path,
        f'[pipedrive]\napi_token = "{LEAKED}"\nplan = "lite"\n'
        '[identity]\nuser_id_field = "k"\ncreate_persons = true\n',
    )
    blank = {key.env: " \t" for key in KEYS}
    settings = load_settings(str(path), env=blank)
    assert (settings.api_token.reveal(), settings.plan, settings.user_id_field) == (
        LEAKED,
        "lite",
        "k",
    )
    assert (settings.create_persons, settings.warnings) == (True, ())


@pytest.mark.parametrize(
    ("text", "env", "overrides", "message", "hint"),
    [
        # Newcomer: plan = "Growth", as Pipedrive's pages spell it, and identities = "Index".
        (
            '[pipedrive]\nplan = "Growth"\n',
            {},
            {},
            "FILE:2: unknown plan 'Growth'",
            'did you mean plan = "growth"? use one of: lite, growth, premium, ultimate, unlimited',
        ),
        (
            '[pipedrive]\nidentities = "Index"\n',
            {},
            {},
            "FILE:2: unknown identities 'Index'",
            'did you mean identities = "index"? use one of: auto, search, index',
        ),
        (
            "",
            {"RPD_ON_INVALID": "DROP"},
            {},
            "$RPD_ON_INVALID: unknown on_invalid 'DROP'",
            "did you mean RPD_ON_INVALID=drop? use one of: fail, drop",
        ),
        (
            "",
            {},
            {"pipedrive.plan": "Premium"},
            "unknown --plan 'Premium'",
            "did you mean --plan premium? use one of: lite, growth, premium, ultimate, unlimited",
        ),
        # Newcomer: a typo (plan = "grwoth") was hinted with the list alone, the capitals' 'did
        # you mean' only for a value spelled right.
        (
            '[pipedrive]\nplan = "grwoth"\n',
            {},
            {},
            "FILE:2: unknown plan 'grwoth'",
            'did you mean plan = "growth"? use one of: lite, growth, premium, ultimate, unlimited',
        ),
        (
            "",
            {"RPD_IDENTITIES": "Serach"},
            {},
            "$RPD_IDENTITIES: unknown identities 'Serach'",
            "did you mean RPD_IDENTITIES=search? use one of: auto, search, index",
        ),
        (
            "",
            {},
            {"pipedrive.identities": "indx"},
            "unknown --identities 'indx'",
            "did you mean --identities index? use one of: auto, search, index",
        ),
    ],
)
def test_a_setting_in_capitals_is_hinted_as_it_is_meant_where_it_was_given(
    tmp_path: Path,
    text: str,
    env: dict[str, str],
    overrides: dict[str, str],
    message: str,
    hint: str,
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env=env, overrides=overrides)
    assert (caught.value.message, caught.value.hint) == (message.replace("FILE", str(path)), hint)


@pytest.mark.parametrize(
    ("written", "trait", "traits"),
    [
        # Data engineer upgrading: events that hold a key ending in a space (a form or a CSV
        # import wrote it so), mapped as SPEC 3 reads a path; 656ec02 refused the config, exit 2.
        ('"role "', "role ", {"role ": "CTO"}),
        ('""', "", {"": "CTO"}),
        ('"address..city"', "address..city", {"address..city": "CTO"}),
        ('address." city"', "address. city", {"address": {" city": "CTO"}}),
    ],
)
def test_a_trait_path_with_an_empty_part_or_a_space_at_an_end_maps_what_events_hold_so(
    tmp_path: Path, written: str, trait: str, traits: dict[str, Any]
) -> None:
    # Kept and warned about once: most such paths are a typo that maps nothing.
    path = write(
        tmp_path, f'{IDENTITY}create_persons = true\n[fields.persons]\n{written} = "{ROLE}"\n'
    )
    event = {"type": "identify", "userId": "u1", "traits": {"name": "A", **traits}}
    result = CliRunner().invoke(
        app,
        ["dry-run", "-", "--config", str(path), "--format", "ndjson"],
        input=json.dumps(event) + "\n",
        env=NO_SETTING,
    )
    said = [line for line in result.stderr.splitlines() if line.startswith(("warning: ", "hint: "))]
    assert (result.exit_code, said) == (
        0,
        [
            f"warning: {path}: fields.persons: the trait path {trait!r} has an empty part or a "
            "part with a space at an end: it maps only a trait named exactly so",
            "hint: if events do not hold it so, write it as they do, dots between its parts: "
            'e.g. address.city = "..."',
        ],
    )
    (planned,) = result.stdout.splitlines()
    (create,) = (r for r in json.loads(planned)["requests"] if r["method"] == "POST")
    assert create["body"]["custom_fields"][ROLE] == "CTO"


def test_a_config_that_is_a_folder_or_unreadable_says_what_to_give_or_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Newcomer: --config naming the project's folder, and a config root wrote (mode 600), were
    # told to "check --config / $RPD_CONFIG", which named the path they meant.
    with pytest.raises(ConfigError) as folder:
        load_settings(str(tmp_path), env={})
    assert (folder.value.message, folder.value.hint) == (
        f"cannot read config {tmp_path}: Is a directory",
        f"give --config / $RPD_CONFIG the file, e.g. {tmp_path}/rpd.toml",
    )
    path = write(tmp_path, "")

    def refused(self: Path, *args: Any, **kwargs: Any) -> Any:  # as for another user's 600 file
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refused)
    with pytest.raises(ConfigError) as unreadable:
        load_settings(str(path), env={})
    assert (unreadable.value.message, unreadable.value.hint) == (
        f"cannot read config {path}: Permission denied",
        f"check its owner and mode (`ls -l {path}`): the user running rpd must be able to read "
        "it (`chmod 600` keeps others out)",
    )


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        # A newcomer pasting one 40-hex string for the other: `rpd check` showed the token in its
        # "FAIL  fields.persons.role = '<token>': the account has no such person field".
        (
            f'[pipedrive]\napi_token = "{LEAKED}"\n[fields.persons]\nrole = "{LEAKED}"\n',
            {},
            "FILE:4: fields.persons.role holds the API token, not a field key",
        ),
        (
            "[identity]\ncreate_persons = true\n",
            {"PIPEDRIVE_API_TOKEN": LEAKED, "RPD_USER_ID_FIELD": LEAKED.upper()},
            "$RPD_USER_ID_FIELD: identity.user_id_field holds the API token, not a field key",
        ),
        (
            f'[identity]\ncreate_persons = true\nuser_id_field = "{LEAKED}"\n',
            {"PIPEDRIVE_API_TOKEN": LEAKED},
            "FILE:3: identity.user_id_field holds the API token, not a field key",
        ),
        (
            f'[[track]]\nevents = ["Demo"]\ncreate = "deal"\nfields = {{ plan = "{LEAKED}" }}\n',
            {"PIPEDRIVE_API_TOKEN": LEAKED},
            "FILE:1: track #1.fields.plan holds the API token, not a field key",
        ),
    ],
)
def test_a_field_key_that_is_the_token_is_refused_without_showing_it(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    env: dict[str, str | None] = {key.env: None for key in KEYS} | {"RPD_CONFIG": None}
    result = CliRunner().invoke(
        app, ["check", "--sandbox", "--config", str(path)], env={**env, **environ}
    )
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {message.replace('FILE', str(path))}\nhint: both are 40 hex digits: give the "
        "field's key (`rpd map-fields` lists them), and the token in $PIPEDRIVE_API_TOKEN\n"
    )
    assert LEAKED not in result.output.lower()


ROLE, CAMPAIGN = (
    "6098b979cd7506a9c2b183a7814c70e8a6a08a3f",
    "0ad278b60b7e6b783e51a7f5b9cef17d732fe978",
)
SHARED_HINT = (
    "hint: a field takes one value: take out the trait not meant, or list the one meant to win last"
)


def test_traits_of_one_table_mapped_to_one_field_are_warned_about_naming_the_one_sent(
    tmp_path: Path,
) -> None:
    # SPEC 3 allows it, and which of the two an event holding both sends was said nowhere: the
    # one listed last (a later row's value replaces an earlier one's, core/fields.py), whether
    # it is nested, or held in context.traits while the other is in traits.
    path = write(
        tmp_path,
        IDENTITY
        + "create_persons = true\n"
        + f'[fields.persons]\nrole = "{ROLE}"\n"company.job" = "{ROLE}"\n'
        + f'[fields.leads]\nutm = "{CAMPAIGN}"\ncampaign = "{CAMPAIGN}"\nsource = "{CAMPAIGN}"\n'
        + f'[[track]]\nevents = ["Demo"]\ncreate = "deal"\nfields = {{ a = "{ROLE}", b = "x" }}\n',
    )
    persons = (
        f"warning: {path}: fields.persons: 'role' and 'company.job' are both mapped to '{ROLE}': "
        "an event holding both sends the value of 'company.job'"
    )
    leads = (
        f"warning: {path}: fields.leads: 'utm', 'campaign' and 'source' are all mapped to "
        f"'{CAMPAIGN}': an event holding several sends the value of the one listed last of those "
        "it holds"
    )
    job = {"company": {"job": "J"}}
    events = "".join(
        json.dumps(event) + "\n"
        for event in (
            {"type": "identify", "userId": "u1", "traits": {"name": "A", "role": "R", **job}},
            {
                "type": "identify",
                "userId": "u2",
                "traits": {"name": "B", **job},
                "context": {"traits": {"role": "R"}},
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Other",
                "properties": {"utm": "U", "campaign": "C"},
            },
        )
    )
    result = CliRunner().invoke(
        app,
        ["dry-run", "-", "--config", str(path), "--format", "ndjson"],
        input=events,
        env=NO_SETTING,
    )
    said = [line for line in result.stderr.splitlines() if line.startswith(("warning: ", "hint: "))]
    assert (result.exit_code, said) == (0, [persons, SHARED_HINT, leads, SHARED_HINT])
    sent = [
        request["body"].get("custom_fields", request["body"]).get(key)
        for line, key in zip(result.stdout.splitlines(), (ROLE, ROLE, CAMPAIGN), strict=True)
        for request in json.loads(line)["requests"]
        if request["method"] == "POST"
    ]
    assert sent == ["J", "J", "C"]


def test_the_config_s_warnings_never_show_the_token_pasted_as_a_trait_or_an_event_name(
    tmp_path: Path,
) -> None:
    # The token pasted where a trait or an event name goes (SPEC 8: never in any output): the
    # warnings of a shared field and of a shadowed rule showed it, where every error hides it.
    path = write(
        tmp_path,
        f'[fields.persons]\n"{LEAKED}" = "{ROLE}"\nrole = "{ROLE}"\n"{LEAKED} " = "{CAMPAIGN}"\n'
        f'[[track]]\nevents = ["{LEAKED.upper()}"]\ncreate = "skip"\n'
        f'[[track]]\nevents = ["{LEAKED.upper()}"]\ncreate = "lead"\n',
    )
    settings = load_settings(str(path), env={"PIPEDRIVE_API_TOKEN": LEAKED})
    hidden = "[token redacted]"
    assert [warning.partition("\n")[0] for warning in settings.warnings] == [
        f"{path}: track #2: '{hidden}' in events is matched by track #1 first, so never by this "
        "rule",
        f"{path}: fields.persons: '{hidden}' and 'role' are both mapped to '{ROLE}': an event "
        "holding both sends the value of 'role'",
        f"{path}: fields.persons: the trait path '{hidden} ' has an empty part or a part with a "
        "space at an end: it maps only a trait named exactly so",
    ]


@pytest.mark.parametrize("api_path", ["/api/v1", "/api/v2/"])
def test_a_base_url_ending_in_an_api_path_is_refused_as_it_is_read(
    tmp_path: Path, api_path: str
) -> None:
    # https://x.pipedrive.com/api/v1 (Pipedrive's docs' URL) on a host that did not answer was
    # 'Pipedrive is unreachable' (exit 4, after three tries), naming no path: only init said it.
    # Now every command that reads it says so before any request, wherever it was given.
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        origin = f"http://127.0.0.1:{probe.getsockname()[1]}"
    url = origin + api_path
    path = write(tmp_path, f'[pipedrive]\nbase_url = "{url}"\nplan = "unlimited"\n')
    events = tmp_path / "in.ndjson"
    events.write_text('{"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}}\n')
    token = {"PIPEDRIVE_API_TOKEN": "0" * 40}
    runs = [
        (f"{path}:2", ["send", str(events)], token),
        ("command line", ["dry-run", "--lookups", str(events), "--base-url", url], token),
        ("$RPD_BASE_URL", ["check"], token | {"RPD_BASE_URL": url}),
        (f"{path}:2", ["map-fields"], token),
    ]
    for where, command, env in runs:
        result = CliRunner().invoke(app, [*command, "--config", str(path)], env=env)
        assert (result.exit_code, result.stdout, result.stderr.splitlines()) == (
            2,
            "",
            [
                f"error: {where}: base_url {url.rstrip('/')} is not Pipedrive's API: it ends in "
                f"{api_path.rstrip('/')}, which rpd adds to it",
                "hint: give base_url (--base-url, $RPD_BASE_URL) the origin only, with no path: "
                "https://COMPANY.pipedrive.com or https://api.pipedrive.com; rpd adds /v1 and "
                "/api/v2 itself",
            ],
        ), command
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ndjson", "rpd.toml"]


@pytest.mark.parametrize(
    ("url", "ending"),
    [
        ("https://gw.example.com/pipedrive/v1", None),  # a gateway's own version
        ("https://gw.example.com/v1/", None),
        ("https://acme.pipedrive.com/v1", "/v1"),  # Pipedrive's own host: rpd's path
        ("https://api.pipedrive.com/v1/", "/v1"),
        ("https://gw.example.com/pipedrive/api/v1", "/api/v1"),
    ],
)
def test_a_gateway_s_own_v1_is_not_refused_as_pipedrive_s_path(
    tmp_path: Path, url: str, ending: str | None
) -> None:
    # A gateway versioned by path (https://gw.example.com/pipedrive/v1, forwarding to Pipedrive's
    # origin: its requests go to .../pipedrive/v1/v1/users/me) was refused, exit 2, with no way
    # round: only on Pipedrive's own host is /v1 certainly the path rpd adds itself.
    path = write(tmp_path, f'[pipedrive]\nbase_url = "{url}"\nplan = "unlimited"\n')
    if ending is None:
        assert load_settings(str(path), env={}).api_url == url.rstrip("/")
        return
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), env={})
    assert caught.value.message == (
        f"{path}:2: base_url {url.rstrip('/')} is not Pipedrive's API: it ends in {ending}, which "
        "rpd adds to it"
    )
