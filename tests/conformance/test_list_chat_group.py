"""ListChatGroup: filters, order, paging, Total, item fields, through the SDK."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client

from tests.conformance.helpers import add_group, list_groups, make_client, raw_call, wait_for
from tests.conformance.tenancy import KEY_A, NUM_LIST, SPACE_A1
from tests.live import LiveServer

SUBJECTS = ["Alpha team", "beta TEAM", "Gamma", "Delta team", "epsilon", "Zeta 100%_off"]


@pytest.fixture(scope="session")
def seeded(server: LiveServer) -> dict[str, Any]:
    """Six groups on NUM_LIST, created in order, all ACTIVE; returns their ids newest first."""
    client = make_client(server, KEY_A)
    tag = uuid.uuid4().hex[:6]
    for subject in SUBJECTS:
        assert (
            add_group(client, NUM_LIST, f"{subject} {tag}", group_link=f"https://t.me/{tag}").code
            == "OK"
        )
    wait_for(
        lambda: all(
            g.group_status == "ACTIVE" for g in list_groups(client, NUM_LIST, subject=tag).list
        )
    )
    data = list_groups(client, NUM_LIST, subject=tag)
    return {"tag": tag, "ids": [g.group_id for g in data.list], "items": data.list}


def test_newest_first_with_total(client: Client, seeded: dict[str, Any]) -> None:
    data = list_groups(client, NUM_LIST, subject=seeded["tag"])
    assert data.total == len(SUBJECTS)
    assert [g.subject.rsplit(" ", 1)[0] for g in data.list] == list(reversed(SUBJECTS))


def test_pages_are_stable_and_complete(client: Client, seeded: dict[str, Any]) -> None:
    pages = [
        list_groups(client, NUM_LIST, subject=seeded["tag"], index=i, size=4) for i in (1, 2, 3)
    ]
    assert [p.total for p in pages] == [6, 6, 6]
    assert [len(p.list) for p in pages] == [4, 2, 0]
    assert [g.group_id for p in pages for g in p.list] == seeded["ids"]


def test_index_far_past_the_end(client: Client, seeded: dict[str, Any]) -> None:
    data = list_groups(client, NUM_LIST, subject=seeded["tag"], index=1_000_000, size=100)
    assert data.total == 6 and data.list == []


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("team", ["Delta team", "beta TEAM", "Alpha team"]),
        ("TEAM", ["Delta team", "beta TEAM", "Alpha team"]),
        ("%_", ["Zeta 100%_off"]),
        ("_", ["Zeta 100%_off"]),
        ("nothing-like-this", []),
    ],
)
def test_subject_filter_is_a_case_insensitive_substring(
    client: Client, seeded: dict[str, Any], needle: str, expected: list[str]
) -> None:
    data = list_groups(client, NUM_LIST, subject=needle)
    mine = [g.subject.rsplit(" ", 1)[0] for g in data.list if g.subject.endswith(seeded["tag"])]
    assert mine == expected


def test_status_channel_type_group_link_and_group_type_filters(
    client: Client, seeded: dict[str, Any]
) -> None:
    tag = seeded["tag"]
    assert list_groups(client, NUM_LIST, subject=tag, group_status="ACTIVE").total == 6
    assert list_groups(client, NUM_LIST, subject=tag, group_status="active").total == 6
    for status in ("CREATING", "INACTIVE", "SUSPENDED", "DELETING", "UPDATING"):
        assert list_groups(client, NUM_LIST, subject=tag, group_status=status).total == 0
    assert list_groups(client, NUM_LIST, subject=tag, channel_type="WHATSAPP").total == 6
    assert list_groups(client, NUM_LIST, subject=tag, channel_type="WhatsApp").total == 6
    assert list_groups(client, NUM_LIST, group_link=f"https://t.me/{tag}").total == 6
    assert list_groups(client, NUM_LIST, group_link=f"https://t.me/{tag}x").total == 0
    assert list_groups(client, NUM_LIST, subject=tag, group_type="supergroup").total == 0


def test_item_fields_and_omitted_empty_keys(client: Client, seeded: dict[str, Any]) -> None:
    response = raw_call(
        client,
        "ListChatGroup",
        {
            "CustSpaceId": SPACE_A1,
            "BusinessNumber": NUM_LIST,
            "Subject": seeded["tag"],
            "Page": '{"Index": 1, "Size": 1}',
        },
    )
    item = response["body"]["Data"]["List"][0]
    assert set(item) == {
        "GroupId",
        "BusinessNumber",
        "Subject",
        "GroupStatus",
        "InviteLink",
        "TotalParticipantCount",
        "GmtModifier",
        "GroupLink",
        "JoinApprovalMode",  # an opencams extension, confirmed by Meta's create webhook
    }
    assert "Description" not in item  # created without one: the key is omitted, not null


def test_flattened_page_is_accepted(client: Client, seeded: dict[str, Any]) -> None:
    response = raw_call(
        client,
        "ListChatGroup",
        {
            "CustSpaceId": SPACE_A1,
            "BusinessNumber": NUM_LIST,
            "Subject": seeded["tag"],
            "Page.Index": "2",
            "Page.Size": "5",
        },
    )
    body = response["body"]
    assert body["Code"] == "OK" and body["Data"]["Total"] == 6
    assert [g["GroupId"] for g in body["Data"]["List"]] == seeded["ids"][5:]


def test_groups_of_other_numbers_are_not_listed(client: Client, seeded: dict[str, Any]) -> None:
    other = client.list_chat_group(
        m.ListChatGroupRequest(
            cust_space_id=SPACE_A1,
            business_number="8613800000001",
            subject=seeded["tag"],
            page=m.ListChatGroupRequestPage(index=1, size=10),
        )
    )
    assert other.body.data.total == 0
