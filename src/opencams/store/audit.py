"""Queries of the audit log (functions of a unit of work): batches written by
access.audit.AuditLog, and what `opencams audit` reads."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import insert, or_, select

from opencams.store.database import Tx
from opencams.store.tables import audit_events

# What each text column holds at most: a record is made to fit (the store's business, not the
# caller's). What a client sent (an action name from a header) can be anything.
_LIMITS = {
    column.name: int(length)
    for column in audit_events.columns
    if (length := getattr(column.type, "length", None))
}
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates: PostgreSQL refuses


def _fitted(event: dict[str, Any]) -> dict[str, Any]:
    fitted = dict(event)
    for name, value in event.items():
        if isinstance(value, str):
            value = _UNSTORABLE.sub("\ufffd", value)
            limit = _LIMITS.get(name)
            fitted[name] = value[:limit] if limit is not None else value
    return fitted


async def record_audit(tx: Tx, events: list[dict[str, Any]]) -> None:
    """Write a batch; every record fitted to the columns, so one never refuses the others."""
    if events:
        await tx.execute(insert(audit_events), [_fitted(event) for event in events])


async def audit_rows(
    tx: Tx,
    *,
    account_id: str | None = None,
    principal: str | None = None,
    code: str | None = None,
    action: str | None = None,
    decision: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[dict[str, Any]]:
    query = select(audit_events).order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
    if account_id is not None:
        query = query.where(audit_events.c.account_id == account_id)
    if code is not None:
        query = query.where(audit_events.c.code == code)
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
    rows = (await tx.execute(query.limit(limit).offset(offset))).all()
    return [dict(r._asdict()) for r in rows]
