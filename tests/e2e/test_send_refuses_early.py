"""What can only fail is refused before the first event (issue 14 item 8): `send` runs `rpd
check`'s identity checks on the field listing it fetches anyway, and a missing config file is
said in one line by every command that reads it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CLEAN_ENV,
    EXAMPLE_CONFIG,
    EXAMPLES,
    LISTINGS,
    ONE,
    PLAN_FIELD,
    ROLE_FIELD,
    TOKEN,
    USER_ID_FIELD,
    assert_stopped_while_starting,
    holdings,
    identify,
    rpd_send,
    write_config,
    write_events,
)
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.sandbox import Sandbox

MakeSandbox = Callable[..., Sandbox]  # the `make_sandbox` fixture of tests/conftest.py

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
    assert not run.dead_letter.exists()
    # Its --report says the refusal (an earlier run's left there is not read as this run's).
    assert_stopped_while_starting(run.report, 2, run.stderr.splitlines()[0][7:])


UNSET = "identity.user_id_field: not set: only events with external ids can be replayed"
UNSET_HINT = (
    "set it to the key of a searchable person custom field (`rpd map-fields --entity persons`); "
    "`rpd check` runs every check"
)
UNSET_WARNING = f"warning: {UNSET}: the events that need it fail ({UNSET_HINT})"
FIRST_PASS = "reading the input first: its aliases and the identities to look up"  # its log line


def unset_refused(where: str, also: str = "") -> list[str]:
    """The lines of a send refused, exit 2, for an unset user_id_field (issue 14 item 8)."""
    return [
        f"error: {where}: {UNSET}: every event that needs it would fail",
        f"hint: {UNSET_HINT}{also}",
    ]


def by_person_id(message_id: str, person: int, **traits: str) -> dict[str, Any]:
    """An identify that names its person by Pipedrive id alone (no userId)."""
    event = identify(message_id, "-", **traits)
    del event["userId"]
    event["context"] = {"externalId": [{"type": "person_id", "id": person}]}
    return event


def test_an_unset_user_id_field_is_said_and_the_events_with_external_ids_are_sent(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # SPEC 4: identify needs user_id_field "unless the external id is given". Before: send
    # refused to start (exit 2) with user_id_field unset, so an input of external ids (as
    # examples/external-ids.json, or a destination without a userIdToken) could not be sent.
    seeded = rpd_send(
        sandbox,
        tmp_path,
        write_events(tmp_path / "seed.ndjson", [identify("s-1", "u-1", name="Ann")]),
    )
    assert seeded.exit_code == 0, seeded.stderr
    config = write_config(tmp_path, name="unset.toml", user_id_field='""')
    events = write_events(
        tmp_path / "events.ndjson",
        [by_person_id("m-1", 1, role="CTO"), identify("m-2", "u-2", name="Bo")],
    )

    run = rpd_send(sandbox, tmp_path, events, config=config, state=tmp_path / "unset.sqlite")

    assert run.exit_code == 1, run.stderr
    assert run.stderr.splitlines().count(UNSET_WARNING) == 1
    assert holdings(sandbox).person("u-1")["custom_fields"][ROLE_FIELD] == "CTO"
    assert len(holdings(sandbox).persons) == 1  # u-2 was not created
    assert [letter["error"]["reason"] for letter in run.dead_letters] == [
        "[identity] user_id_field is not set: cannot look up userId u-2"
    ]
    assert run.report is not None
    assert run.report["events"] == {"read": 2, "sent": 1, "unchanged": 0, "skipped": 0, "failed": 1}

    # The rerun plans only u-2's, which fails: the event with an external id is done (journaled),
    # so the rerun is refused as an input without one is, and its dry-run says so. Before, both
    # let it start, for an event the journal skips.
    state = tmp_path / "unset.sqlite"
    rerun = rpd_send(sandbox, tmp_path, events, config=config, state=state, name="rerun")
    env = {**CLEAN_ENV, "PIPEDRIVE_API_TOKEN": TOKEN}
    planned = CliRunner().invoke(
        app,
        [
            "dry-run",
            str(events),
            "-c",
            str(config),
            "--base-url",
            sandbox.url,
            "--state",
            str(state),
        ],
        env=env,
    )

    assert (rerun.exit_code, rerun.stderr.splitlines()) == (
        2,
        [FIRST_PASS, *unset_refused(str(config))],
    )
    assert planned.exit_code == 1, planned.stderr
    assert planned.stderr.splitlines()[0] == (
        f"warning: {UNSET}: every event that needs it would fail, so `rpd send` would not start "
        f"({UNSET_HINT})"
    )


def timeless(value: Any) -> Any:
    """`value` without the times the sandbox stamps records with (`add_time`, `update_time`)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if not k.endswith("_time")}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def test_an_input_of_external_ids_alone_is_sent_with_the_user_id_field_unset(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # The brief's case: `rpd send -c CFG examples/external-ids.json` refused, exit 2, with "only
    # events with external ids can be replayed: every event that needs it would fail". Unset,
    # the field changes nothing there: the account ends as with it set.
    unset = write_config(tmp_path, name="unset.toml", user_id_field='""')
    ends = []
    for config in (unset, EXAMPLE_CONFIG):
        sandbox = make_sandbox(plan="unlimited")
        state = tmp_path / f"{config.stem}.sqlite"
        seeded = rpd_send(  # one event at a time: the same ids in both sandboxes
            sandbox, tmp_path, EXAMPLES / "events.ndjson", state=state, name="seed", args=ONE
        )
        assert seeded.exit_code == 0, seeded.stderr

        run = rpd_send(
            sandbox, tmp_path, EXAMPLES / "external-ids.json", config=config, state=state
        )

        assert run.exit_code == 0, run.stderr
        assert run.stderr.splitlines().count(UNSET_WARNING) == (config == unset)
        assert run.report is not None
        assert run.report["events"] == {
            "read": 5,
            "sent": 4,
            "unchanged": 1,
            "skipped": 0,
            "failed": 0,
        }
        ends.append(timeless(sandbox.state()))
    assert ends[0] == ends[1]


def test_no_config_file_is_said_and_the_unset_identity_field_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: `send --sandbox` with no config failed every event with "[identity]
    # user_id_field is not set" and never said that no config file was found.
    monkeypatch.chdir(tmp_path)
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])

    result = CliRunner().invoke(app, ["send", str(events), "--sandbox"], env=dict(CLEAN_ENV))

    assert result.exit_code == 2, result.stderr
    warning, started, *refused = result.stderr.splitlines()
    assert warning == NO_CONFIG
    assert started.startswith("sandbox: Pipedrive emulator at http://127.0.0.1:")
    assert refused == [FIRST_PASS, *unset_refused("settings (no config file)")]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["events.ndjson"]


def test_an_unset_user_id_field_with_no_event_of_external_ids_writes_nothing(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14 item 8 with examples/events.ndjson: no event names its person by an external
    # id, so every one that needs a person would fail. Refused after the first pass (which the
    # listings come before), as before any event: nothing written, counted or dead-lettered.
    monkeypatch.chdir(tmp_path)
    command = ["send", str(EXAMPLES / "events.ndjson"), "--base-url", sandbox.url]
    env = dict(CLEAN_ENV, PIPEDRIVE_API_TOKEN=TOKEN)

    result = CliRunner().invoke(app, [*command, "--plan", "unlimited"], env=env)

    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [
        NO_CONFIG,
        FIRST_PASS,
        *unset_refused("settings (no config file)"),
    ]
    assert not any(sandbox.state().values())  # no person, organization, lead, merge, deal...
    assert sandbox.stats()["requests"] == {  # the account, the listings: no event's
        "GET /v1/users/me": 1,
        "GET /api/v2/personFields": 1,
        "GET /api/v2/organizationFields": 1,
        "GET /api/v2/dealFields": 1,
        "GET /v1/leadLabels": 1,
    }
    assert [path.name for path in tmp_path.iterdir()] == [".rpd"]  # the state: no dead letter


def test_standard_input_with_the_user_id_field_unset_is_refused_before_any_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Read once, standard input has no first pass to find an event with external ids: refused
    # as before, and the hint says how such input can go.
    config = write_config(tmp_path, name="unset.toml", user_id_field='""')
    events = write_events(tmp_path / "events.ndjson", [by_person_id("m-1", 1, role="CTO")])

    run = rpd_send(sandbox, tmp_path, "-", config=config, stdin=events.read_bytes())

    assert run.exit_code == 2, run.stderr
    assert run.stderr.splitlines() == unset_refused(
        str(config),
        "; from a file (not standard input or a pipe), events with external ids go without it",
    )
    assert sandbox.stats()["requests"] == {}
    assert not run.dead_letter.exists()
    assert_stopped_while_starting(run.report, 2, run.stderr.splitlines()[0][7:])


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
