"""Group messages through the simulator's Graph API: sending, statuses, media, members writing,
and the 2026 identity fields (BSUID, username, hidden number)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from opencams.sandbox import SandboxConfig, Simulator
from tests.sandbox.helpers import (
    APP_SECRET,
    DELAY,
    NUMBER,
    TOKEN,
    Receiver,
    assert_graph_error,
    create_group,
    fake_jpeg,
    graph,
    join,
    wait_until,
)

ALICE, BOB, CAROL = "8613900000001", "8613900000002", "8613900000003"


def text(group_id: str, body: str = "hello") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "group",
        "to": group_id,
        "type": "text",
        "text": {"body": body},
    }


async def send(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    return await client.post(graph(f"{NUMBER}/messages"), json=payload)


def statuses(receiver: Receiver, wamid: str) -> list[dict[str, Any]]:
    return [
        s
        for r in receiver.received
        if r.field == "messages"
        for s in r.statuses
        if s["id"] == wamid
    ]


async def group_with(client: httpx.AsyncClient, receiver: Receiver, *members: str) -> str:
    group = await create_group(client, receiver)
    await join(client, group["invite_link"], *members)
    return str(group["group_id"])


async def test_text_to_group_answers_wamid_then_sent_delivered_read(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group_id = await group_with(client, receiver, ALICE, BOB)
    response = await send(client, text(group_id))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": group_id, "wa_id": group_id}]
    wamid = body["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    await wait_until(lambda: len(statuses(receiver, wamid)) >= 5)
    got = statuses(receiver, wamid)
    assert [s["status"] for s in got] == ["sent", "delivered", "delivered", "read", "read"]
    sent = got[0]
    assert sent["recipient_type"] == "group" and sent["recipient_id"] == group_id
    assert "recipient_participant_id" not in sent
    assert {s["recipient_participant_id"] for s in got[1:3]} == {ALICE, BOB}
    assert got[1]["pricing"]["category"] == "group_service"
    # Delivered statuses of one message arrive aggregated in one webhook; reads one by one.
    delivered_hooks = [
        r for r in receiver.received if any(s["status"] == "delivered" for s in r.statuses)
    ]
    assert len(delivered_hooks) == 1 and len(delivered_hooks[0].statuses) == 2
    assert all(r.signature_ok() for r in receiver.received)


async def test_send_refusals_use_meta_codes(client: httpx.AsyncClient, receiver: Receiver) -> None:
    empty = (await create_group(client, receiver))["group_id"]
    assert_graph_error(await send(client, text(empty)), 131020)
    group_id = await group_with(client, receiver, ALICE)
    interactive = {**text(group_id), "type": "interactive", "interactive": {"type": "button"}}
    assert_graph_error(await send(client, interactive), 131009)
    mismatch = {**text(group_id), "recipient_type": "individual"}
    assert_graph_error(await send(client, mismatch), 100)
    not_a_group = {**text(group_id), "to": "8613900000009"}
    assert_graph_error(await send(client, not_a_group), 100)
    assert_graph_error(await send(client, {**text(group_id), "text": {}}), 131008)
    await client.post("/control/suspend", json={"group_id": group_id})
    assert_graph_error(await send(client, text(group_id)), 131207, 403)
    await client.post("/control/unsuspend", json={"group_id": group_id})
    await client.delete(graph(group_id))
    await client.post("/control/webhooks/flush")
    assert_graph_error(await send(client, text(group_id)), 131041)


async def test_member_told_to_fail_gets_failed_status(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group_id = await group_with(client, receiver, ALICE, BOB)
    told = await client.post(
        "/control/fail-next-delivery", json={"group_id": group_id, "wa_id": BOB}
    )
    assert told.status_code == 200, told.text
    wamid = (await send(client, text(group_id))).json()["messages"][0]["id"]
    await wait_until(lambda: any(s["status"] == "read" for s in statuses(receiver, wamid)))
    got = statuses(receiver, wamid)
    failed = [s for s in got if s["status"] == "failed"]
    assert [s["recipient_participant_id"] for s in failed] == [BOB]
    assert failed[0]["errors"][0]["code"] == 131026
    assert {s["recipient_participant_id"] for s in got if s["status"] == "delivered"} == {ALICE}


async def test_pin_gets_only_sent_and_at_most_three(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group_id = await group_with(client, receiver, ALICE)
    wamids = [
        (await send(client, text(group_id, f"m{i}"))).json()["messages"][0]["id"] for i in range(4)
    ]

    def pin(wamid: str, action: str = "pin") -> dict[str, Any]:
        return {
            **text(group_id),
            "type": "pin",
            "pin": {"type": action, "message_id": wamid, "expiration_days": 7},
        }

    pins = []
    for wamid in wamids[:3]:
        response = await send(client, pin(wamid))
        assert response.status_code == 200, response.text
        pins.append(response.json()["messages"][0]["id"])
    assert_graph_error(await send(client, pin(wamids[3])), 131009)
    assert (await send(client, pin(wamids[0], "unpin"))).status_code == 200
    assert (await send(client, pin(wamids[3]))).status_code == 200
    await client.post("/control/webhooks/flush")
    await wait_until(lambda: bool(statuses(receiver, pins[0])))
    assert [s["status"] for s in statuses(receiver, pins[0])] == ["sent"]
    bad_days = pin(wamids[1])
    bad_days["pin"]["expiration_days"] = 31
    assert_graph_error(await send(client, bad_days), 131009)


async def test_reaction_must_name_a_message_of_the_group(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group_id = await group_with(client, receiver, ALICE)
    wamid = (await send(client, text(group_id))).json()["messages"][0]["id"]
    react = {**text(group_id), "type": "reaction", "reaction": {"message_id": wamid, "emoji": "👍"}}
    assert (await send(client, react)).status_code == 200
    react["reaction"]["message_id"] = "wamid.unknown"
    assert_graph_error(await send(client, react), 131009)


async def upload(client: httpx.AsyncClient, data: bytes, mime: str) -> httpx.Response:
    return await client.post(
        graph(f"{NUMBER}/media"),
        data={"messaging_product": "whatsapp", "type": mime},
        files={"file": ("f.bin", data, mime)},
    )


async def test_media_upload_get_download_and_send_by_id(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    jpeg = fake_jpeg(200, 200)
    response = await upload(client, jpeg, "image/jpeg")
    assert response.status_code == 200, response.text
    media_id = response.json()["id"]
    assert media_id.isdigit()
    info = (await client.get(graph(media_id))).json()
    assert info["mime_type"] == "image/jpeg" and info["file_size"] == len(jpeg)
    assert info["sha256"] == hashlib.sha256(jpeg).hexdigest() and info["id"] == media_id
    assert info["messaging_product"] == "whatsapp"
    download_path = httpx.URL(info["url"]).raw_path.decode()
    downloaded = await client.get(download_path)
    assert downloaded.status_code == 200 and downloaded.content == jpeg
    anonymous = await client.get(download_path, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    group_id = await group_with(client, receiver, ALICE)
    image = {**text(group_id), "type": "image", "image": {"id": media_id, "caption": "hi"}}
    assert (await send(client, image)).status_code == 200
    image["image"] = {"id": "123456789012345"}
    assert_graph_error(await send(client, image), 131009)
    assert_graph_error(await upload(client, b"x" * 10, "application/x-msdownload"), 131053)
    assert_graph_error(await upload(client, b"x" * (5 * 1024 * 1024 + 1), "image/jpeg"), 131053)


async def test_media_link_to_loopback_is_refused_like_meta(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group_id = await group_with(client, receiver, ALICE)
    payload = {**text(group_id), "type": "image", "image": {"link": receiver.url}}
    response = await send(client, payload)
    assert response.status_code == 200, response.text
    wamid = response.json()["messages"][0]["id"]
    await wait_until(lambda: bool(statuses(receiver, wamid)))
    [failed] = statuses(receiver, wamid)
    assert failed["status"] == "failed"
    assert failed["errors"][0]["code"] == 131053
    assert "loopback" in failed["errors"][0]["error_data"]["details"]


@pytest.fixture
async def private_sim(receiver: Receiver) -> AsyncIterator[Simulator]:
    simulator = Simulator(
        SandboxConfig(
            callback_url=receiver.url,
            app_secret=APP_SECRET,
            webhook_delay=DELAY,
            media_fetch_allow_private=True,
        )
    )
    yield simulator
    await simulator.aclose()


@pytest.fixture
def media_server() -> Iterator[str]:
    """A loopback HTTP server: /photo.jpg is a JPEG, /page.html is HTML."""
    jpeg = fake_jpeg(64, 64)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = (
                (jpeg, "image/jpeg") if self.path == "/photo.jpg" else (b"<p>", "text/html")
            )
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


async def test_media_link_fetched_when_private_allowed(
    private_sim: Simulator, receiver: Receiver, media_server: str
) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=private_sim.app),
        base_url="http://sandbox",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        group_id = await group_with(client, receiver, ALICE)
        good = {**text(group_id), "type": "image", "image": {"link": f"{media_server}/photo.jpg"}}
        wamid = (await send(client, good)).json()["messages"][0]["id"]
        await wait_until(lambda: any(s["status"] == "read" for s in statuses(receiver, wamid)))
        assert [s["status"] for s in statuses(receiver, wamid)] == ["sent", "delivered", "read"]
        bad = {**text(group_id), "type": "image", "image": {"link": f"{media_server}/page.html"}}
        wamid = (await send(client, bad)).json()["messages"][0]["id"]
        await wait_until(lambda: bool(statuses(receiver, wamid)))
        [failed] = statuses(receiver, wamid)
        assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131053
        assert "not a supported image type" in failed["errors"][0]["error_data"]["details"]


async def test_member_says_reacts_replies_with_bsuid_identity(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    made = await client.post(
        "/control/users",
        json={"wa_id": BOB, "profile_name": "Bob", "username": "bob.w", "number_hidden": True},
    )
    assert made.status_code == 200, made.text
    bsuid = made.json()["user_id"]
    assert bsuid.startswith("CN.")
    group_id = await group_with(client, receiver, ALICE, BOB)
    info = (await client.get(graph(group_id), params={"fields": "participants"})).json()
    assert info["participants"] == [{"wa_id": ALICE}, {"user_id": bsuid, "username": "bob.w"}]
    said = await client.post(
        "/control/member-message", json={"group_id": group_id, "wa_id": BOB, "text": "hi all"}
    )
    assert said.status_code == 200, said.text
    wamid = said.json()["id"]
    replied = await client.post(
        "/control/member-message",
        json={"group_id": group_id, "wa_id": ALICE, "text": "hi Bob", "context": wamid},
    )
    reacted = await client.post(
        "/control/member-message",
        json={
            "group_id": group_id,
            "wa_id": ALICE,
            "type": "reaction",
            "message_id": wamid,
            "emoji": "👍",
        },
    )
    assert replied.status_code == 200 and reacted.status_code == 200
    await wait_until(lambda: len([r for r in receiver.received if "messages" in r.value]) >= 3)
    hooks = [r.value for r in receiver.received if "messages" in r.value]
    first, reply, reaction = hooks
    assert first["contacts"] == [
        {"profile": {"name": "Bob", "username": "bob.w"}, "user_id": bsuid}
    ]
    message = first["messages"][0]
    assert message["group_id"] == group_id and message["from_user_id"] == bsuid
    assert "from" not in message and message["text"] == {"body": "hi all"}
    assert reply["messages"][0]["context"] == {"from": bsuid, "id": wamid}
    assert reply["messages"][0]["from"] == ALICE
    assert reaction["messages"][0]["reaction"] == {"message_id": wamid, "emoji": "👍"}
    # A member who is not in the group cannot write.
    refused = await client.post(
        "/control/member-message", json={"group_id": group_id, "wa_id": CAROL, "text": "x"}
    )
    assert refused.status_code == 404


async def test_member_sends_document_served_by_media_id(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group_id = await group_with(client, receiver, ALICE)
    sent = await client.post(
        "/control/member-message",
        json={"group_id": group_id, "wa_id": ALICE, "type": "document", "filename": "a.pdf"},
    )
    assert sent.status_code == 200, sent.text
    await wait_until(lambda: any("messages" in r.value for r in receiver.received))
    hook = next(r.value for r in receiver.received if "messages" in r.value)
    document = hook["messages"][0]["document"]
    assert document["filename"] == "a.pdf" and document["mime_type"] == "application/pdf"
    info = (await client.get(graph(document["id"]))).json()
    assert info["sha256"] == document["sha256"]
    content = await client.get(httpx.URL(info["url"]).raw_path.decode())
    assert content.content.startswith(b"%PDF")


async def test_join_request_and_leave_carry_bsuid(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post("/control/users", json={"wa_id": CAROL, "username": "carol"})
    group = await create_group(client, receiver, join_approval_mode="approval_required")
    tapped = await client.post(
        "/control/tap-link", json={"invite_link": group["invite_link"], "wa_id": CAROL}
    )
    assert tapped.status_code == 200
    listed = (await client.get(graph(f"{group['group_id']}/join_requests"))).json()["data"]
    assert listed[0]["wa_id"] == CAROL and listed[0]["username"] == "carol"
    assert listed[0]["user_id"].startswith("CN.")
    await wait_until(lambda: bool(receiver.of_type("group_join_request_created")))
    created = receiver.of_type("group_join_request_created")[0].group
    assert created["user_id"] == listed[0]["user_id"] and created["username"] == "carol"
