"""Dry-run reads the replay state, never writes it: a plan made after a replay shows updates, not
creations, for known identities, and skips what the replay finished (SPEC 5, issue 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app
from rudder_pipedrive_cli.core.catalog import Catalog
from rudder_pipedrive_cli.core.plans.base import FieldInfo
from rudder_pipedrive_cli.core.protocol import Learned, Outcome
from rudder_pipedrive_cli.io.catalog_cache import load_catalog, save_catalog
from rudder_pipedrive_cli.io.state import ReplayState
from rudder_pipedrive_cli.io.state_accounts import namespace_key, token_fingerprint
from rudder_pipedrive_cli.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
PLAN_FIELD = "2166d04123ea6d974ed242877a8d769fe934c896"


def config_for(tmp_path: Path, url: str) -> Path:
    text = (ROOT / "config.example.toml").read_text()
    text = text.replace('base_url = ""', f'base_url = "{url}"')
    path = tmp_path / "rpd.toml"
    path.write_text(text)
    return path


def event_file(tmp_path: Path, name: str, *events: dict[str, object]) -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(path)


IDENTIFY = {"type": "identify", "messageId": "m-1", "userId": "u-1", "traits": {"name": "Ada"}}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", "sandbox-token")
    monkeypatch.delenv("RPD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def test_dry_run_after_a_replay_uses_cache_and_journal(
    env: None, tmp_path: Path, sandbox: Sandbox
) -> None:
    config = str(config_for(tmp_path, sandbox.url))
    state = str(tmp_path / "state.sqlite")
    first = event_file(tmp_path, "first.ndjson", IDENTIFY)
    sent = CliRunner().invoke(app, ["send", first, "--config", config, "--state", state, "-q"])
    assert sent.exit_code == 0, sent.stderr
    before = Path(state).read_bytes()

    later = {"type": "identify", "messageId": "m-2", "userId": "u-1", "traits": {"name": "Ada L"}}
    second = event_file(tmp_path, "second.ndjson", IDENTIFY, later)
    result = CliRunner().invoke(
        app, ["dry-run", second, "--config", config, "--state", state, "-f", "ndjson", "-q"]
    )
    assert result.exit_code == 0, result.stderr
    done, update = (json.loads(line) for line in result.stdout.splitlines())
    assert (done["outcome"], done["reason"], done["requests"]) == ("skipped", "already done", [])
    (request,) = update["requests"]
    person_id = sandbox.state()["persons"][0]["id"]
    assert (request["method"], request["path"]) == ("PATCH", f"/api/v2/persons/{person_id}")
    assert request["body"] == {"name": "Ada L"}
    assert Path(state).read_bytes() == before  # read-only


def test_with_a_state_a_repeated_message_id_is_skipped_as_send_would(
    env: None, tmp_path: Path, sandbox: Sandbox
) -> None:
    config = str(config_for(tmp_path, sandbox.url))
    state = str(tmp_path / "state.sqlite")
    seed = event_file(tmp_path, "seed.ndjson", IDENTIFY | {"messageId": "m-0"})
    sent = CliRunner().invoke(app, ["send", seed, "--config", config, "--state", state, "-q"])
    assert sent.exit_code == 0, sent.stderr
    again = IDENTIFY | {"messageId": "m-2", "traits": {"name": "Ada L"}}
    events = event_file(tmp_path, "dup.ndjson", again, again | {"traits": {"name": "Ada M"}})
    outcomes = {}
    for command in ("dry-run", "send"):
        args = [command, events, "--config", config, "--state", state, "-q"]
        result = CliRunner().invoke(app, args + (["-f", "ndjson"] if command == "dry-run" else []))
        assert result.exit_code == 0, result.stderr
        outcomes[command] = result.stdout
    first, repeat = (json.loads(line) for line in outcomes["dry-run"].splitlines())
    assert first["outcome"] == "planned"
    assert (repeat["outcome"], repeat["reason"]) == ("skipped", "already done")
    assert [p["name"] for p in sandbox.state()["persons"]] == ["Ada L"]  # send skipped it too


def test_dry_run_without_token_picks_the_base_urls_only_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPEDRIVE_API_TOKEN", raising=False)
    url = "https://acme.example"
    config = str(config_for(tmp_path, url))
    state = tmp_path / "state.sqlite"
    with ReplayState.open(state, namespace_key(url, "tok-1")) as replay_state:
        replay_state.learn(
            Outcome(status="sent", learned=Learned(identities={("person", "u-1"): 77}))
        )
        save_catalog(
            replay_state,
            Catalog(
                fields={
                    "persons": (
                        FieldInfo(
                            key=PLAN_FIELD,
                            name="Plan",
                            field_type="enum",
                            options={"Free": 101, "Pro": 102},
                        ),
                    )
                }
            ),
        )
        replay_state.flush()
        assert load_catalog(replay_state) is not None
    event = IDENTIFY | {"traits": {"plan": "Pro"}}
    result = CliRunner().invoke(
        app,
        [
            "dry-run",
            event_file(tmp_path, "e.ndjson", event),
            "--config",
            config,
            "--state",
            str(state),
            "-f",
            "ndjson",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.stderr
    (request,) = json.loads(result.stdout)["requests"]
    assert request["path"] == "/api/v2/persons/77"
    assert request["body"] == {"custom_fields": {PLAN_FIELD: 102}}  # coerced from the cache


def sent_to_acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, *, token: str) -> Path:
    """A state where a send with token tok-1 reached company 42 at `url` and sent m-1; the
    dry-run that follows runs in `tmp_path` with `token`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", token)
    monkeypatch.delenv("RPD_CONFIG", raising=False)
    state = tmp_path / "state.sqlite"
    with ReplayState.open(state, "") as replay_state:
        replay_state.use_account("42", url, "tok-1")
        replay_state.record_outcome("m-1", "e.ndjson:1", Outcome(status="sent"))
    return state


def test_a_state_holding_nothing_for_this_account_is_said_with_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 14 item 10: before, every event was planned as a create without a word.
    state = sent_to_acme(tmp_path, monkeypatch, "https://acme.pipedrive.com", token="tok-2")
    config = str(config_for(tmp_path, "https://other.example"))
    events = event_file(tmp_path, "e.ndjson", IDENTIFY)

    result = CliRunner().invoke(
        app, ["dry-run", events, "--config", config, "--state", str(state), "-f", "ndjson"]
    )

    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"warning: {state} holds nothing for https://other.example (token "
        f"{token_fingerprint('tok-2')}), so every event is planned as new; it holds: "
        f"https://acme.pipedrive.com (company 42, token {token_fingerprint('tok-1')})"
    )
    assert json.loads(result.stdout)["outcome"] == "planned"  # not skipped: another account's


def test_an_empty_state_is_planned_without_a_word(
    env: None, tmp_path: Path, sandbox: Sandbox
) -> None:
    # A newcomer's first send with a wrong token leaves an empty state file; every dry-run after
    # it said "holds nothing for https://api.pipedrive.com ...; it holds: nothing".
    config = str(config_for(tmp_path, sandbox.url))
    events = event_file(tmp_path, "e.ndjson", IDENTIFY)
    refused = CliRunner().invoke(
        app, ["send", events, "--config", config, "-q"], env={"PIPEDRIVE_API_TOKEN": "wrong"}
    )
    assert refused.exit_code == 3, refused.stderr
    state = tmp_path / ".rpd" / "state.sqlite"
    assert state.exists()

    result = CliRunner().invoke(app, ["dry-run", events, "--config", config, "-f", "ndjson"])

    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("Planned events")  # the summary, no warning before it
    assert json.loads(result.stdout)["outcome"] == "planned"


def test_dry_run_reads_the_account_a_send_reached_by_another_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # company_domain = "acme" and base_url = "https://ACME.pipedrive.com/" are one account.
    state = sent_to_acme(tmp_path, monkeypatch, "https://ACME.pipedrive.com/", token="tok-1")
    config = tmp_path / "rpd.toml"
    text = (ROOT / "config.example.toml").read_text()
    config.write_text(text.replace('company_domain = ""', 'company_domain = "acme"'))
    events = event_file(tmp_path, "e.ndjson", IDENTIFY)

    result = CliRunner().invoke(
        app, ["dry-run", events, "--config", str(config), "--state", str(state), "-f", "ndjson"]
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "skipped"
    assert "warning" not in result.stderr


def sent_then_unknown(tmp_path: Path, sandbox: Sandbox, key: str) -> tuple[Path, str, str]:
    """The config, state and events of a send to `sandbox`, after which the config's `key` is
    replaced by one the account lacks (forty zeros)."""
    config = config_for(tmp_path, sandbox.url)
    state = str(tmp_path / "state.sqlite")
    seed = event_file(tmp_path, "seed.ndjson", IDENTIFY)
    sent = CliRunner().invoke(app, ["send", seed, "--config", str(config), "--state", state, "-q"])
    assert sent.exit_code == 0, sent.stderr
    config.write_text(config.read_text().replace(key, "0" * 40))
    return config, state, seed


def test_an_offline_dry_run_says_what_a_send_refuses_in_the_catalog_the_state_saved(
    env: None, tmp_path: Path, sandbox: Sandbox
) -> None:
    """An identity field the account lacks stops a send before any event (exit 2); an offline
    dry-run with a state plans with the catalog the last send saved, which says so too: it
    warns, as dry-run --lookups does, where it planned every event without a word, exit 0."""
    user_id_field = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
    config, state, seed = sent_then_unknown(tmp_path, sandbox, user_id_field)
    args = [seed, "--config", str(config), "--state", state]

    planned = CliRunner().invoke(app, ["dry-run", *args, "-f", "ndjson", "-o", "plan.ndjson"])
    refused = CliRunner().invoke(app, ["send", *args])

    missing = f"identity.user_id_field = '{'0' * 40}': the account has no such person field"
    hint = "create a person custom field for it, or pick one from `rpd map-fields --entity persons`"
    assert planned.exit_code == 0, planned.stderr
    assert planned.stderr.splitlines()[0] == (
        f"warning: {missing}: every event that needs it would fail, so `rpd send` would not start "
        f"({hint}; `rpd check` runs every check)"
    )
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"error: {config}: {missing}: every event that needs it would fail\n"
        f"hint: {hint}; `rpd check` runs every check\n"
    )


def test_an_offline_dry_run_warns_of_unknown_field_keys_as_send_does_with_the_saved_catalog(
    env: None, tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mapped field the account lacks: send warns of it once before its first event, with the
    catalog it listed or the one the state saved; an offline dry-run planning with that saved
    catalog said nothing of it (its values are dropped from every event)."""
    role = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
    config, state, _ = sent_then_unknown(tmp_path, sandbox, role)
    later = {**IDENTIFY, "messageId": "m-2"}
    args = [event_file(tmp_path, "later.ndjson", later), "--config", str(config), "--state", state]

    monkeypatch.delenv("PIPEDRIVE_API_TOKEN")  # offline: only the state's catalog
    planned = CliRunner().invoke(app, ["dry-run", *args, "-f", "ndjson", "-o", "plan.ndjson"])
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", "sandbox-token")
    sent = CliRunner().invoke(app, ["send", *args])

    unknown = (
        f"warning: fields.persons.role = '{'0' * 40}': the account has no such person field "
        "(run `rpd map-fields` to list them)"
    )
    assert (planned.exit_code, sent.exit_code) == (0, 0), planned.stderr + sent.stderr
    said = [[line for line in r.stderr.splitlines() if "fields." in line] for r in (sent, planned)]
    assert said == [[unknown], [unknown]]


def test_a_send_with_the_user_id_field_set_asks_the_journal_once_an_event(
    env: None, tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether an event names its person by id alone is judged against the journal only for an
    unset user_id_field, the one verdict it serves: with the field set, send's first pass asked
    the journal of each such event, and the main pass asked again (a rerun of 200,000 of them
    done: 0.85-1.1 s more in that pass, measured)."""
    config = str(config_for(tmp_path, sandbox.url))
    state = str(tmp_path / "state.sqlite")
    by_id = [
        {
            "type": "identify",
            "messageId": f"x-{n}",
            "traits": {"name": "Ada"},
            "context": {"externalId": [{"type": "person_id", "id": 1}]},
        }
        for n in range(3)
    ]
    args = ["--config", config, "--state", state, "-q"]
    seed = CliRunner().invoke(app, ["send", event_file(tmp_path, "seed.ndjson", IDENTIFY), *args])
    assert seed.exit_code == 0, seed.stderr
    events = event_file(tmp_path, "by-id.ndjson", *by_id)
    sent = CliRunner().invoke(app, ["send", events, *args])
    assert sent.exit_code == 0, sent.stderr
    asked: list[str] = []
    status = ReplayState.journal_status

    def counted(self: ReplayState, event_id: str) -> str | None:
        asked.append(event_id)
        return status(self, event_id)

    monkeypatch.setattr(ReplayState, "journal_status", counted)
    rerun = CliRunner().invoke(app, ["send", events, *args, "--report", "report.json"])

    assert rerun.exit_code == 0, rerun.stderr
    assert json.loads(Path("report.json").read_text())["events"]["skipped"] == 3
    assert sorted(asked) == ["x-0", "x-1", "x-2"]
