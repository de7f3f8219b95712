"""`opencams sandbox` on its own port, and a server that uses it as its Meta (no mounted simulator)."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import httpx

from tests.conformance.helpers import add_group, list_groups, make_client, wait_for
from tests.conformance.tenancy import APP_SECRET, KEY_A, NUM_LOOP, TENANCY
from tests.databases import database_url
from tests.live import BIN, free_port, live_server


def test_server_against_a_standalone_simulator(tmp_path: Path) -> None:
    sim_port = free_port()
    # The server starts first, pointed at the simulator's port; then the simulator, pointed back
    # at the server's webhook receiver.
    with (
        database_url("sqlite", tmp_path) as url,
        live_server(
            url,
            tmp_path / "srv",
            TENANCY,
            OPENCAMS_SANDBOX="false",
            OPENCAMS_GRAPH_BASE_URL=f"http://127.0.0.1:{sim_port}/graph/v23.0",
        ) as server,
    ):
        assert httpx.get(f"{server.url}/_sandbox/control/state").status_code == 404
        log = (tmp_path / "sim.log").open("w")
        sim = subprocess.Popen(
            [
                str(BIN),
                "sandbox",
                "--port",
                str(sim_port),
                "--callback",
                f"{server.url}/webhooks/whatsapp",
                "--app-secret",
                APP_SECRET,
                "--webhook-delay",
                "0.05",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{sim_port}/control/state").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "sim.log").read_text()
                time.sleep(0.1)
            client = make_client(server, KEY_A)
            subject = f"Standalone {uuid.uuid4().hex[:8]}"
            assert add_group(client, NUM_LOOP, subject).code == "OK"
            group = wait_for(
                lambda: next(
                    (
                        g
                        for g in list_groups(client, NUM_LOOP, subject=subject).list
                        if g.group_status == "ACTIVE"
                    ),
                    None,
                )
            )
            assert group.invite_link.startswith("https://chat.whatsapp.com/")
            state = httpx.get(f"http://127.0.0.1:{sim_port}/control/state").json()
            assert subject in str(state)
        finally:
            sim.terminate()
            sim.wait(timeout=10)
            log.close()
