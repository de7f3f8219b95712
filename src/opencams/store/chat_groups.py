"""Queries of the chat groups: functions of a unit of work (`tx`), as every store query is.

Status changes are conditional updates (`… WHERE status IN (…)`): two concurrent writers cannot
both win. The store keeps the derived column `subject_search` (the casefolded subject the Subject
filter searches) and `updated_at`.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import Enum
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update

from opencams.names import GroupStatus
from opencams.store.clock import now_ms
from opencams.store.database import Tx, prepared
from opencams.store.listing import LIST_COLUMNS
from opencams.store.records import GroupRecord
from opencams.store.tables import business_numbers, chat_group_counts, chat_groups

# GroupRecord's columns: the list's, with the number's own after number_id.
GROUP_COLUMNS = (
    *LIST_COLUMNS[:2],
    business_numbers.c.number.label("business_number"),
    *LIST_COLUMNS[2:],
)


def group_record(row: Any) -> GroupRecord:
    return GroupRecord(**row._asdict())


def _groups() -> Any:
    return select(*GROUP_COLUMNS).join(
        business_numbers, business_numbers.c.id == chat_groups.c.number_id
    )


def _derived(values: dict[str, Any]) -> dict[str, Any]:
    """The columns the store derives from what is written; enums as their values."""
    values = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
    if "subject" in values:
        values["subject_search"] = str(values["subject"]).casefold()
    return values


LIVE_GROUPS = prepared(
    select(func.coalesce(func.sum(chat_group_counts.c.listed), 0)).where(
        chat_group_counts.c.number_id == bindparam("number_id"),
        chat_group_counts.c.status != GroupStatus.INACTIVE.value,
    )
)


async def count_live(tx: Tx, number_id: int) -> int:
    """Groups of the number that count against Meta's per-number limit: not deleted, not
    INACTIVE (from the trigger-kept counts)."""
    return int((await tx.execute(LIVE_GROUPS, {"number_id": number_id})).scalar())


async def group_of_number(tx: Tx, group_id: str, number_id: int) -> GroupRecord | None:
    """A live (not deleted) group of a number; None for another number's or a deleted group."""
    row = (
        await tx.execute(
            _groups().where(
                chat_groups.c.id == group_id,
                chat_groups.c.number_id == number_id,
                chat_groups.c.deleted_at.is_(None),
            )
        )
    ).first()
    return group_record(row) if row else None


async def group_by_id(tx: Tx, group_id: str) -> GroupRecord | None:
    row = (await tx.execute(_groups().where(chat_groups.c.id == group_id))).first()
    return group_record(row) if row else None


async def group_by_meta_id(tx: Tx, meta_group_id: str) -> GroupRecord | None:
    row = (await tx.execute(_groups().where(chat_groups.c.meta_group_id == meta_group_id))).first()
    return group_record(row) if row else None


async def live_groups_of_number(tx: Tx, number_id: int) -> list[GroupRecord]:
    rows = (
        await tx.execute(
            _groups().where(
                chat_groups.c.number_id == number_id, chat_groups.c.deleted_at.is_(None)
            )
        )
    ).all()
    return [group_record(r) for r in rows]


async def insert_group(tx: Tx, **values: Any) -> None:
    now = now_ms()
    values.setdefault("created_at", now)
    values.setdefault("updated_at", now)
    await tx.execute(insert(chat_groups).values(**_derived(values)))


async def set_group(
    tx: Tx,
    group_id: str,
    *,
    when_status: Collection[str] | None = None,
    **values: Any,
) -> bool:
    """Update a live group, only while its status is one of `when_status` (when given)."""
    conditions = [chat_groups.c.id == group_id, chat_groups.c.deleted_at.is_(None)]
    if when_status is not None:
        conditions.append(chat_groups.c.status.in_([str(s) for s in when_status]))
    result = await tx.execute(
        update(chat_groups).where(and_(*conditions)).values(updated_at=now_ms(), **_derived(values))
    )
    return bool(result.rowcount)


async def retire_group(tx: Tx, group_id: str) -> None:
    """Delete a row and release its Meta id (unique) for the row that truly owns it."""
    await tx.execute(
        update(chat_groups)
        .where(chat_groups.c.id == group_id)
        .values(deleted_at=now_ms(), meta_group_id=None, updated_at=now_ms())
    )
