"""Bad input of the per-group actions: the contract's code, and nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.conformance.helpers import group_item, make_client, new_active_group, raw_call
from tests.conformance.tenancy import (
    KEY_B,
    KEY_C,
    NUM_B1,
    NUM_C1,
    NUM_LIFE,
    SPACE_A1,
    SPACE_B1,
    SPACE_C1,
)
from tests.live import LiveServer

ACTIONS = {
    "UpdateChatGroup": {"Subject": "changed"},
    "DeleteChatGroup": {},
    "AddChatGroupInviteLink": {},
    "DeleteChatGroupInviteLink": {},
    "ListChatGroupParticipants": {},
    "DeleteChatGroupParticipants": {"List": '[{"ParticipantNumber":"8613900000001"}]'},
    "ListChatGroupJoinRequests": {},
    "ApproveChatGroupJoinRequests": {"JoinRequestIds": '["x"]'},
    "RejectChatGroupJoinRequests": {"JoinRequestIds": '["x"]'},
}


@pytest.fixture(scope="session")
def victim(server: LiveServer) -> dict[str, Any]:
    """An ACTIVE group of account A that every refusal below must leave untouched."""
    from tests.conformance.tenancy import KEY_A

    client = make_client(server, KEY_A)
    group_id, subject = new_active_group(client, NUM_LIFE, "Victim")
    return {
        "id": group_id,
        "subject": subject,
        "before": group_item(client, NUM_LIFE, subject).to_map(),
    }


@pytest.fixture(autouse=True)
def unchanged(client: Client, victim: dict[str, Any]) -> Any:
    yield
    assert group_item(client, NUM_LIFE, victim["subject"]).to_map() == victim["before"]


def query(victim: dict[str, Any], action: str, **override: str) -> dict[str, str]:
    return {
        "CustSpaceId": SPACE_A1,
        "BusinessNumber": NUM_LIFE,
        "GroupId": victim["id"],
        **ACTIONS[action],
        **override,
    }


def code(client: Client, action: str, params: dict[str, str]) -> str:
    try:
        return str(raw_call(client, action, params)["body"]["Code"])
    except ClientException as exc:
        return str(exc.code)


@pytest.mark.parametrize("action", ACTIONS)
def test_per_group_refusals(client: Client, victim: dict[str, Any], action: str) -> None:
    base = query(victim, action)
    assert (
        code(client, action, {k: v for k, v in base.items() if k != "GroupId"})
        == "MissingParameter"
    )
    assert (
        code(client, action, {k: v for k, v in base.items() if k != "CustSpaceId"})
        == "MissingParameter"
    )
    assert code(client, action, {**base, "GroupId": "NOSUCHGROUP"}) == "NotFound.ChatGroup"
    # The group exists, but not under this number: never found through another number.
    assert code(client, action, {**base, "BusinessNumber": "8613800000001"}) == "NotFound.ChatGroup"
    assert (
        code(client, action, {**base, "ChannelType": "SMS"})
        == "InvalidParameter.ChannelTypeNotSupport"
    )
    assert (
        code(client, action, {**base, "BusinessNumber": "12"})
        == "InvalidParameter.PhoneNumberError"
    )
    assert code(client, action, {**base, "CustSpaceId": SPACE_B1}) == "Authentication.NoAuth"


@pytest.mark.parametrize("action", ACTIONS)
def test_other_accounts_cannot_reach_the_group(
    server: LiveServer, victim: dict[str, Any], action: str
) -> None:
    beta = make_client(server, KEY_B)
    # Beta's own space and number, with A's GroupId: no such group there.
    assert (
        code(beta, action, query(victim, action, CustSpaceId=SPACE_B1, BusinessNumber=NUM_B1))
        == "NotFound.ChatGroup"
    )
    # A's space: not beta's to use.
    assert code(beta, action, query(victim, action)) == "Authentication.NoAuth"
    gamma = make_client(server, KEY_C)
    assert (
        code(gamma, action, query(victim, action, CustSpaceId=SPACE_C1, BusinessNumber=NUM_C1))
        == "Forbidden.NotInAllowlist"
    )
