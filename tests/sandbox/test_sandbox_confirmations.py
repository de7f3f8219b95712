"""Held operations, `confirm` and `settle` (what opencams.testing's confirmation modes use)."""

from __future__ import annotations

import asyncio

import httpx

from opencams.sandbox import Simulator
from tests.sandbox.helpers import NUMBER, Receiver, create_group, graph, join


async def post(client: httpx.AsyncClient, subject: str) -> str:
    response = await client.post(
        graph(f"{NUMBER}/groups"), json={"messaging_product": "whatsapp", "subject": subject}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["request_id"])


def status(sim: Simulator, request_id: str) -> str:
    return next(g.status for g in sim.state.groups.values() if g.request_id == request_id)


async def test_held_operations_wait_for_their_confirmation(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    sim.outbox.hold_operations(True)
    first, second = await post(client, "one"), await post(client, "two")
    await asyncio.sleep(0.15)  # three times the webhook delay: nothing happens on its own
    assert (status(sim, first), status(sim, second)) == ("creating", "creating")
    dump = sim.outbox.dump()
    assert dump["operations_held"] is True
    assert dump["held_operations"] == [f"create {first}", f"create {second}"]
    assert receiver.received == []

    # confirm returns once the webhook has been answered by the callback.
    assert await sim.outbox.confirm({second}) == {"operations": 1, "delivered": 1}
    assert [r.group["request_id"] for r in receiver.received] == [second]
    assert (status(sim, first), status(sim, second)) == ("creating", "active")

    assert await sim.outbox.confirm() == {"operations": 1, "delivered": 1}
    assert [r.group["request_id"] for r in receiver.received] == [second, first]


async def test_an_operation_is_confirmed_by_its_group_id(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    group = await create_group(client, receiver)
    sim.outbox.hold_operations(True)
    response = await client.delete(graph(group["group_id"]))
    assert response.status_code == 200, response.text
    assert sim.outbox.dump()["held_operations"] == [f"delete {response.json()['request_id']}"]

    assert await sim.outbox.confirm({"someone else's"}) == {"operations": 0, "delivered": 0}
    assert await sim.outbox.confirm({group["group_id"]}) == {"operations": 1, "delivered": 1}
    assert receiver.of_type("group_delete")


async def test_what_users_do_is_not_held(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    group = await create_group(client, receiver)
    sim.config.webhook_delay = 0.0
    sim.outbox.hold_operations(True)
    await join(client, group["invite_link"], "15550000001")
    await sim.outbox.settle()  # due webhooks are sent, and answered, before it returns
    assert [r.group["type"] for r in receiver.received] == [
        "group_create",
        "group_participants_add",
    ]


async def test_releasing_the_hold_runs_what_was_held(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    sim.outbox.hold_operations(True)
    request_id = await post(client, "held")
    sim.outbox.hold_operations(False)
    await receiver.wait_for(1)
    assert receiver.received[0].group["request_id"] == request_id


async def test_flush_and_reset_include_held_operations(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    sim.outbox.hold_operations(True)
    await post(client, "flushed")
    assert (await sim.outbox.flush())["operations"] == 1
    assert len(receiver.received) == 1

    await post(client, "forgotten")
    sim.outbox.reset()
    dump = sim.outbox.dump()
    # Reset forgets the held operations; holding is a setting, like the delay, and stays.
    assert (dump["held_operations"], dump["operations_held"]) == ([], True)
    assert await sim.outbox.confirm() == {"operations": 0, "delivered": 0}


async def test_settle_waits_for_a_delivery_under_way(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    sim.config.webhook_delay = 0.0
    await post(client, "now")
    await sim.outbox.settle()
    assert len(receiver.received) == 1
