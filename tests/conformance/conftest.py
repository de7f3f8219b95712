"""Fixtures of the conformance suite: the official SDK against a live `opencams serve`
subprocess, on SQLite and on PostgreSQL. Plain helpers are in helpers.py, the tenancy in
tenancy.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_cams20200606.client import Client

from tests.conformance.helpers import make_client
from tests.conformance.tenancy import KEY_A, TENANCY
from tests.databases import BACKENDS, database_url
from tests.live import LiveServer, live_server


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    work: Path = tmp_path_factory.mktemp(f"server-{backend}")
    # Pictures are served from a loopback test server: let this server fetch from loopback.
    with (
        database_url(backend, work) as url,
        live_server(
            url,
            work,
            TENANCY,
            OPENCAMS_PICTURE_FETCH_ALLOW_PRIVATE="true",
            # Loopback stands for a reverse proxy: tests name the client in X-Forwarded-For.
            OPENCAMS_TRUSTED_PROXIES="127.0.0.1/32",
        ) as live,
    ):
        yield live


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server of test pictures; yields its base URL."""
    import functools
    import http.server
    import threading

    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    Image.new("RGB", (256, 256), (200, 30, 30)).save(root / "square.jpg", "JPEG")
    Image.new("RGB", (100, 100), (0, 0, 200)).save(root / "small.jpg", "JPEG")
    Image.new("RGB", (300, 200), (0, 200, 0)).save(root / "wide.jpg", "JPEG")
    Image.new("RGB", (256, 256), (9, 9, 9)).save(root / "png.jpg", "PNG")
    square = (root / "square.jpg").read_bytes()
    (root / "big.jpg").write_bytes(square + b"\0" * (6 * 1024 * 1024))  # 6 MB, valid JPEG start

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(params=[None, "v2"], ids=["v3", "v1"])
def signer(request: pytest.FixtureRequest) -> str | None:
    """The SDK's signature algorithm: V3 (ACS3-HMAC-SHA256) and V1 RPC (HMAC-SHA1)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def client(server: LiveServer, signer: str | None) -> Client:
    return make_client(server, KEY_A, signer)
