"""Seeding and raw writes shared by the store tests that compare trigger-kept data to the rows."""

from __future__ import annotations

from sqlalchemy import text

from opencams.store import db
from opencams.store.repo import Store

STATUSES = ("ACTIVE", "INACTIVE", "SUSPENDED", "CREATING", "DELETING", "UPDATING")


def seed_tenancy(url: str) -> None:
    """Account acme, space cams-a, numbers 8613800000001 and …2 (ids 1 and 2), in plain SQL."""
    engine = db.make_sync_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO accounts VALUES ('1000000000000001', 'acme', true, 1, 1)"))
        conn.execute(text("INSERT INTO spaces VALUES ('cams-a', '1000000000000001', 'A', 1, 1)"))
        for n in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO business_numbers (id, space_id, number, phone_number_id, waba_id,"
                    " access_token_enc, created_at, updated_at)"
                    f" VALUES ({n}, 'cams-a', '861380000000{n}', '110{n}', '210{n}', 'x', 1, 1)"
                )
            )
        if conn.dialect.name == "postgresql":  # ids given above: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('business_numbers', 'id'), 2)"))
    engine.dispose()


async def write(store: Store, sql: str, **params: object) -> None:
    """Run one SQL statement in a store transaction: a write other than through the Store."""
    async with store.write() as conn:
        await conn.execute(text(sql), params)
