"""RAM users and policies, client addresses behind a trusted proxy, throttling, soft mode,
key lifecycle and audit, through the official SDK against a live server."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException

from tests.conformance.helpers import (
    add_group,
    list_groups,
    make_client,
    new_active_group,
    raw_call,
    ref,
)
from tests.conformance.tenancy import (
    KEY_A,
    KEY_D,
    KEY_INTRUDER,
    KEY_NOBODY,
    KEY_OFFICE,
    KEY_OPERATOR,
    KEY_READER,
    NUM_B1,
    NUM_LIFE,
    NUM_LIST,
    SPACE_A1,
    SPACE_B1,
    TENANCY,
)
from tests.databases import database_url
from tests.live import LiveServer, live_server, run_cli
from tests.signing import v3_request

LIST = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_LIST, "Page": '{"Index":1,"Size":5}'}


def denied(call: Any) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    assert (info.value.code, info.value.status_code) == ("Forbidden.RAM", 403), info.value
    return info.value


def test_read_only_user_lists_but_cannot_add(server: LiveServer, signer: str | None) -> None:
    reader = make_client(server, KEY_READER, signer)
    assert list_groups(reader, NUM_LIST).total >= 0
    error = denied(lambda: add_group(reader, NUM_LIST, "not allowed"))
    detail = error.access_denied_detail
    assert detail["AuthAction"] == "cams:AddChatGroup"
    assert detail["AuthPrincipalType"] == "SubUser"
    assert detail["AuthPrincipalDisplayName"] == "reader"
    assert detail["AuthPrincipalOwnerId"] == "1000000000000001"
    assert detail["NoPermissionType"] == "ImplicitDeny"
    assert detail["PolicyType"] == "AccountLevelIdentityBasedPolicy"
    assert "cams:AddChatGroup" in base64.b64decode(detail["EncodedDiagnosticMessage"]).decode()
    assert list_groups(make_client(server, KEY_A), NUM_LIST, subject="not allowed").total == 0


def test_explicit_deny_wins_over_full_access(server: LiveServer, signer: str | None) -> None:
    operator = make_client(server, KEY_OPERATOR, signer)
    group_id, _ = new_active_group(operator, NUM_LIFE, "Operated")
    error = denied(
        lambda: operator.delete_chat_group(m.DeleteChatGroupRequest(**ref(NUM_LIFE, group_id)))
    )
    assert error.access_denied_detail["NoPermissionType"] == "ExplicitDeny"
    body = operator.update_chat_group(
        m.UpdateChatGroupRequest(**ref(NUM_LIFE, group_id), subject="fine")
    ).body
    assert body.code == "OK"


def test_a_user_without_policies_can_do_nothing(server: LiveServer, signer: str | None) -> None:
    nobody = make_client(server, KEY_NOBODY, signer)
    denied(lambda: list_groups(nobody, NUM_LIST))


def _office(server: LiveServer, forwarded_for: str | None) -> httpx.Response:
    extra = {"x-forwarded-for": forwarded_for} if forwarded_for else None
    request = v3_request(server.url, "ListChatGroup", LIST, *KEY_OFFICE, extra_headers=extra)
    with httpx.Client() as client:
        return client.send(request)


def test_ip_restricted_policy_behind_a_trusted_proxy(server: LiveServer) -> None:
    assert _office(server, None).json()["Code"] == "OK"  # from 127.0.0.1 itself
    assert _office(server, "127.0.0.1").json()["Code"] == "OK"
    refused = _office(server, "203.0.113.9")
    assert (refused.status_code, refused.json()["Code"]) == (403, "Forbidden.RAM")
    assert refused.json()["AccessDeniedDetail"]["AuthPrincipalDisplayName"] == "office"
    # The client is the nearest untrusted hop: an address it prepends itself proves nothing.
    spoofed = _office(server, "127.0.0.1, 203.0.113.9")
    assert spoofed.status_code == 403


def test_the_sdk_can_use_the_office_policy_too(server: LiveServer) -> None:
    office = make_client(server, KEY_OFFICE)
    assert list_groups(office, NUM_LIST).total >= 0
    denied(lambda: add_group(office, NUM_LIST, "office cannot add"))


def test_throttling_raises_the_sdk_throttling_exception(server: LiveServer) -> None:
    delta = make_client(server, KEY_D)
    request = m.ListChatGroupRequest(
        cust_space_id="cams-nospace",
        business_number="8613800000099",
        page=m.ListChatGroupRequestPage(index=1, size=1),
    )
    codes: list[str] = []
    refusal: ThrottlingException | None = None
    for _ in range(10):  # the account's budget for this action is 2/s
        try:
            codes.append(delta.list_chat_group(request).body.code)
        except ThrottlingException as exc:
            refusal = exc
            break
    assert codes and set(codes) == {"Authentication.NoAuth"}
    assert refusal is not None and refusal.code == "Throttling.User"
    assert 0 < refusal.retry_after <= 500


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("ListChatGroup", {"Page": '{"Index":1,"Size":5}'}),
        ("AddChatGroup", {"Subject": "stolen"}),
        ("UpdateChatGroup", {"GroupId": "G", "Subject": "stolen"}),
        ("DeleteChatGroup", {"GroupId": "G"}),
        ("AddChatGroupInviteLink", {"GroupId": "G"}),
        ("DeleteChatGroupInviteLink", {"GroupId": "G"}),
        ("ListChatGroupParticipants", {"GroupId": "G"}),
        (
            "DeleteChatGroupParticipants",
            {"GroupId": "G", "List": '[{"ParticipantNumber":"8613900000001"}]'},
        ),
    ],
)
def test_cross_tenant_matrix(
    server: LiveServer, victim_group: str, action: str, params: dict[str, str]
) -> None:
    """Another account's user, whatever its policy says, reaches nothing of account A:
    not A's space, not A's number through its own space, not A's group."""
    intruder = make_client(server, KEY_INTRUDER)
    group = {**params, "GroupId": victim_group} if "GroupId" in params else params
    cases = [
        ({"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_LIFE, **group}, "Authentication.NoAuth"),
        ({"CustSpaceId": SPACE_B1, "BusinessNumber": NUM_LIFE, **group}, "Authentication.NoAuth"),
    ]
    if "GroupId" in params:
        cases.append(
            ({"CustSpaceId": SPACE_B1, "BusinessNumber": NUM_B1, **group}, "NotFound.ChatGroup")
        )
    for query, expected in cases:
        body = raw_call(intruder, action, query)["body"]
        assert body["Code"] == expected, (query, body)
        assert "Data" not in body and "InviteLink" not in body


@pytest.fixture(scope="session")
def victim_group(server: LiveServer) -> str:
    return new_active_group(make_client(server, KEY_A), NUM_LIFE, "Victim of intruders")[0]


def test_audit_records_decisions(server: LiveServer) -> None:
    reader = make_client(server, KEY_READER)
    marker = f"audited {uuid.uuid4().hex[:6]}"
    with pytest.raises(ClientException):
        add_group(reader, NUM_LIST, marker)
    assert list_groups(reader, NUM_LIST).total >= 0  # and one the reader may do
    import time

    time.sleep(0.6)  # the audit log is written in batches
    rows = json.loads(
        run_cli(server.env, "audit", "--principal", "reader", "--decision", "deny", "--json").stdout
    )
    assert rows and rows[0]["action"] == "AddChatGroup" and rows[0]["code"] == "Forbidden.RAM"
    assert "ImplicitDeny" in rows[0]["statement"]
    allowed = json.loads(
        run_cli(
            server.env,
            "audit",
            "--principal",
            "reader",
            "--action",
            "ListChatGroup",
            "--decision",
            "allow",
            "--json",
        ).stdout
    )
    assert allowed and "AliyunCamsReadOnlyAccess" in allowed[0]["statement"]
    bad = run_cli(server.env, "audit", "--since", "yesterday", check=False)
    assert bad.returncode == 2


def test_key_lifecycle(server: LiveServer) -> None:
    created = json.loads(
        run_cli(server.env, "keys", "create", "--account", "1000000000000001", "--json").stdout
    )
    key = (created["AccessKeyId"], created["AccessKeySecret"])
    client = make_client(server, key)
    assert list_groups(client, NUM_LIST).total >= 0
    listed = json.loads(
        run_cli(server.env, "keys", "list", "--account", "1000000000000001", "--json").stdout
    )
    mine = next(k for k in listed if k["AccessKeyId"] == key[0])
    assert (
        mine["Status"] == "Active"
        and mine["LastUsed"] is not None
        and "AccessKeySecret" not in mine
    )
    run_cli(server.env, "keys", "disable", key[0])
    with pytest.raises(ClientException) as info:
        list_groups(client, NUM_LIST)
    assert info.value.code == "InvalidAccessKeyId.Inactive"
    run_cli(server.env, "keys", "enable", key[0])
    assert list_groups(client, NUM_LIST).total >= 0
    run_cli(server.env, "keys", "delete", key[0])
    with pytest.raises(ClientException) as info:
        list_groups(client, NUM_LIST)
    assert info.value.code == "InvalidAccessKeyId.NotFound"
    assert (
        run_cli(
            server.env,
            "keys",
            "create",
            "--account",
            "1000000000000001",
            "--user",
            "ghost",
            check=False,
        ).returncode
        == 1
    )


@pytest.fixture(scope="module")
def soft(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    work: Path = tmp_path_factory.mktemp("soft")
    with (
        database_url("sqlite", work) as url,
        live_server(url, work / "srv", TENANCY, OPENCAMS_AUTH_MODE="soft") as live,
    ):
        yield live


def test_soft_mode_logs_the_denial_and_allows(soft: LiveServer) -> None:
    reader = make_client(soft, KEY_READER)
    assert add_group(reader, NUM_LIST, "soft mode lets it through").code == "OK"
    import time

    time.sleep(0.6)
    rows = json.loads(
        run_cli(
            soft.env, "audit", "--principal", "reader", "--decision", "soft-deny", "--json"
        ).stdout
    )
    assert rows[0]["action"] == "AddChatGroup" and rows[0]["code"] == "OK"
    assert "would be denied" in soft.log()
