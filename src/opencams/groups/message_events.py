"""Meta's `messages` webhooks for groups: statuses of what the business sent, and what members
send. Exactly once, in any order (docs/messages.md#statuses).

Each event is recorded under its deduplication key (`webhook_events`) in the transaction that
applies it and records the customer's callback, as group events are (groups.events). A status
naming a wamid opencams has not stored yet (Meta can report `sent` before SendChatappMessage
has committed the wamid) is parked under that wamid and applied once it is stored.

Statuses never regress: per participant sent < delivered < read, and failed is final. A status
that does not advance its participant (a `delivered` after `read`, a repeat) is kept in the
history but not told again.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from opencams.channel.webhooks import MessageEvent, StatusEvent, parse_status
from opencams.errors import StoreConflict
from opencams.groups import receipts
from opencams.groups.effects import Outcome
from opencams.groups.ids import new_message_id
from opencams.store import chat_groups, operations
from opencams.store import messages as store
from opencams.store.crypto import SecretBox
from opencams.store.database import Tx
from opencams.store.messages import MessageRecord, StatusRecord
from opencams.store.repo import Store

log = logging.getLogger("opencams.messages")

RANK = {"sent": 1, "delivered": 2, "read": 3}
MEDIA = ("image", "video", "audio", "document", "sticker")


class MediaLinks:
    """How inbound media is offered to the customer: URLs of this server, sealed and expiring."""

    def __init__(self, tokens: SecretBox | None, base: str, seconds: int) -> None:
        self.tokens = tokens
        self.base = base
        self.seconds = seconds


# --- statuses --------------------------------------------------------------------------------


def _error(event: StatusEvent) -> tuple[str | None, str | None]:
    errors = event.errors
    if not errors:
        return None, None
    first = errors[0]
    code = str(first.get("code")) if first.get("code") is not None else None
    text = first.get("title") or first.get("message") or "failed"
    data = first.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    description = f"{code}:{text}" + (f" ({details})" if details else "")
    return code, description


def _advances(history: list[StatusRecord], participant: str, status: str) -> bool:
    mine = [h.status for h in history if h.participant == participant]
    if "failed" in mine:
        return False
    if status == "failed":
        return not any(RANK.get(s, 0) >= RANK["delivered"] for s in mine)
    if status not in RANK:
        return False  # a status Meta may add: kept, not told
    return RANK[status] > max((RANK.get(s, 0) for s in mine), default=0)


def _aggregate(history: list[StatusRecord], current: str) -> str:
    """The message's state: failed when the whole message or every member failed, else the
    furthest status any participant reached."""
    if any(h.participant == "" and h.status == "failed" for h in history):
        return "failed"
    members = {h.participant for h in history if h.participant}
    failed = {h.participant for h in history if h.participant and h.status == "failed"}
    if members and members == failed:
        return "failed"
    best = max((RANK.get(h.status, 0) for h in history if h.status != "failed"), default=0)
    if best == 0:
        return current
    return next(name for name, rank in RANK.items() if rank == best)


def _meta_ts(value: str | None) -> int | None:
    return int(value) if value is not None else None


async def status_effect(tx: Tx, event: StatusEvent) -> Outcome:
    message = await store.message_by_wamid(tx, event.message_id)
    if message is None:
        return "parked"
    if message.direction != store.OUTBOUND:
        return "ignored"
    participant = event.participant or ""
    history = await store.statuses(tx, message.id)
    code, description = _error(event)
    ts = _meta_ts(event.timestamp)
    if not await store.record_status(
        tx,
        message.id,
        participant,
        event.status,
        meta_ts=ts,
        error_code=code,
        error_description=description,
    ):
        return "ignored"
    if not _advances(history, participant, event.status):
        return "applied"
    user_id = event.raw.get("recipient_user_id")
    await receipts.status(
        tx,
        message,
        event.status,
        participant=participant or None,
        participant_user_id=user_id if isinstance(user_id, str) else None,
        meta_ts=ts,
        error_code=code,
        error_description=description,
    )
    now = [*history, StatusRecord(participant, event.status, ts, code, description, 0)]
    state = _aggregate(now, message.state)
    if state != message.state:
        failed = state == "failed"
        await store.set_state(
            tx,
            message.id,
            state,
            error_code=code if failed else None,
            error_description=description if failed else None,
        )
    return "applied"


def _status_payload(event: StatusEvent) -> str:
    return json.dumps(
        {"kind": "status", "phone_number_id": event.phone_number_id, "item": event.raw},
        separators=(",", ":"),
    )


def _status_from_payload(payload: str) -> StatusEvent:
    data = json.loads(payload)
    event = parse_status(data.get("phone_number_id"), data["item"])
    assert event is not None
    return event


async def _once(store_: Store, key: str, row: dict[str, Any], apply: Any) -> Outcome:
    try:
        async with store_.write() as tx:
            if not await operations.record_event(tx, {"id": key, **row, "state": "received"}):
                return "duplicate"
            outcome: Outcome = await apply(tx)
            await operations.set_event_state(tx, key, outcome)
    except StoreConflict:
        async with store_.read() as tx:
            seen = await operations.event_exists(tx, key)
        if seen:
            return "duplicate"
        raise
    return outcome


async def apply_status(store_: Store, event: StatusEvent) -> Outcome:
    row = {
        "field": "messages",
        "event_type": f"status:{event.status}"[:64],
        # Parked statuses wait for their wamid under this column (groups.events parks by
        # Meta's request id there).
        "meta_request_id": event.message_id if len(event.message_id) <= 128 else None,
        "meta_group_id": None,
        "phone_number_id": event.phone_number_id,
        "payload": _status_payload(event),
    }

    async def apply(tx: Tx) -> Outcome:
        outcome = await status_effect(tx, event)
        if outcome == "parked" and row["meta_request_id"] is None:
            return "ignored"
        return outcome

    outcome = await _once(store_, event.dedupe_key(), row, apply)
    if outcome == "parked":
        # The wamid may have been stored between our read and our commit.
        await apply_parked_statuses(store_, event.message_id)
    return outcome


async def apply_parked_statuses(store_: Store, wamid: str) -> int:
    if len(wamid) > 128:
        return 0
    async with store_.read() as tx:
        parked = await operations.parked_events(tx, request_id=wamid)
    applied = 0
    for event_id, payload in parked:
        event = _status_from_payload(payload)
        async with store_.write() as tx:
            if await store.message_by_wamid(tx, wamid) is None:
                return applied  # still unknown: stays parked
            if not await operations.claim_parked_event(tx, event_id):
                continue
            outcome = await status_effect(tx, event)
            await operations.set_event_state(tx, event_id, outcome)
        applied += outcome == "applied"
    return applied


# --- what members send -----------------------------------------------------------------------


def _camel(value: dict[str, Any]) -> dict[str, Any]:
    names = {"mime_type": "mimeType", "filename": "fileName", "expiration_days": "expirationDays"}
    return {names.get(k, k): v for k, v in value.items()}


async def _normalized(tx: Tx, event: MessageEvent) -> tuple[dict[str, Any], str | None]:
    """The CAMS rendering of what a member sent (without the media URL), and its media id."""
    kind, raw = event.type, event.content
    if kind == "text":
        return {"text": raw.get("body")}, None
    if kind in MEDIA:
        media_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        shown = {
            k: v
            for k, v in _camel(raw).items()
            if k in ("id", "mimeType", "sha256", "fileName", "caption", "animated", "voice")
        }
        return shown, media_id
    if kind in ("reaction", "pin"):
        wamid = raw.get("message_id")
        target = await store.message_by_wamid(tx, wamid) if isinstance(wamid, str) else None
        shown = {k: v for k, v in _camel(raw).items() if k != "message_id"}
        shown["messageId"] = target.id if target else None
        return shown, None
    return _camel(raw) if raw else {k: v for k, v in event.raw.items() if k == kind}, None


def rendered_content(record: MessageRecord, links: MediaLinks) -> str | None:
    """Message as the customer receives it: a text's body, else the content as a JSON string
    (with a fresh signed `url` for media)."""
    if record.content is None:
        return None
    content = json.loads(record.content)
    if record.message_type == "text" and isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else None
    if record.media_id is not None and isinstance(content, dict):
        content["url"] = receipts.media_url(links.tokens, links.base, record.id, links.seconds)
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


async def inbound_effect(tx: Tx, event: MessageEvent, links: MediaLinks) -> Outcome:
    if event.group_id is None:
        return "ignored"  # messages outside groups are not opencams' (docs/messages.md)
    group = await chat_groups.group_by_meta_id(tx, event.group_id)
    if group is None or group.deleted_at is not None:
        log.info("a message for a group opencams does not hold was ignored")
        return "ignored"
    if await store.message_by_wamid(tx, event.message_id) is not None:
        return "ignored"
    shown, media_id = await _normalized(tx, event)
    context = await store.message_by_wamid(tx, event.context_id) if event.context_id else None
    profile = {
        "name": event.profile_name,
        "user_id": event.sender_user_id,
        "parent_user_id": event.sender_parent_user_id,
        "username": event.username,
    }
    message_id = new_message_id()
    await store.insert_message(
        tx,
        id=message_id,
        number_id=group.number_id,
        group_id=group.id,
        direction=store.INBOUND,
        type="message",
        message_type=event.type[:32],
        content=json.dumps(shown, ensure_ascii=False, separators=(",", ":")),
        wamid=event.message_id,
        state=store.RECEIVED,
        sender=event.sender_wa_id or event.sender_user_id,
        sender_profile=json.dumps({k: v for k, v in profile.items() if v}),
        context_message_id=context.id if context else None,
        context_wamid=event.context_id,
        media_id=media_id[:128] if media_id else None,
    )
    record = await store.message_by_id(tx, message_id)
    assert record is not None
    await receipts.inbound(tx, record, rendered_content(record, links))
    return "applied"


async def apply_inbound(store_: Store, event: MessageEvent, links: MediaLinks) -> Outcome:
    row = {
        "field": "messages",
        "event_type": f"message:{event.type}"[:64],
        "meta_request_id": None,
        "meta_group_id": None,
        "phone_number_id": event.phone_number_id,
        "payload": json.dumps({"kind": "message", "item": event.raw}, separators=(",", ":")),
    }

    async def apply(tx: Tx) -> Outcome:
        return await inbound_effect(tx, event, links)

    return await _once(store_, event.dedupe_key(), row, apply)
