"""SIGKILL in the middle of a storm of writes: every operation answered OK is in the database
after the restart, none is half-applied, and SQLite's integrity check is clean."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException
from sqlalchemy import text

from opencams.store.db import make_sync_engine
from tests.conformance.helpers import make_client, raw_call
from tests.conformance.tenancy import KEY_A, NUM_SYNC, SPACE_A1, TENANCY
from tests.databases import BACKENDS, database_url
from tests.live import free_port, live_server

STORM_SECONDS = 3.0
WRITERS = 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_during_a_write_storm(tmp_path: Path, backend: str) -> None:
    acknowledged: list[dict[str, Any]] = []
    failures: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    port = free_port()
    with database_url(backend, tmp_path) as url:
        with live_server(url, tmp_path / "first", TENANCY, OPENCAMS_TEST_PORT=str(port)) as server:

            def writer(n: int) -> None:
                client = make_client(server, KEY_A)
                i = 0
                while not stop.is_set():
                    i += 1
                    query = {
                        "CustSpaceId": SPACE_A1,
                        "BusinessNumber": NUM_SYNC,
                        "Subject": f"storm {n}-{i}",
                    }
                    try:
                        body = raw_call(client, "AddChatGroup", query)["body"]
                    except ClientException as exc:
                        key = str(exc.code)
                    except Exception as exc:  # the connection dies with the server
                        key = type(exc).__name__
                    else:
                        if body["Code"] == "OK":
                            with lock:
                                acknowledged.append(body)
                            continue
                        key = str(body["Code"])
                    with lock:
                        failures[key] = failures.get(key, 0) + 1

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
            for thread in threads:
                thread.start()
            time.sleep(STORM_SECONDS)
            os.kill(server.pid, signal.SIGKILL)  # mid-storm, no warning
            time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join()
        assert len(acknowledged) > 10, failures

        # The same database under a new process.
        with live_server(url, tmp_path / "second", TENANCY, OPENCAMS_TEST_PORT=str(port)):
            engine = make_sync_engine(url)
            with engine.connect() as conn:
                groups = {r.id: r for r in conn.execute(text("SELECT id, status FROM chat_groups"))}
                ops = {
                    r.id: r for r in conn.execute(text("SELECT id, group_id, kind FROM operations"))
                }
                if backend == "sqlite":
                    assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            engine.dispose()
    missing = [
        b["GroupId"]
        for b in acknowledged
        if b["GroupId"] not in groups or b["UniqueCode"] not in ops
    ]
    assert missing == []
    # Nothing half-applied: every group has its create operation and every operation its group.
    assert {o.group_id for o in ops.values() if o.kind == "create"} == set(groups)
    print(
        f"\n[{backend}] acknowledged {len(acknowledged)}, found after restart {len(acknowledged) - len(missing)}, "
        f"rows {len(groups)}, failures during the kill: {failures}"
    )
