"""Issue 13 item 13: no config value makes rpd exit 70. A hypothesis fuzz over TOML values for
every key: `rpd send --sandbox` either runs (0 or 1) or refuses the config with exit 2 in one
line naming the file and the key; the keys that say where requests go and with what token also
make the real client (which parses the URL and the header) without an error rpd did not name."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.errors import ConfigError
from rudder_pipedrive_cli.http.client import PipedriveClient
from rudder_pipedrive_cli.io.config import KEYS, load_settings
from rudder_pipedrive_cli.io.tomlwrite import toml_string

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config.example.toml"
EVENTS = (
    b'{"type":"identify","messageId":"m-1","userId":"u-1","traits":{"name":"A","role":"r",'
    b'"plan":"Pro"}}\n'
    b'{"type":"group","messageId":"m-2","userId":"u-1","groupId":"g-1","traits":{"name":"G",'
    b'"industry":"Retail","employees":5}}\n'
    b'{"type":"track","messageId":"m-3","userId":"u-1","event":"Signed up",'
    b'"properties":{"revenue":5,"source":"s","campaign":"c"}}\n'
)
# Every setting, and a mapped field of each [fields.*] table.
FIELD_KEYS = ("fields.persons.role", "fields.organizations.employees", "fields.leads.source")
ALL_KEYS = tuple(f"{key.section}.{key.name}" for key in KEYS) + FIELD_KEYS
CONNECTION_KEYS = ("pipedrive.api_token", "pipedrive.base_url", "pipedrive.company_domain")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{ " + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


# Text is the most telling: URLs with spaces, control characters, non-ASCII hosts, odd ports.
URLISH = st.builds(
    lambda scheme, host, port, rest: f"{scheme}{host}{port}{rest}",
    st.sampled_from(["http://", "https://", "HTTP://", "http:/", "", "h://"]),
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "[::1", "exämple.com", "a b", "", "::1"]),
    st.sampled_from(["", ":8787", ":87 87", ":99999", ":-1", ":x", ":"]),
    st.text(max_size=8),
)
SCALARS = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=6),
    URLISH,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=2),
)


def config_with(directory: Path, dotted: str, value: Any) -> tuple[Path, int]:
    """config.example.toml with `dotted`'s line replaced by `value` (the first such line), and
    that line's number."""
    name = dotted.rsplit(".", 1)[1]
    section = dotted.rsplit(".", 1)[0]
    lines = EXAMPLE.read_text().splitlines()
    current = ""
    for number, line in enumerate(lines):
        if line.startswith("["):
            current = line.split("]")[0].strip("[")
        elif current == section and line.startswith(f"{name} = "):
            lines[number] = f"{name} = {toml_value(value)}"
            break
    else:
        raise AssertionError(f"{dotted} is not in the example config")
    path = directory / "rpd.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path, number + 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "events.ndjson").write_bytes(EVENTS)
    return directory


def assert_named(text: str, path: Path, line: int, dotted: str) -> None:
    """A config error: one `error:` line naming the file (and the key's `line`, when it names
    one) and the key, perhaps a hint."""
    lines = text.strip().splitlines()
    assert lines[0].startswith((f"error: {path}: ", f"error: {path}:{line}: ")), text
    assert dotted.rsplit(".", 1)[1] in lines[0], text
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("hint: ")), text


@pytest.mark.parametrize("dotted", ALL_KEYS)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=VALUES)
def test_no_config_value_exits_70(workdir: Path, dotted: str, value: Any) -> None:
    path, line = config_with(workdir, dotted, value)
    result = CliRunner().invoke(
        app,
        [
            "send",
            str(workdir / "events.ndjson"),
            "--sandbox",
            "--quiet",
            "--config",
            str(path),
            "--dead-letter",
            str(workdir / "failed.ndjson"),
        ],
        env={key.env: None for key in KEYS} | {"RPD_CONFIG": None},
    )
    assert result.exit_code in (0, 1, 2), result.stderr
    if result.exit_code == 2:
        assert_named(result.stderr, path, line, dotted)
    if dotted in CONNECTION_KEYS:
        try:
            loaded = load_settings(str(path), env={"PIPEDRIVE_API_TOKEN": "sandbox-token"})
        except ConfigError as error:
            assert_named(f"error: {error.message}", path, line, dotted)
            return
        # The client rpd would talk with: made without an error, to the host the rules checked.
        token = loaded.api_token.reveal() or "sandbox-token"
        client = PipedriveClient(token=token, base_url=loaded.api_url)
        url = httpx.URL(client.base_url)
        assert url.scheme in ("http", "https")
        assert httpx.URL(client.base_url).join("/v1/users/me").host == url.host


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.env)
@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.text(max_size=20), URLISH))
def test_no_environment_value_is_an_error_rpd_did_not_name(key: Any, value: str) -> None:
    """The same for each setting's environment variable (a value in one cannot hold NUL)."""
    value = value.replace("\x00", "")
    try:
        loaded = load_settings(None, env={key.env: value, "RPD_CONFIG": str(EXAMPLE)})
    except ConfigError as error:
        assert error.message.startswith(f"${key.env}: "), error.message
        return
    PipedriveClient(token=loaded.api_token.reveal() or "t", base_url=loaded.api_url)
