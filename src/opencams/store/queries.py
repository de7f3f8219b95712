"""Queries that run inside a caller's transaction (`async with store.tx() as conn`).

The chat-group operations and the webhook appliers need several statements to commit together
(a status change and its operation record, a membership change and the recount), so these take
the connection instead of opening their own transaction. Status changes are conditional updates
(`… WHERE status IN (…)`): two concurrent writers cannot both win.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opencams.store.records import GroupRecord, OperationRecord
from opencams.store.repo import GROUP_COLUMNS, OPERATION_COLUMNS, group_record, now_ms
from opencams.store.tables import (
    business_numbers,
    chat_groups,
    join_requests,
    operations,
    participants,
)

MEMBER = "member"


def _groups() -> Any:
    return select(*GROUP_COLUMNS).join(
        business_numbers, business_numbers.c.id == chat_groups.c.number_id
    )


async def group_of_number(
    conn: AsyncConnection, group_id: str, number_id: int
) -> GroupRecord | None:
    """A live (not deleted) group of a number; None for another number's or a deleted group."""
    row = (
        await conn.execute(
            _groups().where(
                chat_groups.c.id == group_id,
                chat_groups.c.number_id == number_id,
                chat_groups.c.deleted_at.is_(None),
            )
        )
    ).first()
    return group_record(row) if row else None


async def group_by_id(conn: AsyncConnection, group_id: str) -> GroupRecord | None:
    row = (await conn.execute(_groups().where(chat_groups.c.id == group_id))).first()
    return group_record(row) if row else None


async def group_by_meta_id(conn: AsyncConnection, meta_group_id: str) -> GroupRecord | None:
    row = (
        await conn.execute(_groups().where(chat_groups.c.meta_group_id == meta_group_id))
    ).first()
    return group_record(row) if row else None


async def set_group(
    conn: AsyncConnection,
    group_id: str,
    *,
    when_status: Collection[str] | None = None,
    **values: Any,
) -> bool:
    """Update a live group, only while its status is one of `when_status` (when given)."""
    conditions = [chat_groups.c.id == group_id, chat_groups.c.deleted_at.is_(None)]
    if when_status is not None:
        conditions.append(chat_groups.c.status.in_(list(when_status)))
    result = await conn.execute(
        update(chat_groups).where(and_(*conditions)).values(updated_at=now_ms(), **values)
    )
    return bool(result.rowcount)


async def insert_operation(
    conn: AsyncConnection,
    *,
    op_id: str,
    kind: str,
    group_id: str,
    meta_request_id: str | None,
    payload: dict[str, Any],
) -> None:
    await conn.execute(
        insert(operations).values(
            id=op_id,
            kind=kind,
            group_id=group_id,
            meta_request_id=meta_request_id,
            state="pending",
            payload=json.dumps(payload, separators=(",", ":")),
            created_at=now_ms(),
        )
    )


async def pending_operation(
    conn: AsyncConnection, group_id: str, kind: str
) -> OperationRecord | None:
    row = (
        await conn.execute(
            select(*OPERATION_COLUMNS)
            .where(
                operations.c.group_id == group_id,
                operations.c.kind == kind,
                operations.c.state == "pending",
            )
            .order_by(operations.c.created_at)
        )
    ).first()
    return OperationRecord(**row._asdict()) if row else None


async def pending_operations(
    conn: AsyncConnection, group_ids: Collection[str]
) -> list[OperationRecord]:
    if not group_ids:
        return []
    rows = (
        await conn.execute(
            select(*OPERATION_COLUMNS)
            .where(operations.c.group_id.in_(list(group_ids)), operations.c.state == "pending")
            .order_by(operations.c.created_at)
        )
    ).all()
    return [OperationRecord(**r._asdict()) for r in rows]


async def settle_operation(
    conn: AsyncConnection,
    op_id: str,
    state: str,
    *,
    result: Any = None,
    error: str | None = None,
) -> bool:
    """pending -> succeeded | failed | partial; False when it was settled already."""
    outcome = await conn.execute(
        update(operations)
        .where(operations.c.id == op_id, operations.c.state == "pending")
        .values(
            state=state,
            result=None if result is None else json.dumps(result, separators=(",", ":")),
            error=error,
            completed_at=now_ms(),
        )
    )
    return bool(outcome.rowcount)


# --- participants -------------------------------------------------------------------------


async def members(
    conn: AsyncConnection, group_id: str, among: Collection[str] | None = None
) -> set[str]:
    query = select(participants.c.wa_id).where(
        participants.c.group_id == group_id, participants.c.state == MEMBER
    )
    if among is not None:
        query = query.where(participants.c.wa_id.in_(list(among)))
    return {r.wa_id for r in (await conn.execute(query)).all()}


async def set_membership(
    conn: AsyncConnection, group_id: str, wa_id: str, state: str, event_ts: int
) -> bool:
    """Apply a join (`member`) or a departure (`left`, `removed`) that Meta reported at
    `event_ts`; an event older than the last one applied to this membership is ignored, so that
    a late delivery cannot undo a newer change. Returns whether anything changed."""
    now = now_ms()
    row = (
        await conn.execute(
            select(participants.c.state, participants.c.last_event_ts).where(
                participants.c.group_id == group_id, participants.c.wa_id == wa_id
            )
        )
    ).first()
    if row is None:
        await conn.execute(
            insert(participants).values(
                group_id=group_id,
                wa_id=wa_id,
                state=state,
                joined_ts=event_ts,
                join_seq=time.time_ns(),
                last_event_ts=event_ts,
                updated_at=now,
            )
        )
        return True
    if event_ts < row.last_event_ts:
        return False
    values: dict[str, Any] = {"state": state, "last_event_ts": event_ts, "updated_at": now}
    if state == MEMBER and row.state != MEMBER:
        values.update(joined_ts=event_ts, join_seq=time.time_ns())  # a rejoin goes to the end
    await conn.execute(
        update(participants)
        .where(participants.c.group_id == group_id, participants.c.wa_id == wa_id)
        .values(**values)
    )
    return bool(row.state != state)


async def recount_participants(conn: AsyncConnection, group_id: str) -> None:
    count = (
        select(func.count())
        .select_from(participants)
        .where(participants.c.group_id == group_id, participants.c.state == MEMBER)
    )
    await conn.execute(
        update(chat_groups)
        .where(chat_groups.c.id == group_id)
        .values(participant_count=count.scalar_subquery(), updated_at=now_ms())
    )


async def set_join_request(
    conn: AsyncConnection,
    group_id: str,
    wa_id: str,
    state: str,
    event_ts: int,
    join_request_id: str | None,
) -> None:
    row = (
        await conn.execute(
            select(join_requests.c.last_event_ts).where(
                join_requests.c.group_id == group_id, join_requests.c.wa_id == wa_id
            )
        )
    ).first()
    now = now_ms()
    if row is None:
        await conn.execute(
            insert(join_requests).values(
                group_id=group_id,
                wa_id=wa_id,
                join_request_id=join_request_id,
                state=state,
                last_event_ts=event_ts,
                updated_at=now,
            )
        )
    elif event_ts >= row.last_event_ts:
        await conn.execute(
            update(join_requests)
            .where(join_requests.c.group_id == group_id, join_requests.c.wa_id == wa_id)
            .values(
                state=state,
                join_request_id=join_request_id or join_requests.c.join_request_id,
                last_event_ts=event_ts,
                updated_at=now,
            )
        )


async def set_operation_request_id(conn: AsyncConnection, op_id: str, request_id: str) -> None:
    await conn.execute(
        update(operations).where(operations.c.id == op_id).values(meta_request_id=request_id)
    )


async def operation_by_request_id(conn: AsyncConnection, request_id: str) -> OperationRecord | None:
    row = (
        await conn.execute(
            select(*OPERATION_COLUMNS).where(operations.c.meta_request_id == request_id)
        )
    ).first()
    return OperationRecord(**row._asdict()) if row else None


async def live_groups_of_number(conn: AsyncConnection, number_id: int) -> list[GroupRecord]:
    rows = (
        await conn.execute(
            _groups().where(
                chat_groups.c.number_id == number_id, chat_groups.c.deleted_at.is_(None)
            )
        )
    ).all()
    return [group_record(r) for r in rows]


async def insert_group(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(chat_groups).values(**values))


async def retire_group(conn: AsyncConnection, group_id: str) -> None:
    """Delete a row and release its Meta id (unique) for the row that truly owns it."""
    await conn.execute(
        update(chat_groups)
        .where(chat_groups.c.id == group_id)
        .values(deleted_at=now_ms(), meta_group_id=None, updated_at=now_ms())
    )
