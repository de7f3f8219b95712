"""The hottest statements on SQLite, run straight on a `sqlite3` connection.

Every signed request looks up its AccessKey and records its nonce, and ListChatGroup reads a
count and a page. Through SQLAlchemy's asyncio layer each of those transactions costs about
0.3 ms of CPU on a small machine (connection checkout, greenlet switches, result objects) around
a statement that SQLite answers in microseconds. Here the same statements — built with
SQLAlchemy Core and compiled once by its SQLite dialect — run on one dedicated connection of the
store's own, on the event loop's thread (see inline_sqlite for why that is safe: nothing awaits
between a statement and its commit, so two uses never interleave).

Errors are mapped as Store.tx maps them: a locked or vanished database is StoreUnavailable, a
value SQLite refuses is StoreRejected.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import ClauseElement

from opencams.store.errors import StoreRejected, StoreUnavailable

T = TypeVar("T")
Execute = Callable[[ClauseElement, Mapping[str, Any]], Sequence[Any]]

_DIALECT = sqlite_dialect.dialect()


class DirectSQLite:
    def __init__(self, database: str, *, timeout: float, uri: bool, setup: Callable[[Any], None]):
        self._database = database
        self._timeout = timeout
        self._uri = uri
        self._setup = setup
        self._connection: sqlite3.Connection | None = None
        self._compiled: dict[int, tuple[ClauseElement, str, tuple[str, ...], dict[str, Any]]] = {}

    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
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

    def _execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        # Compiled once per statement object (kept in the entry, so that its id stays its own);
        # parameters the caller does not pass are the statement's own literals.
        entry = self._compiled.get(id(statement))
        if entry is None:
            compiled = statement.compile(dialect=_DIALECT)
            entry = (
                statement,
                compiled.string,
                tuple(getattr(compiled, "positiontup", None) or ()),
                compiled.params,
            )
            self._compiled[id(statement)] = entry
        _, sql, names, literals = entry
        values = tuple(params[name] if name in params else literals[name] for name in names)
        return self._conn().execute(sql, values).fetchall()

    def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Any]:
        """One statement, its own transaction (SQLite's autocommit)."""
        with self._failures():
            return self._execute(statement, params)

    def run(self, work: Callable[[Execute], T]) -> T:
        """`work` in one transaction (BEGIN … COMMIT; rolled back if it raises)."""
        with self._failures():
            connection = self._conn()
            connection.execute("BEGIN")
            try:
                result = work(self._execute)
            except BaseException:
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

    def close(self) -> None:
        self._reset()
