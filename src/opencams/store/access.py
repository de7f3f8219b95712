"""Queries of access control: AccessKeys and their lifecycle, nonces, RAM principals, policies,
roles and throttles (functions of a unit of work)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from opencams.store.clock import now_ms
from opencams.store.database import Prepared, Tx, prepared
from opencams.store.records import AccessKeyRecord
from opencams.store.tables import (
    access_keys,
    accounts,
    policies,
    policy_attachments,
    roles,
    throttles,
    used_nonces,
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


async def role(tx: Tx, account_id: str, name: str) -> RoleRecord | None:
    row = (
        await tx.execute(
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
    tx: Tx, account_id: str, principal_type: str, name: str
) -> list[tuple[str, str | None]]:
    """(policy name, custom document or None for a system policy) attached to a user (directly
    or through its groups) or to a role."""
    conditions = [
        and_(
            policy_attachments.c.principal_type == principal_type,
            policy_attachments.c.principal_name == name,
        )
    ]
    if principal_type == "user":
        groups = (
            await tx.execute(
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
        await tx.execute(
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


async def throttle_rates(tx: Tx, account_id: str) -> dict[str, float]:
    rows = (
        await tx.execute(
            select(throttles.c.action, throttles.c.rate).where(throttles.c.account_id == account_id)
        )
    ).all()
    return {r.action: float(r.rate) for r in rows}


async def touch_keys(tx: Tx, key_ids: list[str]) -> None:
    await tx.execute(
        update(access_keys).where(access_keys.c.id.in_(key_ids)).values(last_used_at=now_ms())
    )


# --- key lifecycle (opencams keys …) --------------------------------------------------------


async def list_keys(tx: Tx, account_id: str | None = None) -> list[KeyRecord]:
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
    rows = (await tx.execute(query)).all()
    return [KeyRecord(**r._asdict()) for r in rows]


async def insert_key(
    tx: Tx, key_id: str, account_id: str, user_name: str | None, secret_enc: str
) -> None:
    now = now_ms()
    await tx.execute(
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


async def set_key_status(tx: Tx, key_id: str, status: str) -> bool:
    result = await tx.execute(
        update(access_keys)
        .where(access_keys.c.id == key_id)
        .values(status=status, updated_at=now_ms())
    )
    return bool(result.rowcount)


async def delete_key(tx: Tx, key_id: str) -> bool:
    result = await tx.execute(delete(access_keys).where(access_keys.c.id == key_id))
    return bool(result.rowcount)


_ACCESS_KEY_COLUMNS = select(
    access_keys.c.id,
    access_keys.c.account_id,
    access_keys.c.secret_enc,
    access_keys.c.status,
    access_keys.c.user_name,
    accounts.c.chat_groups_allowlisted.label("account_allowlisted"),
).join(accounts, accounts.c.id == access_keys.c.account_id)
ACCESS_KEY = prepared(_ACCESS_KEY_COLUMNS.where(access_keys.c.id == bindparam("key_id")))
# PostgreSQL only: several keys in one statement, `id = ANY(array)` (one compiled statement
# whatever the number of keys, unlike an IN list).
ACCESS_KEYS = prepared(
    _ACCESS_KEY_COLUMNS.where(
        access_keys.c.id == any_(bindparam("key_ids", type_=postgresql.ARRAY(String)))
    )
)


async def access_key(tx: Tx, key_id: str) -> AccessKeyRecord | None:
    row = (await tx.execute(ACCESS_KEY, {"key_id": key_id})).first()
    return AccessKeyRecord(**row._asdict()) if row else None


async def access_keys_by_id(tx: Tx, key_ids: Sequence[str]) -> dict[str, AccessKeyRecord]:
    """Several keys in one statement (PostgreSQL): those that exist, by id."""
    rows = (await tx.execute(ACCESS_KEYS, {"key_ids": list(key_ids)})).all()
    return {row.id: AccessKeyRecord(**row._asdict()) for row in rows}


async def account_allowlisted(tx: Tx, account_id: str) -> bool | None:
    """The account's allowlisting, or None when there is no such account."""
    row = (
        await tx.execute(
            select(accounts.c.chat_groups_allowlisted).where(accounts.c.id == account_id)
        )
    ).first()
    return None if row is None else bool(row.chat_groups_allowlisted)


def _nonce_upsert(dialect_insert: Any) -> Prepared:
    """Insert a nonce, or take over an expired record of it; returns a row only if it did
    (rowcount is not reliable here: psycopg reports -1 for an upsert)."""
    statement = dialect_insert(used_nonces).values(
        access_key_id=bindparam("key_id"), nonce=bindparam("nonce"), expires_at=bindparam("expires")
    )
    return prepared(
        statement.on_conflict_do_update(
            index_elements=[used_nonces.c.access_key_id, used_nonces.c.nonce],
            set_={"expires_at": statement.excluded.expires_at},
            where=used_nonces.c.expires_at < bindparam("now"),
        ).returning(used_nonces.c.nonce)
    )


# Run by Store.use_nonce as a batch (database.execute_each), per dialect.
NONCE_UPSERT = {"sqlite": _nonce_upsert(sqlite_insert), "postgresql": _nonce_upsert(pg_insert)}


async def prune_nonces(tx: Tx) -> int:
    result = await tx.execute(delete(used_nonces).where(used_nonces.c.expires_at < now_ms()))
    return int(result.rowcount or 0)
