"""`[pipedrive] identities` (issue 15): flag > environment > file > default, bad values named."""

from __future__ import annotations

from pathlib import Path

from rudder_pipedrive_cli.core.errors import ConfigError
from rudder_pipedrive_cli.io.config import load_settings


def test_identities_is_read_from_flag_environment_and_file_with_hints(tmp_path: Path) -> None:
    path = tmp_path / "rpd.toml"
    path.write_text('[pipedrive]\nidentities = "index"\n')
    assert load_settings(None, env={}).identities == "auto"
    assert load_settings(str(path), env={}).identities == "index"
    assert load_settings(str(path), env={"RPD_IDENTITIES": "search"}).identities == "search"
    flagged = load_settings(
        str(path), env={"RPD_IDENTITIES": "search"}, overrides={"pipedrive.identities": "auto"}
    )
    assert flagged.identities == "auto"
    path.write_text('[pipedrive]\nidentities = "indexed"\n')
    try:
        load_settings(str(path), env={})
    except ConfigError as error:
        assert error.message == f"{path}:2: unknown identities 'indexed'"
        assert error.hint == 'did you mean identities = "index"? use one of: auto, search, index'
    else:
        raise AssertionError("a bad identities value is a config error")
