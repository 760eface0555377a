"""Namespaces of the state file: one per Pipedrive account and token, and the URLs that led there.

The token itself is never stored: only the first 16 hex characters of a salted sha256 (SPEC 8).
"""

from __future__ import annotations

import hashlib
import posixpath
from urllib.parse import urlsplit

from rudder_pipedrive_cli.io.config import is_loopback


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(f"rpd-state:{token}".encode()).hexdigest()[:16]


def namespace_key(base_url: str, token: str) -> str:
    """'BASE_URL#FINGERPRINT': how rpd keyed namespaces before it keyed them on the account (one
    per spelling of a URL). Such namespaces are still read, and a send moves them into its
    account's. The token is never stored, only a salted hash prefix of it."""
    return f"{base_url.rstrip('/')}#{token_fingerprint(token)}"


ACCOUNT = "company:"  # the prefix of an account's namespace


def account_namespace(company_id: str, token: str) -> str:
    """'company:ID#FINGERPRINT': one namespace per Pipedrive account (the company id `GET
    /v1/users/me` answers) and token, however the URL that reached it was spelled."""
    return f"{ACCOUNT}{company_id}#{token_fingerprint(token)}"


DEFAULT_PORTS = {"http": 80, "https": 443}


def normalised_url(url: str) -> str:
    """A base URL as shown: scheme and host in lower case, no default port, no `.`, `..` or
    trailing `/` in the path (`HTTP://Acme.pipedrive.com:443/./` is https://acme.pipedrive.com)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    port = parts.port
    netloc = host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = posixpath.normpath("/" + parts.path.lstrip("/")).rstrip("/")  # "/" alone is ""
    return f"{scheme}://{netloc}{path}"


def place_of(url: str) -> str:
    """Where a URL leads, for matching spellings without asking Pipedrive: its normalised form
    with any loopback host as 127.0.0.1 (localhost, ::1 and 127.0.0.1 on one port are one
    server)."""
    shown = normalised_url(url)
    host = urlsplit(shown).hostname or ""
    if not is_loopback(host):
        return shown
    written = f"[{host}]" if ":" in host else host
    return shown.replace(f"//{written}", "//127.0.0.1", 1)


# Keys of the meta table that remember accounts: which account a URL and token led to (what
# dry-run, offline, and a send that cannot ask go by) and the URL an account was last reached at.
def alias_key(base_url: str, fingerprint: str) -> str:
    return f"account:{place_of(base_url)}#{fingerprint}"


def url_key(namespace: str) -> str:
    return f"url:{namespace}"
