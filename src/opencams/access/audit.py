"""The audit log: every call, with RequestId, principal, action, decision and the deciding
statement (`opencams audit` reads it).

Records are written in batches by a background task (at most every AUDIT_FLUSH_SECONDS, and on
shutdown), so that auditing costs the request path an append to a queue, not a database write.
The price: a process killed outright (SIGKILL, power loss) loses the last fraction of a second
of audit records; the operations themselves are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from opencams.errors import StoreError, StoreUnavailable
from opencams.metrics import AUDIT_QUEUE
from opencams.store import audit as audit_store
from opencams.store.clock import now_ms
from opencams.store.repo import Store

log = logging.getLogger("opencams.audit")

AUDIT_FLUSH_SECONDS = 0.25
MAX_QUEUE = 100_000
# Records per transaction: under load a quarter of a second holds thousands, and one
# transaction of them all would hold the event loop (SQLite writes in its thread) for
# milliseconds, a stall every request then in flight would wait out. Chunks give it a turn.
AUDIT_CHUNK = 200


class Audit(Protocol):
    def record(self, **fields: Any) -> None:
        """One call's record (request_id, account_id, principal_type, principal, access_key_id,
        action, decision, statement, code, source_ip); written later, in a batch."""


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, **fields: Any) -> None:
        if len(self._pending) >= MAX_QUEUE:
            log.error("audit queue full (%d records): dropping the oldest", MAX_QUEUE)
            del self._pending[: MAX_QUEUE // 10]
        self._pending.append({"at": now_ms(), **fields})
        AUDIT_QUEUE.set(len(self._pending))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def flush(self) -> bool:
        """Write the records pending now, AUDIT_CHUNK to a transaction, with a turn of the
        event loop between two; False if the database is unavailable (what is not written yet
        is kept for the next flush). Records added meanwhile wait for the next flush: under
        load requests finish in every turn, so taking them too would write a row at a time."""
        pending, self._pending = self._pending, []
        try:
            while pending:
                batch, pending = pending[:AUDIT_CHUNK], pending[AUDIT_CHUNK:]
                if not await self._write(batch):
                    pending = batch + pending
                    return False
                if pending:
                    await asyncio.sleep(0)
            return True
        finally:
            # Not written yet (the database unavailable, or the task cancelled at shutdown, which
            # flushes again): kept, in order, before what came meanwhile.
            self._pending = pending + self._pending
            AUDIT_QUEUE.set(len(self._pending))

    async def _write(self, batch: list[dict[str, Any]]) -> bool:
        """One transaction of records; False (nothing written) if the database is unavailable."""
        try:
            async with self._store.write() as tx:
                await audit_store.record_audit(tx, batch)
        except StoreUnavailable as exc:
            log.warning("audit records kept in memory, database unavailable: %s", exc)
            return False
        except StoreError as exc:
            # Not expected (records are fitted to their columns): write them one by one, so
            # that one the database refuses costs only itself.
            log.error(
                "audit batch refused (%s): writing its %d records one by one", exc, len(batch)
            )
            for record in batch:
                try:
                    async with self._store.write() as tx:
                        await audit_store.record_audit(tx, [record])
                except StoreError as single:
                    log.error("audit record %s dropped: %s", record.get("request_id"), single)
        return True

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(AUDIT_FLUSH_SECONDS)
            await self.flush()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending and await self.flush():
            pass
