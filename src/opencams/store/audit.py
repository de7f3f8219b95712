"""Queries of the audit log (functions of a unit of work): batches written by
access.audit.AuditLog, and what `opencams audit` reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, or_, select

from opencams.store.database import Tx
from opencams.store.tables import audit_events


async def record_audit(tx: Tx, events: list[dict[str, Any]]) -> None:
    if events:
        await tx.execute(insert(audit_events), events)


async def audit_rows(
    tx: Tx,
    *,
    principal: str | None = None,
    action: str | None = None,
    decision: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
    if principal is not None:
        query = query.where(
            or_(
                audit_events.c.principal == principal,
                audit_events.c.access_key_id == principal,
                audit_events.c.account_id == principal,
            )
        )
    if action is not None:
        query = query.where(audit_events.c.action == action)
    if decision is not None:
        query = query.where(audit_events.c.decision == decision)
    if since_ms is not None:
        query = query.where(audit_events.c.at >= since_ms)
    if until_ms is not None:
        query = query.where(audit_events.c.at <= until_ms)
    rows = (await tx.execute(query.limit(limit))).all()
    return [dict(r._asdict()) for r in rows]
