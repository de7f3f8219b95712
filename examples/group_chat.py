"""Talking in a group with the official SDK, against `make run` (docs/messages.md).

A group is created, two simulated members join, the business sends a text, an image and a
template, the members reply and react, and the history is listed. Statuses and inbound
messages are pushed, signed, to the customer's receivers; watch them with:

    .venv/bin/opencams callbacks receive --port 9000 --secret demo-callback-secret-0123456789

OPENCAMS_ENDPOINT (default 127.0.0.1:8080) and RECEIVER_URL (default http://127.0.0.1:9000/)
point it elsewhere. The image is served from loopback by this script: the server's simulator
must be allowed to fetch it (`make run` sets OPENCAMS_SANDBOX_MEDIA_FETCH_ALLOW_PRIVATE=true).
"""

import base64
import functools
import http.server
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
from alibabacloud_cams20200606 import models
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.utils_models import Config

ENDPOINT = os.environ.get("OPENCAMS_ENDPOINT", "127.0.0.1:8080")
RECEIVER = os.environ.get("RECEIVER_URL", "http://127.0.0.1:9000/")
SANDBOX = f"http://{ENDPOINT}/_sandbox/control"
SPACE, NUMBER = "cams-demo01", "8613800000001"
MEMBERS = ("8613900000001", "8613900000002")
# A 1x1 JPEG.
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
    "////////////////////////////////wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAA"
    "AAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AN//Z"
)

client = Client(
    Config(
        access_key_id="LTAI5tDemoRootKey01",
        access_key_secret="DemoSecret0123456789abcdefXYZ",
        endpoint=ENDPOINT,
        protocol="HTTP",
    )
)


def control(name, body):
    answer = httpx.post(f"{SANDBOX}/{name}", json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()


def serve_image():
    root = Path(tempfile.mkdtemp())
    (root / "photo.jpg").write_bytes(JPEG)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *_: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/photo.jpg"


def history():
    page = models.ListChatappMessageRequestPage(index=1, size=50)
    request = models.ListChatappMessageRequest(
        channel_type="whatsapp", cust_space_id=SPACE, business_number=NUMBER, page=page
    )
    return client.list_chatapp_message(request).body.data


def send(group_id, **fields):
    request = models.SendChatappMessageRequest(
        channel_type="whatsapp",
        cust_space_id=SPACE,
        from_=NUMBER,
        to=group_id,
        recipient_type="group",
        **fields,
    )
    body = client.send_chatapp_message(request).body
    print(
        f"SendChatappMessage {fields.get('message_type') or fields['type']}: {body.code}"
        f" MessageId={body.message_id}"
    )
    return body.message_id


# Where the receipts (StatusCallbackUrl) and the members' messages (UpCallbackUrl) go.
client.update_phone_webhook(
    models.UpdatePhoneWebhookRequest(
        cust_space_id=SPACE,
        phone_number=NUMBER,
        http_flag="Y",
        queue_flag="N",
        status_callback_url=RECEIVER,
        up_callback_url=RECEIVER,
    )
)

subject = f"Group chat {int(time.time())}"
created = client.add_chat_group(
    models.AddChatGroupRequest(cust_space_id=SPACE, business_number=NUMBER, subject=subject)
).body
print("AddChatGroup:", created.code)
while True:
    page = models.ListChatGroupRequestPage(index=1, size=10)
    listed = client.list_chat_group(
        models.ListChatGroupRequest(
            cust_space_id=SPACE, business_number=NUMBER, page=page, subject=subject
        )
    ).body.data.list
    if listed and listed[0].group_status == "ACTIVE":
        group_id = listed[0].group_id
        break
    time.sleep(0.5)
print("group", group_id, "is ACTIVE")

link = client.add_chat_group_invite_link(
    models.AddChatGroupInviteLinkRequest(
        cust_space_id=SPACE, business_number=NUMBER, group_id=group_id
    )
).body.invite_link
for member in MEMBERS:
    control("tap-link", {"invite_link": link, "wa_id": member})
while True:
    page = models.ListChatGroupRequestPage(index=1, size=10)
    listed = client.list_chat_group(
        models.ListChatGroupRequest(
            cust_space_id=SPACE, business_number=NUMBER, page=page, subject=subject
        )
    ).body.data.list
    if listed[0].total_participant_count == len(MEMBERS):
        break
    time.sleep(0.5)
print("members joined:", ", ".join(MEMBERS))

hello = send(
    group_id,
    type="message",
    message_type="text",
    content=json.dumps({"text": "Welcome to the group!"}),
)
send(
    group_id,
    type="message",
    message_type="image",
    content=json.dumps({"link": serve_image(), "caption": "Our new shop"}),
)
send(
    group_id,
    type="template",
    template_code="order_update",
    language="en_US",
    template_params={"1": "everyone", "2": "42"},
)

time.sleep(2)  # the wamid is what members reply to
wamid = next(i.unique_message_id for i in history() if i.message_id == hello)
control("users", {"wa_id": MEMBERS[0], "profile_name": "Ann"})
state = httpx.get(f"{SANDBOX}/state", timeout=10).json()
meta_group = next(m["group_id"] for m in state["messages"] if m["id"] == wamid)
control(
    "member-message",
    {"group_id": meta_group, "wa_id": MEMBERS[0], "text": "Thanks!", "context": wamid},
)
control(
    "member-message",
    {
        "group_id": meta_group,
        "wa_id": MEMBERS[1],
        "type": "reaction",
        "message_id": wamid,
        "emoji": "\U0001f44d",
    },
)
control(
    "member-message",
    {"group_id": meta_group, "wa_id": MEMBERS[1], "type": "image", "caption": "like this?"},
)

time.sleep(5)  # statuses: sent, delivered, read, one step a second in `make run`
print("\nListChatappMessage, newest first:")
for item in history():
    print(
        f"  {item.event_action:<4} {item.message_type:<9} {item.message_status:<9} "
        f"{item.user_number:<24} {item.message[:60] if item.message else ''}"
    )
print(
    f"\nThe receiver at {RECEIVER} got the statuses (ChatAppStatus) and the members' messages "
    "(ChatAppInbound); an inbound image carries a link served by opencams."
)
