"""Fetching a URL that a caller chose, without letting the caller reach what it must not.

A URL from an API caller that the server then fetches is a server-side request forgery surface:
without care a caller could make the server read cloud metadata (169.254.169.254), admin ports
on loopback or anything else on the private network, and learn about it from the error
messages. So every hop is checked before any byte is sent:

* only `http`/`https` URLs with a host and without credentials;
* the host is resolved once and *every* address must be public (unless the policy sets
  `allow_private`, which the tests and closed test setups need); ambiguous numeric host spellings
  (`2130706433`, `0x7f000001`, `127.1`) are refused outright because resolvers expand them to
  addresses that `ipaddress` never sees;
* the connection goes to the checked address, never to a second lookup of the name, so a DNS
  server that answers "public" to the check and "127.0.0.1" to the connect (DNS rebinding) gains
  nothing. The original name still travels as `Host` header and as TLS SNI, so virtual hosting and
  certificate verification behave as if the name had been used;
* redirects are followed by hand so that each target goes through the same checks.

The body is streamed with a hard byte cap and the whole fetch has one deadline, so a slow or
endless server costs a bounded amount of time and memory.

A leaf: it imports only `opencams.errors`, so both the connector (`channel.pictures`, profile
pictures) and the simulator (media sent by link) use it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx

from opencams.errors import FetchRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    max_bytes: int = 5 * 1024 * 1024
    timeout: float = 10.0  # whole fetch, seconds
    max_redirects: int = 3
    noun: str = "file"  # what the messages call the thing fetched ("picture", "media")
    accept: str = "*/*"
    user_agent: str = "opencams-fetch/1"

    def __post_init__(self) -> None:
        # Bad values are operator configuration errors, not caller input: fail loudly at startup.
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must not be negative")


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None  # as the server declared it, without parameters


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


def _parse_url(url: str | httpx.URL, noun: str) -> httpx.URL:
    if isinstance(url, str) and len(url) > _MAX_URL_LENGTH:
        raise FetchRefused(f"{noun} URL is longer than {_MAX_URL_LENGTH} characters")
    try:
        # The same parser builds the request later, so the host checked here is the host
        # contacted; urllib and httpx disagree on odd inputs (backslashes, '@' placement).
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchRefused(f"{noun} URL is not a valid URL ({exc})") from None
    if parsed.scheme not in _DEFAULT_PORTS:
        shown = parsed.scheme or "none"
        raise FetchRefused(f"{noun} URL must use http or https, not scheme {shown!r}")
    if parsed.userinfo:
        raise FetchRefused(f"{noun} URL must not contain credentials")
    if not parsed.raw_host:
        raise FetchRefused(f"{noun} URL has no host")
    return parsed


def _literal_address(host: str, noun: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    last_label = host.rstrip(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.fullmatch(last_label):
        raise FetchRefused(f"{noun} URL host {host!r} looks numeric but is not a plain IP address")
    if not _HOSTNAME.fullmatch(host):
        raise FetchRefused(f"{noun} URL host {host!r} is not a valid host name")
    return None


async def _resolve(host: str, port: int, noun: str) -> tuple[IPAddress, ...]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError):
        raise FetchRefused(f"could not resolve {noun} host {host!r}") from None
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
        raise FetchRefused(f"could not resolve {noun} host {host!r}")
    return tuple(addresses)


async def check_target(url: str | httpx.URL, policy: FetchPolicy) -> Target:
    """Rules 1 and 2 for one hop: a well-formed http(s) URL whose every address may be fetched.

    Raises FetchRefused otherwise. The returned addresses are the ones to connect to.
    """
    noun = policy.noun
    parsed = _parse_url(url, noun)
    host = parsed.raw_host.decode("ascii").lower()
    literal = _literal_address(host, noun)
    if literal is not None:
        addresses: tuple[IPAddress, ...] = (literal,)
    else:
        addresses = await _resolve(host, parsed.port or _DEFAULT_PORTS[parsed.scheme], noun)
    if not policy.allow_private:
        for address in addresses:
            problem = _address_problem(address)
            if problem is not None:
                # The address itself is not echoed for names: it would let callers map internal
                # DNS through the error message.
                what = "is" if literal is not None else "resolves to"
                raise FetchRefused(
                    f"{noun} host {host!r} {what} a {problem} address, which is not allowed"
                )
    return Target(url=parsed, host=host, addresses=addresses)


# --- download ------------------------------------------------------------------------------


def _detail(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:_MAX_ERROR_DETAIL]


def _timed_out(policy: FetchPolicy) -> FetchRefused:
    return FetchRefused(f"downloading the {policy.noun} took longer than {policy.timeout:g} s")


async def _open(client: httpx.AsyncClient, target: Target, policy: FetchPolicy) -> httpx.Response:
    url = target.url.copy_with(fragment=None)
    headers = {
        "Host": url.netloc.decode("ascii"),
        "Accept": policy.accept,
        # The byte cap counts what is stored; compressed transfer would let a small download
        # inflate far past it, so ask for none (and refuse it below if sent anyway).
        "Accept-Encoding": "identity",
        # The pool is keyed by scheme, IP and port only. Without this a later hop to another
        # name on the same IP could reuse a TLS connection verified for the first name.
        "Connection": "close",
        "User-Agent": policy.user_agent,
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
            raise FetchRefused(f"could not download the {policy.noun}: {_detail(exc)}") from None
    detail = f": {_detail(failure)}" if failure is not None else ""
    raise FetchRefused(f"could not connect to {policy.noun} host {target.host!r}{detail}")


async def _read_body(response: httpx.Response, policy: FetchPolicy) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise FetchRefused(f"{policy.noun} was sent with unsupported content encoding {encoding!r}")
    declared = response.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > policy.max_bytes:
        # Saves the download when the server is honest; the streaming cap below covers liars.
        raise FetchRefused(
            f"{policy.noun} is larger than {policy.max_bytes} bytes "
            f"(Content-Length {int(declared)})"
        )
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > policy.max_bytes:
                raise FetchRefused(f"{policy.noun} is larger than {policy.max_bytes} bytes")
    except httpx.TimeoutException:
        raise _timed_out(policy) from None
    except httpx.HTTPError as exc:
        raise FetchRefused(f"could not download the {policy.noun}: {_detail(exc)}") from None
    return bytes(body)


async def _download(client: httpx.AsyncClient, url: str, policy: FetchPolicy) -> Fetched:
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
                    raise FetchRefused(
                        f"{policy.noun} URL redirected (HTTP {status}) without Location"
                    )
                if redirects >= policy.max_redirects:
                    raise FetchRefused(
                        f"{policy.noun} URL redirected more than {policy.max_redirects} times"
                    )
                redirects += 1
                try:
                    # Relative to the URL as given (the name), not the pinned IP.
                    current = target.url.join(location)
                except (httpx.InvalidURL, ValueError):
                    raise FetchRefused(f"{policy.noun} URL redirected to an invalid URL") from None
                continue
            if not 200 <= status < 300:
                raise FetchRefused(f"{policy.noun} URL answered HTTP {status}")
            data = await _read_body(response, policy)
            declared = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return Fetched(data=data, content_type=declared or None)
        finally:
            await response.aclose()


async def fetch(
    url: str, policy: FetchPolicy, *, transport: httpx.AsyncBaseTransport | None = None
) -> Fetched:
    """Download `url` under `policy`, or raise FetchRefused (its reason is safe to show).

    `transport` lets callers (and tests) supply TLS settings; it is not closed here. Without it a
    private transport is created and closed for this fetch. A supplied transport should serve
    these fetches only: its pool matches connections by IP and port, so a keep-alive connection
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
            return await _download(client, url, policy)
    except TimeoutError:
        raise _timed_out(policy) from None
    finally:
        if owned:
            await client.aclose()
