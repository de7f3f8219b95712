"""SendChatappMessage to a group and ListChatappMessage (docs/messages.md).

A send is idempotent across crashes: the message row is committed `sending`, with opencams'
MessageId and the payload, *before* Meta is called; Meta's wamid is stored after it answered.
Graph has no idempotency key, so a send is never repeated: a row left `sending` (the process
died between the two units of work, or the answer never came) is settled `unknown` after
`sending_timeout_seconds` and reported with a status receipt `Unknown`, never resent. A
synchronous refusal by Meta leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opencams.errors import (
    BusinessError,
    ChannelRejected,
    ChatGroupInvalidStatus,
    ChatGroupNoMembers,
    ChatGroupNotFound,
    GraphError,
    LanguageNotEmpty,
    MessageFilterInvalid,
    MessageNotFound,
    MissingParameter,
    RecipientTypeNotSupport,
    SendOutcomeUnknown,
    SendTypeNotSupport,
    TemplateCodeNotEmpty,
    TemplateParamsInvalid,
)
from opencams.groups import content, receipts, validation
from opencams.groups.common import (
    WRITABLE,
    channel_error,
    meta_id,
    require_allowlisted,
    resolve_number,
    token,
)
from opencams.groups.context import Ctx, Deps
from opencams.groups.ids import new_message_id
from opencams.groups.message_events import MediaLinks, apply_parked_statuses, rendered_content
from opencams.groups.requests import ListChatappMessageRequest, SendChatappMessageRequest
from opencams.groups.results import MessageItem, MessagePage, SentMessage
from opencams.names import GroupStatus
from opencams.store import chat_groups
from opencams.store import messages as store
from opencams.store.clock import now_ms
from opencams.store.messages import MessageFilter, MessageRecord

log = logging.getLogger("opencams.messages")

# Meta's codes of a send that the customer can act on (whatsapp-groups-api.md §3.2).
SINGLE_MEMBER, GROUP_SUSPENDED, GROUP_UNKNOWN = 131020, 131207, 131041
MAX_TASK_ID = 128


def _kind(req: SendChatappMessageRequest) -> str:
    kind = req.type.strip().lower()
    if kind not in ("message", "template"):
        raise SendTypeNotSupport(repr(req.type))
    return kind


def _draft(req: SendChatappMessageRequest, kind: str) -> content.Draft:
    if kind == "message":
        message_type = content.message_type(req.message_type)
        return content.draft(message_type, req.content)
    code = (req.template_code or "").strip()
    if not code:
        raise TemplateCodeNotEmpty()
    language = (req.language or "").strip()
    if not language:
        raise LanguageNotEmpty()
    params = None
    if req.template_params is not None:
        if req.template_params.flattened:
            raise TemplateParamsInvalid("give it as one JSON object")
        params = req.template_params.value
    name = (req.template_name or "").strip() or code
    return content.Draft("template", content.template(name, language, params))


def _send_error(exc: GraphError) -> BusinessError:
    if exc.code == SINGLE_MEMBER:
        return ChatGroupNoMembers(f" (WhatsApp: {exc.describe()})")
    if exc.code == GROUP_SUSPENDED:
        return ChatGroupInvalidStatus(
            f"WhatsApp suspended it ({exc.describe()}).", status=GroupStatus.SUSPENDED
        )
    if exc.code == GROUP_UNKNOWN:
        return ChannelRejected(f"WhatsApp does not know the group: {exc.describe()}")
    return channel_error(exc)


async def _wamid_of(deps: Deps, group_id: str, message_id: str) -> str:
    """The wamid of a message of this group (sent or received), named by its MessageId."""
    async with deps.store.read() as tx:
        found = await store.message_by_id(tx, message_id)
    if found is None or found.group_id != group_id or found.wamid is None:
        raise MessageNotFound(message_id)
    return found.wamid


async def send_chatapp_message(ctx: Ctx, req: SendChatappMessageRequest) -> SentMessage:
    require_allowlisted(ctx)
    validation.channel_type(req.channel_type)
    recipient = (req.recipient_type or "individual").strip()
    if recipient != "group":
        raise RecipientTypeNotSupport(
            f"RecipientType {recipient!r}: opencams sends to chat groups only "
            "(RecipientType=group, To=the GroupId)"
        )
    validation.phone_number(req.from_number, "From")
    kind = _kind(req)
    draft = _draft(req, kind)
    task_id = req.task_id
    if task_id is not None and len(task_id) > MAX_TASK_ID:
        raise MessageFilterInvalid(f"TaskId is longer than {MAX_TASK_ID} characters")
    space = req.cust_space_id
    if not space:
        raise MissingParameter("CustSpaceId")
    number = await resolve_number(ctx, space, req.from_number)
    async with ctx.deps.store.read() as tx:
        group = await chat_groups.group_of_number(tx, req.to, number.id)
    if group is None:
        raise ChatGroupNotFound()
    if group.status not in WRITABLE:
        raise ChatGroupInvalidStatus("messages need it ACTIVE.", status=group.status)
    if group.participant_count == 0:
        raise ChatGroupNoMembers("")
    payload: dict[str, Any] = {
        "recipient_type": "group",
        "to": meta_id(group),
        **draft.payload,
    }
    if draft.refers_to is not None:
        payload[draft.message_type]["message_id"] = await _wamid_of(
            ctx.deps, group.id, draft.refers_to
        )
    if req.context_message_id:
        payload["context"] = {
            "message_id": await _wamid_of(ctx.deps, group.id, req.context_message_id)
        }

    message_id = new_message_id()
    async with ctx.deps.store.write() as tx:
        await store.insert_message(
            tx,
            id=message_id,
            number_id=number.id,
            group_id=group.id,
            direction=store.OUTBOUND,
            type=kind,
            message_type=draft.message_type,
            content=req.content if kind == "message" else json.dumps(payload["template"]),
            payload=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
            state=store.SENDING,
            context_message_id=req.context_message_id or None,
            task_id=task_id,
            template_code=req.template_code if kind == "template" else None,
            language=req.language if kind == "template" else None,
        )
    try:
        wamid = await ctx.deps.channel.send_message(
            number.phone_number_id, token(ctx, number), payload
        )
    except GraphError as exc:
        if exc.category == "unavailable" and not exc.retry_safe:
            # The request may have reached Meta: not resent, reported.
            await settle_unknown(ctx.deps, message_id, exc.describe())
            raise SendOutcomeUnknown(message_id, exc.describe()) from exc
        async with ctx.deps.store.write() as tx:
            await store.delete_unsent(tx, message_id)
        raise _send_error(exc) from exc
    async with ctx.deps.store.write() as tx:
        await store.accept(tx, message_id, wamid)
    # Statuses that arrived before the wamid was stored were parked: apply them now.
    await apply_parked_statuses(ctx.deps.store, wamid)
    return SentMessage(message_id)


async def settle_unknown(deps: Deps, message_id: str, reason: str) -> bool:
    async with deps.store.write() as tx:
        if not await store.mark_unknown(tx, message_id, reason):
            return False
        record = await store.message_by_id(tx, message_id)
        assert record is not None
        await receipts.status(
            tx,
            record,
            "unknown",
            participant=None,
            meta_ts=None,
            error_code="OutcomeUnknown",
            error_description=reason,
        )
    log.warning("message %s: outcome unknown (%s); not resent", message_id, reason)
    return True


async def settle_interrupted(deps: Deps) -> int:
    """Settle `unknown` the sends left `sending` longer than the timeout (a crash, a server
    stopped mid-send); returns how many."""
    older_than = now_ms() - int(deps.sending_timeout_seconds * 1000)
    async with deps.store.read() as tx:
        stale = await store.stale_sending(tx, older_than)
    settled = 0
    for message_id in stale:
        if await settle_unknown(
            deps,
            message_id,
            "the send was interrupted before WhatsApp's answer was recorded",
        ):
            settled += 1
    return settled


# --- ListChatappMessage ----------------------------------------------------------------------

EVENT_ACTIONS = {"DOWN": store.OUTBOUND, "UP": store.INBOUND}
LIST_STATUSES = {
    "SENDING": {store.SENDING, store.ACCEPTED},
    "SENT": {"sent"},
    "DELIVERED": {"delivered"},
    "READ": {"read"},
    "FAILED": {"failed"},
    "UNKNOWN": {store.UNKNOWN},
    "RECEIVED": {store.RECEIVED},
}
SHOWN_STATUS = {
    store.SENDING: "Sending",
    store.ACCEPTED: "Sending",
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "failed": "Failed",
    store.UNKNOWN: "Unknown",
    store.RECEIVED: "Received",
}


def _millis(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 15:
        raise MessageFilterInvalid(f"{name} must be a UNIX time in milliseconds")
    return int(value)


def links(deps: Deps) -> MediaLinks:
    return MediaLinks(deps.media_tokens, deps.public_url, deps.media_url_seconds)


def item(record: MessageRecord, deps: Deps) -> MessageItem:
    inbound = record.direction == store.INBOUND
    return MessageItem(
        message_id=record.id,
        business_number=record.business_number,
        event_action="UP" if inbound else "DOWN",
        type=record.type,
        message_type=record.message_type,
        message=rendered_content(record, links(deps)) if inbound else record.content,
        status=SHOWN_STATUS.get(record.state, record.state),
        user_number=record.sender if inbound else record.group_id,
        group_id=record.group_id,
        wamid=record.wamid,
        send_time_ms=record.created_at,
        template_code=record.template_code,
        language=record.language,
        fail_reason=(
            f"{record.error_code}: {record.error_description}" if record.error_code else None
        ),
    )


async def list_chatapp_message(ctx: Ctx, req: ListChatappMessageRequest) -> MessagePage:
    require_allowlisted(ctx)
    validation.channel_type(req.channel_type)
    validation.phone_number(req.business_number)
    page = validation.page(req.page)
    direction = None
    if req.event_action:
        direction = EVENT_ACTIONS.get(req.event_action.strip().upper())
        if direction is None:
            raise MessageFilterInvalid("EventAction must be DOWN (sent) or UP (received)")
    states = None
    if req.message_status:
        states = LIST_STATUSES.get(req.message_status.strip().upper())
        if states is None:
            raise MessageFilterInvalid(
                "MessageStatus must be one of " + ", ".join(s.title() for s in LIST_STATUSES)
            )
    start, end = _millis(req.start_time, "StartTime"), _millis(req.end_time, "EndTime")
    if start is not None and end is not None and start > end:
        raise MessageFilterInvalid("StartTime is after EndTime")
    number = await resolve_number(ctx, req.cust_space_id, req.business_number)
    where = MessageFilter(
        number_id=number.id,
        direction=direction,
        states=states,
        start_ms=start,
        end_ms=end,
        template_code=req.template_code or None,
        counterpart=req.user_number or None,
    )
    async with ctx.deps.store.read() as tx:
        records = await store.page(tx, where, offset=page.offset, limit=page.size)
    return MessagePage([item(r, ctx.deps) for r in records])


def send_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
