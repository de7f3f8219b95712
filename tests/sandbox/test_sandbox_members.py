"""Priority-2 membership: joining by link, leaving, business removal, join requests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.sandbox.helpers import (
    Receiver,
    assert_graph_error,
    create_group,
    graph,
    join,
    wait_until,
)

USERS = [f"86139000000{i:02d}" for i in range(1, 11)]


async def hooks(receiver: Receiver, kind: str, count: int = 1) -> list[dict[str, Any]]:
    await wait_until(lambda: len(receiver.of_type(kind)) >= count)
    return [r.group for r in receiver.of_type(kind)]


async def tap(client: httpx.AsyncClient, link: str, wa_id: str) -> httpx.Response:
    return await client.post("/control/tap-link", json={"invite_link": link, "wa_id": wa_id})


async def participants(client: httpx.AsyncClient, group_id: str) -> list[str]:
    info = await client.get(graph(group_id), params={"fields": "participants"})
    return [p["wa_id"] for p in info.json()["participants"]]


def removal(*users: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "participants": [{"user": u} for u in users]}


async def remove(client: httpx.AsyncClient, group_id: str, body: dict[str, Any]) -> httpx.Response:
    return await client.request("DELETE", graph(f"{group_id}/participants"), json=body)


# --- joining and leaving --------------------------------------------------------------------


async def test_tap_link_joins_auto_approve_group(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    response = await tap(client, group["invite_link"], "+" + USERS[0])
    assert response.json() == {"group_id": group["group_id"], "wa_id": USERS[0], "result": "joined"}
    [hook] = await hooks(receiver, "group_participants_add")
    assert hook == {
        "timestamp": hook["timestamp"],
        "group_id": group["group_id"],
        "type": "group_participants_add",
        "reason": "invite_link",
        "added_participants": [{"wa_id": USERS[0]}],
    }
    assert receiver.of_type("group_participants_add")[0].field == "group_participants_update"
    assert await participants(client, group["group_id"]) == [USERS[0]]
    # Tapping again as a member is refused; a bare code works as well as the full link.
    code = group["invite_link"].rsplit("/", 1)[1]
    assert (await tap(client, code, USERS[0])).status_code == 409


async def test_tap_link_refusals(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver)
    assert (await tap(client, "https://chat.whatsapp.com/unknown", USERS[0])).status_code == 404
    assert (await tap(client, group["invite_link"], "not-a-phone")).status_code == 400
    response = await client.post("/control/tap-link", json={"wa_id": USERS[0]})
    assert response.status_code == 400


async def test_full_group_refuses_ninth_participant(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    await join(client, group["invite_link"], *USERS[:8])
    response = await tap(client, group["invite_link"], USERS[8])
    assert response.status_code == 409
    assert response.json()["code"] == 131204
    info = await client.get(graph(group["group_id"]), params={"fields": "total_participant_count"})
    assert info.json()["total_participant_count"] == 8


async def test_leave_reports_participant_and_allows_rejoin(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    gid = group["group_id"]
    await join(client, group["invite_link"], USERS[0])
    response = await client.post("/control/leave", json={"group_id": gid, "wa_id": USERS[0]})
    assert response.status_code == 200
    [hook] = await hooks(receiver, "group_participants_remove")
    assert hook["initiated_by"] == "participant"
    assert hook["removed_participants"] == [{"wa_id": USERS[0]}]
    assert "request_id" not in hook
    assert await participants(client, gid) == []
    await join(client, group["invite_link"], USERS[0])
    assert await participants(client, gid) == [USERS[0]]
    response = await client.post("/control/leave", json={"group_id": gid, "wa_id": USERS[1]})
    assert response.status_code == 404


# --- business removal -----------------------------------------------------------------------


async def test_remove_participants_partial_and_ban(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    gid = group["group_id"]
    await join(client, group["invite_link"], USERS[0], USERS[1])
    response = await remove(client, gid, removal("+" + USERS[0], USERS[5]))
    assert response.status_code == 200
    ack = response.json()
    assert ack["messaging_product"] == "whatsapp"
    [hook] = await hooks(receiver, "group_participants_remove")
    assert hook["request_id"] == ack["request_id"]
    assert hook["initiated_by"] == "business"
    assert hook["removed_participants"] == [{"input": "+" + USERS[0], "wa_id": USERS[0]}]
    [failed] = hook["failed_participants"]
    assert failed["input"] == USERS[5]
    assert failed["errors"][0]["code"] == 131212
    assert hook["errors"][0]["code"] == 131201
    assert await participants(client, gid) == [USERS[1]]

    # Removed by the business: cannot come back through the link.
    response = await tap(client, group["invite_link"], USERS[0])
    assert response.status_code == 403
    dumped = (await client.get("/control/state")).json()["groups"][0]
    assert dumped["banned"] == [USERS[0]]


async def test_remove_participants_total_failure(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    response = await remove(client, group["group_id"], removal(USERS[0]))
    assert response.status_code == 200
    [hook] = await hooks(receiver, "group_participants_remove")
    assert "removed_participants" not in hook
    assert hook["failed_participants"][0]["errors"][0]["code"] == 131212
    assert hook["errors"][0]["code"] == 131212


async def test_remove_participants_fail_next_webhook(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    await join(client, group["invite_link"], USERS[0])
    await client.post(
        "/control/fail-next",
        json={"operation": "remove-participants", "code": 131000, "mode": "webhook"},
    )
    await remove(client, group["group_id"], removal(USERS[0]))
    [hook] = await hooks(receiver, "group_participants_remove")
    assert hook["failed_participants"][0]["errors"][0]["code"] == 131000
    assert await participants(client, group["group_id"]) == [USERS[0]]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messaging_product": "whatsapp", "participants": []}, 100),
        (removal(*USERS[:9]), 100),
        ({"participants": [{"user": USERS[0]}]}, 100),
        ({"messaging_product": "whatsapp", "participants": "x"}, 100),
        ({"messaging_product": "whatsapp", "participants": ["x"]}, 100),
        ({"messaging_product": "whatsapp", "participants": [{"user": "abc"}]}, 100),
        (
            {
                "messaging_product": "whatsapp",
                "participants": [{"user": "1234567", "user_id": "US.1"}],
            },
            100,
        ),
        (removal(USERS[0], "+" + USERS[0]), 131202),
    ],
)
async def test_remove_participants_validation(
    client: httpx.AsyncClient, receiver: Receiver, body: dict[str, Any], code: int
) -> None:
    group = await create_group(client, receiver)
    assert_graph_error(await remove(client, group["group_id"], body), code)


async def test_remove_eight_is_allowed_and_add_is_unsupported(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    await join(client, group["invite_link"], *USERS[:8])
    assert (await remove(client, group["group_id"], removal(*USERS[:8]))).status_code == 200
    await hooks(receiver, "group_participants_remove")
    assert await participants(client, group["group_id"]) == []
    added = await client.post(graph(f"{group['group_id']}/participants"), json=removal(USERS[9]))
    assert_graph_error(added, 100)


# --- join requests --------------------------------------------------------------------------


async def approval_group(client: httpx.AsyncClient, receiver: Receiver) -> dict[str, Any]:
    return await create_group(client, receiver, join_approval_mode="approval_required")


async def test_join_request_lifecycle(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await approval_group(client, receiver)
    gid = group["group_id"]
    first = (await tap(client, group["invite_link"], USERS[0])).json()
    assert first["result"] == "requested"
    again = (await tap(client, group["invite_link"], USERS[0])).json()
    assert again["join_request_id"] == first["join_request_id"]
    second = (await tap(client, group["invite_link"], USERS[1])).json()

    created = await hooks(receiver, "group_join_request_created", 2)
    assert created[0]["join_request_id"] == first["join_request_id"]
    assert created[0]["wa_id"] == USERS[0]
    assert receiver.of_type("group_join_request_created")[0].field == "group_participants_update"
    await asyncio.sleep(0.1)
    assert len(receiver.of_type("group_join_request_created")) == 2  # no duplicate for re-tap
    assert await participants(client, gid) == []

    listed = (await client.get(graph(f"{gid}/join_requests"))).json()
    assert [r["wa_id"] for r in listed["data"]] == [USERS[0], USERS[1]]
    assert isinstance(listed["data"][0]["creation_timestamp"], int)
    assert set(listed["paging"]["cursors"]) == {"before", "after"}

    approve = await client.post(
        graph(f"{gid}/join_requests"),
        json={
            "messaging_product": "whatsapp",
            "join_requests": [first["join_request_id"], "bogus"],
        },
    )
    assert approve.status_code == 200
    result = approve.json()
    assert result["approved_join_requests"] == [first["join_request_id"]]
    assert result["failed_join_requests"][0]["join_request_id"] == "bogus"
    assert result["failed_join_requests"][0]["errors"][0]["code"] == 131213
    assert result["errors"][0]["code"] == 131201
    [added] = await hooks(receiver, "group_participants_add")
    assert added["reason"] == "invite_link"
    assert added["added_participants"] == [{"input": USERS[0], "wa_id": USERS[0]}]
    assert await participants(client, gid) == [USERS[0]]

    reject = await client.request(
        "DELETE",
        graph(f"{gid}/join_requests"),
        json={"messaging_product": "whatsapp", "join_requests": [second["join_request_id"]]},
    )
    assert reject.json() == {
        "messaging_product": "whatsapp",
        "rejected_join_requests": [second["join_request_id"]],
    }
    assert (await client.get(graph(f"{gid}/join_requests"))).json()["data"] == []
    # A rejected user may ask again.
    assert (await tap(client, group["invite_link"], USERS[1])).json()["result"] == "requested"


async def test_cancel_join_request(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await approval_group(client, receiver)
    gid = group["group_id"]
    request = (await tap(client, group["invite_link"], USERS[0])).json()
    response = await client.post(
        "/control/cancel-request", json={"group_id": gid, "wa_id": USERS[0]}
    )
    assert response.status_code == 200
    [revoked] = await hooks(receiver, "group_join_request_revoked")
    assert revoked["join_request_id"] == request["join_request_id"]
    assert revoked["wa_id"] == USERS[0]
    assert (await client.get(graph(f"{gid}/join_requests"))).json()["data"] == []
    response = await client.post(
        "/control/cancel-request", json={"group_id": gid, "wa_id": USERS[0]}
    )
    assert response.status_code == 404
    approve = await client.post(
        graph(f"{gid}/join_requests"),
        json={"messaging_product": "whatsapp", "join_requests": [request["join_request_id"]]},
    )
    assert approve.json()["approved_join_requests"] == []
    assert approve.json()["errors"][0]["code"] == 131213


async def test_join_requests_pagination_and_validation(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await approval_group(client, receiver)
    url = graph(f"{group['group_id']}/join_requests")
    for user in USERS[:5]:
        await tap(client, group["invite_link"], user)
    page = (await client.get(url, params={"limit": 2})).json()
    assert [r["wa_id"] for r in page["data"]] == USERS[:2]
    page = (await client.get(page["paging"]["next"])).json()
    assert [r["wa_id"] for r in page["data"]] == USERS[2:4]
    page = (await client.get(page["paging"]["next"])).json()
    assert [r["wa_id"] for r in page["data"]] == USERS[4:5]
    assert "next" not in page["paging"]
    assert_graph_error(await client.get(url, params={"after": "!!"}), 131059)
    bad = await client.post(url, json={"messaging_product": "whatsapp", "join_requests": []})
    assert_graph_error(bad, 100)
    bad = await client.post(url, json={"join_requests": ["x"]})
    assert_graph_error(bad, 100)


async def test_approval_fails_when_group_is_full(
    client: httpx.AsyncClient, receiver: Receiver, sim: Any
) -> None:
    group = await approval_group(client, receiver)
    gid = group["group_id"]
    for user in USERS[:2]:
        await tap(client, group["invite_link"], user)
    # Fill the group directly (approval_required groups cannot be joined without a request).
    for user in USERS[2:9]:
        sim.state.groups[gid].participants[user] = 0
    ids = [
        r["join_request_id"]
        for r in (await client.get(graph(f"{gid}/join_requests"))).json()["data"]
    ]
    result = (
        await client.post(
            graph(f"{gid}/join_requests"),
            json={"messaging_product": "whatsapp", "join_requests": ids},
        )
    ).json()
    assert result["approved_join_requests"] == [ids[0]]
    assert result["failed_join_requests"][0]["errors"][0]["code"] == 131204
    assert len(await participants(client, gid)) == 8
