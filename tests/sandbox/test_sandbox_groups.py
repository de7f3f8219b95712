"""Priority-1 Graph surface: auth, create (validation, limits, webhook), list, get."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from opencams.sandbox import SandboxConfig, Simulator, parse_group_id
from tests.sandbox.helpers import (
    APP_SECRET,
    DELAY,
    DISPLAY,
    NUMBER,
    TOKEN,
    WABA,
    Receiver,
    assert_graph_error,
    create_group,
    graph,
    wait_until,
)


def body(**extra: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "subject": "Team", **extra}


# --- auth -----------------------------------------------------------------------------------


async def test_missing_or_empty_token_is_190(client: httpx.AsyncClient) -> None:
    url = graph(f"{NUMBER}/groups")
    response = await client.get(url, headers={"Authorization": ""})
    assert_graph_error(response, 190, 401)
    response = await client.get(url, headers={"Authorization": "Bearer  "})
    assert_graph_error(response, 190, 401)
    response = await client.post(url, json=body(), headers={"Authorization": "Basic abc"})
    assert_graph_error(response, 190, 401)


async def test_first_token_binds_to_an_auto_registered_number(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    url = graph("5550001/groups")
    response = await client.get(url, headers={"Authorization": "Bearer first"})
    assert response.status_code == 200
    response = await client.get(url, headers={"Authorization": "Bearer second"})
    assert_graph_error(response, 190, 401)
    number = sim.state.numbers["5550001"]
    assert number.display_phone_number == "5550001"
    assert len(number.waba_id) == 15
    # The token bound through the control is enforced the same way.
    response = await client.get(graph(f"{NUMBER}/groups"), headers={"Authorization": "Bearer x"})
    assert_graph_error(response, 190, 401)
    # Graph's access_token query parameter is accepted as well.
    response = await client.get(
        url, params={"access_token": "first"}, headers={"Authorization": ""}
    )
    assert response.status_code == 200


async def test_any_version_segment_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/graph/v25.0/{NUMBER}/groups")
    assert response.status_code == 200
    response = await client.get(f"/graph/latest/{NUMBER}/groups")
    assert_graph_error(response, 2500)
    response = await client.get(f"/graph/v23.0/{NUMBER}/groups/extra/parts")
    assert_graph_error(response, 2500)


# --- create ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"subject": "Team"},
        {"messaging_product": "sms", "subject": "Team"},
        {"messaging_product": "whatsapp"},
        {"messaging_product": "whatsapp", "subject": "   "},
        {"messaging_product": "whatsapp", "subject": "x" * 129},
        {"messaging_product": "whatsapp", "subject": 5},
        {"messaging_product": "whatsapp", "subject": "Team", "description": "d" * 2049},
        {"messaging_product": "whatsapp", "subject": "Team", "join_approval_mode": "open"},
    ],
)
async def test_create_validation_is_code_100(
    client: httpx.AsyncClient, payload: dict[str, Any]
) -> None:
    response = await client.post(graph(f"{NUMBER}/groups"), json=payload)
    assert_graph_error(response, 100)


async def test_create_body_must_be_a_json_object(client: httpx.AsyncClient) -> None:
    url = graph(f"{NUMBER}/groups")
    response = await client.post(url, content=b"{not json", headers={"content-type": "x"})
    assert_graph_error(response, 100)
    response = await client.post(url, json=["whatsapp"])
    assert_graph_error(response, 100)


async def test_create_accepts_form_encoded_params(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    response = await client.post(
        graph(f"{NUMBER}/groups"), data={"messaging_product": "whatsapp", "subject": "Form"}
    )
    assert response.status_code == 200
    [hook] = await receiver.wait_for(1)
    assert hook.group["subject"] == "Form"


async def test_subject_is_trimmed_and_limits_are_inclusive(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    subject = "  " + "s" * 128 + "  "
    group = await create_group(client, receiver, subject=subject, description="d" * 2048)
    assert group["subject"] == "s" * 128


async def test_create_then_webhook_then_listed_and_gettable(
    client: httpx.AsyncClient, receiver: Receiver, sim: Simulator
) -> None:
    response = await client.post(
        graph(f"{NUMBER}/groups"),
        json=body(subject="Café ☕", description="Desc", join_approval_mode="approval_required"),
    )
    assert response.status_code == 200
    ack = response.json()
    assert ack["messaging_product"] == "whatsapp"
    assert len(ack["request_id"]) == 15
    assert ack["request_id"].isdigit()
    assert set(ack) == {"messaging_product", "request_id"}

    # Not visible at "Meta" until the webhook fires.
    listed = await client.get(graph(f"{NUMBER}/groups"))
    assert listed.json()["data"]["groups"] == []
    creating = next(iter(sim.state.groups.values()))
    assert creating.status == "creating"
    assert_graph_error(await client.get(graph(creating.group_id)), 131041)

    [hook] = await receiver.wait_for(1)
    assert hook.headers["content-type"] == "application/json"
    assert hook.signature_ok()
    assert not hook.signature_ok("another-secret")
    payload = hook.json
    assert payload["object"] == "whatsapp_business_account"
    assert payload["entry"][0]["id"] == WABA
    assert hook.field == "group_lifecycle_update"
    assert hook.value["messaging_product"] == "whatsapp"
    assert hook.value["metadata"] == {"display_phone_number": DISPLAY, "phone_number_id": NUMBER}
    group = hook.group
    assert group["type"] == "group_create"
    assert group["request_id"] == ack["request_id"]
    assert group["subject"] == "Café ☕"
    assert group["join_approval_mode"] == "approval_required"
    assert group["timestamp"].isdigit()
    assert group["invite_link"].startswith("https://chat.whatsapp.com/")
    assert len(group["invite_link"].rsplit("/", 1)[1]) == 22
    assert "errors" not in group
    phone, jid = parse_group_id(group["group_id"]) or ("", "")
    assert phone == "17055550139"
    assert jid.startswith("120363")
    # Meta signs the escaped-unicode body: the raw bytes carry \u escapes, not UTF-8.
    assert b"\\u00e9" in hook.body
    assert "é".encode() not in hook.body

    listed = (await client.get(graph(f"{NUMBER}/groups"))).json()
    [item] = listed["data"]["groups"]
    assert item["id"] == group["group_id"]
    assert item["subject"] == "Café ☕"
    assert item["created_at"].isdigit()
    got = await client.get(graph(group["group_id"]))
    assert got.json() == {"messaging_product": "whatsapp", "id": group["group_id"]}


async def test_ineligible_number_is_131215(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/control/eligible", json={"phone_number_id": NUMBER, "eligible": False}
    )
    assert response.status_code == 200
    assert_graph_error(await client.post(graph(f"{NUMBER}/groups"), json=body()), 131215)
    assert_graph_error(await client.get(graph(f"{NUMBER}/groups")), 131215)
    await client.post("/control/eligible", json={"phone_number_id": NUMBER, "eligible": True})
    assert (await client.post(graph(f"{NUMBER}/groups"), json=body())).status_code == 200


async def test_ten_thousand_live_groups_is_131211(
    client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    seeded = sim.state.seed_groups(NUMBER, 9_999)
    # The 10,000th is still allowed; it counts while it is being created.
    assert (await client.post(graph(f"{NUMBER}/groups"), json=body())).status_code == 200
    assert_graph_error(await client.post(graph(f"{NUMBER}/groups"), json=body()), 131211)
    # Deleting one frees a slot.
    delete = await client.delete(graph(seeded[0].group_id))
    assert delete.status_code == 200
    await client.post("/control/webhooks/flush")
    assert (await client.post(graph(f"{NUMBER}/groups"), json=body())).status_code == 200


# --- list -----------------------------------------------------------------------------------


async def test_list_pagination_with_cursors(client: httpx.AsyncClient, sim: Simulator) -> None:
    groups = sim.state.seed_groups(NUMBER, 7)
    ids = [g.group_id for g in groups]
    url = graph(f"{NUMBER}/groups")

    first = (await client.get(url, params={"limit": 3})).json()
    assert [g["id"] for g in first["data"]["groups"]] == ids[:3]
    assert "previous" not in first["paging"]
    assert set(first["paging"]["cursors"]) == {"before", "after"}

    # Follow the absolute `next` link as a Graph client would.
    next_url = first["paging"]["next"]
    assert parse_qs(urlsplit(next_url).query)["limit"] == ["3"]
    second = (await client.get(next_url)).json()
    assert [g["id"] for g in second["data"]["groups"]] == ids[3:6]
    assert "previous" in second["paging"]

    third = (await client.get(second["paging"]["next"])).json()
    assert [g["id"] for g in third["data"]["groups"]] == ids[6:]
    assert "next" not in third["paging"]

    back = (await client.get(third["paging"]["previous"])).json()
    assert [g["id"] for g in back["data"]["groups"]] == ids[3:6]
    before = third["paging"]["cursors"]["before"]
    back = (await client.get(url, params={"limit": 2, "before": before})).json()
    assert [g["id"] for g in back["data"]["groups"]] == ids[4:6]

    # Default limit 25 and creation order.
    everything = (await client.get(url)).json()
    assert [g["id"] for g in everything["data"]["groups"]] == ids
    assert "next" not in everything["paging"]


async def test_list_skips_deleted_groups_and_cursors_survive(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    groups = sim.state.seed_groups(NUMBER, 5)
    url = graph(f"{NUMBER}/groups")
    page = (await client.get(url, params={"limit": 2})).json()
    groups[2].status = "deleted"
    rest = await client.get(url, params={"limit": 2, "after": page["paging"]["cursors"]["after"]})
    assert [g["id"] for g in rest.json()["data"]["groups"]] == [
        groups[3].group_id,
        groups[4].group_id,
    ]


async def test_list_empty_page_past_the_end_points_back(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    sim.state.seed_groups(NUMBER, 2)
    url = graph(f"{NUMBER}/groups")
    last = (await client.get(url, params={"limit": 2})).json()["paging"]["cursors"]["after"]
    empty = (await client.get(url, params={"after": last})).json()
    assert empty["data"]["groups"] == []
    assert "next" not in empty["paging"]
    assert len((await client.get(empty["paging"]["previous"])).json()["data"]["groups"]) == 2


@pytest.mark.parametrize("limit", ["0", "1025", "ten", "-1"])
async def test_list_bad_limit_is_100(client: httpx.AsyncClient, limit: str) -> None:
    response = await client.get(graph(f"{NUMBER}/groups"), params={"limit": limit})
    assert_graph_error(response, 100)


async def test_list_limit_bounds_are_inclusive(client: httpx.AsyncClient) -> None:
    for limit in ("1", "1024"):
        response = await client.get(graph(f"{NUMBER}/groups"), params={"limit": limit})
        assert response.status_code == 200


@pytest.mark.parametrize("cursor", ["garbage!!", "bm90LWEtbnVtYmVy", "OTk5OTk5"])
async def test_list_bad_cursor_is_131059(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get(graph(f"{NUMBER}/groups"), params={"after": cursor})
    assert_graph_error(response, 131059)
    response = await client.get(graph(f"{NUMBER}/groups"), params={"before": cursor})
    assert_graph_error(response, 131059)


# --- get ------------------------------------------------------------------------------------


async def test_get_fields(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver, subject="Ops", description="Night shift")
    await client.post(
        "/control/tap-link", json={"invite_link": group["invite_link"], "wa_id": "+8613900000001"}
    )
    fields = (
        "subject,description,join_approval_mode,suspended,creation_timestamp,"
        "participants,total_participant_count"
    )
    info = (await client.get(graph(group["group_id"]), params={"fields": fields})).json()
    assert info["messaging_product"] == "whatsapp"
    assert info["id"] == group["group_id"]
    assert info["subject"] == "Ops"
    assert info["description"] == "Night shift"
    assert info["join_approval_mode"] == "auto_approve"
    assert info["suspended"] is False
    assert isinstance(info["creation_timestamp"], int)
    assert info["participants"] == [{"wa_id": "8613900000001"}]
    assert info["total_participant_count"] == 1

    partial = (await client.get(graph(group["group_id"]), params={"fields": "subject"})).json()
    assert partial == {"messaging_product": "whatsapp", "id": group["group_id"], "subject": "Ops"}
    response = await client.get(graph(group["group_id"]), params={"fields": "subject,owner"})
    assert_graph_error(response, 100)


async def test_get_omits_unset_description(client: httpx.AsyncClient, receiver: Receiver) -> None:
    group = await create_group(client, receiver)
    info = await client.get(graph(group["group_id"]), params={"fields": "description,subject"})
    assert "description" not in info.json()


async def test_unknown_group_or_other_token_is_131041(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    group = await create_group(client, receiver)
    assert_graph_error(await client.get(graph("Y2FwaV9ncm91cDoxOjEyMzQZD")), 131041)
    assert_graph_error(await client.get(graph("nonsense")), 131041)
    other = {"Authorization": "Bearer someone-else"}
    assert_graph_error(await client.get(graph(group["group_id"]), headers=other), 131041)
    # A phone number is not a group node.
    assert_graph_error(await client.get(graph(NUMBER)), 100)


# --- hosting --------------------------------------------------------------------------------


async def test_mounted_under_a_prefix_builds_links_under_it(receiver: Receiver) -> None:
    sim = Simulator(SandboxConfig(callback_url=receiver.url, app_secret=APP_SECRET))
    sim.state.seed_groups(NUMBER, 3)
    outer = Starlette(routes=[Mount("/_sandbox", app=sim.app)])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://h") as http:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"/_sandbox/graph/v23.0/{NUMBER}/groups"
        page = (await http.get(url, params={"limit": 1}, headers=headers)).json()
        assert page["paging"]["next"].startswith(f"http://h/_sandbox/graph/v23.0/{NUMBER}/groups?")
        assert (await http.get("/_sandbox/control/state")).status_code == 200
    await sim.aclose()


async def test_app_secret_provider_is_awaited_at_send_time(receiver: Receiver) -> None:
    secret = {"value": "first"}

    async def provider() -> str | None:
        await asyncio.sleep(0)
        return secret["value"]

    sim = Simulator(
        SandboxConfig(callback_url=receiver.url, app_secret=provider, webhook_delay=DELAY)
    )
    transport = httpx.ASGITransport(app=sim.app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=headers) as http:
        await create_group(http, receiver)
        secret["value"] = "second"
        await create_group(http, receiver)
    assert receiver.received[0].signature_ok("first")
    assert receiver.received[1].signature_ok("second")
    await sim.aclose()


async def test_no_callback_url_keeps_webhooks_queued(client: httpx.AsyncClient) -> None:
    sim = Simulator(SandboxConfig(callback_url=None, app_secret=APP_SECRET, webhook_delay=0))
    transport = httpx.ASGITransport(app=sim.app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=headers) as http:
        await http.post(graph(f"{NUMBER}/groups"), json=body())
        await wait_until(lambda: sim.outbox.queue_length == 1)
        state = (await http.get("/control/state")).json()
        assert state["webhooks"]["queue_length"] == 1
        assert state["groups"][0]["status"] == "active"
    await sim.aclose()
