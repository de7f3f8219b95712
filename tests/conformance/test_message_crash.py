"""An idempotent send across a crash: the server is SIGKILLed after Meta accepted a message and
before the server recorded Meta's answer. After the restart the message is neither lost (its
row is there, settled `unknown`, reported to the status callback and listed) nor sent twice
(Meta holds it once). Meta is a standalone simulator behind a loopback relay that holds Meta's
answer to the first send, so that the kill falls exactly in that window."""

from __future__ import annotations

import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_cams20200606 import models as m

from tests.conformance.helpers import make_client, wait_for
from tests.conformance.tenancy import CALLBACK_SECRET_A, NUM_MESSAGES, SPACE_A1, TENANCY
from tests.databases import BACKENDS, database_url
from tests.hostile.test_crash import standalone_simulator
from tests.live import free_port, live_server, query_db
from tests.receiver import FAST_CALLBACKS, receiving

MEMBERS = ("8613900000301", "8613900000302")


class Relay:
    """Forwards Graph calls to the simulator; holds back Meta's answer to the first send."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.answered = threading.Event()  # Meta accepted the held send
        self.release = threading.Event()
        self.held_once = False
        self.lock = threading.Lock()


@contextmanager
def relaying(target: str) -> Iterator[tuple[Relay, str]]:
    relay = Relay(target)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            answer = httpx.request(
                self.command, relay.target + self.path, content=body, headers=headers, timeout=30
            )
            if self.command == "POST" and self.path.endswith("/messages"):
                with relay.lock:
                    hold, relay.held_once = not relay.held_once, True
                if hold:
                    relay.answered.set()
                    relay.release.wait(60)  # the server dies meanwhile: nobody hears Meta
                    return
            self.send_response(answer.status_code)
            for key in ("content-type",):
                if key in answer.headers:
                    self.send_header(key, answer.headers[key])
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_DELETE = _forward

        def log_message(self, *_: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield relay, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        relay.release.set()
        httpd.shutdown()
        httpd.server_close()


def sim_messages(sim: str, meta_group: str) -> list[dict[str, Any]]:
    state = httpx.get(f"{sim}/control/state", timeout=10).json()
    return [x for x in state["messages"] if x["group_id"] == meta_group and x.get("from") is None]


def active_group_with_members(client: Any, sim: str, server_url: str) -> tuple[str, str]:
    created = client.add_chat_group(
        m.AddChatGroupRequest(
            cust_space_id=SPACE_A1, business_number=NUM_MESSAGES, subject="Crash talk"
        )
    ).body
    assert created.code == "OK", created.to_map()

    def active() -> str | None:
        listed = client.list_chat_group(
            m.ListChatGroupRequest(
                cust_space_id=SPACE_A1,
                business_number=NUM_MESSAGES,
                page=m.ListChatGroupRequestPage(index=1, size=10),
            )
        ).body.data.list
        return listed[0].group_id if listed and listed[0].group_status == "ACTIVE" else None

    group_id = str(wait_for(active, timeout=20))
    link = client.add_chat_group_invite_link(
        m.AddChatGroupInviteLinkRequest(
            cust_space_id=SPACE_A1, business_number=NUM_MESSAGES, group_id=group_id
        )
    ).body.invite_link
    for member in MEMBERS:
        answer = httpx.post(
            f"{sim}/control/tap-link", json={"invite_link": link, "wa_id": member}, timeout=10
        )
        assert answer.status_code == 200, answer.text
    return group_id, link


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_send_interrupted_by_sigkill_is_neither_lost_nor_sent_twice(
    tmp_path: Path, backend: str
) -> None:
    port, sim_port = free_port(), free_port()
    with (
        database_url(backend, tmp_path) as url,
        standalone_simulator(
            sim_port, f"http://127.0.0.1:{port}/webhooks/whatsapp", tmp_path
        ) as sim,
        relaying(f"http://127.0.0.1:{sim_port}") as (relay, relay_url),
        receiving(CALLBACK_SECRET_A) as receiver,
    ):
        env = {
            "OPENCAMS_TEST_PORT": str(port),
            "OPENCAMS_SANDBOX": "false",
            "OPENCAMS_GRAPH_BASE_URL": f"{relay_url}/graph/v23.0",
            "OPENCAMS_GRAPH_TIMEOUT_SECONDS": "60",
            "OPENCAMS_MESSAGE_SENDING_TIMEOUT_SECONDS": "1",
            "OPENCAMS_MESSAGE_RESOLVE_INTERVAL_SECONDS": "0.2",
            **FAST_CALLBACKS,
        }
        with live_server(url, tmp_path / "first", TENANCY, **env) as first:
            client = make_client(first)
            assert (
                client.update_phone_webhook(
                    m.UpdatePhoneWebhookRequest(
                        cust_space_id=SPACE_A1,
                        phone_number=NUM_MESSAGES,
                        http_flag="Y",
                        queue_flag="N",
                        status_callback_url=receiver.url,
                    )
                ).body.code
                == "OK"
            )
            group_id, _ = active_group_with_members(client, sim, first.url)
            wait_for(
                lambda: (
                    query_db(
                        first, "SELECT participant_count FROM chat_groups WHERE id = :g", g=group_id
                    )[0][0]
                    == len(MEMBERS)
                )
            )
            outcome: dict[str, Any] = {}

            def sending() -> None:
                try:
                    outcome["body"] = client.send_chatapp_message(
                        m.SendChatappMessageRequest(
                            channel_type="whatsapp",
                            type="message",
                            from_=NUM_MESSAGES,
                            to=group_id,
                            recipient_type="group",
                            cust_space_id=SPACE_A1,
                            message_type="text",
                            content=json.dumps({"text": "across a crash"}),
                        )
                    ).body
                except Exception as exc:  # the connection dies with the server
                    outcome["error"] = exc

            thread = threading.Thread(target=sending)
            thread.start()
            assert relay.answered.wait(30), "the send never reached Meta"
            (row,) = query_db(first, "SELECT id, state, wamid FROM messages")
            assert (row.state, row.wamid) == ("sending", None)  # committed before Meta's call
            os.kill(first.pid, signal.SIGKILL)
            thread.join(30)
        assert "body" not in outcome  # the caller never got an answer
        meta_group = query_db(
            first, "SELECT meta_group_id FROM chat_groups WHERE id = :g", g=group_id
        )[0][0]
        assert len(sim_messages(sim, meta_group)) == 1  # Meta has it

        with live_server(url, tmp_path / "second", TENANCY, **env) as second:
            httpx.post(f"{sim}/control/webhooks/redeliver", json={}, timeout=30)
            httpx.post(f"{sim}/control/webhooks/flush", json={}, timeout=30)
            settled = wait_for(
                lambda: (
                    query_db(second, "SELECT state, wamid FROM messages WHERE id = :i", i=row.id)[
                        0
                    ].state
                    == "unknown"
                ),
                timeout=20,
            )
            assert settled
            told = receiver.wait(
                lambda events: any(
                    e["EventType"] == "ChatAppStatus" and e["MessageId"] == row.id for e in events
                )
            )
            (unknown,) = [e for e in told if e.get("MessageId") == row.id]
            assert unknown["Status"] == "Unknown" and unknown["ErrorCode"] == "OutcomeUnknown"
            client = make_client(second)
            listed = client.list_chatapp_message(
                m.ListChatappMessageRequest(
                    channel_type="whatsapp",
                    cust_space_id=SPACE_A1,
                    business_number=NUM_MESSAGES,
                    page=m.ListChatappMessageRequestPage(index=1, size=10),
                )
            ).body.data
            assert [(i.message_id, i.message_status) for i in listed] == [(row.id, "Unknown")]
            assert "unknown" in second.cli("messages", "show", row.id).stdout
            # Nothing resent it: Meta still holds one message. A new send goes through.
            time.sleep(1.0)
            assert len(sim_messages(sim, meta_group)) == 1
            after = client.send_chatapp_message(
                m.SendChatappMessageRequest(
                    channel_type="whatsapp",
                    type="message",
                    from_=NUM_MESSAGES,
                    to=group_id,
                    recipient_type="group",
                    cust_space_id=SPACE_A1,
                    message_type="text",
                    content=json.dumps({"text": "after the crash"}),
                )
            ).body
            assert after.code == "OK", after.to_map()
            assert len(sim_messages(sim, meta_group)) == 2
            log = second.log()
        assert "Traceback" not in log, log[-3000:]
