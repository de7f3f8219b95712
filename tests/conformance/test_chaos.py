"""Webhook chaos: duplicates, reordering, delivery after a restart, loss healed by `opencams sync`."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client

from tests.conformance.helpers import (
    add_group,
    group_item,
    list_groups,
    make_client,
    new_active_group,
    ref,
    wait_for,
)
from tests.conformance.tenancy import APP_SECRET, KEY_A, NUM_MEMBERS, NUM_SYNC, TENANCY
from tests.databases import database_url
from tests.live import BIN, LiveServer, control, free_port, live_server, query_db, run_cli

PNID_SYNC = "110000000000008"


def members(client: Client, number: str, group_id: str) -> list[str]:
    body = client.list_chat_group_participants(
        m.ListChatGroupParticipantsRequest(**ref(number, group_id))
    ).body
    return [p.participant_number for p in body.data.list]


def meta_id(server: LiveServer, group_id: str) -> str:
    return str(
        query_db(server, "SELECT meta_group_id FROM chat_groups WHERE id = :id", id=group_id)[0][0]
    )


def tap(server: LiveServer, link: str, wa_id: str) -> None:
    control(server, "tap-link", {"invite_link": link, "wa_id": wa_id})


def test_duplicates_everywhere_apply_once(server: LiveServer, client: Client) -> None:
    group_id, _ = new_active_group(client, NUM_MEMBERS)
    link = group_item(client, NUM_MEMBERS, _).invite_link
    control(server, "webhooks/duplicate", {"on": True})
    try:
        for wa_id in ("8613911111101", "8613911111102"):
            tap(server, link, wa_id)
        wait_for(lambda: len(members(client, NUM_MEMBERS, group_id)) == 2)
        client.delete_chat_group_participants(
            m.DeleteChatGroupParticipantsRequest(
                **ref(NUM_MEMBERS, group_id),
                list=[m.DeleteChatGroupParticipantsRequestList(participant_number="8613911111101")],
            )
        )
        client.update_chat_group(
            m.UpdateChatGroupRequest(**ref(NUM_MEMBERS, group_id), subject="dup-proof")
        )
        wait_for(lambda: members(client, NUM_MEMBERS, group_id) == ["8613911111102"])
        wait_for(lambda: group_item(client, NUM_MEMBERS, "dup-proof") is not None)
        control(server, "webhooks/flush")
    finally:
        control(server, "webhooks/duplicate", {"on": False})
    states = query_db(
        server,
        "SELECT state, count(*) FROM webhook_events WHERE meta_group_id = :g GROUP BY state",
        g=meta_id(server, group_id),
    )
    assert dict(states) == {"applied": 5}  # create, 2 joins, removal, settings: each once
    item = group_item(client, NUM_MEMBERS, "dup-proof")
    assert (item.group_status, item.total_participant_count) == ("ACTIVE", 1)


def test_reordered_events_end_in_the_newest_state(server: LiveServer, client: Client) -> None:
    group_id, subject = new_active_group(client, NUM_MEMBERS)
    link = group_item(client, NUM_MEMBERS, subject).invite_link
    meta = meta_id(server, group_id)
    control(server, "webhooks/hold")
    try:
        tap(server, link, "8613922222201")
        time.sleep(1.1)  # Meta's timestamps are whole seconds: make "later" visible
        control(server, "leave", {"group_id": meta, "wa_id": "8613922222201"})
        tap(server, link, "8613922222202")
        control(server, "suspend", {"group_id": meta})
        time.sleep(1.1)
        control(server, "unsuspend", {"group_id": meta})
        control(server, "webhooks/flush")
        for _ in range(3):
            control(server, "webhooks/reorder")
    finally:
        released = control(server, "webhooks/release")
    assert released["delivered"] == 5
    wait_for(lambda: members(client, NUM_MEMBERS, group_id) == ["8613922222202"])
    item = group_item(client, NUM_MEMBERS, subject)
    assert (item.group_status, item.total_participant_count) == ("ACTIVE", 1)


def test_lost_webhooks_are_healed_by_sync(server: LiveServer, client: Client) -> None:
    control(server, "webhooks/hold")
    try:
        lost_subject = f"Lost {uuid.uuid4().hex[:6]}"
        assert add_group(client, NUM_SYNC, lost_subject).code == "OK"
        control(server, "webhooks/flush")  # Meta created it; the webhook waits in the queue…
        control(server, "webhooks/drop")  # …and is lost
    finally:
        control(server, "webhooks/release")
    assert group_item(client, NUM_SYNC, lost_subject).group_status == "CREATING"

    # A group made at Meta by someone else, and a membership opencams never heard of.
    outside = httpx.post(
        f"{server.url}/_sandbox/graph/v23.0/{PNID_SYNC}/groups",
        headers={"authorization": f"Bearer token-{PNID_SYNC}"},
        json={"messaging_product": "whatsapp", "subject": "Made elsewhere"},
    )
    assert outside.status_code == 200
    control(server, "webhooks/flush")

    env = {
        **server.env,
        "OPENCAMS_SYNC_GRACE_SECONDS": "0",
        "OPENCAMS_GRAPH_BASE_URL": f"{server.url}/_sandbox/graph/v23.0",
    }
    first = run_cli(env, "sync", "--number", NUM_SYNC).stdout
    assert "adopted (confirmed):     1" in first
    lost = group_item(client, NUM_SYNC, lost_subject)
    assert lost.group_status == "ACTIVE" and lost.invite_link.startswith(
        "https://chat.whatsapp.com/"
    )
    assert group_item(client, NUM_SYNC, "Made elsewhere").group_status == "ACTIVE"

    control(server, "webhooks/hold")
    try:
        tap(server, lost.invite_link, "8613933333301")
        control(server, "webhooks/drop")
        client.delete_chat_group(
            m.DeleteChatGroupRequest(
                **ref(NUM_SYNC, group_item(client, NUM_SYNC, "Made elsewhere").group_id)
            )
        )
        control(server, "webhooks/flush")
        control(server, "webhooks/drop")
    finally:
        control(server, "webhooks/release")
    second = run_cli(env, "sync", "--number", NUM_SYNC).stdout
    assert "participant changes:     1" in second
    assert "deleted (gone at Meta):  1" in second
    assert members(client, NUM_SYNC, lost.group_id) == ["8613933333301"]
    assert group_item(client, NUM_SYNC, "Made elsewhere") is None
    third = run_cli(env, "sync", "--number", NUM_SYNC).stdout  # idempotent
    assert all(line.rstrip().endswith(" 0") for line in third.splitlines()[2:]), third


def test_delivery_after_a_server_restart(tmp_path: Path) -> None:
    """An acknowledged operation survives a restart: its webhook, delivered to the new process,
    completes it. Meta (a standalone simulator) lives on across the restart."""
    sim_port = free_port()
    log = (tmp_path / "sim.log").open("w")
    sim = subprocess.Popen(
        [
            str(BIN),
            "sandbox",
            "--port",
            str(sim_port),
            "--app-secret",
            APP_SECRET,
            "--webhook-delay",
            "0.05",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sim_url = f"http://127.0.0.1:{sim_port}"
    try:
        wait_for(lambda: _up(f"{sim_url}/control/state"), timeout=20)
        extra = {"OPENCAMS_SANDBOX": "false", "OPENCAMS_GRAPH_BASE_URL": f"{sim_url}/graph/v23.0"}
        with database_url("sqlite", tmp_path) as url:
            with live_server(url, tmp_path / "first", TENANCY, **extra) as first:
                _sim(
                    sim_url, "webhooks/callback", {"callback_url": f"{first.url}/webhooks/whatsapp"}
                )
                _sim(sim_url, "webhooks/hold")
                body = add_group(make_client(first, KEY_A), NUM_SYNC, "Survives restarts")
                assert body.code == "OK"
                _sim(sim_url, "webhooks/flush")
            # The first server is gone; its operation is in the database, the webhook at Meta.
            with live_server(url, tmp_path / "second", TENANCY, **extra) as second:
                _sim(
                    sim_url,
                    "webhooks/callback",
                    {"callback_url": f"{second.url}/webhooks/whatsapp"},
                )
                _sim(sim_url, "webhooks/release")
                client = make_client(second, KEY_A)
                wait_for(
                    lambda: (
                        group_item(client, NUM_SYNC, "Survives restarts").group_status == "ACTIVE"
                    )
                )
                ops = query_db(
                    second, "SELECT state FROM operations WHERE id = :id", id=body.unique_code
                )
                assert ops[0][0] == "succeeded"
    finally:
        sim.terminate()
        sim.wait(timeout=10)
        log.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _sim(base: str, name: str, body: dict[str, Any] | None = None) -> None:
    response = httpx.post(f"{base}/control/{name}", json=body or {}, timeout=10)
    assert response.status_code == 200, response.text


def test_lists_stay_consistent(client: Client) -> None:
    assert list_groups(client, NUM_SYNC).total >= 1


def test_sync_during_an_unconfirmed_create_neither_duplicates_nor_deletes(
    server: LiveServer, client: Client
) -> None:
    subject = f"In flight {uuid.uuid4().hex[:6]}"
    env = {**server.env, "OPENCAMS_GRAPH_BASE_URL": f"{server.url}/_sandbox/graph/v23.0"}
    control(server, "webhooks/hold")
    try:
        assert add_group(client, NUM_SYNC, subject).code == "OK"
        control(server, "webhooks/flush")  # Meta has the group; its confirmation waits
        report = run_cli(env, "sync", "--number", NUM_SYNC).stdout  # default 60 s grace
        assert "created (unknown):       0" in report
    finally:
        control(server, "webhooks/release")
    wait_for(lambda: group_item(client, NUM_SYNC, subject).group_status == "ACTIVE")
    assert list_groups(client, NUM_SYNC, subject=subject).total == 1
    run_cli(env, "sync", "--number", NUM_SYNC)
    assert group_item(client, NUM_SYNC, subject).group_status == "ACTIVE"
