"""Queries of group messages: the rows of what was sent and received, and the statuses Meta
reported per participant (functions of a unit of work; docs/messages.md).

An outbound message is inserted `sending` in a unit of work of its own before Meta is called;
`accept` stores Meta's wamid after it answered; `mark_unknown` settles a `sending` row whose
send was interrupted. Status rows are keyed by (message, participant, status), so a duplicate
status is recorded once.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update

from opencams.store.clock import now_ms
from opencams.store.database import Tx, prepared
from opencams.store.tables import business_numbers, message_statuses, messages

OUTBOUND, INBOUND = "outbound", "inbound"
SENDING, ACCEPTED, UNKNOWN, RECEIVED = "sending", "accepted", "unknown", "received"


@dataclass(frozen=True)
class MessageRecord:
    id: str
    number_id: int
    business_number: str
    group_id: str
    direction: str
    type: str
    message_type: str
    content: str | None
    payload: str | None
    wamid: str | None
    state: str
    sender: str | None
    sender_profile: str | None
    context_message_id: str | None
    context_wamid: str | None
    media_id: str | None
    task_id: str | None
    template_code: str | None
    language: str | None
    error_code: str | None
    error_description: str | None
    created_at: int
    updated_at: int

    def profile(self) -> dict[str, Any]:
        value = json.loads(self.sender_profile) if self.sender_profile else {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class StatusRecord:
    participant: str  # "" = the group as a whole
    status: str
    meta_ts: int | None
    error_code: str | None
    error_description: str | None
    recorded_at: int


@dataclass(frozen=True)
class MessageFilter:
    number_id: int
    direction: str | None = None
    states: Collection[str] | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    template_code: str | None = None
    counterpart: str | None = None  # a GroupId or a sender


def _columns() -> Any:
    return select(*messages.c, business_numbers.c.number.label("business_number")).join(
        business_numbers, business_numbers.c.id == messages.c.number_id
    )


def _record(row: Any) -> MessageRecord:
    return MessageRecord(**row._asdict())


BY_ID = prepared(_columns().where(messages.c.id == bindparam("id")))
BY_WAMID = prepared(_columns().where(messages.c.wamid == bindparam("wamid")))


async def insert_message(tx: Tx, **values: Any) -> None:
    now = now_ms()
    await tx.execute(insert(messages).values(created_at=now, updated_at=now, **values))


async def message_by_id(tx: Tx, message_id: str) -> MessageRecord | None:
    row = (await tx.execute(BY_ID, {"id": message_id})).first()
    return _record(row) if row else None


async def message_by_wamid(tx: Tx, wamid: str) -> MessageRecord | None:
    row = (await tx.execute(BY_WAMID, {"wamid": wamid})).first()
    return _record(row) if row else None


async def accept(tx: Tx, message_id: str, wamid: str) -> bool:
    """Meta accepted the message: its wamid. Also for a row already settled `unknown` (the
    answer came after all); False when the row has a wamid already or is gone."""
    result = await tx.execute(
        update(messages)
        .where(
            messages.c.id == message_id,
            messages.c.wamid.is_(None),
            messages.c.state.in_((SENDING, UNKNOWN)),
        )
        .values(
            wamid=wamid,
            state=ACCEPTED,
            error_code=None,
            error_description=None,
            updated_at=now_ms(),
        )
    )
    return result.rowcount == 1


async def delete_unsent(tx: Tx, message_id: str) -> None:
    """Meta refused the send: nothing of it remains (a refusal leaves nothing behind)."""
    await tx.execute(delete(message_statuses).where(message_statuses.c.message_id == message_id))
    await tx.execute(
        delete(messages).where(messages.c.id == message_id, messages.c.wamid.is_(None))
    )


async def mark_unknown(tx: Tx, message_id: str, reason: str) -> bool:
    """A `sending` row whose outcome nobody knows; False when it was settled meanwhile."""
    result = await tx.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.state == SENDING)
        .values(
            state=UNKNOWN,
            error_code="OutcomeUnknown",
            error_description=reason,
            updated_at=now_ms(),
        )
    )
    return result.rowcount == 1


async def stale_sending(tx: Tx, older_than_ms: int, limit: int = 100) -> list[str]:
    rows = await tx.execute(
        select(messages.c.id)
        .where(messages.c.state == SENDING, messages.c.created_at < older_than_ms)
        .order_by(messages.c.created_at)
        .limit(limit)
    )
    return [row.id for row in rows.all()]


async def set_state(
    tx: Tx,
    message_id: str,
    state: str,
    *,
    error_code: str | None = None,
    error_description: str | None = None,
) -> None:
    values: dict[str, Any] = {"state": state, "updated_at": now_ms()}
    if error_code is not None:
        values.update(error_code=error_code, error_description=error_description)
    await tx.execute(update(messages).where(messages.c.id == message_id).values(**values))


async def record_status(
    tx: Tx,
    message_id: str,
    participant: str,
    status: str,
    *,
    meta_ts: int | None,
    error_code: str | None = None,
    error_description: str | None = None,
) -> bool:
    """False when this (message, participant, status) was recorded before."""
    exists = (
        await tx.execute(
            select(message_statuses.c.status).where(
                message_statuses.c.message_id == message_id,
                message_statuses.c.participant == participant,
                message_statuses.c.status == status,
            )
        )
    ).first()
    if exists:
        return False
    await tx.execute(
        insert(message_statuses).values(
            message_id=message_id,
            participant=participant,
            status=status,
            meta_ts=meta_ts,
            error_code=error_code,
            error_description=error_description,
            recorded_at=now_ms(),
        )
    )
    return True


async def statuses(tx: Tx, message_id: str) -> list[StatusRecord]:
    rows = await tx.execute(
        select(
            message_statuses.c.participant,
            message_statuses.c.status,
            message_statuses.c.meta_ts,
            message_statuses.c.error_code,
            message_statuses.c.error_description,
            message_statuses.c.recorded_at,
        )
        .where(message_statuses.c.message_id == message_id)
        .order_by(message_statuses.c.recorded_at, message_statuses.c.participant)
    )
    return [StatusRecord(**row._asdict()) for row in rows.all()]


async def page(tx: Tx, where: MessageFilter, *, offset: int, limit: int) -> list[MessageRecord]:
    query = _columns().where(messages.c.number_id == where.number_id)
    if where.direction is not None:
        query = query.where(messages.c.direction == where.direction)
    if where.states is not None:
        query = query.where(messages.c.state.in_(list(where.states)))
    if where.start_ms is not None:
        query = query.where(messages.c.created_at >= where.start_ms)
    if where.end_ms is not None:
        query = query.where(messages.c.created_at <= where.end_ms)
    if where.template_code is not None:
        query = query.where(messages.c.template_code == where.template_code)
    if where.counterpart is not None:
        query = query.where(
            or_(messages.c.group_id == where.counterpart, messages.c.sender == where.counterpart)
        )
    query = (
        query.order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [_record(row) for row in (await tx.execute(query)).all()]
