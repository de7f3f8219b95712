"""ListChatGroup's Total comes from trigger-kept counts (migration 0004) when only the number,
channel and status filter: whatever writes the groups, the counts must equal a real count."""

from __future__ import annotations

import random

from sqlalchemy import text

from opencams.store import db
from opencams.store.records import GroupFilter
from opencams.store.repo import Store
from tests.store.helpers import STATUSES, seed_tenancy, write


async def _real_count(store: Store, number_id: int, status: str | None) -> int:
    sql = "SELECT count(*) FROM chat_groups WHERE number_id = :n AND deleted_at IS NULL"
    if status is not None:
        sql += " AND status = :s"
    async with store.write() as conn:
        return int((await conn.execute(text(sql), {"n": number_id, "s": status})).scalar_one())


async def _check(store: Store) -> None:
    for number_id in (1, 2):
        for status in (None, *STATUSES):
            for channel in (None, "WHATSAPP"):
                flt = GroupFilter(number_id=number_id, status=status, channel_type=channel)
                total, page = await store.list_groups(flt, 0, 5)
                assert total == await _real_count(store, number_id, status), (number_id, status)
                assert len(page) == min(total, 5)


async def test_counts_follow_every_kind_of_write(store: Store, migrated_url: str) -> None:
    seed_tenancy(migrated_url)
    rng = random.Random(7)
    ids: list[str] = []
    for step in range(160):
        choice = rng.random()
        if choice < 0.4 or not ids:
            group_id = f"G{step:04d}"
            ids.append(group_id)
            await write(
                store,
                "INSERT INTO chat_groups (id, number_id, channel_type, subject, subject_search,"
                " status, participant_count, created_at, updated_at, deleted_at)"
                " VALUES (:id, :n, 'WHATSAPP', 's', 's', :s, 0, :t, :t, :d)",
                id=group_id,
                n=rng.choice((1, 2)),
                s=rng.choice(STATUSES),
                t=step,
                d=step if rng.random() < 0.1 else None,  # born deleted (a seeded history)
            )
        elif choice < 0.65:
            await write(
                store,
                "UPDATE chat_groups SET status = :s WHERE id = :id",
                s=rng.choice(STATUSES),
                id=rng.choice(ids),
            )
        elif choice < 0.75:
            await write(
                store, "UPDATE chat_groups SET deleted_at = 1 WHERE id = :id", id=rng.choice(ids)
            )
        elif choice < 0.8:
            await write(
                store, "UPDATE chat_groups SET deleted_at = NULL WHERE id = :id", id=rng.choice(ids)
            )
        elif choice < 0.85:
            await write(
                store,
                "UPDATE chat_groups SET number_id = :n, status = :s WHERE id = :id",
                n=rng.choice((1, 2)),
                s=rng.choice(STATUSES),
                id=rng.choice(ids),
            )
        elif choice < 0.9:
            await write(
                store, "UPDATE chat_groups SET subject = 'renamed' WHERE id = :id", id=ids[0]
            )
        else:
            victim = ids.pop(rng.randrange(len(ids)))
            await write(store, "DELETE FROM chat_groups WHERE id = :id", id=victim)
        if step % 20 == 19:
            await _check(store)
    await _check(store)


async def test_a_rolled_back_write_leaves_the_counts(store: Store, migrated_url: str) -> None:
    seed_tenancy(migrated_url)
    insert = (
        "INSERT INTO chat_groups (id, number_id, channel_type, subject, subject_search, status,"
        " participant_count, created_at, updated_at) VALUES (:id, 1, 'WHATSAPP', 's', 's',"
        " 'ACTIVE', 0, 1, 1)"
    )
    await write(store, insert, id="G1")
    try:
        async with store.write() as conn:
            await conn.execute(text(insert), {"id": "G2"})
            raise RuntimeError("abandoned")
    except RuntimeError:
        pass
    assert (await store.list_groups(GroupFilter(number_id=1), 0, 20))[0] == 1
    await _check(store)


def test_upgrade_counts_the_groups_already_there(db_url: str) -> None:
    from alembic import command

    engine = db.make_sync_engine(db_url)
    command.upgrade(db._alembic_config(engine), "0003")
    engine.dispose()
    seed_tenancy(db_url)
    engine = db.make_sync_engine(db_url)
    with engine.begin() as conn:
        for i, (status, deleted) in enumerate(
            [("ACTIVE", None), ("ACTIVE", None), ("CREATING", None), ("ACTIVE", 5)]
        ):
            conn.execute(
                text(
                    "INSERT INTO chat_groups (id, number_id, channel_type, subject,"
                    " subject_search, status, participant_count, created_at, updated_at,"
                    " deleted_at) VALUES (:id, 1, 'WHATSAPP', 's', 's', :s, 0, 1, 1, :d)"
                ),
                {"id": f"G{i}", "s": status, "d": deleted},
            )
    engine.dispose()
    db.upgrade(db_url)
    engine = db.make_sync_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, listed FROM chat_group_counts ORDER BY status")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("ACTIVE", 2), ("CREATING", 1)]


def test_the_bulk_seeder_leaves_counts_and_versions_right(
    migrated_url: str, tmp_path: object
) -> None:
    """The seeder skips the per-row triggers (speed) and recounts at the end."""
    from opencams.config import Settings
    from opencams.store.seed.bulk import seed
    from opencams.store.seed.generate import SeedPlan

    seed_tenancy(migrated_url)
    settings = Settings(database_url=migrated_url, secret_key="k" * 32)
    seed(settings, SeedPlan(space_id="cams-a", numbers=3, groups=900, hot_number="8613800000001",
                            hot_groups=400, random_seed=5, batch_size=250))  # fmt: skip
    engine = db.make_sync_engine(migrated_url)
    with engine.connect() as conn:
        real = conn.execute(
            text(
                "SELECT number_id, channel_type, status, count(*) FROM chat_groups"
                " WHERE deleted_at IS NULL GROUP BY number_id, channel_type, status"
            )
        ).all()
        kept = conn.execute(
            text("SELECT number_id, channel_type, status, listed FROM chat_group_counts")
        ).all()
        versions = dict(
            tuple(r)
            for r in conn.execute(text("SELECT number_id, version FROM chat_group_versions"))
        )
        triggers = conn.execute(
            text(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                if conn.dialect.name == "sqlite"
                else "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
            )
        ).scalar_one()
    engine.dispose()
    assert sorted(map(tuple, real)) == sorted(map(tuple, kept))
    assert len(real) > 4
    assert set(versions) == {number_id for number_id, *_ in real}
    assert triggers == (6 if migrated_url.startswith("sqlite") else 2)  # still there after


def test_a_failed_seed_leaves_the_triggers(migrated_url: str) -> None:
    import pytest

    from opencams.config import Settings
    from opencams.store.seed.bulk import seed
    from opencams.store.seed.generate import SeedError, SeedPlan

    seed_tenancy(migrated_url)
    settings = Settings(database_url=migrated_url, secret_key="k" * 32)
    with pytest.raises(SeedError):
        seed(settings, SeedPlan(space_id="no-such-space", groups=10, numbers=1))
    engine = db.make_sync_engine(migrated_url)
    with engine.connect() as conn:
        triggers = conn.execute(
            text(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
                if conn.dialect.name == "sqlite"
                else "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"
            )
        ).scalar_one()
    engine.dispose()
    assert triggers == (6 if migrated_url.startswith("sqlite") else 2)
