"""Several servers over one PostgreSQL and one Redis, with a standalone simulator as Meta."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conformance.helpers import wait_for
from tests.conformance.tenancy import (
    APP_SECRET,
    CALLBACK_SECRET_A,
    NUM_CALLBACKS,
    SPACE_A1,
    TENANCY,
)
from tests.databases import database_url
from tests.live import BIN, free_port, live_server
from tests.receiver import FAST_CALLBACKS, receiving, with_callbacks
from tests.scaleout.helpers import Cluster, is_up, redis_or_skip


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
        **FAST_CALLBACKS,
    }
    with ExitStack() as stack:
        receiver = stack.enter_context(receiving(CALLBACK_SECRET_A))
        tenancy = with_callbacks(TENANCY, SPACE_A1, NUM_CALLBACKS, receiver.url)
        url = stack.enter_context(database_url("postgresql", work))
        servers = [
            stack.enter_context(live_server(url, work / f"server{i}", tenancy, **env))
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

        def stop_sim() -> None:
            sim.terminate()
            sim.wait(timeout=10)

        stack.callback(stop_sim)
        wait_for(lambda: is_up(f"{sim_url}/control/state"), timeout=20)
        yield Cluster(servers, sim_url, receiver)
