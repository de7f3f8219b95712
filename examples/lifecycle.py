"""The whole chat-group lifecycle with the official SDK, against `make run`.

Users joining are simulated with the built-in simulator's test controls (plain HTTP here; the
same controls exist as `opencams sandbox …` commands). Every change is also pushed to the
number's StatusCallbackUrl; watch them arrive with the development receiver:

    .venv/bin/opencams callbacks receive --port 9000 --secret demo-callback-secret-0123456789
"""

import time

import httpx
from alibabacloud_cams20200606 import models
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.utils_models import Config

client = Client(
    Config(
        access_key_id="LTAI5tDemoRootKey01",
        access_key_secret="DemoSecret0123456789abcdefXYZ",
        endpoint="127.0.0.1:8080",
        protocol="HTTP",
    )
)
SANDBOX = "http://127.0.0.1:8080/_sandbox/control"
WHERE = {"cust_space_id": "cams-demo01", "business_number": "8613800000001"}


def group(group_id):
    page = models.ListChatGroupRequestPage(index=1, size=100)
    for item in client.list_chat_group(
        models.ListChatGroupRequest(**WHERE, page=page)
    ).body.data.list:
        if item.group_id == group_id:
            return item
    return None


def wait(group_id, status):
    while (item := group(group_id)) is not None and item.group_status != status:
        time.sleep(0.3)
    return item


def members(group_id):
    request = models.ListChatGroupParticipantsRequest(**WHERE, group_id=group_id)
    return [
        p.participant_number for p in client.list_chat_group_participants(request).body.data.list
    ]


# 0. Where this number's events go (http:// and 127.0.0.1 are allowed by `make run` only).
client.update_phone_webhook(
    models.UpdatePhoneWebhookRequest(
        cust_space_id=WHERE["cust_space_id"],
        phone_number=WHERE["business_number"],
        http_flag="Y",
        queue_flag="N",
        status_callback_url="http://127.0.0.1:9000/callbacks",
    )
)

# 1. Create; AddChatGroup's raw answer also carries the GroupId (ListChatGroup shows it too).
subject = f"Lifecycle {int(time.time())}"
client.add_chat_group(models.AddChatGroupRequest(**WHERE, subject=subject))
page = models.ListChatGroupRequestPage(index=1, size=1)
group_id = (
    client.list_chat_group(models.ListChatGroupRequest(**WHERE, subject=subject, page=page))
    .body.data.list[0]
    .group_id
)
print("created", group_id, wait(group_id, "ACTIVE").group_status)

# 2. The invite link, and two users tapping it.
link = client.add_chat_group_invite_link(
    models.AddChatGroupInviteLinkRequest(**WHERE, group_id=group_id)
).body.invite_link
for wa_id in ("8613900000001", "8613900000002"):
    httpx.post(f"{SANDBOX}/tap-link", json={"invite_link": link, "wa_id": wa_id}).raise_for_status()
while len(members(group_id)) < 2:
    time.sleep(0.3)
print("members", members(group_id))

# 3. Remove one (they cannot come back through the link), rename the group.
client.delete_chat_group_participants(
    models.DeleteChatGroupParticipantsRequest(
        **WHERE,
        group_id=group_id,
        list=[models.DeleteChatGroupParticipantsRequestList(participant_number="8613900000001")],
    )
)
client.update_chat_group(
    models.UpdateChatGroupRequest(**WHERE, group_id=group_id, subject="Renamed")
)
item = wait(group_id, "ACTIVE")
while members(group_id) != ["8613900000002"]:
    time.sleep(0.3)
print("after removal and rename", item.subject, members(group_id))

# 4. Revoke the link, then delete the group.
client.delete_chat_group_invite_link(
    models.DeleteChatGroupInviteLinkRequest(**WHERE, group_id=group_id)
)
print("link revoked:", group(group_id).invite_link is None)
client.delete_chat_group(models.DeleteChatGroupRequest(**WHERE, group_id=group_id))
while group(group_id) is not None:
    time.sleep(0.3)
print("deleted")
