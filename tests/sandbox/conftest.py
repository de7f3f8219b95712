"""Fixtures for the simulator tests: the Simulator driven over ASGI, and a real loopback HTTP
server (uvicorn) receiving its webhooks so signatures are checked over the raw bytes sent."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn

from opencams.sandbox import SandboxConfig, Simulator
from tests.sandbox.helpers import APP_SECRET, DELAY, DISPLAY, NUMBER, TOKEN, WABA, Receiver


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    """One uvicorn server for the whole session, in its own thread and event loop: starting
    and stopping uvicorn costs ~0.2 s, too much to pay per test."""
    recv = Receiver()
    config = uvicorn.Config(
        recv.app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        interface="asgi3",
        http="h11",
        ws="none",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "webhook receiver failed to start"
        assert time.monotonic() < deadline, "webhook receiver did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    recv.url = f"http://127.0.0.1:{port}/webhooks/whatsapp"
    yield recv
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.reset()
    return receiver_server


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[Simulator]:
    simulator = Simulator(
        SandboxConfig(
            callback_url=receiver.url,
            app_secret=APP_SECRET,
            webhook_delay=DELAY,
            retry_delays=(0.05, 0.05),
        )
    )
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app),
        base_url="http://sandbox",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as http:
        await http.post(
            "/control/numbers",
            json={
                "phone_number_id": NUMBER,
                "waba_id": WABA,
                "display_phone_number": DISPLAY,
                "access_token": TOKEN,
            },
        )
        yield http
