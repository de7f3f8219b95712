"""The hottest statements, run straight on the database driver.

Every signed request looks up its AccessKey and records its nonce, and ListChatGroup reads a
version, a count and a page. Through SQLAlchemy's asyncio layer each such transaction costs
0.3 ms (SQLite) to several milliseconds (PostgreSQL: pool pre-ping, BEGIN and COMMIT round trips,
greenlet switches) of a small machine's CPU, around statements the database answers in
microseconds. Here the same statements — built with SQLAlchemy Core and compiled once by its
dialect — run on connections of the store's own:

- SQLite: one `sqlite3` connection, on the event loop's thread (see inline_sqlite for why that is
  safe: nothing awaits between a statement and its commit, so two uses never interleave).
- PostgreSQL: a psycopg_pool pool of autocommit connections: a lone statement is one round trip;
  a unit of work is one transaction (REPEATABLE READ, read only: one snapshot). A read on a
  connection that turns out dead (killed while idle, the database restarted) is tried once more
  after the pool has checked its idle connections: no pre-ping per use.

Errors are mapped as Store.tx maps them: an unreachable, locked or restarting database is
StoreUnavailable, a value the database refuses is StoreRejected.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol, TypeVar

import psycopg
import psycopg_pool
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from opencams.errors import StoreRejected, StoreUnavailable

T = TypeVar("T")
Execute = Callable[[ClauseElement, Mapping[str, Any]], Awaitable[Sequence[Any]]]

log = logging.getLogger("opencams.store")


class Direct(Protocol):
    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        """One statement, a transaction of its own; all its rows."""

    async def read(self, work: Callable[[Execute], Awaitable[T]]) -> T:
        """`work(execute)` in one read-only transaction (one snapshot)."""

    async def execute_each(
        self, statement: ClauseElement, each: Sequence[Mapping[str, Any]]
    ) -> list[list[Any]]:
        """The statement once per parameter set, all in one transaction; the rows of each."""

    async def close(self) -> None: ...


class _Compiled:
    """Statements compiled once per object (kept, so that its id stays its own)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._cache: dict[int, tuple[ClauseElement, str, tuple[str, ...], dict[str, Any]]] = {}

    def get(self, statement: ClauseElement) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        entry = self._cache.get(id(statement))
        if entry is None:
            compiled = statement.compile(dialect=self._dialect)
            # positiontup: the bind names in order (qmark); the params: the statement's own
            # literals, for names the caller does not pass.
            order = tuple(getattr(compiled, "positiontup", None) or ())
            entry = (statement, compiled.string, order, compiled.params)
            self._cache[id(statement)] = entry
        return entry[1], entry[2], entry[3]


class DirectSQLite:
    def __init__(self, target: str, *, timeout: float, uri: bool, setup: Callable[[Any], None]):
        self._database = target
        self._timeout = timeout
        self._uri = uri
        self._setup = setup
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._compiled = _Compiled(sqlite_dialect.dialect())

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            if self._closed:
                raise sqlite3.InterfaceError("the store is closed")
            connection = sqlite3.connect(
                self._database,
                timeout=self._timeout,
                uri=self._uri,
                isolation_level=None,  # transactions are explicit below
                check_same_thread=False,
            )
            self._setup(connection)
            self._connection = connection
        return self._connection

    async def _execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        # Never suspends: a unit of work runs from BEGIN to COMMIT without the loop's turn.
        sql, names, literals = self._compiled.get(statement)
        values = tuple(params[name] if name in params else literals[name] for name in names)
        return self._conn().execute(sql, values).fetchall()

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        with self._failures():
            return await self._execute(statement, params)

    async def read(self, work: Callable[[Execute], Awaitable[T]]) -> T:
        return await self._transaction(work)

    async def execute_each(
        self, statement: ClauseElement, each: Sequence[Mapping[str, Any]]
    ) -> list[list[Any]]:
        async def work(execute: Execute) -> list[list[Any]]:
            return [list(await execute(statement, params)) for params in each]

        return await self._transaction(work)

    async def _transaction(self, work: Callable[[Execute], Awaitable[T]]) -> T:
        """BEGIN (deferred: SQLite takes the write lock at the first write) … COMMIT."""
        with self._failures():
            connection = self._conn()
            if connection.in_transaction:
                # Only if a unit of work awaited something real, or read inside a read.
                raise RuntimeError("DirectSQLite.read entered while a transaction is open")
            connection.execute("BEGIN")
            try:
                result = await work(self._execute)
            except BaseException:
                with suppress(sqlite3.Error):  # the original failure is the one to report
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

    @contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.OperationalError, sqlite3.InterfaceError) as exc:
            self._reset()
            raise StoreUnavailable(str(exc)) from exc
        except sqlite3.DataError as exc:
            raise StoreRejected(str(exc)) from exc

    def _reset(self) -> None:
        """After a failure the connection may be mid-transaction: start afresh next time."""
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    async def close(self) -> None:
        self._closed = True
        self._reset()


class DirectPostgres:
    def __init__(
        self, connect_args: Mapping[str, Any], *, max_size: int = 10, timeout: float = 3.0
    ) -> None:
        # `timeout`: how long a request waits for a connection (the database being down, the
        # pool exhausted) before it is answered ServiceUnavailable.
        self._pool = psycopg_pool.AsyncConnectionPool(
            "",
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs={
                "connect_timeout": max(1, int(timeout)),
                **connect_args,
                "autocommit": True,
                # No server-side prepared statements: safe behind transaction-pooling proxies.
                "prepare_threshold": None,
            },
            open=False,
            name="opencams-direct",
        )
        self._opened = False
        self._checking: asyncio.Task[None] | None = None
        self._compiled = _Compiled(postgresql_dialect.psycopg.dialect())  # type: ignore[no-untyped-call]

    def _sql(self, statement: ClauseElement, params: Mapping[str, Any]) -> tuple[str, Any]:
        sql, _, literals = self._compiled.get(statement)
        return sql, {**literals, **params}

    async def _connection(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        if not self._opened:
            self._opened = True
            await self._pool.open(wait=False)
        return self._pool

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        """For reads only: a connection that turns out dead (killed while idle, the database
        restarted) is dropped and the statement tried once more on another."""
        sql, values = self._sql(statement, params)

        async def once() -> list[Any]:
            pool = await self._connection()
            async with pool.connection() as conn:
                cursor = await conn.execute(sql, values)
                return await cursor.fetchall() if cursor.description else []

        with self._failures():
            return await self._retried(once)

    async def read(self, work: Callable[[Execute], Awaitable[T]]) -> T:
        async def once() -> T:
            pool = await self._connection()
            async with pool.connection() as conn:

                async def execute(statement: ClauseElement, params: Mapping[str, Any]) -> Any:
                    sql, values = self._sql(statement, params)
                    cursor = await conn.execute(sql, values)
                    return await cursor.fetchall() if cursor.description else []

                await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                try:
                    result = await work(execute)
                except BaseException:
                    with suppress(psycopg.Error):  # the original failure is the one to report
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
                return result

        with self._failures():
            return await self._retried(once)

    async def _retried(self, once: Callable[[], Awaitable[T]]) -> T:
        try:
            return await once()
        except psycopg.OperationalError as exc:
            if isinstance(
                exc,
                psycopg_pool.PoolTimeout
                | psycopg_pool.PoolClosed
                | psycopg.errors.DeadlockDetected
                | psycopg.errors.QueryCanceled,
            ):
                raise  # no connection to be had, or not the connection's fault
            # The idle connections may be as dead as this one: checked (and dropped) first.
            await self._check()
            return await once()

    async def execute_each(
        self, statement: ClauseElement, each: Sequence[Mapping[str, Any]]
    ) -> list[list[Any]]:
        """Pipelined: the whole transaction is one round trip."""
        with self._failures():
            pool = await self._connection()
            async with pool.connection() as conn, conn.pipeline(), conn.transaction():
                cursors = []
                for params in each:
                    sql, values = self._sql(statement, params)
                    cursor = conn.cursor()
                    await cursor.execute(sql, values)
                    cursors.append(cursor)
                return [list(await cursor.fetchall()) for cursor in cursors]

    @contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            raise StoreUnavailable(str(exc)) from exc  # a conflict: worth trying again
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            self._check_soon()
            raise StoreUnavailable(str(exc)) from exc
        except psycopg.DataError as exc:
            raise StoreRejected(str(exc)) from exc

    def _check_soon(self) -> None:
        """A connection failed (the pool drops it): test the idle ones too, once, in the
        background, so that a restarted database costs one failed request, not one per
        pooled connection."""
        if self._pool.closed:
            return
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        try:
            await self._pool.check()
        except Exception as exc:  # the database may still be down; the next failure retries
            log.debug("pool check failed: %s", exc)

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with suppress(asyncio.CancelledError):
                await self._checking
        if self._opened:
            await self._pool.close()
