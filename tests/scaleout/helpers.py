"""The scale-out cluster's description, and Redis found or skipped (a failure under CI=true)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx
import pytest
import redis

from tests.live import LiveServer
from tests.receiver import Receiver

REDIS_URL = os.environ.get("OPENCAMS_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Redis is required under CI but unavailable: {exc}")
        pytest.skip(f"Redis unavailable ({exc}); set OPENCAMS_TEST_REDIS or start it")
    return REDIS_URL


@dataclass(frozen=True)
class Cluster:
    """Servers over one PostgreSQL and one Redis, and the standalone simulator they call."""

    servers: list[LiveServer]
    sim_url: str
    receiver: Receiver  # NUM_CALLBACKS's events go here


def is_up(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
