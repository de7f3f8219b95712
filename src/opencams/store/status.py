"""Queries of the server's own state, for readiness and the metrics read at scrape time
(opencams.observability): the schema revision, pending operations, the nonce table. As
functions of a unit of work, like every other query."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import column, func, select, table

from opencams.store.database import Tx
from opencams.store.tables import operations, used_nonces

# Alembic's own table (store/migrations): one row, the revision the schema is at.
_ALEMBIC_VERSION = table("alembic_version", column("version_num"))


@dataclass(frozen=True)
class PendingKind:
    kind: str
    count: int
    oldest_created_ms: int


_SQLITE_TABLES = table("sqlite_master", column("name"), column("type"))
_PG_TABLES = table(
    "tables", column("table_name"), column("table_schema"), schema="information_schema"
)


async def schema_revision(tx: Tx, dialect: str) -> str | None:
    """The revision the database's schema is at; None when it was never migrated (no Alembic
    table, or an empty one)."""
    if dialect == "sqlite":
        found = select(_SQLITE_TABLES.c.name).where(
            _SQLITE_TABLES.c.type == "table", _SQLITE_TABLES.c.name == "alembic_version"
        )
    else:
        found = select(_PG_TABLES.c.table_name).where(
            _PG_TABLES.c.table_name == "alembic_version",
            _PG_TABLES.c.table_schema == func.current_schema(),
        )
    if (await tx.execute(found)).first() is None:
        return None
    row = (await tx.execute(select(_ALEMBIC_VERSION.c.version_num))).first()
    return str(row[0]) if row else None


async def pending_by_kind(tx: Tx) -> list[PendingKind]:
    rows = (
        await tx.execute(
            select(operations.c.kind, func.count(), func.min(operations.c.created_at))
            .where(operations.c.state == "pending")
            .group_by(operations.c.kind)
        )
    ).all()
    return [PendingKind(str(r[0]), int(r[1]), int(r[2])) for r in rows]


async def nonce_count(tx: Tx) -> int:
    return int((await tx.execute(select(func.count()).select_from(used_nonces))).scalar() or 0)
