"""The store's own connections (store.database) open the database the URL names, exactly as
SQLAlchemy's drivers read it, and survive a connection killed while idle."""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy import text

from opencams.store import db
from opencams.store.database import PostgresDatabase, SQLiteDatabase
from opencams.store.repo import Store, open_database


def test_sqlite_urls_keep_their_query_parameters(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    db.upgrade(f"sqlite:///{path}")
    assert isinstance(open_database(f"sqlite:///file:{path}?mode=ro&uri=true"), SQLiteDatabase)
    assert db.sqlite_target(f"sqlite:///file:{path}?mode=ro&uri=true") == (
        f"file:{path}?mode=ro",
        {"timeout": db.SQLITE_BUSY_TIMEOUT_MS / 1000, "uri": True},
    )


async def test_in_memory_sqlite_is_one_database() -> None:
    """One connection per process: an in-memory database is the same one for every unit of
    work (with a pool of connections each would have its own)."""
    for memory in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?cache=shared&uri=true",
    ):
        database = open_database(memory)
        try:
            async with database.write() as tx:
                await tx.execute(text("CREATE TABLE t (x INTEGER)"))
                await tx.execute(text("INSERT INTO t VALUES (:x)"), [{"x": 1}, {"x": 2}])
            async with database.read() as tx:
                assert (await tx.execute(text("SELECT sum(x) AS s FROM t"))).first().s == 3
        finally:
            await database.close()


async def test_a_read_only_uri_stays_read_only(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    db.upgrade(f"sqlite:///{path}")
    store = Store.open(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        assert await store.access_key("LTAI5tNoSuchKey") is None  # reads work
        import pytest

        from opencams.errors import StoreUnavailable

        with pytest.raises(StoreUnavailable, match="readonly"):
            await store.use_nonce("k", "n", 60_000)
    finally:
        await store.dispose()


def test_postgresql_options_reach_the_direct_pool() -> None:
    args = db.postgresql_connect_args(
        "postgresql://us%20er:p%40ss@127.0.0.1:5432/d%20b?options=-c%20statement_timeout%3D5000"
    )
    assert args["user"] == "us er"
    assert args["password"] == "p@ss"
    assert args["dbname"] == "d b"
    assert args["options"] == "-c statement_timeout=5000"


async def test_postgresql_idle_connection_killed(migrated_url: str) -> None:
    if not migrated_url.startswith("postgresql"):
        return
    url = f"{migrated_url}?options=-c%20application_name%3Dopencams_direct_test"
    store = Store.open(url)
    try:
        assert isinstance(store.database, PostgresDatabase)
        assert await store.access_key("LTAI5tNoSuchKey") is None
        admin = migrated_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(
            admin.replace("postgresql+psycopg", "postgresql"), autocommit=True
        ) as c:
            killed = c.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'opencams_direct_test'"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        # The dead connection is dropped and the read tried again: no 503 for it.
        assert await store.access_key("LTAI5tNoSuchKey") is None
        async with store.write() as conn:
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar_one() == "0"
    finally:
        await store.dispose()


async def test_sqlite_durability_follows_the_setting(tmp_path: Path) -> None:
    """Every SQLite connection of opencams syncs as configured: FULL (2) unless the settings say
    NORMAL (1); the tools' synchronous engine FULL."""
    from opencams.config import Settings

    url = f"sqlite:///{tmp_path / 'sync.db'}"
    db.upgrade(url)
    assert Settings(database_url=url).sqlite_synchronous == "full"
    for setting, expected in (("full", 2), ("normal", 1)):
        store = Store.open(url, synchronous=setting)  # type: ignore[arg-type]
        try:
            async with store.read() as tx:
                level = (await tx.execute(text("PRAGMA synchronous"))).scalar()
            assert level == expected, setting
        finally:
            await store.dispose()
    sync_engine = db.make_sync_engine(url)
    try:
        with sync_engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # tools: FULL
    finally:
        sync_engine.dispose()
