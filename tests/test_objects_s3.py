"""Backups read straight from S3 (SPEC 2, issue 17): a real S3 API on loopback (moto's server,
started here), through rpd's own S3 client (io/s3.py); a proxy in front records every request
and cuts bodies mid-way."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from objects_support import (
    APRIL_28,
    MAY_1,
    NOT_LAYOUT,
    S3,
    TIME_ORDER,
    WINDOW,
    archive,
    backup_objects,
    error,
    expected_sources,
    identify,
    moto_s3,
    object_gets,
)

from rudder_pipedrive_cli.core.backups import Window
from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.io.objects import Feed, list_objects, resolve
from rudder_pipedrive_cli.io.readers import EventReader
from rudder_pipedrive_cli.io.s3 import S3FileSystem

pytest.importorskip("moto")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    with moto_s3(monkeypatch) as store:
        store.upload(backup_objects())
        yield store


def rows(reader: EventReader) -> list[tuple[str, str]]:
    return [(item.source, item.raw["messageId"]) for item in reader]


def listing(prefix: str, *, deep: bool = False, max_keys: int | None = None) -> tuple[str, str]:
    """The ListObjectsV2 request rpd sends for `prefix` of the bucket `backups`: `ls` with the
    delimiter, `find` (deep) without."""
    query = {"delimiter": "/", "encoding-type": "url", "list-type": "2"}
    if deep:
        del query["delimiter"]
    if max_keys is not None:
        query["max-keys"] = str(max_keys)
    query["prefix"] = prefix
    return "GET", "/backups?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


def get(name: str) -> tuple[str, str]:
    return "GET", f"/backups/rs/{name}"


LISTED = [
    ("HEAD", "/backups/rs"),  # not an object: a prefix, if it holds anything
    listing("rs/", max_keys=1),
    listing("rs/"),
    listing("rs/src-a/"),
    listing("rs/src-a/gw/"),
    listing("rs/src-a/gw/2024-05-01/", deep=True),  # 2024-04-28 is never listed
    listing("rs/src-b/"),
    listing("rs/src-b/gw/"),
    listing("rs/src-b/gw/2024-05-01/", deep=True),
    listing("rs/src-b/gw/2024-05-02/", deep=True),  # the day's margin
]


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
    # The listing, then one GET of each object, whole (no Range, no HEAD: its size and ETag
    # came with the listing), in time order; none outside the window.
    assert s3.proxy.recorder.requests == [*LISTED, *(get(n) for n in [*TIME_ORDER, not_layout])]
    assert {header for _, header in s3.proxy.recorder.ranges} == {None}
    assert not any(APRIL_28 in path for _, path in s3.proxy.recorder.requests)
    assert reader.bytes_read == reader.total_bytes


def test_one_source_or_one_day_of_the_layout(s3: S3) -> None:
    day = "s3://backups/rs/src-a/gw/2024-05-01"
    sources = [source for source, _ in rows(EventReader([day], window=WINDOW))]
    assert sources == [
        source for source, _ in expected_sources("s3://backups/rs") if source.startswith(day + "/")
    ]


def test_one_object_named_by_its_url_is_one_head_then_one_get(s3: S3) -> None:
    name = TIME_ORDER[2]
    assert rows(EventReader([f"s3://backups/rs/{name}"])) == [
        (f"s3://backups/rs/{name}:{line}#1", message)
        for line, message in enumerate(["a-0730", "a-0735"], 1)
    ]
    assert s3.proxy.recorder.requests == [("HEAD", f"/backups/rs/{name}"), get(name)]


def test_an_object_whose_body_is_cut_mid_way_is_read_again_every_event_once(s3: S3) -> None:
    target = TIME_ORDER[2]
    s3.proxy.recorder.cut = {f"rs/{target}": 1}
    slept: list[float] = []
    reader = EventReader(["s3://backups/rs"], window=WINDOW, sleep=slept.append)
    assert rows(reader) == expected_sources("s3://backups/rs")
    assert s3.proxy.recorder.cuts_made == [f"rs/{target}"]
    assert slept == [0.5]
    # Read again from the start by a new GET, whose ETag is the listing's: no other request.
    own = [(m, p) for m, p in s3.proxy.recorder.requests if p.endswith(target)]
    assert own == [get(target), get(target)]


def test_the_feed_backs_off_between_tries_and_a_cut_object_still_gives_each_event_once(
    s3: S3,
) -> None:
    s3.proxy.recorder.cut = {f"rs/{TIME_ORDER[2]}": 5}
    slept: list[float] = []
    reader = EventReader(["s3://backups/rs"], window=WINDOW, sleep=slept.append)
    assert rows(reader) == expected_sources("s3://backups/rs")
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert s3.proxy.recorder.cuts_made == [f"rs/{TIME_ORDER[2]}"] * 5


def test_when_the_tries_run_out_the_object_is_a_failed_item_at_its_line(s3: S3) -> None:
    target = TIME_ORDER[2]
    s3.proxy.recorder.cut = {f"rs/{target}": 6}
    items = list(EventReader(["s3://backups/rs"], window=WINDOW, sleep=lambda _: None))
    [failed] = [item for item in items if error(item)]
    assert failed.source == f"s3://backups/rs/{target}:1"
    assert error(failed) is not None and error(failed).startswith("cannot read object: ")
    assert error(failed).endswith(" (6 tries): rerun to read it again")
    good = [(item.source, item.raw["messageId"]) for item in items if not error(item)]
    assert good == [row for row in expected_sources("s3://backups/rs") if target not in row[0]]


def test_a_listing_cut_mid_way_is_asked_again_after_a_backoff(s3: S3) -> None:
    s3.proxy.recorder.cut = {"/backups": 2}  # the bucket's listings
    slept: list[float] = []
    fs = S3FileSystem.from_environment(sleep=slept.append)
    reader = EventReader(["s3://backups/rs"], window=WINDOW, resolver=lambda _: (fs, "backups/rs"))
    assert rows(reader) == expected_sources("s3://backups/rs")
    assert slept == [0.5, 1.0]
    requests = s3.proxy.recorder.requests
    assert requests[:4] == [("HEAD", "/backups/rs"), *[listing("rs/", max_keys=1)] * 3]
    assert requests[4:] == [*LISTED[2:], *(get(n) for n in [*TIME_ORDER, *NOT_LAYOUT])]


def test_a_missing_bucket_or_prefix_is_a_usage_error_before_reading(s3: S3) -> None:
    for url in ("s3://no-such-bucket/rs", "s3://backups/no-such-prefix"):
        with pytest.raises(UsageError) as caught:
            EventReader([url])
        assert caught.value.message == f"cannot read {url}: no such bucket, prefix or folder"


def test_a_deleted_object_is_a_failed_item_with_its_url(s3: S3) -> None:
    reader = EventReader(["s3://backups/rs"], window=WINDOW)
    s3.client.delete_object(Bucket="backups", Key=f"rs/{TIME_ORDER[0]}")
    items = list(reader)
    assert [(item.source, error(item)) for item in items if error(item)] == [
        (
            f"s3://backups/rs/{TIME_ORDER[0]}",
            "cannot read object: no such object: deleted or moved since it was listed (nothing "
            "of it was read; if it was moved, send it from its new place)",
        )
    ]
    assert [item.raw["messageId"] for item in items if not error(item)] == [
        message for _, message in expected_sources("s3://backups/rs")[1:]
    ]


def test_an_object_is_fetched_by_one_get_read_chunk_by_chunk(s3: S3) -> None:
    body = bytes(range(256)) * 14  # 3,584 bytes
    s3.upload({"big.bin": body}, prefix="raw")
    fs, root = resolve("s3://backups/raw/big.bin")
    stored = list_objects(fs, root, "s3://backups/raw/big.bin", Window())
    assert [(s.name, s.size) for s in stored] == [("s3://backups/raw/big.bin", 3584)]
    with Feed(fs, stored, chunk=1000) as feed:
        assert feed.stream(0).read() == body
    assert s3.proxy.recorder.ranges == [("/backups/raw/big.bin", None)]


def test_listings_are_not_kept(s3: S3) -> None:
    # Each object listed is turned into a StoredObject and opened by path; nothing of the
    # listing stays with the filesystem: listing again asks S3 again.
    fs, root = resolve("s3://backups/rs/src-a/gw/2024-05-01")
    first = list_objects(fs, root, "s3://backups/rs/src-a/gw/2024-05-01", WINDOW)
    again = list_objects(fs, root, "s3://backups/rs/src-a/gw/2024-05-01", WINDOW)
    assert first == again and len(first) == 4
    once = [
        ("HEAD", "/backups/rs/src-a/gw/2024-05-01"),
        listing("rs/src-a/gw/2024-05-01/", max_keys=1),
        listing("rs/src-a/gw/2024-05-01/", deep=True),
    ]
    assert s3.proxy.recorder.requests == once + once
    assert set(vars(fs)) == {
        "_credentials",
        "_region",
        "_regions",
        "_endpoint",
        "_ca_bundle",
        "_context",
        "_env",
        "_sleep",
        "_delays",
        "_clock",
        "_timeouts",
        "retried",  # who hears a call tried again: no listing
    }
    assert fs._regions == {}


def test_continuation_tokens_page_through_a_long_listing(s3: S3) -> None:
    names = {f"k{number:04d}.json": b"{}\n" for number in range(1001)}  # S3 pages at 1,000
    s3.upload(names, prefix="many")
    fs, root = resolve("s3://backups/many")
    listed = list_objects(fs, root, "s3://backups/many", Window())
    assert [s.name for s in listed] == [f"s3://backups/many/{name}" for name in names]
    lists = [path for method, path in s3.proxy.recorder.requests if "list-type" in path]
    assert len(lists) == 3  # info's one key, then two pages
    assert "continuation-token=" not in lists[1] and "continuation-token=" in lists[2]


def test_an_object_rewritten_while_it_is_read_is_a_failed_item_not_a_mix(s3: S3) -> None:
    # One GET gives one version; the mix would come from reading the rest of it again after a
    # cut. The try again finds another ETag than the listing's: the object fails instead.
    target = TIME_ORDER[2]
    s3.proxy.recorder.cut = {f"rs/{target}": 1}

    def rewrite(_: float) -> None:
        s3.client.put_object(Bucket=s3.bucket, Key=f"rs/{target}", Body=b"other\n")

    items = list(EventReader(["s3://backups/rs"], window=WINDOW, sleep=rewrite))
    assert [(item.source, error(item)) for item in items if error(item)] == [
        (
            f"s3://backups/rs/{target}:1",
            "cannot read object: it changed while being read: rerun to read the new version",
        )
    ]
    assert "other" not in str([item.raw for item in items])


@pytest.mark.parametrize("cuts", [0, 1])
def test_an_object_rewritten_after_its_listing_is_read_and_finished_as_the_version_its_get_gave(
    s3: S3, cuts: int
) -> None:
    # Listed in one version, rewritten before its GET: what is read is the GET's version, whole
    # (read again after a cut: it did not change while read), and that version is recorded as
    # finished, not the listing's, which this run never read (the rerun would read it again).
    target = TIME_ORDER[2]
    finished: list[tuple[str, str]] = []
    reader = EventReader(
        ["s3://backups/rs"],
        window=WINDOW,
        sleep=lambda _: None,
        on_finished=lambda name, version: finished.append((name, version)),
    )
    messages = ["a-0730", "a-0735", "a-0736"]
    rewritten = archive(*map(identify, messages))
    s3.client.put_object(Bucket=s3.bucket, Key=f"rs/{target}", Body=rewritten)
    s3.proxy.recorder.cut = {f"rs/{target}": cuts}
    read = []
    for item in reader:
        read.append((item.source, (item.raw or {}).get("messageId"), error(item)))
        reader.item_done(item.source, "sent")
    url = f"s3://backups/rs/{target}"
    assert [row for row in read if row[0].startswith(url)] == [
        (f"{url}:{line}#1", message, "") for line, message in enumerate(messages, 1)
    ]
    assert s3.proxy.recorder.cuts_made == [f"rs/{target}"] * cuts
    tag = s3.client.head_object(Bucket=s3.bucket, Key=f"rs/{target}")["ETag"].strip('"')
    assert [row for row in finished if row[0] == url] == [(url, f"etag:{tag}")]
    assert len(finished) == len(TIME_ORDER) + len(NOT_LAYOUT)


def test_a_prefix_given_again_or_within_another_is_fetched_once(s3: S3) -> None:
    warnings: list[str] = []
    source = "s3://backups/rs/src-a"
    paths = [source, "s3://backups/rs", "s3://backups/rs/"]
    reader = EventReader(paths, window=WINDOW, warn=warnings.append)
    every = expected_sources("s3://backups/rs")
    assert rows(reader) == [
        *(row for row in every if row[0].startswith(source)),
        *(row for row in every if not row[0].startswith(source)),
    ]
    assert [warning for warning in warnings if "given before" in warning] == [
        f"4 objects of s3://backups/rs were given before, through {source} "
        f"(e.g. {source}/{TIME_ORDER[1].removeprefix('src-a/')}): each read once, there",
        "s3://backups/rs/ was given before, through s3://backups/rs: read once, there",
    ]
    gets = list(object_gets(s3.proxy.recorder.requests, "backups"))
    assert sorted(gets) == sorted({*gets}) and len(gets) == len(TIME_ORDER) + len(NOT_LAYOUT)


def test_folder_markers_in_a_day_folder_are_no_objects(s3: S3) -> None:
    # S3's console makes a folder as an empty object named with a trailing slash.
    s3.upload({f"src-a/gw/{MAY_1}/": b"", f"src-a/gw/{MAY_1}/7/": b""})
    items = list(EventReader(["s3://backups/rs"], window=WINDOW))
    assert [(item.source, error(item)) for item in items if error(item)] == []
    assert [(item.source, item.raw["messageId"]) for item in items] == expected_sources(
        "s3://backups/rs"
    )


def test_reading_s3_imports_neither_fsspec_nor_botocore_nor_httpx(s3: S3) -> None:
    script = (
        "import json, sys\n"
        "from rudder_pipedrive_cli.io.readers import EventReader\n"
        "items = list(EventReader(['s3://backups/rs']))\n"
        "heavy = ('fsspec', 's3fs', 'botocore', 'aiobotocore', 'httpx', 'aiohttp', 'boto3')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(json.dumps([len(items), loaded]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    # No window: the seven events of the window and the three outside it.
    assert json.loads(done.stdout) == [10, []]


def test_keys_that_need_encoding_are_listed_and_read(s3: S3) -> None:
    names = {"a b+ü/x=y&z.json": b'{"type": "identify", "userId": "u", "messageId": "m"}\n'}
    s3.upload(names, prefix="enc")
    [item] = EventReader(["s3://backups/enc"])
    assert (item.source, error(item)) == ("s3://backups/enc/a b+ü/x=y&z.json:1", "")
    assert s3.proxy.recorder.requests[-1] == ("GET", "/backups/enc/a%20b%2B%C3%BC/x%3Dy%26z.json")


def test_keys_with_an_empty_folder_name_are_listed_and_read(s3: S3) -> None:
    """A key holding `//` (a backup prefix given with a trailing slash: `rudder//src/gw/...`)
    is below a folder whose name is empty, which no path names by itself: its objects were
    left out without a word (only c.json read; of the backup below, nothing)."""
    s3.upload(backup_objects(), prefix="lay/")  # lay//src-a/gw/2024-05-01/...
    read = [
        (item.source, item.raw["messageId"])
        for item in EventReader(["s3://backups/lay"], window=WINDOW)
    ]
    assert read == expected_sources("s3://backups/lay/")  # in time order, the window's only

    line = b'{"type": "identify", "userId": "u", "messageId": "%s"}\n'
    names = {"/x.json": line % b"x", "a//b.json": line % b"b", "c.json": line % b"c"}
    s3.upload(names, prefix="dbl")
    items = list(EventReader(["s3://backups/dbl"]))
    assert [(item.source, error(item) or item.raw["messageId"]) for item in items] == [
        ("s3://backups/dbl//x.json:1", "x"),
        ("s3://backups/dbl/a//b.json:1", "b"),
        ("s3://backups/dbl/c.json:1", "c"),
    ]


def test_an_archived_object_says_it_must_be_restored_and_is_not_tried_again(s3: S3) -> None:
    """An old backup a lifecycle rule moved to Glacier: S3 answers its GET 403
    InvalidObjectState, which read 'access denied (check the credentials)', the credentials
    that had just listed it. The object fails, once, and the others are read."""
    line = b'{"type": "identify", "userId": "u", "messageId": "%s"}\n'
    for name, storage in [
        ("a.json", "STANDARD"),
        ("b.json", "GLACIER"),
        ("c.json", "DEEP_ARCHIVE"),
    ]:
        s3.client.put_object(
            Bucket="backups", Key=f"gl/{name}", Body=line % name[:1].encode(), StorageClass=storage
        )
    items = list(EventReader(["s3://backups/gl"], sleep=[].append))
    archived = (
        "cannot read object: it is archived (a Glacier storage class: S3's InvalidObjectState) "
        "and must be restored before it can be read: restore it (aws s3api restore-object), "
        "then rerun"
    )
    assert [(item.source, error(item) or item.raw["messageId"]) for item in items] == [
        ("s3://backups/gl/a.json:1", "a"),
        ("s3://backups/gl/b.json", archived),
        ("s3://backups/gl/c.json", archived),
    ]
    assert sorted(object_gets(s3.proxy.recorder.requests, "backups")) == [
        "gl/a.json",
        "gl/b.json",
        "gl/c.json",
    ]


def test_moto_s_refusals_are_said_in_s3_s_words_and_no_secret_is_shown(
    s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto checking signatures and permissions (IAM's): a key S3 does not know, a wrong secret
    key and an object the key may not read all read 'access denied', S3's words dropped. Said
    now with S3's code and Message, and the hint fitting each; no secret is shown."""
    import boto3
    from moto import settings

    iam = boto3.client("iam", endpoint_url=s3.client.meta.endpoint_url, region_name="us-east-1")
    iam.create_user(UserName="rpd")  # no policy: it may read nothing
    made = iam.create_access_key(UserName="rpd")["AccessKey"]
    key, secret = made["AccessKeyId"], made["SecretAccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    url = f"s3://backups/rs/{TIME_ORDER[0]}"
    reader = EventReader([url], sleep=[].append)  # listed before moto checks anything
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # from here it checks all
    [denied] = list(reader)
    assert (denied.source, error(denied)) == (
        url,
        "cannot read object: S3 refused access (AccessDenied): Access Denied; check the URL, "
        "the credentials' permissions and the bucket's policy",
    )
    shown = [error(denied)]

    for key_id, secret_key, said, hint in [
        (
            "AKIAUNKNOWNEXAMPLE00",
            secret,
            "InvalidAccessKeyId): The AWS Access Key Id you provided does not exist in our "
            "records.",
            "check the access key id (AWS_ACCESS_KEY_ID, or the profile's aws_access_key_id): S3 "
            "knows no such key (mistyped, deleted, or another store's)",
        ),
        (
            key,
            secret[::-1],
            "SignatureDoesNotMatch): The request signature we calculated does not match the "
            "signature you provided. Check your key and signing method.",
            "check the secret access key (AWS_SECRET_ACCESS_KEY, or the profile's "
            "aws_secret_access_key): it is not the one of the access key id",
        ),
    ]:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
        with pytest.raises(UsageError) as caught:
            EventReader(["s3://backups/rs"])
        assert (caught.value.message, caught.value.hint) == (
            f"cannot list s3://backups/rs: S3 refused the credentials ({said}",
            f"{hint}, then rerun the same command (nothing was read or sent)",
        )
        shown += [caught.value.message, caught.value.hint]
    assert not any(secret in text or secret[::-1] in text for text in shown)


def test_an_empty_object_named_as_the_prefix_is_its_folder_s_marker_and_the_prefix_is_read(
    s3: S3,
) -> None:
    """s3fs-fuse and older tools mark a folder with an object of 0 bytes of its name, no slash:
    `rpd send s3://backups/rs` (and `.../rs/`, whose slash is not kept) read that empty object
    alone and nothing of the backup below it, exit 0. The prefix is read; an empty object with
    no folder of its name is still that object."""
    s3.client.put_object(
        Bucket="backups", Key="rs", Body=b"", ContentType="application/x-directory"
    )
    for url in ("s3://backups/rs", "s3://backups/rs/"):
        assert rows(EventReader([url], window=WINDOW)) == expected_sources("s3://backups/rs")
    s3.client.put_object(Bucket="backups", Key="alone", Body=b"")
    warnings: list[str] = []
    assert list(EventReader(["s3://backups/alone"], warn=warnings.append)) == []
    assert warnings == [
        "1 object does not follow RudderStack's backup layout "
        "(SOURCE/gw/YYYY-MM-DD/HOUR/INSTANCE/FIRST_LAST_WORKSPACE.json.gz), e.g. "
        "s3://backups/alone: read in key order after the others, not by time",
        "s3://backups/alone holds no events",
    ]
