"""Inbound Meta webhooks: the GET handshake, the X-Hub-Signature-256 check, typed group events.

The signature is computed over the raw bytes as received; the body is never re-serialised before
checking (Meta signs an escaped-unicode rendering, docs/simulator.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any

from opencams.errors import WebhookRejected

GROUP_FIELDS = frozenset(
    {
        "group_lifecycle_update",
        "group_participants_update",
        "group_settings_update",
        "group_status_update",
    }
)


# Bounds of what opencams stores of an event (column sizes), and characters no id may carry.
MAX_ID = {"group_id": 256, "request_id": 128, "type": 64}
MAX_TIMESTAMP_DIGITS = 12
_UNSAFE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def signature_valid(raw: bytes, header: str | None, app_secret: str) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    # Bytes, not str: compare_digest refuses non-ASCII strings, and a header is caller input.
    given = header[len("sha256=") :].strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected.encode(), given)


def handshake_challenge(params: dict[str, str], verify_token: str | None) -> str | None:
    """The challenge to echo, or None when the handshake must be refused."""
    if params.get("hub.mode") != "subscribe" or not verify_token:
        return None
    given = params.get("hub.verify_token", "").encode("utf-8", "replace")
    if not hmac.compare_digest(given, verify_token.encode()):
        return None
    return params.get("hub.challenge", "")


def safe_id(value: Any, limit: int) -> str | None:
    """An id as opencams can store it, or None when it is absent or unusable."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if not text or len(text) > limit or _UNSAFE.search(text):
        return None
    return text


@dataclass(frozen=True)
class GroupEvent:
    """One entry of `value.groups[]`, with the envelope facts needed to route it."""

    field_name: str
    type: str
    phone_number_id: str | None
    group_id: str | None
    request_id: str | None
    timestamp: str | None
    raw: dict[str, Any] = field(hash=False, compare=False)

    @property
    def errors(self) -> list[dict[str, Any]]:
        value = self.raw.get("errors")
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

    def dedupe_key(self) -> str:
        """Identical redeliveries hash the same; distinct events never collide."""
        canonical = json.dumps(
            {"field": self.field_name, "pn": self.phone_number_id, "event": self.raw},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WebhookRejected(f"{what} is not a list")
    return value


def parse_events(raw: bytes) -> tuple[list[GroupEvent], int]:
    """The group events of a delivery, and how many group events were unusable (skipped)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON") from exc
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise WebhookRejected("not a whatsapp_business_account notification")
    events: list[GroupEvent] = []
    skipped = 0
    for entry in _list(body.get("entry"), "entry"):
        if not isinstance(entry, dict):
            raise WebhookRejected("malformed entry")
        for change in _list(entry.get("changes"), "changes"):
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise WebhookRejected("malformed change")
            field_name = change.get("field")
            if field_name not in GROUP_FIELDS:
                continue  # messages, statuses…: not ours to apply
            value = change["value"]
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            phone_number_id = safe_id(metadata.get("phone_number_id"), 64)
            for group in _list(value.get("groups"), "groups"):
                event = _event(str(field_name), phone_number_id, group)
                if event is None:
                    skipped += 1
                else:
                    events.append(event)
    return events, skipped


def _event(field_name: str, phone_number_id: str | None, group: Any) -> GroupEvent | None:
    """One group event, or None when its ids cannot be what Meta sends (it is skipped, so that
    one bad event cannot block the others of its delivery forever)."""
    if not isinstance(group, dict):
        return None
    raw_type = group.get("type")
    kind = safe_id(raw_type, MAX_ID["type"]) if isinstance(raw_type, str) else None
    group_id = safe_id(group.get("group_id"), MAX_ID["group_id"])
    request_id = safe_id(group.get("request_id"), MAX_ID["request_id"])
    if kind is None or (group.get("group_id") is not None and group_id is None):
        return None
    if group.get("request_id") is not None and request_id is None:
        return None
    stamp = group.get("timestamp")
    timestamp = str(stamp) if isinstance(stamp, str | int) and not isinstance(stamp, bool) else None
    if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit()):
        timestamp = None
    if timestamp is not None and len(timestamp) > MAX_TIMESTAMP_DIGITS:
        timestamp = None
    return GroupEvent(
        field_name=field_name,
        type=kind,
        phone_number_id=phone_number_id,
        group_id=group_id,
        request_id=request_id,
        timestamp=timestamp,
        raw=group,
    )
