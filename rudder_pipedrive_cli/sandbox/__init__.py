"""The Pipedrive sandbox: a faithful local emulator of the API rpd uses (SPEC 1 and 7).

    with Sandbox(SandboxOptions(plan="unlimited")) as sb:
        sb.url, sb.state(), sb.stats(), sb.reset(), sb.set_faults(fail_5xx=0.1)

Modules: `seed` (fields, lead labels, pipelines, stages, activity types, user), `store` (records
and search index), `sales` (deals, activities, notes), `times`, `routes` (the route table and
validation), `schemas` (generated from the OpenAPI descriptions), `limits` (rate limits),
`faults`, `app` (one request in, one answer out, no sockets), `server` (the HTTP/1.1 shell and
`Sandbox`).

`GET /_sandbox/state` and `Sandbox.state()` return

    {"persons": [...], "organizations": [...], "leads": [...],
     "merges": [{"merged_id": int, "survivor_id": int}],
     "deals": [...], "activities": [...], "notes": [...]}

with the records exactly as the API returns them: persons and organizations in v2 shape
(`id`, `name`, `owner_id`, `add_time`, `update_time`, `visible_to`, `label_ids`, `is_deleted`,
`custom_fields` with every custom field key (null when unset); persons also `first_name`,
`last_name`, `org_id`, `emails`, `phones`), leads in v1 shape (`id` (UUID), `title`,
`person_id`, `organization_id`, `origin_id`, `value`, `label_ids`, `expected_close_date`,
`visible_to`, ... and custom deal fields as top-level keys), deals and activities in v2 shape,
notes in v1 shape. Merged-away persons are not listed.

`GET /_sandbox/stats` and `Sandbox.stats()` return

    {"requests": {"METHOD /path/template": n}, "statuses": {"200": n, ...}, "tokens": n,
     "rate_limited": n, "forbidden": n, "resets": n, "mangled": n}

counting API requests only (not `/_sandbox/*`); `rate_limited` counts 429s served (spurious ones
included), `forbidden` the edge's HTML 403s, `resets` the answers dropped by `fail_reset`,
`mangled` the lookups answered with a malformed body by `fail_mangle`.
"""

from rudder_pipedrive_cli.sandbox.options import SandboxOptions
from rudder_pipedrive_cli.sandbox.server import Sandbox

__all__ = ["Sandbox", "SandboxOptions"]
