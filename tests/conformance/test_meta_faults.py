"""A Meta that refuses connections: bounded retries, then the circuit opens (calls fail fast),
and closes again once Meta answers. Nothing is written while Meta is away."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from tests.conformance.helpers import add_group, list_groups, make_client, wait_for
from tests.conformance.tenancy import APP_SECRET, KEY_A, NUM_FAIL, TENANCY
from tests.databases import database_url
from tests.live import BIN, free_port, live_server


def test_circuit_breaker_opens_and_closes(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "OPENCAMS_SANDBOX": "false",
        "OPENCAMS_GRAPH_BASE_URL": f"http://127.0.0.1:{port}/graph/v23.0",
        "OPENCAMS_GRAPH_BREAKER_FAILURES": "2",
        "OPENCAMS_GRAPH_BREAKER_SECONDS": "2",
    }
    with (
        database_url("sqlite", tmp_path) as url,
        live_server(url, tmp_path / "srv", TENANCY, **env) as server,
    ):
        client = make_client(server, KEY_A)
        for _ in range(2):
            body = add_group(client, NUM_FAIL, "nobody home")
            assert body.code == "ChannelError.Unavailable" and "connect" in body.message
        started = time.monotonic()
        fast = add_group(client, NUM_FAIL, "still nobody")
        assert fast.code == "ChannelError.Unavailable" and "circuit open" in fast.message
        assert time.monotonic() - started < 0.5  # no network wait at all
        assert list_groups(client, NUM_FAIL).total == 0

        log = (tmp_path / "sim.log").open("w")
        sim = subprocess.Popen(
            [
                str(BIN),
                "sandbox",
                "--port",
                str(port),
                "--app-secret",
                APP_SECRET,
                "--callback",
                f"{server.url}/webhooks/whatsapp",
                "--webhook-delay",
                "0.05",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _up(f"http://127.0.0.1:{port}/control/state"), timeout=20)
            time.sleep(2.1)  # the cool-down
            back = add_group(client, NUM_FAIL, "Meta is back")
            assert back.code == "OK", back.to_map()
            wait_for(
                lambda: (
                    list_groups(client, NUM_FAIL, subject="Meta is back").list[0].group_status
                    == "ACTIVE"
                )
            )
        finally:
            sim.terminate()
            sim.wait(timeout=10)
            log.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
