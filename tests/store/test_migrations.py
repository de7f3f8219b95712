"""Schema versioning: upgrade from empty, idempotent upgrade, refusal of a newer database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from opencams.errors import SchemaError
from opencams.store import db


def test_upgrade_from_empty_then_again(db_url: str) -> None:
    assert db.current_revision(db_url) is None
    with pytest.raises(SchemaError, match="opencams db upgrade"):
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
        with pytest.raises(SchemaError, match="newer version"):
            check(migrated_url)


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wal.db"
    db.upgrade(url)
    engine = db.make_sync_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_upgrade_keeps_the_data_of_the_first_schema(db_url: str) -> None:
    from alembic import command

    engine = db.make_sync_engine(db_url)
    command.upgrade(db._alembic_config(engine), "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts VALUES ('1000000000000001', 'acme', true, 1, 1)"))
        conn.execute(text("INSERT INTO spaces VALUES ('cams-a', '1000000000000001', 'A', 1, 1)"))
        conn.execute(
            text(
                "INSERT INTO business_numbers (space_id, number, phone_number_id, waba_id,"
                " access_token_enc, created_at, updated_at)"
                " VALUES ('cams-a', '8613800000001', '1101', '2101', 'x', 1, 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO chat_groups (id, number_id, channel_type, subject, subject_search,"
                " status, participant_count, created_at, updated_at)"
                " VALUES ('G1', 1, 'WHATSAPP', 'Old', 'old', 'ACTIVE', 0, 1, 2)"
            )
        )
    engine.dispose()
    assert db.upgrade(db_url) == ("0001", db.head_revision())
    engine = db.make_sync_engine(db_url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT subject, status, suspension_ts FROM chat_groups")).one()
        assert tuple(row) == ("Old", "ACTIVE", None)
        assert conn.execute(text("SELECT count(*) FROM participants")).scalar() == 0
    engine.dispose()


def test_downgrade_to_0009_and_up_again_keeps_the_versions_moving(migrated_url: str) -> None:
    """0010's downgrade puts back 0005's triggers (version only), and its upgrade 0010's
    (version and content): each time, a new group moves what that schema keeps."""
    from alembic import command

    engine = db.make_sync_engine(migrated_url)
    insert = (
        "INSERT INTO chat_groups (id, number_id, channel_type, subject, subject_search, status,"
        " participant_count, created_at, updated_at) VALUES (:id, 1, 'WHATSAPP', 's', 's',"
        " 'ACTIVE', 0, 1, 1)"
    )
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO accounts VALUES ('1000000000000001', 'a', true, 1, 1)"))
            conn.execute(
                text("INSERT INTO spaces VALUES ('cams-a', '1000000000000001', 'A', 1, 1)")
            )
            conn.execute(
                text(
                    "INSERT INTO business_numbers (id, space_id, number, phone_number_id, waba_id,"
                    " access_token_enc, created_at, updated_at)"
                    " VALUES (1, 'cams-a', '8613800000001', '1101', '2101', 'x', 1, 1)"
                )
            )
        command.downgrade(db._alembic_config(engine), "0009")
        with engine.begin() as conn:
            conn.execute(text(insert), {"id": "G1"})
            row = conn.execute(text("SELECT * FROM chat_group_versions")).mappings().one()
        assert dict(row) == {"number_id": 1, "version": 1}
        command.upgrade(db._alembic_config(engine), "head")
        with engine.begin() as conn:
            conn.execute(text(insert), {"id": "G2"})
            conn.execute(text("UPDATE chat_groups SET participant_count = 2 WHERE id = 'G2'"))
            row = conn.execute(text("SELECT version, content FROM chat_group_versions")).one()
        assert tuple(row) == (2, 2)  # the insert moved both; the count, content alone
    finally:
        engine.dispose()
