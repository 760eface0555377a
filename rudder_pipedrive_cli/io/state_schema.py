"""The state file's tables: their SQL, the schema version, and how values are written in rows."""

from __future__ import annotations

from typing import Any

from rudder_pipedrive_cli.core.protocol import PdId
from rudder_pipedrive_cli.core.rules import SKIP_REASON

# Schema 2: the journal keeps each event's source as the id of its file's name (`source_files`)
# and its place in that file, not the whole "FILE:LINE" text: a bucket object's URL was 84 of the
# ~190 bytes each event took in the journal. A file of schema 1 is rewritten so (`UPGRADES`) when
# first opened for writing; an older rpd then refuses it ("written by a newer rpd (schema 2)").
# Schema 3: the identity rows of creates and merges left pending are named so (PENDING_CREATE,
# PENDING_MERGE), where schema 2 named them "unsettled:person", "unsettled:org" and "merging"
# (issue 12: one fact, one name). A schema change, not a revision (FORGOTTEN): an older rpd
# reads a newer revision as its own, so it would find no create pending and make it again.
SCHEMA_VERSION = 3
# The schema whose journal names its files in `source_files`: a file from before it holds its
# journal as EARLIER_COLUMNS, and its upgrade rewrites the journal (UPGRADE_ROOM, then a VACUUM).
JOURNAL_SCHEMA = 2
KINDS = ("person", "org")
# Identity rows of this kind map a person (key) to its organization as last learned (a group's
# link, a create or an answer that names it), so a later run's deals, activities and notes carry
# it (SPEC 4 track rules). Files from before it hold none: read as none known.
MEMBER = "member"
# Identity rows of this kind map a person merged away (key) to the person it went into.
MERGED = "merged"
# Identity rows of these kinds hold the send time of a create of a person or an organization
# whose outcome stays unknown (Learned.pending_creates), as a string id.
PENDING_CREATE = {"person": "pending:person", "org": "pending:org"}
# Identity rows of this kind map a person (key) to the one a merge left unknown was into.
PENDING_MERGE = "pending:merge"
# Those kinds as a file of schema 2 names them, until its upgrade renames them (`pending_kinds`).
PENDING_BEFORE_3 = {
    PENDING_CREATE["person"]: "unsettled:person",
    PENDING_CREATE["org"]: "unsettled:org",
    PENDING_MERGE: "merging",
}
# Identity rows of these kinds map a person or an organization (key) to the identities it holds
# since an external id wrote one into its identity field (Learned.holders), a JSON array.
HOLDER = {"person": "holds:person", "org": "holds:org"}
STATUSES = ("sent", "unchanged", "skipped", "failed")

# Each event's source ("FILE:LINE", "FILE:LINE#N") is the name of its file, kept once in
# `source_files`, and its place: `split_source`; a journal row's source is name || place:
# SELECT name || place FROM journal JOIN source_files ON id = file
SOURCE_FILES = "source_files"
SOURCE_FILES_SCHEMA = (
    f"CREATE TABLE {SOURCE_FILES} (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"
)
JOURNAL_COLUMNS = """(
    ns TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    file INTEGER NOT NULL, place TEXT NOT NULL, finished_at TEXT NOT NULL,
    PRIMARY KEY (ns, event_id)
) WITHOUT ROWID"""
SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE identities (
    ns TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, pd_id TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (ns, kind, key)
) WITHOUT ROWID;
CREATE TABLE lead_origins (
    ns TEXT NOT NULL, person_id TEXT NOT NULL, origin_id TEXT NOT NULL,
    PRIMARY KEY (ns, person_id, origin_id)
) WITHOUT ROWID;
CREATE TABLE leads_listed (
    ns TEXT NOT NULL, person_id TEXT NOT NULL, PRIMARY KEY (ns, person_id)
) WITHOUT ROWID;
CREATE TABLE journal {JOURNAL_COLUMNS};
{SOURCE_FILES_SCHEMA};
CREATE TABLE inflight (
    ns TEXT NOT NULL, event_id TEXT NOT NULL, method TEXT NOT NULL, endpoint TEXT NOT NULL,
    path TEXT NOT NULL, sent_at TEXT NOT NULL, PRIMARY KEY (ns, event_id, method, endpoint, path)
) WITHOUT ROWID;
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, ns TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    counts_json TEXT
);
CREATE TABLE fields (
    ns TEXT NOT NULL, entity TEXT NOT NULL, fetched_at TEXT NOT NULL, payload_json TEXT NOT NULL,
    PRIMARY KEY (ns, entity)
) WITHOUT ROWID;
"""
TABLES = ("identities", "lead_origins", "leads_listed", "journal", "inflight", "runs", "fields")
# Columns a table had before JOURNAL_SCHEMA, read as rpd's until the file is upgraded: a
# read-only open (a dry-run) of a file of schema 1 reads its journal as it is.
EARLIER_COLUMNS = {
    "journal": ("ns", "event_id", "status", "reason", "source", "finished_at"),
}
# The statements that bring a file of the schema before each version to it, in one transaction
# with the version's mark (state_file.py `prepare`); SOURCE_NAME and SOURCE_PLACE are
# `split_source`'s halves as SQL functions.
SOURCE_NAME, SOURCE_PLACE = "rpd_source_name", "rpd_source_place"
UPGRADES = {
    2: (
        SOURCE_FILES_SCHEMA,
        f"CREATE TABLE journal_2 {JOURNAL_COLUMNS}",
        f"INSERT INTO {SOURCE_FILES} (name) "
        f"SELECT DISTINCT {SOURCE_NAME}(source) FROM journal ORDER BY 1",
        f"INSERT INTO journal_2 SELECT j.ns, j.event_id, j.status, j.reason, f.id, "
        f"{SOURCE_PLACE}(j.source), j.finished_at FROM journal AS j "
        f"JOIN {SOURCE_FILES} AS f ON f.name = {SOURCE_NAME}(j.source)",
        "DROP TABLE journal",
        "ALTER TABLE journal_2 RENAME TO journal",
    ),
    3: (
        "UPDATE identities SET kind = CASE kind "
        + " ".join(f"WHEN '{old}' THEN '{new}'" for new, old in PENDING_BEFORE_3.items())
        + " END WHERE kind IN ("
        + ", ".join(f"'{old}'" for old in PENDING_BEFORE_3.values())
        + ")",
    ),
}
# The free space an upgrade takes on the state's disk, per byte of the file: the new tables are
# written beside the old ones and the whole transaction sits in the -wal until it commits (a
# 63.3 MB file of schema 1 grew to 102.3 MB beside a -wal of 102.7 MB: 141.7 MB, 2.24 times).
UPGRADE_ROOM = 2.25
# The room SQLite's temporary files take during the upgrade, per byte of the file, in its own
# temporary folder (`state_file.sqlite_temp_folder`), not beside the state: the same 63.3 MB file
# was refused with 60 MiB there, upgraded and vacuumed with 64 MiB (67.1 MB, 1.06 times).
UPGRADE_TEMP = 1.1
# What the upgrade's commit may still write after its room was checked (SQLite's page cache,
# 2 MB by default, and the -shm), so that its checkpoint has the room it needs (`room_to_commit`).
UPGRADE_MARGIN = 4_000_000
# A meta row written in the upgrade's transaction, deleted once the file has been vacuumed: a
# VACUUM killed or refused for want of space (the upgrade is done) is done at a later open.
VACUUM_DUE = "vacuum_due"
# Field recency (core/recency.py): per record and field, the time of the event whose value rpd
# last wrote. Added to files of schema 1 when first opened for writing; read as empty until then.
RECENCY_TABLE = "field_recency"
RECENCY_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {RECENCY_TABLE} (
    ns TEXT NOT NULL, kind TEXT NOT NULL, pd_id TEXT NOT NULL, field TEXT NOT NULL,
    stamp TEXT NOT NULL, PRIMARY KEY (ns, kind, pd_id, field)
) WITHOUT ROWID
"""
# Objects of a bucket or backup folder a run read to the end with every event done (SPEC 2,
# resume), by name and version (ETag or size); read under skip rules, the version is followed by
# their digest (state.py `read_as`: " skips:" and 16 hex digits), so that a run under other
# rules reads the object again. Created on first use, so that files written before it open as
# they are.
OBJECTS_TABLE = """
CREATE TABLE IF NOT EXISTS objects_done (
    ns TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, finished_at TEXT NOT NULL,
    PRIMARY KEY (ns, name)
) WITHOUT ROWID
"""
# The input's aliases (previousId -> userId, linked on along chains: `alias_into`) that send's
# first pass found (core/index.py `input_aliases`), kept so that a resumed run, which reads no
# finished object again, still knows those in them. Created on first use, as objects_done.
ALIASES_TABLE = "input_aliases"
ALIASES_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {ALIASES_TABLE} (
    ns TEXT NOT NULL, previous_id TEXT NOT NULL, user_id TEXT NOT NULL,
    PRIMARY KEY (ns, previous_id)
) WITHOUT ROWID
"""

# The identity index (core/index.py): one row per listed record with its identity value, and per
# kind the field it was listed by and the Pipedrive-clock time its next refresh lists from.
INDEX_TABLE = "identity_index"
INDEX_MARKS = "identity_index_marks"
INDEX_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {INDEX_TABLE} (
    ns TEXT NOT NULL, kind TEXT NOT NULL, pd_id TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (ns, kind, pd_id)
) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {INDEX_TABLE}_value ON {INDEX_TABLE} (ns, kind, value)",
    f"""CREATE TABLE IF NOT EXISTS {INDEX_MARKS} (
    ns TEXT NOT NULL, kind TEXT NOT NULL, field_key TEXT NOT NULL, since TEXT NOT NULL,
    PRIMARY KEY (ns, kind)
) WITHOUT ROWID""",
)

# What a file written before a fix holds that the fixed code would misread, and so forgets once:
# when the file is first opened for writing, in one transaction with its mark (SQLite's
# `user_version`, 0 in files from before the marks; a new file is marked at once). Revision 1:
# index values were kept trimmed (a lookup is of the exact value) and a person's listing was
# marked complete without its archived deals: the index is listed anew and each person's
# records listed again when next needed (the origins learned stay: they are still true). A
# read-only open of a file not yet marked reads it as forgotten already (state_store.py's
# `revision`: the index and the leads_listed marks), so a dry-run plans as the send will.
# Revision 2: an event a skip rule took was journaled as done, and an object whose events were
# all done finished, whatever rules it was read under (state.py `read_as`): a changed rule
# never reached those events. The journal's rule skips are forgotten, and so are the finished
# objects of a namespace that journaled any (read again once: what was sent is done).
REVISION = 2
RULE_SKIPPED = f"reason = '{SKIP_REASON}'"  # a journal row of an event a skip rule took
FORGOTTEN = {
    1: (f"DELETE FROM {INDEX_TABLE}", f"DELETE FROM {INDEX_MARKS}", "DELETE FROM leads_listed"),
    2: (
        OBJECTS_TABLE,
        f"DELETE FROM objects_done WHERE ns IN (SELECT ns FROM journal WHERE {RULE_SKIPPED})",
        f"DELETE FROM journal WHERE {RULE_SKIPPED}",
    ),
}


def split_source(source: str) -> tuple[str, str]:
    """An event's source as its file's name and its place in it (io/readers.py: ":LINE", then
    "#N" for each batch it is in): "in.ndjson:4" is ("in.ndjson:", "4"), "s3://b/k.json.gz:7#2"
    ("s3://b/k.json.gz:", "7#2"), "C:\\x\\all.json#3" ("C:\\x\\all.json", "#3"). Not up to the
    last colon: an array's elements, "FILE#N", then kept the whole path in each row (or from a
    colon in it on); the name || the place is the source as given, however it is cut."""
    head = source
    while (split := head.rpartition("#"))[1] and split[2].isdigit():
        head = split[0]
    colon = head.rfind(":")
    cut = colon + 1 if colon >= 0 and head[colon + 1 :].isdigit() else len(head)
    return source[:cut], source[cut:]


def schema_of(db: Any) -> int:
    """The schema of the file open in `db` (a connection): this rpd's for a new state, which a
    read-only open holds in memory with no version."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return SCHEMA_VERSION if row is None else int(row[0])


def pending_kinds(schema: int) -> tuple[dict[str, str], str]:
    """The kinds of the identity rows of pending creates (by record kind) and pending merges, as
    a file of `schema` names them: a read-only open (a dry-run, `rpd state show`) of a file not
    yet upgraded reads them by its own names."""
    if schema >= 3:
        return PENDING_CREATE, PENDING_MERGE
    creates = {kind: PENDING_BEFORE_3[name] for kind, name in PENDING_CREATE.items()}
    return creates, PENDING_BEFORE_3[PENDING_MERGE]


def encode_id(pd_id: PdId) -> str:
    """A Pipedrive id as text with a type tag, so 5 and "5" stay distinct and come back as sent."""
    return f"i:{pd_id}" if isinstance(pd_id, int) else f"s:{pd_id}"


def decode_id(text: str) -> PdId:
    tag, _, value = text.partition(":")
    return int(value) if tag == "i" else value
