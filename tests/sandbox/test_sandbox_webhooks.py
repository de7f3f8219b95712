"""Webhook delivery controls, retries/dead letters, fail-next, state dump and reset."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from opencams.sandbox import SandboxConfig, Simulator
from tests.sandbox.helpers import (
    NUMBER,
    Receiver,
    assert_graph_error,
    create_group,
    graph,
    wait_until,
)


async def post_group(client: httpx.AsyncClient, subject: str) -> str:
    response = await client.post(
        graph(f"{NUMBER}/groups"), json={"messaging_product": "whatsapp", "subject": subject}
    )
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


async def control(client: httpx.AsyncClient, name: str, **payload: Any) -> dict[str, Any]:
    response = await client.post(f"/control/{name}", json=payload)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = (await client.get("/control/state")).json()
    return result


async def test_hold_then_release_delivers_in_order(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    await control(client, "webhooks/hold")
    ids = [await post_group(client, f"g{i}") for i in range(3)]
    # The operations still happen at "Meta"; only their webhooks wait.
    await wait_until(lambda: sim.outbox.queue_length == 3)
    snapshot = await state(client)
    assert snapshot["webhooks"]["held"] is True
    assert snapshot["webhooks"]["queue_length"] == 3
    assert [g["status"] for g in snapshot["groups"]] == ["active"] * 3
    assert receiver.received == []

    result = await control(client, "webhooks/release")
    assert result == {"held": False, "delivered": 3, "queued": 0}
    # release returns once the queue has been sent.
    assert [r.group["request_id"] for r in receiver.received] == ids
    assert all(r.signature_ok() for r in receiver.received)


async def test_drop_loses_queued_webhooks(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await control(client, "webhooks/hold")
    await post_group(client, "lost")
    await control(client, "webhooks/flush")  # applies the create; the webhook stays held
    assert (await state(client))["webhooks"]["queue_length"] == 1
    assert await control(client, "webhooks/drop") == {"dropped": 1}
    await control(client, "webhooks/release")
    snapshot = await state(client)
    assert snapshot["webhooks"]["dropped"] == 1
    assert snapshot["groups"][0]["status"] == "active"
    assert receiver.received == []
    # The group exists at Meta anyway: a connector can reconcile by listing.
    listed = (await client.get(graph(f"{NUMBER}/groups"))).json()["data"]["groups"]
    assert len(listed) == 1


async def test_reorder_shuffles_the_queue(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await control(client, "webhooks/hold")
    ids = [await post_group(client, f"g{i}") for i in range(4)]
    await control(client, "webhooks/flush")
    before = [d["id"] for d in (await state(client))["webhooks"]["queue"]]
    new_order = (await control(client, "webhooks/reorder"))["queue"]
    assert sorted(new_order) == sorted(before)
    assert new_order != before
    await control(client, "webhooks/release")
    delivered = [r.group["request_id"] for r in receiver.received]
    assert sorted(delivered) == sorted(ids)
    assert delivered == [ids[before.index(wid)] for wid in new_order]


async def test_duplicate_delivers_each_webhook_twice(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control(client, "webhooks/duplicate", on=True)
    request_id = await post_group(client, "twice")
    received = await receiver.wait_for(2)
    assert [r.group["request_id"] for r in received] == [request_id, request_id]
    assert received[0].body == received[1].body
    await control(client, "webhooks/duplicate", on=False)
    await post_group(client, "once")
    await receiver.wait_for(3)
    await asyncio.sleep(0.15)
    assert len(receiver.received) == 3


async def test_flush_skips_the_delay(receiver: Receiver, sim: Simulator) -> None:
    sim.config.webhook_delay = 60.0
    transport = httpx.ASGITransport(app=sim.app)
    headers = {"Authorization": "Bearer t"}
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=headers) as http:
        await post_group(http, "slow")
        assert (await state(http))["groups"][0]["status"] == "creating"
        result = await control(http, "webhooks/flush")
        assert result["operations"] == 1
        assert result["delivered"] == 1
        assert len(receiver.received) == 1
        assert (await state(http))["groups"][0]["status"] == "active"


async def test_failed_deliveries_are_retried_then_dead_lettered(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    receiver.statuses = [500]
    request_id = await post_group(client, "retry")
    [hook] = await receiver.wait_for(1)
    assert hook.group["request_id"] == request_id
    assert receiver.attempts == 2

    # Three failures (the first try and both retries) exhaust retry_delays=(0.05, 0.05).
    receiver.statuses = [503, 503, 503]
    await post_group(client, "dead")
    await wait_until(lambda: bool(sim.outbox.dead_letters))
    assert receiver.attempts == 5
    [dead] = (await state(client))["webhooks"]["dead_letters"]
    assert dead["attempts"] == 3
    assert dead["last_error"] == "HTTP 503"
    assert dead["payload"]["entry"][0]["changes"][0]["field"] == "group_lifecycle_update"
    assert await control(client, "webhooks/redeliver") == {"requeued": 1}
    await receiver.wait_for(2)


async def test_unreachable_callback_goes_to_dead_letters(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    await control(client, "webhooks/callback", callback_url="http://127.0.0.1:9/nowhere")
    await post_group(client, "unreachable")

    def dead() -> bool:
        return bool(sim.outbox.dead_letters)

    await wait_until(dead)
    assert "Connect" in (sim.outbox.dead_letters[0].last_error or "")


async def test_fail_next_sync(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await control(client, "fail-next", operation="create", code=131208)
    response = await client.post(
        graph(f"{NUMBER}/groups"), json={"messaging_product": "whatsapp", "subject": "x"}
    )
    assert_graph_error(response, 131208, 429)
    # Only the next call fails.
    await post_group(client, "ok")

    group = await create_group(client, receiver)
    await control(client, "fail-next", operation="get", code=131000)
    assert_graph_error(await client.get(graph(group["group_id"])), 131000, 500)
    assert (await client.get(graph(group["group_id"]))).status_code == 200

    await control(client, "fail-next", operation="list", code=987654)
    assert_graph_error(await client.get(graph(f"{NUMBER}/groups")), 987654, 400)


async def test_fail_next_webhook_create_never_activates(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await control(client, "fail-next", operation="create", code=131214, mode="webhook")
    request_id = await post_group(client, "doomed")
    [hook] = await receiver.wait_for(1)
    group = hook.group
    assert group["type"] == "group_create"
    assert group["request_id"] == request_id
    # As in Meta's "group create fail" example: the reserved group id, never a live group.
    assert group["group_id"]
    assert "invite_link" not in group
    [error] = group["errors"]
    assert error["code"] == 131214
    assert error["title"]
    assert error["error_data"]["details"]
    assert (await client.get(graph(f"{NUMBER}/groups"))).json()["data"]["groups"] == []
    assert (await state(client))["groups"][0]["status"] == "failed"


async def test_fail_next_webhook_delete_keeps_group(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    await control(client, "fail-next", operation="delete", code=131000, mode="webhook")
    answer = (await client.delete(graph(group["group_id"]))).json()
    assert answer["success"] is True
    [_, hook] = await receiver.wait_for(2)
    assert hook.group["request_id"] == answer["request_id"]
    assert hook.group["type"] == "group_delete"
    assert hook.group["errors"][0]["code"] == 131000
    assert (await client.get(graph(group["group_id"]))).status_code == 200


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"operation": "explode", "code": 1}, "operation"),
        ({"operation": "create", "code": "1"}, "code"),
        ({"operation": "create", "code": 1, "mode": "later"}, "mode"),
        ({"operation": "get", "code": 1, "mode": "webhook"}, "no webhook"),
    ],
)
async def test_fail_next_refuses_bad_requests(
    client: httpx.AsyncClient, payload: dict[str, Any], message: str
) -> None:
    response = await client.post("/control/fail-next", json=payload)
    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_controls_refuse_malformed_input(client: httpx.AsyncClient) -> None:
    response = await client.post("/control/numbers", content=b"nope")
    assert response.status_code == 400
    response = await client.post("/control/numbers", json={"phone_number_id": "abc"})
    assert response.status_code == 400
    response = await client.post("/control/eligible", json={"phone_number_id": NUMBER})
    assert response.status_code == 400
    response = await client.post("/control/webhooks/duplicate", json={"on": "yes"})
    assert response.status_code == 400
    response = await client.get("/control/nothing")
    assert response.status_code == 404
    assert "error" in response.json()


async def test_register_number_updates_and_rebinds_token(client: httpx.AsyncClient) -> None:
    result = await control(
        client,
        "numbers",
        phone_number_id=NUMBER,
        display_phone_number="+86 138 0000 0001",
        access_token="rotated",
    )
    assert result["display_phone_number"] == "+86 138 0000 0001"
    response = await client.get(graph(f"{NUMBER}/groups"))
    assert_graph_error(response, 190, 401)
    response = await client.get(
        graph(f"{NUMBER}/groups"), headers={"Authorization": "Bearer rotated"}
    )
    assert response.status_code == 200


async def test_state_dump_and_reset(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver, subject="Dump")
    await control(client, "fail-next", operation="delete", code=1)
    snapshot = await state(client)
    assert snapshot["numbers"][0]["phone_number_id"] == NUMBER
    [dumped] = snapshot["groups"]
    assert dumped["group_id"] == group["group_id"]
    assert dumped["invite_link"] == group["invite_link"]
    assert dumped["status"] == "active"
    assert dumped["participants"] == []
    assert snapshot["fail_next"] == [{"operation": "delete", "code": 1, "mode": "sync"}]
    assert snapshot["webhooks"]["delivered"] == 1
    assert snapshot["webhooks"]["dead_letters"] == []

    assert await control(client, "reset") == {"reset": True}
    snapshot = await state(client)
    assert snapshot["numbers"] == []
    assert snapshot["groups"] == []
    assert snapshot["fail_next"] == []
    assert snapshot["webhooks"]["delivered"] == 0


async def test_verify_handshake_against_the_callback(client: httpx.AsyncClient) -> None:
    response = await client.post("/control/webhooks/verify", json={"verify_token": "verify-me"})
    assert response.status_code == 200
    assert response.json()["ok"] is True
    response = await client.post("/control/webhooks/verify", json={"verify_token": "wrong"})
    assert response.status_code == 409


async def test_missing_or_failing_app_secret_dead_letters(receiver: Receiver) -> None:
    calls = {"n": 0}

    async def provider() -> str | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database down")
        return None

    sim = Simulator(
        SandboxConfig(
            callback_url=receiver.url, app_secret=provider, webhook_delay=0, retry_delays=(0.01,)
        )
    )
    transport = httpx.ASGITransport(app=sim.app)
    headers = {"Authorization": "Bearer t"}
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=headers) as http:
        await post_group(http, "unsigned")
        await wait_until(lambda: bool(sim.outbox.dead_letters))
    [dead] = sim.outbox.dead_letters
    assert dead.last_error == "no app secret configured"
    assert receiver.attempts == 0
    await sim.aclose()
