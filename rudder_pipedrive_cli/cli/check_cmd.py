"""`rpd check`: is this config ready for a replay? One line per check, a hint under each problem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from rudder_pipedrive_cli.cli import options as opt
from rudder_pipedrive_cli.cli.account import account_client
from rudder_pipedrive_cli.cli.common import Env, command_env, handle_errors
from rudder_pipedrive_cli.cli.exits import ExitStatus, exit_status_for
from rudder_pipedrive_cli.cli.screen import say
from rudder_pipedrive_cli.core.account import USERS_ME, USERS_ME_REQUEST, not_pipedrive
from rudder_pipedrive_cli.core.catalog_fetch import fetch_catalog, sales_listings
from rudder_pipedrive_cli.core.catalog_findings import (
    Finding,
    identity_findings,
    listing_findings,
    mapping_findings,
    rule_findings,
)
from rudder_pipedrive_cli.core.costs import DAILY_TOKENS, PLANS, SEARCH_LIMIT, WINDOW_S, token_cost
from rudder_pipedrive_cli.core.errors import (
    AuthRefused,
    PlanFailure,
    RpdError,
    Unreachable,
    UsageError,
)
from rudder_pipedrive_cli.core.plans.common import malformed
from rudder_pipedrive_cli.core.protocol import ApiResponse
from rudder_pipedrive_cli.io.config import DEFAULT_CONFIG, refused_token_hint, require_token

SEARCH, CREATE = "GET /api/v2/itemSearch/field", "POST /api/v2/persons"  # the usual costs
MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "info": "info"}
UNDER_MARK = " " * 6  # a wrapped check goes on under its text, past the mark (screen.wrap)


class Checklist:
    """Prints each finding as it is made and remembers whether any failed."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.passed = 0
        self.failed = 0
        self.warned = 0

    def add(self, finding: Finding) -> None:
        if finding.level == "fail":
            self.failed += 1
        else:
            self.passed += 1
            self.warned += finding.level == "warn"
        self.say(finding.level, finding.line, finding.hint)

    def say(self, mark: str, line: str, hint: str = "") -> None:
        if self.env.quiet and mark in ("ok", "info"):
            return
        text = f"{MARKS[mark]}  {line}" + (f"\n      hint: {hint}" if hint else "")
        say(self.env.out, text, indent=UNDER_MARK)

    def summary(self) -> str:
        total = self.passed + self.failed
        warned = f" ({self.warned} with a warning)" if self.warned else ""
        if self.failed:
            return f"{self.failed} of {total} checks failed{warned}"
        return f"all {total} checks passed{warned}"


def who(me: Mapping[str, Any]) -> str:
    """The user and company the token belongs to (never the token itself)."""
    user = str(me.get("name") or "?")
    if me.get("email"):
        user += f" <{me['email']}>"
    company = f'company "{me.get("company_name") or "?"}"'
    if me.get("company_domain"):
        company += f" ({me['company_domain']}.pipedrive.com)"
    return f"accepted: {user}, {company}"


def plan_limits(plan: str) -> str:
    limits = PLANS.get(plan)
    if limits is None:
        return f"plan {plan}: no pacing (for the sandbox; a real account has limits)"
    daily = DAILY_TOKENS * limits.multiplier
    searches, writes = daily // token_cost(SEARCH), daily // token_cost(CREATE)
    return (
        f"plan {plan}: up to {limits.burst} requests every {WINDOW_S:g} s, {SEARCH_LIMIT} of them "
        f"searches\n      a day: {daily:,} API tokens per seat ({searches:,} searches or "
        f"{writes:,} creates)\n      when they are spent, rpd stops; rerun it the next day to "
        "resume"
    )


def config_finding(env: Env) -> Finding:
    path = env.settings.path
    if path is None:
        return Finding(
            level="warn",
            subject="config",
            message=f"no config file ({DEFAULT_CONFIG}): using the environment and defaults",
            hint="write one with `rpd init`",
        )
    return Finding(level="ok", subject="config", message=f"{path} is valid")


def token_finding(response: ApiResponse, url: str) -> Finding:
    if response.ok and isinstance(response.data, Mapping):
        return Finding(level="ok", subject="token", message=who(response.data))
    answer = f"HTTP {response.status} {response.error}".rstrip()
    hint = "check base_url / company_domain"
    if response.malformed:  # a page that is not Pipedrive's (a web site at base_url): say why
        answer += f", not Pipedrive's answer ({response.malformed})"
        hint = try_again(url)  # as exit 4 says: a portal's page goes away, a wrong URL does not
    return Finding(
        level="fail", subject="token", message=f"{USERS_ME} answered {answer}", hint=hint
    )


def try_again(url: str) -> str:
    """The hint of a request that may get through later, or at a corrected URL."""
    return f"is {url} right (base_url, company_domain) and reachable? then try again"


@handle_errors
def check_command(
    plan: opt.PlanOpt = None,
    base_url: opt.BaseUrlOpt = None,
    config: opt.ConfigOpt = None,
    verbose: opt.VerboseOpt = False,
    quiet: opt.QuietOpt = False,
    sandbox: opt.SandboxOpt = False,
) -> None:
    """Check the config against the account: token, identity fields, mapped field keys, track
    rules (pipelines, stages, activity types), limits.

    Exit 0 when every check passes; 2 when the config is invalid or a check fails (a missing or
    unsearchable identity field, an unknown mapped key); 3 when Pipedrive refuses the token;
    4 when Pipedrive could not be reached, kept failing (5xx, 429: its retries spent) or gave
    an answer that is not its own, or the rate limit stopped it. A listing that failed is a
    failed check of its own (what needs it is not checked; every other check is made and
    shown): while every check it could make passed, its failure is the exit (4; 2 when
    Pipedrive refused it for good, a 4xx).
    """
    with command_env(
        config=config,
        verbose=verbose,
        quiet=quiet,
        sandbox=sandbox,
        overrides={"pipedrive.plan": plan, "pipedrive.base_url": base_url},
        say_no_config=False,  # its first check says it
    ) as env:
        checks = Checklist(env)
        checks.add(config_finding(env))
        plan_config = env.settings.plan_config()
        try:
            require_token(env.settings)
        except UsageError as error:  # no token: the token's row says it, under the config's
            raise typer.Exit(int(stop(checks, error))) from None
        with account_client(env) as client:  # an unusable proxy is no token's fault: an error line
            try:
                me = client.send(USERS_ME_REQUEST)
                wrong = not_pipedrive(me.status, env.settings.api_url)
                if wrong is not None:  # every listing would answer 404 too: said once, as send
                    raise typer.Exit(int(stop(checks, wrong, "pipedrive")))
                checks.add(token_finding(me, env.settings.api_url))
                # An answer that is not Pipedrive's (a web page at base_url, a portal's): no
                # check of the config failed, the request did, as a listing's answer alike does
                # (map-fields', init's): the same exit (exits.request_failed), not the config's.
                unmade = (
                    [malformed(me, USERS_ME_REQUEST.stage, me.malformed)] if me.malformed else []
                )
                sales = sales_listings(plan_config.track_rules)
                catalog = client.exchange(fetch_catalog(sales=sales, each=True))
            except (AuthRefused, PlanFailure) as error:
                if isinstance(error, AuthRefused):  # said with where the token came from
                    error.hint = refused_token_hint(env.settings)
                raise typer.Exit(int(stop(checks, error))) from None
            except Unreachable as error:  # no answer to any try: in every command's words
                raise typer.Exit(int(stop(checks, error, "pipedrive"))) from None
        judged = (listing_findings, identity_findings, mapping_findings, rule_findings)
        for findings in judged:
            for finding in findings(catalog, plan_config):
                checks.add(finding)
        checks.say("info", plan_limits(env.settings.plan))
        say(checks.env.out, checks.summary())
    unmade += catalog.failed.values()  # the listings Pipedrive refused or did not answer
    if checks.failed > len(unmade):  # a check that was made failed: the config's fault
        raise typer.Exit(int(ExitStatus.USAGE))
    status = exit_status_for(unmade[0]) if unmade else ExitStatus.OK
    raise typer.Exit(int(status))


def stop(checks: Checklist, error: RpdError | PlanFailure, subject: str = "token") -> ExitStatus:
    """The check that could not go on (`subject`, for one of rpd's errors), and the exit status
    it leads to."""
    if isinstance(error, RpdError):
        message, hint = error.message, error.hint
    else:
        subject, message, hint = "pipedrive", error.reason, ""
        if error.retryable:
            hint = try_again(checks.env.settings.api_url)
    checks.add(Finding(level="fail", subject=subject, message=message, hint=hint))
    say(checks.env.out, checks.summary())
    return exit_status_for(error)
