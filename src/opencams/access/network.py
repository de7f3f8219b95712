"""Where a request comes from: the socket's peer, or, behind a trusted proxy, the client the proxy
names in X-Forwarded-For / X-Forwarded-Proto. Headers from anyone else are ignored, so a client
cannot claim another address to satisfy an IpAddress condition."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def parse_networks(spec: str) -> tuple[Network, ...]:
    """`OPENCAMS_TRUSTED_PROXIES`: comma-separated addresses or CIDRs."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()
    )


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


@dataclass(frozen=True)
class Origin:
    ip: str | None
    secure: bool


def origin(
    peer: str | None,
    scheme: str,
    forwarded_for: str | None,
    forwarded_proto: str | None,
    trusted: tuple[Network, ...],
) -> Origin:
    if peer is None or not trusted or not _trusted(peer, trusted):
        return Origin(peer, scheme == "https")
    ip = peer
    if forwarded_for:
        # From the nearest hop back: the first address that is not a trusted proxy is the client.
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            ip = hop
            if not _trusted(hop, trusted):
                break
    secure = scheme == "https"
    if forwarded_proto:
        secure = forwarded_proto.split(",")[0].strip().lower() == "https"
    return Origin(ip, secure)
