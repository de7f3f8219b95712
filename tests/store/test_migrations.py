"""Schema versioning: upgrade from empty, idempotent upgrade, refusal of a newer database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from opencams.store import db


def test_upgrade_from_empty_then_again(db_url: str) -> None:
    assert db.current_revision(db_url) is None
    with pytest.raises(db.SchemaError, match="opencams db upgrade"):
        db.check_ready(db_url)
    assert db.upgrade(db_url) == (None, db.head_revision())
    assert db.upgrade(db_url) == (db.head_revision(), db.head_revision())
    db.check_ready(db_url)


def test_refuses_a_database_from_a_newer_version(migrated_url: str) -> None:
    engine = db.make_sync_engine(migrated_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for check in (db.check_ready, db.upgrade):
        with pytest.raises(db.SchemaError, match="newer version"):
            check(migrated_url)


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wal.db"
    db.upgrade(url)
    engine = db.make_sync_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()
