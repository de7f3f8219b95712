"""One measured scenario: requests signed ahead (V3, a fresh nonce each), written one per line for
bench/replay.lua, replayed by wrk after a warm-up; the rate, latency, CPU, memory and errors."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.signing import utc_stamp, v3_headers

from bench.common import API_VERSION, LUA, BenchError, log
from bench.procfs import children_cpu, cpu_times, database_cpu, machine_busy, rss_mb
from bench.scenarios import Credentials, Scenario
from bench.servers import Server

# Signed: host and the x-acs-* headers (`accept` and `user-agent` go unsigned).
SIGNED_HEADERS = [
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
]


def sign_v3(
    host: str, action: str, params: dict[str, str], creds: Credentials, date: str
) -> tuple[str, dict[str, str]]:
    """(path with query, headers) of one signed POST with an empty body and a fresh nonce,
    signed by tests/signing.py (written from the published algorithm, not opencams' verifier)."""
    query, headers = v3_headers(
        host,
        action,
        params,
        creds.key_id,
        creds.secret,
        version=API_VERSION,
        date=date,
        signed=SIGNED_HEADERS,
    )
    headers["user-agent"] = "opencams-bench/1 (wrk)"
    return f"/?{query}", headers


def raw_line(path: str, headers: dict[str, str]) -> str:
    """The raw HTTP/1.1 request on one line, CRLFs written as tabs (replay.lua undoes that)."""
    parts = [f"POST {path} HTTP/1.1"]
    parts += [f"{name}: {value}" for name, value in headers.items()]
    parts.append("content-length: 0")
    return "\t".join(parts)


@dataclass
class Result:
    key: str
    title: str
    database: str
    server: str
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    cpu_ms_per_request: float = 0.0
    cpu_system_share: float = 0.0  # of the CPU time, the kernel's
    cpu_busy_cores: float = 0.0
    client_cores: float = 0.0  # wrk's CPU over the run
    db_ms_per_request: float = 0.0  # PostgreSQL backends' CPU (SQLite runs in the server)
    other_cores: float = 0.0  # everything else on the machine: the run was disturbed if high
    rss_mb: float = 0.0
    # With `settle`: the server's CPU from the measured run's start until it is idle again (the
    # webhooks of the run's writes applied), per request of the run.
    settled_cpu_ms_per_request: float | None = None
    settle_seconds: float | None = None
    meta_cores: float | None = None  # a standalone simulator's CPU over the run (Meta's share)
    non_2xx: int = 0
    socket_errors: int = 0
    exhausted: int = 0
    signed: int = 0
    ratio_to_floor: float | None = None
    skipped: str | None = None
    note: str = ""

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors + self.exhausted


@dataclass
class Load:
    duration: int
    warmup: int
    connections: int
    threads: int
    wrk: str
    quiet_budget: float = 0.0  # seconds the run may still wait for other processes to calm down


def wait_for_quiet(load: Load, servers: list[Server]) -> None:
    """On a shared machine: before a scenario, wait (within the run's budget) until processes
    other than the servers use less than a third of a core."""
    while load.quiet_budget > 0:
        pids = [pid for s in servers for pid in s.pids()]
        busy, own = machine_busy(), sum(cpu_times(pids))
        time.sleep(3)
        others = (machine_busy() - busy - (sum(cpu_times(pids)) - own)) / 3
        if others < 0.33:
            return
        load.quiet_budget -= 3
        log(f"other processes use {others:.2f} cores; waiting ({load.quiet_budget:.0f} s left)")


SETTLE_WINDOW = 0.5  # seconds per look
SETTLE_IDLE = 0.02  # of a core: below this, the servers are idle
SETTLE_LIMIT = 30.0


def settle_cpu(pids: list[int]) -> tuple[float, float]:
    """Wait until the processes are idle (under SETTLE_IDLE of a core over a SETTLE_WINDOW,
    after at least two seconds: the simulator's webhooks come a second after each write); the
    seconds waited and the CPU seconds they used meanwhile."""
    started = time.monotonic()
    first = sum(cpu_times(pids))
    last = first
    while time.monotonic() - started < SETTLE_LIMIT:
        time.sleep(SETTLE_WINDOW)
        now = sum(cpu_times(pids))
        idle = now - last < SETTLE_IDLE * SETTLE_WINDOW
        last = now
        if idle and time.monotonic() - started >= 2.0:
            break
    return round(time.monotonic() - started, 1), last - first


def write_requests(
    scenario: Scenario, host: str, count: int, files: int, prefix: Path, offset: int
) -> None:
    """`count` signed requests, dealt round-robin into `files` files (one per wrk thread)."""
    action, params = scenario.action, scenario.params
    assert action is not None
    assert params is not None
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(Path(f"{prefix}.{i}.txt").open("w")) for i in range(files)]
        date = utc_stamp()
        for i in range(count):
            if i % 5000 == 0:
                date = utc_stamp()
            path, headers = sign_v3(host, action, params(offset + i), scenario.creds, date)
            handles[i % files].write(raw_line(path, headers) + "\n")


def run_wrk(
    load: Load,
    url: str,
    duration: int,
    *,
    connections: int,
    threads: int,
    prefix: Path | None,
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("BENCH_REQUESTS", None)
    if prefix is not None:
        env["BENCH_REQUESTS"] = str(prefix)
    argv = [
        load.wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
    ]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wrk_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    stdout, stderr = proc.communicate(timeout=timeout)
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            return parsed
    raise BenchError(f"wrk printed no result (exit {proc.returncode}):\n{stdout}\n{stderr}")


WRK_COMMAND = "wrk -t{threads} -c{connections} -d{duration}s --timeout 10s -s bench/replay.lua URL"


def check_once(server: Server, scenario: Scenario) -> None:
    """One request of the scenario through httpx, its answer checked: a benchmark of errors
    would measure nothing."""
    if scenario.action is None or scenario.params is None:
        return
    path, headers = sign_v3(
        server.host, scenario.action, scenario.params(10**9), scenario.creds, utc_stamp()
    )
    response = httpx.post(f"{server.url}{path}", headers=headers, timeout=30)
    body = response.json()
    problem = (
        f"HTTP {response.status_code}"
        if response.status_code != 200
        else (scenario.expect(body) if scenario.expect else None)
    )
    if problem:
        raise BenchError(f"{scenario.key}: the sanity check failed: {problem}: {body}")


def measure(
    servers: list[Server],
    scenario: Scenario,
    load: Load,
    work: Path,
    database: str,
    estimate_rps: float,
    *,
    settle: bool = False,
) -> Result:
    """Warm-up run, then the measured run; for several servers, one wrk each, concurrently,
    the connections split between them. `settle`: after the run, wait until the servers are
    idle and count the CPU they used meanwhile too (what a write costs, its webhook included)."""
    label = servers[0].label if len(servers) == 1 else "+".join(s.label for s in servers)
    result = Result(scenario.key, scenario.title, database, label)
    wait_for_quiet(load, servers)
    for server in servers:
        check_once(server, scenario)
    per_server_connections = max(1, load.connections // len(servers))
    per_server_threads = max(1, load.threads // len(servers))
    offset = 0

    def one_run(
        duration: int, rps_guess: float
    ) -> tuple[list[dict[str, Any]], tuple[float, float, float, float, float, float], int]:
        nonlocal offset
        prefixes: list[Path | None] = []
        signed = 0
        for n, server in enumerate(servers):
            if scenario.action is None:
                prefixes.append(None)
                continue
            count = int(rps_guess / len(servers) * duration * 1.6) + 2000
            prefix = work / f"req-{scenario.key}-{n}"
            write_requests(scenario, server.host, count, per_server_threads, prefix, offset)
            offset += count
            signed += count
            prefixes.append(prefix)
        pids = [pid for s in servers for pid in s.pids()]
        metas = [s.meta_pid for s in servers if s.meta_pid is not None]
        meta_before = sum(cpu_times(metas)) if metas else 0.0
        user_before, system_before = cpu_times(pids)
        busy_before, client_before = machine_busy(), children_cpu()
        db_before = database_cpu()
        procs = [
            run_wrk(
                load,
                f"{server.url}/healthz" if scenario.action is None else f"{server.url}/",
                duration,
                connections=per_server_connections,
                threads=per_server_threads,
                prefix=prefix,
            )
            for server, prefix in zip(servers, prefixes, strict=True)
        ]
        outcomes = [wrk_result(proc, duration + 120) for proc in procs]
        user_after, system_after = cpu_times(pids)
        cpu = (
            user_after - user_before,
            system_after - system_before,
            machine_busy() - busy_before,
            children_cpu() - client_before,
            sum(v - db_before.get(pid, 0.0) for pid, v in database_cpu().items()),
            (sum(cpu_times(metas)) - meta_before) if metas else 0.0,
        )
        for used in prefixes:
            if used is not None:
                for i in range(per_server_threads):
                    Path(f"{used}.{i}.txt").unlink(missing_ok=True)
        return outcomes, cpu, signed

    warm, _, _ = one_run(load.warmup, estimate_rps)
    # Requests past the signed ones (404s) are not the scenario's rate.
    warm_rps = sum(o["requests"] - o["exhausted"] for o in warm) / max(load.warmup, 1)
    attempts = 0
    while True:
        attempts += 1
        guess = max(warm_rps, 50.0) * (1.0 if attempts == 1 else 2.5)
        outcomes, (user, system, busy, client, db_cpu, meta), signed = one_run(load.duration, guess)
        exhausted = sum(o["exhausted"] for o in outcomes)
        if exhausted == 0 or attempts == 2 or scenario.action is None:
            break
        log(f"{scenario.key}: {exhausted} requests past the signed ones; again with more")
    requests = sum(o["requests"] for o in outcomes)
    seconds = max(o["duration_us"] for o in outcomes) / 1e6
    result.requests = requests
    result.seconds = seconds
    result.rps = requests / seconds if seconds else 0.0
    result.p50_ms = max(o["latency_us"]["p50"] for o in outcomes) / 1000
    result.p99_ms = max(o["latency_us"]["p99"] for o in outcomes) / 1000
    result.max_ms = max(o["latency_us"]["max"] for o in outcomes) / 1000
    result.non_2xx = sum(o["errors"]["status"] for o in outcomes)
    result.socket_errors = sum(
        o["errors"][k] for o in outcomes for k in ("connect", "read", "write", "timeout")
    )
    result.exhausted = sum(o["exhausted"] for o in outcomes)
    result.signed = signed
    cpu = user + system
    result.cpu_ms_per_request = cpu * 1000 / requests if requests else 0.0
    result.cpu_system_share = system / cpu if cpu else 0.0
    result.client_cores = client / seconds if seconds else 0.0
    result.db_ms_per_request = db_cpu * 1000 / requests if requests else 0.0
    others = busy - cpu - client - db_cpu - meta
    if any(s.meta_pid is not None for s in servers):
        result.meta_cores = meta / seconds if seconds else 0.0
    result.other_cores = max(0.0, others) / seconds if seconds else 0.0
    result.cpu_busy_cores = cpu / seconds if seconds else 0.0
    result.rss_mb = rss_mb([pid for s in servers for pid in s.pids()])
    if settle:
        waited, later = settle_cpu([pid for s in servers for pid in s.pids()])
        result.settle_seconds = waited
        result.settled_cpu_ms_per_request = (cpu + later) * 1000 / requests if requests else 0.0
    log(
        f"{scenario.key:<16} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  cpu {result.cpu_ms_per_request:.3f} ms/req  "
        f"rss {result.rss_mb:.0f} MB  errors {result.errors}  "
        f"wrk {result.client_cores:.2f} other {result.other_cores:.2f} cores"
    )
    return result
