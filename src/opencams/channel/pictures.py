"""Fetch and check the picture behind `UpdateChatGroup`'s `ProfilePictureFile`.

The URL comes from the API caller and the server fetches it, which makes this a server-side
request forgery surface: without care a caller could make opencams read cloud metadata
(169.254.169.254), admin ports on loopback or anything else on the private network, and learn
about it from the error messages. So every hop is checked before any byte is sent:

* only `http`/`https` URLs with a host and without credentials;
* the host is resolved once and *every* address must be public (unless the operator sets
  `allow_private`, which the tests and closed test setups need); ambiguous numeric host spellings
  (`2130706433`, `0x7f000001`, `127.1`) are refused outright because resolvers expand them to
  addresses that `ipaddress` never sees;
* the connection goes to the checked address, never to a second lookup of the name, so a DNS
  server that answers "public" to the check and "127.0.0.1" to the connect (DNS rebinding) gains
  nothing. The original name still travels as `Host` header and as TLS SNI, so virtual hosting and
  certificate verification behave as if the name had been used;
* redirects are followed by hand so that each target goes through the same checks.

The body is streamed with a hard byte cap and the whole fetch has one deadline, so a slow or
endless server costs a bounded amount of time and memory. The image checks mirror Meta's rules
for group profile pictures (JPEG, square, at least 192 px a side, at most 5 MB) so the caller
gets a precise reason now instead of an opaque Graph error later.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

from opencams.errors import PictureUnusable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

JPEG_CONTENT_TYPE = "image/jpeg"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# AWS's IPv6 instance-metadata endpoint. It is inside fc00::/7 and therefore already private;
# it is named anyway so the intent survives any future change to `ipaddress`' tables.
_METADATA_V6 = ipaddress.IPv6Address("fd00:ec2::254")
# NAT64 (RFC 6052) maps IPv4 into this prefix; on a NAT64 network 64:ff9b::a00:1 *is* 10.0.0.1.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# WHATWG URL parsing (browsers) and inet_aton (getaddrinfo) treat a host whose last label is a
# number as an IPv4 address in decimal, octal or hex, even with fewer than four parts.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")
# What a DNS name looks like after IDNA encoding; anything else (percent signs, spaces) is refused
# rather than handed to the resolver to interpret.
_HOSTNAME = re.compile(r"[a-z0-9_.-]+")
_MAX_URL_LENGTH = 4096
_MAX_ERROR_DETAIL = 200
_USER_AGENT = "opencams-picture-fetch/1"


@dataclass(frozen=True)
class Picture:
    data: bytes  # the JPEG bytes as fetched
    width: int
    height: int
    sha256: str  # hex of data
    content_type: str  # "image/jpeg"


@dataclass(frozen=True)
class PicturePolicy:
    allow_private: bool = False  # OPENCAMS_PICTURE_FETCH_ALLOW_PRIVATE
    max_bytes: int = 5 * 1024 * 1024  # Meta: <= 5 MB
    timeout: float = 10.0  # whole fetch, seconds
    min_side: int = 192  # Meta: square, >= 192 px
    max_redirects: int = 3

    def __post_init__(self) -> None:
        # Bad values are operator configuration errors, not caller input: fail loudly at startup.
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.min_side <= 0:
            raise ValueError("min_side must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must not be negative")


@dataclass(frozen=True)
class Target:
    """One checked hop: the URL as given, its ASCII host and the addresses allowed to serve it."""

    url: httpx.URL
    host: str  # IDNA-encoded name or IP literal; used for SNI and in messages
    addresses: tuple[IPAddress, ...]  # connect to these, never re-resolve `host`


# --- target checks -------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the translation forms."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _address_problem(ip: IPAddress) -> str | None:
    """Why `ip` must not be fetched from, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip == _METADATA_V6:
            return "cloud metadata"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            problem = _address_problem(embedded)
            if problem is not None:
                return problem
        if ip.is_site_local:
            return "site-local"
    # Most specific first, so the reason names the familiar category (0.0.0.0 is also "private").
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    # Catches what the flags above miss, e.g. carrier-grade NAT space 100.64.0.0/10.
    if not ip.is_global:
        return "non-global"
    return None


def _parse_url(url: str | httpx.URL, what: str = "picture") -> httpx.URL:
    if isinstance(url, str) and len(url) > _MAX_URL_LENGTH:
        raise PictureUnusable(f"{what} URL is longer than {_MAX_URL_LENGTH} characters")
    try:
        # The same parser builds the request later, so the host checked here is the host
        # contacted; urllib and httpx disagree on odd inputs (backslashes, '@' placement).
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise PictureUnusable(f"{what} URL is not a valid URL ({exc})") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        shown = parsed.scheme or "none"
        raise PictureUnusable(f"{what} URL must use http or https, not scheme {shown!r}")
    if parsed.userinfo:
        raise PictureUnusable(f"{what} URL must not contain credentials")
    if not parsed.raw_host:
        raise PictureUnusable(f"{what} URL has no host")
    return parsed


def _literal_address(host: str, what: str = "picture") -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    last_label = host.rstrip(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.fullmatch(last_label):
        raise PictureUnusable(
            f"{what} URL host {host!r} looks numeric but is not a plain IP address"
        )
    if not _HOSTNAME.fullmatch(host):
        raise PictureUnusable(f"{what} URL host {host!r} is not a valid host name")
    return None


async def _resolve(host: str, port: int, what: str = "picture") -> tuple[IPAddress, ...]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError):
        raise PictureUnusable(f"could not resolve {what} host {host!r}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        try:
            address = ipaddress.ip_address(sockaddr[0])
        except ValueError:
            continue
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise PictureUnusable(f"could not resolve {what} host {host!r}")
    return tuple(addresses)


async def check_target(
    url: str | httpx.URL, policy: PicturePolicy, what: str = "picture"
) -> Target:
    """Rules 1 and 2 for one hop: a well-formed http(s) URL whose every address may be fetched.

    Raises PictureUnusable otherwise. The returned addresses are the ones to connect to.
    """
    parsed = _parse_url(url, what)
    host = parsed.raw_host.decode("ascii").lower()
    literal = _literal_address(host, what)
    if literal is not None:
        addresses: tuple[IPAddress, ...] = (literal,)
    else:
        addresses = await _resolve(host, parsed.port or _DEFAULT_PORTS[parsed.scheme], what)
    if not policy.allow_private:
        for address in addresses:
            problem = _address_problem(address)
            if problem is not None:
                # The address itself is not echoed for names: it would let callers map internal
                # DNS through the error message.
                verb = "is" if literal is not None else "resolves to"
                raise PictureUnusable(
                    f"{what} host {host!r} {verb} a {problem} address, which is not allowed"
                )
    return Target(url=parsed, host=host, addresses=addresses)


# --- download ------------------------------------------------------------------------------


def _detail(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:_MAX_ERROR_DETAIL]


def _timed_out(policy: PicturePolicy) -> PictureUnusable:
    return PictureUnusable(f"downloading the picture took longer than {policy.timeout:g} s")


async def _open(client: httpx.AsyncClient, target: Target, policy: PicturePolicy) -> httpx.Response:
    url = target.url.copy_with(fragment=None)
    headers = {
        "Host": url.netloc.decode("ascii"),
        "Accept": "image/jpeg",
        # The byte cap counts what is stored; compressed transfer would let a small download
        # inflate far past it, so ask for none (and refuse it below if sent anyway).
        "Accept-Encoding": "identity",
        # The pool is keyed by scheme, IP and port only. Without this a later hop to another
        # name on the same IP could reuse a TLS connection verified for the first name.
        "Connection": "close",
        "User-Agent": _USER_AGENT,
    }
    extensions = {"sni_hostname": target.host} if url.scheme == "https" else {}
    failure: httpx.ConnectError | None = None
    for address in target.addresses:
        try:
            request = client.build_request(
                "GET", url.copy_with(host=str(address)), headers=headers, extensions=extensions
            )
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            # Like any client, fall through to the next address (e.g. AAAA first, no IPv6 route).
            failure = exc
        except httpx.TimeoutException:
            raise _timed_out(policy) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PictureUnusable(f"could not download the picture: {_detail(exc)}") from None
    detail = f": {_detail(failure)}" if failure is not None else ""
    raise PictureUnusable(f"could not connect to picture host {target.host!r}{detail}")


async def _read_body(response: httpx.Response, policy: PicturePolicy) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise PictureUnusable(f"picture was sent with unsupported content encoding {encoding!r}")
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > policy.max_bytes:
        # Saves the download when the server is honest; the streaming cap below covers liars.
        raise PictureUnusable(
            f"picture is larger than {policy.max_bytes} bytes (Content-Length {int(declared)})"
        )
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > policy.max_bytes:
                raise PictureUnusable(f"picture is larger than {policy.max_bytes} bytes")
    except httpx.TimeoutException:
        raise _timed_out(policy) from None
    except httpx.HTTPError as exc:
        raise PictureUnusable(f"could not download the picture: {_detail(exc)}") from None
    return bytes(body)


async def _download(client: httpx.AsyncClient, url: str, policy: PicturePolicy) -> bytes:
    current: str | httpx.URL = url
    redirects = 0
    while True:
        target = await check_target(current, policy)
        response = await _open(client, target, policy)
        try:
            status = response.status_code
            if status in _REDIRECT_STATUSES:
                location = response.headers.get("location")
                if not location:
                    raise PictureUnusable(
                        f"picture URL redirected (HTTP {status}) without Location"
                    )
                if redirects >= policy.max_redirects:
                    raise PictureUnusable(
                        f"picture URL redirected more than {policy.max_redirects} times"
                    )
                redirects += 1
                try:
                    # Relative to the URL as given (the name), not the pinned IP.
                    current = target.url.join(location)
                except (httpx.InvalidURL, ValueError):
                    raise PictureUnusable("picture URL redirected to an invalid URL") from None
                continue
            if not 200 <= status < 300:
                raise PictureUnusable(f"picture URL answered HTTP {status}")
            return await _read_body(response, policy)
        finally:
            await response.aclose()


async def fetch_picture(
    url: str, policy: PicturePolicy, *, transport: httpx.AsyncBaseTransport | None = None
) -> Picture:
    """Download `url` under `policy` and return the checked JPEG, or raise PictureUnusable.

    `transport` lets callers (and tests) supply TLS settings; it is not closed here. Without it a
    private transport is created and closed for this fetch. A supplied transport should serve
    picture fetches only: its pool matches connections by IP and port, so a keep-alive connection
    opened by other code for another name on the same IP could otherwise carry this request.
    """
    owned = transport is None
    client = httpx.AsyncClient(
        transport=transport if transport is not None else httpx.AsyncHTTPTransport(),
        # No environment proxies (a proxy would resolve the name itself, undoing the address
        # check) and no .netrc credentials sent to caller-chosen hosts.
        trust_env=False,
        follow_redirects=False,
        timeout=policy.timeout,
    )
    try:
        async with asyncio.timeout(policy.timeout):
            data = await _download(client, url, policy)
    except TimeoutError:
        raise _timed_out(policy) from None
    finally:
        if owned:
            await client.aclose()
    # Decoding is CPU work; keep it off the event loop.
    return await asyncio.to_thread(check_picture, data, policy)


# --- image checks --------------------------------------------------------------------------


def check_picture(data: bytes, policy: PicturePolicy) -> Picture:
    """A square JPEG of at least `min_side` pixels within the byte cap, or PictureUnusable."""
    if len(data) > policy.max_bytes:
        raise PictureUnusable(f"picture is larger than {policy.max_bytes} bytes")
    if not data:
        raise PictureUnusable("picture is empty")
    # Pillow is a parser of hostile bytes here: whatever it raises (OSError, SyntaxError,
    # ValueError, struct errors, decompression-bomb errors, warnings promoted to errors) means
    # "not an image we accept", so the handlers below are deliberately broad.
    try:
        # `formats` pins the decoder: identification is by content, so a PNG named .jpg fails.
        # `open` only parses the header, so a huge declared size costs nothing yet.
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            width, height = image.size
            image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureUnusable("picture has too many pixels to be processed safely") from None
    except UnidentifiedImageError:
        raise PictureUnusable("picture is not a JPEG image") from None
    except Exception as exc:
        raise PictureUnusable(f"picture is not a readable JPEG image ({_detail(exc)})") from None
    # Pillow only *warns* between one and two times the limit; treat that zone as a refusal too,
    # independent of how warnings are filtered in this process.
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise PictureUnusable("picture has too many pixels to be processed safely")
    if width != height:
        raise PictureUnusable(f"picture must be square, got {width}x{height} pixels")
    if width < policy.min_side:
        raise PictureUnusable(
            f"picture must be at least {policy.min_side}x{policy.min_side} pixels, "
            f"got {width}x{height}"
        )
    # JPEG's verify() checks nothing beyond the header, so a truncated or corrupt file would pass
    # and fail later at Meta with an opaque error. Decoding at 1/8 scale (libjpeg's DCT scaling)
    # exercises the whole entropy-coded stream at a 64th of the memory of a full decode.
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            image.draft("L", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except Exception as exc:
        raise PictureUnusable(f"picture is a damaged JPEG image ({_detail(exc)})") from None
    return Picture(
        data=data,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=JPEG_CONTENT_TYPE,
    )


class PictureFetcher:
    """The domain's picture source (groups.context.PictureSource): fetch_picture under one
    policy. Raises PictureUnusable."""

    def __init__(self, policy: PicturePolicy) -> None:
        self._policy = policy

    async def fetch(self, url: str) -> Picture:
        return await fetch_picture(url, self._policy)
