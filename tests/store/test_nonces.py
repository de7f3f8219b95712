"""Nonces: used once per AccessKeyId within their lifetime, reusable after it, on both backends."""

from __future__ import annotations

from opencams.store import access
from opencams.store.repo import Store


async def prune(store: Store) -> int:
    async with store.write() as tx:
        return await access.prune_nonces(tx)


async def test_nonce_lifetime(store: Store) -> None:
    assert await store.use_nonce("k1", "n", 60_000) is True
    assert await store.use_nonce("k1", "n", 60_000) is False
    assert await store.use_nonce("k2", "n", 60_000) is True  # another key's own
    assert await store.use_nonce("k1", "expired", -1) is True
    assert await store.use_nonce("k1", "expired", 60_000) is True  # its lifetime was over
    assert await store.use_nonce("k1", "expired", 60_000) is False
    assert await prune(store) == 0


async def test_nonces_of_one_turn_are_written_together(store: Store) -> None:
    """Concurrent requests' nonces go in one transaction; a nonce given twice in it, or one
    already used, is refused; each caller gets its own answer."""
    import asyncio

    assert await store.use_nonce("k1", "old", 60_000) is True
    answers = await asyncio.gather(
        *(store.use_nonce("k1", n, 60_000) for n in ["a", "b", "a", "old", "c", "b", "d"])
    )
    assert answers == [True, True, False, False, True, False, True]


async def test_a_failed_batch_fails_each_of_its_callers(store: Store) -> None:
    import asyncio

    import pytest

    from opencams.errors import StoreUnavailable

    async def broken(_each: object) -> list[bool]:
        raise StoreUnavailable("database gone")

    store._nonces._write = broken  # type: ignore[method-assign, assignment]
    results = await asyncio.gather(
        store.use_nonce("k1", "x", 60_000), store.use_nonce("k1", "y", 60_000),
        return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(r, StoreUnavailable) for r in results)
    with pytest.raises(StoreUnavailable):
        await store.use_nonce("k1", "z", 60_000)
