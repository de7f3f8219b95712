"""Nonces: used once per AccessKeyId within their lifetime, reusable after it, on both backends."""

from __future__ import annotations

from opencams.store.repo import Store


async def test_nonce_lifetime(store: Store) -> None:
    assert await store.use_nonce("k1", "n", 60_000) is True
    assert await store.use_nonce("k1", "n", 60_000) is False
    assert await store.use_nonce("k2", "n", 60_000) is True  # another key's own
    assert await store.use_nonce("k1", "expired", -1) is True
    assert await store.use_nonce("k1", "expired", 60_000) is True  # its lifetime was over
    assert await store.use_nonce("k1", "expired", 60_000) is False
    assert await store.prune_nonces() == 0
