"""The account's catalog applied to the config, as send and dry-run do before the first event."""

from __future__ import annotations

from dataclasses import replace

from rudder_pipedrive_cli.cli.common import Env
from rudder_pipedrive_cli.core.catalog import Catalog
from rudder_pipedrive_cli.core.errors import ConfigError
from rudder_pipedrive_cli.core.plans.base import PlanConfig


def applied(env: Env, catalog: Catalog, config: PlanConfig, *, listed: bool = True) -> PlanConfig:
    """The config with the catalog applied. A track rule naming a pipeline, stage or activity
    type the account does not have is a config error; one whose listing the catalog lacks
    (`listed`: a send) fails its events, retryable. An offline dry-run (`listed` False) shows
    such names as placeholders instead."""
    try:
        resolved = catalog.apply(config)
    except ConfigError as error:
        where = env.settings.path or "settings (no config file)"
        raise ConfigError(f"{where}: {error.message}", hint=error.hint) from None
    if listed and resolved.track_rules.unresolved():  # the state saved a listing without them
        why = "the listing the state saved holds no pipelines, stages or activity types"
        return replace(resolved, track_rules=resolved.track_rules.unresolvable(why))
    return resolved
