"""The report points at the cause (issue 14 item 4): 3 users' identify fails on a plan that is
not an option of the enum field, and so does every later event of those users (their persons
were never made); those later failures say so and are counted under the identify's reason."""

from __future__ import annotations

from pathlib import Path

from e2e_support import assert_report_adds_up, identify, rpd_send, track, write_events

from rudder_pipedrive_cli.sandbox import Sandbox

USERS, BAD, TRACKS = 10, 3, 2
ROOT = "cannot convert plan for field Plan (enum)"


def test_failures_of_the_same_users_are_grouped_under_their_root_cause(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    events = [
        identify(f"u-{n}-i", f"u-{n}", name=f"User {n}", plan="Starter" if n < BAD else "Pro")
        for n in range(USERS)
    ]
    # Tracks carry no name: for a user without a person, they cannot make one.
    events += [
        track(f"u-{n}-t{k}", f"u-{n}", "Signed up") for k in range(TRACKS) for n in range(USERS)
    ]
    run = rpd_send(sandbox, tmp_path, write_events(tmp_path / "events.ndjson", events))

    assert run.exit_code == 1, run.stderr
    assert run.report is not None
    assert_report_adds_up(run.report)
    assert run.report["events"]["failed"] == BAD * (1 + TRACKS)
    assert run.report["failed_by_reason"] == {ROOT: {"events": BAD, "later_events": BAD * TRACKS}}
    assert (
        "why events failed (each event's full reason is in its dead letter):\n"
        f"  {BAD}  {ROOT}\n"
        f"     +{BAD * TRACKS} later events of the same users\n"
    ) in run.stderr

    letters = {letter["event"]["messageId"]: letter["error"] for letter in run.dead_letters}
    assert sorted(letters) == sorted(
        [f"u-{n}-i" for n in range(BAD)]
        + [f"u-{n}-t{k}" for n in range(BAD) for k in range(TRACKS)]
    )
    for n in range(BAD):
        root = letters[f"u-{n}-i"]["reason"]
        assert root == (
            "cannot convert plan = Starter for field Plan (enum): expected one of Free, Pro, "
            "Enterprise"
        )
        for k in range(TRACKS):
            assert letters[f"u-{n}-t{k}"] == {
                "reason": f"no person for u-{n}: its identify failed earlier ({root})",
                "stage": "create person",
                "status": None,
                "retryable": False,
            }


def test_a_run_without_failures_has_no_failed_by_reason(sandbox: Sandbox, tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.ndjson", [identify("m-1", "u-1", name="Ann")])
    run = rpd_send(sandbox, tmp_path, events)
    assert run.exit_code == 0, run.stderr
    assert run.report is not None and "failed_by_reason" not in run.report
