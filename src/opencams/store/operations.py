"""Queries of pending operations (what was asked of Meta, waiting for its webhook) and of the
webhook events received (the deduplication record and the parked events), as functions of a
unit of work."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update

from opencams.names import OperationKind, OperationState
from opencams.store.clock import now_ms
from opencams.store.database import Tx, prepared
from opencams.store.records import OperationRecord
from opencams.store.tables import operations, webhook_events

OPERATION_COLUMNS = (
    operations.c.id,
    operations.c.kind,
    operations.c.group_id,
    operations.c.meta_request_id,
    operations.c.state,
    operations.c.payload,
    operations.c.created_at,
)


def _record(row: Any) -> OperationRecord:
    return OperationRecord(**row._asdict())


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def insert_operation(
    tx: Tx,
    *,
    op_id: str,
    kind: OperationKind,
    group_id: str,
    meta_request_id: str | None,
    payload: dict[str, Any],
) -> None:
    await tx.execute(
        insert(operations).values(
            id=op_id,
            kind=kind,
            group_id=group_id,
            meta_request_id=meta_request_id,
            state="pending",
            payload=_json(payload),
            created_at=now_ms(),
        )
    )


async def pending_operation(tx: Tx, group_id: str, kind: OperationKind) -> OperationRecord | None:
    row = (
        await tx.execute(
            select(*OPERATION_COLUMNS)
            .where(
                operations.c.group_id == group_id,
                operations.c.kind == kind,
                operations.c.state == "pending",
            )
            .order_by(operations.c.created_at)
        )
    ).first()
    return _record(row) if row else None


async def pending_operations(tx: Tx, group_ids: Collection[str]) -> list[OperationRecord]:
    if not group_ids:
        return []
    rows = (
        await tx.execute(
            select(*OPERATION_COLUMNS)
            .where(operations.c.group_id.in_(list(group_ids)), operations.c.state == "pending")
            .order_by(operations.c.created_at)
        )
    ).all()
    return [_record(r) for r in rows]


async def settle_operation(
    tx: Tx,
    op_id: str,
    state: OperationState,
    *,
    result: Any = None,
    error: str | None = None,
) -> bool:
    """pending -> succeeded | failed | partial; False when it was settled already."""
    outcome = await tx.execute(
        update(operations)
        .where(operations.c.id == op_id, operations.c.state == "pending")
        .values(
            state=state,
            result=None if result is None else _json(result),
            error=error,
            completed_at=now_ms(),
        )
    )
    return bool(outcome.rowcount)


async def set_operation_request_id(tx: Tx, op_id: str, request_id: str) -> None:
    await tx.execute(
        update(operations).where(operations.c.id == op_id).values(meta_request_id=request_id)
    )


async def operation_by_request_id(tx: Tx, request_id: str) -> OperationRecord | None:
    row = (
        await tx.execute(
            select(*OPERATION_COLUMNS).where(operations.c.meta_request_id == request_id)
        )
    ).first()
    return _record(row) if row else None


# --- webhook events -----------------------------------------------------------------------


async def record_event(tx: Tx, event: dict[str, Any]) -> bool:
    """Insert a webhook event; False when the same event was seen before (a redelivery).
    The same event committed meanwhile by another delivery is StoreConflict at commit."""
    exists = (
        await tx.execute(select(webhook_events.c.id).where(webhook_events.c.id == event["id"]))
    ).first()
    if exists:
        return False
    await tx.execute(insert(webhook_events).values(received_at=now_ms(), **event))
    return True


async def event_exists(tx: Tx, event_id: str) -> bool:
    row = (
        await tx.execute(select(webhook_events.c.id).where(webhook_events.c.id == event_id))
    ).first()
    return row is not None


PARKED_EVENTS = prepared(
    select(webhook_events.c.id, webhook_events.c.payload)
    .where(
        or_(
            webhook_events.c.meta_request_id == bindparam("request_id"),
            webhook_events.c.meta_group_id == bindparam("meta_group_id"),
        ),
        webhook_events.c.state == "parked",
    )
    .order_by(webhook_events.c.received_at, webhook_events.c.id)
)


async def parked_events(
    tx: Tx, *, request_id: str | None = None, meta_group_id: str | None = None
) -> list[tuple[str, str]]:
    """Parked events naming this request or this Meta group, oldest first."""
    if request_id is None and meta_group_id is None:
        return []
    # A None compares equal to nothing: only the given one matches.
    rows = (
        await tx.execute(PARKED_EVENTS, {"request_id": request_id, "meta_group_id": meta_group_id})
    ).all()
    return [(row.id, row.payload) for row in rows]


async def claim_parked_event(tx: Tx, event_id: str) -> bool:
    """Flip a parked event to applied; only one caller can win."""
    result = await tx.execute(
        update(webhook_events)
        .where(webhook_events.c.id == event_id, webhook_events.c.state == "parked")
        .values(state="applied", applied_at=now_ms())
    )
    return bool(result.rowcount)


async def set_event_state(tx: Tx, event_id: str, state: str) -> None:
    await tx.execute(
        update(webhook_events)
        .where(webhook_events.c.id == event_id)
        .values(state=state, applied_at=now_ms() if state == "applied" else None)
    )


async def operations_of_group(tx: Tx, group_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """A group's operations, newest first: what was asked of Meta and what became of it."""
    rows = (
        await tx.execute(
            select(operations)
            .where(operations.c.group_id == group_id)
            .order_by(operations.c.created_at.desc(), operations.c.id.desc())
            .limit(limit)
        )
    ).all()
    return [dict(row._asdict()) for row in rows]


async def events_of_group(
    tx: Tx, meta_group_id: str, request_ids: Collection[str], limit: int = 100
) -> list[dict[str, Any]]:
    """The webhook events received about a Meta group (or naming one of its operations' Meta
    requests), newest first."""
    condition = webhook_events.c.meta_group_id == meta_group_id
    if request_ids:
        condition = or_(condition, webhook_events.c.meta_request_id.in_(list(request_ids)))
    rows = (
        await tx.execute(
            select(webhook_events)
            .where(condition)
            .order_by(webhook_events.c.received_at.desc(), webhook_events.c.id)
            .limit(limit)
        )
    ).all()
    return [dict(row._asdict()) for row in rows]
