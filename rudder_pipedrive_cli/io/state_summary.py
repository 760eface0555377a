"""What a state file holds, per namespace: what `rpd state show` prints, `state clear` removed."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson

from rudder_pipedrive_cli.core.identity_cache import TRACK_KINDS, origins_key, origins_kind
from rudder_pipedrive_cli.core.index import counts_by_kind
from rudder_pipedrive_cli.core.protocol import PdId
from rudder_pipedrive_cli.io.state_accounts import ACCOUNT, url_key
from rudder_pipedrive_cli.io.state_schema import (
    KINDS,
    MEMBER,
    MERGED,
    RULE_SKIPPED,
    STATUSES,
    TABLES,
    decode_id,
    pending_kinds,
    schema_of,
)

if TYPE_CHECKING:
    from rudder_pipedrive_cli.io.state_file import Guarded


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    started_at: str
    finished_at: str | None
    counts: Mapping[str, Any] | None
    latest: bool = False  # the file's most recent run: the only one a running rpd can be making


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceSummary:
    namespace: str
    base_url: str
    company_id: str = ""  # the account's; "" in a namespace keyed on a URL (an older rpd)
    fingerprint: str
    # By kind: userIds known ("person"), groupIds ("org"); not persons: two userIds merged are 2.
    identities: Mapping[str, int]
    memberships: int  # persons whose organization is known
    # By kind (lead, deal, activity, note): persons whose records were listed, origins known.
    leads_listed: Mapping[str, int]
    lead_origins: Mapping[str, int]
    journal: Mapping[str, int]  # by status: sent, unchanged, skipped, failed
    inflight: int
    # Creates and merges pending (their outcome unknown), which the next event of each settles:
    # 'N creates or merges to settle'.
    to_settle: int
    last_run: RunSummary | None
    # Objects of a bucket or backup folder recorded finished: a resumed run does not read them.
    objects_finished: int = 0
    # The events the writes in flight are of: each is settled by a send of its own event.
    inflight_events: int = 0

    def as_json(self) -> dict[str, Any]:
        """As `rpd state show --format json` prints it: the fields in order, no company as null,
        and a run without `latest` (what `state show` says)."""
        document = asdict(self)
        document["company_id"] = self.company_id or None
        if document["last_run"] is not None:
            del document["last_run"]["latest"]
        return document


def namespaces(db: sqlite3.Connection | Guarded) -> list[str]:
    union = " UNION ".join(f"SELECT DISTINCT ns FROM {table}" for table in TABLES)
    return sorted(row[0] for row in db.execute(union))


def summaries(db: sqlite3.Connection | Guarded) -> list[NamespaceSummary]:
    """Every namespace in the file, sorted: what `rpd state show` prints."""
    return [namespace_summary(db, ns) for ns in namespaces(db)]


def namespace_summary(db: sqlite3.Connection | Guarded, ns: str) -> NamespaceSummary:
    base_url, _, fingerprint = ns.rpartition("#")
    company_id = ""
    if ns.startswith(ACCOUNT):
        company_id = base_url.removeprefix(ACCOUNT)
        shown = db.execute("SELECT value FROM meta WHERE key = ?", (url_key(ns),)).fetchone()
        base_url = "" if shown is None else str(shown[0])
    # Identity rows by kind: persons, organizations, memberships, creates and merges pending.
    kinds = dict(
        db.execute("SELECT kind, count(*) FROM identities WHERE ns = ? GROUP BY kind", (ns,))
    )
    # A file from before revision 2 is shown as its first send leaves it, as dry-run reads it
    # (state_schema.FORGOTTEN): its rule skips not done, and if it has any, no object finished.
    forgets = db.execute("PRAGMA user_version").fetchone()[0] < 2
    rule_skips = 0
    if forgets:
        rule_skips = db.execute(
            f"SELECT count(*) FROM journal WHERE ns = ? AND {RULE_SKIPPED}", (ns,)
        ).fetchone()[0]
    # A file of an earlier schema is read by its own names (not yet upgraded: state show writes
    # nothing).
    pending_create, pending_merge = pending_kinds(schema_of(db))
    journal = dict.fromkeys(STATUSES, 0) | dict(
        db.execute("SELECT status, count(*) FROM journal WHERE ns = ? GROUP BY status", (ns,))
    )
    journal["skipped"] -= rule_skips

    def listed_by_kind() -> dict[str, int]:  # rows are per person and kind (origins_key)
        # But for the persons merged away: their rows stay (the survivor took their origins),
        # though Pipedrive has them no more ('2 origin ids known for 2 persons' of one person).
        merged = "SELECT key FROM identities WHERE ns = ? AND kind = ?"
        gone = {
            origins_key(kind, decode_id(key))
            for (key,) in db.execute(merged, (ns, MERGED))
            for kind in ("lead", *TRACK_KINDS)
        }
        rows = db.execute("SELECT person_id FROM leads_listed WHERE ns = ?", (ns,))
        return counts_by_kind(
            (person, 1) for (key,) in rows if (person := decode_id(key)) not in gone
        )

    def origins_by_kind() -> dict[str, int]:
        # Each record once: a merge gives the survivor the merged person's origins, which the
        # merged person's rows keep too (both true), so one lead is held by two persons.
        held: dict[tuple[str, str], PdId] = {}
        for key, origin in db.execute(
            "SELECT person_id, origin_id FROM lead_origins WHERE ns = ?", (ns,)
        ):
            person = decode_id(key)
            held.setdefault((origins_kind(person), origin), person)
        return counts_by_kind((person, 1) for person in held.values())

    try:
        finished = db.execute("SELECT count(*) FROM objects_done WHERE ns = ?", (ns,)).fetchone()[0]
    except sqlite3.OperationalError:  # no such table (made on first use): none finished
        finished = 0
    if rule_skips:  # read again by its first send
        finished = 0
    inflight = db.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM inflight WHERE ns = ?", (ns,)
    ).fetchone()
    run = db.execute(
        "SELECT started_at, finished_at, counts_json, id = (SELECT max(id) FROM runs) "
        "FROM runs WHERE ns = ? ORDER BY id DESC LIMIT 1",
        (ns,),
    ).fetchone()
    return NamespaceSummary(
        namespace=ns,
        base_url=base_url if fingerprint else ns,
        fingerprint=fingerprint,
        company_id=company_id,
        identities={kind: kinds.get(kind, 0) for kind in KINDS},
        memberships=kinds.get(MEMBER, 0),
        leads_listed=listed_by_kind(),
        lead_origins=origins_by_kind(),
        journal=journal,
        inflight=int(inflight[0]),
        to_settle=sum(kinds.get(kind, 0) for kind in (*pending_create.values(), pending_merge)),
        last_run=None
        if run is None
        else RunSummary(
            started_at=run[0],
            finished_at=run[1],
            counts=None if run[2] is None else orjson.loads(run[2]),
            latest=bool(run[3]),
        ),
        objects_finished=int(finished),
        inflight_events=int(inflight[1]),
    )
