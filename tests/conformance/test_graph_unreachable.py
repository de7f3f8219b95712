"""A Meta that cannot be reached: ChannelError.Unavailable, nothing written, no traceback."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.conftest import (
    KEY_A,
    NUM_FAIL,
    SPACE_A1,
    TENANCY,
    add_group,
    list_groups,
    make_client,
)
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
