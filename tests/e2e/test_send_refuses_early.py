"""What can only fail is refused before the first event (issue 14 item 8): `send` runs `rpd
check`'s identity checks on the field listing it fetches anyway, and a missing config file is
said in one line by every command that reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import (
    CLEAN_ENV,
    LISTINGS,
    PLAN_FIELD,
    TOKEN,
    USER_ID_FIELD,
    identify,
    rpd_send,
    write_config,
    write_events,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.sandbox import Sandbox

NO_CONFIG = (
    "warning: no config file found (rpd.toml here; --config or $RPD_CONFIG name another): "
    "using the environment and defaults"
)


def test_an_enum_identity_field_is_refused_before_any_event(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Before: all 17 events failed with "lookup person refused: HTTP 400", 420 API tokens spent.
    config = write_config(tmp_path, user_id_field=f'"{PLAN_FIELD}"')
    events = write_events(
        tmp_path / "events.ndjson", [identify(f"m-{n}", f"u-{n}", name="A") for n in range(17)]
    )

    run = rpd_send(sandbox, tmp_path, events, config=config)

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == [
        f"error: {config}: identity.user_id_field = '{PLAN_FIELD}': \"Plan\" (enum: Free, Pro, "
        "Enterprise) is not of a searchable type, so rpd cannot look records up by it: every "
        "event that needs it would fail",
        "hint: use a field of type address, phone, text, varchar, varchar_auto; `rpd check` runs "
        "every check",
    ]
    # The account (which keys the state) and the listing only: no event was tried.
    assert sandbox.stats()["requests"] == LISTINGS | {"GET /v1/users/me": 1}
    assert run.report is None and not run.dead_letter.exists()


def test_no_config_file_is_said_and_the_unset_identity_field_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: `send --sandbox` with no config failed every event with "[identity]
    # user_id_field is not set" and never said that no config file was found.
    monkeypatch.chdir(tmp_path)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])

    result = CliRunner().invoke(app, ["send", str(events), "--sandbox"], env=dict(CLEAN_ENV))

    assert result.exit_code == 2, result.stderr
    warning, started, error, hint = result.stderr.splitlines()
    assert warning == NO_CONFIG
    assert started.startswith("sandbox: Pipedrive emulator at http://127.0.0.1:")
    assert error == (
        "error: settings (no config file): identity.user_id_field: not set: only events with "
        "external ids can be replayed: every event that needs it would fail"
    )
    assert hint == (
        "hint: set it to the key of a searchable person custom field (`rpd map-fields --entity "
        "persons`); `rpd check` runs every check"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["events.ndjson"]


@pytest.mark.parametrize(
    "command",
    [
        ["dry-run", "EVENTS"],
        ["map-fields", "--sandbox", "-e", "leads"],
        ["send", "EVENTS", "--sandbox"],
    ],
)
def test_every_command_says_no_config_file_was_found_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    args = [str(events) if arg == "EVENTS" else arg for arg in command]
    env = dict(CLEAN_ENV) | {"RPD_USER_ID_FIELD": USER_ID_FIELD, "RPD_CREATE_PERSONS": "true"}

    result = CliRunner().invoke(app, args, env=env)

    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == NO_CONFIG
    assert result.stderr.count("no config file") == 1
    quiet = CliRunner().invoke(app, [*args, "-q"], env=env)
    assert quiet.exit_code == 0 and "no config file" not in quiet.stderr


def test_a_config_file_found_is_not_mentioned(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events, token=TOKEN)
    assert run.exit_code == 0, run.stderr
    assert "no config file" not in run.stderr
