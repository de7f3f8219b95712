"""SQLite for the async engine, run on the event loop's own thread.

SQLAlchemy's asyncio support talks to SQLite through aiosqlite, which runs every call (cursor,
execute, fetch, commit) on a helper thread and hands the result back through the event loop:
each hand-off costs about 100 µs of CPU, while the statements themselves take 2–100 µs. This
module offers the same asynchronous interface over the standard `sqlite3` module with no helper
thread: each call runs at once and returns a completed awaitable. SQLAlchemy uses it through
`create_async_engine(..., async_creator=...)`; errors are `sqlite3`'s own, as with aiosqlite.

Why blocking the loop is safe here: a transaction's statements run one after the other without
giving the loop a turn (their awaits complete at once), so two transactions of this process never
interleave and never wait for each other's locks (Store.tx logs an error if one ever does). Only
another process can hold SQLite's write lock: a second worker holds it for one short
transaction; a bulk tool (`opencams dev seed`, a large `opencams apply`) for as long as it runs,
and meanwhile a writing request waits, loop and all, up to the busy timeout — run those while
the server is idle (docs/configuration.md). Readers never wait (WAL).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class InlineCursor:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _RunNow:
    """What SQLAlchemy's adapter expects as aiosqlite's job queue (it sets the isolation level
    through it): each job runs immediately and completes its future."""

    __slots__ = ()

    def put_nowait(self, job: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = job
        try:
            result = function()
        except BaseException as exc:
            if future is None:
                raise
            future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


class InlineConnection:
    """The subset of `aiosqlite.Connection` that SQLAlchemy's aiosqlite dialect uses."""

    _tx = _RunNow()

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        return InlineCursor(self._conn.execute(sql, parameters))

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def connector(target: str, *, timeout: float, uri: bool = False) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: a new inline connection per call."""

    async def connect() -> InlineConnection:
        # check_same_thread off: the pool may close a connection from another thread (at exit).
        return InlineConnection(
            sqlite3.connect(target, timeout=timeout, uri=uri, check_same_thread=False)
        )

    return connect
