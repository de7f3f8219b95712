"""Database URLs, connection set-up, and schema versioning.

At run time the server reaches the database through store.database only; SQLAlchemy's
synchronous engine (`make_sync_engine`) serves Alembic and the bulk tools. Both read a URL the
same way (`sqlite_target`, `postgresql_connect_args`). SQLite is put in WAL mode with a busy
timeout so that readers never block the writer and concurrent writers wait instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url

from opencams.errors import SchemaError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def url_backend(url: str) -> str:
    """`sqlite` or `postgresql`; SchemaError for anything else. A SQLite file's folder is made."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return "sqlite"
    if backend in ("postgresql", "postgres"):
        return "postgresql"
    raise SchemaError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite or postgresql"
    )


def _sync_url(url: str) -> str:
    """The URL for SQLAlchemy's synchronous engine (migrations, bulk tools)."""
    parsed = make_url(url)
    driver = "sqlite" if url_backend(url) == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


Synchronous = Literal["full", "normal"]
DEFAULT_SYNCHRONOUS: Synchronous = "full"


def sqlite_setup(synchronous: Synchronous = DEFAULT_SYNCHRONOUS) -> Callable[[Any], None]:
    """What every SQLite connection of opencams runs first.

    `synchronous` (OPENCAMS_SQLITE_SYNCHRONOUS, docs/deployment.md): FULL syncs the WAL on every
    commit, so a commit answered OK survives a power loss or an operating-system crash; NORMAL
    syncs only at checkpoints: it survives a killed process, but an OS crash or power loss can
    lose the last commits (never corrupt the file)."""

    def setup(dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return setup


def sqlite_target(url: str) -> tuple[str, dict[str, Any]]:
    """What sqlite3.connect needs for a SQLite URL, as SQLAlchemy's own driver reads it (a
    `file:` URI with all its query parameters when `uri=true`), with the busy timeout."""
    args, kwargs = SQLiteDialect_pysqlite().create_connect_args(make_url(url))
    options = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "uri": bool(kwargs.get("uri"))}
    return str(args[0]) if args else ":memory:", options


def postgresql_connect_args(url: str) -> dict[str, Any]:
    """libpq connection parameters of a PostgreSQL URL, as SQLAlchemy's psycopg driver reads
    them (escaped user names, options with spaces, query parameters)."""
    _, kwargs = PGDialect_psycopg().create_connect_args(make_url(url))  # type: ignore[no-untyped-call]
    return dict(kwargs)


def make_sync_engine(url: str) -> Engine:
    sync_url = _sync_url(url)
    if sync_url.startswith("sqlite"):
        engine = create_engine(sync_url)
        setup = sqlite_setup()
        event.listen(engine, "connect", lambda connection, _record: setup(connection))
        return engine
    return create_engine(sync_url, pool_pre_ping=True)


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (before, after)."""
    before = check_not_newer(url)
    engine = make_sync_engine(url)
    try:
        command.upgrade(_alembic_config(engine), "head")
    finally:
        engine.dispose()
    return before, head_revision()


def check_not_newer(url: str) -> str | None:
    """Refuse a database whose schema comes from a newer opencams."""
    current = current_revision(url)
    if current is None:
        return None
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"the database schema is at revision {current}, which this opencams "
            f"(newest revision {head_revision()}) does not know: it was written by a newer "
            "version. Upgrade opencams; do not downgrade the database."
        )
    return current


def check_ready(url: str) -> None:
    """The server starts only on a database at exactly the newest schema."""
    current = check_not_newer(url)
    if current != head_revision():
        raise SchemaError(
            f"the database schema is at revision {current or '(empty)'}, not {head_revision()}: "
            "run `opencams db upgrade` first"
        )
