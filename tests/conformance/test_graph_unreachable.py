"""A Meta that cannot be reached: ChannelError.Unavailable, nothing written, no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.helpers import add_group, list_groups, make_client
from tests.conformance.tenancy import KEY_A, NUM_FAIL, SPACE_A1, TENANCY
from tests.databases import database_url
from tests.live import free_port, live_server


def test_graph_unreachable(tmp_path: Path) -> None:
    closed = free_port()
    with (
        database_url("sqlite", tmp_path) as url,
        live_server(
            url,
            tmp_path / "srv",
            TENANCY,
            OPENCAMS_GRAPH_BASE_URL=f"http://127.0.0.1:{closed}/graph/v23.0",
            OPENCAMS_SANDBOX="false",
        ) as server,
    ):
        client = make_client(server, KEY_A)
        body = add_group(client, NUM_FAIL, "Nobody home", space=SPACE_A1)
        assert body.code == "ChannelError.Unavailable"
        assert "connect" in body.message
        assert list_groups(client, NUM_FAIL).total == 0
        assert "Traceback" not in server.log()


def test_graph_that_never_answers(tmp_path: Path) -> None:
    """A Meta that accepts connections and then says nothing: bounded by the Graph timeout."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        with (
            database_url("sqlite", tmp_path) as url,
            live_server(
                url,
                tmp_path / "srv",
                TENANCY,
                OPENCAMS_GRAPH_BASE_URL=f"http://127.0.0.1:{port}/graph/v23.0",
                OPENCAMS_GRAPH_TIMEOUT_SECONDS="1",
                OPENCAMS_SANDBOX="false",
            ) as server,
        ):
            client = make_client(server, KEY_A)
            started = time.monotonic()
            body = add_group(client, NUM_FAIL, "Into the void", space=SPACE_A1)
            elapsed = time.monotonic() - started
            assert body.code == "ChannelError.Unavailable"
            assert "did not answer in time" in body.message
            assert elapsed < 5  # one attempt: a create that may have been received is not repeated
            assert list_groups(client, NUM_FAIL).total == 0
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
