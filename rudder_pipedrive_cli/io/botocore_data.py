"""botocore's data files, loaded lean for the session whose credential chain rpd's S3 client uses
(issue 17) when the credentials are not static keys (SSO, roles, credential_process, web
identity, container and instance credentials: io/s3.py).

The chain's providers make STS, SSO and sign-in clients, and a client makes botocore load big
JSON files and keep them as long as the client lives: the endpoints of every AWS service
(`endpoints.json`, 1.2 MB of text), the service's model and its endpoint rules (for S3, 1.3 MB,
of which 1 MB is documentation). botocore parses them into OrderedDicts,
which cost 15.9 MB of RSS, more than half of what a whole local-folder run takes. This loader
reads the same files, from the same search path (AWS_DATA_PATH, ~/.aws/models, botocore's own),
into plain dicts (orjson; a dict keeps its order as an OrderedDict does), empties the
documentation strings (only docstrings read them; the keys stay, as some code indexes them), and
keeps, of the endpoints file, the services an S3 session can call: S3, and the ones its
credential providers call (STS for roles and web identity, SSO and SSO-OIDC, sign-in). Another
service's endpoint falls back to the partition's defaults, as botocore does for a service it
does not list. Nothing else changes: the same models, the same endpoint rules, the same client.

Imported only when an s3:// URL is read with credentials only botocore's chain can give
(botocore comes with the s3 extra).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from botocore.loaders import (  # type: ignore[import-untyped]
    JSONFileLoader,
    Loader,
    create_loader,
)

if TYPE_CHECKING:
    from botocore.session import Session  # type: ignore[import-untyped]

# The services an S3 session calls: S3, and its credential providers' (botocore.credentials).
SERVICES = frozenset({"s3", "sts", "sso", "sso-oidc", "signin"})
# As botocore looks for a data file: plain JSON first, then gzipped.
OPENERS = ((".json", open), (".json.gz", gzip.open))


class LeanFileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's JSON file loader, into plain dicts without documentation text."""

    def load_file(self, file_path: str) -> Any:
        for extension, opener in OPENERS:
            full_path = file_path + extension
            if os.path.isfile(full_path):
                with opener(full_path, "rb") as handle:
                    raw = handle.read()
                if os.path.basename(file_path) == "endpoints":
                    return endpoints(raw, SERVICES)
                return parse(raw)
        return None


def parse(raw: bytes) -> Any:
    """A data file's JSON, its documentation strings emptied before parsing (never made into
    objects). orjson first (fast, lean); what it refuses and Python's json reads (an integer
    beyond 64 bits, NaN) goes to json."""
    raw = _DOCUMENTATION.sub(b'"documentation":""', raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


# A "documentation" member whose value is a string. In valid JSON a string followed by a colon
# is a key, and a quote inside a string is escaped, so nothing else matches.
_DOCUMENTATION = re.compile(rb'"documentation"\s*:\s*"[^"\\]*(?:\\.[^"\\]*)*"')


def endpoints(raw: bytes, services: frozenset[str]) -> Any:
    """An endpoints file holding, in each partition, only `services`. The other services'
    entries are parsed one at a time and dropped, never all held at once (the whole file, parsed,
    is 6 MB of dicts). A file not shaped as botocore's is parsed whole, then trimmed."""

    def member(key: str) -> Parser | None:
        return None if key in services else _dropped

    def partition(text: str, pos: int) -> tuple[Any, int]:
        return _object(text, pos, lambda key: services_of if key == "services" else None)

    def services_of(text: str, pos: int) -> tuple[Any, int]:
        return _object(text, pos, member)

    def partitions(text: str, pos: int) -> tuple[Any, int]:
        return _array(text, pos, partition)

    text = raw.decode()
    try:
        data, end = _object(
            text, _skip(text, 0), lambda k: partitions if k == "partitions" else None
        )
        if _skip(text, end) != len(text):
            raise ValueError("more after the JSON document")
    except (ValueError, IndexError):
        data = parse(raw)
        keep_services(data, services)
    return data


# A parser reads the JSON value at a position of a text: (the value, where it ends).
Parser = Callable[[str, int], tuple[Any, int]]
_DROP = object()  # what a parser returns for a member to leave out
_SPACE = re.compile(r"[ \t\n\r]*")
_whole: Parser = json.JSONDecoder().raw_decode


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # it matches anywhere


def _dropped(text: str, pos: int) -> tuple[Any, int]:
    return _DROP, _whole(text, pos)[1]


def _object(text: str, pos: int, member: Callable[[str], Parser | None]) -> tuple[Any, int]:
    """The object at `pos`, each member's value read by `member(key)` (None: parsed whole)."""
    result: dict[str, Any] = {}

    def one(pos: int) -> int:
        if text[pos] != '"':
            raise ValueError("not a key")
        key, pos = _whole(text, pos)
        pos = _skip(text, pos)
        if text[pos] != ":":
            raise ValueError("no colon")
        value, pos = (member(key) or _whole)(text, _skip(text, pos + 1))
        if value is not _DROP:
            result[key] = value
        return pos

    return result, _items(text, pos, "{}", one)


def _array(text: str, pos: int, item: Parser) -> tuple[Any, int]:
    """The array at `pos`, each item read by `item`."""
    result: list[Any] = []

    def one(pos: int) -> int:
        value, pos = item(text, pos)
        result.append(value)
        return pos

    return result, _items(text, pos, "[]", one)


def _items(text: str, pos: int, brackets: str, one: Callable[[int], int]) -> int:
    """Read each item of the container at `pos` with `one` (from where an item starts to where
    it ends); where the container ends."""
    opening, closing = brackets[0], brackets[1]
    if text[pos] != opening:
        raise ValueError(f"no {opening}")
    pos = _skip(text, pos + 1)
    if text[pos] == closing:
        return pos + 1
    while True:
        pos = _skip(text, one(pos))
        if text[pos] == closing:
            return pos + 1
        if text[pos] != ",":
            raise ValueError("no comma")
        pos = _skip(text, pos + 1)


def keep_services(endpoints: Any, services: frozenset[str]) -> None:
    """Keep, in each partition of an endpoints file, only `services`."""
    partitions = endpoints.get("partitions") if isinstance(endpoints, dict) else None
    for partition in partitions if isinstance(partitions, list) else ():
        listed = partition.get("services") if isinstance(partition, dict) else None
        if isinstance(listed, dict):
            partition["services"] = {k: v for k, v in listed.items() if k in services}


def lean_s3_session() -> Session:
    """A botocore session, credentials and config from the environment as usual, whose data
    loader is botocore's own with the files read by LeanFileLoader. One loader serves every such
    session of the process (per AWS_DATA_PATH): the data does not depend on the account or the
    endpoint, and `rpd send` lists a bucket twice (its first pass, then the replay); a second
    session would load it all again."""
    from botocore.session import Session

    session = Session()
    data_path = session.get_config_variable("data_path")
    with _LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            loader = _LOADERS[data_path] = create_loader(data_path)
            loader.file_loader = LeanFileLoader()
    session.register_component("data_loader", loader)
    return session


_LOADERS: dict[str | None, Loader] = {}
_LOCK = threading.Lock()
