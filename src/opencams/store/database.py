"""The one way to the database at run time: units of work on the store's own connections.

    async with database.read() as tx:    # one read-only snapshot
        rows = (await tx.execute(statement, {"name": value})).all()
    async with database.write() as tx:   # one transaction, committed when the block ends
        await tx.execute(update(...))

Every request-time read and write of the server goes through `read()`/`write()` (and
`execute_each` for the group-committed nonces); there is no second route. Statements are built
with SQLAlchemy Core and compiled by its dialect; SQLAlchemy's engine and its asyncio layer are not
used at run time: each of their transactions cost 0.3 ms (SQLite) to several ms (PostgreSQL)
around statements the database answers in microseconds. SQLAlchemy's engine stays where it earns
its place — Alembic migrations and the bulk tools (`opencams dev seed`), on the synchronous driver.

- SQLite: one `sqlite3` connection per process, on the event loop's thread. A unit of work runs
  from BEGIN to COMMIT without giving the loop a turn (its awaits are its own statements, which
  complete at once), so two never interleave; one that awaits anything else is logged as
  INTERLEAVED (the test servers fail on that line) and a nested one is a RuntimeError. Writes
  begin IMMEDIATE: another process holding the write lock is waited for (the busy timeout), never
  a deadlock between two upgrading readers.
- PostgreSQL: a psycopg_pool pool of autocommit connections; a unit of work is one transaction
  (reads REPEATABLE READ, READ ONLY: one snapshot). A connection that turns out dead when its
  unit of work begins (killed while idle, the database restarted) is replaced once, after the
  pool has checked its idle connections.

Driver failures leave as opencams.errors: unreachable, locked or restarting is StoreUnavailable,
a value the database refuses StoreRejected, a unique key taken StoreConflict.

Hot statements are `prepared` (compiled once per dialect); others are compiled at each use.
Rows are named tuples: read them by column name (`row.subject`, `row._asdict()`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, Protocol

import psycopg
import psycopg_pool
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Select

from opencams.errors import StoreConflict, StoreRejected, StoreUnavailable
from opencams.metrics import database_error

log = logging.getLogger("opencams.store")

INTERLEAVED = "a SQLite transaction stayed open while the event loop ran other work"
Params = Mapping[str, Any]


class Prepared:
    """A statement built once (at import) and compiled once per dialect."""

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return found


def prepared(statement: ClauseElement) -> Prepared:
    return Prepared(statement)


Statement = ClauseElement | Prepared


class _Compiled:
    __slots__ = ("literals", "names", "sql")

    def __init__(self, sql: str, names: tuple[str, ...], literals: dict[str, Any]) -> None:
        self.sql = sql
        self.names = names  # bind names in order (SQLite's qmark style)
        self.literals = literals  # the statement's own values, for names the caller omits


def _compile(
    statement: ClauseElement, dialect: Dialect, keys: Sequence[str] | None = None
) -> _Compiled:
    """`keys`: the parameters an INSERT or UPDATE without values gets (its columns, as
    SQLAlchemy's engine derives them); IN lists (expanding parameters) are rendered with their
    values, so such statements are compiled at each use."""
    compiled = statement.compile(
        dialect=dialect,
        column_keys=list(keys) if keys is not None else None,
        compile_kwargs={"render_postcompile": True},
    )
    order = tuple(getattr(compiled, "positiontup", None) or ())
    return _Compiled(compiled.string, order, dict(compiled.params))


_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def _row_type(names: tuple[str, ...]) -> Any:
    found = _ROW_TYPES.get(names)
    if found is None:
        if len(_ROW_TYPES) > 1024:
            _ROW_TYPES.clear()
        found = _ROW_TYPES[names] = namedtuple("Row", names, rename=True)
    return found


class Result:
    """What a statement gave back: its rows (named tuples) and how many rows it changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise ValueError(f"one row expected, {len(self._rows)} found")
        return self._rows[0][0]


def _result(description: Any, rows: list[Any], rowcount: int) -> Result:
    if description is None:
        return Result([], rowcount)
    make = _row_type(tuple(column[0] for column in description))._make
    return Result([make(row) for row in rows], rowcount)


class Tx(Protocol):
    async def execute(
        self, statement: Statement, params: Params | Sequence[Params] | None = None
    ) -> Result:
        """One statement; a sequence of parameter sets runs it once for each (executemany)."""


class Database(Protocol):
    dialect_name: str

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """`async with read() as tx`: one read-only transaction (one snapshot)."""

    def write(self) -> AbstractAsyncContextManager[Tx]:
        """`async with write() as tx`: one transaction, committed when the block ends."""

    async def execute(
        self, statement: Statement, params: Params | Sequence[Params] | None = None
    ) -> Result:
        """One statement, a transaction of its own (one round trip on PostgreSQL): the database
        is itself a unit of work (a Tx) whose every statement commits alone."""

    async def execute_each(self, statement: Statement, each: Sequence[Params]) -> list[Result]:
        """The statement once per parameter set, in one transaction (pipelined on PostgreSQL)."""

    async def close(self) -> None: ...


def _compiled(
    statement: Statement, dialect: Dialect, params: Params | Sequence[Params] | None = None
) -> _Compiled:
    if isinstance(statement, Prepared):
        return statement.compiled(dialect)
    if isinstance(params, Sequence):
        keys = list(params[0]) if params else None
    else:
        keys = list(params) if params else None
    return _SHAPES.compiled(statement, dialect, keys)


class _Shape:
    """A statement compiled once for every statement of its shape: SQLAlchemy's cache key says
    which statements are the same but for their values, and its bound parameters line up, in
    order, with those of the statement compiled (what SQLAlchemy's own engine caches by)."""

    __slots__ = ("names", "slots", "sql")

    def __init__(self, sql: str, names: tuple[str, ...], slots: list[tuple[str, int | None, Any]]):
        self.sql = sql
        self.names = names
        # Each bind name's value: the new statement's parameter at that index of its cache
        # key, or (None) the compiled statement's own value.
        self.slots = slots


class _ShapeCache:
    """Compiled statements by shape (dialect, cache key, the keys an INSERT or UPDATE without
    values gets). Statements SQLAlchemy cannot key, and those whose SQL depends on their values
    (IN lists, values rendered into the SQL), are compiled at each use."""

    MAX = 2048

    def __init__(self) -> None:
        self._shapes: dict[tuple[Any, ...], _Shape | None] = {}

    def compiled(
        self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str] | None
    ) -> _Compiled:
        cache_key = statement._generate_cache_key()
        if cache_key is None:
            return _compile(statement, dialect, keys)
        shape_key = (dialect.name, cache_key.key, tuple(keys) if keys is not None else None)
        try:
            shape = self._shapes[shape_key]
        except KeyError:
            shape = self._shapes[shape_key] = self._shape(statement, dialect, keys, cache_key)
            if len(self._shapes) > self.MAX:
                self._shapes.clear()
        if shape is None:
            return _compile(statement, dialect, keys)
        bound = cache_key.bindparams
        literals = {
            name: (value if index is None else bound[index].effective_value)
            for name, index, value in shape.slots
        }
        return _Compiled(shape.sql, shape.names, literals)

    @staticmethod
    def _shape(
        statement: ClauseElement, dialect: Dialect, keys: Sequence[str] | None, cache_key: Any
    ) -> _Shape | None:
        compiled: Any = statement.compile(
            dialect=dialect, column_keys=list(keys) if keys is not None else None
        )
        if compiled.post_compile_params or compiled.literal_execute_params:
            return None  # rendered with its values: no shape to share
        index = {bind.key: i for i, bind in enumerate(cache_key.bindparams)}
        params = compiled.params
        slots: list[tuple[str, int | None, Any]] = []
        for bind, name in compiled.bind_names.items():
            escaped = compiled.escaped_bind_names.get(name, name)
            slots.append((escaped, index.get(bind.key), params.get(escaped)))
        names = tuple(getattr(compiled, "positiontup", None) or ())
        return _Shape(compiled.string, names, slots)


_SHAPES = _ShapeCache()


# --- SQLite -------------------------------------------------------------------------------


class _SQLiteTx:
    __slots__ = ("_connection", "_database", "_dialect")

    def __init__(self, database: SQLiteDatabase, connection: sqlite3.Connection) -> None:
        self._database = database
        self._connection = connection
        self._dialect = database._dialect

    async def execute(
        self, statement: Statement, params: Params | Sequence[Params] | None = None
    ) -> Result:
        return self.run(statement, params)

    def run(self, statement: Statement, params: Params | Sequence[Params] | None) -> Result:
        compiled = _compiled(statement, self._dialect, params)
        try:
            if isinstance(params, Sequence):
                cursor = self._connection.executemany(
                    compiled.sql, [_sqlite_values(compiled, each) for each in params]
                )
                return Result([], cursor.rowcount)
            cursor = self._connection.execute(compiled.sql, _sqlite_values(compiled, params or {}))
            return _result(cursor.description, cursor.fetchall(), cursor.rowcount)
        except sqlite3.Error as exc:
            raise self._database.translated(exc) from exc


def _sqlite_values(compiled: _Compiled, params: Params) -> tuple[Any, ...]:
    literals = compiled.literals
    return tuple(params[n] if n in params else literals[n] for n in compiled.names)


def _interleaved(open_: list[bool]) -> None:
    """Queued when a unit of work begins, run at the loop's next turn: if the unit is still
    open then, something other than its statements was awaited inside it."""
    if open_[0]:
        log.error(INTERLEAVED)


class _SQLiteUnit:
    """One unit of work: BEGIN on entry, COMMIT on a clean exit, ROLLBACK otherwise."""

    __slots__ = ("_begin", "_database", "_open")

    def __init__(self, database: SQLiteDatabase, begin: str) -> None:
        self._database = database
        self._begin = begin
        self._open = [False]

    async def __aenter__(self) -> _SQLiteTx:
        database = self._database
        try:
            connection = database._conn()
            if connection.in_transaction:
                raise RuntimeError("a unit of work began inside another one (SQLite)")
            connection.execute(self._begin)
        except sqlite3.Error as exc:
            raise database.translated(exc) from exc
        self._open[0] = True
        asyncio.get_running_loop().call_soon(_interleaved, self._open)
        return _SQLiteTx(database, connection)

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._open[0] = False
        connection = self._database._connection
        if connection is None:  # reset after a failure: nothing left to end
            return
        if kind is not None:
            with suppress(sqlite3.Error):  # the original failure is the one to report
                connection.execute("ROLLBACK")
            return
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._database.translated(exc) from exc


def uri_or_memory(target: str, uri: bool) -> bool:
    return uri or target in ("", ":memory:")


class SQLiteDatabase:
    dialect_name = "sqlite"

    def __init__(self, target: str, *, timeout: float, uri: bool, setup: Callable[[Any], None]):
        self._target = target
        self._timeout = timeout
        self._uri = uri
        self._setup = setup
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._dialect = sqlite_dialect.dialect()

    @property
    def path(self) -> Path | None:
        """The database file; None for an in-memory database or a `file:` URI."""
        if uri_or_memory(self._target, self._uri):
            return None
        return Path(self._target)

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            if self._closed:
                raise sqlite3.InterfaceError("the store is closed")
            connection = sqlite3.connect(
                self._target,
                timeout=self._timeout,
                uri=self._uri,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # closed from another thread at exit
            )
            self._setup(connection)
            self._connection = connection
        return self._connection

    def read(self) -> AbstractAsyncContextManager[_SQLiteTx]:
        return _SQLiteUnit(self, "BEGIN")

    def write(self) -> AbstractAsyncContextManager[_SQLiteTx]:
        return _SQLiteUnit(self, "BEGIN IMMEDIATE")

    async def execute(
        self, statement: Statement, params: Params | Sequence[Params] | None = None
    ) -> Result:
        """One statement, a transaction of its own (SQLite's autocommit)."""
        try:
            connection = self._conn()
        except sqlite3.Error as exc:
            raise self.translated(exc) from exc
        return _SQLiteTx(self, connection).run(statement, params)

    async def execute_each(self, statement: Statement, each: Sequence[Params]) -> list[Result]:
        async with self.write() as tx:
            return [tx.run(statement, params) for params in each]

    def translated(self, exc: sqlite3.Error) -> Exception:
        """The store's error for a driver's (a broken connection is dropped, for a new one)."""
        if isinstance(exc, sqlite3.IntegrityError):
            database_error("conflict")
            return StoreConflict(str(exc))
        if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError):
            self._reset()
            database_error("unavailable")
            return StoreUnavailable(str(exc))
        if isinstance(exc, sqlite3.DataError):
            database_error("rejected")
            return StoreRejected(str(exc))
        return exc

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


# --- PostgreSQL ---------------------------------------------------------------------------


class _PostgresTx:
    __slots__ = ("_connection", "_dialect")

    def __init__(self, connection: psycopg.AsyncConnection[Any], dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect

    async def execute(
        self, statement: Statement, params: Params | Sequence[Params] | None = None
    ) -> Result:
        compiled = _compiled(statement, self._dialect, params)
        cursor = self._connection.cursor()
        if isinstance(params, Sequence):
            await cursor.executemany(compiled.sql, [{**compiled.literals, **p} for p in params])
            return Result([], cursor.rowcount)
        await cursor.execute(compiled.sql, {**compiled.literals, **(params or {})})
        rows = await cursor.fetchall() if cursor.description else []
        return _result(cursor.description, rows, cursor.rowcount)


_GONE = (
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.QueryCanceled,
)


class PostgresDatabase:
    dialect_name = "postgresql"

    def __init__(
        self, connect_args: Mapping[str, Any], *, max_size: int = 10, timeout: float = 3.0
    ) -> None:
        # `timeout`: how long a unit of work waits for a connection (the database being down,
        # the pool exhausted) before it is answered ServiceUnavailable.
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
            name="opencams",
        )
        self._opened = False
        self._checking: asyncio.Task[None] | None = None
        self._dialect = postgresql_dialect.psycopg.dialect()  # type: ignore[no-untyped-call]

    async def _pool_open(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        if not self._opened:
            self._opened = True
            await self._pool.open(wait=False)
        return self._pool

    @asynccontextmanager
    async def _transaction(self, begin: str) -> AsyncIterator[_PostgresTx]:
        with self._failures():
            pool = await self._pool_open()
            for attempt in (1, 2):
                connection = await pool.getconn()
                try:
                    await connection.execute(begin)
                    break
                except psycopg.OperationalError as exc:
                    await pool.putconn(connection)
                    if attempt == 2 or isinstance(exc, _GONE):
                        raise
                    # The idle connections may be as dead as this one: checked (dropped) first.
                    await self._check()
            try:
                try:
                    yield _PostgresTx(connection, self._dialect)
                except BaseException:
                    with suppress(psycopg.Error):  # the original failure is the one to report
                        await connection.execute("ROLLBACK")
                    raise
                await connection.execute("COMMIT")
            finally:
                await pool.putconn(connection)

    def read(self) -> AbstractAsyncContextManager[_PostgresTx]:
        return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    async def execute(
        self, statement: Statement, params: Params | Sequence[Params] | None = None
    ) -> Result:
        """One statement, a transaction of its own: one round trip. A read whose connection is
        found dead is sent once more on another; a write never is (it may have been applied)."""
        inner = statement.statement if isinstance(statement, Prepared) else statement
        retry = isinstance(inner, Select)
        with self._failures():
            pool = await self._pool_open()
            for attempt in (1, 2):
                try:
                    async with pool.connection() as conn:
                        return await _PostgresTx(conn, self._dialect).execute(statement, params)
                except psycopg.OperationalError as exc:
                    if attempt == 2 or not retry or isinstance(exc, _GONE):
                        raise
                    await self._check()
            raise AssertionError("unreachable")

    def write(self) -> AbstractAsyncContextManager[_PostgresTx]:
        return self._transaction("BEGIN")

    async def execute_each(self, statement: Statement, each: Sequence[Params]) -> list[Result]:
        """Pipelined: the whole transaction is one round trip."""
        compiled = _compiled(statement, self._dialect)
        with self._failures():
            pool = await self._pool_open()
            async with pool.connection() as conn, conn.transaction():
                cursors = []
                async with conn.pipeline() as pipeline:
                    for params in each:
                        cursor = conn.cursor()
                        await cursor.execute(compiled.sql, {**compiled.literals, **params})
                        cursors.append(cursor)
                    await pipeline.sync()  # every result is in: descriptions are known
                found = []
                for cursor in cursors:
                    rows = await cursor.fetchall() if cursor.description else []
                    found.append(_result(cursor.description, rows, cursor.rowcount))
                return found

    @contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except psycopg.errors.IntegrityError as exc:
            database_error("conflict")
            raise StoreConflict(str(exc)) from exc
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            database_error("unavailable")
            raise StoreUnavailable(str(exc)) from exc  # a conflict: worth trying again
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
            self._check_soon()
            database_error("unavailable")
            raise StoreUnavailable(str(exc)) from exc
        except psycopg.DataError as exc:
            database_error("rejected")
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
