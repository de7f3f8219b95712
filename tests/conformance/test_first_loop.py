"""The newcomer's path: AddChatGroup, then ListChatGroup shows it go CREATING -> ACTIVE."""

from __future__ import annotations

import uuid

from alibabacloud_cams20200606.client import Client

from tests.conformance.helpers import add_group, list_groups, raw_call, wait_for
from tests.conformance.tenancy import NUM_LOOP
from tests.live import LiveServer


def test_add_then_list_goes_active_with_invite_link(client: Client) -> None:
    subject = f"Loop {uuid.uuid4().hex[:8]}"
    body = add_group(client, NUM_LOOP, subject, description="first loop", channel_type="whatsapp")
    assert body.code == "OK" and body.success is True
    assert body.unique_code and len(body.unique_code) == 32
    assert body.request_id and body.request_id == body.request_id.upper()

    first = list_groups(client, NUM_LOOP, subject=subject)
    assert first.total == 1
    assert first.list[0].group_status in ("CREATING", "ACTIVE")

    def active() -> object:
        data = list_groups(client, NUM_LOOP, subject=subject)
        return data.list[0] if data.list[0].group_status == "ACTIVE" else None

    group = wait_for(active)
    assert group.subject == subject
    assert group.description == "first loop"
    assert group.business_number == NUM_LOOP
    assert group.invite_link.startswith("https://chat.whatsapp.com/")
    assert group.total_participant_count == 0
    assert isinstance(group.gmt_modifier, int) and group.gmt_modifier > 1_700_000_000_000
    assert group.group_id


def test_add_returns_group_id_extension_and_request_id_header(client: Client) -> None:
    subject = f"Ext {uuid.uuid4().hex[:8]}"
    response = raw_call(
        client,
        "AddChatGroup",
        {"CustSpaceId": "cams-acme01", "BusinessNumber": NUM_LOOP, "Subject": subject},
    )
    body = response["body"]
    assert response["statusCode"] == 200
    assert body["Code"] == "OK" and body["Success"] is True
    assert response["headers"]["x-acs-request-id"] == body["RequestId"]
    assert "Message" not in body and "AccessDeniedDetail" not in body
    listed = list_groups(client, NUM_LOOP, subject=subject)
    assert [g.group_id for g in listed.list] == [body["GroupId"]]


def test_subject_is_trimmed_and_unicode_survives_both_signers(client: Client) -> None:
    tag = uuid.uuid4().hex[:6]
    subject = f"  Équipe ~ 東京 /+* {tag}  "
    assert add_group(client, NUM_LOOP, subject).code == "OK"
    listed = list_groups(client, NUM_LOOP, subject=f"東京 /+* {tag}")
    assert listed.total == 1
    assert listed.list[0].subject == subject.strip()


def test_server_log_has_no_tracebacks(server: LiveServer) -> None:
    assert "Traceback" not in server.log()
