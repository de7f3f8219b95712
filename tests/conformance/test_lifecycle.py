"""UpdateChatGroup, DeleteChatGroup and the invite-link actions through the SDK, both signers."""

from __future__ import annotations

import uuid

import httpx
import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.conformance.helpers import (
    add_group,
    group_item,
    list_groups,
    new_active_group,
    raw_call,
    ref,
    wait_for,
)
from tests.conformance.tenancy import NUM_LIFE
from tests.live import LiveServer, control, query_db


def update(client: Client, group_id: str, **fields: str) -> m.UpdateChatGroupResponseBody:
    return client.update_chat_group(
        m.UpdateChatGroupRequest(**ref(NUM_LIFE, group_id), **fields)
    ).body


def delete(client: Client, group_id: str) -> m.DeleteChatGroupResponseBody:
    return client.delete_chat_group(m.DeleteChatGroupRequest(**ref(NUM_LIFE, group_id))).body


def add_link(client: Client, group_id: str) -> m.AddChatGroupInviteLinkResponseBody:
    return client.add_chat_group_invite_link(
        m.AddChatGroupInviteLinkRequest(**ref(NUM_LIFE, group_id))
    ).body


def delete_link(client: Client, group_id: str) -> m.DeleteChatGroupInviteLinkResponseBody:
    return client.delete_chat_group_invite_link(
        m.DeleteChatGroupInviteLinkRequest(**ref(NUM_LIFE, group_id))
    ).body


def by_id(client: Client, group_id: str) -> m.ListChatGroupResponseBodyDataList | None:
    for item in list_groups(client, NUM_LIFE).list:
        if item.group_id == group_id:
            return item
    return None


def status_of(client: Client, group_id: str) -> str | None:
    item = by_id(client, group_id)
    return item.group_status if item else None


def test_update_subject_and_description(client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_LIFE)
    before = by_id(client, group_id)
    assert before is not None
    new_subject = f"Renamed {uuid.uuid4().hex[:6]}"
    body = update(client, group_id, subject=new_subject, description="new words")
    assert (body.code, body.result) == ("OK", 1)
    assert status_of(client, group_id) in ("UPDATING", "ACTIVE")
    wait_for(lambda: status_of(client, group_id) == "ACTIVE")
    after = by_id(client, group_id)
    assert after is not None
    assert (after.subject, after.description) == (new_subject, "new words")
    assert after.gmt_modifier > before.gmt_modifier
    assert group_item(client, NUM_LIFE, new_subject).group_id == group_id  # the filter follows


def test_update_profile_picture(client: Client, images: str) -> None:
    group_id, _ = new_active_group(client, NUM_LIFE)
    url = f"{images}/square.jpg"
    assert update(client, group_id, profile_picture_file=url).code == "OK"
    wait_for(lambda: status_of(client, group_id) == "ACTIVE")
    item = by_id(client, group_id)
    assert item is not None and item.profile_picture_file == url


@pytest.mark.parametrize("name", ["small.jpg", "wide.jpg", "png.jpg", "big.jpg", "missing.jpg"])
def test_unusable_pictures_change_nothing(client: Client, images: str, name: str) -> None:
    group_id, subject = new_active_group(client, NUM_LIFE)
    body = update(client, group_id, profile_picture_file=f"{images}/{name}", subject="not applied")
    assert body.code == "InvalidParameter.ProfilePictureInvalid", body.to_map()
    item = by_id(client, group_id)
    assert item is not None
    assert (item.group_status, item.subject, item.profile_picture_file) == ("ACTIVE", subject, None)


def test_update_needs_something_to_change(client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_LIFE)
    with pytest.raises(ClientException) as info:
        update(client, group_id)
    assert info.value.code == "MissingParameter"
    for bad, code in (
        ({"subject": "   "}, "InvalidParameter.SubjectInvalid"),
        ({"subject": "s" * 129}, "InvalidParameter.SubjectInvalid"),
        ({"description": "d" * 2049}, "InvalidParameter.DescriptionInvalid"),
    ):
        assert update(client, group_id, **bad).code == code
    assert status_of(client, group_id) == "ACTIVE"


def test_one_change_at_a_time_and_not_while_creating(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_LIFE)
    control(server, "webhooks/hold")
    try:
        assert update(client, group_id, subject="first").code == "OK"
        assert status_of(client, group_id) == "UPDATING"
        assert update(client, group_id, subject="second").code == "InvalidStatus.ChatGroup"
        creating_subject = f"Creating {uuid.uuid4().hex[:6]}"
        body = raw_call(
            client,
            "AddChatGroup",
            {"CustSpaceId": "cams-acme01", "BusinessNumber": NUM_LIFE, "Subject": creating_subject},
        )["body"]
        creating = body["GroupId"]
        assert status_of(client, creating) == "CREATING"
        assert update(client, creating, subject="x").code == "InvalidStatus.ChatGroup"
        assert delete(client, creating).code == "InvalidStatus.ChatGroup"
        assert add_link(client, creating).code == "InvalidStatus.ChatGroup"
    finally:
        control(server, "webhooks/release")
    wait_for(lambda: status_of(client, group_id) == "ACTIVE")
    assert by_id(client, group_id).subject == "first"  # type: ignore[union-attr]


def test_update_refused_by_meta_keeps_old_values(server: LiveServer, client: Client) -> None:
    group_id, subject = new_active_group(client, NUM_LIFE)
    control(server, "fail-next", {"operation": "update", "code": 131207, "mode": "webhook"})
    assert update(client, group_id, subject="refused rename").code == "OK"
    wait_for(lambda: status_of(client, group_id) == "ACTIVE")
    assert by_id(client, group_id).subject == subject  # type: ignore[union-attr]
    reason = query_db(server, "SELECT failure_reason FROM chat_groups WHERE id = :id", id=group_id)[
        0
    ][0]
    assert "131207" in reason
    control(server, "fail-next", {"operation": "update", "code": 131214})
    assert update(client, group_id, subject="refused at once").code == "ChannelError.Rejected"
    assert status_of(client, group_id) == "ACTIVE"


def test_delete(client: Client) -> None:
    group_id, subject = new_active_group(client, NUM_LIFE)
    body = delete(client, group_id)
    assert (body.code, body.result) == ("OK", 1)
    wait_for(lambda: by_id(client, group_id) is None)
    assert list_groups(client, NUM_LIFE, subject=subject).total == 0
    for call in (delete, add_link, delete_link):
        assert call(client, group_id).code == "NotFound.ChatGroup"
    assert update(client, group_id, subject="x").code == "NotFound.ChatGroup"


def test_delete_refused_returns_to_active(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_LIFE)
    control(server, "fail-next", {"operation": "delete", "code": 131208, "mode": "webhook"})
    assert delete(client, group_id).code == "OK"
    wait_for(lambda: status_of(client, group_id) == "ACTIVE")


def test_delete_of_a_group_meta_refused_to_create(server: LiveServer, client: Client) -> None:
    control(server, "fail-next", {"operation": "create", "code": 131214, "mode": "webhook"})
    subject = f"Never {uuid.uuid4().hex[:6]}"
    assert add_group(client, NUM_LIFE, subject).code == "OK"
    item = wait_for(
        lambda: (g := group_item(client, NUM_LIFE, subject)) and g.group_status == "INACTIVE" and g
    )
    assert delete(client, item.group_id).result == 1
    assert group_item(client, NUM_LIFE, subject) is None


def test_invite_links(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_LIFE)
    current = by_id(client, group_id).invite_link  # type: ignore[union-attr]
    assert add_link(client, group_id).invite_link == current
    assert delete_link(client, group_id).result == 1
    assert by_id(client, group_id).invite_link is None  # type: ignore[union-attr]
    refused = httpx.post(
        f"{server.url}/_sandbox/control/tap-link",
        json={"invite_link": current, "wa_id": "8613900000001"},
    )
    assert refused.status_code == 404  # the revoked link stops working
    fresh = add_link(client, group_id).invite_link
    assert fresh.startswith("https://chat.whatsapp.com/") and fresh != current
    assert by_id(client, group_id).invite_link == fresh  # type: ignore[union-attr]
    joined = control(server, "tap-link", {"invite_link": fresh, "wa_id": "8613900000001"})
    assert joined


def test_meta_5xx_after_retries_leaves_the_group_as_it_was(
    server: LiveServer, client: Client
) -> None:
    group_id, subject = new_active_group(client, NUM_LIFE)
    for _ in range(3):  # every attempt of the connector
        control(server, "fail-next", {"operation": "update", "code": 1})
    assert update(client, group_id, subject="never").code == "ChannelError.Unavailable"
    item = by_id(client, group_id)
    assert item is not None and (item.group_status, item.subject) == ("ACTIVE", subject)
    for _ in range(3):
        control(server, "fail-next", {"operation": "delete", "code": 2})
    assert delete(client, group_id).code == "ChannelError.Unavailable"
    assert status_of(client, group_id) == "ACTIVE"
    ops = query_db(
        server,
        "SELECT kind, state FROM operations WHERE group_id = :g ORDER BY created_at",
        g=group_id,
    )
    assert [tuple(o) for o in ops] == [
        ("create", "succeeded"),
        ("update", "failed"),
        ("delete", "failed"),
    ]
