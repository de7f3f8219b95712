"""Group messages through real servers and the official SDK: SendChatappMessage of every type
Meta allows in groups (and the refusals), ListChatappMessage, status receipts (out of order,
duplicated), inbound messages to the UpCallbackUrl, media links, BSUID members
(docs/messages.md)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from opencams.store.crypto import SecretBox
from tests.conformance.helpers import make_client, new_active_group, wait_for
from tests.conformance.tenancy import (
    APP_SECRET,
    CALLBACK_SECRET_A,
    KEY_A,
    NUM_B1,
    NUM_MESSAGES,
    SPACE_A1,
    TENANCY,
)
from tests.databases import BACKENDS, database_url
from tests.live import SECRET_KEY, LiveServer, control, live_server, query_db, sandbox_state
from tests.receiver import FAST_CALLBACKS, Receiver, receiving

PNID = "1100000000000010"  # NUM_MESSAGES' phone_number_id (tenancy.py)
MEMBERS = ("8613900000101", "8613900000102")


@pytest.fixture(scope="module", params=BACKENDS)
def msg_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    work: Path = tmp_path_factory.mktemp(f"messages-{request.param}")
    with (
        database_url(request.param, work) as url,
        live_server(
            url,
            work,
            TENANCY,
            OPENCAMS_SANDBOX_MEDIA_FETCH_ALLOW_PRIVATE="true",
            **FAST_CALLBACKS,
        ) as live,
    ):
        yield live


@pytest.fixture(scope="module")
def receivers(msg_server: LiveServer) -> Iterator[tuple[Receiver, Receiver]]:
    """(status receiver, inbound receiver) of NUM_MESSAGES, configured through the SDK."""
    with receiving(CALLBACK_SECRET_A) as statuses, receiving(CALLBACK_SECRET_A) as inbound:
        answer = make_client(msg_server).update_phone_webhook(
            m.UpdatePhoneWebhookRequest(
                cust_space_id=SPACE_A1,
                phone_number=NUM_MESSAGES,
                http_flag="Y",
                queue_flag="N",
                status_callback_url=statuses.url,
                up_callback_url=inbound.url,
            )
        )
        assert answer.body.code == "OK", answer.body.to_map()
        yield statuses, inbound


@pytest.fixture(scope="module")
def media_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback site of media files, one per kind (MIME types from the extensions)."""
    root = tmp_path_factory.mktemp("media")
    files = {
        "photo.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 200,
        "clip.mp4": b"\0\0\0\x18ftypmp42" + b"\0" * 200,
        "voice.ogg": b"OggS" + b"\0" * 200,
        "report.pdf": b"%PDF-1.4\n%%EOF\n",
        "sticker.webp": b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 64,
    }
    for name, data in files.items():
        (root / name).write_bytes(data)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a fetcher that hangs up once it has what it needs is not news

    httpd = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def meta_id(server: LiveServer, group_id: str) -> str:
    rows = query_db(server, "SELECT meta_group_id FROM chat_groups WHERE id = :g", g=group_id)
    return str(rows[0][0])


def group_with_members(
    server: LiveServer, client: Client, members: tuple[str, ...] = MEMBERS
) -> str:
    """A fresh ACTIVE group of NUM_MESSAGES that `members` joined by its invite link."""
    group_id, _ = new_active_group(client, NUM_MESSAGES, "Talk")
    link = client.add_chat_group_invite_link(
        m.AddChatGroupInviteLinkRequest(
            cust_space_id=SPACE_A1, business_number=NUM_MESSAGES, group_id=group_id
        )
    ).body.invite_link
    for member in members:
        control(server, "tap-link", {"invite_link": link, "wa_id": member})
    wait_for(
        lambda: (
            query_db(server, "SELECT participant_count FROM chat_groups WHERE id = :g", g=group_id)[
                0
            ][0]
            == len(members)
        )
    )
    return group_id


def send(
    client: Client, group_id: str, message_type: str | None, content: Any, **extra: Any
) -> Any:
    request = m.SendChatappMessageRequest(
        channel_type=extra.pop("channel_type", "whatsapp"),
        type=extra.pop("type", "message"),
        from_=extra.pop("from_", NUM_MESSAGES),
        to=group_id,
        recipient_type=extra.pop("recipient_type", "group"),
        cust_space_id=extra.pop("cust_space_id", SPACE_A1),
        message_type=message_type,
        content=content if content is None or isinstance(content, str) else json.dumps(content),
        **extra,
    )
    return client.send_chatapp_message(request).body


def listed(client: Client, **filters: Any) -> list[Any]:
    response = client.list_chatapp_message(
        m.ListChatappMessageRequest(
            channel_type="whatsapp",
            cust_space_id=SPACE_A1,
            business_number=NUM_MESSAGES,
            page=m.ListChatappMessageRequestPage(index=1, size=100),
            **filters,
        )
    )
    assert response.body.code == "OK", response.body.to_map()
    return list(response.body.data)


def message_rows(server: LiveServer, group_id: str) -> int:
    return int(
        query_db(server, "SELECT count(*) FROM messages WHERE group_id = :g", g=group_id)[0][0]
    )


def sent_at_meta(server: LiveServer, group_id: str) -> list[dict[str, Any]]:
    meta = meta_id(server, group_id)
    return [
        x
        for x in sandbox_state(server)["messages"]
        if x.get("group_id") == meta and x.get("from") is None
    ]


def receipts_of(receiver: Receiver, message_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in receiver.first_copies()
        if e["EventType"] == "ChatAppStatus" and e["MessageId"] == message_id
    ]


# --- sending ---------------------------------------------------------------------------------


def test_every_type_allowed_in_groups_is_sent_once_and_listed(
    msg_server: LiveServer, signer: str | None, media_site: str
) -> None:
    client = make_client(msg_server, KEY_A, signer)
    group_id = group_with_members(msg_server, client)
    text = send(client, group_id, "text", {"text": "Hello, group"}, task_id="task-1")
    assert text.code == "OK", text.to_map()
    assert len(text.message_id) == 24 and text.request_id
    wait_for(
        lambda: query_db(msg_server, "SELECT wamid FROM messages WHERE id = :i", i=text.message_id)[
            0
        ][0]
    )
    contents: list[tuple[str, Any]] = [
        ("image", {"link": f"{media_site}/photo.jpg", "caption": "a photo"}),
        ("video", {"link": f"{media_site}/clip.mp4", "caption": "a clip"}),
        ("audio", {"link": f"{media_site}/voice.ogg"}),
        ("document", {"link": f"{media_site}/report.pdf", "fileName": "report.pdf"}),
        ("sticker", {"link": f"{media_site}/sticker.webp"}),
        ("location", {"latitude": 31.23, "longitude": 121.47, "name": "Bund"}),
        ("contacts", [{"name": "Ann Lee", "phones": [{"phone": "+8613900000999"}]}]),
        ("reaction", {"messageId": text.message_id, "emoji": "\U0001f44d"}),
        ("pin", {"type": "pin", "messageId": text.message_id, "expirationDays": 3}),
    ]
    ids = {"text": text.message_id}
    for kind, content in contents:
        body = send(client, group_id, kind, content)
        assert body.code == "OK", (kind, body.to_map())
        ids[kind] = body.message_id
    reply = send(client, group_id, "text", {"text": "a reply"}, context_message_id=text.message_id)
    assert reply.code == "OK", reply.to_map()
    template = send(
        client,
        group_id,
        None,
        None,
        type="template",
        template_code="order_update",
        language="en_US",
        template_params={"1": "Ann", "2": "42", "headerImage": f"{media_site}/photo.jpg"},
    )
    assert template.code == "OK", template.to_map()
    at_meta = sent_at_meta(msg_server, group_id)
    assert len(at_meta) == len(ids) + 2  # each exactly once
    items = {i.message_id: i for i in listed(client, event_action="DOWN", user_number=group_id)}
    assert set(items) == {*ids.values(), reply.message_id, template.message_id}
    for kind, message_id in ids.items():
        item = items[message_id]
        assert (item.message_type, item.event_action, item.user_number) == (kind, "DOWN", group_id)
        assert item.unique_message_id in {x["id"] for x in at_meta}
    assert json.loads(items[ids["text"]].message) == {"text": "Hello, group"}
    assert items[template.message_id].type == "template"
    assert items[template.message_id].template_code == "order_update"
    (stored,) = query_db(
        msg_server, "SELECT payload FROM messages WHERE id = :i", i=template.message_id
    )
    sent = json.loads(stored[0])["template"]
    assert sent["name"] == "order_update" and sent["language"] == {"code": "en_US"}
    assert {"type": "text", "text": "Ann"} in sent["components"][1]["parameters"]
    (ctx,) = query_db(msg_server, "SELECT payload FROM messages WHERE id = :i", i=reply.message_id)
    assert json.loads(ctx[0])["context"]["message_id"] == items[text.message_id].unique_message_id


@pytest.mark.parametrize(
    "kind", ["interactive", "typing_indicator", "carousel", "order", "call", "poll"]
)
def test_types_not_allowed_in_groups_are_refused(
    msg_server: LiveServer, receivers: Any, kind: str
) -> None:
    client = make_client(msg_server)
    group_id = group_with_members(msg_server, client)
    body = send(client, group_id, kind, {"type": "button", "action": {}})
    assert (body.code, body.message_id) == ("InvalidParameter.MessageTypeNotSupport", None)
    assert message_rows(msg_server, group_id) == 0 and sent_at_meta(msg_server, group_id) == []


@pytest.fixture(scope="module")
def talk(msg_server: LiveServer) -> str:
    return group_with_members(msg_server, make_client(msg_server))


BAD: list[tuple[str, str | None, Any, dict[str, Any], str]] = [
    ("no MessageType", None, {"text": "x"}, {}, "InvalidParameter.MessageTypeNotEmpty"),
    ("no Content", "text", None, {}, "InvalidParameter.ContentNotEmpty"),
    ("Content not JSON", "text", "{text", {}, "InvalidParameter.ContentError"),
    ("empty text", "text", {"text": "  "}, {}, "InvalidParameter.TextNotEmpty"),
    ("long text", "text", {"text": "x" * 4097}, {}, "InvalidParameter.ContentError"),
    ("image without link", "image", {"caption": "c"}, {}, "InvalidParameter.LinkNotEmpty"),
    ("ftp link", "image", {"link": "ftp://h/x.jpg"}, {}, "InvalidParameter.ContentError"),
    (
        "audio caption",
        "audio",
        {"link": "http://h/a.ogg", "caption": "c"},
        {},
        "InvalidParameter.ContentError",
    ),
    (
        "document no name",
        "document",
        {"link": "http://h/d.pdf"},
        {},
        "InvalidParameter.ContentError",
    ),
    (
        "latitude 100",
        "location",
        {"latitude": 100, "longitude": 1},
        {},
        "InvalidParameter.ContentError",
    ),
    ("no contacts", "contacts", [], {}, "InvalidParameter.ContentError"),
    ("reaction unknown", "reaction", {"messageId": "0" * 24, "emoji": "x"}, {}, "NotFound.Message"),
    (
        "pin 31 days",
        "pin",
        {"messageId": "0" * 24, "expirationDays": 31},
        {},
        "InvalidParameter.ContentError",
    ),
    ("reply unknown", "text", {"text": "x"}, {"context_message_id": "f" * 24}, "NotFound.Message"),
    ("Type bogus", "text", {"text": "x"}, {"type": "sms"}, "InvalidParameter.TypeNotSupport"),
    (
        "template no code",
        None,
        None,
        {"type": "template", "language": "en"},
        "InvalidParameter.TemplateCodeNotEmpty",
    ),
    (
        "template no language",
        None,
        None,
        {"type": "template", "template_code": "t"},
        "InvalidParameter.LanguageNotEmpty",
    ),
    (
        "individual",
        "text",
        {"text": "x"},
        {"recipient_type": "individual"},
        "InvalidParameter.RecipientTypeNotSupport",
    ),
    (
        "userId",
        "text",
        {"text": "x"},
        {"recipient_type": "userId"},
        "InvalidParameter.RecipientTypeNotSupport",
    ),
    (
        "LINE",
        "text",
        {"text": "x"},
        {"channel_type": "line"},
        "InvalidParameter.ChannelTypeNotSupport",
    ),
    (
        "From not digits",
        "text",
        {"text": "x"},
        {"from_": "abc"},
        "InvalidParameter.PhoneNumberError",
    ),
    ("From of another account", "text", {"text": "x"}, {"from_": NUM_B1}, "Authentication.NoAuth"),
]


@pytest.mark.parametrize(
    ("kind", "content", "extra", "code"),
    [b[1:] for b in BAD],
    ids=[b[0] for b in BAD],
)
def test_bad_input_is_refused_and_nothing_is_written(
    msg_server: LiveServer,
    talk: str,
    signer: str | None,
    kind: str | None,
    content: Any,
    extra: dict[str, Any],
    code: str,
) -> None:
    client = make_client(msg_server, KEY_A, signer)
    before = message_rows(msg_server, talk), len(sent_at_meta(msg_server, talk))
    body = send(client, talk, kind, content, **dict(extra))
    assert (body.code, body.message_id) == (code, None), body.to_map()
    assert body.message
    assert (message_rows(msg_server, talk), len(sent_at_meta(msg_server, talk))) == before


def test_template_params_must_be_an_object(msg_server: LiveServer, talk: str) -> None:
    from tests.conformance.helpers import raw_call

    query = {
        "ChannelType": "whatsapp",
        "Type": "template",
        "From": NUM_MESSAGES,
        "To": talk,
        "RecipientType": "group",
        "CustSpaceId": SPACE_A1,
        "TemplateCode": "t",
        "Language": "en",
        "TemplateParams": "[1,2]",
    }
    body = raw_call(make_client(msg_server), "SendChatappMessage", query)["body"]
    assert body["Code"] == "InvalidParameter.TemplateParams"
    with pytest.raises(ClientException) as caught:
        raw_call(make_client(msg_server), "SendChatappMessage", {**query, "To": ""})
    assert caught.value.code == "MissingParameter"


def test_groups_that_cannot_take_messages(msg_server: LiveServer) -> None:
    client = make_client(msg_server)
    lonely, _ = new_active_group(client, NUM_MESSAGES, "Lonely")
    body = send(client, lonely, "text", {"text": "anyone?"})
    assert body.code == "InvalidStatus.ChatGroupNoMembers"
    unknown = send(client, "0" * 22, "text", {"text": "x"})
    assert unknown.code == "NotFound.ChatGroup"
    group_id = group_with_members(msg_server, client)
    control(msg_server, "suspend", {"group_id": meta_id(msg_server, group_id)})
    wait_for(
        lambda: (
            query_db(msg_server, "SELECT status FROM chat_groups WHERE id = :g", g=group_id)[0][0]
            == "SUSPENDED"
        )
    )
    suspended = send(client, group_id, "text", {"text": "x"})
    assert suspended.code == "InvalidStatus.ChatGroup" and "SUSPENDED" in suspended.message
    control(msg_server, "unsuspend", {"group_id": meta_id(msg_server, group_id)})
    # Meta's own refusals: single-member (131020, when opencams' count lagged) and bad content.
    for code, expected in (
        (131020, "InvalidStatus.ChatGroupNoMembers"),
        (131009, "ChannelError.Rejected"),
        (131207, "InvalidStatus.ChatGroup"),
    ):
        control(msg_server, "fail-next", {"operation": "send", "code": code})
        wait_for(
            lambda: (
                query_db(msg_server, "SELECT status FROM chat_groups WHERE id = :g", g=group_id)[0][
                    0
                ]
                == "ACTIVE"
            )
        )
        refused = send(client, group_id, "text", {"text": "x"})
        assert refused.code == expected, refused.to_map()
        assert message_rows(msg_server, group_id) == 0
    for item in (lonely, group_id):
        assert [i for i in listed(client, user_number=item)] == []


# --- statuses --------------------------------------------------------------------------------


def test_statuses_reach_the_status_callback_signed(
    msg_server: LiveServer, receivers: tuple[Receiver, Receiver]
) -> None:
    statuses, _ = receivers
    client = make_client(msg_server)
    group_id = group_with_members(msg_server, client)
    body = send(client, group_id, "text", {"text": "status please"}, task_id="t-77")
    seen = statuses.wait(
        lambda _: sum(e["Status"] == "Read" for e in receipts_of(statuses, body.message_id)) == 2
    )
    mine = receipts_of(statuses, body.message_id)
    assert mine[0]["Status"] == "Sent"
    by_member = {(e["Participant"], e["Status"]) for e in mine if e.get("Participant") is not None}
    assert by_member == {(w, s) for w in MEMBERS for s in ("Delivered", "Read")}
    first = mine[0]
    assert first["From"] == NUM_MESSAGES and first["To"] == group_id
    assert first["GroupId"] == group_id and first["MsgFrameType"] == "message"
    assert first["Type"] == "TEXT" and first["TaskId"] == "t-77"
    assert isinstance(first["Timestamp"], int) and first["Timestamp"] > 1_600_000_000_000
    assert all(e.get("ParticipantNumber") in MEMBERS for e in mine if "Participant" in e)
    assert seen and all(p.valid for p in statuses.posts)
    (item,) = [i for i in listed(client, user_number=group_id)]
    assert item.message_status == "Read"
    shown = msg_server.cli("messages", "show", body.message_id).stdout
    assert body.message_id in shown and "read" in shown and MEMBERS[0] in shown


def _status(wamid: str, status: str, who: str | None, ts: int, group: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(ts),
        "recipient_id": group,
        "recipient_type": "group",
    }
    if who is not None:
        item["recipient_participant_id"] = who
    if status == "failed":
        item["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
    return item


def post_statuses(server: LiveServer, items: list[dict[str, Any]]) -> httpx.Response:
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "2100000000000010",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": PNID},
                                "statuses": items,
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{server.url}/webhooks/whatsapp",
        content=raw,
        headers={"content-type": "application/json", "x-hub-signature-256": signature},
        timeout=10,
    )


def test_statuses_out_of_order_and_duplicated_are_applied_once(
    msg_server: LiveServer, receivers: tuple[Receiver, Receiver]
) -> None:
    statuses, _ = receivers
    client = make_client(msg_server)
    group_id = group_with_members(msg_server, client)
    control(msg_server, "webhooks/hold")
    try:
        body = send(client, group_id, "text", {"text": "shuffled"})
        time.sleep(1.0)  # the simulator's own statuses are queued; they are lost
        control(msg_server, "webhooks/drop")
    finally:
        control(msg_server, "webhooks/release")
    (row,) = query_db(msg_server, "SELECT wamid FROM messages WHERE id = :i", i=body.message_id)
    wamid, meta, t = row[0], meta_id(msg_server, group_id), int(time.time())
    a, b = MEMBERS
    sequence = [
        _status(wamid, "read", a, t + 3, meta),
        _status(wamid, "delivered", a, t + 2, meta),  # late: must not regress
        _status(wamid, "sent", None, t + 1, meta),
        _status(wamid, "read", a, t + 3, meta),  # duplicate
        _status(wamid, "failed", b, t + 2, meta),
        _status(wamid, "delivered", b, t + 4, meta),  # after failed: final stays failed
    ]
    answer = post_statuses(msg_server, sequence)
    assert answer.status_code == 200
    assert answer.json()["outcomes"] == [
        "applied",
        "applied",
        "applied",
        "duplicate",
        "applied",
        "applied",
    ]
    again = post_statuses(msg_server, sequence)  # Meta redelivers the whole webhook
    assert set(again.json()["outcomes"]) == {"duplicate"}
    told = statuses.wait(lambda _: len(receipts_of(statuses, body.message_id)) >= 3)
    told = receipts_of(statuses, body.message_id)
    time.sleep(0.5)
    told = receipts_of(statuses, body.message_id)
    assert sorted((e.get("Participant") or "", e["Status"]) for e in told) == [
        ("", "Sent"),
        (a, "Read"),
        (b, "Failed"),
    ]
    failed = next(e for e in told if e["Status"] == "Failed")
    assert failed["ErrorCode"] == "131026" and "undeliverable" in failed["ErrorDescription"]
    assert told
    (item,) = listed(client, user_number=group_id)
    assert item.message_status == "Read"
    history = query_db(
        msg_server,
        "SELECT participant, status FROM message_statuses WHERE message_id = :i",
        i=body.message_id,
    )
    assert sorted(tuple(h) for h in history) == [
        ("", "sent"),
        (a, "delivered"),
        (a, "read"),
        (b, "delivered"),
        (b, "failed"),
    ]


# --- inbound ---------------------------------------------------------------------------------


def inbound_of(receiver: Receiver, group_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in receiver.first_copies()
        if e["EventType"] == "ChatAppInbound" and e["GroupId"] == group_id
    ]


def test_members_messages_reach_the_up_callback(
    msg_server: LiveServer, receivers: tuple[Receiver, Receiver]
) -> None:
    _, inbound = receivers
    client = make_client(msg_server)
    group_id = group_with_members(msg_server, client)
    meta = meta_id(msg_server, group_id)
    ours = send(client, group_id, "text", {"text": "question?"})
    (row,) = query_db(msg_server, "SELECT wamid FROM messages WHERE id = :i", i=ours.message_id)
    a, b = MEMBERS
    control(msg_server, "webhooks/duplicate", {"on": True})  # Meta's at-least-once delivery
    try:
        control(msg_server, "member-message", {"group_id": meta, "wa_id": a, "text": "hi all"})
        control(
            msg_server,
            "member-message",
            {"group_id": meta, "wa_id": b, "text": "an answer", "context": row[0]},
        )
        control(
            msg_server,
            "member-message",
            {"group_id": meta, "wa_id": a, "type": "reaction", "message_id": row[0], "emoji": "X"},
        )
        control(
            msg_server,
            "member-message",
            {"group_id": meta, "wa_id": b, "type": "pin", "message_id": row[0]},
        )
        control(
            msg_server,
            "member-message",
            {"group_id": meta, "wa_id": a, "type": "image", "caption": "look"},
        )
        control(
            msg_server,
            "member-message",
            {"group_id": meta, "wa_id": b, "type": "document", "filename": "terms.pdf"},
        )
        events = inbound.wait(lambda _: len(inbound_of(inbound, group_id)) >= 6)
    finally:
        control(msg_server, "webhooks/duplicate", {"on": False})
    events = inbound_of(inbound, group_id)
    assert [e["Type"] for e in events] == ["TEXT", "TEXT", "REACTION", "PIN", "IMAGE", "DOCUMENT"]
    text, reply, reaction, pin, image, document = events
    assert (text["From"], text["FromNumber"], text["Message"]) == (a, a, "hi all")
    assert text["To"] == NUM_MESSAGES and text["CustSpaceId"] == SPACE_A1
    assert reply["ContextMessageId"] == ours.message_id
    assert json.loads(reaction["Message"]) == {"messageId": ours.message_id, "emoji": "X"}
    assert json.loads(pin["Message"])["messageId"] == ours.message_id
    assert all(p.valid for p in inbound.posts)
    shown = json.loads(image["Message"])
    assert shown["caption"] == "look" and shown["mimeType"] == "image/jpeg"
    fetched = httpx.get(shown["url"], timeout=10)
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(fetched.content).hexdigest() == shown["sha256"]
    doc = json.loads(document["Message"])
    assert doc["fileName"] == "terms.pdf"
    assert httpx.get(doc["url"], timeout=10).content.startswith(b"%PDF")
    # Applied once although delivered twice: one row per message.
    assert message_rows(msg_server, group_id) == 7
    up = listed(client, event_action="UP", user_number=group_id)
    assert {i.message_id for i in up} == {e["MessageId"] for e in events}
    assert all(i.event_action == "UP" and i.message_status == "Received" for i in up)
    from_a = listed(client, user_number=a)
    assert {i.message_id for i in from_a} >= {text["MessageId"], image["MessageId"]}


def test_media_links_are_sealed_and_expire(
    msg_server: LiveServer, receivers: tuple[Receiver, Receiver]
) -> None:
    _, inbound = receivers
    client = make_client(msg_server)
    group_id = group_with_members(msg_server, client)
    control(
        msg_server,
        "member-message",
        {"group_id": meta_id(msg_server, group_id), "wa_id": MEMBERS[0], "type": "image"},
    )
    inbound.wait(lambda _: len(inbound_of(inbound, group_id)) == 1)
    (event,) = inbound_of(inbound, group_id)
    url = json.loads(event["Message"])["url"]
    token = url.rsplit("/", 1)[1]
    base = url[: -len(token)]
    for forged in (token[:-4] + "AAAA", "x" * 40, token[::-1]):
        refused = httpx.get(base + forged, timeout=10)
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/json")
        assert "error" in refused.json()
    box = SecretBox(SECRET_KEY, b"media")
    expired = box.seal(json.dumps({"m": event["MessageId"], "x": int(time.time()) - 1}))
    assert httpx.get(base + expired, timeout=10).status_code == 403
    fresh = box.seal(json.dumps({"m": event["MessageId"], "x": int(time.time()) + 60}))
    assert httpx.get(base + fresh, timeout=10).status_code == 200
    other_key = SecretBox(SECRET_KEY, b"fernet").seal(
        json.dumps({"m": event["MessageId"], "x": int(time.time()) + 60})
    )
    assert httpx.get(base + other_key, timeout=10).status_code == 403


def test_a_member_without_a_visible_number_is_named_by_bsuid(
    msg_server: LiveServer, receivers: tuple[Receiver, Receiver]
) -> None:
    statuses, inbound = receivers
    client = make_client(msg_server)
    hidden = "8613900000199"
    user = control(
        msg_server,
        "users",
        {
            "wa_id": hidden,
            "username": f"quiet{uuid.uuid4().hex[:6]}",
            "number_hidden": True,
            "parent_user_id": True,
            "profile_name": "Quiet",
        },
    )
    bsuid = user["user_id"]
    group_id = group_with_members(msg_server, client, (MEMBERS[0], hidden))
    participants = client.list_chat_group_participants(
        m.ListChatGroupParticipantsRequest(
            cust_space_id=SPACE_A1, business_number=NUM_MESSAGES, group_id=group_id
        )
    ).body.to_map()
    assert bsuid in json.dumps(participants) and hidden not in json.dumps(participants)
    control(
        msg_server,
        "member-message",
        {"group_id": meta_id(msg_server, group_id), "wa_id": hidden, "text": "psst"},
    )
    inbound.wait(lambda _: len(inbound_of(inbound, group_id)) == 1)
    (said,) = inbound_of(inbound, group_id)
    assert said["From"] == bsuid and said["FromUserId"] == bsuid and "FromNumber" not in said
    assert said["FromUserName"] == user["username"] and said["Name"] == "Quiet"
    assert said["FromParentUserId"] == user["parent_user_id"]
    body = send(client, group_id, "text", {"text": "hello both"})
    statuses.wait(
        lambda _: any(
            e.get("Participant") == bsuid and e["Status"] == "Delivered"
            for e in receipts_of(statuses, body.message_id)
        )
    )
    told = next(e for e in receipts_of(statuses, body.message_id) if e.get("Participant") == bsuid)
    assert told["ParticipantUserId"] == bsuid and "ParticipantNumber" not in told
    assert hidden not in json.dumps(receipts_of(statuses, body.message_id))
