"""Integration tests of code built on the CAMS chat-group API, against opencams (docs/testing.md).

Nothing to start by hand: `pip install opencams alibabacloud-cams20200606`, then `pytest`. The
fixtures come from the pytest plugin that ships with opencams:

- `cams_server`: a real opencams server on a free port, with its own temporary database and
  WhatsApp simulator (one per session, reset before each test);
- `cams_client`: the official SDK's client for it;
- `cams_sandbox`: the simulator's test controls (users, WhatsApp, Meta's webhooks and errors).
"""

from __future__ import annotations

import pytest
from alibabacloud_cams20200606 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from opencams.testing import default_tenancy

# --- the code under test: what an application built on CAMS might have ---------------------


class Groups:
    """A thin layer an application could write over the SDK."""

    def __init__(self, client, space, number):
        self.client = client
        self.where = {"cust_space_id": space, "business_number": number}

    def add(self, subject):
        request = models.AddChatGroupRequest(**self.where, subject=subject)
        return self.client.add_chat_group(request).body

    def create(self, subject):
        body = self.add(subject)
        assert body.code == "OK", body.message
        return self.find(subject).group_id

    def find(self, subject):
        page = models.ListChatGroupRequestPage(index=1, size=20)
        request = models.ListChatGroupRequest(**self.where, subject=subject, page=page)
        found = self.client.list_chat_group(request).body.data.list
        return found[0] if found else None

    def get(self, group_id):
        page = models.ListChatGroupRequestPage(index=1, size=100)
        request = models.ListChatGroupRequest(**self.where, page=page)
        for item in self.client.list_chat_group(request).body.data.list:
            if item.group_id == group_id:
                return item
        return None

    def rename(self, group_id, subject):
        request = models.UpdateChatGroupRequest(**self.where, group_id=group_id, subject=subject)
        return self.client.update_chat_group(request).body

    def members(self, group_id):
        request = models.ListChatGroupParticipantsRequest(**self.where, group_id=group_id)
        body = self.client.list_chat_group_participants(request).body
        return [p.participant_number for p in body.data.list]

    def remove(self, group_id, number):
        entry = models.DeleteChatGroupParticipantsRequestList(participant_number=number)
        request = models.DeleteChatGroupParticipantsRequest(
            **self.where, group_id=group_id, list=[entry]
        )
        return self.client.delete_chat_group_participants(request).body


@pytest.fixture
def groups(cams_client, cams_server):
    return Groups(cams_client, cams_server.space, cams_server.number)


# --- the lifecycle: confirmed before each call answers (the default) ------------------------


@pytest.mark.parametrize("cams_signature", ["v3", "v1"])  # both signature algorithms
def test_a_new_group_is_active_with_its_invite_link(groups):
    group_id = groups.create("Support team")
    group = groups.get(group_id)
    assert group.group_status == "ACTIVE"
    assert group.invite_link.startswith("https://chat.whatsapp.com/")


def test_each_test_starts_from_an_empty_server(groups):
    assert groups.find("Support team") is None  # the previous tests' groups are gone


def test_users_join_through_the_link_and_leave(groups, cams_sandbox):
    group_id = groups.create("Members")
    link = groups.get(group_id).invite_link

    assert cams_sandbox.tap_link(link, "8613900000001").result == "joined"
    cams_sandbox.tap_link(link, "8613900000002")
    assert groups.members(group_id) == ["8613900000001", "8613900000002"]

    cams_sandbox.leave(group_id, "8613900000001")
    assert groups.members(group_id) == ["8613900000002"]


def test_a_removed_member_cannot_rejoin(groups, cams_sandbox):
    from opencams.testing import SandboxError

    group_id = groups.create("Strict")
    link = groups.get(group_id).invite_link
    cams_sandbox.tap_link(link, "8613900000003")

    assert groups.remove(group_id, "8613900000003").code == "OK"
    assert groups.members(group_id) == []
    with pytest.raises(SandboxError) as refused:
        cams_sandbox.tap_link(link, "8613900000003")
    assert refused.value.status == 403


# --- confirmations when the test says so ---------------------------------------------------


@pytest.mark.cams_confirm("manual")
def test_a_group_is_creating_until_meta_confirms(groups, cams_sandbox):
    group_id = groups.create("Patience")
    assert groups.get(group_id).group_status == "CREATING"
    assert groups.get(group_id).invite_link is None

    cams_sandbox.confirm(group_id)
    assert groups.get(group_id).group_status == "ACTIVE"


def test_a_rename_is_updating_until_confirmed(groups, cams_sandbox):
    group_id = groups.create("Old name")
    cams_sandbox.confirm_manually()  # from here on, within this test

    assert groups.rename(group_id, "New name").code == "OK"
    assert groups.get(group_id).group_status == "UPDATING"
    cams_sandbox.confirm_all()
    group = groups.get(group_id)
    assert (group.group_status, group.subject) == ("ACTIVE", "New name")


# --- what WhatsApp and Meta do ---------------------------------------------------------------


def test_a_suspended_group_cannot_be_changed(groups, cams_sandbox):
    group_id = groups.create("Rule breakers")
    cams_sandbox.suspend(group_id)
    assert groups.get(group_id).group_status == "SUSPENDED"
    assert groups.rename(group_id, "Sorry").code == "InvalidStatus.ChatGroup"

    cams_sandbox.unsuspend(group_id)
    assert groups.rename(group_id, "Sorry").code == "OK"


def test_meta_refusing_a_create(groups, cams_sandbox):
    cams_sandbox.fail_next("create", 131214)  # "Group creation is temporarily disabled"
    body = groups.add("No")
    assert body.code == "ChannelError.Rejected"
    assert "131214" in body.message
    assert groups.find("No") is None


def test_meta_failing_a_create_after_accepting_it(groups, cams_sandbox):
    cams_sandbox.fail_next("create", 131000, webhook=True)  # reported by the webhook
    group_id = groups.create("Doomed")
    assert groups.get(group_id).group_status == "INACTIVE"


def test_a_number_meta_does_not_allow(groups, cams_sandbox):
    cams_sandbox.eligible(False)  # Meta answers 131215 to every call for the number
    assert groups.add("Anyone?").code == "ChannelError.NotEligible"


def test_lost_webhooks_leave_the_group_creating(groups, cams_sandbox):
    cams_sandbox.webhooks.hold()
    group_id = groups.create("Lost")
    assert cams_sandbox.webhooks.drop() == 1  # Meta's confirmation never arrives
    cams_sandbox.webhooks.release()
    assert groups.get(group_id).group_status == "CREATING"


def test_late_webhooks_in_another_order(groups, cams_sandbox):
    group_id = groups.create("Busy")
    link = groups.get(group_id).invite_link
    with cams_sandbox.webhooks.held():  # released, in the new order, at the end of the block
        cams_sandbox.tap_link(link, "8613900000004")
        cams_sandbox.tap_link(link, "8613900000005")
        assert groups.members(group_id) == []  # not told yet
        cams_sandbox.webhooks.reorder()
    assert sorted(groups.members(group_id)) == ["8613900000004", "8613900000005"]


def test_webhooks_delivered_twice_count_once(groups, cams_sandbox):
    cams_sandbox.webhooks.duplicate()
    group_id = groups.create("Twice")
    cams_sandbox.tap_link(groups.get(group_id).invite_link, "8613900000006")
    assert groups.members(group_id) == ["8613900000006"]


# --- permissions: RAM users of your own tenancy ----------------------------------------------

READER = {
    "name": "reader",
    "access_keys": [{"id": "LTAI5tTestReader001", "secret": "reader-secret-0123456789"}],
    "policies": ["AliyunCamsReadOnlyAccess"],
}


@pytest.mark.cams_tenancy(default_tenancy(ram_users=[READER]))
def test_a_read_only_user_cannot_create_groups(cams_server):
    reader = Groups(cams_server.client(user="reader"), cams_server.space, cams_server.number)
    assert reader.find("Anything") is None  # listing is allowed

    with pytest.raises(ClientException) as denied:
        reader.create("Not allowed")
    assert denied.value.code == "Forbidden.RAM"
