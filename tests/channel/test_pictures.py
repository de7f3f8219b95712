"""Picture fetching against real HTTP(S) servers on loopback, and the image checks on real JPEGs.

The servers are `http.server` in threads rather than an ASGI app because several cases need to
send bytes no well-behaved framework would (Content-Length lies, endless chunked bodies,
close-delimited bodies). Loopback is only reachable with `allow_private=True`; that it is refused
otherwise is itself tested.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import ssl
import struct
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image

from opencams.channel.pictures import (
    Picture,
    PicturePolicy,
    check_picture,
    check_target,
    fetch_picture,
)
from opencams.errors import PictureUnusable

LOCAL = PicturePolicy(allow_private=True)
SIX_MB = 6 * 1024 * 1024


# --- images --------------------------------------------------------------------------------


def _jpeg(width: int, height: int, *, noise: bool = False) -> bytes:
    if noise:
        image = Image.effect_noise((width, height), 64).convert("RGB")
    else:
        image = Image.new("RGB", (width, height), (30, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def _declare_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0 header so the file *claims* another size (a decompression bomb's trick)."""
    offset = 2
    while offset < len(jpeg):
        assert jpeg[offset] == 0xFF
        marker = jpeg[offset + 1]
        (length,) = struct.unpack(">H", jpeg[offset + 2 : offset + 4])
        if marker == 0xC0:
            size = struct.pack(">HH", height, width)
            return jpeg[: offset + 5] + size + jpeg[offset + 9 :]
        offset += 2 + length
    raise AssertionError("no SOF0 marker")


OK_512 = _jpeg(512, 512)
OK_192 = _jpeg(192, 192)
NOISY_512 = _jpeg(512, 512, noise=True)
FILES = {
    "ok512.jpg": OK_512,
    "ok192.jpg": OK_192,
    "small.jpg": _jpeg(191, 191),
    "rect.jpg": _jpeg(300, 200),
    "png.jpg": _png(512),
    "garbage.jpg": b"this is not an image at all\x00\x01\x02" * 50,
    # A valid JPEG padded after EOI: decodable, but over Meta's 5 MB.
    "big.jpg": OK_512 + b"\x00" * SIX_MB,
}


# --- servers -------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stop = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-response is the point of several tests; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        try:
            self._route()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def _raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        path = self.path
        stop = self.server.stop
        if path.startswith("/img/") and path[5:] in FILES:
            self._send(200, FILES[path[5:]], {"Content-Type": "image/jpeg"})
        elif path.startswith("/hop/"):
            remaining = int(path[5:])
            if remaining:
                self._send(302, headers={"Location": f"/hop/{remaining - 1}"})
            else:
                self._send(200, OK_512)
        elif path.startswith("/redirect?to="):
            self._send(302, headers={"Location": path[len("/redirect?to=") :]})
        elif path == "/redirect-relative":
            self._send(301, headers={"Location": "img/ok512.jpg"})
        elif path == "/no-location":
            self._send(302)
        elif path == "/needs-host":
            expected = f"localhost:{self.server.server_address[1]}"
            if self.headers.get("Host") == expected:
                self._send(200, OK_512)
            else:
                self._send(421, b"wrong Host header")
        elif path == "/slow-headers":
            stop.wait(5)
            self.close_connection = True
        elif path == "/trickle":
            # Each byte arrives well within any per-read timeout; only a whole-fetch deadline
            # ends this.
            self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(200):
                if stop.wait(0.05):
                    break
                self._raw(b"\x00")
            self.close_connection = True
        elif path == "/cl-understated":
            # Says 1000 bytes, sends megabytes.
            self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + FILES["big.jpg"])
            self.close_connection = True
        elif path == "/cl-overstated-huge":
            # Announces too much and then sends nothing: only an early refusal returns quickly.
            self._raw(f"HTTP/1.1 200 OK\r\nContent-Length: {SIX_MB}\r\n\r\n".encode())
            stop.wait(5)
            self.close_connection = True
        elif path == "/cl-overstated-short":
            self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + OK_512[:100])
            self.close_connection = True
        elif path == "/chunked-endless":
            self._raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"\xff" * 65536
            for _ in range(20 * 16):  # up to 20 MB, unless the client hangs up first
                if stop.is_set():
                    break
                self._raw(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.close_connection = True
        elif path == "/close-delimited":
            self._raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + FILES["big.jpg"])
            self.close_connection = True
        elif path == "/gzip":
            self._send(200, gzip.compress(OK_512), {"Content-Encoding": "gzip"})
        else:
            self._send(404, b"not found")


@dataclass
class Servers:
    http: str  # http://127.0.0.1:PORT
    http_port: int
    https_port: int
    client_tls: ssl.SSLContext  # trusts the https server's self-signed certificate


def _self_signed(directory: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        # Only the *name*: a connection verified against the IP would fail.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert_pem


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    _Server.stop.clear()
    plain = _Server(("127.0.0.1", 0), _Handler)
    secure = _Server(("127.0.0.1", 0), _Handler)
    cert_path, key_path, cert_pem = _self_signed(tmp_path_factory.mktemp("tls"))
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_path, key_path)
    secure.socket = server_tls.wrap_socket(secure.socket, server_side=True)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        for s in (plain, secure)
    ]
    for thread in threads:
        thread.start()
    yield Servers(
        http=f"http://127.0.0.1:{plain.server_address[1]}",
        http_port=plain.server_address[1],
        https_port=secure.server_address[1],
        client_tls=ssl.create_default_context(cadata=cert_pem.decode()),
    )
    _Server.stop.set()  # releases handlers that are deliberately stalling
    for server in (plain, secure):
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=5)


@pytest.fixture
async def tls_transport(servers: Servers) -> AsyncIterator[httpx.AsyncHTTPTransport]:
    transport = httpx.AsyncHTTPTransport(verify=servers.client_tls)
    yield transport
    await transport.aclose()


async def _refused(
    url: str,
    policy: PicturePolicy = LOCAL,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    with pytest.raises(PictureUnusable) as caught:
        await fetch_picture(url, policy, transport=transport)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


# --- check_picture -------------------------------------------------------------------------


def test_check_picture_accepts_square_jpeg() -> None:
    picture = check_picture(OK_192, PicturePolicy())
    assert picture == Picture(
        data=OK_192,
        width=192,
        height=192,
        sha256=hashlib.sha256(OK_192).hexdigest(),
        content_type="image/jpeg",
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(FILES["small.jpg"], "at least 192x192 pixels, got 191x191", id="too-small"),
        pytest.param(FILES["rect.jpg"], "must be square, got 300x200", id="not-square"),
        pytest.param(FILES["png.jpg"], "not a JPEG", id="png"),
        pytest.param(FILES["garbage.jpg"], "not a JPEG", id="garbage"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(FILES["big.jpg"], "larger than 5242880 bytes", id="over-5mb"),
        pytest.param(NOISY_512[: len(NOISY_512) * 2 // 3], "damaged JPEG", id="truncated"),
        pytest.param(b"\xff\xd8\xff\xe0garbage", "not a readable JPEG", id="broken-header"),
    ],
)
def test_check_picture_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(PictureUnusable, match=reason):
        check_picture(data, PicturePolicy())


def test_check_picture_honours_policy_min_side() -> None:
    assert check_picture(FILES["small.jpg"], PicturePolicy(min_side=191)).width == 191
    with pytest.raises(PictureUnusable, match="at least 513x513"):
        check_picture(OK_512, PicturePolicy(min_side=513))


def test_decompression_bomb_error_is_refused() -> None:
    bomb = _declare_size(OK_512, 20000, 20000)  # 400 Mpx: Pillow raises
    with pytest.raises(PictureUnusable, match="too many pixels"):
        check_picture(bomb, PicturePolicy())


@pytest.mark.parametrize("warning_filter", ["error", "ignore"])
def test_decompression_bomb_warning_zone_is_refused(
    warning_filter: Literal["error", "ignore"],
) -> None:
    # 100 Mpx: Pillow only warns; refused whether the warning is an error or silenced.
    bomb = _declare_size(OK_512, 10000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter(warning_filter, Image.DecompressionBombWarning)
        with pytest.raises(PictureUnusable, match="too many pixels"):
            check_picture(bomb, PicturePolicy())


# --- check_target --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "http or https, not scheme 'file'"),
        ("ftp://example.com/a.jpg", "http or https, not scheme 'ftp'"),
        ("data:image/jpeg;base64,/9j/4AAQ", "http or https, not scheme 'data'"),
        ("gopher://example.com/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("//example.com/a.jpg", "http or https, not scheme 'none'"),
        ("example.com/a.jpg", "http or https"),
        ("http:///a.jpg", "no host"),
        ("http://user:secret@example.com/a.jpg", "credentials"),
        ("https://user@example.com/a.jpg", "credentials"),
        ("http://ex%41mple.com/a.jpg", "not a valid host name"),
        ("http://exa mple.com/", "not a valid"),
        ("http://example.com/" + "a" * 5000, "longer than"),
    ],
)
async def test_check_target_refuses_malformed_urls(url: str, reason: str) -> None:
    with pytest.raises(PictureUnusable, match=reason):
        await check_target(url, PicturePolicy(allow_private=True))


@pytest.mark.parametrize(
    ("url", "category"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:8080/x.jpg", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-global"),
        # IPv6 spellings of IPv4 addresses.
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
    ],
)
async def test_check_target_refuses_non_public_literals(url: str, category: str) -> None:
    with pytest.raises(PictureUnusable, match=f"is a {category} address"):
        await check_target(url, PicturePolicy())


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal 127.0.0.1
        "http://017700000001/",  # octal
        "http://0x7f000001/",  # hex
        "http://0x7f.1/",
        "http://127.1/",  # short form
        "http://0177.0.0.1/",  # octal dotted: httpx refuses it as an invalid IPv4 address
        "http://127.0.0.1./",  # trailing dot
        "http://example.com.0x10/",
    ],
)
async def test_check_target_refuses_ambiguous_numeric_hosts(url: str) -> None:
    # Refused even when private addresses are allowed: resolvers and URL parsers disagree on them.
    with pytest.raises(PictureUnusable, match=r"numeric|not a valid URL"):
        await check_target(url, PicturePolicy(allow_private=True))


async def test_check_target_refuses_names_resolving_to_loopback() -> None:
    with pytest.raises(PictureUnusable, match="'localhost' resolves to a loopback address") as e:
        await check_target("http://localhost/pic.jpg", PicturePolicy())
    assert "127.0.0.1" not in e.value.reason  # resolved addresses are not disclosed


async def test_check_target_refuses_unresolvable_names() -> None:
    with pytest.raises(PictureUnusable, match="could not resolve"):
        await check_target("http://no-such-host.invalid/pic.jpg", PicturePolicy())


async def test_check_target_accepts_public_literals() -> None:
    target = await check_target("https://93.184.216.34/a.jpg", PicturePolicy())
    assert [str(a) for a in target.addresses] == ["93.184.216.34"]
    target = await check_target("HTTPS://[2606:4700::1111]:8443/a.jpg", PicturePolicy())
    assert [str(a) for a in target.addresses] == ["2606:4700::1111"]
    assert target.url.port == 8443


async def test_check_target_pins_resolved_addresses_when_private_allowed() -> None:
    target = await check_target("http://LOCALHOST:8080/a.jpg", LOCAL)
    assert target.host == "localhost"
    assert any(a.is_loopback for a in target.addresses)


async def test_redirect_hop_to_loopback_is_refused(servers: Servers) -> None:
    # What fetch_picture does with each Location: a public page redirecting to loopback or to the
    # metadata service is stopped at that hop.
    for hop in (f"{servers.http}/img/ok512.jpg", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(PictureUnusable, match="not allowed"):
            await check_target(hop, PicturePolicy())


# --- fetch_picture -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ok512.jpg", "ok192.jpg"])
async def test_fetch_success(servers: Servers, name: str) -> None:
    picture = await fetch_picture(f"{servers.http}/img/{name}", LOCAL)
    assert picture.data == FILES[name]
    assert picture.sha256 == hashlib.sha256(FILES[name]).hexdigest()
    side = 512 if name == "ok512.jpg" else 192
    assert (picture.width, picture.height) == (side, side)
    assert picture.content_type == "image/jpeg"


async def test_fetch_refuses_loopback_without_allow_private(servers: Servers) -> None:
    reason = await _refused(f"{servers.http}/img/ok512.jpg", PicturePolicy())
    assert "loopback" in reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("small.jpg", "at least 192x192 pixels, got 191x191"),
        ("rect.jpg", "must be square, got 300x200"),
        ("png.jpg", "not a JPEG"),
        ("garbage.jpg", "not a JPEG"),
        ("big.jpg", f"larger than 5242880 bytes (Content-Length {len(FILES['big.jpg'])})"),
    ],
)
async def test_fetch_image_refusals(servers: Servers, name: str, reason: str) -> None:
    assert reason in await _refused(f"{servers.http}/img/{name}")


async def test_fetch_byte_cap_is_inclusive(servers: Servers) -> None:
    url = f"{servers.http}/img/ok512.jpg"
    exact = PicturePolicy(allow_private=True, max_bytes=len(OK_512))
    assert (await fetch_picture(url, exact)).data == OK_512
    short = PicturePolicy(allow_private=True, max_bytes=len(OK_512) - 1)
    assert "larger than" in await _refused(url, short)


async def test_fetch_404(servers: Servers) -> None:
    assert "HTTP 404" in await _refused(f"{servers.http}/nothing-here.jpg")


async def test_fetch_connection_refused() -> None:
    # Port 9 (discard) on loopback: nothing listens in a test environment.
    assert "could not connect" in await _refused("http://127.0.0.1:9/pic.jpg")


async def test_fetch_follows_redirects_up_to_the_limit(servers: Servers) -> None:
    picture = await fetch_picture(f"{servers.http}/hop/3", LOCAL)
    assert picture.data == OK_512
    assert "more than 3 times" in await _refused(f"{servers.http}/hop/4")
    no_redirects = PicturePolicy(allow_private=True, max_redirects=0)
    assert "more than 0 times" in await _refused(f"{servers.http}/hop/1", no_redirects)


async def test_fetch_follows_relative_redirect(servers: Servers) -> None:
    assert (await fetch_picture(f"{servers.http}/redirect-relative", LOCAL)).width == 512


async def test_fetch_refuses_redirect_without_location(servers: Servers) -> None:
    assert "without Location" in await _refused(f"{servers.http}/no-location")


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "not scheme 'file'"),
        ("ftp://example.com/a.jpg", "not scheme 'ftp'"),
        ("http://2130706433/a.jpg", "numeric"),
        ("http://user:pw@127.0.0.1/a.jpg", "credentials"),
    ],
)
async def test_fetch_rechecks_every_redirect_hop(
    servers: Servers, location: str, reason: str
) -> None:
    assert reason in await _refused(f"{servers.http}/redirect?to={location}")


async def test_fetch_keeps_host_header_when_connecting_to_the_pinned_address(
    servers: Servers,
) -> None:
    # The request goes to the checked IP, yet the server sees the name the caller gave.
    picture = await fetch_picture(f"http://localhost:{servers.http_port}/needs-host", LOCAL)
    assert picture.data == OK_512


async def test_fetch_https_verifies_certificate_against_the_name(
    servers: Servers, tls_transport: httpx.AsyncHTTPTransport
) -> None:
    # Connected to 127.0.0.1, but SNI and verification use "localhost", which the cert names.
    url = f"https://localhost:{servers.https_port}/img/ok512.jpg"
    picture = await fetch_picture(url, LOCAL, transport=tls_transport)
    assert picture.data == OK_512


async def test_fetch_https_refuses_certificate_for_another_name(
    servers: Servers, tls_transport: httpx.AsyncHTTPTransport
) -> None:
    url = f"https://127.0.0.1:{servers.https_port}/img/ok512.jpg"
    reason = await _refused(url, transport=tls_transport)
    assert "could not connect" in reason
    assert "certificate" in reason.lower()


async def test_fetch_https_refuses_untrusted_certificate(servers: Servers) -> None:
    # Default transport: the test CA is not trusted.
    reason = await _refused(f"https://localhost:{servers.https_port}/img/ok512.jpg")
    assert "certificate" in reason.lower()


@pytest.mark.parametrize("path", ["/slow-headers", "/trickle"])
async def test_fetch_is_bounded_by_the_timeout(servers: Servers, path: str) -> None:
    started = time.monotonic()
    reason = await _refused(f"{servers.http}{path}", PicturePolicy(allow_private=True, timeout=0.5))
    assert "longer than 0.5 s" in reason
    assert time.monotonic() - started < 2


async def test_fetch_refuses_early_on_announced_oversize(servers: Servers) -> None:
    # The server would stall for seconds after the headers; the header alone must suffice.
    started = time.monotonic()
    reason = await _refused(f"{servers.http}/cl-overstated-huge")
    assert f"Content-Length {SIX_MB}" in reason
    assert time.monotonic() - started < 2


async def test_fetch_reads_no_more_than_content_length_says(servers: Servers) -> None:
    # 1000 bytes announced, megabytes sent: only the announced bytes are read, which are no JPEG.
    reason = await _refused(f"{servers.http}/cl-understated")
    assert "JPEG" in reason


async def test_fetch_refuses_body_shorter_than_content_length(servers: Servers) -> None:
    assert "could not download" in await _refused(f"{servers.http}/cl-overstated-short")


@pytest.mark.parametrize("path", ["/chunked-endless", "/close-delimited"])
async def test_fetch_caps_bodies_without_content_length(servers: Servers, path: str) -> None:
    assert "larger than 5242880 bytes" in await _refused(f"{servers.http}{path}")


async def test_fetch_refuses_compressed_transfer(servers: Servers) -> None:
    assert "content encoding 'gzip'" in await _refused(f"{servers.http}/gzip")


async def test_fetch_refuses_invalid_urls_without_network() -> None:
    assert "not scheme 'file'" in await _refused("file:///etc/passwd")
    assert "not a valid" in await _refused("http://[::1/")
