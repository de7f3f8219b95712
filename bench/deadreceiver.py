"""The `list-p1-dead-receivers` scenario: ListChatGroup while the server keeps trying to deliver
callbacks to receivers that accept connections and never answer (docs/callbacks.md#delivery).

32 receiver URLs, each with 100 pending events in the outbox, on a listener that holds every
connection open without a byte of answer. The server's POSTs time out after 2 s and are retried
after at most 2 s, so that delivery attempts go on for the whole measurement.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import insert

from bench.common import ACCOUNT, HOT_NUMBER, SPACE
from opencams.store.callbacks import url_hash
from opencams.store.db import make_sync_engine
from opencams.store.tables import callback_events

RECEIVERS = 32
EVENTS_PER_RECEIVER = 100

# What the measured server is told (besides the bench's own settings).
ENV = {
    "OPENCAMS_CALLBACK_ALLOW_HTTP": "true",
    "OPENCAMS_CALLBACK_ALLOW_PRIVATE": "true",
    "OPENCAMS_CALLBACK_TIMEOUT_SECONDS": "2",
    "OPENCAMS_CALLBACK_BACKOFF_SECONDS": "0.5",
    "OPENCAMS_CALLBACK_BACKOFF_MAX_SECONDS": "2",
}


@contextmanager
def black_hole() -> Iterator[tuple[int, list[int]]]:
    """A TCP listener that accepts and never answers; yields (port, [connections accepted])."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    accepted = [0]
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            accepted[0] += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


def seed_events(database_url: str, port: int) -> int:
    """Pending events for RECEIVERS dead receivers; returns how many."""
    now = int(time.time() * 1000)
    rows = []
    for r in range(RECEIVERS):
        url = f"http://127.0.0.1:{port}/dead/{r}"
        for i in range(EVENTS_PER_RECEIVER):
            event_id = "evt-" + uuid.uuid4().hex
            body = {
                "EventId": event_id,
                "EventType": "ChatGroupSynced",
                "Timestamp": now,
                "ChannelType": "whatsapp",
                "CustSpaceId": SPACE,
                "BusinessNumber": HOT_NUMBER,
                "Corrections": ["subject"],
                "Seq": i,
            }
            rows.append(
                {
                    "id": event_id,
                    "account_id": ACCOUNT,
                    "space_id": SPACE,
                    "business_number": HOT_NUMBER,
                    "group_id": None,
                    "event_type": "ChatGroupSynced",
                    "payload": json.dumps(body),
                    "url": url,
                    "url_hash": url_hash(url),
                    "state": "pending",
                    "attempts": 0,
                    "created_at": now,
                }
            )
    engine = make_sync_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(callback_events), rows)
    finally:
        engine.dispose()
    return len(rows)


def clear_events(database_url: str) -> None:
    engine = make_sync_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(callback_events.delete())
            conn.exec_driver_sql("DELETE FROM callback_receivers")
    finally:
        engine.dispose()
