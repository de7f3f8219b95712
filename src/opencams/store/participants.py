"""Queries of a group's participants and join requests (functions of a unit of work).

Memberships remember Meta's timestamp of the last event applied to them: an older event that
arrives later is ignored, so a late delivery cannot undo a newer change.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update

from opencams.names import JoinRequestState
from opencams.store.clock import now_ms
from opencams.store.database import Tx, prepared
from opencams.store.tables import chat_groups, join_requests, participants

MEMBER = "member"


async def members(tx: Tx, group_id: str, among: Collection[str] | None = None) -> set[str]:
    query = select(participants.c.wa_id).where(
        participants.c.group_id == group_id, participants.c.state == MEMBER
    )
    if among is not None:
        query = query.where(participants.c.wa_id.in_(list(among)))
    return {r.wa_id for r in (await tx.execute(query)).all()}


async def set_membership(tx: Tx, group_id: str, wa_id: str, state: str, event_ts: int) -> bool:
    """Apply a join (`member`) or a departure (`left`, `removed`) that Meta reported at
    `event_ts`; an event older than the last one applied to this membership is ignored. Returns
    whether anything changed."""
    now = now_ms()
    row = (
        await tx.execute(
            select(participants.c.state, participants.c.last_event_ts).where(
                participants.c.group_id == group_id, participants.c.wa_id == wa_id
            )
        )
    ).first()
    if row is None:
        await tx.execute(
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
    await tx.execute(
        update(participants)
        .where(participants.c.group_id == group_id, participants.c.wa_id == wa_id)
        .values(**values)
    )
    return bool(row.state != state)


async def recount_participants(tx: Tx, group_id: str) -> None:
    count = (
        select(func.count())
        .select_from(participants)
        .where(participants.c.group_id == group_id, participants.c.state == MEMBER)
    )
    await tx.execute(
        update(chat_groups)
        .where(chat_groups.c.id == group_id)
        .values(participant_count=count.scalar_subquery(), updated_at=now_ms())
    )


async def set_join_request(
    tx: Tx, group_id: str, wa_id: str, state: str, event_ts: int, join_request_id: str | None
) -> None:
    row = (
        await tx.execute(
            select(join_requests.c.last_event_ts).where(
                join_requests.c.group_id == group_id, join_requests.c.wa_id == wa_id
            )
        )
    ).first()
    now = now_ms()
    if row is None:
        await tx.execute(
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
        await tx.execute(
            update(join_requests)
            .where(join_requests.c.group_id == group_id, join_requests.c.wa_id == wa_id)
            .values(
                state=state,
                join_request_id=join_request_id or join_requests.c.join_request_id,
                last_event_ts=event_ts,
                updated_at=now,
            )
        )


# ListChatGroupParticipants: a live group of the number, its members' count and one page.
LIVE_GROUP_OF_NUMBER = prepared(
    select(chat_groups.c.id).where(
        chat_groups.c.id == bindparam("group_id"),
        chat_groups.c.number_id == bindparam("number_id"),
        chat_groups.c.deleted_at.is_(None),
    )
)
_MEMBER = and_(participants.c.group_id == bindparam("group_id"), participants.c.state == MEMBER)
MEMBERS_COUNT = prepared(select(func.count()).select_from(participants).where(_MEMBER))
MEMBERS_PAGE = prepared(
    select(participants.c.wa_id)
    .where(_MEMBER)
    .order_by(participants.c.joined_ts, participants.c.join_seq, participants.c.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


async def member_page(
    tx: Tx, number_id: int, group_id: str, offset: int, limit: int
) -> tuple[int, list[str]] | None:
    """A page of a live group's members (in joining order) and their number; None when the
    number has no such live group."""
    key = {"group_id": group_id}
    if not (await tx.execute(LIVE_GROUP_OF_NUMBER, {**key, "number_id": number_id})).all():
        return None
    total = int((await tx.execute(MEMBERS_COUNT, key)).scalar())
    if offset >= total:
        return total, []
    rows = (await tx.execute(MEMBERS_PAGE, {**key, "offset": offset, "limit": limit})).all()
    return total, [row.wa_id for row in rows]


# --- join requests the business acts on (ListChatGroupJoinRequests, Approve…, Reject…) ---------


@dataclass(frozen=True)
class JoinRequestRow:
    join_request_id: str
    wa_id: str  # the user's WhatsApp id, or their business-scoped user id (BSUID)
    created_ts: int  # Meta's timestamp (unix seconds) of the filing
    state: str
    updated_at: int


_PENDING = and_(
    join_requests.c.group_id == bindparam("group_id"),
    join_requests.c.state == JoinRequestState.PENDING,
    join_requests.c.join_request_id.is_not(None),
)
PENDING_COUNT = prepared(select(func.count()).select_from(join_requests).where(_PENDING))
PENDING_PAGE = prepared(
    select(
        join_requests.c.join_request_id,
        join_requests.c.wa_id,
        join_requests.c.last_event_ts,
        join_requests.c.state,
        join_requests.c.updated_at,
    )
    .where(_PENDING)
    .order_by(join_requests.c.last_event_ts, join_requests.c.wa_id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def _join_row(row: Any) -> JoinRequestRow:
    return JoinRequestRow(
        join_request_id=row.join_request_id,
        wa_id=row.wa_id,
        created_ts=row.last_event_ts,
        state=row.state,
        updated_at=row.updated_at,
    )


async def pending_join_request_page(
    tx: Tx, number_id: int, group_id: str, offset: int, limit: int
) -> tuple[int, list[JoinRequestRow]] | None:
    """A page of a live group's pending join requests (oldest first) and their number; None
    when the number has no such live group."""
    key = {"group_id": group_id}
    if not (await tx.execute(LIVE_GROUP_OF_NUMBER, {**key, "number_id": number_id})).all():
        return None
    total = int((await tx.execute(PENDING_COUNT, key)).scalar())
    if offset >= total:
        return total, []
    rows = (await tx.execute(PENDING_PAGE, {**key, "offset": offset, "limit": limit})).all()
    return total, [_join_row(row) for row in rows]


async def join_requests_of(
    tx: Tx, group_id: str, ids: Collection[str] | None = None
) -> list[JoinRequestRow]:
    """A group's join requests that have an id (all, or those among `ids`), in any state."""
    query = select(
        join_requests.c.join_request_id,
        join_requests.c.wa_id,
        join_requests.c.last_event_ts,
        join_requests.c.state,
        join_requests.c.updated_at,
    ).where(join_requests.c.group_id == group_id, join_requests.c.join_request_id.is_not(None))
    if ids is not None:
        query = query.where(join_requests.c.join_request_id.in_(list(ids)))
    return [_join_row(row) for row in (await tx.execute(query)).all()]


async def settle_join_requests(
    tx: Tx, group_id: str, ids: Collection[str], state: JoinRequestState
) -> int:
    """Mark pending requests of the group approved, rejected or gone; a request that is no
    longer pending (its join's webhook came first, the user cancelled) is left as it is.
    Returns how many changed."""
    if not ids:
        return 0
    result = await tx.execute(
        update(join_requests)
        .where(
            join_requests.c.group_id == group_id,
            join_requests.c.join_request_id.in_(list(ids)),
            join_requests.c.state == JoinRequestState.PENDING,
        )
        .values(state=state, updated_at=now_ms())
    )
    return int(result.rowcount or 0)


async def join_request_history(tx: Tx, group_id: str) -> list[dict[str, Any]]:
    """A group's join requests (pending, revoked, joined), oldest change first."""
    rows = (
        await tx.execute(
            select(join_requests.c.wa_id, join_requests.c.state, join_requests.c.updated_at)
            .where(join_requests.c.group_id == group_id)
            .order_by(join_requests.c.updated_at, join_requests.c.wa_id)
        )
    ).all()
    return [dict(row._asdict()) for row in rows]
