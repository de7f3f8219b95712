"""Several servers over one PostgreSQL and one Redis, with a standalone simulator as Meta."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.conformance.conftest import APP_SECRET, TENANCY, wait_for
from tests.databases import database_url
from tests.live import BIN, LiveServer, free_port, live_server

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
    servers: list[LiveServer]
    sim_url: str


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis_url = redis_or_skip()
    work: Path = tmp_path_factory.mktemp("cluster")
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    env = {
        "OPENCAMS_SANDBOX": "false",
        "OPENCAMS_GRAPH_BASE_URL": f"{sim_url}/graph/v23.0",
        "OPENCAMS_REDIS_URL": redis_url,
    }
    with ExitStack() as stack:
        url = stack.enter_context(database_url("postgresql", work))
        servers = [
            stack.enter_context(live_server(url, work / f"server{i}", TENANCY, **env))
            for i in range(2)
        ]
        log = stack.enter_context((work / "sim.log").open("w"))
        sim = subprocess.Popen(
            [
                str(BIN),
                "sandbox",
                "--port",
                str(sim_port),
                "--app-secret",
                APP_SECRET,
                "--callback",
                f"{servers[0].url}/webhooks/whatsapp",
                "--webhook-delay",
                "0.05",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(lambda: (sim.terminate(), sim.wait(timeout=10)))
        wait_for(lambda: _up(f"{sim_url}/control/state"), timeout=20)
        yield Cluster(servers, sim_url)
