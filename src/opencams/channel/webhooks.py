"""Inbound Meta webhooks: the GET handshake, the X-Hub-Signature-256 check, typed group events.

The signature is computed over the raw bytes as received; the body is never re-serialised before
checking (Meta signs an escaped-unicode rendering, spec §2.5).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

GROUP_FIELDS = frozenset(
    {
        "group_lifecycle_update",
        "group_participants_update",
        "group_settings_update",
        "group_status_update",
    }
)


class WebhookRejected(Exception):
    """The delivery is not authentic or not parseable; nothing of it may be applied."""


def signature_valid(raw: bytes, header: str | None, app_secret: str) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :].strip().lower())


def handshake_challenge(params: dict[str, str], verify_token: str | None) -> str | None:
    """The challenge to echo, or None when the handshake must be refused."""
    if params.get("hub.mode") != "subscribe" or not verify_token:
        return None
    if not hmac.compare_digest(params.get("hub.verify_token", ""), verify_token):
        return None
    return params.get("hub.challenge", "")


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


def parse_events(raw: bytes) -> list[GroupEvent]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON") from exc
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise WebhookRejected("not a whatsapp_business_account notification")
    events: list[GroupEvent] = []
    for entry in body.get("entry") or []:
        if not isinstance(entry, dict):
            raise WebhookRejected("malformed entry")
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise WebhookRejected("malformed change")
            field_name = str(change.get("field", ""))
            if field_name not in GROUP_FIELDS:
                continue  # messages, statuses…: not ours to apply
            value = change["value"]
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            phone_number_id = metadata.get("phone_number_id")
            for group in value.get("groups") or []:
                if not isinstance(group, dict):
                    raise WebhookRejected("malformed group event")
                events.append(
                    GroupEvent(
                        field_name=field_name,
                        type=str(group.get("type", "")),
                        phone_number_id=str(phone_number_id) if phone_number_id else None,
                        group_id=_opt_str(group.get("group_id")),
                        request_id=_opt_str(group.get("request_id")),
                        timestamp=_opt_str(group.get("timestamp")),
                        raw=group,
                    )
                )
    return events


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
