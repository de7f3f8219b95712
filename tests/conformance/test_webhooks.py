"""The webhook receiver: handshake, signature check over raw bytes, exactly-once application."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606.client import Client

from tests.conformance.helpers import add_group, list_groups, wait_for
from tests.conformance.tenancy import APP_SECRET, NUM_LOOP, VERIFY_TOKEN
from tests.live import LiveServer, control, query_db

PNID_LOOP = "110000000000001"


def create_event(
    request_id: str, group_id: str, link: str, errors: list[Any] | None = None
) -> bytes:
    group: dict[str, Any] = {
        "timestamp": "1764417000",
        "group_id": group_id,
        "type": "group_create",
        "request_id": request_id,
        "subject": "forged or not",
        "invite_link": link,
        "join_approval_mode": "auto_approve",
    }
    if errors:
        group["errors"] = errors
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "210000000000001",
                "changes": [
                    {
                        "field": "group_lifecycle_update",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": NUM_LOOP,
                                "phone_number_id": PNID_LOOP,
                            },
                            "groups": [group],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(body, ensure_ascii=True).encode()


def post(server: LiveServer, raw: bytes, secret: str | None = APP_SECRET) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-hub-signature-256"] = (
            "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        )
    return httpx.post(f"{server.url}/webhooks/whatsapp", content=raw, headers=headers, timeout=10)


@pytest.fixture
def held(server: LiveServer) -> Iterator[None]:
    """The simulator queues its webhooks instead of delivering them."""
    control(server, "webhooks/hold")
    try:
        yield
    finally:
        control(server, "webhooks/drop")
        control(server, "webhooks/release")


def pending_group(server: LiveServer, client: Client) -> tuple[str, str, str]:
    """A group stuck in CREATING; returns (subject, GroupId, Meta request id)."""
    subject = f"Hook {uuid.uuid4().hex[:8]}"
    body = add_group(client, NUM_LOOP, subject)
    assert body.code == "OK"
    row = query_db(
        server,
        "SELECT group_id, meta_request_id FROM operations WHERE id = :id",
        id=body.unique_code,
    )[0]
    return subject, row[0], row[1]


def test_handshake(server: LiveServer) -> None:
    url = f"{server.url}/webhooks/whatsapp"
    ok = httpx.get(
        url,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = httpx.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403
    assert (
        httpx.get(url, params={"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}).status_code
        == 403
    )


def test_bad_signatures_change_nothing(server: LiveServer, client: Client, held: None) -> None:
    subject, _group_id, request_id = pending_group(server, client)
    raw = create_event(request_id, "META-FORGED", "https://chat.whatsapp.com/forged")
    assert post(server, raw, secret="not-the-app-secret").status_code == 401
    assert post(server, raw, secret=None).status_code == 401
    tampered = raw.replace(b"forged", b"f0rged")
    headers = {
        "x-hub-signature-256": "sha256="
        + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    }
    assert (
        httpx.post(f"{server.url}/webhooks/whatsapp", content=tampered, headers=headers).status_code
        == 401
    )
    assert list_groups(client, NUM_LOOP, subject=subject).list[0].group_status == "CREATING"
    assert (
        query_db(
            server, "SELECT count(*) FROM webhook_events WHERE meta_request_id = :r", r=request_id
        )[0][0]
        == 0
    )


def test_signed_garbage_is_refused(server: LiveServer) -> None:
    for raw in (
        b"not json",
        b'{"object": "page"}',
        b'{"object":"whatsapp_business_account","entry":[7]}',
    ):
        assert post(server, raw).status_code == 400


def test_applied_once_even_when_delivered_twice(
    server: LiveServer, client: Client, held: None
) -> None:
    subject, _group_id, request_id = pending_group(server, client)
    raw = create_event(request_id, f"META-{uuid.uuid4().hex}", "https://chat.whatsapp.com/first")
    first = post(server, raw)
    assert first.status_code == 200 and first.json()["outcomes"] == ["applied"]
    again = post(server, raw)
    assert again.status_code == 200 and again.json()["outcomes"] == ["duplicate"]
    item = list_groups(client, NUM_LOOP, subject=subject).list[0]
    assert (item.group_status, item.invite_link) == ("ACTIVE", "https://chat.whatsapp.com/first")
    # A later, different create event for the same operation cannot undo or redo it.
    other = post(
        server,
        create_event(
            request_id, "META-OTHER", "https://chat.whatsapp.com/other", errors=[{"code": 1}]
        ),
    )
    assert other.json()["outcomes"] == ["ignored"]
    item = list_groups(client, NUM_LOOP, subject=subject).list[0]
    assert (item.group_status, item.invite_link) == ("ACTIVE", "https://chat.whatsapp.com/first")


def test_simulator_duplicates_are_applied_once(server: LiveServer, client: Client) -> None:
    control(server, "webhooks/duplicate", {"on": True})
    try:
        subject = f"Twice {uuid.uuid4().hex[:8]}"
        body = add_group(client, NUM_LOOP, subject)
        wait_for(
            lambda: list_groups(client, NUM_LOOP, subject=subject).list[0].group_status == "ACTIVE"
        )
        request_id = query_db(
            server, "SELECT meta_request_id FROM operations WHERE id = :id", id=body.unique_code
        )[0][0]
        wait_for(lambda: control(server, "webhooks/flush") is not None)
        events = query_db(
            server, "SELECT state FROM webhook_events WHERE meta_request_id = :r", r=request_id
        )
        assert [e[0] for e in events] == ["applied"]
    finally:
        control(server, "webhooks/duplicate", {"on": False})


def test_webhook_held_then_released_still_applies(server: LiveServer, client: Client) -> None:
    control(server, "webhooks/hold")
    try:
        subject = f"Late {uuid.uuid4().hex[:8]}"
        assert add_group(client, NUM_LOOP, subject).code == "OK"
        assert list_groups(client, NUM_LOOP, subject=subject).list[0].group_status == "CREATING"
    finally:
        control(server, "webhooks/release")
    wait_for(
        lambda: list_groups(client, NUM_LOOP, subject=subject).list[0].group_status == "ACTIVE"
    )


def test_event_before_its_operation_is_parked_then_applied(server: LiveServer) -> None:
    """Meta can answer before AddChatGroup has written its row: the event waits for it."""
    request_id = f"9{uuid.uuid4().int % 10**14:014d}"
    response = post(
        server, create_event(request_id, "META-EARLY", "https://chat.whatsapp.com/early")
    )
    assert response.json()["outcomes"] == ["parked"]
    rows = query_db(
        server, "SELECT state FROM webhook_events WHERE meta_request_id = :r", r=request_id
    )
    assert [r[0] for r in rows] == ["parked"]


def test_status_of_a_message_not_stored_yet_is_parked(server: LiveServer) -> None:
    """Meta can report a status before SendChatappMessage has stored the wamid: it waits."""
    wamid = f"wamid.{uuid.uuid4().hex}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": NUM_LOOP, "phone_number_id": PNID_LOOP},
        "statuses": [
            {
                "id": wamid,
                "status": "sent",
                "timestamp": "1764417000",
                "recipient_type": "group",
            }
        ],
    }
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "210000000000001", "changes": [{"field": "messages", "value": value}]}
            ],
        }
    ).encode()
    response = post(server, raw)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "outcomes": ["parked"], "skipped": 0}
    rows = query_db(server, "SELECT state FROM webhook_events WHERE meta_request_id = :w", w=wamid)
    assert [r[0] for r in rows] == ["parked"]
