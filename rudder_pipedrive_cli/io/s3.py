"""rpd's own S3 client, on the standard library (issue 17): what io/objects.py needs of S3 and
nothing more, so that reading a backup from S3 costs about the memory of reading it from a
folder (s3fs's stack, aiobotocore, aiohttp and botocore, cost 40 MB of RSS to import, more than a
whole local-folder run).

It exposes the four filesystem methods the listing and streaming code calls (`info`, `ls`,
`find`, `open`), with fsspec's names and entries (`bucket/key`, `type`, `size`, `ETag`), so that
folders, S3, GCS and Azure go through one code path:

- `ls` and `find` are ListObjectsV2 (`list-type=2`, `prefix`, `delimiter=/` for `ls`, none for
  `find`, continuation tokens, keys URL-encoded by S3 and decoded here);
- `info` is a HEAD of the object (size, ETag), else a one-key listing of the prefix;
- `open` is one GET of the whole object, read from the socket chunk by chunk as asked.

Requests are signed with AWS Signature Version 4 (`signed_headers`, pure). Listing and HEAD retry
transient failures (5xx, 429 and SlowDown, timeouts, resets) with backoff; a GET is not retried
here: the feed (io/objects.py) opens the object again and skips what it handed out.

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then the profile's
static keys (AWS_PROFILE, else `default`) in the shared credentials file, then in the config
file; anything else (SSO, roles, credential_process, web identity, container and instance
credentials) through botocore's own chain, when botocore is installed (the `s3` extra). The
secret key and the session token are never in a message, a repr or a state.
"""

from __future__ import annotations

import base64
import configparser
import errno
import hashlib
import hmac
import http.client
import os
import re
import ssl
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, unquote_plus, urlsplit

from rudder_pipedrive_cli.core.errors import UsageError
from rudder_pipedrive_cli.io.objects import (
    RERUN,
    RETRY_DELAYS,
    AccessRefused,
    ClockSkewed,
    CredentialsRefused,
    ObjectChanged,
)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # every request rpd sends has an empty body
NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT = 10.0  # seconds to open a connection (and a proxy's tunnel)
READ_TIMEOUT = 60.0  # seconds a read may wait for the next bytes (botocore's default too)
# Keys of a profile that only botocore's credential chain can turn into credentials.
CHAIN_KEYS = (
    "role_arn",
    "credential_process",
    "credential_source",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "web_identity_token_file",
)
CHAIN_ENV = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
EXTRA_HINT = "pip install 'rudder_pipedrive_cli[s3]'"
PROXY = frozenset({"HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"})
T = TypeVar("T")
Query = Sequence[tuple[str, str]]  # a request's query parameters, as (name, value)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of AWS credentials; the secret and the token are left out of the repr."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


# -- signing (pure) ------------------------------------------------------------------------------


def canonical_query(query: Query) -> str:
    """The query string as SigV4 signs it (and as it is sent): each name and value
    percent-encoded (all but letters, digits and `-_.~`), sorted."""
    pairs = sorted((quote(name, safe=""), quote(value, safe="")) for name, value in query)
    return "&".join(f"{name}={value}" for name, value in pairs)


def signed_headers(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str,
    when: float,
) -> dict[str, str]:
    """The headers of a request signed with AWS Signature Version 4 for S3: `headers` with
    Host, x-amz-date, x-amz-content-sha256 (of the empty body), x-amz-security-token (with a
    session token) and Authorization. `path` is the URI-encoded path; `query` canonical_query's."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    day = stamp[:8]
    sent = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    sent |= {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
    if credentials.token:
        sent["x-amz-security-token"] = credentials.token
    names = sorted(sent)
    signed = ";".join(names)
    canonical = "\n".join(
        (
            method,
            path,
            query,
            "".join(f"{name}:{sent[name]}\n" for name in names),
            signed,
            EMPTY_SHA256,
        )
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest())
    )
    key = ("AWS4" + credentials.secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    sent["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return sent


# -- errors --------------------------------------------------------------------------------------


class S3Error(OSError):
    """An answer of S3 that is neither missing nor denied; `transient` ones are tried again."""

    def __init__(self, text: str, *, transient: bool) -> None:
        super().__init__(text)
        self.strerror = text
        self.transient = transient


# S3's error codes that refuse the credentials themselves, not one object (every later request
# would be refused alike: the run stops there): what is refused, and what to do before the rerun.
CREDENTIALS_GONE = {
    "SignatureDoesNotMatch": (
        "the credentials",
        "check the secret access key (AWS_SECRET_ACCESS_KEY, or the profile's "
        "aws_secret_access_key): it is not the one of the access key id",
    ),
    "InvalidAccessKeyId": (
        "the credentials",
        "check the access key id (AWS_ACCESS_KEY_ID, or the profile's aws_access_key_id): S3 "
        "knows no such key (mistyped, deleted, or another store's)",
    ),
    "ExpiredToken": (
        "the credentials",
        "renew the credentials: their session token expired (aws sso login, or a new session)",
    ),
    "TokenRefreshRequired": ("the credentials", "renew the credentials"),
    "InvalidToken": (
        "the credentials",
        "check the session token (AWS_SESSION_TOKEN, or the profile's aws_session_token): S3 "
        "cannot read it, or it is not the access key id's",
    ),
    "AllAccessDisabled": (
        "access",
        "ask the bucket's owner: AWS disabled all access to it (an account suspended or "
        "closed), which no credentials of rpd's mend",
    ),
}
# A 403 of one object: what to do, and of one encrypted with a KMS key the credentials may not
# use (S3's AccessDenied naming KMS, or a KMS.* code: a key disabled, deleted, not allowed).
DENIED = "check the URL, the credentials' permissions and the bucket's policy"
KMS_DENIED = (
    "the object is encrypted with a KMS key these credentials may not use: allow them "
    "kms:Decrypt in the key's policy (and check the key is enabled)"
)
KMS_WORDS = ("kms:", "kms key", "customer master key")  # not "kms": a bucket may be acme-kms


# A GET of an object a lifecycle rule moved to Glacier Flexible Retrieval or Deep Archive.
ARCHIVED = (
    "it is archived (a Glacier storage class: S3's InvalidObjectState) and must be restored "
    "before it can be read: restore it (aws s3api restore-object), then rerun"
)


def answer_error(status: int, body: bytes, what: str, hidden: Iterable[str] = ()) -> OSError:
    """The error an S3 answer other than 2xx stands for, in S3's words: its code, and its
    Message (alone of the document's elements: SignatureDoesNotMatch's StringToSign and
    AWSAccessKeyId, InvalidToken's Token-0 are never read), with any of `hidden` (the access key,
    the secret key, the session token) it echoes taken out."""
    code, message = _error_text(body, "Code"), _error_text(body, "Message")
    for secret in filter(None, hidden):  # anywhere; a short one as a word ("x" leaves "exist")
        echo = re.escape(secret) if len(secret) >= 8 else rf"(?<!\w){re.escape(secret)}(?!\w)"
        message = re.sub(echo, "(hidden)", message)
    message = " ".join(message.split())[:200]
    if status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
        return FileNotFoundError(f"no such bucket or object: {what}")
    if code == "RequestTimeTooSkewed":  # said as access denied, it sent people to their IAM
        server = _error_text(body, "ServerTime")
        said = f"S3's time is {server}, " if server else ""
        return ClockSkewed(
            f"S3 refused the request for {what}: this machine's clock is wrong ({said}more than "
            "15 minutes away) (RequestTimeTooSkewed)"
        )
    if code == "InvalidObjectState":  # 403, said as access denied: it sent people to their IAM
        return S3Error(ARCHIVED, transient=False)
    words = f"({code or f'HTTP {status}'})" + (f": {message}" if message else "")
    if code in CREDENTIALS_GONE:  # the credentials, not this object: nothing more can be read
        refused, todo = CREDENTIALS_GONE[code]
        return CredentialsRefused(f"S3 refused {refused} {words}", f"{todo}, {RERUN}")
    kms = code.startswith("KMS.") or any(word in message.lower() for word in KMS_WORDS)
    if status == 403 or (kms and status == 400):  # a KMS key disabled or deleted: 400
        return AccessRefused(f"S3 refused access {words}", KMS_DENIED if kms else DENIED)
    if status == 412:
        return ObjectChanged("it changed while being read: rerun to read the new version")
    said = f"{code}: {message}" if code and message else code or message
    text = f"S3 answered HTTP {status}" + (f" ({said})" if said else "") + f" for {what}"
    transient = status >= 500 or status == 429 or code in ("SlowDown", "RequestTimeout")
    return S3Error(text, transient=transient)


def _error_text(body: bytes, name: str) -> str:
    """The element `name` of an error answer's XML document (the Code, the Message; the Region
    that AuthorizationHeaderMalformed names), "" without one or without a document (a HEAD's
    body, an HTML page)."""
    try:
        root = ElementTree.fromstring(body) if body else None
    except ElementTree.ParseError:
        return ""
    return "" if root is None else root.findtext(name) or ""


def is_transient(error: BaseException) -> bool:
    """Worth another try after a pause: S3's 5xx, 429 and SlowDown, timeouts, resets, a
    connection closed early."""
    if isinstance(error, S3Error):
        return error.transient
    return isinstance(
        error, TimeoutError | ConnectionError | http.client.HTTPException | ssl.SSLEOFError
    )


# -- the environment -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """The profile's sections of the shared credentials file and the config file."""

    name: str
    credentials_file: str
    config_file: str
    credentials: Mapping[str, str]
    config: Mapping[str, str]

    @classmethod
    def load(cls, env: Mapping[str, str]) -> Profile:
        name = env.get("AWS_PROFILE") or "default"
        credentials_file = env.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
        config_file = env.get("AWS_CONFIG_FILE") or "~/.aws/config"
        titles = (f"profile {name}", name) if name == "default" else (f"profile {name}",)
        return cls(
            name=name,
            credentials_file=credentials_file,
            config_file=config_file,
            credentials=_section(credentials_file, (name,)),
            config=_section(config_file, titles),
        )

    def setting(self, env: Mapping[str, str], key: str, *names: str) -> str | None:
        """The first of the environment variables `names` that is set, else the config file's
        `key` of the profile, else None."""
        given = next((env[name] for name in names if env.get(name)), None)
        return given or self.config.get(key) or None

    def uses_chain(self) -> bool:
        """Whether the profile names a way only botocore's chain knows (SSO, a role, ...)."""
        return any(
            key in section for section in (self.credentials, self.config) for key in CHAIN_KEYS
        )


def _section(path: str, titles: Sequence[str]) -> dict[str, str]:
    parser = configparser.RawConfigParser(default_section="\x00")
    try:
        parser.read(os.path.expanduser(path), encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(
            f"cannot read the AWS file {path}: {first}",
            hint="fix the file, or point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE elsewhere",
        ) from None
    for title in titles:
        if parser.has_section(title):
            return {key: value.strip() for key, value in parser.items(title)}
    return {}


def static_credentials(env: Mapping[str, str], profile: Profile) -> Credentials | None:
    """Keys from the environment, else the profile's static keys (credentials file, then config
    file); None when only botocore's chain can tell (or nothing holds any)."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN")
        return Credentials(key, secret, token or None)
    if profile.uses_chain():
        return None
    for section in (profile.credentials, profile.config):
        key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
        if key and secret:
            return Credentials(key, secret, section.get("aws_session_token") or None)
    return None


def credential_source(env: Mapping[str, str], profile: Profile) -> Callable[[], Credentials]:
    """What gives the credentials of each request: static ones, or botocore's chain (whose
    credentials refresh, so they are frozen anew for each request)."""
    static = static_credentials(env, profile)
    if static is not None:
        return lambda: static
    looked = (
        f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile {profile.name!r} in "
        f"{profile.credentials_file} and {profile.config_file}"
    )
    try:
        from rudder_pipedrive_cli.io.botocore_data import lean_s3_session
    except ImportError:
        if profile.uses_chain() or any(env.get(name) for name in CHAIN_ENV):
            raise UsageError(
                f"AWS profile {profile.name!r} gets its credentials through SSO, a role or a "
                "process (or the environment names web identity or container credentials): "
                "reading s3:// with them needs rpd's optional s3 extra (botocore)",
                hint=EXTRA_HINT,
            ) from None
        raise UsageError(
            f"no AWS credentials found (rpd looked in {looked})",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE; for SSO, roles "
            f"and instance credentials: {EXTRA_HINT}",
        ) from None
    try:
        found = lean_s3_session().get_credentials()
    except Exception as error:  # botocore's: a missing profile, an expired SSO token, ...
        raise UsageError(
            f"cannot get AWS credentials: {type(error).__name__}: {' '.join(str(error).split())}",
            hint="check AWS_PROFILE and the AWS config (e.g. `aws sso login`)",
        ) from None
    if found is None:
        raise UsageError(
            f"no AWS credentials found (rpd looked in {looked}, then botocore's chain: SSO, "
            "roles, credential_process, web identity, container and instance credentials)",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )

    def frozen() -> Credentials:
        current = found.get_frozen_credentials()
        return Credentials(current.access_key, current.secret_key, current.token or None)

    return frozen


def proxy_for(host: str, env: Mapping[str, str]) -> tuple[str, int, str | None] | None:
    """The proxy an https request to `host` goes through (HTTPS_PROXY, unless NO_PROXY names
    the host or a domain of it): (host, port, Proxy-Authorization value), or None."""
    proxy = env.get("HTTPS_PROXY") or env.get("https_proxy")
    if not proxy:
        return None
    for entry in (env.get("NO_PROXY") or env.get("no_proxy") or "").split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return None
        entry = entry.lstrip(".").partition(":")[0]  # a domain and its hosts, any port
        if entry and (host == entry or host.endswith("." + entry)):
            return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http" or not parts.hostname:
        raise UsageError(
            f"HTTPS_PROXY must be an http:// proxy URL (got scheme {parts.scheme!r})",
            hint="set HTTPS_PROXY=http://HOST:PORT",
        )
    auth = None
    if parts.username is not None:
        user_pass = f"{unquote_plus(parts.username)}:{unquote_plus(parts.password or '')}"
        auth = "Basic " + base64.b64encode(user_pass.encode()).decode()
    return parts.hostname, parts.port or 80, auth


# -- the filesystem ------------------------------------------------------------------------------


class S3FileSystem:
    """S3 (or an S3-compatible store) as io/objects.py reads it; paths are `bucket/key`."""

    def __init__(
        self,
        credentials: Callable[[], Credentials],
        *,
        region: str = DEFAULT_REGION,
        endpoint: str | None = None,
        ca_bundle: str | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        delays: Sequence[float] = RETRY_DELAYS,
        clock: Callable[[], float] = time.time,
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._regions: dict[str, str] = {}  # bucket -> its region, once S3 said it is elsewhere
        self._endpoint = urlsplit(endpoint) if endpoint else None
        if self._endpoint is not None and (
            self._endpoint.scheme not in ("http", "https") or not self._endpoint.hostname
        ):
            raise UsageError(
                f"the S3 endpoint must be an http:// or https:// URL, not {endpoint!r}",
                hint="check AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / the profile's endpoint_url",
            )
        self._ca_bundle = ca_bundle
        self._context: ssl.SSLContext | None = None
        # Only what the proxy needs of the environment: nothing of the credentials is kept.
        self._env = {k: v for k, v in (os.environ if env is None else env).items() if k in PROXY}
        self._sleep = sleep
        self._delays = tuple(delays)
        self._clock = clock
        self._timeouts = timeouts
        # Hears each listing page or HEAD tried again (io/objects.py hear_retries: the run's
        # Tally.store_retried, beside the feed's object reads tried again).
        self.retried: Callable[[], object] | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, **options: Any) -> S3FileSystem:
        """Credentials, region and endpoint as the AWS tools find them (see the module);
        `options` as the constructor's (sleep, delays, clock, timeouts)."""
        env = os.environ if env is None else env
        profile = Profile.load(env)
        region = profile.setting(env, "region", "AWS_REGION", "AWS_DEFAULT_REGION")
        return cls(
            credential_source(env, profile),
            region=region or DEFAULT_REGION,
            endpoint=profile.setting(
                env, "endpoint_url", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"
            ),
            ca_bundle=profile.setting(env, "ca_bundle", "AWS_CA_BUNDLE"),
            env=env,
            **options,
        )

    def __repr__(self) -> str:
        where = self._endpoint.geturl() if self._endpoint else f"AWS, {self._region}"
        return f"S3FileSystem({where})"

    # What io/objects.py calls ------------------------------------------------------------------

    def info(self, path: str) -> dict[str, Any]:
        """The object `path` names (its size and ETag), else the prefix `path/` if it holds
        anything, else FileNotFoundError (also for a missing bucket). An object of 0 bytes
        named as a prefix that holds anything is that folder's marker (s3fs-fuse's, older
        consoles'): the prefix is meant, as `path/` means it, whose slash is not kept."""
        bucket, key = _split(path)
        denied: OSError | None = None
        marker: dict[str, Any] | None = None
        if key:
            try:
                headers = self._retrying(partial(self._head, bucket, key))
            except FileNotFoundError:
                pass
            except (PermissionError, S3Error) as error:
                # A HEAD's answer has no body to say why (S3's answer to a missing key without
                # ListBucket, or a 400: ExpiredToken, InvalidToken): the listing's says it.
                if isinstance(error, S3Error) and error.transient:
                    raise
                denied = error
            else:
                size = int(headers.get("content-length") or 0)
                found = {"name": path, "type": "file", "size": size, "ETag": headers.get("etag")}
                if size:
                    return found
                marker = found
        one = [("delimiter", "/"), ("max-keys", "1")]
        try:
            entries, _ = self._retrying(partial(self._list_page, bucket, _prefix(key), one))
        except PermissionError:  # no ListBucket: the empty object it may read is what is named
            if marker is None:
                raise
            return marker
        if key and not entries:
            if marker is not None:
                return marker
            raise denied or FileNotFoundError(f"no such bucket, prefix or object: {path}")
        return {"name": path.rstrip("/"), "type": "directory", "size": 0}

    def ls(self, path: str, detail: bool = True) -> list[dict[str, Any]]:
        """The objects and the folders (common prefixes) right below `path`."""
        return list(self._list(path, [("delimiter", "/")]))

    def find(self, path: str, detail: bool = True) -> dict[str, dict[str, Any]]:
        """Every object below `path`, at any depth (folder markers too, keys ending in `/`, as
        gcsfs lists them: io/objects.py leaves them out)."""
        return {entry["name"]: entry for entry in self._list(path, [])}

    def open(
        self, path: str, mode: str = "rb", block_size: int | None = None, **_: Any
    ) -> S3Object:
        """The object's bytes, as one GET read from the socket as they are asked for."""
        if mode != "rb":
            raise ValueError(f"S3 objects are read only, in binary (mode {mode!r})")
        bucket, key = _split(path)
        connection, response = self._send("GET", bucket, key)
        return S3Object(connection, response)

    # Requests ----------------------------------------------------------------------------------

    def _retrying(self, call: Callable[[], T]) -> T:
        tries = 0
        while True:
            try:
                return call()
            except Exception as error:
                if not is_transient(error) or tries >= len(self._delays):
                    raise
                self._sleep(self._delays[tries])
                tries += 1
                if self.retried is not None:
                    self.retried()

    def _head(self, bucket: str, key: str) -> dict[str, str]:
        connection, response = self._send("HEAD", bucket, key)
        connection.close()
        return {name.lower(): value for name, value in response.getheaders()}

    def _list(self, path: str, query: Query) -> Iterator[dict[str, Any]]:
        """Every entry of ListObjectsV2 below `path` (a page at a time)."""
        bucket, key = _split(path)
        token: str | None = None
        while True:
            page = query if token is None else [*query, ("continuation-token", token)]
            entries, token = self._retrying(partial(self._list_page, bucket, _prefix(key), page))
            yield from entries
            if token is None:
                return

    def _list_page(
        self, bucket: str, prefix: str, query: Query
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ListObjectsV2 (`query`: its parameters besides the prefix): the entries,
        and the continuation token if there is more."""
        query = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url"), *query]
        connection, response = self._send("GET", bucket, "", query)
        try:
            body = response.read()
        finally:
            connection.close()
        return parse_listing(body, bucket)

    def _send(
        self,
        method: str,
        bucket: str,
        key: str,
        query: Query = (),
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a signed request; the connection and the 2xx answer, its body unread. An answer
        naming the bucket's own region (x-amz-bucket-region) is signed again for it."""
        what = f"s3://{bucket}/{key or dict(query).get('prefix', '')}"
        for _ in range(2):
            region = self._regions.get(bucket, self._region)
            scheme, host, port, base = self._target(bucket, region)
            path = base + "/" + quote(key, safe="/~") if key else base or "/"
            query_string = canonical_query(query)
            default_port = 443 if scheme == "https" else 80
            host_header = host if port == default_port else f"{host}:{port}"
            credentials = self._credentials()
            headers = signed_headers(
                method, host_header, path, query_string, {}, credentials, region, self._clock()
            )
            connection = self._connect(scheme, host, port)
            try:
                target = path + ("?" + query_string if query_string else "")
                connection.request(method, target, headers=headers)
                response = connection.getresponse()
                if 200 <= response.status < 300:
                    return connection, response
                body = b"" if method == "HEAD" else response.read()
            except BaseException:
                connection.close()
                raise
            connection.close()
            moved = response.getheader("x-amz-bucket-region") or _error_text(body, "Region")
            if response.status not in (301, 307, 400) or not moved or moved == region:
                break
            self._regions[bucket] = moved  # and signed again for it, once
        secrets = (credentials.access_key, credentials.secret_key, credentials.token or "")
        raise answer_error(response.status, body, what, secrets)

    def _target(self, bucket: str, region: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, path before the key) of a request to `bucket`: path-style on a
        configured endpoint (as MinIO and moto expect), else AWS's virtual-hosted name (a bucket
        name with dots, path-style: it does not match the certificate's wildcard)."""
        endpoint = self._endpoint
        if endpoint is not None:
            scheme, host = endpoint.scheme, endpoint.hostname or ""
            port = endpoint.port or (443 if scheme == "https" else 80)
            return scheme, host, port, endpoint.path.rstrip("/") + "/" + bucket
        domain = f"s3.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")
        if "." in bucket:
            return "https", domain, 443, "/" + bucket
        return "https", f"{bucket}.{domain}", 443, ""

    def _connect(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        connect_timeout, read_timeout = self._timeouts
        connection: http.client.HTTPConnection
        proxy = None  # http:// endpoints (a MinIO) are reached directly
        if scheme == "https":
            if self._context is None:
                self._context = ssl.create_default_context(cafile=self._ca_bundle)
            proxy = proxy_for(host, self._env)
            first_host, first_port, auth = proxy or (host, port, None)  # a proxy tunnels on
            connection = http.client.HTTPSConnection(
                first_host, first_port, timeout=connect_timeout, context=self._context
            )
            if proxy is not None:
                tunnel_headers = {"Proxy-Authorization": auth} if auth else None
                connection.set_tunnel(host, port, headers=tunnel_headers)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(read_timeout)
        except BaseException as error:
            # No socket yet through a proxy: it is the proxy that was not reached, not the store.
            unmade = connection.sock is None and proxy is not None
            connection.close()
            if not isinstance(error, OSError):
                raise
            what = f"the proxy in ${_proxy_variable(self._env)}" if unmade else host
            if isinstance(error, TimeoutError) and error.errno is None:
                # The socket's own timeout ('timed out', no errno) is also a read's: this one
                # made no connection (a firewall dropping packets): the kernel's ETIMEDOUT.
                raise TimeoutError(errno.ETIMEDOUT, f"connecting to {what} timed out") from None
            if unmade and error.errno is not None:
                raise type(error)(error.errno, f"{error.strerror}, connecting to {what}") from None
            raise
        return connection


def _proxy_variable(env: Mapping[str, str]) -> str:
    """The variable `proxy_for` took the proxy from."""
    return "HTTPS_PROXY" if env.get("HTTPS_PROXY") else "https_proxy"


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.strip("/").partition("/")
    return bucket, key


def _prefix(key: str) -> str:
    return key.rstrip("/") + "/" if key else ""


def parse_listing(body: bytes, bucket: str) -> tuple[list[dict[str, Any]], str | None]:
    """A ListObjectsV2 answer's entries (fsspec's shape) and its continuation token."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        raise S3Error(f"S3's listing of {bucket} is not XML ({error})", transient=True) from None
    encoded = root.findtext(f"{NAMESPACE}EncodingType") == "url"

    def text(node: ElementTree.Element, name: str) -> str:
        value = node.findtext(f"{NAMESPACE}{name}") or ""
        return unquote_plus(value) if encoded else value

    # A folder named without its delimiter: rs// (a folder whose name is empty, below rs) is
    # BUCKET/rs/, not BUCKET/rs, the folder listed (io/objects.py list_objects).
    entries: list[dict[str, Any]] = [
        {
            "name": f"{bucket}/{text(node, 'Prefix').removesuffix('/')}",
            "type": "directory",
            "size": 0,
        }
        for node in root.iterfind(f"{NAMESPACE}CommonPrefixes")
    ]
    for node in root.iterfind(f"{NAMESPACE}Contents"):
        entries.append(
            {
                "name": f"{bucket}/{text(node, 'Key')}",
                "type": "file",
                "size": int(node.findtext(f"{NAMESPACE}Size") or 0),
                "ETag": node.findtext(f"{NAMESPACE}ETag"),
            }
        )
    more = root.findtext(f"{NAMESPACE}IsTruncated") == "true"
    token = root.findtext(f"{NAMESPACE}NextContinuationToken") if more else None
    if more and not token:
        raise S3Error(
            f"S3's listing of {bucket} is cut without a continuation token", transient=False
        )
    return entries, token


class S3Object:
    """One object's bytes from a GET, read from the socket as asked (nothing held ahead)."""

    def __init__(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> None:
        self._connection = connection
        self._response = response
        self.size = int(response.getheader("Content-Length") or -1)
        self.etag = response.getheader("ETag")
        self._given = 0

    def read(self, size: int = -1) -> bytes:
        cut = False  # the server closed the stream early
        try:
            data = self._response.read(None if size < 0 else size)
        except http.client.IncompleteRead as error:
            data, cut = error.partial, True
        self._given += len(data)
        if cut or (not data and 0 <= self.size != self._given):
            raise ConnectionResetError(
                f"the connection closed after {self._given:,} of {self.size:,} bytes"
            )
        return data

    def close(self) -> None:
        self._response.close()
        self._connection.close()

    def __enter__(self) -> S3Object:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
