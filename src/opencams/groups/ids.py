"""opencams' own identifiers."""

from __future__ import annotations

import secrets
import time
import uuid


def new_group_id() -> str:
    """22 upper-case hex digits: 12 of milliseconds, 10 random; sorts roughly by creation."""
    return f"{time.time_ns() // 1_000_000:012X}{secrets.token_hex(5).upper()}"


def new_unique_code() -> str:
    """The operation id returned as UniqueCode."""
    return uuid.uuid4().hex.upper()


def new_message_id() -> str:
    """A MessageId: 24 lower-case hex digits, like the vendor's."""
    return secrets.token_hex(12)
