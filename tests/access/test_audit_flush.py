"""The audit log's flush under load: thousands of pending records go out in chunks, each its own
transaction, with a turn of the event loop between two, so that requests in flight never wait
for one long write; what cannot be written is kept, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from opencams.access import audit as audit_log
from opencams.access.audit import AUDIT_CHUNK, AuditLog
from opencams.errors import StoreUnavailable
from opencams.store import audit
from opencams.store.repo import Store


def _fields(i: int) -> dict[str, Any]:
    return {
        "request_id": f"R{i:05d}",
        "account_id": None,
        "principal_type": None,
        "principal": None,
        "access_key_id": None,
        "action": "ListChatGroup",
        "decision": "allow",
        "statement": None,
        "code": "OK",
        "source_ip": "127.0.0.1",
    }


async def test_a_large_flush_is_written_in_chunks_that_let_the_loop_run(store: Store) -> None:
    log = AuditLog(store)
    count = AUDIT_CHUNK * 3 + 7
    for i in range(count):
        log.record(**_fields(i))
    turns = 0

    async def beside() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(beside())
    await asyncio.sleep(0)
    before = turns
    assert await log.flush()
    between = turns - before
    other.cancel()
    async with store.read() as tx:
        rows = await audit.audit_rows(tx, limit=count + 10)
    written = [row["request_id"] for row in sorted(rows, key=lambda row: row["id"])]
    assert written == [f"R{i:05d}" for i in range(count)]  # all of them, in order
    assert between >= 3  # a turn after each of the first three chunks at least
    await log.aclose()


async def test_an_unavailable_database_keeps_the_unwritten_chunks_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(store)
    count = AUDIT_CHUNK * 2 + 5
    for i in range(count):
        log.record(**_fields(i))
    real = audit.record_audit
    calls = 0

    async def second_fails(tx: Any, batch: list[dict[str, Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StoreUnavailable("down for a moment")
        await real(tx, batch)

    monkeypatch.setattr(audit_log.audit_store, "record_audit", second_fails)
    assert not await log.flush()
    log.record(**_fields(count))  # came meanwhile: after the kept ones
    monkeypatch.setattr(audit_log.audit_store, "record_audit", real)
    assert await log.flush()
    async with store.read() as tx:
        rows = await audit.audit_rows(tx, limit=count + 10)
    written = [row["request_id"] for row in sorted(rows, key=lambda row: row["id"])]
    assert written == [f"R{i:05d}" for i in range(count + 1)]
    await log.aclose()
