"""Join requests (opencams extensions): groups that require approval, simulated users filing
requests, listing, bulk approval and rejection with per-request results, bad input, RAM, and
sync of requests whose webhooks were lost. Every call goes through the official SDK's
`call_api` (docs/api.md#calling-the-extensions-with-the-official-sdk)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.conformance.helpers import call_extension, make_client, wait_for
from tests.conformance.tenancy import KEY_NOBODY, KEY_READER, NUM_JOIN, SPACE_A1, SPACE_A2
from tests.live import LiveServer, control, query_db, run_cli, sandbox_state

USERS = [f"86137000000{i:02d}" for i in range(1, 22)]
REF = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_JOIN}


def ok(body: dict[str, Any]) -> dict[str, Any]:
    assert body["Code"] == "OK", body
    return body


def item(client: Client, group_id: str) -> dict[str, Any]:
    """The group's ListChatGroup item as the wire has it (the SDK model drops extension keys)."""
    body = ok(call_extension(client, "ListChatGroup", **REF, Page='{"Index":1,"Size":100}'))
    return next(g for g in body["Data"]["List"] if g["GroupId"] == group_id)


def new_group(client: Client, mode: str | None = "approval_required") -> tuple[str, str]:
    """A fresh ACTIVE group of NUM_JOIN; returns (GroupId, invite link)."""
    extra = {"JoinApprovalMode": mode} if mode else {}
    subject = f"Join {uuid.uuid4().hex[:8]}"
    group_id = ok(call_extension(client, "AddChatGroup", **REF, Subject=subject, **extra))[
        "GroupId"
    ]
    group = wait_for(lambda: (g := item(client, group_id))["GroupStatus"] == "ACTIVE" and g)
    return group_id, group["InviteLink"]


def tap(server: LiveServer, link: str, wa_id: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/_sandbox/control/tap-link",
        json={"invite_link": link, "wa_id": wa_id},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def requests_of(client: Client, group_id: str, page: str | None = None) -> dict[str, Any]:
    extra = {"Page": page} if page else {}
    body = call_extension(client, "ListChatGroupJoinRequests", **REF, GroupId=group_id, **extra)
    return ok(body)["Data"]  # type: ignore[no-any-return]


def pending(client: Client, group_id: str) -> list[str]:
    return [r["ParticipantNumber"] for r in requests_of(client, group_id)["List"]]


def members(client: Client, group_id: str) -> list[str]:
    body = ok(call_extension(client, "ListChatGroupParticipants", **REF, GroupId=group_id))
    return [p["ParticipantNumber"] for p in body["Data"]["List"]]


def decide(client: Client, action: str, group_id: str, ids: list[str]) -> dict[str, Any]:
    return call_extension(client, action, **REF, GroupId=group_id, JoinRequestIds=json.dumps(ids))


def states(server: LiveServer, group_id: str) -> dict[str, str]:
    rows = query_db(
        server, "SELECT wa_id, state FROM join_requests WHERE group_id = :g", g=group_id
    )
    return {row[0]: row[1] for row in rows}


def test_request_list_approve_and_reject(server: LiveServer, client: Client) -> None:
    group_id, link = new_group(client)
    assert item(client, group_id)["JoinApprovalMode"] == "approval_required"
    ids = {}
    for wa_id in USERS[:3]:
        answer = tap(server, link, wa_id)
        assert answer["result"] == "requested"
        ids[wa_id] = answer["join_request_id"]
        time.sleep(1.05)  # distinct filing times (Meta's are whole seconds): a defined order
    wait_for(lambda: len(pending(client, group_id)) == 3)
    data = requests_of(client, group_id)
    assert data["Total"] == 3
    assert [r["ParticipantNumber"] for r in data["List"]] == USERS[:3]  # oldest first
    first = data["List"][0]
    assert first["JoinRequestId"] == ids[USERS[0]]
    assert abs(first["CreateTime"] - time.time() * 1000) < 60_000  # epoch milliseconds
    page2 = requests_of(client, group_id, '{"Index":2,"Size":2}')
    assert (page2["Total"], [r["ParticipantNumber"] for r in page2["List"]]) == (3, USERS[2:3])
    assert requests_of(client, group_id, '{"Index":9,"Size":2}') == {"Total": 3, "List": []}
    assert members(client, group_id) == []  # asking is not joining

    approved = ok(decide(client, "ApproveChatGroupJoinRequests", group_id, [ids[USERS[0]]]))
    assert approved["Results"] == [
        {"JoinRequestId": ids[USERS[0]], "Success": True, "Code": "OK", "Message": "OK"}
    ]
    assert pending(client, group_id) == USERS[1:3]  # no longer pending at once…
    wait_for(lambda: members(client, group_id) == USERS[:1])  # …a member by Meta's webhook
    assert states(server, group_id)[USERS[0]] == "joined"

    rejected = ok(decide(client, "RejectChatGroupJoinRequests", group_id, [ids[USERS[1]]]))
    assert [(r["Success"], r["Code"]) for r in rejected["Results"]] == [(True, "OK")]
    assert pending(client, group_id) == USERS[2:3]
    assert states(server, group_id)[USERS[1]] == "rejected"
    time.sleep(1.05)
    assert tap(server, link, USERS[1])["result"] == "requested"  # a rejected user may ask again
    wait_for(lambda: pending(client, group_id) == [USERS[2], USERS[1]])
    assert members(client, group_id) == USERS[:1]


def test_per_request_failures(server: LiveServer, client: Client) -> None:
    group_id, link = new_group(client)
    ids = [tap(server, link, wa_id)["join_request_id"] for wa_id in USERS[:10]]
    wait_for(lambda: requests_of(client, group_id)["Total"] == 10)

    # USERS[1] cancels on their phone and the webhook is lost: opencams still lists it.
    control(server, "webhooks/hold")
    try:
        control(
            server,
            "cancel-request",
            {"group_id": item_meta_id(server, group_id), "wa_id": USERS[1]},
        )
        # The revocation is queued after the simulator's webhook delay: drop it once it is.
        wait_for(lambda: sandbox_state(server)["webhooks"]["queue_length"] >= 1)
        control(server, "webhooks/drop")
    finally:
        control(server, "webhooks/release")
    assert USERS[1] in pending(client, group_id)

    batch = [ids[0], "not-a-request", ids[1]]
    results = ok(decide(client, "ApproveChatGroupJoinRequests", group_id, batch))["Results"]
    assert [(r["JoinRequestId"], r["Success"], r["Code"]) for r in results] == [
        (ids[0], True, "OK"),
        ("not-a-request", False, "NotFound.JoinRequest"),  # unknown to opencams
        (ids[1], False, "NotFound.JoinRequest"),  # unknown to Meta (131213)
    ]
    assert "131213" in results[2]["Message"]
    assert states(server, group_id)[USERS[1]] == "gone"
    assert USERS[1] not in pending(client, group_id)

    # Eight members is all a group holds: the ninth approval fails, and stays pending.
    rest = ids[2:]
    results = ok(decide(client, "ApproveChatGroupJoinRequests", group_id, rest))["Results"]
    assert [r["Code"] for r in results] == ["OK"] * 7 + ["LimitExceeded.Participant"]
    assert "131204" in results[-1]["Message"]
    wait_for(lambda: len(members(client, group_id)) == 8)
    assert pending(client, group_id) == [USERS[9]]
    # Deciding again on what is settled: nothing to ask Meta, every id not pending.
    again = ok(decide(client, "RejectChatGroupJoinRequests", group_id, ids[:2]))["Results"]
    assert [r["Code"] for r in again] == ["NotFound.JoinRequest"] * 2


def item_meta_id(server: LiveServer, group_id: str) -> str:
    rows = query_db(server, "SELECT meta_group_id FROM chat_groups WHERE id = :g", g=group_id)
    return str(rows[0][0])


def test_update_join_approval_mode(server: LiveServer, client: Client) -> None:
    group_id, link = new_group(client, mode=None)
    assert item(client, group_id)["JoinApprovalMode"] == "auto_approve"  # Meta's default
    ok(
        call_extension(
            client, "UpdateChatGroup", **REF, GroupId=group_id, JoinApprovalMode="approval_required"
        )
    )
    wait_for(lambda: item(client, group_id).get("JoinApprovalMode") == "approval_required")
    wait_for(lambda: item(client, group_id)["GroupStatus"] == "ACTIVE")
    assert tap(server, link, USERS[0])["result"] == "requested"  # the simulator honours it
    wait_for(lambda: pending(client, group_id) == USERS[:1])
    ok(
        call_extension(
            client, "UpdateChatGroup", **REF, GroupId=group_id, JoinApprovalMode="auto_approve"
        )
    )
    wait_for(lambda: item(client, group_id).get("JoinApprovalMode") == "auto_approve")
    wait_for(lambda: item(client, group_id)["GroupStatus"] == "ACTIVE")
    assert tap(server, link, USERS[1])["result"] == "joined"
    wait_for(lambda: members(client, group_id) == USERS[1:2])


@pytest.fixture(scope="session")
def quiet_group(server: LiveServer) -> str:
    """One approval-required group per server for the input rules (none of them changes it)."""
    return new_group(make_client(server))[0]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "InvalidParameter.JoinRequestListInvalid"),
        ("[]", "InvalidParameter.JoinRequestListInvalid"),
        ("{}", "InvalidParameter.JoinRequestListInvalid"),
        ("not json", "InvalidParameter.JoinRequestListInvalid"),
        ("[1]", "InvalidParameter.JoinRequestListInvalid"),
        ('[""]', "InvalidParameter.JoinRequestListInvalid"),
        ('["a", "a"]', "InvalidParameter.JoinRequestListInvalid"),
        (json.dumps([f"id-{i}" for i in range(21)]), "InvalidParameter.JoinRequestListInvalid"),
        (json.dumps(["x" * 257]), "InvalidParameter.JoinRequestListInvalid"),
    ],
)
@pytest.mark.parametrize("action", ["ApproveChatGroupJoinRequests", "RejectChatGroupJoinRequests"])
def test_join_request_list_rules(
    client: Client, quiet_group: str, action: str, value: str | None, code: str
) -> None:
    extra = {"JoinRequestIds": value} if value is not None else {}
    body = call_extension(client, action, **REF, GroupId=quiet_group, **extra)
    assert (body["Code"], body["Success"]) == (code, False), body


def test_bad_mode_and_tenancy(server: LiveServer, client: Client, quiet_group: str) -> None:
    subject = f"Bad mode {uuid.uuid4().hex[:6]}"
    for mode in ("AUTO_APPROVE", "approve", " auto_approve"):
        body = call_extension(client, "AddChatGroup", **REF, Subject=subject, JoinApprovalMode=mode)
        assert body["Code"] == "InvalidParameter.JoinApprovalModeInvalid", body
        body = call_extension(
            client, "UpdateChatGroup", **REF, GroupId=quiet_group, JoinApprovalMode=mode
        )
        assert body["Code"] == "InvalidParameter.JoinApprovalModeInvalid", body
    # Nothing was written: no group, and the quiet group is untouched.
    assert query_db(server, "SELECT id FROM chat_groups WHERE subject = :s", s=subject) == []
    assert item(client, quiet_group)["GroupStatus"] == "ACTIVE"
    assert item(client, quiet_group)["JoinApprovalMode"] == "approval_required"

    ids = json.dumps(["x"])
    for action, extra in (
        ("ListChatGroupJoinRequests", {}),
        ("ApproveChatGroupJoinRequests", {"JoinRequestIds": ids}),
        ("RejectChatGroupJoinRequests", {"JoinRequestIds": ids}),
    ):
        unknown = call_extension(client, action, **REF, GroupId="G-unknown", **extra)
        assert unknown["Code"] == "NotFound.ChatGroup", unknown
        elsewhere = {"CustSpaceId": SPACE_A2, "BusinessNumber": NUM_JOIN}
        other = call_extension(client, action, **elsewhere, GroupId=quiet_group, **extra)
        assert other["Code"] == "Authentication.NoAuth", other
        with pytest.raises(ClientException) as missing:
            call_extension(client, action, CustSpaceId=SPACE_A1, GroupId=quiet_group, **extra)
        assert missing.value.code == "MissingParameter"


def test_ram_actions(server: LiveServer, quiet_group: str) -> None:
    reader = make_client(server, KEY_READER)  # AliyunCamsReadOnlyAccess: cams:List*
    assert requests_of(reader, quiet_group)["Total"] == 0
    for action in ("ApproveChatGroupJoinRequests", "RejectChatGroupJoinRequests"):
        with pytest.raises(ClientException) as denied:
            decide(reader, action, quiet_group, ["x"])
        assert (denied.value.code, denied.value.status_code) == ("Forbidden.RAM", 403)
        assert f"cams:{action}" in json.dumps(denied.value.access_denied_detail)
    with pytest.raises(ClientException) as denied:
        requests_of(make_client(server, KEY_NOBODY), quiet_group)
    assert denied.value.code == "Forbidden.RAM"


def test_sync_picks_up_requests_whose_webhooks_were_lost(
    server: LiveServer, client: Client
) -> None:
    group_id, link = new_group(client)
    known = tap(server, link, USERS[0])["join_request_id"]
    wait_for(lambda: pending(client, group_id) == USERS[:1])
    control(server, "webhooks/hold")
    try:
        lost = tap(server, link, USERS[1])["join_request_id"]  # filed; its webhook is lost
        control(
            server,
            "cancel-request",
            {"group_id": item_meta_id(server, group_id), "wa_id": USERS[0]},
        )  # cancelled; that webhook is lost too
        wait_for(lambda: sandbox_state(server)["webhooks"]["queue_length"] >= 2)
        control(server, "webhooks/drop")
    finally:
        control(server, "webhooks/release")
    assert pending(client, group_id) == USERS[:1]  # opencams has not heard

    env = {
        **server.env,
        "OPENCAMS_SYNC_GRACE_SECONDS": "0",
        "OPENCAMS_GRAPH_BASE_URL": f"{server.url}/_sandbox/graph/v23.0",
    }
    report = run_cli(env, "sync", "--number", NUM_JOIN).stdout
    assert "join request changes:    2" in report, report
    data = requests_of(client, group_id)
    assert [(r["JoinRequestId"], r["ParticipantNumber"]) for r in data["List"]] == [
        (lost, USERS[1])
    ]
    assert states(server, group_id)[USERS[0]] == "gone" and known != lost
    again = run_cli(env, "sync", "--number", NUM_JOIN).stdout  # idempotent
    assert "join request changes:    0" in again, again
    # The request sync found can be approved like any other.
    results = ok(decide(client, "ApproveChatGroupJoinRequests", group_id, [lost]))["Results"]
    assert results[0]["Success"] is True
    wait_for(lambda: members(client, group_id) == USERS[1:2])
