"""PostgreSQL stopped and started under load: during the outage the answer is ServiceUnavailable
(503, the contract's envelope), never a 500; afterwards service resumes by itself."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException

from tests.conformance.helpers import make_client
from tests.conformance.tenancy import KEY_A, NUM_SYNC, SPACE_A1, TENANCY
from tests.databases import database_url
from tests.live import live_server

# It restarts the machine's PostgreSQL: it runs alone, after the others (`make unit`).
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or os.geteuid() != 0:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("the PostgreSQL restart test needs root and a Debian PostgreSQL cluster")
        pytest.skip("needs root and a Debian PostgreSQL cluster (pg_ctlcluster)")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def test_postgresql_restart_under_load(tmp_path: Path) -> None:
    ctl = _cluster()
    codes: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    with (
        database_url("postgresql", tmp_path) as url,
        live_server(url, tmp_path / "srv", TENANCY) as server,
    ):
        request = m.ListChatGroupRequest(
            cust_space_id=SPACE_A1,
            business_number=NUM_SYNC,
            page=m.ListChatGroupRequestPage(index=1, size=5),
        )

        def load() -> None:
            client = make_client(server, KEY_A)
            while not stop.is_set():
                try:
                    key = f"200 {client.list_chat_group(request).body.code}"
                except ServerException as exc:
                    key = f"{exc.status_code} {exc.code}"
                except ClientException as exc:
                    key = f"{exc.status_code} {exc.code}"
                with lock:
                    codes[key] = codes.get(key, 0) + 1
                time.sleep(0.01)

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1)
            subprocess.run(
                [*ctl, "stop", "-m", "fast"], check=True, capture_output=True, timeout=60
            )
            time.sleep(3)  # the outage
        finally:
            subprocess.run([*ctl, "start"], check=True, capture_output=True, timeout=60)
        before_recovery = dict(codes)
        deadline = time.monotonic() + 30
        client = make_client(server, KEY_A)
        while True:
            try:
                if client.list_chat_group(request).body.code == "OK":
                    break
            except (ServerException, ClientException):
                pass
            assert time.monotonic() < deadline, "service did not resume"
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        assert "Traceback" not in server.log()
    print(f"\nanswers during the load (before recovery): {before_recovery}; in all: {codes}")
    assert codes.get("503 ServiceUnavailable", 0) > 0
    assert all(k in ("200 OK", "503 ServiceUnavailable") for k in codes), codes
