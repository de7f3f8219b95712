"""Alembic environment: opencams passes its own engine; there is no alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from opencams.store.tables import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only reachable by misuse
    raise RuntimeError("run migrations through `opencams db upgrade`")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
