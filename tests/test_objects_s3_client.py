"""rpd's own S3 client (io/s3.py): SigV4 signing against AWS's published example and botocore's
own signer, where credentials, region and endpoint come from, S3's redirects and errors, the
proxy, and no secret in any output. Requests go over loopback HTTP to a canned server."""

from __future__ import annotations

import calendar
import http.client
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from objects_support import (
    Answer,
    CannedS3,
    Seen,
    archive,
    bucket,
    error,
    error_xml,
    identify,
    listing_xml,
)

from rudder_pipedrive_cli.core.errors import StoppedEarly, UsageError
from rudder_pipedrive_cli.io.objects import ObjectChanged
from rudder_pipedrive_cli.io.readers import EventReader
from rudder_pipedrive_cli.io.s3 import (
    Credentials,
    Profile,
    S3Error,
    S3FileSystem,
    S3Object,
    canonical_query,
    credential_source,
    proxy_for,
    signed_headers,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLE-session-token"
NOWHERE = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",  # botocore's chain must not wait for an instance
}


# -- signing ---------------------------------------------------------------------------------


def test_aws_s_published_example_get_object() -> None:
    # AWS's SigV4 documentation for S3 ("Example: GET Object"): the first 10 bytes of test.txt.
    headers = signed_headers(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        "",
        {"Range": "bytes=0-9"},
        Credentials("AKIAIOSFODNN7EXAMPLE", SECRET),
        "us-east-1",
        calendar.timegm((2013, 5, 24, 0, 0, 0)),
    )
    assert headers == {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-amz-date": "20130524T000000Z",
        "authorization": "AWS4-HMAC-SHA256 "
        "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    }


@pytest.mark.parametrize(
    ("url", "query", "headers", "token"),
    [
        ("https://bucket.s3.eu-west-1.amazonaws.com/", [("list-type", "2")], {}, None),
        (
            "https://bucket.s3.eu-west-1.amazonaws.com/",
            [("list-type", "2"), ("prefix", "a b/ü+"), ("delimiter", "/")],
            {},
            TOKEN,
        ),
        (
            "http://127.0.0.1:9000/bucket",
            [("continuation-token", "1/a+b=c=="), ("list-type", "2"), ("encoding-type", "url")],
            {},
            None,
        ),
        ("http://127.0.0.1:9000/bucket/k%20y/%C3%BC%2B.json", [], {"Range": "bytes=5-"}, TOKEN),
        ("https://s3.us-east-1.amazonaws.com/dotted.bucket/a/b~c", [], {}, TOKEN),
    ],
)
def test_signatures_are_botocore_s(
    url: str, query: list[tuple[str, str]], headers: dict[str, str], token: str | None
) -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotocoreCredentials

    query_string = canonical_query(query)
    request = AWSRequest(method="GET", url=f"{url}?{query_string}", headers=dict(headers))
    S3SigV4Auth(BotocoreCredentials("AKID", SECRET, token), "s3", "eu-west-1").add_auth(request)
    stamp = request.headers["X-Amz-Date"]
    parts = urlsplit(url)
    ours = signed_headers(
        "GET",
        parts.netloc,
        parts.path,
        query_string,
        headers,
        Credentials("AKID", SECRET, token),
        "eu-west-1",
        calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")),
    )
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours.get("x-amz-security-token") == token


def test_the_query_is_encoded_as_sigv4_wants() -> None:
    assert canonical_query(
        [("prefix", "a b/ü+"), ("continuation-token", "x/y+z=="), ("a", "~")]
    ) == ("a=~&continuation-token=x%2Fy%2Bz%3D%3D&prefix=a%20b%2F%C3%BC%2B")


# -- credentials, region, endpoint -------------------------------------------------------------


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_credentials_from_the_environment_first(tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "ENVKEY",
        "AWS_SECRET_ACCESS_KEY": "envsecret",
        "AWS_SESSION_TOKEN": "envtoken",
        "AWS_SHARED_CREDENTIALS_FILE": write(
            tmp_path / "credentials",
            "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n",
        ),
        "AWS_CONFIG_FILE": "/nonexistent",
    }
    assert credential_source(env, Profile.load(env))() == Credentials(
        "ENVKEY", "envsecret", "envtoken"
    )


def test_a_profile_s_static_keys_from_the_credentials_file_then_the_config_file(
    tmp_path: Path,
) -> None:
    credentials = write(
        tmp_path / "credentials",
        "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d\n"
        "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = w\n"
        "aws_session_token = wt\n",
    )
    config = write(
        tmp_path / "config",
        "[profile other]\naws_access_key_id = OTHERKEY\naws_secret_access_key = o\n"
        "region = eu-central-1\nendpoint_url = http://minio.local:9000\n"
        "[profile work]\nregion = ap-south-1\n",
    )
    env = {"AWS_SHARED_CREDENTIALS_FILE": credentials, "AWS_CONFIG_FILE": config}
    assert credential_source(env, Profile.load(env))() == Credentials("DEFAULTKEY", "d")
    work = {**env, "AWS_PROFILE": "work"}
    assert credential_source(work, Profile.load(work))() == Credentials("WORKKEY", "w", "wt")
    other = {**env, "AWS_PROFILE": "other"}
    assert credential_source(other, Profile.load(other))() == Credentials("OTHERKEY", "o")
    # The profile's region and endpoint, unless the environment says otherwise.
    assert repr(S3FileSystem.from_environment(other)) == "S3FileSystem(http://minio.local:9000)"
    assert repr(S3FileSystem.from_environment(work)) == "S3FileSystem(AWS, ap-south-1)"
    assert repr(S3FileSystem.from_environment({**work, "AWS_DEFAULT_REGION": "us-west-2"})) == (
        "S3FileSystem(AWS, us-west-2)"
    )
    assert repr(
        S3FileSystem.from_environment(
            {**work, "AWS_DEFAULT_REGION": "us-west-2", "AWS_REGION": "eu-north-1"}
        )
    ) == ("S3FileSystem(AWS, eu-north-1)")
    assert repr(S3FileSystem.from_environment(env)) == "S3FileSystem(AWS, us-east-1)"
    endpoints = {**other, "AWS_ENDPOINT_URL": "http://a:1"}
    assert repr(S3FileSystem.from_environment(endpoints)) == "S3FileSystem(http://a:1)"
    endpoints["AWS_ENDPOINT_URL_S3"] = "https://b:2"
    assert repr(S3FileSystem.from_environment(endpoints)) == "S3FileSystem(https://b:2)"


def test_a_profile_with_a_credential_process_goes_through_botocore_s_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = write(
        tmp_path / "creds.py",
        "import json\nprint(json.dumps({'Version': 1, 'AccessKeyId': 'PROCKEY', "
        f"'SecretAccessKey': 'procsecret', 'SessionToken': {TOKEN!r}}}))\n",
    )
    config = write(
        tmp_path / "config",
        f"[profile proc]\ncredential_process = {sys.executable} {process}\n"
        # static keys beside it are not used: botocore's chain puts the process first
        "aws_access_key_id = STATIC\naws_secret_access_key = s\n",
    )
    env = {**NOWHERE, "AWS_CONFIG_FILE": config, "AWS_PROFILE": "proc"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    source = credential_source(env, Profile.load(env))
    assert source() == Credentials("PROCKEY", "procsecret", TOKEN)


def without_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "rudder_pipedrive_cli.io.botocore_data", None)


def test_without_botocore_a_role_profile_is_a_usage_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_botocore(monkeypatch)
    config = write(tmp_path / "config", "[profile admin]\nrole_arn = arn:aws:iam::1:role/x\n")
    env = {**NOWHERE, "AWS_CONFIG_FILE": config, "AWS_PROFILE": "admin"}
    with pytest.raises(UsageError) as caught:
        credential_source(env, Profile.load(env))
    assert caught.value.message == (
        "AWS profile 'admin' gets its credentials through SSO, a role or a process (or the "
        "environment names web identity or container credentials): reading s3:// with them "
        "needs rpd's optional s3 extra (botocore)"
    )
    assert caught.value.hint == "pip install 'rudder_pipedrive_cli[s3]'"


def test_no_credentials_anywhere_says_where_rpd_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in NOWHERE.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    looked = (
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile 'default' in "
        "/nonexistent/aws-credentials and /nonexistent/aws-config"
    )
    with pytest.raises(UsageError) as caught:
        EventReader(["s3://bucket/rs"])
    assert caught.value.message == (
        f"no AWS credentials found (rpd looked in {looked}, then botocore's chain: SSO, roles, "
        "credential_process, web identity, container and instance credentials)"
    )
    without_botocore(monkeypatch)
    with pytest.raises(UsageError) as caught:
        EventReader(["s3://bucket/rs"])
    assert caught.value.message == f"no AWS credentials found (rpd looked in {looked})"
    assert caught.value.hint == (
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE; for SSO, roles and "
        "instance credentials: pip install 'rudder_pipedrive_cli[s3]'"
    )


def test_aws_s_own_endpoints_virtual_hosted_or_path_style_for_dotted_names() -> None:
    fs = S3FileSystem(lambda: Credentials("k", "s"), region="eu-west-1")
    assert fs._target("backups", "eu-west-1") == (
        "https",
        "backups.s3.eu-west-1.amazonaws.com",
        443,
        "",
    )
    assert fs._target("my.backups", "eu-west-1") == (
        "https",
        "s3.eu-west-1.amazonaws.com",
        443,
        "/my.backups",
    )
    assert fs._target("b", "cn-north-1")[1] == "b.s3.cn-north-1.amazonaws.com.cn"
    minio = S3FileSystem(lambda: Credentials("k", "s"), endpoint="https://minio.local/s3/")
    assert minio._target("b", "us-east-1") == ("https", "minio.local", 443, "/s3/b")
    with pytest.raises(UsageError) as caught:
        S3FileSystem(lambda: Credentials("k", "s"), endpoint="minio.local:9000")
    assert caught.value.message == (
        "the S3 endpoint must be an http:// or https:// URL, not 'minio.local:9000'"
    )


# -- S3's answers, over loopback ---------------------------------------------------------------


OBJECT = archive(identify("m-1"))
KEYS = {"rs/s/gw/2024-05-01/1/i/10_20_w.json.gz": OBJECT}


@pytest.fixture
def canned() -> Iterator[tuple[CannedS3, list[Any]]]:
    """A canned server whose answers are taken, in order, from the list it is given with
    (callables are called with the request; the last one stays)."""
    script: list[Any] = []

    def answer(seen: Seen) -> Answer:
        reply = script.pop(0) if len(script) > 1 else script[0]
        return reply(seen) if callable(reply) else reply

    with CannedS3(answer) as server:
        yield server, script


def fs_for(server: CannedS3, slept: list[float] | None = None, **env: str) -> S3FileSystem:
    return S3FileSystem.from_environment(
        {
            **NOWHERE,
            "AWS_ACCESS_KEY_ID": "AKID",
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_SESSION_TOKEN": TOKEN,
            "AWS_ENDPOINT_URL": server.url,
            **env,
        },
        sleep=(slept if slept is not None else []).append,
    )


def test_a_bucket_in_another_region_is_asked_again_signed_for_it_and_remembered(
    canned: tuple[CannedS3, list[Any]],
) -> None:
    server, script = canned

    def by_region(seen: Seen) -> Answer:
        if "/eu-west-1/" not in seen.headers["authorization"]:
            return Answer(
                301,
                {"x-amz-bucket-region": "eu-west-1"},
                error_xml("PermanentRedirect", "use the bucket's endpoint"),
            )
        if "list-type" in seen.path:
            return Answer(200, {}, listing_xml("b", KEYS))
        return Answer(200, {"ETag": '"e"'}, OBJECT)

    script.append(by_region)
    fs = fs_for(server)
    assert list(fs.find("b/rs")) == [f"b/{key}" for key in KEYS]
    with fs.open(f"b/{next(iter(KEYS))}") as handle:
        assert handle.read() == OBJECT
    scopes = [seen.headers["authorization"].split("/")[2] for seen in server.seen]
    assert scopes == ["us-east-1", "eu-west-1", "eu-west-1"]  # remembered after the first
    # A 400 naming the region in its body (AuthorizationHeaderMalformed) is followed too.
    script[:] = [
        Answer(400, {}, error_xml("AuthorizationHeaderMalformed", "wrong", Region="ap-east-1")),
        Answer(200, {}, listing_xml("c", {})),
    ]
    assert fs.ls("c") == []
    assert [s.headers["authorization"].split("/")[2] for s in server.seen[3:]] == [
        "us-east-1",
        "ap-east-1",
    ]


def test_each_request_is_signed_with_the_session_token_and_the_endpoint_s_host(
    canned: tuple[CannedS3, list[Any]],
) -> None:
    server, script = canned
    script.append(Answer(200, {"Content-Length": "3", "ETag": '"abc"'}))
    fs = fs_for(server)
    assert fs.info("b/k ü+.json") == {
        "name": "b/k ü+.json",
        "type": "file",
        "size": 3,
        "ETag": '"abc"',
    }
    [seen] = server.seen
    assert (seen.method, seen.path) == ("HEAD", "/b/k%20%C3%BC%2B.json")
    host = server.url.removeprefix("http://")
    assert seen.headers["host"] == host
    assert seen.headers["x-amz-security-token"] == TOKEN
    assert seen.headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKID/"
    ) and seen.headers["authorization"].split(", ")[1] == (
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
    )


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (Answer(404, {}, error_xml("NoSuchKey", "gone")), FileNotFoundError, None),
        (Answer(403, {}, error_xml("AccessDenied", "no")), PermissionError, None),
        (
            Answer(412, {}, error_xml("PreconditionFailed", "etag")),
            ObjectChanged,
            "it changed while being read: rerun to read the new version",
        ),
        (
            Answer(400, {}, error_xml("InvalidArgument", "bad  range")),
            S3Error,
            "S3 answered HTTP 400 (InvalidArgument: bad range) for s3://b/k",
        ),
    ],
)
def test_s3_s_errors_on_get(
    canned: tuple[CannedS3, list[Any]], answer: Answer, error: type, message: str | None
) -> None:
    server, script = canned
    script.append(answer)
    with pytest.raises(error) as caught:
        fs_for(server).open("b/k")
    if message is not None:
        assert str(caught.value) == message
    assert len(server.seen) == 1  # a GET is not tried again here: the feed does it


def test_listing_and_head_try_again_after_5xx_slowdown_and_resets(
    canned: tuple[CannedS3, list[Any]],
) -> None:
    server, script = canned
    script[:] = [
        Answer(503, {}, error_xml("SlowDown", "Please reduce your request rate.")),
        Answer(500, {}, error_xml("InternalError", "oops")),
        Answer(429, {}),
        Answer(200, {}, listing_xml("b", KEYS)),
    ]
    slept: list[float] = []
    fs = fs_for(server, slept)
    assert list(fs.find("b/rs")) == [f"b/{key}" for key in KEYS]
    assert slept == [0.5, 1.0, 2.0]
    # Tries run out: the last error, transient, its text S3's.
    script[:] = [Answer(503, {}, error_xml("SlowDown", "Please reduce your request rate."))]
    slept.clear()
    with pytest.raises(S3Error) as caught:
        fs.info("b/k")
    assert str(caught.value) == "S3 answered HTTP 503 for s3://b/k"  # a HEAD has no body
    assert caught.value.transient and slept == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_an_empty_object_is_what_its_url_names_to_credentials_that_may_not_list(
    canned: tuple[CannedS3, list[Any]],
) -> None:
    """An object of 0 bytes may be a folder's marker (the prefix of its name is then read), which
    a listing tells: credentials that may not list are given the object, as before."""
    server, script = canned
    script[:] = [Answer(200, {"Content-Length": "0", "ETag": '"e"'}), DENIED_ANSWER]
    assert fs_for(server).info("b/k") == {"name": "b/k", "type": "file", "size": 0, "ETag": '"e"'}
    assert [seen.method for seen in server.seen] == ["HEAD", "GET"]


def test_no_secret_in_a_repr_or_an_error(canned: tuple[CannedS3, list[Any]]) -> None:
    server, script = canned
    script.append(Answer(403, {}, error_xml("AccessDenied", "no")))
    fs = fs_for(server)
    with pytest.raises(PermissionError) as caught:
        fs.info("b/k")
    # The HEAD of k was denied (no body), then the listing of k/ (AccessDenied)
    assert str(caught.value) == "S3 refused access (AccessDenied): no"
    for shown in (repr(fs), repr(vars(fs)), repr(fs._credentials()), repr(caught.value)):
        assert SECRET not in shown and TOKEN not in shown


# -- the proxy ---------------------------------------------------------------------------------


def test_https_proxy_unless_no_proxy_names_the_host() -> None:
    host = "b.s3.eu-west-1.amazonaws.com"
    assert proxy_for(host, {}) is None
    assert proxy_for(host, {"HTTPS_PROXY": "http://proxy:3128"}) == ("proxy", 3128, None)
    assert proxy_for(host, {"https_proxy": "proxy.corp"}) == ("proxy.corp", 80, None)
    assert proxy_for(host, {"HTTPS_PROXY": "http://u%40x:p%3Aw@proxy:8080"}) == (
        "proxy",
        8080,
        "Basic dUB4OnA6dw==",  # u@x:p:w
    )
    for no_proxy in ("amazonaws.com", ".amazonaws.com", "x.org, s3.eu-west-1.amazonaws.com", "*"):
        assert proxy_for(host, {"HTTPS_PROXY": "http://p:1", "NO_PROXY": no_proxy}) is None
    assert proxy_for(host, {"HTTPS_PROXY": "http://p:1", "no_proxy": "zonaws.com"}) == (
        "p",
        1,
        None,
    )
    with pytest.raises(UsageError) as caught:
        proxy_for(host, {"HTTPS_PROXY": "socks5://p:1"})
    assert caught.value.message == "HTTPS_PROXY must be an http:// proxy URL (got scheme 'socks5')"


def through_a_proxy(port: int) -> S3FileSystem:
    """S3 on AWS through a loopback proxy at `port`, with credentials in its URL; no retries."""
    return S3FileSystem(
        lambda: Credentials("AKID", SECRET),
        region="eu-west-1",
        env={"HTTPS_PROXY": f"http://user:pw@127.0.0.1:{port}"},
        delays=(),
    )


def test_an_https_endpoint_is_reached_through_the_proxy_s_tunnel() -> None:
    # A loopback "proxy" that records the CONNECT, accepts it, then closes: the TLS handshake
    # fails, but the tunnel was asked for the bucket's host on AWS.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(4096)
            got.append(data)
            connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    fs = through_a_proxy(port)
    with pytest.raises(OSError):
        fs.open("backups/k")
    thread.join(5)
    listener.close()
    [request] = got
    lines = request.decode().split("\r\n")
    assert lines[0] == "CONNECT backups.s3.eu-west-1.amazonaws.com:443 HTTP/1.0"
    assert "Proxy-Authorization: Basic dXNlcjpwdw==" in lines


def test_a_proxy_that_cannot_be_reached_is_named_as_what_the_store_cannot_be_reached_by() -> None:
    """$HTTPS_PROXY on a port nothing listens at: the listing stops early (exit 4) saying the
    connection refused was the proxy's, where it read 'the store cannot be reached ([Errno 111]
    Connection refused)' and a data engineer checked the store's endpoint, which was right."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert listing_stopped(through_a_proxy(port)) == (
        "cannot list s3://b/rs: the store cannot be reached ([Errno 111] Connection refused, "
        "connecting to the proxy in $HTTPS_PROXY)",
        UNREACHABLE_LISTING_HINT,
    )


# -- the feed over S3's answers ------------------------------------------------------------------


def test_the_feed_tries_a_5xx_get_again_but_not_a_400(canned: tuple[CannedS3, list[Any]]) -> None:
    server, script = canned
    keys = {"rs/a.json": b'{"type": "identify", "userId": "u", "messageId": "m"}\n'}
    keys["rs/b.json"] = keys["rs/a.json"]

    def fault(seen: Seen, get: int) -> Answer | None:
        if seen.path == "/b/rs/a.json" and get == 1:
            return Answer(503, {}, error_xml("SlowDown", "Please reduce your request rate."))
        if seen.path == "/b/rs/b.json":
            return Answer(400, {}, error_xml("InvalidRequest", "no"))
        return None

    answer, gets = bucket("b", keys, fault)
    script.append(answer)
    slept: list[float] = []
    fs = fs_for(server)
    reader = EventReader(["s3://b/rs"], resolver=lambda _: (fs, "b/rs"), sleep=slept.append)
    assert [(item.source, error(item)) for item in reader] == [
        ("s3://b/rs/a.json:1", ""),
        (
            "s3://b/rs/b.json",
            "cannot read object: S3 answered HTTP 400 (InvalidRequest: no) for s3://b/rs/b.json",
        ),
    ]
    assert slept == [0.5]
    assert gets == {"/b/rs/a.json": 2, "/b/rs/b.json": 1}


def test_credentials_refused_mid_run_stop_the_read_at_that_object(
    canned: tuple[CannedS3, list[Any]],
) -> None:
    """A session token that expires mid-run (hours into a backfill): every object after it
    would fail alike, each a failed item and a dead letter holding no event. The read stops at
    that object instead (StoppedEarly: the run stops, exit 4, and a rerun resumes there); the
    objects after it are not asked for."""
    server, script = canned
    line = b'{"type": "identify", "userId": "u", "messageId": "m"}\n'
    keys = {"rs/a.json": line, "rs/b.json": line, "rs/c.json": line}

    expired = Answer(400, {}, error_xml("ExpiredToken", "The provided token has expired."))
    answer, _ = bucket("b", keys, lambda seen, _: expired if seen.path == "/b/rs/b.json" else None)
    script.append(answer)
    fs = fs_for(server)
    reader = EventReader(["s3://b/rs"], resolver=lambda _: (fs, "b/rs"), sleep=[].append)
    read: list[tuple[str, str]] = []
    with pytest.raises(StoppedEarly) as caught:
        read.extend((item.source, error(item)) for item in reader)
    assert read == [("s3://b/rs/a.json:1", "")]
    assert caught.value.message == (
        "cannot read s3://b/rs/b.json: S3 refused the credentials (ExpiredToken): The provided "
        "token has expired."
    )
    assert caught.value.hint == (  # what it does: the command's
        "renew the credentials: their session token expired (aws sso login, or a new session), "
        "then rerun the same command"
    )
    assert "/b/rs/c.json" not in [seen.path for seen in server.seen]
    assert TOKEN not in caught.value.message and SECRET not in caught.value.message


ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SIGNED = "AWS4-HMAC-SHA256\n20261207T103000Z\n20261207/us-east-1/s3/aws4_request\n0123abcd"
KMS_SAID = (
    "User: arn:aws:iam::111122223333:user/rpd is not authorized to perform: kms:Decrypt on "
    "resource: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab "
    "because no identity-based policy allows the kms:Decrypt action"
)
DENIED_SAID = (
    "User: arn:aws:iam::111122223333:user/rpd is not authorized to perform: s3:GetObject on "
    'resource: "arn:aws:s3:::acme-kms-backups/rs/b.json" because no identity-based policy allows '
    "the s3:GetObject action"
)
DENIED = "check the URL, the credentials' permissions and the bucket's policy"
DENIED_ANSWER = Answer(403, {}, error_xml("AccessDenied", "Access Denied"))
KMS = (
    "the object is encrypted with a KMS key these credentials may not use: allow them "
    "kms:Decrypt in the key's policy (and check the key is enabled)"
)
# S3's 403s (and 400s) as S3 answers them, with the elements beside the Message that must never
# be shown (the access key id, the string signed, the token), and what rpd says and hints: the
# credentials refused stop the read (True), one object denied fails alone (False).
S3_REFUSALS = {
    "wrong-secret": (
        Answer(403, {}, error_xml(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            AWSAccessKeyId=ACCESS_KEY, StringToSign=SIGNED, SignatureProvided="0badc0de",
        )),
        True,
        "S3 refused the credentials (SignatureDoesNotMatch): The request signature we "
        "calculated does not match the signature you provided. Check your key and signing "
        "method.",
        "check the secret access key (AWS_SECRET_ACCESS_KEY, or the profile's "
        "aws_secret_access_key): it is not the one of the access key id, then rerun the same "
        "command",
    ),
    "unknown-key": (
        Answer(403, {}, error_xml(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=ACCESS_KEY,
        )),
        True,
        "S3 refused the credentials (InvalidAccessKeyId): The AWS Access Key Id you provided "
        "does not exist in our records.",
        "check the access key id (AWS_ACCESS_KEY_ID, or the profile's aws_access_key_id): S3 "
        "knows no such key (mistyped, deleted, or another store's), then rerun the same command",
    ),
    "expired-token": (
        Answer(400, {}, error_xml(
            "ExpiredToken", "The provided token has expired.", **{"Token-0": TOKEN}
        )),
        True,
        "S3 refused the credentials (ExpiredToken): The provided token has expired.",
        "renew the credentials: their session token expired (aws sso login, or a new session), "
        "then rerun the same command",
    ),
    "token-echoed": (  # a store whose words echo the key and the token: neither is shown
        Answer(400, {}, error_xml(
            "InvalidToken", f"The token {TOKEN} of {ACCESS_KEY} is malformed."
        )),
        True,
        "S3 refused the credentials (InvalidToken): The token (hidden) of (hidden) is malformed.",
        "check the session token (AWS_SESSION_TOKEN, or the profile's aws_session_token): S3 "
        "cannot read it, or it is not the access key id's, then rerun the same command",
    ),
    "all-access-disabled": (
        Answer(403, {}, error_xml(
            "AllAccessDisabled", "All access to this object has been disabled"
        )),
        True,
        "S3 refused access (AllAccessDisabled): All access to this object has been disabled",
        "ask the bucket's owner: AWS disabled all access to it (an account suspended or "
        "closed), which no credentials of rpd's mend, then rerun the same command",
    ),
    "kms-denied": (
        Answer(403, {}, error_xml("AccessDenied", KMS_SAID)),
        False,
        f"S3 refused access (AccessDenied): {KMS_SAID[:200]}",
        KMS,
    ),
    "kms-key-disabled": (
        Answer(400, {}, error_xml(
            "KMS.DisabledException",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd is disabled.",
        )),
        False,
        "S3 refused access (KMS.DisabledException): arn:aws:kms:us-east-1:111122223333:key/"
        "1234abcd is disabled.",
        KMS,
    ),
    "denied-in-a-bucket-named-kms": (  # AWS's words of a policy: no KMS key in them
        Answer(403, {}, error_xml("AccessDenied", DENIED_SAID)),
        False,
        f"S3 refused access (AccessDenied): {DENIED_SAID[:200]}",
        DENIED,
    ),
    "access-denied": (
        DENIED_ANSWER,
        False,
        "S3 refused access (AccessDenied): Access Denied",
        DENIED,
    ),
}  # fmt: skip


def refused_listing_then_b(
    canned: tuple[CannedS3, list[Any]], refusal: Answer, **env: str
) -> tuple[UsageError, EventReader]:
    """The error of a listing of s3://b/rs that `refusal` answers (its HEAD, which has no body
    to say why, then the listing), and a reader of rs/a.json, rs/b.json and rs/c.json whose GET
    of b.json `refusal` answers."""
    server, script = canned
    script.append(refusal)
    fs = fs_for(server, **env)
    with pytest.raises(UsageError) as listing:
        EventReader(["s3://b/rs"], resolver=lambda _: (fs, "b/rs"))
    line = b'{"type": "identify", "userId": "u", "messageId": "m"}\n'
    keys = {"rs/a.json": line, "rs/b.json": line, "rs/c.json": line}
    answer, _ = bucket("b", keys, lambda seen, _: refusal if seen.path == "/b/rs/b.json" else None)
    script[:] = [answer]
    return listing.value, EventReader(
        ["s3://b/rs"], resolver=lambda _: (fs, "b/rs"), sleep=[].append
    )


@pytest.mark.parametrize(
    ("refusal", "stops", "said", "hint"), S3_REFUSALS.values(), ids=S3_REFUSALS.keys()
)
def test_s3_s_refusals_are_said_in_its_words_with_what_to_do_and_no_secret(
    canned: tuple[CannedS3, list[Any]], refusal: Answer, stops: bool, said: str, hint: str
) -> None:
    """S3's 403s all read 'access denied' (and 'check the credentials'), its words dropped: a
    wrong secret key, an unknown key id, an expired token, a KMS key the credentials may not
    use, a bucket AWS disabled. Said now with S3's code and Message, and what to do about each:
    at the listing (exit 2), and at an object's read, where refused credentials stop the read
    there and a denied object fails alone, the others read. Nothing beside the Message is
    shown, and a Message echoing the key or the token has them hidden."""
    server, _ = canned
    listing, reader = refused_listing_then_b(canned, refusal, AWS_ACCESS_KEY_ID=ACCESS_KEY)
    assert (listing.message, listing.hint) == (
        f"cannot list s3://b/rs: {said}",
        f"{hint} (nothing was read or sent)",
    )
    read: list[tuple[str, str]] = []
    shown = [listing.message, listing.hint]
    if stops:
        with pytest.raises(StoppedEarly) as stopped:
            read.extend((item.source, error(item)) for item in reader)
        assert read == [("s3://b/rs/a.json:1", "")]
        assert (stopped.value.message, stopped.value.hint) == (
            f"cannot read s3://b/rs/b.json: {said}",
            hint,
        )
        assert "/b/rs/c.json" not in [seen.path for seen in server.seen]
        shown += [stopped.value.message, stopped.value.hint]
    else:
        read.extend((item.source, error(item)) for item in reader)
        assert read == [
            ("s3://b/rs/a.json:1", ""),
            ("s3://b/rs/b.json", f"cannot read object: {said}; {hint}"),
            ("s3://b/rs/c.json:1", ""),
        ]
        shown += [why for _, why in read]
    for secret in (SECRET, TOKEN, ACCESS_KEY, SIGNED.split("\n")[-1], "0badc0de"):
        assert not any(secret in text for text in shown)
    assert [seen.path for seen in server.seen].count("/b/rs/b.json") == 1  # not tried again


SKEWED = Answer(
    403,
    {},
    error_xml(
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
        RequestTime="20261207T103000Z",
        ServerTime="2026-12-07T10:00:00Z",
        MaxAllowedSkewMilliseconds="900000",
    ),
)
CLOCK = "set this machine's clock right (NTP), then rerun the same command"


def test_a_clock_s3_finds_too_far_from_its_own_is_said_at_the_listing_and_stops_a_read(
    canned: tuple[CannedS3, list[Any]],
) -> None:
    """S3 refuses every request signed more than 15 minutes from its time (a VM or container
    whose clock drifted): said as such, what to do the clock, where it read 'access denied',
    the credentials' hint (a data engineer checked IAM), and each object failed alike."""
    server, _ = canned
    listing, reader = refused_listing_then_b(canned, SKEWED)
    assert (listing.message, listing.hint) == (
        "cannot list s3://b/rs: S3 refused the request for s3://b/rs/: this machine's clock is "
        "wrong (S3's time is 2026-12-07T10:00:00Z, more than 15 minutes away) "
        "(RequestTimeTooSkewed)",
        f"{CLOCK} (nothing was read or sent)",
    )
    read: list[tuple[str, str]] = []
    with pytest.raises(StoppedEarly) as stopped:
        read.extend((item.source, error(item)) for item in reader)
    assert read == [("s3://b/rs/a.json:1", "")]
    assert (stopped.value.message, stopped.value.hint) == (
        "cannot read s3://b/rs/b.json: S3 refused the request for s3://b/rs/b.json: this "
        "machine's clock is wrong (S3's time is 2026-12-07T10:00:00Z, more than 15 minutes "
        "away) (RequestTimeTooSkewed)",
        CLOCK,
    )
    assert "/b/rs/c.json" not in [seen.path for seen in server.seen]


def test_a_broken_aws_config_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    config = write(tmp_path / "config", "[profile x\nregion = eu-west-1\n")
    with pytest.raises(UsageError) as caught:
        S3FileSystem.from_environment({**NOWHERE, "AWS_CONFIG_FILE": config})
    assert caught.value.message.startswith(f"cannot read the AWS file {config}: ")
    assert caught.value.hint == (
        "fix the file, or point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE elsewhere"
    )


def test_the_chain_s_credentials_are_frozen_anew_for_each_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # botocore's refreshable credentials change under a long run (a role's session expires):
    # each request signs with what they are at that moment, read at once (frozen).
    from types import SimpleNamespace

    import rudder_pipedrive_cli.io.botocore_data as botocore_data

    turns = iter(range(1, 10))

    class Refreshing:
        def get_frozen_credentials(self) -> Any:
            turn = next(turns)
            return SimpleNamespace(access_key=f"K{turn}", secret_key=f"s{turn}", token=None)

    session = SimpleNamespace(get_credentials=Refreshing)
    monkeypatch.setattr(botocore_data, "lean_s3_session", lambda: session)
    source = credential_source(NOWHERE, Profile.load(NOWHERE))
    assert [source(), source()] == [Credentials("K1", "s1"), Credentials("K2", "s2")]


def test_a_server_that_never_answers_times_out_and_is_tried_again() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nothing answers
    slept: list[float] = []
    fs = S3FileSystem(
        lambda: Credentials("AKID", SECRET),
        endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
        sleep=slept.append,
        delays=(0.5, 1.0),
        timeouts=(5.0, 0.05),  # the read's
    )
    with silent, pytest.raises(TimeoutError):
        fs.info("b/k")
    assert slept == [0.5, 1.0]  # three tries, each timed out


def test_a_connection_not_made_in_time_is_a_store_unreachable_not_a_read_s_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A firewall that drops the packets (no S3 endpoint or NAT in the VPC): the connect
    timeout, after the listing's tries, stops early (exit 4) naming the network, where it was
    'timed out', exit 2, and the hint the URL and the credentials. A read's timeout (a server
    that accepted and never answers) stays one, above."""

    def connect(self: http.client.HTTPConnection) -> None:
        raise TimeoutError("timed out")  # what socket.create_connection raises then

    monkeypatch.setattr(http.client.HTTPConnection, "connect", connect)
    fs = S3FileSystem(
        lambda: Credentials("AKID", SECRET), endpoint="http://s3.internal", sleep=[].append
    )
    assert listing_stopped(fs) == (
        "cannot list s3://b/rs: the store cannot be reached ([Errno 110] connecting to "
        "s3.internal timed out)",
        UNREACHABLE_LISTING_HINT,
    )


UNREACHABLE_LISTING_HINT = (
    "check the network and the store's endpoint, then rerun the same command (nothing was read "
    "or sent)"
)


def listing_stopped(fs: S3FileSystem) -> tuple[str, str]:
    """What the stop says of reading s3://b/rs from `fs`: its message and hint."""
    with pytest.raises(StoppedEarly) as caught:
        EventReader(["s3://b/rs"], resolver=lambda _: (fs, "b/rs"))
    return caught.value.message, caught.value.hint


class _CutAnswer:
    """A GET's answer of 10 bytes whose stream ends after `given` bytes: at the end of the
    body (`read` answers b"") or in a read (http.client's IncompleteRead, with `partial`)."""

    def __init__(self, given: bytes, partial: bytes | None) -> None:
        self._reads = [given, partial]

    def getheader(self, name: str) -> str | None:
        return {"Content-Length": "10", "ETag": '"e1"'}.get(name)

    def read(self, size: int | None = None) -> bytes:
        data = self._reads.pop(0)
        if data is None:
            return b""
        if not self._reads:
            raise http.client.IncompleteRead(data, 10)
        return data

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("partial", "said"),
    [(None, "after 6 of 10 bytes"), (b"abc", "after 9 of 10 bytes")],
    ids=["stream-ends", "incomplete-read"],
)
def test_an_object_whose_connection_closes_early_says_how_far_it_got(
    partial: bytes | None, said: str
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1")
    stream = S3Object(connection, _CutAnswer(b"abcdef", partial))  # type: ignore[arg-type]
    assert stream.read(6) == b"abcdef"
    with pytest.raises(ConnectionResetError) as raised:
        stream.read(4)
    assert str(raised.value) == f"the connection closed {said}"


@pytest.mark.parametrize(
    ("listed", "got"),
    [
        ("E7B1D0A4C2F3", '"e7b1d0a4c2f3"'),  # a proxy that unquotes and upper-cases the listing
        ("&quot;e7b1d0a4c2f3-2&quot;", '"E7B1D0A4C2F3-2"'),  # a store whose GET upper-cases
        ("&quot;e7b1d0a4c2f3&quot;", 'W/"e7b1d0a4c2f3"'),  # a proxy that made the GET's weak
    ],
    ids=["listing-unquoted-upper", "get-upper-multipart", "get-weak"],
)
def test_an_etag_spelled_otherwise_by_the_get_than_by_the_listing_is_one_version(
    canned: tuple[CannedS3, list[Any]], listed: str, got: str
) -> None:
    # What the run records finished (the GET's ETag) is what the rerun matches its listing's
    # against: spelled otherwise (quotes, case, weak), every rerun read every object again.
    server, script = canned
    [name] = KEYS
    listing = listing_xml("b", KEYS).replace(f"&quot;e-{name}&quot;".encode(), listed.encode())

    def answer(seen: Seen) -> Answer:
        if seen.method == "HEAD":  # no object named b/rs: a prefix
            return Answer(404)
        if "list-type" in seen.path:
            return Answer(200, {}, listing)
        return Answer(200, {"ETag": got}, OBJECT)

    script.append(answer)
    fs = fs_for(server)
    finished: dict[str, str] = {}
    first = EventReader(
        ["s3://b/rs"], resolver=lambda _: (fs, "b/rs"), on_finished=finished.__setitem__
    )
    for item in first:
        first.item_done(item.source, "sent")
    assert list(finished) == [f"s3://b/{name}"]
    again = EventReader(
        ["s3://b/rs"],
        resolver=lambda _: (fs, "b/rs"),
        finished=lambda name, version: finished.get(name) == version,
    )
    assert (again.objects_skipped, again.objects_total) == (1, 0)
