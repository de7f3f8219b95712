"""What the customer is told about group messages: ChatAppStatus receipts (to StatusCallbackUrl)
and ChatAppInbound messages (to UpCallbackUrl), in the vendor's formats plus the group's fields
(docs/messages.md#callbacks has an example of each).

Each function runs inside the unit of work that records the fact it reports
(store.callbacks.emit), so a receipt exists exactly when its status row does.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opencams.store import callbacks
from opencams.store.crypto import SecretBox
from opencams.store.database import Tx
from opencams.store.messages import MessageRecord

STATUS_EVENT = "ChatAppStatus"
INBOUND_EVENT = "ChatAppInbound"
STATUS_NAMES = {
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "failed": "Failed",
    "unknown": "Unknown",
}


def is_phone_number(identity: str | None) -> bool:
    return bool(identity) and identity is not None and identity.isdigit()


def identity_fields(prefix: str, who: str | None, user_id: str | None) -> dict[str, Any]:
    """A member as the customer sees them: the number when WhatsApp shows it, and the BSUID
    (business-scoped user id) when there is one; `who` is what Meta named them by."""
    return {
        f"{prefix}Number": who if is_phone_number(who) else None,
        f"{prefix}UserId": user_id or (who if who and not is_phone_number(who) else None),
    }


async def status(
    tx: Tx,
    message: MessageRecord,
    state: str,
    *,
    participant: str | None,
    participant_user_id: str | None = None,
    meta_ts: int | None,
    error_code: str | None = None,
    error_description: str | None = None,
) -> None:
    await callbacks.emit(
        tx,
        number_id=message.number_id,
        group_id=message.group_id,
        event_type=STATUS_EVENT,
        channel="status",
        data={
            "Status": STATUS_NAMES.get(state, state),
            "MessageId": message.id,
            "From": message.business_number,
            "To": message.group_id,
            "RecipientType": "group",
            "Timestamp": meta_ts * 1000 if meta_ts is not None else int(time.time() * 1000),
            "MsgFrameType": message.type,
            "Type": message.message_type.upper(),
            "TaskId": message.task_id or message.id,
            "TemplateCode": message.template_code,
            "Language": message.language,
            "ErrorCode": error_code,
            "ErrorDescription": error_description,
            "Participant": participant or None,
            **identity_fields("Participant", participant, participant_user_id),
            "UniqueMessageId": message.wamid,
        },
    )


def media_url(tokens: SecretBox | None, base: str, message_id: str, seconds: int) -> str | None:
    """An expiring URL of opencams that serves an inbound message's media (groups.media)."""
    if tokens is None:
        return None
    expires = int(time.time()) + seconds
    token = tokens.seal(json.dumps({"m": message_id, "x": expires}, separators=(",", ":")))
    return f"{base.rstrip('/')}/media/{token}"


async def inbound(tx: Tx, message: MessageRecord, rendered: str | None) -> None:
    profile = message.profile()
    await callbacks.emit(
        tx,
        number_id=message.number_id,
        group_id=message.group_id,
        event_type=INBOUND_EVENT,
        channel="up",
        data={
            "MessageId": message.id,
            "From": message.sender,
            **identity_fields("From", message.sender, profile.get("user_id")),
            "FromParentUserId": profile.get("parent_user_id"),
            "FromUserName": profile.get("username"),
            "DisplayName": profile.get("name"),
            "Name": profile.get("name"),
            "To": message.business_number,
            "RecipientType": "group",
            "NoticeType": "inbound",
            "Type": message.message_type.upper(),
            "Message": rendered,
            "Timestamp": message.created_at,
            "ContextMessageId": message.context_message_id,
            "UniqueMessageId": message.wamid,
        },
    )
