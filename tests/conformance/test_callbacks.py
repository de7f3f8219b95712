"""Customer callbacks through real servers: UpdateAccountWebhook / UpdatePhoneWebhook with the
official SDK, every change told once, in order, signed; retries, refusals, dead events and the
`opencams callbacks` commands (docs/callbacks.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.conformance.helpers import make_client, new_active_group, raw_call, ref, wait_for
from tests.conformance.tenancy import (
    CALLBACK_SECRET_A,
    KEY_A,
    KEY_C,
    KEY_READER,
    NUM_C1,
    NUM_CALLBACKS,
    NUM_LOOP,
    SPACE_A1,
    SPACE_B1,
    SPACE_C1,
    TENANCY,
)
from tests.databases import BACKENDS, database_url
from tests.live import LiveServer, control, live_server, query_db
from tests.receiver import FAST_CALLBACKS, Receiver, receiving


@pytest.fixture(scope="module", params=BACKENDS)
def cb_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    work: Path = tmp_path_factory.mktemp(f"callbacks-{request.param}")
    with (
        database_url(request.param, work) as url,
        live_server(url, work, TENANCY, **FAST_CALLBACKS) as live,
    ):
        yield live


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving(CALLBACK_SECRET_A) as found:
        yield found


def point(client: Client, url: str, number: str = NUM_CALLBACKS, **extra: str) -> None:
    answer = client.update_phone_webhook(
        m.UpdatePhoneWebhookRequest(
            cust_space_id=SPACE_A1,
            phone_number=number,
            http_flag=extra.pop("http_flag", "Y"),
            queue_flag="N",
            status_callback_url=url,
            **extra,
        )
    )
    assert answer.body.code == "OK", answer.body.to_map()


def settings(server: LiveServer) -> list[dict[str, str]]:
    return json.loads(server.cli("callbacks", "settings", "--json").stdout)  # type: ignore[no-any-return]


def tap(server: LiveServer, client: Client, group_id: str, wa_id: str) -> None:
    link = client.add_chat_group_invite_link(
        m.AddChatGroupInviteLinkRequest(**ref(NUM_CALLBACKS, group_id))
    ).body.invite_link
    control(server, "tap-link", {"invite_link": link, "wa_id": wa_id})


# --- configuring -----------------------------------------------------------------------------


@pytest.mark.parametrize("signer", [None, "v2"], ids=["v3", "v1"])
def test_both_webhook_actions_through_the_sdk(cb_server: LiveServer, signer: str | None) -> None:
    client = make_client(cb_server, KEY_A, signer)
    account = client.update_account_webhook(
        m.UpdateAccountWebhookRequest(
            cust_space_id=SPACE_A1,
            http_flag="Y",
            queue_flag="N",
            status_callback_url="http://127.0.0.1:9/space",
        )
    )
    assert account.body.code == "OK" and account.body.request_id
    phone = client.update_phone_webhook(
        m.UpdatePhoneWebhookRequest(
            cust_space_id=SPACE_A1,
            phone_number=NUM_LOOP,
            http_flag="N",
            queue_flag="N",
            status_callback_url="http://127.0.0.1:9/number",
            up_callback_url="http://127.0.0.1:9/up",
        )
    )
    assert phone.body.code == "OK"
    found = {(s["CustSpaceId"], s["PhoneNumber"]): s for s in settings(cb_server)}
    assert found[(SPACE_A1, None)]["StatusCallbackUrl"] == "http://127.0.0.1:9/space"
    number = found[(SPACE_A1, NUM_LOOP)]
    assert (number["HttpFlag"], number["StatusCallbackUrl"], number["UpCallbackUrl"]) == (
        "N",
        "http://127.0.0.1:9/number",
        "http://127.0.0.1:9/up",
    )


@pytest.mark.parametrize(
    ("action", "query", "code"),
    [
        ("UpdatePhoneWebhook", {"CustSpaceId": SPACE_A1}, "MissingParameter"),
        ("UpdateAccountWebhook", {}, "MissingParameter"),
        (
            "UpdatePhoneWebhook",
            {"CustSpaceId": SPACE_A1, "PhoneNumber": NUM_LOOP, "HttpFlag": "yes"},
            "InvalidParameter",
        ),
    ],
)
def test_gateway_refusals(
    cb_server: LiveServer, action: str, query: dict[str, str], code: str
) -> None:
    with pytest.raises(ClientException) as caught:
        raw_call(make_client(cb_server), action, query)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("key", "query", "code"),
    [
        (
            KEY_A,
            {"CustSpaceId": SPACE_A1, "PhoneNumber": NUM_LOOP, "QueueFlag": "Y"},
            "NotSupported.QueueDelivery",
        ),
        (
            KEY_A,
            {"CustSpaceId": SPACE_A1, "PhoneNumber": NUM_LOOP, "StatusCallbackUrl": "ftp://x/y"},
            "InvalidParameter.CallbackUrl",
        ),
        (
            KEY_A,
            {
                "CustSpaceId": SPACE_A1,
                "PhoneNumber": NUM_LOOP,
                "UpCallbackUrl": "https://user:pw@example.com/",
            },
            "InvalidParameter.CallbackUrl",
        ),
        (
            KEY_A,
            {"CustSpaceId": SPACE_A1, "PhoneNumber": "12ab", "StatusCallbackUrl": ""},
            "InvalidParameter.PhoneNumberError",
        ),
        (
            KEY_A,
            {"CustSpaceId": SPACE_B1, "PhoneNumber": NUM_LOOP},
            "Authentication.NoAuth",
        ),
        (KEY_A, {"CustSpaceId": SPACE_B1}, "Authentication.NoAuth"),
        (KEY_C, {"CustSpaceId": SPACE_C1, "PhoneNumber": NUM_C1}, "Forbidden.NotInAllowlist"),
    ],
)
def test_business_refusals(
    cb_server: LiveServer, key: tuple[str, str], query: dict[str, str], code: str
) -> None:
    before = settings(cb_server)
    action = "UpdatePhoneWebhook" if "PhoneNumber" in query else "UpdateAccountWebhook"
    body = raw_call(make_client(cb_server, key), action, query)["body"]
    assert (body["Code"], body["Success"]) == (code, False), body
    assert settings(cb_server) == before  # nothing half-written


def test_a_read_only_ram_user_may_not_change_them(cb_server: LiveServer) -> None:
    with pytest.raises(ClientException) as caught:
        raw_call(
            make_client(cb_server, KEY_READER),
            "UpdatePhoneWebhook",
            {"CustSpaceId": SPACE_A1, "PhoneNumber": NUM_LOOP, "HttpFlag": "N"},
        )
    assert caught.value.code == "Forbidden.RAM"


# --- what is delivered -----------------------------------------------------------------------


def test_the_lifecycle_told_in_order_and_signed(cb_server: LiveServer, receiver: Receiver) -> None:
    client = make_client(cb_server)
    point(client, receiver.url)
    group_id, _ = new_active_group(client, NUM_CALLBACKS, "Told")
    tap(cb_server, client, group_id, "8613900000011")
    tap(cb_server, client, group_id, "8613900000012")
    receiver.wait(lambda e: receiver.of_group(group_id).count("ChatGroupParticipantsJoined") == 2)
    control(
        cb_server,
        "leave",
        {"group_id": meta_id(cb_server, group_id), "wa_id": "8613900000012"},
    )
    receiver.wait(lambda e: "ChatGroupParticipantsLeft" in receiver.of_group(group_id))
    removed = client.delete_chat_group_participants(
        m.DeleteChatGroupParticipantsRequest(
            **ref(NUM_CALLBACKS, group_id),
            list=[m.DeleteChatGroupParticipantsRequestList(participant_number="8613900000011")],
        )
    )
    assert removed.body.code == "OK"
    receiver.wait(lambda e: "ChatGroupParticipantsRemoved" in receiver.of_group(group_id))
    client.update_chat_group(
        m.UpdateChatGroupRequest(**ref(NUM_CALLBACKS, group_id), subject="Told, renamed")
    )
    receiver.wait(lambda e: "ChatGroupUpdated" in receiver.of_group(group_id))
    client.delete_chat_group(m.DeleteChatGroupRequest(**ref(NUM_CALLBACKS, group_id)))
    receiver.wait(lambda e: "ChatGroupDeleted" in receiver.of_group(group_id))

    assert receiver.of_group(group_id) == [
        "ChatGroupCreated",
        "ChatGroupParticipantsJoined",
        "ChatGroupParticipantsJoined",
        "ChatGroupParticipantsLeft",
        "ChatGroupParticipantsRemoved",
        "ChatGroupUpdated",
        "ChatGroupDeleted",
    ]
    assert all(post.valid for post in receiver.posts)
    events = {e["EventType"]: e for e in receiver.first_copies() if e.get("GroupId") == group_id}
    created = events["ChatGroupCreated"]
    assert created["CustSpaceId"] == SPACE_A1 and created["BusinessNumber"] == NUM_CALLBACKS
    assert created["Status"] == "ACTIVE" and created["UniqueCode"]
    assert created["InviteLink"].startswith("https://chat.whatsapp.com/")
    assert events["ChatGroupParticipantsLeft"]["Participants"] == ["8613900000012"]
    assert events["ChatGroupParticipantsRemoved"]["Participants"] == ["8613900000011"]
    assert events["ChatGroupUpdated"]["Results"] == {"Subject": "updated"}
    assert events["ChatGroupUpdated"]["Subject"] == "Told, renamed"
    stamps = [e["Timestamp"] for e in receiver.first_copies() if e.get("GroupId") == group_id]
    assert stamps == sorted(stamps)


def meta_id(server: LiveServer, group_id: str) -> str:
    rows = query_db(server, "SELECT meta_group_id FROM chat_groups WHERE id = :g", g=group_id)
    return str(rows[0][0])


def test_duplicated_and_reordered_webhooks_tell_each_change_once(
    cb_server: LiveServer, receiver: Receiver
) -> None:
    client = make_client(cb_server)
    point(client, receiver.url)
    group_id, _ = new_active_group(client, NUM_CALLBACKS, "Twice")
    control(cb_server, "webhooks/duplicate", {"on": True})
    control(cb_server, "webhooks/hold")
    try:
        for wa_id in ("8613900000021", "8613900000022", "8613900000023"):
            tap(cb_server, client, group_id, wa_id)
        control(cb_server, "webhooks/reorder")
    finally:
        control(cb_server, "webhooks/release")
        control(cb_server, "webhooks/duplicate", {"on": False})
    joined = receiver.wait(
        lambda e: (
            sum(
                len(x.get("Participants", []))
                for x in e
                if x.get("GroupId") == group_id and x["EventType"] == "ChatGroupParticipantsJoined"
            )
            >= 3
        )
    )
    time.sleep(1)  # would any copy still come?
    told = [
        p
        for e in receiver.first_copies()
        if e.get("GroupId") == group_id and e["EventType"] == "ChatGroupParticipantsJoined"
        for p in e["Participants"]
    ]
    assert sorted(told) == ["8613900000021", "8613900000022", "8613900000023"], joined
    rows = query_db(
        cb_server,
        "SELECT count(*) FROM callback_events WHERE group_id = :g AND "
        "event_type = 'ChatGroupParticipantsJoined'",
        g=group_id,
    )
    assert rows[0][0] == 3


def test_a_failing_receiver_gets_everything_once_it_recovers(
    cb_server: LiveServer, receiver: Receiver
) -> None:
    client = make_client(cb_server)
    point(client, receiver.url)
    receiver.plan = [503, 500, 502, 429, 408]  # retried, in order, then accepted
    group_id, _ = new_active_group(client, NUM_CALLBACKS, "Flaky")
    tap(cb_server, client, group_id, "8613900000031")
    events = receiver.wait(lambda e: "ChatGroupParticipantsJoined" in receiver.of_group(group_id))
    assert receiver.of_group(group_id) == ["ChatGroupCreated", "ChatGroupParticipantsJoined"]
    assert [p.answered for p in receiver.posts[:5]] == [503, 500, 502, 429, 408]
    created = next(e for e in events if e.get("GroupId") == group_id)
    shown = json.loads(cb_server.cli("callbacks", "show", created["EventId"]).stdout)
    assert shown["State"] == "delivered" and shown["Attempts"] >= 6
    assert shown["Body"] == created


def test_a_refusing_receiver_leaves_dead_events_that_can_be_retried(
    cb_server: LiveServer, receiver: Receiver
) -> None:
    client = make_client(cb_server)
    point(client, receiver.url)
    receiver.default = 400
    group_id, _ = new_active_group(client, NUM_CALLBACKS, "Refused")
    dead = wait_for(
        lambda: [
            e
            for e in json.loads(
                cb_server.cli("callbacks", "list", "--state", "dead", "--json").stdout
            )
            if e["GroupId"] == group_id
        ]
    )
    assert dead[0]["EventType"] == "ChatGroupCreated" and "HTTP 400" in dead[0]["LastError"]
    receiver.default = 200
    out = cb_server.cli("callbacks", "retry", dead[0]["EventId"]).stdout
    assert "1 event(s) queued again" in out
    receiver.wait(lambda e: "ChatGroupCreated" in receiver.of_group(group_id))


def test_phone_setting_overrides_the_space_and_replay_resends(
    cb_server: LiveServer, receiver: Receiver, tmp_path: Path
) -> None:
    client = make_client(cb_server)
    client.update_account_webhook(
        m.UpdateAccountWebhookRequest(
            cust_space_id=SPACE_A1, http_flag="Y", status_callback_url=receiver.url
        )
    )
    point(client, "", http_flag="N")  # the number's own: delivery off
    off_id, _ = new_active_group(client, NUM_CALLBACKS, "Off")
    unrouted = wait_for(
        lambda: [
            e
            for e in json.loads(
                cb_server.cli("callbacks", "list", "--group", off_id, "--json").stdout
            )
            if e["State"] == "unrouted"
        ]
    )
    assert unrouted[0]["EventType"] == "ChatGroupCreated"
    point(client, "", http_flag="Y")  # on again: the space's URL
    on_id, _ = new_active_group(client, NUM_CALLBACKS, "On")
    receiver.wait(lambda e: "ChatGroupCreated" in receiver.of_group(on_id))
    assert receiver.of_group(off_id) == []

    with receiving(CALLBACK_SECRET_A) as second:
        out = cb_server.cli(
            "callbacks", "replay", "--since", "10m", "--url", second.url, "--group", off_id
        ).stdout
        assert "1 event(s) replayed" in out
        assert [e["EventId"] for e in second.accepted()] == [unrouted[0]["EventId"]]
        assert all(p.valid for p in second.posts)


def test_events_past_the_retry_window_are_dead_not_dropped(tmp_path: Path) -> None:
    with (
        receiving(CALLBACK_SECRET_A) as receiver,
        live_server(
            f"sqlite:///{tmp_path / 'o.db'}",
            tmp_path,
            TENANCY,
            **{**FAST_CALLBACKS, "OPENCAMS_CALLBACK_RETRY_HOURS": "0.0005"},  # 1.8 s
        ) as server,
    ):
        receiver.default = 503
        client = make_client(server)
        point(client, receiver.url)
        group_id, _ = new_active_group(client, NUM_CALLBACKS, "Window")
        dead = wait_for(
            lambda: json.loads(server.cli("callbacks", "list", "--state", "dead", "--json").stdout),
            timeout=20,
        )
        assert dead[0]["GroupId"] == group_id and "HTTP 503" in dead[0]["LastError"]
        assert len(receiver.posts) >= 2  # tried more than once before it gave up
        status = server.cli("callbacks", "status").stdout
        assert "dead       1" in status
