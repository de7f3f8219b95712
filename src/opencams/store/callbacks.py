"""Queries of customer callbacks: where each space's and number's events go, the accounts'
signing secrets, the outbox of events and the receivers' delivery state (functions of a unit of
work; docs/callbacks.md).

`emit` is called inside the unit of work that applies an event's effect, so the event row exists
exactly when the effect does. Delivery (`opencams.callbacks.delivery`) takes a receiver's lease,
reads its pending events in commit order (`seq`), posts them and settles them here.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from opencams.store.clock import now_ms
from opencams.store.database import Tx, prepared
from opencams.store.tables import (
    business_numbers,
    callback_events,
    callback_receivers,
    callback_secrets,
    callback_settings,
    spaces,
)

PENDING, DELIVERED, DEAD, UNROUTED = "pending", "delivered", "dead", "unrouted"
STATES = (PENDING, DELIVERED, DEAD, UNROUTED)


@dataclass(frozen=True)
class CallbackSetting:
    space_id: str
    number: str  # "" = the space's own (UpdateAccountWebhook)
    http_flag: bool
    status_callback_url: str | None
    up_callback_url: str | None
    updated_at: int


@dataclass(frozen=True)
class CallbackEvent:
    seq: int
    id: str
    account_id: str
    space_id: str
    business_number: str
    group_id: str | None
    event_type: str
    payload: str
    url: str | None
    state: str
    attempts: int
    last_error: str | None
    created_at: int
    delivered_at: int | None

    def body(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload)
        return value


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def new_event_id() -> str:
    return "evt-" + secrets.token_hex(16)


# --- settings ---------------------------------------------------------------------------------

_SETTING_COLUMNS = (
    callback_settings.c.space_id,
    callback_settings.c.number,
    callback_settings.c.http_flag,
    callback_settings.c.status_callback_url,
    callback_settings.c.up_callback_url,
    callback_settings.c.updated_at,
)


async def settings(tx: Tx, space_id: str | None = None) -> list[CallbackSetting]:
    query = select(*_SETTING_COLUMNS).order_by(
        callback_settings.c.space_id, callback_settings.c.number
    )
    if space_id is not None:
        query = query.where(callback_settings.c.space_id == space_id)
    return [CallbackSetting(**row._asdict()) for row in (await tx.execute(query)).all()]


async def put_setting(
    tx: Tx,
    space_id: str,
    number: str,
    *,
    http_flag: bool | None,
    status_callback_url: str | None,
    up_callback_url: str | None,
) -> CallbackSetting:
    """Create or change a setting; a value given as None keeps what was there."""
    now = now_ms()
    current = (
        await tx.execute(
            select(*_SETTING_COLUMNS).where(
                callback_settings.c.space_id == space_id, callback_settings.c.number == number
            )
        )
    ).first()
    if current is None:
        values: dict[str, Any] = {
            "space_id": space_id,
            "number": number,
            "http_flag": True if http_flag is None else http_flag,
            "status_callback_url": status_callback_url,
            "up_callback_url": up_callback_url,
            "updated_at": now,
        }
        await tx.execute(insert(callback_settings).values(**values))
        return CallbackSetting(**values)
    changes: dict[str, Any] = {"updated_at": now}
    if http_flag is not None:
        changes["http_flag"] = http_flag
    if status_callback_url is not None:
        changes["status_callback_url"] = status_callback_url or None
    if up_callback_url is not None:
        changes["up_callback_url"] = up_callback_url or None
    await tx.execute(
        update(callback_settings)
        .where(callback_settings.c.space_id == space_id, callback_settings.c.number == number)
        .values(**changes)
    )
    return CallbackSetting(**{**current._asdict(), **changes})


ROUTE = prepared(
    select(
        spaces.c.account_id,
        business_numbers.c.space_id,
        business_numbers.c.number,
        callback_settings.c.number.label("scope"),
        callback_settings.c.http_flag,
        callback_settings.c.status_callback_url,
        callback_settings.c.up_callback_url,
    )
    .select_from(business_numbers)
    .join(spaces, spaces.c.id == business_numbers.c.space_id)
    .outerjoin(
        callback_settings,
        and_(
            callback_settings.c.space_id == business_numbers.c.space_id,
            or_(
                callback_settings.c.number == business_numbers.c.number,
                callback_settings.c.number == "",
            ),
        ),
    )
    .where(business_numbers.c.id == bindparam("number_id"))
)


@dataclass(frozen=True)
class Route:
    account_id: str
    space_id: str
    number: str
    url: str | None  # the callback URL in force, None when delivery is off


Channel = Literal["status", "up"]  # StatusCallbackUrl (group events, statuses) | UpCallbackUrl


async def route(tx: Tx, number_id: int, channel: Channel = "status") -> Route | None:
    """Where a number's events go now: its own setting, else its space's (HttpFlag=N: nowhere)."""
    rows = (await tx.execute(ROUTE, {"number_id": number_id})).all()
    if not rows:
        return None
    first = rows[0]
    own = next((row for row in rows if row.scope == first.number), None)
    space = next((row for row in rows if row.scope == ""), None)
    # The number's own setting decides whether delivery is on; a URL it leaves unset is its
    # space's.
    decides = own or space
    column = "status_callback_url" if channel == "status" else "up_callback_url"
    url = None
    if decides is not None and decides.http_flag:
        url = (getattr(own, column) if own else None) or (getattr(space, column) if space else None)
    return Route(first.account_id, first.space_id, first.number, url)


# --- secrets ----------------------------------------------------------------------------------


async def secret_enc(tx: Tx, account_id: str) -> str | None:
    row = (
        await tx.execute(
            select(callback_secrets.c.secret_enc).where(callback_secrets.c.account_id == account_id)
        )
    ).first()
    return row.secret_enc if row else None


async def put_secret(tx: Tx, account_id: str, enc: str, *, replace: bool) -> bool:
    """Store an account's secret; without `replace`, only when it has none. True if written."""
    if await secret_enc(tx, account_id) is not None:
        if not replace:
            return False
        await tx.execute(
            update(callback_secrets)
            .where(callback_secrets.c.account_id == account_id)
            .values(secret_enc=enc, created_at=now_ms())
        )
        return True
    await tx.execute(
        insert(callback_secrets).values(account_id=account_id, secret_enc=enc, created_at=now_ms())
    )
    return True


# --- the outbox -------------------------------------------------------------------------------


async def emit(
    tx: Tx,
    *,
    number_id: int,
    group_id: str | None,
    event_type: str,
    data: dict[str, Any],
    channel: Channel = "status",
) -> str | None:
    """Record one event for the customer, in the caller's unit of work. Returns its id (None when
    the number is unknown). The event carries the CAMS identifiers the customer knows; it goes
    to the number's StatusCallbackUrl, or (`channel="up"`: inbound messages) its UpCallbackUrl."""
    where = await route(tx, number_id, channel)
    if where is None:
        return None
    event_id = new_event_id()
    now = now_ms()
    body = {
        "EventId": event_id,
        "EventType": event_type,
        "Timestamp": now,
        "ChannelType": "whatsapp",
        "CustSpaceId": where.space_id,
        "BusinessNumber": where.number,
        **({"GroupId": group_id} if group_id is not None else {}),
        **{key: value for key, value in data.items() if value is not None},
    }
    await tx.execute(
        insert(callback_events).values(
            id=event_id,
            account_id=where.account_id,
            space_id=where.space_id,
            business_number=where.number,
            group_id=group_id,
            event_type=event_type,
            payload=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
            url=where.url,
            url_hash=url_hash(where.url) if where.url else None,
            state=PENDING if where.url else UNROUTED,
            attempts=0,
            created_at=now,
        )
    )
    return event_id


_EVENT_COLUMNS = (
    callback_events.c.seq,
    callback_events.c.id,
    callback_events.c.account_id,
    callback_events.c.space_id,
    callback_events.c.business_number,
    callback_events.c.group_id,
    callback_events.c.event_type,
    callback_events.c.payload,
    callback_events.c.url,
    callback_events.c.state,
    callback_events.c.attempts,
    callback_events.c.last_error,
    callback_events.c.created_at,
    callback_events.c.delivered_at,
)


def _event(row: Any) -> CallbackEvent:
    return CallbackEvent(**row._asdict())


async def events(
    tx: Tx,
    *,
    account_id: str | None = None,
    group_id: str | None = None,
    state: str | None = None,
    event_type: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[CallbackEvent]:
    """Events in commit order, filtered."""
    query = select(*_EVENT_COLUMNS).where(callback_events.c.seq > after_seq)
    if account_id is not None:
        query = query.where(callback_events.c.account_id == account_id)
    if group_id is not None:
        query = query.where(callback_events.c.group_id == group_id)
    if state is not None:
        query = query.where(callback_events.c.state == state)
    if event_type is not None:
        query = query.where(callback_events.c.event_type == event_type)
    if since_ms is not None:
        query = query.where(callback_events.c.created_at >= since_ms)
    if until_ms is not None:
        query = query.where(callback_events.c.created_at < until_ms)
    rows = (await tx.execute(query.order_by(callback_events.c.seq).limit(limit))).all()
    return [_event(row) for row in rows]


async def event(tx: Tx, event_id: str) -> CallbackEvent | None:
    row = (
        await tx.execute(select(*_EVENT_COLUMNS).where(callback_events.c.id == event_id))
    ).first()
    return _event(row) if row else None


async def counts(tx: Tx) -> dict[str, int]:
    rows = (
        await tx.execute(
            select(callback_events.c.state, func.count()).group_by(callback_events.c.state)
        )
    ).all()
    return {row[0]: int(row[1]) for row in rows}


DUE = prepared(
    select(callback_events.c.url_hash, func.min(callback_events.c.url).label("url"))
    .select_from(callback_events)
    .outerjoin(callback_receivers, callback_receivers.c.url_hash == callback_events.c.url_hash)
    .where(
        callback_events.c.state == PENDING,
        or_(
            callback_receivers.c.url_hash.is_(None),
            and_(
                callback_receivers.c.retry_at <= bindparam("now"),
                callback_receivers.c.leased_until <= bindparam("now"),
            ),
        ),
    )
    .group_by(callback_events.c.url_hash)
    .limit(bindparam("limit"))
)


async def due_receivers(tx: Tx, now: int, limit: int) -> list[tuple[str, str]]:
    """Receivers with pending events that nobody holds and whose backoff has passed."""
    rows = (await tx.execute(DUE, {"now": now, "limit": limit})).all()
    return [(row.url_hash, row.url) for row in rows]


def _receiver_insert(insert_: Any) -> Any:
    return (
        insert_(callback_receivers)
        .values(
            url_hash=bindparam("url_hash"),
            url=bindparam("url"),
            leased_by=None,
            leased_until=0,
            retry_at=0,
            failures=0,
            updated_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["url_hash"])
    )


RECEIVER_INSERT = {
    "sqlite": _receiver_insert(sqlite_insert),
    "postgresql": _receiver_insert(pg_insert),
}


@dataclass(frozen=True)
class Receiver:
    url_hash: str
    url: str
    failures: int
    retry_at: int


async def take_lease(
    tx: Tx, dialect: str, url_hash_: str, url: str, holder: str, now: int, lease_ms: int
) -> Receiver | None:
    """Hold a receiver for `lease_ms` (or renew a lease this holder has); None when another
    holder has it or its backoff has not passed."""
    await tx.execute(RECEIVER_INSERT[dialect], {"url_hash": url_hash_, "url": url, "now": now})
    taken = await tx.execute(
        update(callback_receivers)
        .where(
            callback_receivers.c.url_hash == url_hash_,
            or_(
                callback_receivers.c.leased_by == holder,
                callback_receivers.c.leased_until <= now,
            ),
            callback_receivers.c.retry_at <= now,
        )
        .values(leased_by=holder, leased_until=now + lease_ms, updated_at=now)
    )
    if not taken.rowcount:
        return None
    row = (
        await tx.execute(
            select(
                callback_receivers.c.url_hash,
                callback_receivers.c.url,
                callback_receivers.c.failures,
                callback_receivers.c.retry_at,
            ).where(callback_receivers.c.url_hash == url_hash_)
        )
    ).first()
    return Receiver(**row._asdict())


async def release(
    tx: Tx,
    url_hash_: str,
    holder: str,
    *,
    failures: int,
    retry_at: int,
    error: str | None,
) -> None:
    await tx.execute(
        update(callback_receivers)
        .where(callback_receivers.c.url_hash == url_hash_, callback_receivers.c.leased_by == holder)
        .values(
            leased_by=None,
            leased_until=0,
            failures=failures,
            retry_at=retry_at,
            last_error=error,
            updated_at=now_ms(),
        )
    )


async def receivers(tx: Tx) -> list[dict[str, Any]]:
    rows = (await tx.execute(select(callback_receivers).order_by(callback_receivers.c.url))).all()
    return [row._asdict() for row in rows]


PENDING_BATCH = prepared(
    select(*_EVENT_COLUMNS)
    .where(
        callback_events.c.state == PENDING,
        callback_events.c.url_hash == bindparam("url_hash"),
    )
    .order_by(callback_events.c.seq)
    .limit(bindparam("limit"))
)


async def pending_batch(tx: Tx, url_hash_: str, limit: int) -> list[CallbackEvent]:
    rows = (await tx.execute(PENDING_BATCH, {"url_hash": url_hash_, "limit": limit})).all()
    return [_event(row) for row in rows]


async def settle(
    tx: Tx, seqs: list[int], state: str, *, error: str | None = None, attempted: bool = True
) -> int:
    """pending -> delivered | dead, or (state pending) one more failed attempt."""
    if not seqs:
        return 0
    values: dict[str, Any] = {"state": state, "last_error": error}
    if attempted:
        values["attempts"] = callback_events.c.attempts + 1
    if state == DELIVERED:
        values["delivered_at"] = now_ms()
    result = await tx.execute(
        update(callback_events)
        .where(callback_events.c.seq.in_(seqs), callback_events.c.state == PENDING)
        .values(**values)
    )
    return int(result.rowcount or 0)


async def requeue(
    tx: Tx, *, event_ids: list[str] | None = None, dead: bool = False, url: str | None = None
) -> int:
    """Dead (or unrouted, given a URL) events back to pending, keeping their commit order."""
    query = update(callback_events)
    if event_ids is not None:
        query = query.where(callback_events.c.id.in_(event_ids))
    states = [DEAD] if url is None else [DEAD, UNROUTED]
    if dead or event_ids is not None:
        query = query.where(callback_events.c.state.in_(states))
    values: dict[str, Any] = {"state": PENDING, "last_error": None}
    if url is not None:
        values.update(url=url, url_hash=url_hash(url))
    result = await tx.execute(query.values(**values))
    return int(result.rowcount or 0)


async def reset_backoff(tx: Tx) -> None:
    """Every receiver may be tried at once (after an operator's retry)."""
    await tx.execute(update(callback_receivers).values(retry_at=0, failures=0))


async def backlog(tx: Tx) -> int:
    return int(
        (
            await tx.execute(
                select(func.count())
                .select_from(callback_events)
                .where(callback_events.c.state == PENDING)
            )
        ).scalar_one()
    )


async def prune(tx: Tx, before_ms: int) -> int:
    """Delivered events older than the retention time go; dead and unrouted ones stay."""
    result = await tx.execute(
        delete(callback_events).where(
            callback_events.c.state == DELIVERED, callback_events.c.created_at < before_ms
        )
    )
    return int(result.rowcount or 0)
