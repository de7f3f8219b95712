"""opencams.testing used directly: the fixtures in this suite, `running()`, reset, confirmations,
the Sandbox API, and `opencams serve --ephemeral`."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException

from opencams.testing import (
    CamsServer,
    SandboxError,
    SdkMissing,
    ServerPool,
    TenancyError,
    default_tenancy,
    running,
)
from opencams.testing.controls import TestingLayer

BIN = Path(sys.executable).parent / "opencams"


def where(server: CamsServer) -> dict[str, str]:
    assert server.space is not None and server.number is not None
    return {"cust_space_id": server.space, "business_number": server.number}


def add(client: Any, server: CamsServer, subject: str) -> str:
    body = client.add_chat_group(m.AddChatGroupRequest(**where(server), subject=subject)).body
    assert body.code == "OK", body.to_map()
    return str(find(client, server, subject).group_id)


def listed(client: Any, server: CamsServer, **filters: Any) -> Any:
    page = m.ListChatGroupRequestPage(index=1, size=100)
    request = m.ListChatGroupRequest(**where(server), page=page, **filters)
    body = client.list_chat_group(request).body
    assert body.code == "OK", body.to_map()
    return body.data


def find(client: Any, server: CamsServer, subject: str) -> Any:
    return listed(client, server, subject=subject).list[0]


def status(client: Any, server: CamsServer, group_id: str) -> str | None:
    for item in listed(client, server).list:
        if item.group_id == group_id:
            return str(item.group_status)
    return None


def rows(server: CamsServer, sql: str) -> list[Any]:
    with closing(sqlite3.connect(server.database)) as conn:
        return conn.execute(sql).fetchall()


# --- reset -------------------------------------------------------------------------------


def test_reset_forgets_activity_and_keeps_counts_right(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    first = add(cams_client, cams_server, "Alpha one")
    add(cams_client, cams_server, "Alpha two")
    cams_sandbox.tap_link(find(cams_client, cams_server, "Alpha one").invite_link, "8613900000001")
    # Totals the counts answer, and a Subject Total the process remembers for a list version.
    assert listed(cams_client, cams_server).total == 2
    assert listed(cams_client, cams_server, subject="alpha").total == 2
    versions = rows(cams_server, "SELECT number_id, version FROM chat_group_versions")

    cams_server.reset()

    for table in ("chat_groups", "operations", "participants", "webhook_events", "used_nonces"):
        assert rows(cams_server, f"SELECT count(*) FROM {table}") == [(0,)], table
    assert rows(cams_server, "SELECT sum(listed) FROM chat_group_counts") == [(0,)]
    after = dict(rows(cams_server, "SELECT number_id, version FROM chat_group_versions"))
    assert all(after[n] > v for n, v in versions)  # moved on, never back
    assert cams_sandbox.state()["groups"] == []

    assert listed(cams_client, cams_server).total == 0
    assert listed(cams_client, cams_server, subject="alpha").total == 0
    second = add(cams_client, cams_server, "Alpha again")
    assert second != first
    assert listed(cams_client, cams_server).total == 1
    assert listed(cams_client, cams_server, subject="alpha").total == 1
    assert status(cams_client, cams_server, second) == "ACTIVE"


def test_reset_restores_the_simulator_and_the_mode(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    cams_sandbox.confirm_manually()
    cams_sandbox.webhooks.hold()
    cams_sandbox.webhooks.duplicate()
    cams_sandbox.fail_next("create", 131214)
    started = time.perf_counter()
    cams_server.reset()
    assert time.perf_counter() - started < 5  # (the benchmark measures it; this is a bound)

    state = cams_sandbox.state()
    assert state["fail_next"] == []
    assert (state["webhooks"]["held"], state["webhooks"]["duplicate"]) == (False, False)
    assert state["webhooks"]["operations_held"] is True  # immediate mode holds, then confirms
    group_id = add(cams_client, cams_server, "After reset")
    assert status(cams_client, cams_server, group_id) == "ACTIVE"
    assert len(cams_sandbox.state()["groups"]) == 1


def test_a_circuit_opened_by_one_test_is_closed_for_the_next(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    for _ in range(3 * 5):  # 5 calls, each tried 3 times, all unavailable
        cams_sandbox.fail_next("create", 2)
    for _ in range(5):
        body = cams_client.add_chat_group(m.AddChatGroupRequest(**where(cams_server), subject="x"))
        assert body.body.code == "ChannelError.Unavailable"
    cams_server.reset()
    assert add(cams_client, cams_server, "Meta is back")


# --- confirmations -------------------------------------------------------------------------


@pytest.mark.cams_confirm("manual")
def test_manual_confirmation_of_one_group_then_all(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    one = add(cams_client, cams_server, "One")
    two = add(cams_client, cams_server, "Two")
    assert status(cams_client, cams_server, one) == status(cams_client, cams_server, two)
    assert status(cams_client, cams_server, one) == "CREATING"
    with pytest.raises(SandboxError, match="CREATING"):
        cams_sandbox.suspend(one)  # not known to Meta yet

    assert cams_sandbox.confirm(one) == 1
    assert (status(cams_client, cams_server, one), status(cams_client, cams_server, two)) == (
        "ACTIVE",
        "CREATING",
    )
    assert cams_sandbox.confirm(one) == 0
    assert cams_sandbox.confirm_all() == 1
    assert status(cams_client, cams_server, two) == "ACTIVE"

    delete = m.DeleteChatGroupRequest(**where(cams_server), group_id=one)
    assert cams_client.delete_chat_group(delete).body.code == "OK"
    assert status(cams_client, cams_server, one) == "DELETING"
    assert cams_sandbox.confirm(one) == 1
    assert status(cams_client, cams_server, one) is None


def test_delayed_confirmation_can_be_hastened(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    cams_sandbox.confirm_after(30)
    group_id = add(cams_client, cams_server, "Later")
    assert status(cams_client, cams_server, group_id) == "CREATING"
    assert cams_sandbox.confirm(group_id) == 1
    assert status(cams_client, cams_server, group_id) == "ACTIVE"

    cams_sandbox.confirm_after(0.05)
    late = add(cams_client, cams_server, "A little later")
    deadline = time.monotonic() + 10
    while status(cams_client, cams_server, late) != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_switching_to_immediate_confirms_what_waits(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    cams_sandbox.confirm_manually()
    group_id = add(cams_client, cams_server, "Waiting")
    cams_sandbox.confirm_immediately()
    assert status(cams_client, cams_server, group_id) == "ACTIVE"


def test_bad_confirmation_modes_are_refused(cams_sandbox: Any) -> None:
    with pytest.raises(SandboxError, match="delay in seconds"):
        cams_sandbox.confirm_after(-1)
    with pytest.raises(ValueError, match="delay in seconds"):
        CamsServer(confirmations="later")  # type: ignore[arg-type]


# --- the Sandbox API -------------------------------------------------------------------------


def test_join_requests(cams_server: CamsServer, cams_client: Any, cams_sandbox: Any) -> None:
    group_id = add(cams_client, cams_server, "Approval")
    link = find(cams_client, cams_server, "Approval").invite_link
    with pytest.raises(SandboxError, match="require_approval"):
        cams_sandbox.request_join(link, "8613900000001")

    cams_sandbox.require_approval(group_id)
    request_id = cams_sandbox.request_join(link, "8613900000001")
    assert cams_sandbox.request_join(link, "8613900000001") == request_id
    assert rows(cams_server, "SELECT wa_id, state FROM join_requests") == [
        ("8613900000001", "pending")
    ]
    cams_sandbox.cancel_request(group_id, "8613900000001")
    assert rows(cams_server, "SELECT state FROM join_requests") == [("revoked",)]
    assert cams_sandbox.group(group_id)["join_requests"] == []


@pytest.mark.cams_tenancy(default_tenancy(numbers=2))
def test_eligibility_per_number(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    cams_sandbox.eligible(False, number="8613800000002")
    other = {**where(cams_server), "business_number": "8613800000002"}
    refused = cams_client.add_chat_group(m.AddChatGroupRequest(**other, subject="No")).body
    assert refused.code == "ChannelError.NotEligible"
    assert add(cams_client, cams_server, "Yes")  # the first number is still eligible
    cams_sandbox.eligible(True, number="8613800000002")
    assert cams_client.add_chat_group(m.AddChatGroupRequest(**other, subject="Now")).body.code == (
        "OK"
    )
    with pytest.raises(SandboxError, match="no business number"):
        cams_sandbox.eligible(False, number="999999999")


def test_dead_letters_and_redelivery(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    group_id = add(cams_client, cams_server, "Unlucky")
    link = find(cams_client, cams_server, "Unlucky").invite_link
    cams_sandbox._control("webhooks/callback", {"callback_url": "http://127.0.0.1:9/nowhere"})
    cams_sandbox.tap_link(link, "8613900000009")
    assert cams_sandbox.webhooks.flush()["retrying"] == 1
    for _ in range(3):
        cams_sandbox.webhooks.flush()
    assert [d["type"] for d in cams_sandbox.webhooks.dead_letters()] == ["group_participants_add"]
    assert cams_server.sandbox.group(group_id)["participants"] == ["8613900000009"]

    cams_server.reset()  # puts the server's own callback back
    assert cams_sandbox.webhooks.dead_letters() == []


def test_sandbox_refusals_carry_meta_codes(
    cams_server: CamsServer, cams_client: Any, cams_sandbox: Any
) -> None:
    group_id = add(cams_client, cams_server, "Full")
    link = find(cams_client, cams_server, "Full").invite_link
    for n in range(8):
        cams_sandbox.tap_link(link, f"86139000001{n:02d}")
    with pytest.raises(SandboxError) as full:
        cams_sandbox.tap_link(link, "8613900000199")
    assert (full.value.status, full.value.code) == (409, 131204)
    with pytest.raises(SandboxError) as unknown:
        cams_sandbox.leave(group_id, "8613900000199")
    assert unknown.value.status == 404


# --- servers -------------------------------------------------------------------------------


def test_running_beside_the_fixture(cams_server: CamsServer, cams_client: Any) -> None:
    with running(default_tenancy(numbers=2)) as other:
        assert other.endpoint != cams_server.endpoint
        assert other.ready_seconds is not None
        client = other.client(signature="v1")
        group_id = add(client, other, "Elsewhere")
        assert status(client, other, group_id) == "ACTIVE"
        assert listed(cams_client, cams_server).total == 0  # each server its own database
        directory = other.directory
    assert not directory.exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{other.url}/healthz", timeout=2)


def test_settings_and_tenancy_errors_are_clear() -> None:
    with pytest.raises(TenancyError, match=r"accounts\.0\.id"):
        CamsServer({"accounts": [{"id": "not digits", "name": "x"}]})
    with pytest.raises(TenancyError, match="cannot read"):
        CamsServer("/nonexistent/tenancy.yaml")
    with pytest.raises(ValueError, match="database_url"):
        CamsServer(settings={"database_url": "sqlite:///elsewhere.db"})


def test_a_yaml_tenancy_and_settings(tmp_path: Path) -> None:
    import yaml

    tenancy = default_tenancy()
    tenancy["accounts"][0]["spaces"][0]["id"] = "cams-yaml01"
    (tmp_path / "tenancy.yaml").write_text(yaml.safe_dump(tenancy))
    with running(tmp_path / "tenancy.yaml", settings={"max_groups_per_number": 1}) as cams:
        assert cams.space == "cams-yaml01"
        client = cams.client()
        add(client, cams, "The only one")
        body = client.add_chat_group(m.AddChatGroupRequest(**where(cams), subject="Too many")).body
        assert body.code == "LimitExceeded.ChatGroup"


def test_apply_provisions_more_and_the_pool_lets_the_server_go() -> None:
    pool = ServerPool()
    try:
        server = pool.acquire()
        assert pool.acquire() is server  # lent again (and reset)
        server.apply(
            {
                "accounts": [
                    {
                        "id": "1000000000000001",
                        "name": "test",
                        "chat_groups_allowlisted": True,
                        "ram_users": [
                            {
                                "name": "nobody",
                                "access_keys": [
                                    {"id": "LTAI5tNobody0001", "secret": "nobody-secret-0123456789"}
                                ],
                            }
                        ],
                    }
                ]
            }
        )
        with pytest.raises(ClientException) as denied:
            listed(server.client(user="nobody"), server)
        assert denied.value.code == "Forbidden.RAM"
        pool.release(server)
        assert not server.running
        assert pool.acquire() is not server
    finally:
        pool.close()
    assert pool.servers == []


def test_the_sdk_is_needed_only_for_clients(
    cams_server: CamsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "alibabacloud_cams20200606.client", None)
    with pytest.raises(SdkMissing, match="pip install alibabacloud-cams20200606"):
        cams_server.client()


def test_the_test_controls_are_for_this_machine_and_this_database(
    cams_server: CamsServer,
) -> None:
    layer = cams_server._layer
    assert layer is not None

    async def remote() -> httpx.Response:
        transport = httpx.ASGITransport(app=layer, client=("192.0.2.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://cams") as client:
            return await client.post("/_testing/reset")

    assert asyncio.run(remote()).status_code == 403

    elsewhere = TestingLayer(
        layer.app, layer.parts, database=Path("/tmp/another.db"), default="immediate"
    )
    assert not elsewhere.own_database
    assert layer.own_database


def test_serve_ephemeral_prints_credentials_and_serves() -> None:
    proc = subprocess.Popen(
        [str(BIN), "serve", "--ephemeral", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        credentials = json.loads(proc.stdout.readline())
        assert credentials["access_key_id"] == "LTAI5tTestRootKey01"
        server = CamsServer()  # only to build a client for these credentials
        server.port = int(credentials["endpoint"].rsplit(":", 1)[1])
        client = server.client()
        group_id = add(client, server, "From another language")
        assert status(client, server, group_id) == "ACTIVE"
        reset = httpx.post(f"{credentials['testing_url']}/reset", timeout=10)
        assert reset.status_code == 200
        assert listed(client, server).total == 0
        database = Path(credentials["database_url"].removeprefix("sqlite:///"))
        assert database.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert not database.exists()


def test_serve_ephemeral_refuses_what_it_cannot_do() -> None:
    from typer.testing import CliRunner

    from opencams.cli import app

    result = CliRunner().invoke(app, ["serve", "--ephemeral", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers" in result.output
    result = CliRunner().invoke(app, ["serve", "--tenancy", "t.yaml"])
    assert result.exit_code == 2
    assert "--ephemeral" in result.output
