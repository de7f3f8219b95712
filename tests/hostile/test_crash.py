"""Crash durability: AddChatGroup from 16 threads through the official SDK, the server SIGKILLed
after about half of them were acknowledged, restarted on the same database. Every acknowledged
group is listed (none lost) and becomes ACTIVE (through Meta's webhooks, redelivered, or
`opencams sync`). Meta is a standalone simulator, so that it outlives the crash. On PostgreSQL
the database itself is also restarted in the middle of the storm.

The number's callbacks go to a receiver throughout: every group that became ACTIVE was told
exactly once (ChatGroupCreated), no event names a group that does not exist, and the receiver
ends up with exactly the events of the outbox (none lost, none invented; a copy sent again after
the kill has the same EventId)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx
import pytest
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
from sqlalchemy import text

from opencams.store.db import make_sync_engine
from tests.conformance.helpers import list_groups, make_client, raw_call
from tests.conformance.tenancy import (
    APP_SECRET,
    CALLBACK_SECRET_A,
    KEY_A,
    NUM_SYNC,
    SPACE_A1,
    TENANCY,
)
from tests.databases import BACKENDS, database_url
from tests.hostile.figures import record, scaled
from tests.live import BIN, LiveServer, free_port, live_server, query_db, run_cli
from tests.receiver import FAST_CALLBACKS, Receiver, receiving, with_callbacks

pytestmark = pytest.mark.slow

REQUESTS = scaled(300)
THREADS = 16
# On PostgreSQL the storm is paced until the database has been restarted, so that the restart
# falls in the middle of it rather than after it; then it goes at full speed to the kill.
PACED_RATE = 50.0


def pg_cluster() -> list[str]:
    """pg_ctlcluster of the machine's PostgreSQL (as tests/scaleout/test_database_restart.py)."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or os.geteuid() != 0:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("the PostgreSQL restart needs root and a Debian PostgreSQL cluster")
        pytest.skip("needs root and a Debian PostgreSQL cluster (pg_ctlcluster)")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def restart_postgresql(ctl: list[str], outage: float) -> None:
    try:
        subprocess.run([*ctl, "stop", "-m", "fast"], check=True, capture_output=True, timeout=60)
        time.sleep(outage)
    finally:
        subprocess.run([*ctl, "start"], check=True, capture_output=True, timeout=60)


@contextmanager
def standalone_simulator(port: int, callback: str, work: Path) -> Iterator[str]:
    """`opencams sandbox` on its own port; yields its base URL."""
    url = f"http://127.0.0.1:{port}"
    with (work / "sim.log").open("w") as log:
        sim = subprocess.Popen(
            [
                str(BIN),
                "sandbox",
                "--port",
                str(port),
                "--callback",
                callback,
                "--app-secret",
                APP_SECRET,
                "--webhook-delay",
                "0.05",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/control/state", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert sim.poll() is None and time.monotonic() < deadline, (
                work / "sim.log"
            ).read_text()
            time.sleep(0.1)
        yield url
    finally:
        sim.terminate()
        sim.wait(timeout=10)


class Storm:
    """REQUESTS AddChatGroup calls, each retried while the answer is ServiceUnavailable (as a
    client does during a database outage), until the server is gone."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.acknowledged: list[dict[str, Any]] = []
        self.answers: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.paced = threading.Event()  # at most PACED_RATE calls/s while set
        self._next_slot = 0.0
        self.work: Queue[int] = Queue()
        for i in range(REQUESTS):
            self.work.put(i)

    def acks(self) -> int:
        with self.lock:
            return len(self.acknowledged)

    def _pace(self) -> None:
        if not self.paced.is_set():
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1 / PACED_RATE
        time.sleep(slot - now)

    def _note(self, key: str) -> None:
        with self.lock:
            self.answers[key] += 1

    def _writer(self) -> None:
        client = make_client(self.server, KEY_A)
        while True:
            try:
                i = self.work.get_nowait()
            except Empty:
                return
            query = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_SYNC, "Subject": f"crash {i}"}
            self._pace()
            for _ in range(100):
                try:
                    body = raw_call(client, "AddChatGroup", query)["body"]
                except ServerException as exc:
                    self._note(f"{exc.status_code} {exc.code}")
                    if exc.code == "ServiceUnavailable" and not self.killed.is_set():
                        time.sleep(0.2)
                        continue
                    break
                except ClientException as exc:
                    self._note(f"{exc.status_code} {exc.code}")
                    break
                except Exception as exc:  # the connection dies with the server
                    self._note(type(exc).__name__)
                    break
                self._note(f"200 {body['Code']}")
                if body["Code"] == "OK":
                    with self.lock:
                        self.acknowledged.append(body)
                break

    def run(self, until: Callable[[Storm], None]) -> None:
        """Write from THREADS threads; `until` runs meanwhile, and kills the server."""
        threads = [threading.Thread(target=self._writer) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        try:
            until(self)
        finally:
            for thread in threads:
                thread.join(timeout=120)

    def wait_for_acks(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acks() < count and not self.work.empty():
            assert time.monotonic() < deadline, f"only {self.acks()} acknowledged: {self.answers}"
            time.sleep(0.005)


def all_groups(server: LiveServer) -> dict[str, str]:
    """GroupId -> status of every group of the number, listed through the SDK."""
    client = make_client(server, KEY_A)
    found: dict[str, str] = {}
    index = 1
    while True:
        data = list_groups(client, NUM_SYNC, index=index, size=100)
        for item in data.list:
            found[item.group_id] = item.group_status
        if index * 100 >= data.total:
            return found
        index += 1


# PostgreSQL's run restarts the machine's PostgreSQL: it runs alone (`make unit`).
@pytest.mark.parametrize(
    "backend",
    [pytest.param(b, marks=[pytest.mark.serial] if b == "postgresql" else []) for b in BACKENDS],
)
def test_acknowledged_groups_survive_sigkill(tmp_path: Path, backend: str) -> None:
    ctl = pg_cluster() if backend == "postgresql" else []
    port, sim_port = free_port(), free_port()
    graph = f"http://127.0.0.1:{sim_port}/graph/v23.0"
    restarts: list[float] = []
    with (
        receiving(CALLBACK_SECRET_A) as receiver,
        database_url(backend, tmp_path) as url,
        standalone_simulator(
            sim_port, f"http://127.0.0.1:{port}/webhooks/whatsapp", tmp_path
        ) as sim,
    ):
        tenancy = with_callbacks(TENANCY, SPACE_A1, NUM_SYNC, receiver.url)
        with live_server(
            url,
            tmp_path / "first",
            tenancy,
            OPENCAMS_TEST_PORT=str(port),
            OPENCAMS_SANDBOX="false",
            OPENCAMS_GRAPH_BASE_URL=graph,
            **FAST_CALLBACKS,
        ) as first:
            storm = Storm(first)
            if ctl:
                storm.paced.set()

            def crash(storm: Storm) -> None:
                if ctl:
                    storm.wait_for_acks(REQUESTS // 4)
                    started = time.monotonic()
                    restart_postgresql(ctl, outage=2.0)
                    restarts.append(time.monotonic() - started)
                    storm.paced.clear()
                storm.wait_for_acks(REQUESTS // 2)
                os.kill(first.pid, signal.SIGKILL)  # no warning, mid-storm
                storm.killed.set()

            storm.run(crash)
        acknowledged = {b["GroupId"] for b in storm.acknowledged}
        with live_server(
            url,
            tmp_path / "second",
            tenancy,
            OPENCAMS_TEST_PORT=str(port),
            OPENCAMS_SANDBOX="false",
            OPENCAMS_GRAPH_BASE_URL=graph,
            **FAST_CALLBACKS,
        ) as second:
            integrity = "n/a"
            if backend == "sqlite":
                engine = make_sync_engine(url)
                with engine.connect() as conn:
                    integrity = str(conn.execute(text("PRAGMA integrity_check")).scalar())
                engine.dispose()
            listed = all_groups(second)
            lost = sorted(acknowledged - set(listed))
            # Meta's webhooks that could not be delivered while the server was down.
            httpx.post(f"{sim}/control/webhooks/redeliver", json={}, timeout=30)
            httpx.post(f"{sim}/control/webhooks/flush", json={}, timeout=30)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                states = all_groups(second)
                if all(states.get(g) == "ACTIVE" for g in acknowledged):
                    break
                time.sleep(0.5)
            by_webhooks = sum(states.get(g) == "ACTIVE" for g in acknowledged)
            synced = ""
            if by_webhooks < len(acknowledged):
                result = run_cli(
                    {**second.env, "OPENCAMS_SYNC_GRACE_SECONDS": "0"},
                    "sync",
                    "--space",
                    SPACE_A1,
                    "--number",
                    NUM_SYNC,
                    check=False,
                )
                synced = f", then `opencams sync` (exit {result.returncode})"
                states = all_groups(second)
            active = sum(states.get(g) == "ACTIVE" for g in acknowledged)
            statuses = Counter(states.get(g, "missing") for g in acknowledged)
            told = callbacks_told(second, receiver)
            log = second.log()
    pg = f", PostgreSQL restarted mid-storm ({restarts[0]:.1f} s)" if restarts else ""
    record(
        f"crash [{backend}]: {REQUESTS} AddChatGroup from {THREADS} SDK threads, SIGKILL after "
        f"{REQUESTS // 2} acknowledgements{pg}: acknowledged {len(acknowledged)}, listed after "
        f"restart {len(acknowledged) - len(lost)} (rows {len(listed)}), lost {len(lost)}, "
        f"ACTIVE {by_webhooks} through webhooks{synced} -> {active}; integrity_check {integrity}; "
        f"answers {dict(storm.answers)}; callbacks: {told['events']} events, "
        f"{told['created']} ChatGroupCreated for {told['active']} ACTIVE groups, "
        f"{told['received']} received ({told['copies']} copies sent again)"
    )
    assert len(acknowledged) >= REQUESTS // 2
    assert lost == []
    assert integrity in ("ok", "n/a")
    assert active == len(acknowledged), statuses
    assert "Traceback" not in log, log[-5000:]
    assert told["told_twice"] == [] and told["untold"] == [], told
    assert told["orphans"] == [] and told["lost"] == [] and told["invented"] == [], told


def callbacks_told(server: LiveServer, receiver: Receiver) -> dict[str, Any]:
    """The outbox against the groups, and the receiver against the outbox, once every event has
    been delivered."""
    deadline = time.monotonic() + 60
    while True:
        waiting = query_db(
            server, "SELECT count(*) FROM callback_events WHERE state <> 'delivered'"
        )[0][0]
        if not waiting:
            break
        assert time.monotonic() < deadline, f"{waiting} callback events not delivered"
        time.sleep(0.2)
    groups = {
        row[0]: row[1]
        for row in query_db(
            server,
            "SELECT g.id, g.status FROM chat_groups g JOIN business_numbers n"
            " ON n.id = g.number_id WHERE n.number = :n AND g.deleted_at IS NULL",
            n=NUM_SYNC,
        )
    }
    every_group = {row[0] for row in query_db(server, "SELECT id FROM chat_groups")}
    events = query_db(server, "SELECT id, group_id, event_type, payload FROM callback_events")
    # A group is told into existence once: created (confirmed by Meta or adopted by sync), or
    # discovered by sync (made at Meta while this server was dead, before it could record it).
    created = Counter(
        e[1]
        for e in events
        if e[2] == "ChatGroupCreated" or (e[2] == "ChatGroupSynced" and "discovered" in e[3])
    )
    active = {g for g, status in groups.items() if status == "ACTIVE"}
    outbox = {e[0] for e in events}
    received = [e["EventId"] for e in receiver.accepted()]
    return {
        "events": len(events),
        "active": len(active),
        "created": sum(created.values()),
        "received": len(set(received)),
        "copies": len(received) - len(set(received)),
        "told_twice": sorted(g for g, n in created.items() if n > 1),
        "untold": sorted(active - set(created)),
        "orphans": sorted({e[1] for e in events if e[1] and e[1] not in every_group}),
        "lost": sorted(outbox - set(received)),
        "invented": sorted(set(received) - outbox),
        "signatures_bad": sum(not p.valid for p in receiver.posts),
    }
