"""Group commit: what many requests write during one turn of the event loop, written together.

Every signed request records its nonce before it may go on. Written one by one, each is a
transaction of its own (SQLite: a commit to the WAL; PostgreSQL: a round trip and a commit);
under load, dozens of requests reach that point in the same turn of the loop. `GroupCommit`
collects them and writes them at the next turn, in one transaction (on PostgreSQL one pipelined
round trip), each caller getting its own result, or the failure of the whole batch.

Reads batch the same way where a round trip costs more than the wait for the next turn
(PostgreSQL: the AccessKeys and list versions of one turn's requests, one statement each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")

MAX_BATCH = 256


class GroupCommit(Generic[P, R]):
    def __init__(self, write: Callable[[Sequence[P]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._pending: list[tuple[P, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: P) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._start)
        self._pending.append((item, future))
        if len(self._pending) >= MAX_BATCH:
            self._start()
        return await future

    def _start(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._tasks.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[tuple[P, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if len(results) != len(batch):
            error = RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # its caller may have gone (cancelled)
                future.set_result(result)

    async def drain(self) -> None:
        """Write what is pending and wait for the writes under way (at shutdown)."""
        self._start()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
