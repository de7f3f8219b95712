"""Input that databases, parsers and comparisons choke on: always a contract code, never a 500,
and nothing written. (PostgreSQL refuses NUL in text; SQLite does not: both backends run.)"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.conformance.helpers import (
    list_groups,
    make_client,
    new_active_group,
    raw_call,
    ref,
    wait_for,
)
from tests.conformance.tenancy import APP_SECRET, KEY_A, NUM_BAD, NUM_LIFE, SPACE_A1
from tests.live import LiveServer, control, query_db
from tests.signing import v1_params, v3_request

LIST = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_BAD, "Page": '{"Index":1,"Size":20}'}


def code_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["Code"]


@pytest.mark.parametrize(
    "params",
    [
        {**LIST, "CustSpaceId": "cams-\x00acme"},
        {**LIST, "Subject": "nul\x00subject"},
        {**LIST, "GroupLink": "x\x01y"},
        {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_BAD, "Subject": "nul\x00"},
        {
            "CustSpaceId": SPACE_A1,
            "BusinessNumber": NUM_BAD,
            "Subject": "ok",
            "Description": "d\x00",
        },
    ],
)
def test_control_characters_are_invalid_parameters(
    server: LiveServer, params: dict[str, str]
) -> None:
    action = "ListChatGroup" if "Page" in params else "AddChatGroup"
    response = httpx.post(server.url + "/", params=v1_params(action, params, *KEY_A))
    assert code_of(response) == (400, "InvalidParameter")
    assert list_groups(make_client(server, KEY_A), NUM_BAD).total == 0


def test_odd_identities_and_nonces(server: LiveServer) -> None:
    nul_key = v1_params("ListChatGroup", LIST, "LTAI5t\x00bad", "x")
    assert code_of(httpx.post(server.url + "/", params=nul_key))[0] == 400
    long_key = v1_params("ListChatGroup", LIST, "K" * 300, "x")
    assert code_of(httpx.post(server.url + "/", params=long_key)) == (
        404,
        "InvalidAccessKeyId.NotFound",
    )
    long_nonce = v1_params("ListChatGroup", LIST, *KEY_A, nonce="n" * 200)
    assert code_of(httpx.post(server.url + "/", params=long_nonce)) == (400, "IncompleteSignature")
    with httpx.Client() as client:
        request = v3_request(server.url, "ListChatGroup", LIST, *KEY_A, nonce="n" * 65)
        assert code_of(client.send(request)) == (400, "IncompleteSignature")


@pytest.mark.parametrize("name", ["Page.\u00b2", "Page.1" + "0" * 5000, "Page.01"])
def test_odd_flattened_indexes(server: LiveServer, name: str) -> None:
    query = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_BAD, name: "1"}
    response = httpx.post(server.url + "/", params=v1_params("ListChatGroup", query, *KEY_A))
    assert code_of(response) == (400, "InvalidParameter")


def test_group_link_longer_than_it_can_be_stored(client: Client) -> None:
    with pytest.raises(ClientException) as info:
        raw_call(
            client,
            "AddChatGroup",
            {
                "CustSpaceId": SPACE_A1,
                "BusinessNumber": NUM_BAD,
                "Subject": "s",
                "GroupLink": "l" * 1025,
            },
        )
    assert info.value.code == "InvalidParameter"
    assert list_groups(client, NUM_BAD).total == 0


def test_v3_must_sign_what_the_server_acts_on(server: LiveServer) -> None:
    form = b"GroupStatus=CREATING"
    with httpx.Client() as client:
        request = v3_request(
            server.url,
            "ListChatGroup",
            LIST,
            *KEY_A,
            body=form,
            content_type="application/x-www-form-urlencoded",
            signed=[
                "host",
                "x-acs-action",
                "x-acs-content-sha256",
                "x-acs-date",
                "x-acs-signature-nonce",
                "x-acs-version",
            ],
        )
        assert code_of(client.send(request)) == (400, "IncompleteSignature")
        request = v3_request(server.url, "ListChatGroup", LIST, *KEY_A, nonce="aa,bb")
        raw = [(k, v) for k, v in request.headers.raw if k.lower() != b"x-acs-signature-nonce"]
        raw += [(b"x-acs-signature-nonce", b"bb"), (b"x-acs-signature-nonce", b"aa")]
        twice = httpx.Request("POST", request.url, headers=raw)
        assert code_of(client.send(twice)) == (400, "IncompleteSignature")


def test_future_dated_nonce_stays_used_for_its_whole_window(server: LiveServer) -> None:
    from datetime import UTC, datetime, timedelta

    nonce = uuid.uuid4().hex
    when = (datetime.now(UTC) + timedelta(minutes=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = httpx.post(
        server.url + "/",
        params=v1_params("ListChatGroup", LIST, *KEY_A, nonce=nonce, timestamp=when),
    )
    assert response.json()["Code"] == "OK"
    expires = query_db(server, "SELECT expires_at FROM used_nonces WHERE nonce = :n", n=nonce)[0][0]
    horizon = (datetime.now(UTC) + timedelta(minutes=28)).timestamp() * 1000
    assert expires >= horizon  # usable until +14 min, plus 15 min of tolerance around that


def _signed(raw: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {
        "x-hub-signature-256": "sha256="
        + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    }


def _delivery(group: dict[str, Any], field: str = "group_participants_update") -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "w", "changes": [{"field": field, "value": {"groups": [group]}}]}],
        }
    ).encode()


def test_hostile_webhooks(server: LiveServer) -> None:
    url = f"{server.url}/webhooks/whatsapp"
    assert (
        httpx.post(
            url, content=b"{}", headers={"x-hub-signature-256": "sha256=\u00e9\u00e9".encode()}
        ).status_code
        == 401
    )
    assert (
        httpx.get(
            url,
            params={"hub.mode": "subscribe", "hub.verify_token": "\u00e9", "hub.challenge": "1"},
        ).status_code
        == 403
    )
    for body in (
        b'{"object":"whatsapp_business_account","entry":5}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":5}]}',
    ):
        assert httpx.post(url, content=body, headers=_signed(body)).status_code == 400
    odd = [
        {"type": "group_participants_add", "group_id": "G" * 300},
        {"type": "x" * 100, "group_id": "G1"},
        {"type": "group_participants_add", "group_id": "G\x00"},
        {"type": 5, "group_id": "G1"},
    ]
    for group in odd:
        body = _delivery(group)
        response = httpx.post(url, content=body, headers=_signed(body))
        assert (response.status_code, response.json()["skipped"]) == (200, 1), response.text


def test_hostile_values_inside_a_known_group(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_LIFE)
    meta = query_db(server, "SELECT meta_group_id FROM chat_groups WHERE id = :id", id=group_id)[0][
        0
    ]
    url = f"{server.url}/webhooks/whatsapp"
    for group in (
        {
            "type": "group_participants_add",
            "group_id": meta,
            "timestamp": "9" * 25,
            "added_participants": [{"wa_id": "8613977777701"}],
        },
        {
            "type": "group_participants_add",
            "group_id": meta,
            "added_participants": [{"wa_id": {"x": 1}}, {"wa_id": "86\x0039"}, {"wa_id": "7" * 40}],
        },
    ):
        body = _delivery(group)
        response = httpx.post(url, content=body, headers=_signed(body))
        assert response.status_code == 200, response.text
    members = client.list_chat_group_participants(
        m.ListChatGroupParticipantsRequest(**ref(NUM_LIFE, group_id))
    ).body.data
    assert [p.participant_number for p in members.list] == ["8613977777701"]


def test_changes_cannot_overlap(server: LiveServer) -> None:
    client = make_client(server, KEY_A)
    group_id, _ = new_active_group(client, NUM_LIFE)
    control(server, "webhooks/hold")
    try:

        def update(i: int) -> str:
            own = make_client(server, KEY_A)
            body = own.update_chat_group(
                m.UpdateChatGroupRequest(**ref(NUM_LIFE, group_id), subject=f"race {i}")
            ).body
            return str(body.code)

        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            codes = sorted(pool.map(update, range(5)))
        assert codes == ["InvalidStatus.ChatGroup"] * 4 + ["OK"]
        deleting = client.delete_chat_group(
            m.DeleteChatGroupRequest(**ref(NUM_LIFE, group_id))
        ).body
        assert deleting.code == "InvalidStatus.ChatGroup"  # not while UPDATING
    finally:
        control(server, "webhooks/release")
    wait_for(
        lambda: (
            next(
                g for g in list_groups(client, NUM_LIFE).list if g.group_id == group_id
            ).group_status
            == "ACTIVE"
        )
    )
    pending = query_db(
        server,
        "SELECT count(*) FROM operations WHERE group_id = :g AND state = 'pending'",
        g=group_id,
    )
    assert pending[0][0] == 0


def test_simulator_controls_answer_loopback_only() -> None:
    import asyncio

    from opencams.app import LoopbackControls

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("must not be reached")

    async def call() -> int:
        transport = httpx.ASGITransport(app=LoopbackControls(app), client=("203.0.113.7", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            return (await http.post("/_sandbox/control/webhooks/callback", json={})).status_code

    assert asyncio.run(call()) == 403
