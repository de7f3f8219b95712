"""Priority-2 group writes: settings (JSON and picture upload), delete, invite link, suspension."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.sandbox.helpers import (
    NUMBER,
    Receiver,
    assert_graph_error,
    create_group,
    fake_jpeg,
    graph,
    join,
    wait_until,
)


async def next_hook(receiver: Receiver, kind: str, count: int = 1) -> dict[str, Any]:
    await wait_until(lambda: len(receiver.of_type(kind)) >= count)
    return receiver.of_type(kind)[count - 1].group


def settings(**extra: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", **extra}


async def upload(
    client: httpx.AsyncClient, group_id: str, picture: bytes, part: str = "file"
) -> httpx.Response:
    return await client.post(
        graph(group_id),
        data={"messaging_product": "whatsapp"},
        files={part: ("photo.jpg", picture, "image/jpeg")},
    )


# --- settings -------------------------------------------------------------------------------


async def test_update_subject_and_description(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver, subject="Old", description="old")
    response = await client.post(
        graph(group["group_id"]), json=settings(subject="  New  ", description="")
    )
    assert response.status_code == 200
    ack = response.json()
    assert ack["messaging_product"] == "whatsapp"
    assert len(ack["request_id"]) == 15

    hook = await next_hook(receiver, "group_settings_update")
    assert hook["group_id"] == group["group_id"]
    assert hook["request_id"] == ack["request_id"]
    assert hook["group_subject"] == {"text": "New", "update_successful": True}
    assert hook["group_description"] == {"text": "", "update_successful": True}
    assert "profile_picture" not in hook
    assert "errors" not in hook
    [received] = receiver.of_type("group_settings_update")
    assert received.field == "group_settings_update"
    assert received.signature_ok()

    info = await client.get(graph(group["group_id"]), params={"fields": "subject,description"})
    assert info.json()["subject"] == "New"
    assert info.json()["description"] == ""


@pytest.mark.parametrize(
    "payload",
    [
        {"subject": "x"},
        settings(subject=""),
        settings(subject="   "),
        settings(subject="x" * 129),
        settings(description="d" * 2049),
        settings(),
        settings(profile_picture_file="/tmp/picture.jpg"),
    ],
)
async def test_update_validation_is_100(
    client: httpx.AsyncClient, receiver: Receiver, payload: dict[str, Any]
) -> None:
    group = await create_group(client, receiver)
    assert_graph_error(await client.post(graph(group["group_id"]), json=payload), 100)


@pytest.mark.parametrize("part", ["file", "profile_picture_file"])
async def test_update_profile_picture(
    client: httpx.AsyncClient, receiver: Receiver, part: str
) -> None:
    group = await create_group(client, receiver)
    picture = fake_jpeg(640, 640)
    response = await upload(client, group["group_id"], picture, part)
    assert response.status_code == 200, response.text
    hook = await next_hook(receiver, "group_settings_update")
    assert hook["profile_picture"] == {
        "mime_type": "image/jpeg",
        "update_successful": True,
        "sha256": hashlib.sha256(picture).hexdigest(),
    }
    assert "group_subject" not in hook


@pytest.mark.parametrize(
    ("picture", "code"),
    [
        (fake_jpeg(400, 300), 131209),
        (fake_jpeg(191, 191), 131210),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 100),
        (fake_jpeg(512, 512, padding=5 * 1024 * 1024), 100),
    ],
)
async def test_update_profile_picture_rules(
    client: httpx.AsyncClient, receiver: Receiver, picture: bytes, code: int
) -> None:
    group = await create_group(client, receiver)
    assert_graph_error(await upload(client, group["group_id"], picture), code)


async def test_update_picture_at_minimum_size_with_subject_part(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    response = await client.post(
        graph(group["group_id"]),
        data={"messaging_product": "whatsapp", "subject": "With photo"},
        files={"file": ("p.jpg", fake_jpeg(192, 192), "image/jpeg")},
    )
    assert response.status_code == 200
    hook = await next_hook(receiver, "group_settings_update")
    assert hook["profile_picture"]["update_successful"] is True
    assert hook["group_subject"] == {"text": "With photo", "update_successful": True}


async def test_update_failure_webhook(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver, subject="Keep")
    await client.post(
        "/control/fail-next", json={"operation": "update", "code": 131000, "mode": "webhook"}
    )
    response = await client.post(graph(group["group_id"]), json=settings(subject="Lost"))
    assert response.status_code == 200
    hook = await next_hook(receiver, "group_settings_update")
    assert hook["group_subject"]["update_successful"] is False
    assert hook["group_subject"]["errors"][0]["code"] == 131000
    assert hook["errors"][0]["code"] == 131000
    info = await client.get(graph(group["group_id"]), params={"fields": "subject"})
    assert info.json()["subject"] == "Keep"


async def test_update_fail_next_sync(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver)
    await client.post("/control/fail-next", json={"operation": "update", "code": 131208})
    response = await client.post(graph(group["group_id"]), json=settings(subject="x"))
    assert_graph_error(response, 131208, 429)


# --- delete ---------------------------------------------------------------------------------


async def test_delete_group(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver)
    gid = group["group_id"]
    await join(client, group["invite_link"], "8613900000001")
    response = await client.delete(graph(gid))
    assert response.status_code == 200
    # Meta's clients read the request id from the answer: it is the webhook's.
    assert response.json() == {"success": True, "request_id": response.json()["request_id"]}
    hook = await next_hook(receiver, "group_delete")
    assert hook["group_id"] == gid
    assert hook["request_id"] == response.json()["request_id"]
    assert len(hook["request_id"]) == 15
    assert "errors" not in hook
    [received] = receiver.of_type("group_delete")
    assert received.field == "group_lifecycle_update"

    assert_graph_error(await client.get(graph(gid)), 131041)
    assert_graph_error(await client.delete(graph(gid)), 131041)
    assert_graph_error(await client.get(graph(f"{gid}/invite_link")), 131041)
    assert (await client.get(graph(f"{NUMBER}/groups"))).json()["data"]["groups"] == []
    tap = await client.post(
        "/control/tap-link", json={"invite_link": group["invite_link"], "wa_id": "8613900000002"}
    )
    assert tap.status_code == 404
    dumped = (await client.get("/control/state")).json()["groups"][0]
    assert dumped["status"] == "deleted"
    assert dumped["participants"] == []


async def test_delete_fail_next_sync(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver)
    await client.post("/control/fail-next", json={"operation": "delete", "code": 2})
    assert_graph_error(await client.delete(graph(group["group_id"])), 2, 503)


# --- invite link ----------------------------------------------------------------------------


async def test_invite_link_get_reset_delete(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver)
    url = graph(f"{group['group_id']}/invite_link")
    current = (await client.get(url)).json()
    assert current == {"messaging_product": "whatsapp", "invite_link": group["invite_link"]}

    reset = await client.post(url, json={"messaging_product": "whatsapp"})
    assert reset.status_code == 200
    new_link = reset.json()["invite_link"]
    assert new_link.startswith("https://chat.whatsapp.com/")
    assert new_link != group["invite_link"]
    assert (await client.get(url)).json()["invite_link"] == new_link
    old_tap = await client.post(
        "/control/tap-link", json={"invite_link": group["invite_link"], "wa_id": "8613900000001"}
    )
    assert old_tap.status_code == 404
    await join(client, new_link, "8613900000001")

    deleted = await client.request("DELETE", url, json={"messaging_product": "whatsapp"})
    assert deleted.json() == {"messaging_product": "whatsapp", "success": True}
    assert (await client.get(url)).json() == {"messaging_product": "whatsapp"}
    tap = await client.post(
        "/control/tap-link", json={"invite_link": new_link, "wa_id": "8613900000002"}
    )
    assert tap.status_code == 404
    # Resetting after a delete issues a fresh link.
    assert "invite_link" in (await client.post(url)).json()
    bad = await client.post(url, json={"messaging_product": "sms"})
    assert_graph_error(bad, 100)


async def test_invite_link_fail_next(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver)
    await client.post("/control/fail-next", json={"operation": "invite-link", "code": 131208})
    url = graph(f"{group['group_id']}/invite_link")
    assert_graph_error(await client.post(url), 131208, 429)
    assert (await client.get(url)).json()["invite_link"] == group["invite_link"]


# --- suspension -----------------------------------------------------------------------------


async def test_suspend_blocks_writes_until_cleared(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver, join_approval_mode="approval_required")
    gid = group["group_id"]
    assert (await client.post("/control/suspend", json={"group_id": gid})).status_code == 200
    hook = await next_hook(receiver, "group_suspend")
    assert hook["group_id"] == gid
    assert receiver.of_type("group_suspend")[0].field == "group_status_update"
    info = await client.get(graph(gid), params={"fields": "suspended"})
    assert info.json()["suspended"] is True

    writes = [
        client.post(graph(gid), json=settings(subject="x")),
        client.delete(graph(gid)),
        client.post(graph(f"{gid}/invite_link")),
        client.request("DELETE", graph(f"{gid}/invite_link")),
        client.request(
            "DELETE",
            graph(f"{gid}/participants"),
            json={"messaging_product": "whatsapp", "participants": [{"user": "8613900000001"}]},
        ),
        client.post(
            graph(f"{gid}/join_requests"),
            json={"messaging_product": "whatsapp", "join_requests": ["abc"]},
        ),
    ]
    for call in writes:
        assert_graph_error(await call, 131207, 403)
    # Reads still work.
    assert (await client.get(graph(f"{gid}/invite_link"))).status_code == 200
    tap = await client.post(
        "/control/tap-link", json={"invite_link": group["invite_link"], "wa_id": "8613900000001"}
    )
    assert tap.status_code == 409
    assert tap.json()["code"] == 131207
    again = await client.post("/control/suspend", json={"group_id": gid})
    assert again.status_code == 409

    assert (await client.post("/control/unsuspend", json={"group_id": gid})).status_code == 200
    cleared = await next_hook(receiver, "group_suspend_cleared")
    assert cleared["group_id"] == gid
    response = await client.post(graph(gid), json=settings(subject="back"))
    assert response.status_code == 200


async def test_suspend_unknown_group_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/control/suspend", json={"group_id": "nope"})
    assert response.status_code == 404
    response = await client.post("/control/unsuspend", json={})
    assert response.status_code == 400
