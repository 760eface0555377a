"""What the object-storage tests share: a RudderStack backup in its layout (hours and instances
whose key order is not time order, objects outside the window, one outside the layout), a
filesystem spy, and a real S3 API on loopback (moto's server) behind a proxy that records every
request and can cut one object's body mid-way."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self

import orjson
import pytest
from loopback import serve_in_thread

from rudder_pipedrive_cli.core.backups import Window
from rudder_pipedrive_cli.core.events import Event


def stamp(hour: int, minute: int = 0, day: int = 1) -> int:
    return int(datetime(2024, 5, day, hour, minute, tzinfo=UTC).timestamp())


def identify(message_id: str) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": message_id,
        "userId": f"user-{message_id}",
        "timestamp": "2024-05-01T09:00:00Z",
        "traits": {"name": f"Person {message_id}"},
    }


def archive(*events: dict[str, Any], batch: bool = True) -> bytes:
    """A backup object: gzipped archive lines, each {"userId", "payload", "createdAt",
    "messageId"}; the payload a batch body or (batch=False) the event itself."""
    lines = []
    for event in events:
        payload = (
            {"batch": [event]} if batch else {k: v for k, v in event.items() if k != "messageId"}
        )
        line = {
            "userId": event["userId"],
            "payload": payload,
            "createdAt": "2024-05-01T07:00:00Z",
            "messageId": event["messageId"],
        }
        lines.append(orjson.dumps(line) + b"\n")
    return gzip.compress(b"".join(lines))


def key(source: str, day: str, hour: int, instance: str, first: int, last: int) -> str:
    return f"{source}/gw/{day}/{hour}/{instance}/{first}_{last}_ws-1.json.gz"


MAY_1, MAY_2, APRIL_28 = "2024-05-01", "2024-05-02", "2024-04-28"
APRIL_28_9 = int(datetime(2024, 4, 28, 9, tzinfo=UTC).timestamp())
APRIL_30_2350 = int(datetime(2024, 4, 30, 23, 50, tzinfo=UTC).timestamp())


# The window the tests read: 2024-05-01 from 00:00 to 12:00 UTC.
WINDOW = Window(since=datetime(2024, 5, 1, tzinfo=UTC), until=datetime(2024, 5, 1, 12, tzinfo=UTC))
SINCE, UNTIL = "2024-05-01", "2024-05-01T12:00:00Z"

# Key -> events. Key order (hour "10" before "7", instance "i-1" before "i-2") is not time order.
A_10 = key("src-a", MAY_1, 10, "i-1", stamp(10), stamp(10, 5))
A_0730 = key("src-a", MAY_1, 7, "i-1", stamp(7, 30), stamp(7, 40))
A_0700 = key("src-a", MAY_1, 7, "i-2", stamp(7), stamp(7, 50))
B_08 = key("src-b", MAY_1, 8, "i-9", stamp(8), stamp(8, 1))
B_00 = key("src-b", MAY_1, 0, "i-9", APRIL_30_2350, stamp(0, 10))  # spans midnight
IN_WINDOW = {
    A_10: [identify("a-10")],
    A_0730: [identify("a-0730"), identify("a-0735")],
    A_0700: [identify("a-0700")],
    B_08: [identify("b-08")],
    B_00: [identify("b-00")],
}
# Read in this order: FIRST, then LAST, then key; key order would be A_10, A_0730, A_0700, B_00.
TIME_ORDER = [B_00, A_0700, A_0730, B_08, A_10]
OUTSIDE = {
    # a day folder the window cannot touch: never listed
    key("src-a", APRIL_28, 9, "i-1", APRIL_28_9, APRIL_28_9 + 60): [identify("old")],
    # listed (its day is in the window) but its jobs are after --until: never opened
    key("src-a", MAY_1, 13, "i-1", stamp(13), stamp(13, 30)): [identify("late")],
    # the next day's folder is listed (one day's margin) but its object not opened
    key("src-b", MAY_2, 1, "i-9", stamp(1, day=2), stamp(1, 5, day=2)): [identify("next-day")],
}
NOT_LAYOUT = {"src-a/manual-export.ndjson.gz": [identify("manual")]}
PRUNED_DAY = "src-a/gw/2024-04-28"


def backup_objects() -> dict[str, bytes]:
    every = {**IN_WINDOW, **OUTSIDE, **NOT_LAYOUT}
    return {name: archive(*events) for name, events in every.items()}


def expected_sources(root: str) -> list[tuple[str, str]]:
    """(source, messageId) of what reading `root` with WINDOW gives, in order."""
    rows = []
    for name in [*TIME_ORDER, *NOT_LAYOUT]:
        events = IN_WINDOW.get(name) or NOT_LAYOUT[name]
        for line, event in enumerate(events, 1):
            rows.append((f"{root}/{name}:{line}#1", event["messageId"]))
    return rows


class Spy:
    """A filesystem that records the calls rpd makes (method, path) and delegates them."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.fs, name)
        if name not in ("ls", "find", "open", "info"):
            return method

        def recorded(path: str, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, path))
            return method(path, *args, **kwargs)

        return recorded

    def paths(self, method: str) -> list[str]:
        return [path for called, path in self.calls if called == method]


@dataclass
class Recorder:
    """The requests the proxy saw, and the object bodies it is to cut (key -> times left)."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    ranges: list[tuple[str, str | None]] = field(default_factory=list)  # GETs: path, Range
    cut: dict[str, int] = field(default_factory=dict)
    cuts_made: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # keys whose GETs S3 answers ExpiredToken
    # "HEAD" or "LIST" -> how many of the next such requests S3 answers 503 SlowDown
    busy: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoopbackServer:
    """An HTTP server on a free loopback port, serving on a thread while in `with`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        serve_in_thread(self.server)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class S3Proxy(LoopbackServer):
    """A loopback HTTP proxy in front of moto's server: records requests; for a GET of a key in
    `recorder.cut`, sends the headers and half the body, then resets the connection; a GET of a
    key in `recorder.refused` it answers as S3 answers a session token that expired; the next
    HEADs and listings `recorder.busy` counts, as S3 answers a request rate too high."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.recorder = Recorder()
        recorder, (host, port) = self.recorder, upstream

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with recorder.lock:
                    recorder.requests.append((self.command, self.path))
                    if self.command == "GET":
                        recorder.ranges.append((self.path, self.headers.get("Range")))
                    target = self.path.split("?")[0]
                    refused = self.command == "GET" and any(
                        target.endswith(f"/{name}") for name in recorder.refused
                    )
                    kind = "LIST" if "list-type=" in self.path else self.command
                    busy = recorder.busy.get(kind, 0) > 0
                    if busy:
                        recorder.busy[kind] -= 1
                if busy:  # a HEAD's answer has no body
                    slow = error_xml("SlowDown", "Please reduce your request rate.")
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(slow)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(slow)
                    return
                if refused:
                    body = error_xml("ExpiredToken", "The provided token has expired.")
                    self.send_response(400)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                upstream = http.client.HTTPConnection(host, port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                # A HEAD's answer has no body: its length is the object's, as upstream said.
                length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                target = self.path.split("?")[0]
                with recorder.lock:
                    left = next(
                        (k for k, n in recorder.cut.items() if n and target.endswith(k)), None
                    )
                    if self.command == "GET" and left is not None and len(data) > 1:
                        recorder.cut[left] -= 1
                        recorder.cuts_made.append(left)
                    else:
                        left = None
                if left is not None:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        super().__init__(Handler)


def object_gets(requests: list[tuple[str, str]], bucket: str) -> Iterator[str]:
    """The keys of the objects GET requests fetched (listings are GETs of the bucket)."""
    for method, path in requests:
        target = path.split("?")[0]
        if method == "GET" and target.startswith(f"/{bucket}/") and len(target) > len(bucket) + 2:
            yield target[len(bucket) + 2 :]


@dataclass
class S3:
    """moto's S3 server on loopback behind the recording proxy; the environment points at it."""

    proxy: S3Proxy
    client: Any
    bucket: str = "backups"

    def upload(self, objects: dict[str, bytes], prefix: str = "rs") -> None:
        for name, data in objects.items():
            self.client.put_object(Bucket=self.bucket, Key=f"{prefix}/{name}", Body=data)
        with self.proxy.recorder.lock:
            self.proxy.recorder.requests.clear()
            self.proxy.recorder.ranges.clear()


@contextmanager
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """Start moto's server on a free loopback port and the proxy before it; point AWS_* there
    (credentials are moto's dummies; no config file of the machine is read)."""
    import boto3
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    # moto's ThreadedMotoServer, served as the other loopback servers are (stopped at once).
    server = make_server("127.0.0.1", 0, DomainDispatcherApplication(create_backend_app), True)
    serve_in_thread(server)
    host, port = str(server.server_address[0]), server.server_address[1]
    try:
        with S3Proxy((host, port)) as proxy:
            for name, value in {
                "AWS_ENDPOINT_URL": proxy.url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/nonexistent/aws-config",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            }.items():
                monkeypatch.setenv(name, value)
            monkeypatch.delenv("AWS_PROFILE", raising=False)
            client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
            s3 = S3(proxy=proxy, client=client)
            client.create_bucket(Bucket=s3.bucket)
            yield s3
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class CannedS3(LoopbackServer):
    """A loopback HTTP server answering each request with `answer(seen)` (an Answer), and
    recording what it saw: S3's answers rpd must handle that moto does not give (a bucket in
    another region, 5xx, SlowDown, 412, denied)."""

    def __init__(self, answer: Any) -> None:
        self.seen: list[Seen] = []
        seen, lock = self.seen, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                request = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
                )
                with lock:
                    seen.append(request)
                reply: Answer = answer(request)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in reply.headers:  # a HEAD's is the object's
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_HEAD = _answer

        super().__init__(Handler)


def bucket(
    name: str,
    keys: dict[str, bytes],
    fault: Callable[[Seen, int], Answer | None] = lambda seen, get: None,
) -> tuple[Callable[[Seen], Answer], dict[str, int]]:
    """A CannedS3 answer for bucket `name` holding `keys` (a HEAD finds no object, a listing
    lists them all, a GET gives the object) unless `fault(seen, n)` answers the n-th GET of
    its path otherwise; and the GETs made, by path."""
    gets: dict[str, int] = {}

    def answer(seen: Seen) -> Answer:
        if seen.method == "HEAD":
            return Answer(404)
        if "list-type" in seen.path:
            return Answer(200, {}, listing_xml(name, keys))
        gets[seen.path] = gets.get(seen.path, 0) + 1
        key = seen.path.removeprefix(f"/{name}/")
        return fault(seen, gets[seen.path]) or Answer(200, {"ETag": f'"e-{key}"'}, keys[key])

    return answer, gets


def listing_xml(bucket: str, keys: dict[str, bytes]) -> bytes:
    """A ListObjectsV2 answer holding `keys` (no folders, one page)."""
    contents = "".join(
        f"<Contents><Key>{name}</Key><Size>{len(data)}</Size><ETag>&quot;e-{name}&quot;</ETag>"
        "</Contents>"
        for name, data in keys.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{bucket}</Name><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
    ).encode()


def error_xml(code: str, message: str, **more: str) -> bytes:
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in more.items())
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{message}</Message>{extra}</Error>"
    ).encode()


# Look-alikes of the errors gcsfs and adlfs raise for refused credentials (neither is installed
# here, and rpd knows them by class name): the same names, bases and attributes.
class HttpError(Exception):
    """gcsfs.retry.HttpError: `code` and `message` from Google's error answer."""

    def __init__(self, code: int | str, message: str) -> None:
        super().__init__(f"{message}, {code}")
        self.code, self.message = code, message


class GoogleAuthError(Exception):
    """google.auth.exceptions.GoogleAuthError."""


class RefreshError(GoogleAuthError):
    """google.auth.exceptions.RefreshError: the credentials could not be refreshed."""


class AzureError(Exception):
    """azure.core.exceptions.AzureError."""


class HttpResponseError(AzureError):
    """azure.core.exceptions.HttpResponseError: `status_code`, and `error_code` (the answer's
    x-ms-error-code)."""

    def __init__(self, message: str, status_code: int, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status_code, self.error_code = status_code, error_code


class ClientAuthenticationError(HttpResponseError):
    """azure.core.exceptions.ClientAuthenticationError."""


# Each with what rpd says of it: the store refused the credentials, so the run stops.
CREDENTIALS_REFUSED = [
    (
        HttpError(401, "Invalid Credentials"),
        "Google Cloud Storage refused the credentials (HTTP 401)",
    ),
    (
        RefreshError("invalid_grant: Token has been expired or revoked."),
        "Google refused to refresh the credentials (RefreshError)",
    ),
    (
        ClientAuthenticationError("Server failed to authenticate the request.", 401),
        "Azure refused the credentials (HTTP 401)",
    ),
    (
        HttpResponseError("Signature not valid in the specified time frame", 403,
                          "AuthenticationFailed"),
        "Azure refused the credentials (AuthenticationFailed)",
    ),
]  # fmt: skip


def gcsfs_403(message: str, path: str = "b/backups/o/rs%2Fb.json") -> OSError:
    """The error gcsfs raises for a 403, as gcsfs.retry.validate_response makes it: a plain
    OSError, no errno, no code; `path` the API's, `message` Google's error answer's."""
    return OSError(f"Forbidden: {path}\n{message}")


GCS_DENIED = (
    "rpd@acme.iam.gserviceaccount.com does not have storage.objects.get access to the Google "
    "Cloud Storage object. Permission 'storage.objects.get' denied on resource."
)
# gcsfs's 403, with what rpd says of it (only gcsfs raises it: a GCS case, not Azure's).
GCS_FORBIDDEN = (
    gcsfs_403(GCS_DENIED),
    f"Google Cloud Storage refused access (HTTP 403): {GCS_DENIED}",
)

# azure-core's 403 for a permission the credentials lack (storage's words run on with the
# request's id and time), with what rpd says of it: that object fails, as GCS's 403.
AZURE_FORBIDDEN = (
    HttpResponseError(
        "This request is not authorized to perform this operation using this permission.\n"
        "RequestId:5d4e1f2a-001e-0042-3a1b-000000000000\nTime:2026-12-07T00:30:00.0000000Z",
        403,
        "AuthorizationPermissionMismatch",
    ),
    "Azure refused access (AuthorizationPermissionMismatch): This request is not authorized to "
    "perform this operation using this permission.",
)


def error(item: Event) -> str:
    """Why a reader's item is not an event ("" for an event)."""
    return item.decided.reason if item.decided is not None else ""


class Item(NamedTuple):
    """What the reading tests compare of an item: its source, what its dead letter keeps (the
    event value, or the unparsable line's text) and why it is not an event ("" for an event)."""

    source: str
    raw: Any = None
    error: str = ""


def viewed(items: Iterable[Event]) -> list[Item]:
    return [Item(item.source, item.raw, error(item)) for item in items]


# An alias whose previous person Pipedrive does not hold, while its current one is found (by
# external id: person 1, created just before) though not by its userId: the alias updates that
# person, caches it for the userId and caches nothing for the previousId (SPEC 4 alias).
ALIAS: dict[str, Any] = {
    "type": "alias",
    "messageId": "a-1",
    "previousId": "user-old",
    "userId": "user-new",
    "timestamp": "2024-05-01T09:05:00Z",
    "context": {"externalId": [{"type": "curr_person_id", "id": 1}]},
    "traits": {},
}
