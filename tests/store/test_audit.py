"""The audit log stores what a client sent, however long or odd: each record is fitted to its
columns, so that one hostile value cannot take its batch-mates with it."""

from __future__ import annotations

from opencams.store import audit
from opencams.store.repo import Store


def _event(request_id: str, action: str) -> dict[str, object]:
    return {
        "request_id": request_id,
        "at": 1,
        "account_id": None,
        "principal_type": None,
        "principal": None,
        "access_key_id": "k\x00" * 100,
        "action": action,
        "decision": "error",
        "statement": None,
        "code": "InvalidAction.NotFound",
        "source_ip": "127.0.0.1",
    }


async def test_a_hostile_record_is_fitted_and_its_batch_kept(store: Store) -> None:
    batch = [_event("R1", "ListChatGroup"), _event("R2", "A" * 100 + "\ud800"), _event("R3", "x")]
    async with store.write() as tx:
        await audit.record_audit(tx, batch)
    async with store.read() as tx:
        rows = await audit.audit_rows(tx)
    by_id = {row["request_id"]: row for row in rows}
    assert set(by_id) == {"R1", "R2", "R3"}
    assert by_id["R2"]["action"] == "A" * 64  # the column's length
    assert "\x00" not in by_id["R1"]["access_key_id"]
    assert len(by_id["R1"]["access_key_id"]) == 128


async def test_every_decision_is_stored_whole(store: Store) -> None:
    decisions = ("allow", "deny", "soft-deny", "error")
    async with store.write() as tx:
        await audit.record_audit(
            tx,
            [{**_event(f"D{i}", "ListChatGroup"), "decision": d} for i, d in enumerate(decisions)],
        )
    async with store.read() as tx:
        stored = {row["decision"] for row in await audit.audit_rows(tx)}
    assert stored == set(decisions)
