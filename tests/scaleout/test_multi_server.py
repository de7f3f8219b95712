"""Two servers behave as one: shared nonces, shared throttling budgets, webhooks applied once
whichever server receives them, concurrent writes to one group never both win."""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import json
import uuid

import httpx
import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_tea_openapi.exceptions import ThrottlingException

from tests.conformance.helpers import add_group, list_groups, make_client, ref, wait_for
from tests.conformance.tenancy import APP_SECRET, KEY_A, KEY_D, NUM_CALLBACKS, NUM_LIFE, SPACE_A1
from tests.live import query_db
from tests.scaleout.helpers import Cluster
from tests.signing import v3_request


def test_clients_alternating_between_servers(cluster: Cluster) -> None:
    a, b = (make_client(s, KEY_A) for s in cluster.servers)
    subject = f"Cluster {uuid.uuid4().hex[:6]}"
    assert add_group(a, NUM_LIFE, subject).code == "OK"
    item = wait_for(
        lambda: (
            (g := list_groups(b, NUM_LIFE, subject=subject).list)
            and g[0].group_status == "ACTIVE"
            and g[0]
        )
    )
    body = b.update_chat_group(
        m.UpdateChatGroupRequest(**ref(NUM_LIFE, item.group_id), subject=subject + " renamed")
    ).body
    assert body.code == "OK"
    wait_for(lambda: list_groups(a, NUM_LIFE, subject=subject + " renamed").total == 1)


def test_a_nonce_used_on_one_server_is_refused_on_the_other(cluster: Cluster) -> None:
    params = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_LIFE, "Page": '{"Index":1,"Size":1}'}
    first, second = cluster.servers
    request = v3_request(first.url, "ListChatGroup", params, *KEY_A)
    with httpx.Client() as http:
        assert http.send(request).json()["Code"] == "OK"
        # The same signed bytes, sent to the other server (the Host header is part of what was
        # signed, so it travels unchanged, as through a load balancer).
        replay = httpx.Request(
            "POST", str(request.url).replace(first.url, second.url), headers=request.headers
        )
        refused = http.send(replay)
    assert (refused.status_code, refused.json()["Code"]) == (400, "SignatureNonceUsed")


def test_throttling_budget_is_shared(cluster: Cluster) -> None:
    clients = [make_client(s, KEY_D) for s in cluster.servers]  # account delta: 2 ListChatGroup/s
    request = m.ListChatGroupRequest(
        cust_space_id="cams-none",
        business_number="8613800000099",
        page=m.ListChatGroupRequestPage(index=1, size=1),
    )
    answered = 0
    with pytest.raises(ThrottlingException):  # noqa: PT012 - the loop is the point
        for i in range(6):
            clients[i % 2].list_chat_group(request)
            answered += 1
    assert answered == 2  # two servers, one budget of 2


def test_a_webhook_delivered_to_both_servers_is_applied_once(cluster: Cluster) -> None:
    client = make_client(cluster.servers[0], KEY_A)
    subject = f"Twice delivered {uuid.uuid4().hex[:6]}"
    _hold(cluster)
    try:
        body = add_group(client, NUM_LIFE, subject)
        request_id = query_db(
            cluster.servers[0],
            "SELECT meta_request_id FROM operations WHERE id = :id",
            id=body.unique_code,
        )[0][0]
    finally:
        _sim(cluster, "webhooks/flush")  # Meta has made the group; its webhook is queued…
        _sim(cluster, "webhooks/drop")  # …and lost: only the two deliveries below remain
        _sim(cluster, "webhooks/release")
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "w",
                    "changes": [
                        {
                            "field": "group_lifecycle_update",
                            "value": {
                                "metadata": {"phone_number_id": "110000000000006"},
                                "groups": [
                                    {
                                        "type": "group_create",
                                        "request_id": request_id,
                                        "group_id": f"META-{uuid.uuid4().hex}",
                                        "invite_link": "https://chat.whatsapp.com/once",
                                        "timestamp": "1796000000",
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()

    def deliver(base: str) -> list[str]:
        response = httpx.post(
            f"{base}/webhooks/whatsapp",
            content=raw,
            headers={"x-hub-signature-256": signature},
            timeout=10,
        )
        return list(response.json()["outcomes"])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = sorted(
            o for result in pool.map(deliver, [s.url for s in cluster.servers] * 2) for o in result
        )
    assert outcomes == ["applied", "duplicate", "duplicate", "duplicate"]
    item = list_groups(client, NUM_LIFE, subject=subject).list[0]
    assert (item.group_status, item.invite_link) == ("ACTIVE", "https://chat.whatsapp.com/once")


def test_concurrent_writes_to_one_group_across_servers(cluster: Cluster) -> None:
    first = make_client(cluster.servers[0], KEY_A)
    subject = f"Contended {uuid.uuid4().hex[:6]}"
    assert add_group(first, NUM_LIFE, subject).code == "OK"
    group = wait_for(
        lambda: (
            (g := list_groups(first, NUM_LIFE, subject=subject).list)
            and g[0].group_status == "ACTIVE"
            and g[0]
        )
    )
    _hold(cluster)
    try:

        def write(i: int) -> str:
            client = make_client(cluster.servers[i % 2], KEY_A)
            if i % 3 == 0:
                return str(
                    client.delete_chat_group(
                        m.DeleteChatGroupRequest(**ref(NUM_LIFE, group.group_id))
                    ).body.code
                )
            return str(
                client.update_chat_group(
                    m.UpdateChatGroupRequest(
                        **ref(NUM_LIFE, group.group_id), subject=f"{subject} {i}"
                    )
                ).body.code
            )

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(write, range(8)))
    finally:
        _sim(cluster, "webhooks/release")
    assert codes.count("OK") == 1 and codes.count("InvalidStatus.ChatGroup") == 7, codes
    pending = query_db(
        cluster.servers[0],
        "SELECT count(*) FROM operations WHERE group_id = :g AND state = 'pending'",
        g=group.group_id,
    )
    assert pending[0][0] <= 1


def _hold(cluster: Cluster) -> None:
    _sim(cluster, "webhooks/hold")


def _sim(cluster: Cluster, name: str) -> None:
    assert httpx.post(f"{cluster.sim_url}/control/{name}", json={}, timeout=10).status_code == 200


def test_workers_share_one_port(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.conformance.tenancy import TENANCY
    from tests.live import live_server

    env = {k: v for k, v in cluster.servers[0].env.items() if k.startswith("OPENCAMS_")}
    env.pop("OPENCAMS_DATABASE_URL")
    work = tmp_path_factory.mktemp("workers")
    with live_server(
        cluster.servers[0].env["OPENCAMS_DATABASE_URL"],
        work,
        TENANCY,
        serve_args=("--workers", "2"),
        **env,
    ) as server:
        client = make_client(server, KEY_A)
        subject = f"Workers {uuid.uuid4().hex[:6]}"
        for _ in range(4):
            assert list_groups(client, NUM_LIFE, subject=subject).total == 0
        assert add_group(client, NUM_LIFE, subject).code == "OK"
        assert list_groups(client, NUM_LIFE, subject=subject).total == 1


def test_workers_refuse_the_built_in_simulator(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.live import base_env, run_cli

    env = base_env(f"sqlite:///{tmp_path_factory.mktemp('w')}/x.db", tmp_path_factory.mktemp("w2"))
    result = run_cli(env, "serve", "--workers", "2", "--port", "1", check=False)
    assert (
        result.returncode == 2
        and "standalone" not in result.stdout
        and "on its own" in result.stderr
    )


def test_two_servers_deliver_each_callback_once(cluster: Cluster) -> None:
    """Both servers record events (Meta's webhooks reach one, then the other) and both deliver
    from the shared outbox: every event reaches the receiver once, in order per group."""
    clients = [make_client(s, KEY_A) for s in cluster.servers]
    tag = uuid.uuid4().hex[:6]
    count = 30
    try:
        for i in range(count):
            if i == count // 2:  # Meta's webhooks now reach the second server
                httpx.post(
                    f"{cluster.sim_url}/control/webhooks/callback",
                    json={"callback_url": f"{cluster.servers[1].url}/webhooks/whatsapp"},
                    timeout=10,
                ).raise_for_status()
            assert add_group(clients[i % 2], NUM_CALLBACKS, f"Told {tag} {i}").code == "OK"
        cluster.receiver.wait(
            lambda events: (
                sum(
                    e["EventType"] == "ChatGroupCreated" and tag in e.get("Subject", "")
                    for e in events
                )
                == count
            ),
            timeout=60,
        )
    finally:
        httpx.post(
            f"{cluster.sim_url}/control/webhooks/callback",
            json={"callback_url": f"{cluster.servers[0].url}/webhooks/whatsapp"},
            timeout=10,
        ).raise_for_status()
    # Other tests of the module write to numbers without a receiver (their events stay
    # unrouted): this one looks at its own number's events.
    own = "SELECT id, group_id, state FROM callback_events WHERE business_number = :n ORDER BY seq"
    wait_for(
        lambda: all(
            row.state == "delivered" for row in query_db(cluster.servers[0], own, n=NUM_CALLBACKS)
        ),
        timeout=30,
    )
    outbox = query_db(cluster.servers[0], own, n=NUM_CALLBACKS)
    received = [e["EventId"] for e in cluster.receiver.accepted()]
    assert len(received) == len(set(received)), "an event was delivered twice"
    assert set(received) == {row.id for row in outbox}
    # In commit order per group.
    position = {event_id: i for i, event_id in enumerate(received)}
    by_group: dict[str, list[str]] = {}
    for row in outbox:
        by_group.setdefault(row.group_id, []).append(row.id)
    for ids in by_group.values():
        assert sorted(ids, key=position.__getitem__) == ids
    logs = [s.log() for s in cluster.servers]
    assert all("Traceback" not in log for log in logs)
