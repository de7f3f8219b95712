"""All queries, behind one `Store` object.

Portable SQL: the same code runs on SQLite and PostgreSQL.

Database failures that mean "the database is not there" are raised as `StoreUnavailable`; the
RPC layer turns them into ServiceUnavailable (503). Nothing else from the drivers leaves here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opencams.errors import StoreRejected, StoreUnavailable
from opencams.names import GroupStatus
from opencams.store import listing
from opencams.store.batch import GroupCommit
from opencams.store.db import (
    DEFAULT_SYNCHRONOUS,
    Synchronous,
    make_async_engine,
    postgresql_connect_args,
    sqlite_in_memory,
    sqlite_setup,
    sqlite_target,
)
from opencams.store.direct import Direct, DirectPostgres, DirectSQLite, Execute
from opencams.store.records import (
    AccessKeyRecord,
    GroupFilter,
    GroupRecord,
    NumberRecord,
)
from opencams.store.tables import (
    access_keys,
    accounts,
    business_numbers,
    chat_group_counts,
    chat_groups,
    config_entries,
    operations,
    spaces,
    used_nonces,
    webhook_events,
)

T = TypeVar("T")
log = logging.getLogger("opencams.store")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# GroupRecord's columns, in its order: the list's, with the number's own after number_id.
GROUP_COLUMNS = (
    *listing.LIST_COLUMNS[:2],
    business_numbers.c.number.label("business_number"),
    *listing.LIST_COLUMNS[2:],
)


OPERATION_COLUMNS = (
    operations.c.id,
    operations.c.kind,
    operations.c.group_id,
    operations.c.meta_request_id,
    operations.c.state,
    operations.c.payload,
    operations.c.created_at,
)


def _numbers() -> Any:
    """Business numbers with the account that owns their space."""
    return select(
        business_numbers.c.id,
        business_numbers.c.space_id,
        spaces.c.account_id,
        business_numbers.c.number,
        business_numbers.c.phone_number_id,
        business_numbers.c.waba_id,
        business_numbers.c.access_token_enc,
    ).join(spaces, spaces.c.id == business_numbers.c.space_id)


def group_record(row: Any) -> GroupRecord:
    return GroupRecord(**row._asdict())


ACCESS_KEY_QUERY = (
    select(
        access_keys.c.id,
        access_keys.c.account_id,
        access_keys.c.secret_enc,
        access_keys.c.status,
        access_keys.c.user_name,
        accounts.c.chat_groups_allowlisted,
    )
    .join(accounts, accounts.c.id == access_keys.c.account_id)
    .where(access_keys.c.id == bindparam("key_id"))
)


INTERLEAVED = "a SQLite transaction stayed open while the event loop ran other work"


@contextmanager
def _no_turns_while_open() -> Iterator[None]:
    """SQLite runs on the loop's thread (inline_sqlite): a transaction must not await anything
    but its own statements, or another transaction could wait for its lock with the loop
    blocked. A callback queued at the start runs at the loop's next turn: if the transaction is
    still open then, something awaited inside it. Logged as an error (the test suites fail on
    it); the transaction itself goes on."""
    state = [True]

    def check() -> None:
        if state[0]:
            log.error(INTERLEAVED)

    asyncio.get_running_loop().call_soon(check)
    try:
        yield
    finally:
        state[0] = False


def direct_for(
    engine: AsyncEngine, synchronous: Synchronous = DEFAULT_SYNCHRONOUS
) -> Direct | None:
    """The store's own connections for its hot statements (store.direct): SQLite file databases
    and PostgreSQL; None for an in-memory SQLite database (its connections are each their own)."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.url.get_backend_name() == "postgresql":
        return DirectPostgres(postgresql_connect_args(url))
    target, options = sqlite_target(url)
    if sqlite_in_memory(target):
        return None
    return DirectSQLite(target, setup=sqlite_setup(synchronous), **options)


LIVE_GROUPS_QUERY = select(func.coalesce(func.sum(chat_group_counts.c.listed), 0)).where(
    chat_group_counts.c.number_id == bindparam("number_id"),
    chat_group_counts.c.status != GroupStatus.INACTIVE,
)


PARKED_EVENTS_QUERY = (
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


def _nonce_upsert(dialect: str) -> Any:
    """Insert a nonce, or take over an expired record of it; returns a row only if it did."""
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(used_nonces).values(
        access_key_id=bindparam("key_id"), nonce=bindparam("nonce"), expires_at=bindparam("expires")
    )
    return statement.on_conflict_do_update(
        index_elements=[used_nonces.c.access_key_id, used_nonces.c.nonce],
        set_={"expires_at": statement.excluded.expires_at},
        where=used_nonces.c.expires_at < bindparam("now"),
    ).returning(used_nonces.c.nonce)


class Store:
    @classmethod
    def open(
        cls,
        url: str,
        *,
        synchronous: Synchronous = DEFAULT_SYNCHRONOUS,
        tenancy_cache_seconds: float = 0.0,
    ) -> Store:
        """The store of a database URL; `synchronous`: SQLite's durability (db.sqlite_setup)."""
        return cls(
            make_async_engine(url, synchronous=synchronous),
            tenancy_cache_seconds=tenancy_cache_seconds,
            synchronous=synchronous,
        )

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        tenancy_cache_seconds: float = 0.0,
        synchronous: Synchronous = DEFAULT_SYNCHRONOUS,
    ) -> None:
        self.engine = engine
        # Space -> number lookups change only through `opencams apply` (which never deletes);
        # a few seconds of caching saves a database round trip on every request.
        self._tenancy_ttl = tenancy_cache_seconds
        self._tenancy: dict[tuple[str, str, str], tuple[float, NumberRecord]] = {}
        self._nonce_upsert = _nonce_upsert(engine.dialect.name)
        self._direct = direct_for(engine, synchronous)
        self._inline = isinstance(self._direct, DirectSQLite)
        self._lists = listing.ListMemory()
        self._nonces: GroupCommit[dict[str, Any], bool] = GroupCommit(self._write_nonces)

    async def dispose(self) -> None:
        try:
            await self._nonces.drain()
            if self._direct is not None:
                await self._direct.close()
        finally:
            await self.engine.dispose()

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; driver failures that mean 'no database' become StoreUnavailable."""
        try:
            async with self.engine.begin() as conn:
                if not self._inline:
                    yield conn
                else:
                    with _no_turns_while_open():
                        yield conn
        except (OperationalError, InterfaceError) as exc:
            # Connection refused or lost, server shutting down, SQLite locked past its timeout.
            raise StoreUnavailable(str(exc.orig or exc)) from exc
        except DataError as exc:
            raise StoreRejected(str(exc.orig or exc)) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(str(exc.orig or exc)) from exc
            raise
        except OSError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def read(self, work: Callable[[Execute], Awaitable[T]]) -> T:
        """`await work(execute)` in one read-only transaction (one snapshot); `execute(statement,
        params)` returns all rows. The hot reads use this: on the store's direct connections,
        or (an in-memory SQLite database) in one SQLAlchemy transaction, which the work, never
        giving the loop a turn, sees as one snapshot."""
        if self._direct is not None:
            return await self._direct.read(work)
        async with self.tx() as conn:

            async def execute(statement: Any, params: Mapping[str, Any]) -> Sequence[Any]:
                return (await conn.execute(statement, params)).all()

            return await work(execute)

    async def rows(self, statement: Any, params: dict[str, Any]) -> Sequence[Any]:
        """One statement in a transaction of its own; all its rows."""
        if self._direct is not None:
            return await self._direct.execute(statement, params)
        async with self.tx() as conn:
            return (await conn.execute(statement, params)).all()

    # --- access -----------------------------------------------------------------------------

    async def access_key(self, key_id: str) -> AccessKeyRecord | None:
        rows = await self.rows(ACCESS_KEY_QUERY, {"key_id": key_id})
        return AccessKeyRecord(*rows[0]) if rows else None

    async def account_allowlisted(self, account_id: str) -> bool | None:
        """The account's allowlisting, or None when there is no such account."""
        async with self.tx() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.chat_groups_allowlisted).where(accounts.c.id == account_id)
                )
            ).first()
        return None if row is None else bool(row.chat_groups_allowlisted)

    async def use_nonce(self, key_id: str, nonce: str, ttl_ms: int) -> bool:
        """Record a nonce; False when it was already used within its lifetime.

        One statement: insert, or take over an expired record of the same nonce; an unexpired
        one is left alone and nothing is returned (rowcount is not reliable here: psycopg
        reports -1 for an upsert). Written with the other nonces of the same turn of the event
        loop, in one transaction (store.batch)."""
        now = now_ms()
        return await self._nonces(
            {"key_id": key_id, "nonce": nonce, "now": now, "expires": now + ttl_ms}
        )

    async def _write_nonces(self, each: Sequence[dict[str, Any]]) -> list[bool]:
        """The nonces of one turn of the loop (batch.GroupCommit), in one transaction; a nonce
        given twice in it is fresh only the first time."""
        if self._direct is not None:
            found = await self._direct.execute_each(self._nonce_upsert, each)
            return [bool(rows) for rows in found]
        async with self.tx() as conn:
            return [bool((await conn.execute(self._nonce_upsert, p)).all()) for p in each]

    async def prune_nonces(self) -> int:
        async with self.tx() as conn:
            result = await conn.execute(
                delete(used_nonces).where(used_nonces.c.expires_at < now_ms())
            )
        return int(result.rowcount or 0)

    # --- tenancy ----------------------------------------------------------------------------

    async def number_in_space(
        self, account_id: str, space_id: str, number: str
    ) -> NumberRecord | None:
        key = (account_id, space_id, number)
        cached = self._tenancy.get(key)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        record = await self._number_in_space(account_id, space_id, number)
        if record is not None and self._tenancy_ttl > 0:
            if len(self._tenancy) > 10_000:
                self._tenancy.clear()
            self._tenancy[key] = (time.monotonic() + self._tenancy_ttl, record)
        return record

    async def _number_in_space(
        self, account_id: str, space_id: str, number: str
    ) -> NumberRecord | None:
        query = _numbers().where(
            spaces.c.account_id == account_id,
            spaces.c.id == space_id,
            business_numbers.c.number == number,
        )
        async with self.tx() as conn:
            row = (await conn.execute(query)).first()
        return NumberRecord(**row._asdict()) if row else None

    async def numbers(
        self, *, space_id: str | None = None, number: str | None = None
    ) -> list[NumberRecord]:
        query = _numbers().order_by(business_numbers.c.id)
        if space_id is not None:
            query = query.where(business_numbers.c.space_id == space_id)
        if number is not None:
            query = query.where(business_numbers.c.number == number)
        async with self.tx() as conn:
            rows = (await conn.execute(query)).all()
        return [NumberRecord(**r._asdict()) for r in rows]

    async def config_value(self, key: str) -> tuple[str, bool] | None:
        async with self.tx() as conn:
            row = (
                await conn.execute(
                    select(config_entries.c.value, config_entries.c.secret).where(
                        config_entries.c.key == key
                    )
                )
            ).first()
        return (row.value, row.secret) if row else None

    # --- groups -----------------------------------------------------------------------------

    async def count_live_groups(self, number_id: int) -> int:
        """Groups of the number that count against Meta's per-number limit: not deleted, not
        INACTIVE (from the trigger-kept counts)."""
        rows = await self.rows(LIVE_GROUPS_QUERY, {"number_id": number_id})
        return int(rows[0][0])

    async def insert_group_with_operation(
        self, group: dict[str, Any], operation: dict[str, Any]
    ) -> None:
        async with self.tx() as conn:
            await conn.execute(insert(chat_groups).values(**group))
            await conn.execute(insert(operations).values(**operation))

    async def list_groups(
        self, flt: GroupFilter, offset: int, limit: int
    ) -> tuple[int, list[GroupRecord]]:
        """One page of a number's live groups, newest first, and how many there are in all
        (store.listing: counted Totals, remembered filtered Totals and page anchors)."""
        total, rows, lesson = await self.read(
            lambda execute: listing.read_page(execute, self._lists, flt, offset, limit)
        )
        if lesson:  # read in one snapshot with the version it names
            self._lists.keep(lesson)
        number = flt.business_number
        return total, [GroupRecord(row[0], row[1], number, *row[2:]) for row in rows]

    async def group_members(
        self, number_id: int, group_id: str, offset: int, limit: int
    ) -> tuple[int, list[str]] | None:
        """A page of a live group's members (in joining order) and their number; None when the
        number has no such live group."""
        return await self.read(
            lambda execute: listing.read_members(execute, number_id, group_id, offset, limit)
        )

    async def group(self, group_id: str) -> GroupRecord | None:
        query = (
            select(*GROUP_COLUMNS)
            .join(business_numbers, business_numbers.c.id == chat_groups.c.number_id)
            .where(chat_groups.c.id == group_id)
        )
        async with self.tx() as conn:
            row = (await conn.execute(query)).first()
        return group_record(row) if row else None

    # --- operations and webhook events ------------------------------------------------------

    async def record_event(self, conn: AsyncConnection, event: dict[str, Any]) -> bool:
        """Insert a webhook event; False when the same event was seen before (a redelivery)."""
        exists = (
            await conn.execute(
                select(webhook_events.c.id).where(webhook_events.c.id == event["id"])
            )
        ).first()
        if exists:
            return False
        await conn.execute(insert(webhook_events).values(**event))
        return True

    async def parked_events(
        self, *, request_id: str | None = None, meta_group_id: str | None = None
    ) -> list[tuple[str, str]]:
        """Parked events naming this request or this Meta group, oldest first."""
        if request_id is None and meta_group_id is None:
            return []
        # A None compares equal to nothing: only the given one matches.
        rows = await self.rows(
            PARKED_EVENTS_QUERY, {"request_id": request_id, "meta_group_id": meta_group_id}
        )
        return [(row[0], row[1]) for row in rows]

    async def event_exists(self, event_id: str) -> bool:
        async with self.tx() as conn:
            row = (
                await conn.execute(
                    select(webhook_events.c.id).where(webhook_events.c.id == event_id)
                )
            ).first()
        return row is not None

    async def claim_parked_event(self, conn: AsyncConnection, event_id: str) -> bool:
        """Flip a parked event to applied; only one caller can win."""
        result = await conn.execute(
            update(webhook_events)
            .where(webhook_events.c.id == event_id, webhook_events.c.state == "parked")
            .values(state="applied", applied_at=now_ms())
        )
        return bool(result.rowcount)

    async def set_event_state(self, conn: AsyncConnection, event_id: str, state: str) -> None:
        await conn.execute(
            update(webhook_events)
            .where(webhook_events.c.id == event_id)
            .values(state=state, applied_at=now_ms() if state == "applied" else None)
        )
