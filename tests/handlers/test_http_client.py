"""The probes' HTTP clients: a client without the CA bundle (for http:// URLs only, the cheap
one) still verifies, so an https URL reached through it fails instead of going unchecked.
Real servers on loopback: one plain, one HTTPS with a self-signed certificate."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from handlers.facts import http_client


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"version":"0.12.0"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(context: ssl.SSLContext | None) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    scheme = "https" if context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}/api/version"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def plain_url() -> Iterator[str]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def https_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    make = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*make, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve(context)


@pytest.mark.parametrize("tls", [True, False])
def test_a_plain_url_is_answered_with_or_without_the_ca_bundle(plain_url: str, tls: bool) -> None:
    with http_client(5.0, tls=tls) as client:
        answer = client.get(plain_url)
    assert (answer.status_code, answer.json()) == (200, {"version": "0.12.0"})


@pytest.mark.parametrize("tls", [True, False])
def test_an_unverifiable_https_server_is_refused_by_both_clients(https_url: str, tls: bool) -> None:
    """The self-signed certificate is in no CA bundle: the full client refuses it, and so
    does the cheap one, which has no CA at all (it never skips verification)."""
    with http_client(5.0, tls=tls) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get(https_url)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
