"""Queries of the access-control tables: principals, policies, roles, throttles, keys, audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from opencams.store.repo import Store, now_ms
from opencams.store.tables import (
    access_keys,
    audit_events,
    policies,
    policy_attachments,
    roles,
    throttles,
    user_group_members,
)


@dataclass(frozen=True)
class RoleRecord:
    account_id: str
    name: str
    trusted_users: tuple[str, ...]
    max_session_duration: int


@dataclass(frozen=True)
class KeyRecord:
    id: str
    account_id: str
    user_name: str | None
    status: str
    created_at: int
    last_used_at: int | None


async def role(store: Store, account_id: str, name: str) -> RoleRecord | None:
    async with store.tx() as conn:
        row = (
            await conn.execute(
                select(roles).where(roles.c.account_id == account_id, roles.c.name == name)
            )
        ).first()
    if row is None:
        return None
    return RoleRecord(
        account_id=row.account_id,
        name=row.name,
        trusted_users=tuple(json.loads(row.trusted_users)),
        max_session_duration=row.max_session_duration,
    )


async def attached_policies(
    store: Store, account_id: str, principal_type: str, name: str
) -> list[tuple[str, str | None]]:
    """(policy name, custom document or None for a system policy) attached to a user (directly
    or through its groups) or to a role."""
    conditions = [
        and_(
            policy_attachments.c.principal_type == principal_type,
            policy_attachments.c.principal_name == name,
        )
    ]
    async with store.tx() as conn:
        if principal_type == "user":
            groups = (
                await conn.execute(
                    select(user_group_members.c.group_name).where(
                        user_group_members.c.account_id == account_id,
                        user_group_members.c.user_name == name,
                    )
                )
            ).all()
            if groups:
                conditions.append(
                    and_(
                        policy_attachments.c.principal_type == "group",
                        policy_attachments.c.principal_name.in_([g.group_name for g in groups]),
                    )
                )
        rows = (
            await conn.execute(
                select(policy_attachments.c.policy_name, policies.c.document)
                .select_from(
                    policy_attachments.outerjoin(
                        policies,
                        and_(
                            policies.c.account_id == policy_attachments.c.account_id,
                            policies.c.name == policy_attachments.c.policy_name,
                        ),
                    )
                )
                .where(policy_attachments.c.account_id == account_id, or_(*conditions))
                .order_by(policy_attachments.c.policy_name)
            )
        ).all()
    seen: dict[str, str | None] = {}
    for row in rows:
        seen.setdefault(row.policy_name, row.document)
    return list(seen.items())


async def throttle_rates(store: Store, account_id: str) -> dict[str, float]:
    async with store.tx() as conn:
        rows = (
            await conn.execute(
                select(throttles.c.action, throttles.c.rate).where(
                    throttles.c.account_id == account_id
                )
            )
        ).all()
    return {r.action: float(r.rate) for r in rows}


async def record_audit(conn: AsyncConnection, events: list[dict[str, Any]]) -> None:
    if events:
        await conn.execute(insert(audit_events), events)


async def touch_keys(store: Store, key_ids: list[str]) -> None:
    async with store.tx() as conn:
        await conn.execute(
            update(access_keys).where(access_keys.c.id.in_(key_ids)).values(last_used_at=now_ms())
        )


# --- key lifecycle (opencams keys …) --------------------------------------------------------


async def list_keys(store: Store, account_id: str | None = None) -> list[KeyRecord]:
    query = select(
        access_keys.c.id,
        access_keys.c.account_id,
        access_keys.c.user_name,
        access_keys.c.status,
        access_keys.c.created_at,
        access_keys.c.last_used_at,
    ).order_by(access_keys.c.account_id, access_keys.c.created_at, access_keys.c.id)
    if account_id is not None:
        query = query.where(access_keys.c.account_id == account_id)
    async with store.tx() as conn:
        rows = (await conn.execute(query)).all()
    return [KeyRecord(**r._asdict()) for r in rows]


async def insert_key(
    store: Store, key_id: str, account_id: str, user_name: str | None, secret_enc: str
) -> None:
    now = now_ms()
    async with store.tx() as conn:
        await conn.execute(
            insert(access_keys).values(
                id=key_id,
                account_id=account_id,
                user_name=user_name,
                secret_enc=secret_enc,
                status="Active",
                created_at=now,
                updated_at=now,
            )
        )


async def set_key_status(store: Store, key_id: str, status: str) -> bool:
    async with store.tx() as conn:
        result = await conn.execute(
            update(access_keys)
            .where(access_keys.c.id == key_id)
            .values(status=status, updated_at=now_ms())
        )
    return bool(result.rowcount)


async def delete_key(store: Store, key_id: str) -> bool:
    async with store.tx() as conn:
        result = await conn.execute(delete(access_keys).where(access_keys.c.id == key_id))
    return bool(result.rowcount)


async def audit_rows(
    store: Store,
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
    async with store.tx() as conn:
        rows = (await conn.execute(query.limit(limit))).all()
    return [dict(r._asdict()) for r in rows]
