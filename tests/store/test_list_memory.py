"""What a store remembers of lists (filtered Totals, page anchors, whole pages) never shows a
stale page: a second store on the same database (another server process) changes the groups
between reads, and every answer must equal a plain OFFSET query over the current rows, every
column an item shows included."""

from __future__ import annotations

import random

from sqlalchemy import text

from opencams.store.records import GroupFilter, GroupRecord
from opencams.store.repo import Store
from tests.store.helpers import STATUSES, seed_tenancy, write

WORDS = ("sales", "support", "team", "Sales", "100%", "a_b")


# What the comparison reads of each listed group (subject_search is what filters and moves).
SHOWN = ("id", "subject_search", "status", "participant_count", "invite_link", "description")


def _shown(page: list[GroupRecord]) -> list[tuple[object, ...]]:
    return [
        (g.id, g.subject.casefold(), g.status, g.participant_count, g.invite_link, g.description)
        for g in page
    ]


async def _reference(
    store: Store, flt: GroupFilter, offset: int, limit: int
) -> tuple[int, list[tuple[object, ...]]]:
    where = "number_id = :n AND deleted_at IS NULL"
    params: dict[str, object] = {"n": flt.number_id}
    if flt.status is not None:
        where += " AND status = :s"
        params["s"] = flt.status
    async with store.write() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT {', '.join(SHOWN)} FROM chat_groups WHERE {where}"
                    " ORDER BY created_at DESC, id DESC"
                ),
                params,
            )
        ).all()
    if flt.subject_contains is not None:
        needle = flt.subject_contains.casefold()
        rows = [r for r in rows if needle in r[1]]
    return len(rows), [tuple(r) for r in rows[offset : offset + limit]]


async def test_remembered_lists_follow_changes_made_elsewhere(
    store: Store, migrated_url: str
) -> None:
    seed_tenancy(migrated_url)
    writer = Store.open(migrated_url)
    rng = random.Random(11)
    ids: list[str] = []
    try:
        for i in range(120):
            ids.append(f"G{i:04d}")
            subject = f"{rng.choice(WORDS)} {i}"
            await write(
                writer,
                "INSERT INTO chat_groups (id, number_id, channel_type, subject, subject_search,"
                " status, participant_count, created_at, updated_at)"
                " VALUES (:id, 1, 'WHATSAPP', :s, :f, :st, 0, :t, :t)",
                id=ids[-1],
                s=subject,
                f=subject.casefold(),
                st=rng.choice(STATUSES),
                t=rng.randrange(40),  # ties on created_at: ordered by id
            )
        for step in range(300):
            flt = GroupFilter(
                number_id=1,
                status=rng.choice((None, None, "ACTIVE")),
                subject_contains=rng.choice((None, None, "sales", "100%", "a_b")),
            )
            size = rng.choice((1, 3, 7))
            offset = size * rng.randrange(0, 30)
            for _ in range(rng.choice((1, 2))):  # asked twice: the second from memory
                total, page = await store.list_groups(flt, offset, size)
                assert (total, _shown(page)) == await _reference(store, flt, offset, size), (
                    step,
                    flt,
                    offset,
                    size,
                )
            change = rng.random()
            target = rng.choice(ids)
            if change < 0.2:
                renamed = f"{rng.choice(WORDS)} renamed"
                await write(
                    writer,
                    "UPDATE chat_groups SET subject = :s, subject_search = :f WHERE id = :id",
                    s=renamed,
                    f=renamed.casefold(),
                    id=target,
                )
            elif change < 0.35:
                await write(
                    writer,
                    "UPDATE chat_groups SET status = :s WHERE id = :id",
                    s=rng.choice(STATUSES),
                    id=target,
                )
            elif change < 0.45:
                await write(
                    writer, "UPDATE chat_groups SET deleted_at = 1 WHERE id = :id", id=target
                )
            elif change < 0.55:
                ids.append(f"H{step:04d}")
                await write(
                    writer,
                    "INSERT INTO chat_groups (id, number_id, channel_type, subject,"
                    " subject_search, status, participant_count, created_at, updated_at)"
                    " VALUES (:id, 1, 'WHATSAPP', 'sales new', 'sales new', 'ACTIVE', 0, :t, :t)",
                    id=ids[-1],
                    t=rng.randrange(40),
                )
            elif change < 0.7:
                # Shown by an item, not by the order: remembered Totals and anchors stay valid,
                # remembered pages do not.
                await write(
                    writer,
                    "UPDATE chat_groups SET participant_count = participant_count + 1,"
                    " invite_link = :link, description = :d WHERE id = :id",
                    link=f"https://chat.whatsapp.com/{step}",
                    d=rng.choice((None, f"about {step}")),
                    id=target,
                )
    finally:
        await writer.dispose()


async def test_unshown_changes_keep_the_version(store: Store, migrated_url: str) -> None:
    seed_tenancy(migrated_url)
    insert = (
        "INSERT INTO chat_groups (id, number_id, channel_type, subject, subject_search, status,"
        " participant_count, created_at, updated_at) VALUES ('G1', 1, 'WHATSAPP', 's', 's',"
        " 'ACTIVE', 0, 1, 1)"
    )
    await write(store, insert)

    async def versions() -> tuple[int, int]:
        async with store.write() as conn:
            row = (
                await conn.execute(
                    text("SELECT version, content FROM chat_group_versions WHERE number_id = 1")
                )
            ).first()
        return int(row.version), int(row.content)

    first, content = await versions()
    await write(store, "UPDATE chat_groups SET participant_count = 3, invite_link = 'x'")
    assert await versions() == (first, content + 1)  # a page shows these; the order does not
    await write(store, "UPDATE chat_groups SET status = 'ACTIVE'")  # the same value
    await write(store, "UPDATE chat_groups SET participant_count = 3")
    assert await versions() == (first, content + 1)
    await write(store, "UPDATE chat_groups SET status = 'SUSPENDED'")
    assert await versions() == (first + 1, content + 2)
    await write(store, "UPDATE chat_groups SET number_id = 2")
    async with store.write() as conn:
        rows = (
            await conn.execute(text("SELECT number_id, version, content FROM chat_group_versions"))
        ).all()
    assert {r.number_id: (r.version, r.content) for r in rows} == {
        1: (first + 2, content + 3),
        2: (1, 1),
    }


async def test_a_subject_filter_longer_than_any_subject_matches_nothing(
    store: Store, migrated_url: str
) -> None:
    """SQLite refuses LIKE patterns over 50,000 bytes; such a filter is an empty page, never an
    unavailable database."""
    seed_tenancy(migrated_url)
    await write(
        store,
        "INSERT INTO chat_groups (id, number_id, channel_type, subject, subject_search, status,"
        " participant_count, created_at, updated_at) VALUES ('G1', 1, 'WHATSAPP', 'a', 'a',"
        " 'ACTIVE', 0, 1, 1)",
    )
    for length in (513, 50_001, 100_000):
        flt = GroupFilter(number_id=1, subject_contains="a" * length, business_number="n")
        assert await store.list_groups(flt, 0, 20) == (0, [])
    assert (await store.list_groups(GroupFilter(number_id=1, subject_contains="a"), 0, 20))[0] == 1
