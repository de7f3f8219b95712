"""How a callback is signed, and how a receiver checks it (docs/callbacks.md#signatures).

    X-Opencams-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is inside the signed text, so an old request cannot be replayed with a new one;
receivers refuse a `t` too far from their clock (five minutes by default).
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Opencams-Signature"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def sign(secret: str, body: bytes, *, now: float | None = None) -> str:
    return signature(secret, int(time.time() if now is None else now), body)


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` is a valid, recent signature of `body` by `secret`."""
    try:
        parts = dict(part.strip().split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).rsplit("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
