"""Backups in a folder or a bucket (SPEC 2, issue 17): listing only what the window can touch,
time order, streaming with retries, failed objects as items, resume by finished objects.

The local folder runs through fsspec's local filesystem and GCS / Azure URLs through fsspec's
memory filesystem: the same listing and streaming code as S3 (tests/test_objects_s3.py, against
moto's server on loopback).
"""

from __future__ import annotations

import errno
import gzip
import os
import socket
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import _registry  # the classes fsspec imported, by scheme
from objects_support import (
    APRIL_28,
    AZURE_FORBIDDEN,
    CREDENTIALS_REFUSED,
    GCS_DENIED,
    GCS_FORBIDDEN,
    MAY_1,
    MAY_2,
    NOT_LAYOUT,
    TIME_ORDER,
    WINDOW,
    HttpError,
    HttpResponseError,
    Spy,
    archive,
    backup_objects,
    error,
    expected_sources,
    gcsfs_403,
    identify,
    key,
    stamp,
)

from rudder_pipedrive_cli.cli.progress import objects_text
from rudder_pipedrive_cli.core.backups import (
    OBJECT,
    StoredObject,
    Window,
    is_day_folder,
    reading_order,
)
from rudder_pipedrive_cli.core.errors import StoppedEarly, UsageError
from rudder_pipedrive_cli.io.objects import (
    CredentialsRefused,
    ObjectLedger,
    forbidden,
    identity,
    refused_credentials,
    resolve,
)
from rudder_pipedrive_cli.io.readers import EventReader
from rudder_pipedrive_cli.io.state import ReplayState

LAYOUT_WARNING = (
    "1 object does not follow RudderStack's backup layout "
    "(SOURCE/gw/YYYY-MM-DD/HOUR/INSTANCE/FIRST_LAST_WORKSPACE.json.gz), e.g. {name}: "
    "read in key order after the others, not by time"
)


def write_folder(root: Path, objects: dict[str, bytes]) -> None:
    for name, data in objects.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def rows(reader: EventReader) -> list[tuple[str, str]]:
    return [(item.source, item.raw["messageId"]) for item in reader]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# -- the layout, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "touches"),
    [
        ("2024-04-29", False),
        ("2024-04-30", True),
        ("2024-05-01", True),
        ("2024-05-02", True),
        ("2024-05-03", False),
    ],
)
def test_day_folders_are_kept_with_one_day_of_margin(day: str, touches: bool) -> None:
    assert WINDOW.day_may_touch(day) is touches
    assert Window().day_may_touch(day)


@pytest.mark.parametrize(
    ("first", "last", "meets"),
    [
        (utc(2024, 4, 30, 23), utc(2024, 4, 30, 23, 59, 59), False),  # ends the second before
        (utc(2024, 4, 30, 23), utc(2024, 5, 1), True),  # its last job is the first instant
        (utc(2024, 5, 1, 11, 59, 59), utc(2024, 5, 1, 13), True),
        (utc(2024, 5, 1, 12), utc(2024, 5, 1, 13), False),  # --until is exclusive
    ],
)
def test_an_object_is_opened_only_if_first_to_last_meets_the_window(
    first: datetime, last: datetime, meets: bool
) -> None:
    assert WINDOW.meets(int(first.timestamp()), int(last.timestamp())) is meets


def test_reading_order_is_first_last_key_and_others_after() -> None:
    def stored(name: str) -> StoredObject:
        return StoredObject(name=name, path=name, size=1, version="size:1")

    names = [
        "x/src/gw/2024-05-01/7/b/100_200_w.json.gz",
        "x/src/gw/2024-05-01/7/a/100_200_w.json.gz",
        "x/src/gw/2024-05-01/10/a/100_150_w.json.gz",
        "x/zz.json",
        "x/src/gw/2024-05-01/7/a/90_300_w.json.gz",
        "x/aa.json",
    ]
    timed, others = reading_order([stored(name) for name in names], Window())
    assert [s.name for s in timed] == [names[4], names[2], names[1], names[0]]
    assert [s.name for s in others] == ["x/aa.json", "x/zz.json"]


def test_a_name_that_goes_on_after_json_gz_is_outside_the_layout() -> None:
    # A download's temporary file in a synced folder (aws s3 sync writes NAME.1a2b3c4d, rclone
    # NAME.1a2b3c4d.partial, then renames it) is no backup object: read after a warning, not
    # placed in time as the object it will become.
    name = "x/src/gw/2024-05-01/7/a/100_200_w.json.gz"
    objects = [
        StoredObject(name=name + suffix, path=name + suffix, size=1, version="size:1")
        for suffix in ("", ".1a2b3c4d", ".1a2b3c4d.partial")
    ]
    timed, others = reading_order(objects, Window())
    assert [s.name for s in timed] == [name]
    assert [s.name for s in others] == [name + ".1a2b3c4d", name + ".1a2b3c4d.partial"]
    # Its events' sources are told apart alike (late and future-dated events, core/filters.py).
    sources = [name + ":3#1", name + "#2#1", name + ".1a2b3c4d:3#1"]
    assert [OBJECT.search(source) is not None for source in sources] == [True, True, False]


def test_day_folder_names() -> None:
    assert is_day_folder("b/p/src/gw/2024-05-01")
    assert is_day_folder("/b/src/gw/2024-05-01/")
    assert not is_day_folder("b/src/other/2024-05-01")
    assert not is_day_folder("b/src/gw/2024-05")


# -- a local folder ------------------------------------------------------------------------------


def test_a_backup_folder_is_read_in_time_order_within_the_window(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    write_folder(root, backup_objects())
    spy = Spy(fsspec.filesystem("file"))
    warnings: list[str] = []
    reader = EventReader(
        [str(root)], window=WINDOW, warn=warnings.append, resolver=lambda p: (spy, str(root))
    )
    assert rows(reader) == expected_sources(str(root))
    [not_layout] = NOT_LAYOUT
    assert warnings == [LAYOUT_WARNING.format(name=f"{root}/{not_layout}")]
    # Only the day folders the window can touch are listed; only objects it meets are opened.
    assert sorted(path.removeprefix(f"{root}/") for path in spy.paths("find")) == [
        f"src-a/gw/{MAY_1}",
        f"src-b/gw/{MAY_1}",
        f"src-b/gw/{MAY_2}",  # the day's margin
    ]
    assert not any(APRIL_28 in path for _, path in spy.calls)
    assert [path.removeprefix(f"{root}/") for path in spy.paths("open")] == [
        *TIME_ORDER,
        not_layout,
    ]
    assert reader.objects_total == 6
    assert reader.bytes_read == reader.total_bytes


def test_a_relative_folder_keeps_its_spelling_in_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path / "bk", {"s/gw/2024-05-01/1/i/10_20_w.json.gz": archive(identify("x"))})
    monkeypatch.chdir(tmp_path)
    assert rows(EventReader(["bk/"])) == [("bk/s/gw/2024-05-01/1/i/10_20_w.json.gz:1#1", "x")]


@pytest.mark.parametrize(
    ("again", "said"),
    [
        ("{root}", "{again} is given twice: read once"),
        ("{root}/", "{again} was given before, through {root}: read once, there"),
        ("{root}/../backup/.", "{again} was given before, through {root}: read once, there"),
        ("{root}/src-a", "{again} was given before, through {root}: read once, there"),
    ],
    ids=["same", "slash", "dots", "within"],
)
def test_a_folder_given_again_is_read_once(tmp_path: Path, again: str, said: str) -> None:
    # Read twice, a failed event of it was tried twice (two dead letters), each event was
    # counted read twice (the second time 'already done'), and each reading of an object took
    # the other's outcomes for its own (one tally a name).
    root = tmp_path / "backup"
    write_folder(root, backup_objects())
    again = again.format(root=root)
    warnings: list[str] = []
    reader = EventReader([str(root), again], window=WINDOW, warn=warnings.append)
    assert rows(reader) == expected_sources(str(root))
    assert warnings[1:] == [said.format(again=again, root=root)]
    assert reader.objects_total == 6
    assert reader.total_bytes == sum(
        (root / name).stat().st_size for name in [*TIME_ORDER, *NOT_LAYOUT]
    )


def test_a_file_given_with_its_folder_is_read_once_where_first_given(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    write_folder(root, backup_objects())
    file = f"{root}/{TIME_ORDER[1]}"
    warnings: list[str] = []
    first = EventReader([file, str(root)], window=WINDOW, warn=warnings.append)
    assert rows(first) == [
        (f"{file}:1#1", "a-0700"),  # a file given as one: no window, no object
        *(row for row in expected_sources(str(root)) if not row[0].startswith(file)),
    ]
    assert warnings[0] == (
        f"1 object of {root} was given before, through {file} (e.g. {file}): each read once, there"
    )
    assert first.objects_total == 5
    warnings.clear()
    after = EventReader([str(root), file], window=WINDOW, warn=warnings.append)
    assert rows(after) == expected_sources(str(root))
    assert warnings[1:] == [f"{file} was given before, through {root}: read once, there"]
    warnings.clear()
    twice = EventReader([file, file], warn=warnings.append)
    assert rows(twice) == [(f"{file}:1#1", "a-0700")]
    assert warnings == [f"{file} is given twice: read once"]


def test_a_file_given_and_linked_to_from_a_folder_or_hard_linked_is_read_once(
    tmp_path: Path,
) -> None:
    # A link inside a folder, or a hard link, names a file given too by another name: keyed by
    # its name (links of the folder's path followed), it was read twice, its failed events tried
    # and dead-lettered twice. A file is known by its (st_dev, st_ino), links followed.
    files = {name: tmp_path / f"{name}.json" for name in ("a", "b")}
    for name, file in files.items():
        file.write_bytes(orjson.dumps(identify(name)) + b"\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "sym.json").symlink_to(files["a"])
    os.link(files["b"], folder / "hard.json")
    (folder / "own.json").write_bytes(orjson.dumps(identify("own")) + b"\n")
    a, b = str(files["a"]), str(files["b"])
    warnings: list[str] = []
    files_first = EventReader([a, b, str(folder)], warn=warnings.append)
    assert rows(files_first) == [(f"{a}:1", "a"), (f"{b}:1", "b"), (f"{folder}/own.json:1", "own")]
    assert warnings == [
        f"2 objects of {folder} were given before, through {b} (e.g. {folder}/hard.json): "
        "each read once, there",
        LAYOUT_WARNING.format(name=f"{folder}/own.json"),
    ]
    assert files_first.objects_total == 1
    warnings.clear()
    folder_first = EventReader([str(folder), a, b], warn=warnings.append)
    assert rows(folder_first) == [
        (f"{folder}/hard.json:1", "b"),
        (f"{folder}/own.json:1", "own"),
        (f"{folder}/sym.json:1", "a"),
    ]
    assert warnings[1:] == [
        f"{a} was given before, through {folder}: read once, there",
        f"{b} was given before, through {folder}: read once, there",
    ]


def test_a_folder_or_file_given_also_through_a_link_is_read_once(tmp_path: Path) -> None:
    # A link to the folder (or a file through it) is the same files: read twice, their failed
    # events were tried twice and dead-lettered twice, as for a folder spelled twice.
    root = tmp_path / "backup"
    write_folder(root, backup_objects())
    link = tmp_path / "link"
    link.symlink_to(root, target_is_directory=True)
    warnings: list[str] = []
    reader = EventReader([str(root), str(link)], window=WINDOW, warn=warnings.append)
    assert rows(reader) == expected_sources(str(root))
    assert warnings[1:] == [f"{link} was given before, through {root}: read once, there"]
    assert reader.objects_total == 6
    file = f"{link}/{TIME_ORDER[1]}"
    warnings.clear()
    after = EventReader([str(root), file], window=WINDOW, warn=warnings.append)
    assert rows(after) == expected_sources(str(root))
    assert warnings[1:] == [f"{file} was given before, through {root}: read once, there"]
    warnings.clear()
    first = EventReader([f"{root}/{TIME_ORDER[1]}", str(link)], window=WINDOW, warn=warnings.append)
    assert [source for source, _ in rows(first)][1:] == [
        source for source, _ in expected_sources(str(link)) if TIME_ORDER[1] not in source
    ]


def test_archive_lines_with_a_bare_event_payload(tmp_path: Path) -> None:
    write_folder(
        tmp_path, {"s/gw/2024-05-01/1/i/10_20_w.json.gz": archive(identify("x"), batch=False)}
    )
    [item] = EventReader([str(tmp_path)])
    assert item.source == f"{tmp_path}/s/gw/2024-05-01/1/i/10_20_w.json.gz:1"
    assert item.raw == identify("x")  # the archive's messageId restored on the event


def test_an_empty_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        EventReader([str(tmp_path)])
    # A folder's are files: "holds no objects" was the words of a bucket.
    assert caught.value.message == f"cannot read {tmp_path}: it holds no files"
    assert caught.value.hint == "check the path (nothing was read or sent)"


def test_an_empty_bucket_prefix_holds_no_objects() -> None:
    memory = MemoryFileSystem(skip_instance_cache=True)
    memory.store, memory.pseudo_dirs = {}, [""]
    memory.mkdir("/bucket/backups")
    with pytest.raises(UsageError) as caught:
        EventReader(["gs://bucket/backups"], resolver=lambda _: (memory, "/bucket/backups"))
    assert caught.value.message == "cannot read gs://bucket/backups: it holds no objects"


def test_hidden_files_are_left_out(tmp_path: Path) -> None:
    write_folder(tmp_path, {".DS_Store": b"\x00\x01", ".sync/x.json.gz": b"junk", "a.ndjson": b""})
    warnings: list[str] = []
    assert list(EventReader([str(tmp_path)], warn=warnings.append)) == []
    assert warnings == [
        LAYOUT_WARNING.format(name=f"{tmp_path}/a.ndjson"),
        f"{tmp_path} holds no events",
    ]


@pytest.mark.parametrize(
    "empty", [b"", gzip.compress(b""), b"\n \n"], ids=["0-bytes", "gzip", "blank"]
)
def test_a_folder_or_prefix_of_empty_files_is_said_to_hold_no_events_as_an_empty_file_is(
    tmp_path: Path, empty: bytes
) -> None:
    """A folder or a bucket's prefix whose files are all empty (0 bytes, a gzip of nothing) read
    nothing and said nothing, where an empty file given alone is said to hold no events: said
    alike now, once for the folder. One with an event among its empty files names those."""
    names = [key("s", MAY_1, hour, "i", stamp(hour), stamp(hour, 5)) for hour in (1, 2)]
    write_folder(tmp_path / "empty", dict.fromkeys(names, empty))
    write_folder(tmp_path / "one", {names[0]: empty, names[1]: archive(identify("x"))})
    memory = MemoryFileSystem(skip_instance_cache=True)
    memory.store, memory.pseudo_dirs = {}, [""]
    for name in names:
        memory.pipe(f"/bucket/rs/{name}", empty)
    folders = [str(tmp_path / "empty"), "gs://bucket/rs", str(tmp_path / "one")]
    warnings: list[str] = []
    reader = EventReader(
        folders,
        warn=warnings.append,
        resolver=lambda path: (memory, "/bucket/rs") if path.startswith("gs:") else resolve(path),
    )
    assert rows(reader) == [(f"{tmp_path}/one/{names[1]}:1#1", "x")]
    assert warnings == [
        f"{folders[0]} holds no events",
        f"{folders[1]} holds no events",
        f"{folders[2]}/{names[0]} holds no events",
    ]


def test_empty_objects_among_others_are_said_in_one_line(tmp_path: Path) -> None:
    """Objects of 0 bytes named as the layout names a backup (a cut upload, a writer that
    failed) among objects with events were read as nothing, without a word: said in one line
    (one alone as an empty file is: the test above)."""
    names = [key("s", MAY_1, hour, "i", stamp(hour), stamp(hour, 5)) for hour in (1, 2, 3)]
    empty, gzipped, full = b"", gzip.compress(b""), archive(identify("y"))
    write_folder(tmp_path, dict(zip(names, [empty, gzipped, full], strict=True)))
    warnings: list[str] = []
    reader = EventReader([str(tmp_path)], warn=warnings.append)
    assert rows(reader) == [(f"{tmp_path}/{names[2]}:1#1", "y")]
    assert warnings == [f"2 objects of {tmp_path} hold no events, e.g. {tmp_path}/{names[0]}"]


# -- GCS and Azure through fsspec's interface (its memory filesystem) ------------------------


@pytest.mark.parametrize("url", ["gs://bucket/backups", "az://container/backups", "abfs://c/b"])
def test_gcs_and_azure_urls_read_through_the_same_code(url: str) -> None:
    memory = MemoryFileSystem(skip_instance_cache=True)
    memory.store, memory.pseudo_dirs = {}, [""]
    root = "/" + url.split("://", 1)[1]
    for name, data in backup_objects().items():
        memory.pipe(f"{root}/{name}", data)
    warnings: list[str] = []
    reader = EventReader(
        [url], window=WINDOW, warn=warnings.append, resolver=lambda _: (memory, root)
    )
    assert rows(reader) == expected_sources(url)
    assert len(warnings) == 1


class FolderMarkers:
    """A store whose `find` lists folder placeholders as gcsfs's does: 0-byte objects named with
    a trailing slash (the GCS console's "Create folder", Hadoop's GCS connector, copies of S3's
    console folders), which no open finds under the name without it."""

    def __init__(self, fs: MemoryFileSystem, markers: list[str]) -> None:
        self.fs, self.markers = fs, markers

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)

    def find(self, path: str, detail: bool = True) -> dict[str, dict[str, Any]]:
        found = self.fs.find(path, detail=True)
        for marker in self.markers:
            if marker.startswith(path.rstrip("/") + "/"):
                found[marker] = {"name": marker, "type": "file", "size": 0}
        return found


def test_folder_placeholders_in_a_day_folder_are_no_objects() -> None:
    memory = MemoryFileSystem(skip_instance_cache=True)
    memory.store, memory.pseudo_dirs = {}, [""]
    root = "/bucket/backups"
    for name, data in backup_objects().items():
        memory.pipe(f"{root}/{name}", data)
    day = f"{root}/src-a/gw/{MAY_1}/"
    store = FolderMarkers(memory, [day, f"{day}7/", f"{day}7/i-1/"])
    warnings: list[str] = []
    url = "gs://bucket/backups"
    reader = EventReader(
        [url], window=WINDOW, warn=warnings.append, resolver=lambda _: (store, root)
    )
    items = list(reader)
    assert [(item.source, error(item)) for item in items if error(item)] == []
    assert [(item.source, item.raw["messageId"]) for item in items] == expected_sources(url)
    [not_layout] = NOT_LAYOUT
    assert warnings == [LAYOUT_WARNING.format(name=f"{url}/{not_layout}")]


class Refusing:
    """A store whose listing raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def info(self, path: str) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        *CREDENTIALS_REFUSED,
        (gcsfs_403(GCS_DENIED, "b/bucket/o"), GCS_FORBIDDEN[1]),
        AZURE_FORBIDDEN,
        (PermissionError(errno.EACCES, "Access Denied"), "access denied"),
        (HttpError(503, "Backend Error"), "HttpError: Backend Error, 503"),
    ],
    ids=[
        "gcs-401",
        "google-refresh",
        "azure-401",
        "azure-403-sas",
        "gcs-403",
        "azure-403-no-permission",
        "denied",
        "5xx",
    ],
)
def test_a_listing_refused_says_so_as_a_read_refused_does(refusal: Exception, said: str) -> None:
    """A usage error before anything is read (exit 2): refused credentials in the words an
    object's read uses (gcsfs's 403 read `Forbidden: b/bucket/o rpd@...`, its 401 `HttpError:
    Invalid Credentials, 401`). S3's, in its words: test_objects_s3_client.py."""
    with pytest.raises(UsageError) as caught:
        EventReader(["gs://bucket/backups"], resolver=lambda _: (Refusing(refusal), "/b"))
    assert caught.value.message == f"cannot list gs://bucket/backups: {said or refusal}"
    assert caught.value.hint == (
        "check the URL and the provider's credentials (nothing was read or sent)"
    )


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
         "[Errno 111] Connection refused"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
         "[Errno -2] Name or service not known"),
    ],
    ids=["refused", "dns"],
)  # fmt: skip
def test_a_listing_that_cannot_reach_the_store_stops_early_and_names_the_network(
    failure: Exception, said: str
) -> None:
    """No connection for the listing's tries (the endpoint down, a name that does not resolve):
    stopped early (exit 4), as Pipedrive unreachable is, the network and the endpoint to check,
    where it was a usage error (exit 2) whose hint was the URL and the credentials."""
    with pytest.raises(StoppedEarly) as caught:
        EventReader(["s3://bucket/backups"], resolver=lambda _: (Refusing(failure), "/b"))
    assert caught.value.message == (
        f"cannot list s3://bucket/backups: the store cannot be reached ({said})"
    )
    assert caught.value.hint == (
        "check the network and the store's endpoint, then rerun the same command (nothing was "
        "read or sent)"
    )


@pytest.mark.parametrize(
    ("url", "extra", "package"),
    [
        ("gs://b/p", "gcs", "gcsfs"),
        ("az://c/p", "azure", "adlfs"),
        ("abfs://c/p", "azure", "adlfs"),
    ],
)
def test_a_url_whose_extra_is_missing_is_a_usage_error_naming_the_install(
    monkeypatch: pytest.MonkeyPatch, url: str, extra: str, package: str
) -> None:
    scheme = url.split(":")[0]
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    # ... and not imported yet: fsspec keeps the classes it imported
    monkeypatch.delitem(_registry, scheme, raising=False)
    with pytest.raises(UsageError) as caught:
        resolve(url)
    assert caught.value.message == (
        f"reading {scheme}:// needs rpd's optional {extra} extra ({package})"
    )
    assert caught.value.hint == f"pip install 'rudder_pipedrive_cli[{extra}]'"


# -- faults -----------------------------------------------------------------------------------


class FlakyFile:
    """A file that raises `error` once its reads pass `after` bytes."""

    def __init__(self, inner: Any, after: int, error: Exception) -> None:
        self.inner, self.after, self.error, self.given = inner, after, error, 0

    def __enter__(self) -> FlakyFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.inner.close()

    def read(self, size: int = -1) -> bytes:
        if self.given >= self.after:
            raise self.error
        data = self.inner.read(min(size, self.after - self.given))
        self.given += len(data)
        return data


class Flaky(Spy):
    """Opens `name` as a FlakyFile for the first `times` opens."""

    def __init__(self, fs: Any, name: str, times: int, error: Exception) -> None:
        super().__init__(fs)
        self.name, self.times, self.error = name, times, error

    def open(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("open", path))
        handle = self.fs.open(path, *args, **kwargs)
        if path.endswith(self.name) and self.times > 0:
            self.times -= 1
            return FlakyFile(handle, 40, self.error)
        return handle


def flaky_folder(tmp_path: Path, times: int, error: Exception) -> tuple[Path, Flaky, str]:
    write_folder(tmp_path, backup_objects())
    target = TIME_ORDER[2]  # two events on two lines
    return tmp_path, Flaky(fsspec.filesystem("file"), target, times, error), target


def test_a_transient_error_mid_read_reads_the_object_again_from_the_start(
    tmp_path: Path,
) -> None:
    root, flaky, target = flaky_folder(tmp_path, 2, ConnectionResetError(104, "reset by peer"))
    slept: list[float] = []
    reader = EventReader(
        [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=slept.append
    )
    assert rows(reader) == expected_sources(str(root))  # every event once, in order
    assert slept == [0.5, 1.0]  # backoff between the tries
    assert flaky.paths("open").count(f"{root}/{target}") == 3


class Tagged(Spy):
    """Opens every object as one carrying the ETag its GET gave, as rpd's S3 objects do, while
    its listing gives none (a store that leaves ETag out of ListObjectsV2)."""

    def open(self, path: str, *args: Any, **kwargs: Any) -> Any:
        handle = self.fs.open(path, *args, **kwargs)
        handle.etag = '"d41d8cd98f00b204e9800998ecf8427e"'
        return handle


def test_an_object_listed_without_an_etag_is_recorded_finished_as_its_listing_gives_it(
    tmp_path: Path,
) -> None:
    # The version recorded finished is what the rerun's listing is matched against: one its
    # listing gives no ETag for is its size there, and recorded as the GET's ETag it never
    # matched, so every rerun read every object of the bucket again.
    write_folder(tmp_path, backup_objects())
    store = Tagged(fsspec.filesystem("file"))
    finished: list[tuple[str, str]] = []
    reader = EventReader(
        [str(tmp_path)],
        window=WINDOW,
        resolver=lambda _: (store, str(tmp_path)),
        on_finished=lambda name, version: finished.append((name, version)),
    )
    for item in reader:
        reader.item_done(item.source, "sent")
    listed = {
        str(path): f"size:{path.stat().st_size} mtime_ns:{path.stat().st_mtime_ns}"
        for path in tmp_path.rglob("*.gz")
    }
    assert finished
    assert dict(finished) == {name: listed[name] for name, _ in finished}


class Stalled(Spy):
    """Opens `name` as a connection that stops giving bytes: its read waits until `released`,
    then fails as a read timeout does; `stalled` is set once a read waits."""

    def __init__(self, fs: Any, name: str) -> None:
        super().__init__(fs)
        self.name, self.stalled, self.released = name, threading.Event(), threading.Event()

    def open(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("open", path))
        handle = self.fs.open(path, *args, **kwargs)
        if not path.endswith(self.name):
            return handle
        stalled, released = self.stalled, self.released

        class StalledFile(FlakyFile):
            def read(self, size: int = -1) -> bytes:
                stalled.set()
                released.wait()
                raise TimeoutError("timed out")

        return StalledFile(handle, 0, TimeoutError())


def test_a_reader_stopped_while_a_read_stalls_neither_waits_for_it_nor_tries_it_again(
    tmp_path: Path,
) -> None:
    # Ctrl-C in a send's first pass while the next object's connection had stalled: the stop
    # waited for the read's timeout (a minute), then for each try again of it (six minutes).
    write_folder(tmp_path, backup_objects())
    target = TIME_ORDER[1]  # read ahead while the reader holds the first object's event
    store = Stalled(fsspec.filesystem("file"), target)
    slept: list[float] = []
    reader = EventReader(
        [str(tmp_path)],
        window=WINDOW,
        resolver=lambda _: (store, str(tmp_path)),
        sleep=slept.append,
    )
    held = [iter(reader)]
    assert next(held[0]).raw["messageId"] == "b-00"
    assert store.stalled.wait(30)
    stopping = threading.Thread(target=held.clear)  # as --limit, Ctrl-C or SIGTERM drop it
    stopping.start()
    stopping.join(30)  # a bound on a hang, not a measure: it returns well before
    waited = stopping.is_alive()
    store.released.set()  # the stalled read times out now
    stopping.join()
    feeds = [thread for thread in threading.enumerate() if thread.name == "rpd-object-feed"]
    for feed in feeds:
        feed.join()
    assert not waited
    assert store.paths("open").count(f"{tmp_path}/{target}") == 1
    assert slept == []


def test_a_reader_stopped_while_the_feed_waits_to_try_again_does_not_try_again(
    tmp_path: Path,
) -> None:
    # Dropped (--limit, Ctrl-C, SIGTERM) while the feed waited to try a cut object again (up to
    # 8 s), the feed still opened the object again once it woke: a GET for no one.
    root, flaky, target = flaky_folder(tmp_path, 1, ConnectionResetError(104, "reset by peer"))
    waiting, woken = threading.Event(), threading.Event()

    def wait(_: float) -> None:
        waiting.set()
        woken.wait(30)

    reader = EventReader(
        [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=wait
    )
    held = [iter(reader)]
    assert next(held[0]).raw["messageId"] == "b-00"
    assert waiting.wait(30)  # the target, read ahead, was cut: the feed waits to try again
    held.clear()  # the feed is told to stop, and not waited for beyond STOP_WAIT
    woken.set()
    for feed in [thread for thread in threading.enumerate() if thread.name == "rpd-object-feed"]:
        feed.join()
    assert flaky.paths("open").count(f"{root}/{target}") == 1


def test_a_reader_stopped_while_the_feed_waits_to_try_again_ends_that_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The feed's own wait (no sleep given, as send and dry-run give none) is its stop's: it
    # slept on through a stop, up to 8 s, the reader waiting STOP_WAIT for it in vain.
    monkeypatch.setattr("rudder_pipedrive_cli.io.objects.RETRY_DELAYS", (3600.0,))
    waits = threading.Event()

    class Reset(ConnectionResetError):
        @property
        def transient(self) -> bool:  # asked just before the feed waits to try again
            waits.set()
            return True

    root, flaky, _ = flaky_folder(tmp_path, 1, Reset(104, "reset by peer"))
    reader = EventReader([str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)))
    held = [iter(reader)]
    assert next(held[0]).raw["messageId"] == "b-00"
    assert waits.wait(30)
    held.clear()  # the feed is told to stop
    for feed in [thread for thread in threading.enumerate() if thread.name == "rpd-object-feed"]:
        feed.join(30)
        assert not feed.is_alive()


def test_a_store_library_error_is_retried_too(tmp_path: Path) -> None:
    class PayloadError(Exception):  # like aiohttp.ClientPayloadError: not an OSError
        pass

    root, flaky, _ = flaky_folder(tmp_path, 1, PayloadError("Response payload is not completed"))
    reader = EventReader(
        [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=lambda _: None
    )
    assert rows(reader) == expected_sources(str(root))


def test_retries_run_out_a_failed_item_at_its_line_and_the_run_goes_on(tmp_path: Path) -> None:
    root, flaky, target = flaky_folder(tmp_path, 99, TimeoutError("timed out"))
    items = list(
        EventReader(
            [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=lambda _: None
        )
    )
    failed = [item for item in items if error(item)]
    assert [(item.source, error(item)) for item in failed] == [
        (
            f"{root}/{target}:1",
            "cannot read object: TimeoutError: timed out (6 tries): rerun to read it again",
        )
    ]
    good = [(item.source, item.raw["messageId"]) for item in items if not error(item)]
    assert good == [row for row in expected_sources(str(root)) if target not in row[0]]


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        *CREDENTIALS_REFUSED,
        (CredentialsRefused("S3 refused the credentials (ExpiredToken) for it"), ""),
    ],
    ids=["gcs-401", "google-refresh", "azure-401", "azure-403-sas", "s3"],
)
def test_credentials_refused_mid_object_stop_the_read_there(
    tmp_path: Path, refusal: Exception, said: str
) -> None:
    """Refused mid-way through an object (a read after its first bytes): the reader stops at
    that object. (It waited for ever for the next object, which the feed, stopped, never
    gave; GCS and Azure refusals were retried as transient, then failed each object.)"""
    root, flaky, target = flaky_folder(tmp_path, 99, refusal)
    reader = EventReader(
        [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=lambda _: None
    )
    read: list[tuple[str, str]] = []
    with pytest.raises(StoppedEarly) as stopped:
        read.extend((item.source, item.raw["messageId"]) for item in reader)
    assert stopped.value.message == f"cannot read {root}/{target}: {said or refusal}"
    assert stopped.value.hint == (
        "renew the credentials, then rerun the same command"  # what it does: the command's
    )
    assert read == expected_sources(str(root))[:2]  # the objects before it
    assert flaky.paths("open").count(f"{root}/{target}") == 1  # never tried again


class Gone(Spy):
    """A store that cannot be reached from the object `name` on (its endpoint went down):
    every open from then raises `error`, as connecting does."""

    def __init__(self, fs: Any, name: str, error: Exception) -> None:
        super().__init__(fs)
        self.name, self.error, self.down = name, error, False

    def open(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("open", path))
        self.down = self.down or path.endswith(self.name)
        if self.down:
            raise self.error
        return self.fs.open(path, *args, **kwargs)


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "Connection refused"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
         "Name or service not known"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "No route to host"),
    ],
    ids=["refused", "dns", "no-route"],
)  # fmt: skip
def test_a_store_that_cannot_be_reached_once_an_objects_tries_run_out_stops_the_read_there(
    tmp_path: Path, failure: Exception, said: str
) -> None:
    """Its endpoint down mid-run (MinIO restarted, a VPN dropped): no connection at all for an
    object's six tries stops the reader there, as refused credentials do, so the run stops
    (exit 4) and its rerun reads on from that object. (Each object after it was tried six
    times, 15.5 s, and failed, a dead letter holding no event: a backfill of thousands went on
    failing for hours, exit 1.)"""
    write_folder(tmp_path, backup_objects())
    target = TIME_ORDER[2]
    gone = Gone(fsspec.filesystem("file"), target, failure)
    slept: list[float] = []
    reader = EventReader(
        [str(tmp_path)], window=WINDOW, resolver=lambda _: (gone, str(tmp_path)), sleep=slept.append
    )
    read: list[tuple[str, str]] = []
    with pytest.raises(StoppedEarly) as stopped:
        read.extend((item.source, error(item) or item.raw["messageId"]) for item in reader)
    assert stopped.value.message == (
        f"cannot read {tmp_path}/{target}: the store cannot be reached ({said}, 6 tries)"
    )
    assert (
        stopped.value.hint
        == "check the network and the store's endpoint, then rerun the same command"
    )
    assert read == expected_sources(str(tmp_path))[:2]  # the objects before it
    assert gone.paths("open")[2:] == [f"{tmp_path}/{target}"] * 6  # none after it
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("failure", "said", "opened"),
    [
        (
            HttpError(503, "Backend Error"),
            "HttpError: Backend Error, 503 (6 tries): rerun to read it again",
            6,
        ),
        (*AZURE_FORBIDDEN, 1),
        (
            HttpResponseError("This request is not authorized to perform this operation.", 403,
                              "AuthorizationFailure"),
            "Azure refused access (AuthorizationFailure): This request is not authorized to "
            "perform this operation.",
            1,
        ),
        (HttpResponseError("", 403), "Azure refused access (HTTP 403)", 1),
        (  # Azure's 5xx stays transient
            HttpResponseError("Operation could not be completed within the specified time.", 500,
                              "OperationTimedOut"),
            "HttpResponseError: Operation could not be completed within the specified time. "
            "(6 tries): rerun to read it again",
            6,
        ),
    ],
    ids=[
        "gcs-503",
        "azure-403-no-permission",
        "azure-403-authorization-failure",
        "azure-403-no-code",
        "azure-500",
    ],
)  # fmt: skip
def test_a_store_error_not_about_the_credentials_fails_that_object_only(
    tmp_path: Path, failure: Exception, said: str, opened: int
) -> None:
    """Azure's 403 for a permission the credentials lack fails its object at once, in Azure's
    code and words, as GCS's 403 does (it was retried 6 times, some 15 s, as transient); the
    objects after it are read. A 5xx is retried."""
    root, flaky, target = flaky_folder(tmp_path, 99, failure)
    items = list(
        EventReader(
            [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=lambda _: None
        )
    )
    assert [(item.source, error(item)) for item in items if error(item)] == [
        (f"{root}/{target}:1", f"cannot read object: {said}")
    ]
    good = [(item.source, item.raw["messageId"]) for item in items if not error(item)]
    assert good == [row for row in expected_sources(str(root)) if target not in row[0]]
    assert flaky.paths("open").count(f"{root}/{target}") == opened


def test_gcsfs_403_fails_that_object_only_not_retried_and_later_objects_are_read(
    tmp_path: Path,
) -> None:
    """GCS's 403 is a permission denied (an object's ACL, a CMEK key the reader may not use),
    not credentials gone (those answer 401): it fails that object, as S3's AccessDenied does,
    once, in Google's words, and the objects after it are read. (It stopped the whole run, so
    every rerun stopped at that same object; before that it was retried as transient.)"""
    root, flaky, target = flaky_folder(tmp_path, 99, GCS_FORBIDDEN[0])
    items = list(
        EventReader(
            [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=lambda _: None
        )
    )
    assert [(item.source, error(item)) for item in items if error(item)] == [
        (f"{root}/{target}:1", f"cannot read object: {GCS_FORBIDDEN[1]}")
    ]
    good = [(item.source, item.raw["messageId"]) for item in items if not error(item)]
    assert good == [row for row in expected_sources(str(root)) if target not in row[0]]
    assert good[-1] == expected_sources(str(root))[-1]  # the objects after it: read
    assert flaky.paths("open").count(f"{root}/{target}") == 1  # never tried again


@pytest.mark.parametrize(
    ("error", "said"),
    [
        GCS_FORBIDDEN,
        (gcsfs_403(""), "Google Cloud Storage refused access (HTTP 403)"),
        (  # Google's words on one line, at most 200 characters of them
            gcsfs_403("The billing account for the owning project\nis disabled " + "x" * 300),
            "Google Cloud Storage refused access (HTTP 403): The billing account for the owning "
            "project is disabled " + "x" * 145,
        ),
        # Ordinary transient errors stay transient (retried): no 403 among them.
        (TimeoutError("timed out"), None),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), None),  # made a TimeoutError
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), None),
        (OSError("Server disconnected"), None),
        (OSError("Cannot connect to host: Forbidden words later"), None),
        (HttpError(503, "Backend Error"), None),
        (HttpError(500, "Forbidden"), None),
        # A local file's denial (or S3's AccessDenied, io/s3.py) is that object's, not a stop.
        (PermissionError(errno.EACCES, "Forbidden: permission denied"), None),
    ],
    ids=[
        "gcs-403",
        "gcs-403-no-words",
        "gcs-403-long",
        "timeout",
        "etimedout",
        "reset",
        "plain-oserror",
        "plain-oserror-forbidden-later",
        "gcs-503",
        "gcs-500-forbidden-words",
        "permission-error",
    ],
)
def test_gcsfs_403_is_told_apart_from_transient_oserrors(
    error: Exception, said: str | None
) -> None:
    """gcsfs raises a 403 as a plain OSError (`Forbidden: PATH` and Google's words): it was
    retried as transient for 15 s. It is now known, in Google's words, as one object's
    denial, and never as refused credentials; an OSError of other words, or one of its
    subclasses, is no 403."""
    assert forbidden(error) == said
    assert refused_credentials(error) is None


def test_a_plain_oserror_mid_object_is_still_retried(tmp_path: Path) -> None:
    root, flaky, target = flaky_folder(tmp_path, 1, OSError("Server disconnected"))
    reader = EventReader(
        [str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=lambda _: None
    )
    assert rows(reader) == expected_sources(str(root))
    assert flaky.paths("open").count(f"{root}/{target}") == 2


def test_gcsfs_own_errors_are_told_apart() -> None:
    """The errors gcsfs itself makes of Google's answers (gcsfs.retry.validate_response; it is
    an optional extra, so this runs where it is installed): its 401 stops the run, its 403
    fails one object, its 5xx (HttpError, or requests' ProxyError for a 502) stay transient."""
    retry = pytest.importorskip("gcsfs.retry")

    def raised(status: int, body: bytes) -> Exception:
        with pytest.raises(Exception) as caught:
            retry.validate_response(status, body, "b/{}/o/{}", ("backups", "rs/b.json"))
        return caught.value

    def google(code: int, message: str) -> bytes:
        return orjson.dumps({"error": {"code": code, "message": message, "errors": []}})

    denied = raised(403, google(403, GCS_DENIED))
    assert type(denied) is OSError
    assert str(denied) == f"Forbidden: b/backups/o/rs%2Fb.json\n{GCS_DENIED}"
    assert forbidden(denied) == GCS_FORBIDDEN[1]
    assert refused_credentials(denied) is None
    assert refused_credentials(raised(401, google(401, "Invalid Credentials"))) == (
        "Google Cloud Storage refused the credentials (HTTP 401)"
    )
    for status, body in [(500, google(500, "Backend Error")), (503, b"Unavailable"), (502, b"")]:
        assert refused_credentials(raised(status, body)) is None
        assert forbidden(raised(status, body)) is None


class Creeping(Spy):
    """Its first `times` opens of `name` are reset, each a `step` of bytes further than the one
    before (a long read cut again and again: a slow replay, a large object)."""

    def __init__(self, fs: Any, name: str, times: int, step: int) -> None:
        super().__init__(fs)
        self.name, self.times, self.step, self.opened = name, times, step, 0

    def open(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("open", path))
        handle = self.fs.open(path, *args, **kwargs)
        if path.endswith(self.name) and self.opened < self.times:
            self.opened += 1
            reset = ConnectionResetError(104, "reset by peer")
            return FlakyFile(handle, self.step * self.opened, reset)
        return handle


def test_an_object_cut_again_and_again_but_further_each_time_is_read_to_its_end(
    tmp_path: Path,
) -> None:
    """The tries of an object are counted since it last gave new bytes: one that moves on
    after each cut is read whole (it was a failed item after six cuts, however far each got,
    and the rest of it was left for a rerun)."""
    name = key("src-a", MAY_1, 9, "i-1", stamp(9), stamp(10))
    events = [identify(f"c-{n}") for n in range(40)]
    data = archive(*events)
    assert len(data) > 10 * 40  # every cut is before the end
    write_folder(tmp_path, {name: data})
    creeping = Creeping(fsspec.filesystem("file"), name, times=10, step=40)
    reader = EventReader(
        [str(tmp_path)], resolver=lambda _: (creeping, str(tmp_path)), sleep=lambda _: None
    )
    assert [message for _, message in rows(reader)] == [e["messageId"] for e in events]
    assert creeping.paths("open").count(f"{tmp_path}/{name}") == 11


GONE = (
    "no such object: deleted or moved since it was listed (nothing of it was read; if it was "
    "moved, send it from its new place)"
)


def test_a_missing_object_is_a_failed_item_with_its_url(tmp_path: Path) -> None:
    write_folder(tmp_path, backup_objects())
    reader = EventReader([str(tmp_path)], window=WINDOW)
    (tmp_path / TIME_ORDER[1]).unlink()  # gone between listing and reading
    items = list(reader)
    assert [(item.source, error(item)) for item in items if error(item)] == [
        (f"{tmp_path}/{TIME_ORDER[1]}", f"cannot read object: {GONE}")
    ]
    assert len(items) == len(expected_sources(str(tmp_path))) - 1 + 1


def test_a_folder_s_link_to_nothing_is_a_failed_item_naming_its_target(tmp_path: Path) -> None:
    """A synced copy's link whose target is gone (a dangling link) was 'no such object', as if
    the file had been deleted meanwhile: the link and where it points are what to fix."""
    write_folder(tmp_path, backup_objects())
    (tmp_path / TIME_ORDER[1]).unlink()
    (tmp_path / TIME_ORDER[1]).symlink_to(tmp_path / "elsewhere" / "x.json.gz")
    items = list(EventReader([str(tmp_path)], window=WINDOW))
    assert [(item.source, error(item)) for item in items if error(item)] == [
        (
            f"{tmp_path}/{TIME_ORDER[1]}",
            f"cannot read object: it is a link to {tmp_path}/elsewhere/x.json.gz, which does not "
            "exist: fix or remove the link, then rerun",
        )
    ]


def test_an_object_that_changed_between_tries_is_not_mixed(tmp_path: Path) -> None:
    root, flaky, target = flaky_folder(tmp_path, 1, ConnectionResetError(104, "reset"))

    def grow(_: float) -> None:  # the object is rewritten while rpd waits to try again
        (root / target).write_bytes(archive(identify("new-1"), identify("new-2"), identify("n3")))

    items = list(
        EventReader([str(root)], window=WINDOW, resolver=lambda _: (flaky, str(root)), sleep=grow)
    )
    assert [(item.source, error(item)) for item in items if error(item)] == [
        (
            f"{root}/{target}:1",
            "cannot read object: it changed while being read: rerun to read the new version",
        )
    ]


def test_a_reader_stopped_early_stops_the_feed(tmp_path: Path) -> None:
    write_folder(tmp_path, backup_objects())
    items = iter(EventReader([str(tmp_path)], window=WINDOW))
    assert next(items).raw["messageId"] == "b-00"
    del items  # as --limit does: dropped (its generators close), the feed ends, nothing hangs


# -- resume -----------------------------------------------------------------------------------


def read_through(root: Path, state: ReplayState, failing: str = "") -> EventReader:
    """Read `root` within WINDOW as send does with `state`: each item ends sent, or failed where
    its event mentions `failing`."""
    reader = EventReader(
        [str(root)], window=WINDOW, finished=state.object_finished, on_finished=state.finish_object
    )
    for item in reader:
        reader.item_done(item.source, "failed" if failing and failing in str(item.raw) else "sent")
    return reader


def test_finished_objects_are_recorded_and_skipped_on_rerun(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    write_folder(root, backup_objects())
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as state:
        # The object of A_0730 has a failed event: it is not finished, the rest are.
        first = read_through(root, state, failing="a-0735")
        assert (first.objects_skipped, first.objects_total) == (0, 6)
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as state:
        again = EventReader([str(root)], window=WINDOW, finished=state.object_finished)
        assert (again.objects_skipped, again.objects_total) == (5, 1)
        assert rows(again) == [
            row for row in expected_sources(str(root)) if TIME_ORDER[2] in row[0]
        ]
        # Another version of a finished object (rewritten, another size) is read again.
        (root / TIME_ORDER[0]).write_bytes(archive(identify("b-00"), identify("b-01")))
        changed = EventReader([str(root)], window=WINDOW, finished=state.object_finished)
        assert (changed.objects_skipped, changed.objects_total) == (4, 2)
        # Another namespace (another account) finished nothing.
    with ReplayState.open(tmp_path / "state.sqlite", "other") as state:
        assert not state.object_finished(f"{root}/{TIME_ORDER[1]}", "size:1")
        assert EventReader([str(root)], finished=state.object_finished).objects_skipped == 0


def test_a_folder_s_file_rewritten_with_the_same_size_is_read_again(tmp_path: Path) -> None:
    # A corrected backup file of the same size (another messageId of the same length): by its
    # size alone it was the version finished, and never read again.
    root = tmp_path / "backup"
    write_folder(root, backup_objects())
    corrected = root / TIME_ORDER[0]
    corrected.write_bytes(gzip.decompress(archive(identify("b-00"))))  # no gzip: sizes alike
    before = corrected.stat()
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as state:
        read_through(root, state)
        corrected.write_bytes(gzip.decompress(archive(identify("b-99"))))
        os.utime(corrected, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
        assert corrected.stat().st_size == before.st_size
        again = EventReader([str(root)], window=WINDOW, finished=state.object_finished)
        assert (again.objects_skipped, again.objects_total) == (5, 1)
        assert rows(again) == [(f"{root}/{TIME_ORDER[0]}:1#1", "b-99")]


def test_a_folder_s_files_an_older_rpd_recorded_by_size_alone_are_read_again(
    tmp_path: Path,
) -> None:
    # Its record says nothing of the mtime: matched, a file rewritten with the same size before
    # this rpd's first run would never be read; read again, the journal skips its events done.
    root = tmp_path / "backup"
    write_folder(root, backup_objects())
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as state:
        for path in root.rglob("*.gz"):
            state.finish_object(str(path), f"size:{path.stat().st_size}")
        again = EventReader([str(root)], window=WINDOW, finished=state.object_finished)
        assert (again.objects_skipped, again.objects_total) == (0, 6)
        assert rows(again) == expected_sources(str(root))


def test_an_object_is_finished_only_when_its_last_outcome_arrives(tmp_path: Path) -> None:
    write_folder(tmp_path, {"s/gw/2024-05-01/1/i/10_20_w.json.gz": archive(identify("x"))})
    recorded: list[str] = []
    reader = EventReader([str(tmp_path)], on_finished=lambda name, _: recorded.append(name))
    items = list(reader)  # read to the end: not finished while its event is in flight
    assert recorded == []
    reader.item_done(items[0].source, "skipped")
    assert recorded == [f"{tmp_path}/s/gw/2024-05-01/1/i/10_20_w.json.gz"]


def test_progress_counts_an_object_once_its_events_ended_not_once_it_was_read(
    tmp_path: Path,
) -> None:
    # Read ahead of the sending (8 events in flight, a feed 8 MiB ahead), the objects read ran
    # ahead of the events done: "objects 6/6" while events of them were still to be sent.
    write_folder(tmp_path, backup_objects())
    reader = EventReader([str(tmp_path)], window=WINDOW)
    items = list(reader)  # every object read to its end, no event of them ended yet
    assert objects_text(reader) == "; objects 0/6"
    for item in items[:-2]:  # all but those of the last two objects
        reader.item_done(item.source, "sent")
    assert objects_text(reader) == "; objects 4/6"
    reader.item_done(items[-2].source, "failed")  # ended too: done, though not finished
    assert objects_text(reader) == "; objects 5/6"
    reader.item_done(items[-1].source, "skipped")
    assert objects_text(reader) == "; objects 6/6"


@pytest.mark.parametrize("after", [":2", "#2"])
def test_an_object_is_not_finished_by_the_events_of_one_whose_name_goes_on_from_its_own(
    tmp_path: Path, after: str
) -> None:
    # Objects `a` and `a:2` (a key or file name may hold ':' or '#'): the event of `a:2`, whose
    # source is `a:2:1`, was counted as `a`'s (a name, then ':'), so `a` was recorded finished
    # while its own event was still in flight: that event failed, or the run was stopped or
    # killed before it ended, and the rerun skipped `a` unread, the event never sent again.
    one = orjson.dumps(identify("m-1")) + b"\n"
    write_folder(tmp_path, {"a": one, f"a{after}": one.replace(b"m-1", b"m-2")})
    recorded: list[str] = []
    reader = EventReader([str(tmp_path)], on_finished=lambda name, _: recorded.append(name))
    own, other = list(reader)  # both read to their end
    assert (own.source, other.source) == (f"{tmp_path}/a:1", f"{tmp_path}/a{after}:1")
    reader.item_done(other.source, "sent")
    assert recorded == [f"{tmp_path}/a{after}"]
    reader.item_done(own.source, "failed")
    assert recorded == [f"{tmp_path}/a{after}"]


def test_objects_whose_items_a_source_may_name_alike_are_not_recorded_finished(
    tmp_path: Path,
) -> None:
    # Line 2 of `a` a batch, `a:2` a JSON array: both first events' source is `a:2#1`. The one
    # of `a` sent was counted as `a:2`'s, which was recorded finished while its own event was in
    # flight; that event failed, and the rerun skipped `a:2` unread. Whose outcome a source
    # tells cannot be known there: neither object is recorded, so a rerun reads both again.
    event = orjson.dumps(identify("m-1"))
    batch = b'{"batch": [' + event.replace(b"m-1", b"m-2") + b"]}"
    write_folder(tmp_path, {"a": event + b"\n" + batch + b"\n", "a:2": b"[" + event + b"]"})
    recorded: list[str] = []
    reader = EventReader([str(tmp_path)], on_finished=lambda name, _: recorded.append(name))
    first, batched, other = list(reader)  # both read to their end
    assert batched.source == other.source == f"{tmp_path}/a:2#1"
    reader.item_done(batched.source, "sent")
    reader.item_done(other.source, "failed")
    reader.item_done(first.source, "sent")
    assert (recorded, reader.objects_done) == ([], 2)


# Each source shape rpd reads (io/readers.py) with the objects in flight it could be an item
# of: the one it names followed by a position (`:LINE`, then `#N` a batch or array), longest first.
@pytest.mark.parametrize(
    ("names", "source", "owner"),
    [
        (["a", "a:2"], "a:7", "a"),  # an NDJSON line
        (["a", "a:2"], "a:2:1", "a:2"),  # a line of `a:2`, not line 2 of `a`
        (["a", "a:2"], "a:2#3#1", "a:2"),
        (["a", "a:2"], "a:3#2#1", "a"),  # a batch in a batch on line 3
        (["a", "a#2"], "a#2#1", "a#2"),
        (["a", "a#2"], "a#3#1", "a"),  # a JSON array's element, a batch in it
        (["a", "a#2"], "a#2:1", "a#2"),  # a `#` in a name, then a line
        (["a"], "a#2:1", None),  # a line comes before any batch
        (["a"], "a", "a"),  # a whole-file event, or an object that could not be read
        (["a"], "a:", None),
        (["a"], "a#", None),
        (["a"], "a:1:2", None),
        (["a1", "a12"], "a12:3", "a12"),  # names ending in digits
        (["a1"], "a12:3", None),
        (["a1"], "a1\u0663", None),  # a position's digits are ASCII
        (["s3://b/k.json.gz"], "s3://b/k.json.gz:5#2", "s3://b/k.json.gz"),
        (["C:\\b\\a.json"], "C:\\b\\a.json:9", "C:\\b\\a.json"),
        (["/b/x?versionId=3"], "/b/x?versionId=3:1", "/b/x?versionId=3"),
    ],
)
def test_an_items_object_is_the_one_its_source_names_before_its_position(
    names: list[str], source: str, owner: str | None
) -> None:
    ledger = ObjectLedger()
    tallies = {}
    for name in names:
        tallies[name] = ledger.start(StoredObject(name=name, path=name, size=1, version="size:1"))
        tallies[name].items = 2
    ledger.item_done(source, True)
    assert {name: tally.done for name, tally in tallies.items()} == {
        name: int(name == owner) for name in names
    }


def test_state_clear_forgets_finished_objects(tmp_path: Path) -> None:
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as state:
        state.finish_object("s3://b/k.json.gz", "etag:abc")
        state.flush()
        assert state.object_finished("s3://b/k.json.gz", "etag:abc")
        assert not state.object_finished("s3://b/k.json.gz", "etag:other")
        state.clear("ns")
        assert not state.object_finished("s3://b/k.json.gz", "etag:abc")


def test_files_of_a_filesystem_without_inodes_are_told_apart_by_name() -> None:
    # Some FUSE and network mounts give every file inode 0: keyed by (device, inode), two
    # different files given together would be taken for one, and the second never read.
    def status(inode: int) -> os.stat_result:
        return os.stat_result((0o100644, inode, 42, 1, 0, 0, 10, 0, 0, 0))

    assert identity(status(7)) == (42, 7)
    assert identity(status(0)) is None


def test_an_object_finished_under_skip_rules_is_finished_under_those_only(tmp_path: Path) -> None:
    with ReplayState.open(tmp_path / "state.sqlite", "ns") as state:
        state.finish_object("s3://b/k.json.gz", "etag:abc", skips="0123456789abcdef")
        state.finish_object("s3://b/l.json.gz", "etag:abc")
        state.flush()
        assert state.object_finished("s3://b/k.json.gz", "etag:abc", skips="0123456789abcdef")
        assert not state.object_finished("s3://b/k.json.gz", "etag:abc", skips="fedcba9876543210")
        assert not state.object_finished("s3://b/k.json.gz", "etag:abc")  # under no skip rule
        assert state.object_finished("s3://b/l.json.gz", "etag:abc")
        assert not state.object_finished("s3://b/l.json.gz", "etag:abc", skips="0123456789abcdef")
