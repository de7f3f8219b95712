"""Inbound Meta webhooks: the GET handshake, the X-Hub-Signature-256 check, typed events.

Group fields give `GroupEvent`s; the `messages` field gives `StatusEvent`s (`statuses[]`: sent,
delivered, read, failed; for group messages with `recipient_type: "group"` and the member in
`recipient_participant_id`) and `MessageEvent`s (`messages[]` a user sent, with `group_id` for
group messages and the sender's entry of `contacts[]`). Each has a `dedupe_key`.

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


@dataclass(frozen=True)
class StatusEvent:
    """One entry of a `messages` change's `statuses[]`."""

    phone_number_id: str | None
    message_id: str  # the wamid the business got from the send
    status: str  # sent, delivered, read, failed (and others Meta may add)
    timestamp: str | None
    recipient_id: str | None  # the group id for a group message, else the user
    recipient_type: str | None  # "group" for group messages
    participant: str | None  # the member (wa_id, or BSUID when the number is hidden)
    raw: dict[str, Any] = field(hash=False, compare=False)

    @property
    def errors(self) -> list[dict[str, Any]]:
        value = self.raw.get("errors")
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

    def dedupe_key(self) -> str:
        """One key per (message, status, member): a redelivery or a duplicate is the same
        event; a `read` after a `delivered` of the same member is a new one."""
        parts = ["status", self.phone_number_id, self.message_id, self.status, self.participant]
        return _key(parts)


@dataclass(frozen=True)
class MessageEvent:
    """One entry of a `messages` change's `messages[]`: what a user sent."""

    phone_number_id: str | None
    message_id: str
    type: str  # text, image, document, reaction, pin, …
    timestamp: str | None
    group_id: str | None  # set for a group message
    sender_wa_id: str | None  # `from`; absent for a user whose number is hidden
    sender_user_id: str | None  # BSUID (`from_user_id` or the contact's `user_id`)
    profile_name: str | None
    username: str | None
    context_id: str | None  # the wamid this replies to
    raw: dict[str, Any] = field(hash=False, compare=False)
    sender_parent_user_id: str | None = None  # the contact's parent BSUID, when Meta gives one

    @property
    def content(self) -> dict[str, Any]:
        """The object named by `type` (e.g. `{"body": …}` for text)."""
        value = self.raw.get(self.type)
        return value if isinstance(value, dict) else {}

    def dedupe_key(self) -> str:
        """Meta's message id names one inbound message (redeliveries repeat it)."""
        return _key(["message", self.phone_number_id, self.message_id])


@dataclass(frozen=True)
class Notification:
    """Everything usable in one delivery, and how many items were skipped as unusable."""

    groups: list[GroupEvent]
    statuses: list[StatusEvent]
    messages: list[MessageEvent]
    skipped: int


def _key(parts: list[str | None]) -> str:
    canonical = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _timestamp(stamp: Any) -> str | None:
    timestamp = str(stamp) if isinstance(stamp, str | int) and not isinstance(stamp, bool) else None
    if timestamp is not None and not (timestamp.isascii() and timestamp.isdigit()):
        return None
    if timestamp is not None and len(timestamp) > MAX_TIMESTAMP_DIGITS:
        return None
    return timestamp


def parse_events(raw: bytes) -> tuple[list[GroupEvent], int]:
    """The group events of a delivery, and how many group events were unusable (skipped)."""
    notification = parse_notification(raw)
    return notification.groups, notification.skipped


def parse_notification(raw: bytes) -> Notification:
    """All typed events of a delivery; raises WebhookRejected when it is not Meta's shape."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected("body is not JSON") from exc
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise WebhookRejected("not a whatsapp_business_account notification")
    events: list[GroupEvent] = []
    statuses: list[StatusEvent] = []
    messages: list[MessageEvent] = []
    skipped = 0
    for entry in _list(body.get("entry"), "entry"):
        if not isinstance(entry, dict):
            raise WebhookRejected("malformed entry")
        for change in _list(entry.get("changes"), "changes"):
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise WebhookRejected("malformed change")
            field_name = change.get("field")
            value = change["value"]
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            phone_number_id = safe_id(metadata.get("phone_number_id"), 64)
            if field_name == "messages":
                for item in _list(value.get("statuses"), "statuses"):
                    status = _status(phone_number_id, item)
                    if status is None:
                        skipped += 1
                    else:
                        statuses.append(status)
                contacts = [
                    c for c in _list(value.get("contacts"), "contacts") if isinstance(c, dict)
                ]
                for item in _list(value.get("messages"), "messages"):
                    message = _message(phone_number_id, item, contacts)
                    if message is None:
                        skipped += 1
                    else:
                        messages.append(message)
                continue
            if field_name not in GROUP_FIELDS:
                continue  # fields opencams does not subscribe to
            for group in _list(value.get("groups"), "groups"):
                event = _event(str(field_name), phone_number_id, group)
                if event is None:
                    skipped += 1
                else:
                    events.append(event)
    return Notification(events, statuses, messages, skipped)


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


MAX_MESSAGE_ID = 512


def parse_status(phone_number_id: str | None, item: Any) -> StatusEvent | None:
    """One entry of `statuses[]` (also for re-reading a stored one), or None when unusable."""
    return _status(phone_number_id, item)


def _status(phone_number_id: str | None, item: Any) -> StatusEvent | None:
    if not isinstance(item, dict):
        return None
    message_id = safe_id(item.get("id"), MAX_MESSAGE_ID)
    status = safe_id(item.get("status"), MAX_ID["type"])
    if message_id is None or status is None:
        return None
    participant = item.get("recipient_participant_id", item.get("participant_recipient_id"))
    return StatusEvent(
        phone_number_id=phone_number_id,
        message_id=message_id,
        status=status,
        timestamp=_timestamp(item.get("timestamp")),
        recipient_id=safe_id(item.get("recipient_id"), MAX_ID["group_id"]),
        recipient_type=safe_id(item.get("recipient_type"), MAX_ID["type"]),
        participant=safe_id(participant, MAX_ID["group_id"]),
        raw=item,
    )


def _message(
    phone_number_id: str | None, item: Any, contacts: list[dict[str, Any]]
) -> MessageEvent | None:
    if not isinstance(item, dict):
        return None
    message_id = safe_id(item.get("id"), MAX_MESSAGE_ID)
    kind = safe_id(item.get("type"), MAX_ID["type"])
    if message_id is None or kind is None:
        return None
    wa_id = safe_id(item.get("from"), 64)
    user_id = safe_id(item.get("from_user_id"), 256)
    # The sender's contact: matched by wa_id or BSUID, or the only one there is.
    contact: dict[str, Any] = {}
    for candidate in contacts:
        if (wa_id and candidate.get("wa_id") == wa_id) or (
            user_id and candidate.get("user_id") == user_id
        ):
            contact = candidate
            break
    else:
        if len(contacts) == 1:
            contact = contacts[0]
    user_id = user_id or safe_id(contact.get("user_id"), 256)
    raw_profile, raw_context = contact.get("profile"), item.get("context")
    profile: dict[str, Any] = raw_profile if isinstance(raw_profile, dict) else {}
    context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    name, username = profile.get("name"), profile.get("username")
    return MessageEvent(
        phone_number_id=phone_number_id,
        message_id=message_id,
        type=kind,
        timestamp=_timestamp(item.get("timestamp")),
        group_id=safe_id(item.get("group_id"), MAX_ID["group_id"]),
        sender_wa_id=wa_id,
        sender_user_id=user_id,
        profile_name=name if isinstance(name, str) else None,
        username=username if isinstance(username, str) else None,
        context_id=safe_id(context.get("id"), MAX_MESSAGE_ID),
        raw=item,
        sender_parent_user_id=safe_id(contact.get("parent_user_id"), 256),
    )
