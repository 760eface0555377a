"""Backups read straight from S3 (SPEC 2, issue 17): a real S3 API on loopback (moto's server,
started here), through s3fs; a proxy in front records every request and cuts one body mid-way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from objects_support import (
    APRIL_28,
    NOT_LAYOUT,
    S3,
    TIME_ORDER,
    WINDOW,
    backup_objects,
    expected_sources,
    moto_s3,
    object_gets,
)

from rudder_pipedrive_cli.core.backups import Window
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.io.objects import Feed, ObjectReadError, list_objects, resolve
from rudder_pipedrive_cli.io.readers import EventReader

pytest.importorskip("s3fs")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    with moto_s3(monkeypatch) as store:
        store.upload(backup_objects())
        yield store


def rows(reader: EventReader) -> list[tuple[str, str]]:
    return [(item.source, item.value["messageId"]) for item in reader]


def test_a_bucket_prefix_is_read_in_time_order_opening_only_what_the_window_meets(
    s3: S3,
) -> None:
    warnings: list[str] = []
    reader = EventReader(["s3://backups/rs/"], window=WINDOW, warn=warnings.append)
    assert rows(reader) == expected_sources("s3://backups/rs")
    [not_layout] = NOT_LAYOUT
    assert warnings == [
        "1 object does not follow RudderStack's backup layout "
        "(SOURCE/gw/YYYY-MM-DD/HOUR/INSTANCE/FIRST_LAST_WORKSPACE.json.gz), e.g. "
        f"s3://backups/rs/{not_layout}: read in key order after the others, not by time"
    ]
    requests = s3.proxy.recorder.requests
    # Each object read once, as a stream of ranges, in time order; none outside the window.
    fetched = list(dict.fromkeys(object_gets(requests, "backups")))
    assert fetched == [f"rs/{name}" for name in [*TIME_ORDER, not_layout]]
    assert not any(APRIL_28 in path for _, path in requests)  # that day was never listed
    assert reader.bytes_read == reader.total_bytes


def test_one_source_or_one_day_of_the_layout(s3: S3) -> None:
    day = "s3://backups/rs/src-a/gw/2024-05-01"
    sources = [source for source, _ in rows(EventReader([day], window=WINDOW))]
    assert sources == [
        source for source, _ in expected_sources("s3://backups/rs") if source.startswith(day + "/")
    ]


def test_an_object_whose_body_is_cut_mid_way_is_read_again_every_event_once(s3: S3) -> None:
    s3.proxy.recorder.cut = {f"rs/{TIME_ORDER[2]}": 1}
    reader = EventReader(["s3://backups/rs"], window=WINDOW, sleep=lambda _: None)
    assert rows(reader) == expected_sources("s3://backups/rs")
    assert s3.proxy.recorder.cuts_made == [f"rs/{TIME_ORDER[2]}"]
    gets = list(object_gets(s3.proxy.recorder.requests, "backups"))
    assert gets.count(f"rs/{TIME_ORDER[2]}") >= 2


def test_a_missing_bucket_or_prefix_is_a_usage_error_before_reading(s3: S3) -> None:
    for url in ("s3://no-such-bucket/rs", "s3://backups/no-such-prefix"):
        with pytest.raises(UsageError) as caught:
            EventReader([url])
        assert caught.value.message == f"cannot read {url}: no such bucket, prefix or folder"


def test_a_deleted_object_is_a_failed_item_with_its_url(s3: S3) -> None:
    reader = EventReader(["s3://backups/rs"], window=WINDOW)
    s3.client.delete_object(Bucket="backups", Key=f"rs/{TIME_ORDER[0]}")
    items = list(reader)
    assert [(item.source, item.error) for item in items if item.error] == [
        (f"s3://backups/rs/{TIME_ORDER[0]}", "cannot read object: no such object")
    ]
    assert [item.value["messageId"] for item in items if not item.error] == [
        message for _, message in expected_sources("s3://backups/rs")[1:]
    ]


def test_when_s3fs_gives_up_rpd_tries_the_object_again_after_a_backoff(s3: S3) -> None:
    # s3fs retries a failed range a few times itself; cut more often than that, and rpd's own
    # retry opens the object again and skips what it already handed out.
    s3.proxy.recorder.cut = {f"rs/{TIME_ORDER[2]}": 8}
    slept: list[float] = []
    reader = EventReader(["s3://backups/rs"], window=WINDOW, sleep=slept.append)
    assert rows(reader) == expected_sources("s3://backups/rs")
    assert slept and slept == [0.5, 1.0, 2.0, 4.0, 8.0][: len(slept)]
    assert s3.proxy.recorder.cuts_made == [f"rs/{TIME_ORDER[2]}"] * 8


def test_an_object_is_fetched_one_ranged_get_a_chunk_nothing_cached_ahead_by_s3fs(s3: S3) -> None:
    # The feed's queue is the read-ahead; s3fs's own ("readahead": each GET a block more than
    # asked, kept) would hold another copy, 1 MiB a file at rpd's chunk.
    body = bytes(range(256)) * 14  # 3,584 bytes
    s3.upload({"big.bin": body}, prefix="raw")
    fs, root = resolve("s3://backups/raw/big.bin")
    stored = list_objects(fs, root, "s3://backups/raw/big.bin", Window())
    with Feed(fs, stored, chunk=1000) as feed:
        assert feed.stream(0).read() == body
    path = "/backups/raw/big.bin"
    assert s3.proxy.recorder.ranges == [
        (path, "bytes=0-999"),
        (path, "bytes=1000-1999"),
        (path, "bytes=2000-2999"),
        (path, "bytes=3000-3999"),  # S3 answers what there is
    ]


def test_listings_are_not_kept_once_they_are_objects(s3: S3) -> None:
    # fsspec's listings cache would keep every entry listed (about 1.1 KB an object) for the
    # life of the process; each object is opened by path, its size and ETag asked of it.
    fs, root = resolve("s3://backups/rs/")
    listed = list_objects(fs, root, "s3://backups/rs", WINDOW)
    assert [stored.name for stored in listed] != []
    assert dict(fs.dircache) == {}
    reader = EventReader(["s3://backups/rs/"], window=WINDOW)
    assert rows(reader) == expected_sources("s3://backups/rs")
    heads = [path for method, path in s3.proxy.recorder.requests if method == "HEAD"]
    fetched = list(dict.fromkeys(object_gets(s3.proxy.recorder.requests, "backups")))
    assert [path.removeprefix("/backups/") for path in heads[-len(fetched) :]] == fetched


def test_an_object_rewritten_while_it_is_read_is_a_failed_item_not_a_mix(s3: S3) -> None:
    # Its ranged GETs ask for the ETag its HEAD gave (If-Match): after the rewrite S3 answers
    # 412, the try again finds another ETag, and the object fails instead of mixing versions.
    old, new = bytes(range(256)) * 20, bytes(reversed(range(256))) * 20  # 5,120 bytes each
    s3.upload({"big.bin": old}, prefix="raw")
    fs, root = resolve("s3://backups/raw/big.bin")
    stored = list_objects(fs, root, "s3://backups/raw/big.bin", Window())
    with Feed(fs, stored, chunk=1024, depth=1, sleep=lambda _: None) as feed:
        stream = feed.stream(0)
        assert stream.read(1024) == old[:1024]  # at most two more chunks fetched by now
        s3.client.put_object(Bucket=s3.bucket, Key="raw/big.bin", Body=new)
        with pytest.raises(ObjectReadError) as failed:
            stream.read()
    assert str(failed.value) == "it changed while being read: rerun to read the new version"
