"""How fast opencams.testing is: server ready, reset(), AddChatGroup -> ACTIVE.

    .venv/bin/python bench/testing_speed.py [--runs 50]

Prints the median and p95 (milliseconds) of each measure:

- first server of a process: a new Python process that imports opencams.testing and starts a
  server (imports, the one schema migration of the process, provisioning, listening);
- server ready: each further server of a process (`CamsServer.start()` until it answers);
- a subprocess `opencams serve`, for comparison: the process started until /healthz answers, on
  a database already migrated and provisioned (what the thread in the process saves);
- reset(): `CamsServer.reset()` after each round of five groups (one HTTP call, answered once
  done);
- AddChatGroup -> ACTIVE: the SDK's AddChatGroup, then ListChatGroup of its Subject, until that
  shows ACTIVE (with immediate confirmation the first ListChatGroup always does).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

BIN = Path(sys.executable).parent / "opencams"

FIRST_SERVER = """
import time
started = time.perf_counter()
from opencams.testing import running
with running() as cams:
    print(time.perf_counter() - started, cams.ready_seconds)
"""


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} |"


def first_servers(runs: int) -> tuple[list[float], list[float]]:
    totals, ready = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_SERVER], capture_output=True, text=True, check=True
        ).stdout.split()
        totals.append(float(out[0]))
        ready.append(float(out[1]))
    return totals, ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def subprocess_serve(runs: int) -> list[float]:
    from opencams.testing.tenancy import default_tenancy

    times = []
    with tempfile.TemporaryDirectory() as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCAMS_")}
        env.update(
            OPENCAMS_DATABASE_URL=f"sqlite:///{work}/bench.db",
            OPENCAMS_SECRET_KEY="bench-secret-key-0123456789abcdef-XYZ",
        )
        tenancy = Path(work) / "tenancy.yaml"
        tenancy.write_text(yaml.safe_dump(default_tenancy()))
        subprocess.run([str(BIN), "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run([str(BIN), "apply", str(tenancy)], env=env, check=True, capture_output=True)
        for _ in range(runs):
            port = free_port()
            started = time.perf_counter()
            proc = subprocess.Popen(
                [str(BIN), "serve", "--port", str(port), "--log-level", "warning"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    try:
                        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                        break
                    except httpx.TransportError:
                        time.sleep(0.005)
                times.append(time.perf_counter() - started)
            finally:
                proc.terminate()
                proc.wait()
    return times


def in_process(runs: int) -> dict[str, list[float]]:
    from alibabacloud_cams20200606 import models

    from opencams.testing import CamsServer

    results: dict[str, list[float]] = {"ready": [], "close": [], "reset": [], "active": []}
    CamsServer().start().close()  # the process's imports and schema, measured above
    for _ in range(min(runs, 20)):
        server = CamsServer().start()
        assert server.ready_seconds is not None
        results["ready"].append(server.ready_seconds)
        started = time.perf_counter()
        server.close()
        results["close"].append(time.perf_counter() - started)

    with CamsServer() as cams:
        client = cams.client()
        where = {"cust_space_id": cams.space, "business_number": cams.number}
        page = models.ListChatGroupRequestPage(index=1, size=20)
        for _ in range(3):  # the SDK's and the server's first calls
            client.add_chat_group(models.AddChatGroupRequest(**where, subject="warm-up"))
        cams.reset()
        for run in range(runs):
            subject = f"Bench {run}"
            started = time.perf_counter()
            client.add_chat_group(models.AddChatGroupRequest(**where, subject=subject))
            while True:
                request = models.ListChatGroupRequest(**where, subject=subject, page=page)
                found = client.list_chat_group(request).body.data.list
                if found and found[0].group_status == "ACTIVE":
                    break
            results["active"].append(time.perf_counter() - started)
            if run % 5 == 4:
                started = time.perf_counter()
                cams.reset()
                results["reset"].append(time.perf_counter() - started)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs of the in-process measures")
    parser.add_argument("--process-runs", type=int, default=3, help="runs of the process ones")
    args = parser.parse_args()

    first_total, first_ready = first_servers(args.process_runs)
    serve = subprocess_serve(args.process_runs)
    measured = in_process(args.runs)
    print("| measure | runs | median ms | p95 ms |")
    print("|---|---|---|---|")
    print(summary("first server of a process, imports included", first_total))
    print(summary("first server of a process, after the imports", first_ready))
    print(summary("server ready (further servers of a process)", measured["ready"]))
    print(summary("server close", measured["close"]))
    print(summary("subprocess `opencams serve` until /healthz answers", serve))
    print(summary("reset() (after five groups)", measured["reset"]))
    print(summary("AddChatGroup -> ListChatGroup shows ACTIVE", measured["active"]))


if __name__ == "__main__":
    main()
