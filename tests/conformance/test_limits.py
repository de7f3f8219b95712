"""The 10,000-live-groups limit of a number, and groups that are deleted or refused."""

from __future__ import annotations

import uuid

from alibabacloud_cams20200606.client import Client
from sqlalchemy import insert, update

from opencams.store.db import make_sync_engine
from opencams.store.tables import chat_groups
from tests.conformance.helpers import add_group, list_groups, make_client, wait_for
from tests.conformance.tenancy import KEY_A, NUM_LIMIT
from tests.live import LiveServer, query_db


def number_id(server: LiveServer, number: str) -> int:
    return int(
        query_db(server, "SELECT id FROM business_numbers WHERE number = :n", n=number)[0][0]
    )


def seed(server: LiveServer, number: str, count: int, prefix: str, status: str = "ACTIVE") -> None:
    nid = number_id(server, number)
    rows = [
        {
            "id": f"{prefix}{i:08d}",
            "number_id": nid,
            "channel_type": "WHATSAPP",
            "subject": f"seeded {prefix} {i}",
            "subject_search": f"seeded {prefix} {i}",
            "status": status,
            "participant_count": 0,
            "created_at": 1_700_000_000_000 + i,
            "updated_at": 1_700_000_000_000 + i,
        }
        for i in range(count)
    ]
    engine = make_sync_engine(server.env["OPENCAMS_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(insert(chat_groups), rows)
    engine.dispose()


def set_columns(server: LiveServer, group_id: str, **values: object) -> None:
    engine = make_sync_engine(server.env["OPENCAMS_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(update(chat_groups).where(chat_groups.c.id == group_id).values(**values))
    engine.dispose()


def test_ten_thousand_live_groups_per_number(server: LiveServer) -> None:
    # Signer-independent, and it fills the number: once per backend, not once per signer.
    client = make_client(server, KEY_A)
    prefix = f"L{uuid.uuid4().hex[:6].upper()}"
    existing = list_groups(client, NUM_LIMIT).total
    seed(server, NUM_LIMIT, 10_000 - existing - 1, prefix)
    seed(server, NUM_LIMIT, 3, prefix + "X", status="INACTIVE")  # refused by Meta: not live

    assert add_group(client, NUM_LIMIT, "the ten thousandth").code == "OK"
    refused = add_group(client, NUM_LIMIT, "one too many")
    assert refused.code == "LimitExceeded.ChatGroup"
    assert "10000" in refused.message
    assert list_groups(client, NUM_LIMIT, subject="one too many").total == 0
    assert list_groups(client, NUM_LIMIT).total == 10_003

    # A deleted group frees its place, and is never listed or counted again.
    victim = f"{prefix}00000007"
    marker = f"victim {prefix}"
    set_columns(server, victim, subject=marker, subject_search=marker.casefold())
    assert [g.group_id for g in list_groups(client, NUM_LIMIT, subject=marker).list] == [victim]
    set_columns(server, victim, deleted_at=1_800_000_000_000)
    assert list_groups(client, NUM_LIMIT).total == 10_002
    assert list_groups(client, NUM_LIMIT, subject=marker).total == 0
    assert add_group(client, NUM_LIMIT, "room again").code == "OK"
    wait_for(
        lambda: (
            list_groups(client, NUM_LIMIT, subject="room again").list[0].group_status == "ACTIVE"
        )
    )


def test_deep_page_on_a_large_number(server: LiveServer, client: Client) -> None:
    total = list_groups(client, NUM_LIMIT).total
    assert total >= 10_000
    last_page = (total + 99) // 100
    tail = list_groups(client, NUM_LIMIT, index=last_page, size=100)
    assert tail.total == total
    assert len(tail.list) == total - (last_page - 1) * 100
    assert list_groups(client, NUM_LIMIT, index=last_page + 1, size=100).list == []
