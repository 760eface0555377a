"""A base URL whose TLS certificate does not verify (a proxy that inspects TLS, a self-signed
server, a wrong host) is an environment error said at once, exit 2, with what to do: it was
taken for a passing connection failure, tried 20 times over 40 s, then 'Pipedrive is
unreachable ... rerun the same command', exit 4, which every rerun met again."""

from __future__ import annotations

import datetime
import http.server
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loopback import serve_in_thread
from typer.testing import CliRunner

from rudder_pipedrive_cli.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "config.example.toml")
EVENTS = str(ROOT / "examples" / "events.ndjson")
TOKEN = "0123456789abcdef0123456789abcdef01234567"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert, secret = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    secret.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, secret


class Handshakes:
    """An HTTPS server on loopback with a self-signed certificate, counting TLS handshakes."""

    def __init__(self, folder: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self_signed(folder))
        self.tried = 0
        outer = self

        class Refusing(http.server.HTTPServer):
            def get_request(self) -> tuple[object, object]:
                outer.tried += 1
                plain, address = self.socket.accept()
                return context.wrap_socket(plain, server_side=True), address

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # the client refused the certificate: expected

        self.server = Refusing(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def untrusted(tmp_path: Path) -> Iterator[Handshakes]:
    server = Handshakes(tmp_path)
    serve_in_thread(server.server)
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_an_untrusted_certificate_stops_at_once_exit_2(
    untrusted: Handshakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RPD_CONFIG", "RPD_PLAN", "RPD_BASE_URL", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    state = str(tmp_path / "state.sqlite")  # not the default one, beside the example config
    send = ["send", EVENTS, "--config", CONFIG, "--base-url", untrusted.url, "--state", state]
    result = CliRunner().invoke(app, [*send, "-q"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: the TLS certificate of {untrusted.url} is not trusted: self-signed certificate",
        "hint: behind a proxy that inspects TLS, point $SSL_CERT_FILE at its CA certificates "
        "(PEM); else check base_url / company_domain",
    ]
    assert untrusted.tried == 1
    assert TOKEN not in result.stdout + result.stderr


def test_an_https_url_of_a_plain_http_server_stops_at_once_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--base-url https://...` of `rpd sandbox` (plain HTTP): the handshake's answer is HTTP,
    which no retry mends; it was retried as a connection failure, then 'Pipedrive is unreachable ...
    [SSL: WRONG_VERSION_NUMBER]', exit 4, with no word of the scheme."""
    for name in ("RPD_CONFIG", "RPD_PLAN", "RPD_BASE_URL", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    asked: list[str] = []

    class Plain(http.server.BaseHTTPRequestHandler):
        def handle_one_request(self) -> None:
            asked.append("a connection")
            super().handle_one_request()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Plain)
    serve_in_thread(server)
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}"
        state = str(tmp_path / "state.sqlite")
        send = ["send", EVENTS, "--config", CONFIG, "--base-url", url, "--state", state, "-q"]
        result = CliRunner().invoke(app, send)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {url} answered a TLS handshake in plain HTTP: it is not an https:// server",
        "hint: if it is `rpd sandbox` or a local proxy, write its URL with http://",
    ]
    assert asked == ["a connection"]
    assert TOKEN not in result.stdout + result.stderr
