"""Inbound media for the customer: `GET /media/{token}` (docs/messages.md#media).

The token is sealed by the server's secret box (authenticated encryption under a key derived
from OPENCAMS_SECRET_KEY for this purpose only) over the MessageId and an expiry: a forged,
altered or expired token is refused (403). Nothing is stored: the bytes are fetched from Graph
(`GET /{media-id}`, then its URL with the number's token) when the customer asks, and checked
against Meta's sha256.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from cryptography.fernet import InvalidToken

from opencams.errors import GraphError
from opencams.groups.context import Deps
from opencams.store import messages, tenancy

MAX_MEDIA_BYTES = 100 * 1024 * 1024  # Meta's largest (documents)


@dataclass(frozen=True)
class MediaAnswer:
    status: int
    data: bytes = b""
    mime_type: str = "application/octet-stream"
    filename: str | None = None
    error: str | None = None


def _opened(deps: Deps, token: str) -> str | None:
    """The MessageId the token names, or None when it is forged, altered or expired."""
    if deps.media_tokens is None or len(token) > 2048:
        return None
    try:
        claim = json.loads(deps.media_tokens.open_raw(token))
    except (InvalidToken, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claim, dict):
        return None
    message_id, expires = claim.get("m"), claim.get("x")
    if not isinstance(message_id, str) or not isinstance(expires, int):
        return None
    return message_id if time.time() <= expires else None


async def fetch(deps: Deps, token: str) -> MediaAnswer:
    message_id = _opened(deps, token)
    if message_id is None:
        return MediaAnswer(403, error="the media link is not valid or has expired")
    async with deps.store.read() as tx:
        record = await messages.message_by_id(tx, message_id)
        numbers = (
            await tenancy.numbers(tx, number=record.business_number) if record is not None else []
        )
    number = next((n for n in numbers if record is not None and n.id == record.number_id), None)
    if record is None or record.media_id is None or number is None:
        return MediaAnswer(404, error="the message has no media")
    access = deps.secrets.open(number.access_token_enc)
    try:
        info = await deps.channel.get_media(record.media_id, access)
        data = await deps.channel.download_media(info, access, max_bytes=MAX_MEDIA_BYTES)
    except GraphError as exc:
        status = 502 if exc.category in ("unavailable", "throttled") else 410
        return MediaAnswer(status, error=f"WhatsApp did not give the media: {exc.describe()}")
    content = json.loads(record.content or "{}")
    filename = content.get("fileName") if isinstance(content, dict) else None
    return MediaAnswer(
        200,
        data,
        info.mime_type or "application/octet-stream",
        filename if isinstance(filename, str) else None,
    )
