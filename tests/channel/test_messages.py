"""The connector's half of group messages: GraphClient sends and media calls against the
simulator over HTTP, and typed `messages` webhook events parsed from what the simulator sends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from opencams.channel.graph import GraphClient
from opencams.channel.webhooks import parse_events, parse_notification
from opencams.errors import GraphError, WebhookRejected
from opencams.sandbox import SandboxConfig, Simulator
from tests.sandbox.conftest import receiver, receiver_server  # noqa: F401 (fixtures)
from tests.sandbox.helpers import (
    APP_SECRET,
    DISPLAY,
    NUMBER,
    TOKEN,
    WABA,
    Receiver,
    create_group,
    fake_jpeg,
    join,
    wait_until,
)

ALICE, BOB = "8613900000001", "8613900000002"


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[Simulator]:  # noqa: F811
    simulator = Simulator(
        SandboxConfig(callback_url=receiver.url, app_secret=APP_SECRET, webhook_delay=0.02)
    )
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def control(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
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


@pytest.fixture
async def graph(sim: Simulator) -> AsyncIterator[GraphClient]:
    client = GraphClient(
        "http://sandbox/graph/v23.0", transport=httpx.ASGITransport(app=sim.app), backoff=0
    )
    yield client
    await client.aclose()


async def group_of(control: httpx.AsyncClient, recv: Receiver, *members: str) -> str:
    group = await create_group(control, recv)
    await join(control, group["invite_link"], *members)
    return str(group["group_id"])


def text_to(group_id: str) -> dict[str, Any]:
    return {"recipient_type": "group", "to": group_id, "type": "text", "text": {"body": "hi"}}


async def test_send_message_returns_wamid_and_statuses_parse(
    graph: GraphClient,
    control: httpx.AsyncClient,
    receiver: Receiver,  # noqa: F811
) -> None:
    group_id = await group_of(control, receiver, ALICE, BOB)
    wamid = await graph.send_message(NUMBER, TOKEN, text_to(group_id))
    assert wamid.startswith("wamid.")

    def parsed() -> list[Any]:
        return [s for r in receiver.received for s in parse_notification(r.body).statuses]

    await wait_until(lambda: len(parsed()) >= 5)
    statuses = parsed()
    assert [(s.status, s.participant) for s in statuses[:1]] == [("sent", None)]
    assert {s.participant for s in statuses if s.status == "delivered"} == {ALICE, BOB}
    assert all(s.message_id == wamid and s.recipient_type == "group" for s in statuses)
    assert all(s.recipient_id == group_id for s in statuses)
    keys = [s.dedupe_key() for s in statuses]
    assert len(set(keys)) == len(keys)
    # A redelivered webhook parses to the same keys.
    again = [s.dedupe_key() for s in parse_notification(receiver.received[-1].body).statuses]
    assert again[0] in keys
    # The group-only view of the same deliveries has nothing to apply.
    assert all(parse_events(r.body)[0] == [] for r in receiver.received if r.field == "messages")


async def test_send_refusal_is_a_rejected_graph_error(
    graph: GraphClient,
    control: httpx.AsyncClient,
    receiver: Receiver,  # noqa: F811
) -> None:
    lonely = await group_of(control, receiver)
    with pytest.raises(GraphError) as caught:
        await graph.send_message(NUMBER, TOKEN, text_to(lonely))
    assert caught.value.code == 131020 and caught.value.category == "rejected"


async def test_upload_get_and_download_media(graph: GraphClient) -> None:
    jpeg = fake_jpeg(10, 10)
    media_id = await graph.upload_media(NUMBER, TOKEN, jpeg, "image/jpeg", "a.jpg")
    info = await graph.get_media(media_id, TOKEN)
    assert info.mime_type == "image/jpeg" and info.file_size == len(jpeg)
    assert info.sha256 == hashlib.sha256(jpeg).hexdigest()
    assert await graph.download_media(info, TOKEN, max_bytes=1024) == jpeg
    with pytest.raises(GraphError):
        await graph.download_media(info, TOKEN, max_bytes=10)
    with pytest.raises(GraphError) as caught:
        await graph.download_media(info, "someone-else", max_bytes=1024)
    assert caught.value.code == 190


async def test_inbound_group_messages_parse_with_bsuid(
    control: httpx.AsyncClient,
    receiver: Receiver,  # noqa: F811
) -> None:
    user = await control.post(
        "/control/users",
        json={"wa_id": BOB, "profile_name": "Bob", "username": "bob", "number_hidden": True},
    )
    bsuid = user.json()["user_id"]
    group_id = await group_of(control, receiver, ALICE, BOB)
    said = await control.post(
        "/control/member-message", json={"group_id": group_id, "wa_id": BOB, "text": "yo"}
    )
    wamid = said.json()["id"]
    await control.post(
        "/control/member-message",
        json={"group_id": group_id, "wa_id": ALICE, "text": "re", "context": wamid},
    )

    def parsed() -> list[Any]:
        return [m for r in receiver.received for m in parse_notification(r.body).messages]

    await wait_until(lambda: len(parsed()) >= 2)
    first, reply = parsed()
    assert (first.group_id, first.sender_wa_id, first.sender_user_id) == (group_id, None, bsuid)
    assert (first.profile_name, first.username, first.content) == ("Bob", "bob", {"body": "yo"})
    assert reply.sender_wa_id == ALICE and reply.context_id == wamid
    assert first.dedupe_key() != reply.dedupe_key()


def test_malformed_messages_items_are_skipped_or_refused() -> None:
    def body(value: dict[str, Any]) -> bytes:
        change = {"field": "messages", "value": {"metadata": {"phone_number_id": "1"}, **value}}
        return json.dumps(
            {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
        ).encode()

    notification = parse_notification(body({"statuses": [{"status": "read"}, 7]}))
    assert notification.statuses == [] and notification.skipped == 2
    ok = parse_notification(body({"statuses": [{"id": "wamid.A", "status": "read"}]}))
    assert ok.statuses[0].participant is None and ok.skipped == 0
    with pytest.raises(WebhookRejected):
        parse_notification(body({"messages": {"id": "x"}}))
