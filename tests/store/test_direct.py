"""The store's direct connections (store.direct) open the database the URL names, exactly as
SQLAlchemy's drivers read it, and survive a connection killed while idle."""

from __future__ import annotations

from pathlib import Path

import psycopg
from sqlalchemy import text

from opencams.store import db
from opencams.store.direct import DirectPostgres, DirectSQLite
from opencams.store.repo import Store, direct_for


def test_sqlite_urls_keep_their_query_parameters(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    db.upgrade(f"sqlite:///{path}")
    read_only = db.make_async_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    direct = direct_for(read_only)
    assert isinstance(direct, DirectSQLite)
    assert db.sqlite_target(f"sqlite:///file:{path}?mode=ro&uri=true") == (
        f"file:{path}?mode=ro",
        {"timeout": db.SQLITE_BUSY_TIMEOUT_MS / 1000, "uri": True},
    )
    for memory in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?cache=shared&uri=true",
    ):
        assert direct_for(db.make_async_engine(memory)) is None, memory


async def test_a_read_only_uri_stays_read_only(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    db.upgrade(f"sqlite:///{path}")
    store = Store(db.make_async_engine(f"sqlite:///file:{path}?mode=ro&uri=true"))
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
    store = Store(db.make_async_engine(url))
    try:
        assert isinstance(store._direct, DirectPostgres)
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
        async with store.tx() as conn:
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar_one() == "0"
    finally:
        await store.dispose()


async def test_sqlite_durability_follows_the_setting(tmp_path: Path) -> None:
    """Every SQLite connection of a store, the engine's and the direct one, syncs as configured:
    FULL (2) unless the settings say NORMAL (1)."""
    from opencams.config import Settings

    url = f"sqlite:///{tmp_path / 'sync.db'}"
    db.upgrade(url)
    assert Settings(database_url=url).sqlite_synchronous == "full"
    for setting, expected in (("full", 2), ("normal", 1)):
        store = Store.open(url, synchronous=setting)  # type: ignore[arg-type]
        try:
            async with store.tx() as conn:
                engine_level = (await conn.execute(text("PRAGMA synchronous"))).scalar()
            direct = await store.rows(text("PRAGMA synchronous"), {})
            assert (engine_level, direct[0][0]) == (expected, expected), setting
        finally:
            await store.dispose()
    sync_engine = db.make_sync_engine(url)
    try:
        with sync_engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # tools: FULL
    finally:
        sync_engine.dispose()
