"""Participants through simulated users (tap, leave, removal, full group) and suspension."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client

from tests.conformance.helpers import (
    list_groups,
    make_client,
    new_active_group,
    raw_call,
    ref,
    wait_for,
)
from tests.conformance.tenancy import KEY_A, NUM_MEMBERS
from tests.live import LiveServer, control

USERS = [f"86139000000{i:02d}" for i in range(1, 11)]


def participants(
    client: Client, group_id: str, index: int | None = None, size: int | None = None
) -> Any:
    page = None
    if index is not None or size is not None:
        page = m.ListChatGroupParticipantsRequestPage(index=index, size=size)
    body = client.list_chat_group_participants(
        m.ListChatGroupParticipantsRequest(**ref(NUM_MEMBERS, group_id), page=page)
    ).body
    assert body.code == "OK", body.to_map()
    return body.data


def numbers(client: Client, group_id: str) -> list[str]:
    return [p.participant_number for p in participants(client, group_id).list]


def item(client: Client, group_id: str) -> Any:
    return next(g for g in list_groups(client, NUM_MEMBERS).list if g.group_id == group_id)


def link_of(client: Client, group_id: str) -> str:
    return str(item(client, group_id).invite_link)


def tap(server: LiveServer, link: str, wa_id: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/_sandbox/control/tap-link",
        json={"invite_link": link, "wa_id": wa_id},
        timeout=10,
    )


def meta_id(server: LiveServer, group_id: str) -> str:
    from tests.live import query_db

    return str(
        query_db(server, "SELECT meta_group_id FROM chat_groups WHERE id = :id", id=group_id)[0][0]
    )


def remove(client: Client, group_id: str, *wa_ids: str) -> Any:
    return client.delete_chat_group_participants(
        m.DeleteChatGroupParticipantsRequest(
            **ref(NUM_MEMBERS, group_id),
            list=[m.DeleteChatGroupParticipantsRequestList(participant_number=w) for w in wa_ids],
        )
    ).body


def test_join_order_paging_and_counts(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_MEMBERS)
    link = link_of(client, group_id)
    for wa_id in USERS[:3]:
        assert tap(server, link, wa_id).status_code == 200
    wait_for(lambda: len(numbers(client, group_id)) == 3)
    assert numbers(client, group_id) == USERS[:3]
    assert participants(client, group_id).total == 3
    page2 = participants(client, group_id, index=2, size=2)
    assert (page2.total, [p.participant_number for p in page2.list]) == (3, USERS[2:3])
    assert participants(client, group_id, index=5, size=2).list == []
    assert item(client, group_id).total_participant_count == 3
    flat = raw_call(
        client,
        "ListChatGroupParticipants",
        {
            "CustSpaceId": "cams-acme01",
            "BusinessNumber": NUM_MEMBERS,
            "GroupId": group_id,
            "Page.Size": "1",
        },
    )
    assert flat["body"]["Data"]["List"] == [{"ParticipantNumber": USERS[0]}]
    for page in ("[]", '{"Index": 0}', '{"Size": 101}', "x"):
        body = raw_call(
            client,
            "ListChatGroupParticipants",
            {
                "CustSpaceId": "cams-acme01",
                "BusinessNumber": NUM_MEMBERS,
                "GroupId": group_id,
                "Page": page,
            },
        )["body"]
        assert body["Code"] == "InvalidParameter.PageInvalid"


def test_leave_and_rejoin(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_MEMBERS)
    link = link_of(client, group_id)
    for wa_id in USERS[:2]:
        tap(server, link, wa_id)
    wait_for(lambda: len(numbers(client, group_id)) == 2)
    control(server, "leave", {"group_id": meta_id(server, group_id), "wa_id": USERS[0]})
    wait_for(lambda: numbers(client, group_id) == USERS[1:2])
    # Meta's group events carry no id and whole-second timestamps: a rejoin in the same second
    # as the first join is the same bytes as that join, and counts as its redelivery.
    time.sleep(1.1)
    assert tap(server, link, USERS[0]).status_code == 200  # who left may come back…
    wait_for(lambda: numbers(client, group_id) == [USERS[1], USERS[0]])  # …at the end


def test_removal_by_the_business(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_MEMBERS)
    link = link_of(client, group_id)
    for wa_id in USERS[:3]:
        tap(server, link, wa_id)
    wait_for(lambda: len(numbers(client, group_id)) == 3)
    body = remove(client, group_id, USERS[0], USERS[2])
    assert (body.code, body.result) == ("OK", 2)
    wait_for(lambda: numbers(client, group_id) == USERS[1:2])
    assert item(client, group_id).total_participant_count == 1
    refused = tap(server, link, USERS[0])
    assert refused.status_code == 403  # removed by the business: no way back through the link
    assert remove(client, group_id, USERS[0]).code == "NotFound.Participant"


@pytest.fixture(scope="session")
def rules_group(server: LiveServer) -> str:
    """One group per server for the list rules (none of them changes it)."""
    return new_active_group(make_client(server, KEY_A), NUM_MEMBERS)[0]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("[]", "InvalidParameter.ParticipantListInvalid"),
        ("{}", "InvalidParameter.ParticipantListInvalid"),
        ("not json", "InvalidParameter.ParticipantListInvalid"),
        ('[{"Number": "8613900000001"}]', "InvalidParameter.ParticipantListInvalid"),
        ('[{"ParticipantNumber": 8613900000001}]', "InvalidParameter.ParticipantListInvalid"),
        (
            '[{"ParticipantNumber": "8613900000001"}, {"ParticipantNumber": "8613900000001"}]',
            "InvalidParameter.ParticipantListInvalid",
        ),
        (
            "[" + ",".join(f'{{"ParticipantNumber": "{u}"}}' for u in USERS[:9]) + "]",
            "InvalidParameter.ParticipantListInvalid",
        ),
        ('[{"ParticipantNumber": "+8613900000001"}]', "InvalidParameter.PhoneNumberError"),
        ('[{"ParticipantNumber": "8613999999999"}]', "NotFound.Participant"),
    ],
)
def test_participant_list_rules(client: Client, rules_group: str, value: str, code: str) -> None:
    group_id = rules_group
    query = {
        "CustSpaceId": "cams-acme01",
        "BusinessNumber": NUM_MEMBERS,
        "GroupId": group_id,
        "List": value,
    }
    assert raw_call(client, "DeleteChatGroupParticipants", query)["body"]["Code"] == code


def test_missing_list_and_flattened_list(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_MEMBERS)
    base = {"CustSpaceId": "cams-acme01", "BusinessNumber": NUM_MEMBERS, "GroupId": group_id}
    assert (
        raw_call(client, "DeleteChatGroupParticipants", base)["body"]["Code"]
        == "InvalidParameter.ParticipantListInvalid"
    )
    tap(server, link_of(client, group_id), USERS[4])
    wait_for(lambda: numbers(client, group_id) == [USERS[4]])
    flat = {**base, "List.1.ParticipantNumber": USERS[4]}
    assert raw_call(client, "DeleteChatGroupParticipants", flat)["body"]["Result"] == 1
    wait_for(lambda: numbers(client, group_id) == [])


def test_a_full_group_refuses_the_ninth(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_MEMBERS)
    link = link_of(client, group_id)
    for wa_id in USERS[:8]:
        assert tap(server, link, wa_id).status_code == 200
    ninth = tap(server, link, USERS[8])
    assert ninth.status_code == 409 and "131204" in ninth.text
    wait_for(lambda: participants(client, group_id).total == 8)
    assert USERS[8] not in numbers(client, group_id)


def test_suspension_blocks_writes_not_reads(server: LiveServer, client: Client) -> None:
    group_id, subject = new_active_group(client, NUM_MEMBERS)
    control(server, "suspend", {"group_id": meta_id(server, group_id)})
    wait_for(lambda: item(client, group_id).group_status == "SUSPENDED")
    r = ref(NUM_MEMBERS, group_id)
    refusals = [
        client.update_chat_group(m.UpdateChatGroupRequest(**r, subject="no")).body,
        client.delete_chat_group(m.DeleteChatGroupRequest(**r)).body,
        client.add_chat_group_invite_link(m.AddChatGroupInviteLinkRequest(**r)).body,
        client.delete_chat_group_invite_link(m.DeleteChatGroupInviteLinkRequest(**r)).body,
        remove(client, group_id, USERS[0]),
    ]
    assert {b.code for b in refusals} <= {"InvalidStatus.ChatGroup", "NotFound.Participant"}
    assert refusals[0].code == refusals[1].code == refusals[2].code == "InvalidStatus.ChatGroup"
    assert participants(client, group_id).total == 0  # reads still work
    assert list_groups(client, NUM_MEMBERS, subject=subject, group_status="SUSPENDED").total == 1
    control(server, "unsuspend", {"group_id": meta_id(server, group_id)})
    wait_for(lambda: item(client, group_id).group_status == "ACTIVE")
    assert client.update_chat_group(m.UpdateChatGroupRequest(**r, subject="yes")).body.code == "OK"
