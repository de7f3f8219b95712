#!/usr/bin/env python3
"""`make bench`: opencams under load, measured against the floor of its own stack.

Starts `opencams serve` as production would (a subprocess; uvicorn with uvloop and httptools),
provisions a tenant with `opencams apply`, bulk-seeds groups with `opencams dev seed`, signs
unique V3 requests ahead of each run (one nonce each: replay protection stays on), replays them
with wrk at 64 connections for a fixed duration, and writes bench/RESULTS.md. See bench/README.md.

    .venv/bin/python bench/run.py [--quick] [--duration S] [--database sqlite|postgresql|both]
                                  [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
LUA = BENCH / "replay.lua"
BIN = Path(sys.executable).parent
OPENCAMS = BIN / "opencams"
GRANIAN_VERSION = "2.8.9"
PY_SPY_VERSION = "0.4.3"
PG_ADMIN_URL = os.environ.get("OPENCAMS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

ACCOUNT = "1000000000000777"
SPACE = "cams-bench01"
HOT_NUMBER = "8613800000777"  # provisioned by `opencams apply`; gets 10,000 groups
MID_NUMBER = "8613800000778"  # created by the seeder; gets 1,000 groups (the 1k-vs-1M pair)
ROOT_KEY = ("LTAI5tBenchRootKey01", "BenchRootSecret0123456789abcdef")
USER_KEY = ("LTAI5tBenchUserKey01", "BenchUserSecret0123456789abcdef")
APP_SECRET = "bench-app-secret-0123456789abcdef"
SECRET_KEY = "bench-secret-key-0123456789abcdef-XYZ"
SUBJECT_FILTER = "sales"
API_VERSION = "2020-06-06"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- tools -------------------------------------------------------------------------------------


class BenchError(Exception):
    """Something the benchmark needs is missing or broke; the message says what."""


def ensure_wrk() -> str:
    """wrk's path; installs the Debian package when running as root, else says what to do."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)
        found = shutil.which("wrk")
        if found:
            return found
    raise BenchError(
        "wrk is not installed. Install the Debian package: `sudo apt-get install -y wrk` "
        "(or build it from source: https://github.com/wg/wrk), then run `make bench` again."
    )


def pip_target(package: str, version: str) -> Path | None:
    """A package installed for the benchmark only (pip --target under bench/out), never into
    the project's environment. None when pip cannot get it (the reason is logged)."""
    target = OUT / "tools" / f"{package}-{version}"
    marker = target / ".complete"
    if marker.exists():
        return target
    staging = target.with_name(f"{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    log(f"installing {package}=={version} into {target.relative_to(ROOT)} (benchmark only)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(staging),
            f"{package}=={version}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        log(f"{package} unavailable: {result.stderr.strip()[-400:]}")
        shutil.rmtree(staging, ignore_errors=True)
        return None
    (staging / ".complete").write_text(version)
    try:
        staging.rename(target)  # atomic: a concurrent run sees all of it or nothing
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another run was first
    return target if marker.exists() else None


def tool_version(*argv: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    return (result.stdout or result.stderr).strip().splitlines()[0] if result else "?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- process accounting (/proc) ----------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the processes and their descendants."""
    user = system = 0
    for root in pids:
        for pid in process_tree(root):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            user += int(fields[11])  # utime (field 14 of stat)
            system += int(fields[12])  # stime (field 15)
    return user / CLK_TCK, system / CLK_TCK


def database_pids() -> list[int]:
    """PostgreSQL backends serving the benchmark's databases (their command line names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"postgres:") and b"opencams_bench_" in cmdline:
            found.append(int(entry.name))
    return found


def database_cpu() -> dict[int, float]:
    """CPU seconds of each benchmark PostgreSQL backend (backends come and go with the pool)."""
    seconds: dict[int, float] = {}
    for pid in database_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return seconds


def machine_busy() -> float:
    """CPU seconds all processors have been busy since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pids: list[int]) -> float:
    """Resident memory (VmRSS) of the processes and their descendants, in MB."""
    total_kb = 0
    for root in pids:
        for pid in process_tree(root):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            if match:
                total_kb += int(match.group(1))
    return total_kb / 1024


# --- signing (written from the published ACS3-HMAC-SHA256 algorithm, as tests/signing.py) -----


def _pe(value: str) -> str:
    return quote(value, safe="~")


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SIGNED_HEADERS = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str


def sign_v3(
    host: str, action: str, params: dict[str, str], creds: Credentials, date: str
) -> tuple[str, dict[str, str]]:
    """(path with query, headers) of one signed POST with an empty body and a fresh nonce."""
    query = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in sorted(params.items()))
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-content-sha256": EMPTY_SHA256,
        "x-acs-date": date,
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-version": API_VERSION,
    }
    canonical = "\n".join(
        [
            "POST",
            "/",
            query,
            "".join(f"{name}:{headers[name]}\n" for name in SIGNED_HEADERS),
            ";".join(SIGNED_HEADERS),
            EMPTY_SHA256,
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(creds.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={creds.key_id},"
        f"SignedHeaders={';'.join(SIGNED_HEADERS)},Signature={signature}"
    )
    headers["accept"] = "application/json"
    headers["user-agent"] = "opencams-bench/1 (wrk)"
    return f"/?{query}", headers


def raw_line(path: str, headers: dict[str, str]) -> str:
    """The raw HTTP/1.1 request on one line, CRLFs written as tabs (replay.lua undoes that)."""
    parts = [f"POST {path} HTTP/1.1"]
    parts += [f"{name}: {value}" for name, value in headers.items()]
    parts.append("content-length: 0")
    return "\t".join(parts)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- scenarios ---------------------------------------------------------------------------------

Params = Callable[[int], dict[str, str]]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    action: str | None  # None: GET /healthz, the floor
    params: Params | None = None
    creds: Credentials = Credentials(*USER_KEY)
    expect: Callable[[dict[str, Any]], str | None] | None = None  # a sanity check of one answer


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


def page(index: int, size: int = 20) -> str:
    return json.dumps({"Index": index, "Size": size}, separators=(",", ":"))


def list_params(number: str, index: int = 1, **extra: str) -> Params:
    fixed = {"CustSpaceId": SPACE, "BusinessNumber": number, "Page": page(index), **extra}
    return lambda _i: fixed


def expect_list(total_min: int, items: int) -> Callable[[dict[str, Any]], str | None]:
    def check(body: dict[str, Any]) -> str | None:
        data = body.get("Data") or {}
        if body.get("Code") != "OK":
            return f"answered {body.get('Code')}: {body.get('Message')}"
        if int(data.get("Total", -1)) < total_min or len(data.get("List", [])) != items:
            return f"Total {data.get('Total')} and {len(data.get('List', []))} items"
        return None

    return check


def expect_ok(body: dict[str, Any]) -> str | None:
    return None if body.get("Code") == "OK" else f"answered {body.get('Code')}"


# --- the database and the tenant ---------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    numbers: int  # business numbers in all, the hot and the 1,000-group ones included
    groups: int  # groups in the big database, in all
    hot_groups: int
    mid_groups: int
    participants: int


# The hot number gets 10,300 rows: about 2% are deleted groups (never listed), which leaves
# just over 10,000 listed, so that Page.Index 500 (offset 9,980) still has a full page.
FULL = Sizes(numbers=1000, groups=1_000_000, hot_groups=10_300, mid_groups=1_000, participants=3)
QUICK = Sizes(numbers=10, groups=13_000, hot_groups=10_300, mid_groups=1_000, participants=3)


def tenancy() -> dict[str, Any]:
    loopback_only = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "cams:*",
                "Resource": "*",
                "Condition": {"IpAddress": {"acs:SourceIp": ["127.0.0.0/8"]}},
            }
        ],
    }
    return {
        "whatsapp": {"app_secret": APP_SECRET, "verify_token": "bench-verify-token"},
        "accounts": [
            {
                "id": ACCOUNT,
                "name": "bench",
                "chat_groups_allowlisted": True,
                "access_keys": [{"id": ROOT_KEY[0], "secret": ROOT_KEY[1], "status": "Active"}],
                "policies": [{"name": "bench-loopback", "document": loopback_only}],
                "ram_users": [
                    {
                        "name": "bench",
                        "access_keys": [{"id": USER_KEY[0], "secret": USER_KEY[1]}],
                        "policies": ["bench-loopback"],
                    }
                ],
                # The vendor's quota (50/s per account and action, opencams' default) would cap
                # every figure at 50: a huge budget keeps the token bucket in the path.
                "throttling": {"*": 1_000_000},
                "spaces": [
                    {
                        "id": SPACE,
                        "name": "Benchmark",
                        "business_numbers": [
                            {
                                "number": HOT_NUMBER,
                                "phone_number_id": "170000000000777",
                                "waba_id": "270000000000777",
                                "access_token": "bench-token-hot",
                            }
                        ],
                    }
                ],
            }
        ],
    }


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCAMS_")}
    env.update(
        OPENCAMS_DATABASE_URL=database_url,
        OPENCAMS_SECRET_KEY=SECRET_KEY,
        OPENCAMS_SANDBOX="true",
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> str:
    for attempt in range(3):
        result = subprocess.run(
            [str(OPENCAMS), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout
        # A database that is restarting (another suite's doing) gets two more chances.
        if "connection failed" not in result.stderr or attempt == 2:
            break
        time.sleep(5)
    raise BenchError(
        f"opencams {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )


def seed_command() -> list[str]:
    """`opencams dev seed` once the dev commands are registered, else the module itself."""
    probe = subprocess.run(
        [str(OPENCAMS), "dev", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0 and "seed" in probe.stdout:
        return [str(OPENCAMS), "dev", "seed"]
    return [sys.executable, "-m", "opencams.dev_cli", "seed"]


def seed(env: dict[str, str], *args: str) -> dict[str, Any]:
    argv = [*seed_command(), "--space", SPACE, "--json", *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    report["command"] = "opencams dev seed --space " + SPACE + " " + " ".join(args)
    return report


def fresh_database(backend: str, name: str, work: Path) -> str:
    if backend == "sqlite":
        path = work / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    database = f"opencams_bench_{name}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL at {PG_ADMIN_URL} is not usable: {exc}") from exc
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"


@dataclass
class Dataset:
    database_url: str
    seeds: list[dict[str, Any]]
    write_numbers: list[str]
    member_groups: list[str]


def build_dataset(backend: str, name: str, sizes: Sizes | None, work: Path) -> Dataset:
    """A migrated, provisioned and seeded database. `sizes` None: the small one (1,000 groups
    on the 1,000-group number only)."""
    url = fresh_database(backend, name, work)
    env = server_env(url)
    cli(env, "db", "upgrade")
    tenancy_file = work / "tenancy.yaml"
    tenancy_file.write_text(yaml.safe_dump(tenancy(), sort_keys=False))
    cli(env, "apply", str(tenancy_file))
    seeds: list[dict[str, Any]] = []
    if sizes is None:
        seeds.append(
            seed(env, "--hot-number", MID_NUMBER, "--hot-groups", "1000", "--groups", "1000")
        )
    else:
        # The hot number (provisioned) + the 1,000-group number + the rest: `numbers` in all.
        bulk_numbers = sizes.numbers - 2
        seeds.append(
            seed(
                env,
                "--numbers",
                str(bulk_numbers),
                "--groups",
                str(sizes.groups - sizes.mid_groups),
                "--hot-number",
                HOT_NUMBER,
                "--hot-groups",
                str(sizes.hot_groups),
                "--participants-per-group",
                str(sizes.participants),
                "--seed",
                "20260601",
            )
        )
        seeds.append(
            seed(
                env,
                "--hot-number",
                MID_NUMBER,
                "--hot-groups",
                str(sizes.mid_groups),
                "--groups",
                str(sizes.mid_groups),
                "--participants-per-group",
                str(sizes.participants),
                "--seed",
                "20260602",
            )
        )
    for report in seeds:
        log(
            f"{name}: seeded {report['groups']:,} groups, {report['participants']:,} "
            f"participants in {report['seconds']} s ({report['rows_per_second']:,} rows/s)"
        )
    write_numbers, member_groups = _picks(url)
    return Dataset(url, seeds, write_numbers, member_groups)


def _picks(url: str) -> tuple[list[str], list[str]]:
    """Numbers AddChatGroup may write to (not the hot or 1,000-group ones) and ACTIVE groups of
    the hot number that have members (for ListChatGroupParticipants)."""
    from sqlalchemy import text

    from opencams.store.db import make_sync_engine

    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            numbers = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT number FROM business_numbers WHERE space_id = :s "
                        "AND number NOT IN (:hot, :mid) ORDER BY number"
                    ),
                    {"s": SPACE, "hot": HOT_NUMBER, "mid": MID_NUMBER},
                )
            ]
            groups = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT g.id FROM chat_groups g JOIN business_numbers n "
                        "ON n.id = g.number_id WHERE n.number = :hot AND n.space_id = :s "
                        "AND g.status = 'ACTIVE' AND g.deleted_at IS NULL "
                        "AND g.participant_count > 0 ORDER BY g.created_at DESC LIMIT 500"
                    ),
                    {"hot": HOT_NUMBER, "s": SPACE},
                )
            ]
    finally:
        engine.dispose()
    return numbers, groups


# --- servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    port: int
    procs: list[subprocess.Popen[bytes]]
    log_path: Path
    pids_measured: list[int] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def pids(self) -> list[int]:
        return self.pids_measured or [p.pid for p in self.procs]

    def log_problems(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [
            line
            for line in text.splitlines()
            if "Traceback" in line or " ERROR" in line or line.startswith("ERROR")
        ]


def _wait_healthy(url: str, procs: list[subprocess.Popen[bytes]], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise BenchError(f"server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def serve(
    kind: str,
    env: dict[str, str],
    work: Path,
    label: str,
    *,
    workers: int = 1,
    granian: Path | None = None,
) -> Iterator[Server]:
    """kind: uvicorn (`opencams serve`) or granian (the same app through granian)."""
    port = free_port()
    log_path = work / f"server-{label}.log"
    server_env_ = dict(env)
    sandbox: subprocess.Popen[bytes] | None = None
    extra: list[str] = []
    if workers > 1:
        # The built-in simulator keeps state per process: workers need a Meta of their own, as
        # in production (docs/deployment): a standalone simulator.
        sandbox_port = free_port()
        with (work / f"sandbox-{label}.log").open("wb") as sandbox_log:
            sandbox = subprocess.Popen(
                [
                    str(OPENCAMS),
                    "sandbox",
                    "--port",
                    str(sandbox_port),
                    "--callback",
                    f"http://127.0.0.1:{port}/webhooks/whatsapp",
                    "--app-secret",
                    APP_SECRET,
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=sandbox_log,
                stderr=subprocess.STDOUT,
            )
        server_env_.update(
            OPENCAMS_SANDBOX="false",
            OPENCAMS_GRAPH_BASE_URL=f"http://127.0.0.1:{sandbox_port}/graph/v23.0",
        )
        extra = ["--workers", str(workers)]
    if kind == "granian":
        assert granian is not None
        server_env_["PYTHONPATH"] = str(granian)
        server_env_["OPENCAMS_SERVE_SELF_URL"] = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-access-log",
            "--factory",
            "opencams.app:factory",
        ]
    else:
        argv = [
            str(OPENCAMS),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra,
        ]
    with log_path.open("wb") as server_log:
        # Its own session: on a stuck shutdown the whole group (workers included) is killed.
        proc = subprocess.Popen(
            argv,
            env=server_env_,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            cwd=work,
            start_new_session=True,
        )
    procs = [proc]
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", procs, log_path)
        yield Server(label, port, procs, log_path)
    finally:
        for running in [proc, *([sandbox] if sandbox else [])]:
            if running.poll() is None:
                running.send_signal(signal.SIGTERM)
        for running in [proc, *([sandbox] if sandbox else [])]:
            try:
                running.wait(timeout=20)
            except subprocess.TimeoutExpired:
                if running is proc:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                running.kill()
                running.wait()


def serve_supports_workers() -> bool:
    result = subprocess.run(
        [str(OPENCAMS), "serve", "--help"], capture_output=True, text=True, check=False
    )
    return "--workers" in result.stdout


# --- load --------------------------------------------------------------------------------------


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


def write_requests(
    scenario: Scenario, host: str, count: int, files: int, prefix: Path, offset: int
) -> None:
    """`count` signed requests, dealt round-robin into `files` files (one per wrk thread)."""
    action, params = scenario.action, scenario.params
    assert action is not None
    assert params is not None
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(Path(f"{prefix}.{i}.txt").open("w")) for i in range(files)]
        date = utc_now()
        for i in range(count):
            if i % 5000 == 0:
                date = utc_now()
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
        server.host, scenario.action, scenario.params(10**9), scenario.creds, utc_now()
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
) -> Result:
    """Warm-up run, then the measured run; for several servers, one wrk each, concurrently,
    the connections split between them."""
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
    ) -> tuple[list[dict[str, Any]], tuple[float, float, float, float, float], int]:
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
        outcomes, (user, system, busy, client, db_cpu), signed = one_run(load.duration, guess)
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
    others = busy - cpu - client - db_cpu
    result.other_cores = max(0.0, others) / seconds if seconds else 0.0
    result.cpu_busy_cores = cpu / seconds if seconds else 0.0
    result.rss_mb = rss_mb([pid for s in servers for pid in s.pids()])
    log(
        f"{scenario.key:<16} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  cpu {result.cpu_ms_per_request:.3f} ms/req  "
        f"rss {result.rss_mb:.0f} MB  errors {result.errors}  "
        f"wrk {result.client_cores:.2f} other {result.other_cores:.2f} cores"
    )
    return result


# --- profile -----------------------------------------------------------------------------------


def profile_list(
    server: Server, scenario: Scenario, load: Load, work: Path, rps: float, seconds: int
) -> dict[str, Any]:
    """py-spy (installed for the benchmark only) samples the server during a ListChatGroup
    load; the folded stacks are summarised by leaf frame, inclusive frame and package."""
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(py_spy).exists():
        target = pip_target("py-spy", PY_SPY_VERSION)
        if target is None:
            return {"error": "py-spy could not be installed"}
        py_spy = str(target / "bin" / "py-spy")
    raw = work / "profile-list.txt"
    prefix = work / "req-profile"
    count = int(rps * (seconds + 2) * 1.6) + 2000
    write_requests(scenario, server.host, count, load.threads, prefix, 0)
    wrk = run_wrk(
        load,
        f"{server.url}/",
        seconds + 2,
        connections=load.connections,
        threads=load.threads,
        prefix=prefix,
    )
    time.sleep(1)
    spy = subprocess.run(
        [
            py_spy,
            "record",
            "--pid",
            str(server.procs[0].pid),
            "--duration",
            str(seconds),
            "--rate",
            str(PROFILE_RATE),
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    wrk_result(wrk, seconds + 120)
    for i in range(load.threads):
        Path(f"{prefix}.{i}.txt").unlink(missing_ok=True)
    if spy.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed: {spy.stderr.strip()[-400:]}"}
    summary = summarise_profile(raw.read_text())
    summary["tool"] = tool_version(py_spy, "--version")
    summary["gil_busy"] = round(summary["samples"] / (seconds * PROFILE_RATE), 2)
    return summary


PROFILE_RATE = 200


def store_costs(url: str) -> list[list[Any]]:
    """The store calls ListChatGroup makes, one at a time in this process (no HTTP, no
    concurrency): wall and CPU milliseconds each, and a bare `SELECT 1` transaction for the
    cost of the round trip itself. Internal APIs: a call that no longer fits is reported."""
    import asyncio

    from sqlalchemy import text

    from opencams.store import access_queries
    from opencams.store.db import make_async_engine
    from opencams.store.listing import ListMemory
    from opencams.store.records import GroupFilter
    from opencams.store.repo import Store

    async def main() -> list[list[Any]]:
        store = Store(make_async_engine(url))
        rows: list[list[Any]] = []
        try:
            number = await store.number_in_space(ACCOUNT, SPACE, HOT_NUMBER)
            number_id = number.id if number is not None else 0

            subject = GroupFilter(number_id=number_id, subject_contains=SUBJECT_FILTER)

            async def deep_cold() -> None:
                store._lists = ListMemory()  # nothing remembered: the first request's cost
                await store.list_groups(GroupFilter(number_id=number_id), 9980, 20)

            async def subject_cold() -> None:
                store._lists = ListMemory()
                await store.list_groups(subject, 0, 20)

            async def select_one() -> None:
                async with store.tx() as conn:
                    await conn.execute(text("SELECT 1"))

            calls: list[tuple[str, Callable[[], Any]]] = [
                ("transaction with SELECT 1", select_one),
                ("Store.access_key", lambda: store.access_key(USER_KEY[0])),
                (
                    "Store.use_nonce",
                    lambda: store.use_nonce(USER_KEY[0], uuid.uuid4().hex, 900_000),
                ),
                (
                    "access_queries.attached_policies",
                    lambda: access_queries.attached_policies(store, ACCOUNT, "user", "bench"),
                ),
                (
                    "Store.number_in_space",
                    lambda: store.number_in_space(ACCOUNT, SPACE, HOT_NUMBER),
                ),
                (
                    "Store.list_groups (count + page of 20)",
                    lambda: store.list_groups(GroupFilter(number_id=number_id), 0, 20),
                ),
                (
                    "Store.list_groups Page.Index 500, remembered anchor",
                    lambda: store.list_groups(GroupFilter(number_id=number_id), 9980, 20),
                ),
                ("Store.list_groups Page.Index 500, first time", deep_cold),
                (
                    f'Store.list_groups Subject "{SUBJECT_FILTER}", remembered Total',
                    lambda: store.list_groups(subject, 0, 20),
                ),
                (f'Store.list_groups Subject "{SUBJECT_FILTER}", first time', subject_cold),
            ]
            for name, call in calls:
                try:
                    await call()
                    n = 200
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(n):
                        await call()
                    wall = (time.perf_counter() - wall) * 1000 / n
                    cpu = (time.process_time() - cpu) * 1000 / n
                    rows.append([name, round(wall, 3), round(cpu, 3)])
                except Exception as exc:
                    rows.append([name, None, f"n/a: {type(exc).__name__}: {exc}"[:120]])
        finally:
            await store.dispose()
        return rows

    return asyncio.run(main())


def query_plans(url: str) -> list[dict[str, Any]]:
    """The SQL that Store.list_groups sends (captured on its way to the driver, so it is
    whatever the code under test sends), each statement's plan, and its execution time in the
    database: page 1, Page.Index 500 (the first time, then again: from the remembered anchor)
    and the Subject filter (the first time, then with its remembered Total) on the hot number."""
    import asyncio

    from opencams.store.db import make_async_engine, make_sync_engine
    from opencams.store.records import GroupFilter
    from opencams.store.repo import Store

    captured: list[tuple[str, str, Any]] = []
    current = {"label": ""}

    async def main() -> None:
        store = Store(make_async_engine(url))
        direct = store._direct
        assert direct is not None
        original = store.read

        async def capturing_read(work: Any) -> Any:
            async def wrapped(execute: Any) -> Any:
                async def execute_and_capture(statement: Any, params: Any) -> Any:
                    sql, names, literals = direct._compiled.get(statement)  # type: ignore[attr-defined]
                    merged = {**literals, **params}
                    values = tuple(merged[n] for n in names) if names else merged
                    captured.append((current["label"], sql, values))
                    return await execute(statement, params)

                return await work(execute_and_capture)

            return await original(wrapped)

        store.read = capturing_read  # type: ignore[method-assign]
        try:
            number = await store.number_in_space(ACCOUNT, SPACE, HOT_NUMBER)
            assert number is not None
            subject = GroupFilter(number_id=number.id, subject_contains=SUBJECT_FILTER)
            for what, flt, offset in (
                ("page 1", GroupFilter(number_id=number.id), 0),
                ("Page.Index 500, first time", GroupFilter(number_id=number.id), 9980),
                ("Page.Index 500, again", GroupFilter(number_id=number.id), 9980),
                (f"Subject {SUBJECT_FILTER!r}, first time", subject, 0),
                (f"Subject {SUBJECT_FILTER!r}, again", subject, 0),
            ):
                current["label"] = what
                await store.list_groups(flt, offset, 20)
        finally:
            await store.dispose()

    try:
        captured.clear()
        asyncio.run(main())
    except Exception as exc:
        return [{"label": "error", "sql": f"{type(exc).__name__}: {exc}", "plan": [], "ms": None}]
    engine = make_sync_engine(url)
    found: list[dict[str, Any]] = []
    try:
        with engine.connect() as conn:
            for what, statement, parameters in captured:
                if not what or not statement.lstrip().upper().startswith("SELECT"):
                    continue
                postgres = engine.dialect.name == "postgresql"
                prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
                rows = conn.exec_driver_sql(prefix + statement, parameters).all()
                plan = [str(row[0]) if postgres else str(row[-1]) for row in rows]
                ms: float | None = None
                if postgres:
                    for line in plan:
                        if line.startswith("Execution Time:"):
                            ms = float(line.split(":")[1].split()[0])
                else:
                    began = time.perf_counter()
                    for _ in range(20):
                        conn.exec_driver_sql(statement, parameters).all()
                    ms = (time.perf_counter() - began) * 1000 / 20
                found.append({"label": what, "sql": statement, "plan": plan, "ms": ms})
            conn.rollback()
    finally:
        engine.dispose()
    return found


CATEGORIES = (
    ("sqlite3 / aiosqlite (the database)", ("aiosqlite", "sqlite3")),
    ("psycopg (the database)", ("psycopg",)),
    ("SQLAlchemy Core (query building, results)", ("sqlalchemy",)),
    ("Starlette (routing, requests, responses)", ("starlette",)),
    ("uvicorn + httptools (HTTP)", ("uvicorn", "httptools")),
    ("granian", ("granian",)),
    ("asyncio / uvloop (the event loop)", ("asyncio", "uvloop", "concurrent/futures")),
    ("opencams.rpc (parsing, signature, envelope)", ("opencams/rpc",)),
    ("opencams.access (authn, RAM policies, throttle, audit)", ("opencams/access",)),
    ("opencams.groups (the action)", ("opencams/groups",)),
    ("opencams.store (queries)", ("opencams/store",)),
    ("cryptography (Fernet: stored secrets)", ("cryptography",)),
    ("json", ("json/",)),
    ("logging", ("logging/",)),
    ("threading / queue", ("threading.py", "queue.py")),
)


def _frame_file(frame: str) -> str:
    match = re.search(r"\(([^()]*):\d+\)$", frame)
    return match.group(1) if match else frame


def _short(frame: str) -> str:
    match = re.match(r"(.*) \(([^()]*):(\d+)\)$", frame)
    if not match:
        return frame
    function, path, line = match.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = path.split("/", 1)[1] if "/" in path else path
            break
    return f"{function} ({path}:{line})"


def _category(frame: str) -> str:
    file = _frame_file(frame)
    for name, needles in CATEGORIES:
        if any(needle in file for needle in needles):
            return name
    return "other"


def summarise_profile(folded: str) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    opencams_inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread ", "process ")):
            threads[frames[0]] += count
            frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        own[_short(leaf)] += count
        # The category of the innermost frame that is not the standard library's plumbing.
        categories[_category(leaf)] += count
        seen: set[str] = set()
        seen_opencams: set[str] = set()
        for frame in frames:
            short = _short(frame)
            if short not in seen:
                seen.add(short)
                inclusive[short] += count
            if "opencams/" in _frame_file(frame) and not _frame_file(frame).endswith("cli.py"):
                function = frame.split(" (", 1)[0]
                module = _frame_file(frame).split("opencams/", 1)[1]
                name = f"{module}:{function}"
                if name not in seen_opencams:
                    seen_opencams.add(name)
                    opencams_inclusive[name] += count

    def share(counter: Counter[str], n: int) -> list[list[Any]]:
        return [[name, round(100 * c / total, 1)] for name, c in counter.most_common(n)]

    return {
        "samples": total,
        "self": share(own, 15),
        "inclusive": share(inclusive, 25),
        "opencams": share(opencams_inclusive, 20),
        "categories": share(categories, 20),
    }


# --- the report --------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"
    versions: dict[str, str] = {}
    for module in ("uvicorn", "uvloop", "httptools", "starlette", "sqlalchemy", "aiosqlite"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[module] = version(module)
    commit = "?"
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": tool_version("wrk", "--version").split(" Copyright")[0],
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "commit": commit,
    }


def _short_sql(sql: str) -> str:
    """One line; a long column list shown as …."""
    flat = " ".join(sql.split())
    head, sep, tail = flat.partition(" FROM ")
    if sep and len(head) > 60 and head.upper().startswith("SELECT "):
        flat = f"SELECT … FROM {tail}"
    return flat


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table_head(db_column: bool) -> str:
    names = ["scenario", "server", "req/s", "p50 ms", "p99 ms", "CPU ms/req"]
    names += ["DB CPU ms/req"] if db_column else []
    names += ["× floor", "RSS MB", "requests", "errors"]
    align = ["---", "---"] + ["---:"] * (len(names) - 2)
    return f"| {' | '.join(names)} |\n|{'|'.join(align)}|"


def table_row(r: Result, db_column: bool) -> str:
    cells = [f"`{r.key}` {r.title}", r.server]
    if r.skipped:
        cells += [f"skipped: {r.skipped}"] + [""] * (7 if db_column else 6)
        cells[-2] = "0"
        return f"| {' | '.join(cells)} |"
    ratio = "–" if r.ratio_to_floor is None else f"{r.ratio_to_floor:.3f}"
    cells += [f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_ms_per_request:.3f}"]
    cells += [f"{r.db_ms_per_request:.3f}"] if db_column else []
    cells += [ratio, f"{r.rss_mb:.0f}", f"{r.requests:,}", str(r.errors)]
    return f"| {' | '.join(cells)} |"


@dataclass
class Target:
    name: str
    wanted: str
    measured: str
    holds: bool | None  # None: not measured


def targets(results: dict[str, Result]) -> list[Target]:
    def get(key: str) -> Result | None:
        r = results.get(key)
        return r if r is not None and not r.skipped and r.requests else None

    found: list[Target] = []
    floor, p1 = get("floor"), get("list-p1")
    if p1 is not None:
        found.append(
            Target("ListChatGroup throughput", "≥ 3,000 req/s", f"{p1.rps:,.0f}", p1.rps >= 3000)
        )
        if floor is not None:
            ratio = p1.rps / floor.rps
            found.append(
                Target(
                    "ListChatGroup vs the floor", "≥ 0.25 × floor", f"{ratio:.2f} ×", ratio >= 0.25
                )
            )
        found.append(Target("ListChatGroup p99", "≤ 25 ms", f"{p1.p99_ms:.1f} ms", p1.p99_ms <= 25))
        found.append(
            Target(
                "Server RSS after ListChatGroup",
                "≤ 150 MB",
                f"{p1.rss_mb:.0f} MB",
                p1.rss_mb <= 150,
            )
        )
    for key, name, limit in (
        ("list-p500", "Deep page (Index 500) vs page 1", 1.5),
        ("list-subject", "Subject filter vs unfiltered", 2.0),
    ):
        other = get(key)
        if p1 is not None and other is not None:
            slower = p1.rps / other.rps
            found.append(
                Target(name, f"≤ {limit} × slower", f"{slower:.2f} × slower", slower <= limit)
            )
    small, big = get("list-1k-in-1k"), get("list-1k-in-1m")
    if small is not None and big is not None:
        slower = small.rps / big.rps
        found.append(
            Target(
                "1,000,000 groups vs 1,000 groups in the database",
                "≤ 1.3 × slower",
                f"{slower:.2f} × slower",
                slower <= 1.3,
            )
        )
    add = get("add")
    if add is not None:
        found.append(
            Target("AddChatGroup throughput", "≥ 500 req/s", f"{add.rps:,.0f}", add.rps >= 500)
        )
    two = get("list-p1-2w")
    if p1 is not None and two is not None:
        ratio = two.rps / p1.rps
        found.append(Target("Two workers vs one", "≥ 1.6 ×", f"{ratio:.2f} ×", ratio >= 1.6))
    return found


def render(
    args: argparse.Namespace,
    info: dict[str, str],
    runs: list[dict[str, Any]],
    started: float,
) -> str:
    lines: list[str] = []
    add = lines.append
    mode = "quick (smoke: tiny data, 2-second runs; figures mean nothing)" if args.quick else "full"
    add("# opencams benchmark results\n")
    add(
        f"Written by `bench/run.py` ({mode}) on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"commit `{info['commit']}`, in {time.time() - started:.0f} s. "
        "See [README.md](README.md) for what each scenario means and how requests are signed.\n"
    )
    add("## Machine\n")
    add(f"- {info['cores']} cores: {info['cpu']}; {info['memory']} memory; Linux {info['kernel']}")
    add(f"- Python {info['python']}; SQLite {info['sqlite']}; {info['wrk']}")
    add(f"- {info['packages']}")
    add(
        "- wrk runs on the same machine as the server: the two share the 2 cores, so every "
        "figure is what one server gets while the load generator takes its share.\n"
    )
    add("## Summary\n")
    for run in runs:
        figures: dict[str, Result] = run["results"]
        p1, floor = figures.get("list-p1"), figures.get("floor")
        found = targets(figures)
        held = [t.name for t in found if t.holds]
        missed = [t.name for t in found if not t.holds]
        if p1 is not None and floor is not None and not p1.skipped and floor.rps:
            add(
                f"- **{run['database']}**: ListChatGroup page 1 at {p1.rps:,.0f} req/s, "
                f"{p1.rps / floor.rps:.3f} × the floor ({floor.rps:,.0f} req/s), p99 "
                f"{p1.p99_ms:,.0f} ms, {p1.cpu_ms_per_request:.1f} ms of server CPU per request. "
                f"Targets that hold: {', '.join(held) or 'none'}; missed: "
                f"{', '.join(missed) or 'none'}."
            )
        busy = [r for r in figures.values() if not r.skipped and r.other_cores > 0.25]
        if busy:
            add(
                f"  Disturbed: other processes on the machine used up to "
                f"{max(r.other_cores for r in busy):.2f} cores during {len(busy)} of the "
                f"{run['database']} runs (see its notes): those figures are low."
            )
    add(
        "- Figures vary by about ±10–15 % between runs on this machine: a ratio close to a "
        "target's limit is within that noise.\n"
    )
    add("## Commands\n")
    add("```sh")
    given = " ".join(args.argv)
    make = f'make bench BENCH_ARGS="{given}"' if given else "make bench"
    add(f"{make}   # = .venv/bin/python bench/run.py {given}".rstrip())
    add("opencams db upgrade && opencams apply bench/out/<db>/tenancy.yaml")
    for run in runs:
        for report in run["seeds"]:
            add(report["command"])
        break
    add(
        "opencams serve --host 127.0.0.1 --port PORT --log-level warning"
        "   # uvicorn, uvloop, httptools"
    )
    add(
        WRK_COMMAND.format(
            threads=args.threads, connections=args.connections, duration=args.duration
        )
        + "   # after a "
        + f"{args.warmup}-second warm-up run"
    )
    add("```\n")
    for run in runs:
        database = run["database"]
        results: dict[str, Result] = run["results"]
        add(f"## Results: {database}\n")
        for report in run["seeds"]:
            add(
                f"- seeded: {report['groups']:,} groups ({report['numbers_created']} new numbers), "
                f"{report['participants']:,} participants, {report['operations']:,} pending "
                f"operations in {report['seconds']} s: {report['rows_per_second']:,} rows/s "
                f"({report['groups_per_second']:,} groups/s) — `{report['command']}`"
            )
        add(f"- settings: {run['settings']}\n")
        db_column = database == "postgresql"
        add(table_head(db_column))
        for result in results.values():
            add(table_row(result, db_column))
        add("")
        add(
            "req/s: completed requests per second of the measured run; p50/p99: wrk's latency "
            "percentiles; CPU ms/req: the server processes' CPU time (user+system, "
            "/proc/PID/stat) over the run divided by the requests"
            + (
                "; DB CPU ms/req: the same for the PostgreSQL backends serving the benchmark"
                if db_column
                else " (SQLite runs inside the server, so this includes the database)"
            )
            + "; × floor: req/s over `floor` of the same server kind in the same run; RSS: "
            "VmRSS of the server processes after the run; errors: non-2xx answers + socket "
            "errors + requests past the signed ones.\n"
        )
        if db_column:
            run.setdefault("notes", []).append(
                "PostgreSQL runs on the same 2 cores: its CPU per request (DB CPU column) and "
                "the server's add up, so a second server worker cannot double what the machine "
                "does once the two together use both cores."
            )
        disturbed = [r for r in results.values() if not r.skipped and r.other_cores > 0.25]
        if disturbed:
            run.setdefault("notes", []).append(
                "other processes used CPU during "
                + ", ".join(f"`{r.key}` ({r.other_cores:.2f} cores)" for r in disturbed)
                + ": those figures are lower than the machine can do"
            )
        if run.get("notes"):
            for note in run["notes"]:
                add(f"- {note}")
            add("")
        add(f"### Targets ({database})\n")
        add("| target | wanted | measured | holds |\n|---|---|---|---|")
        for target in targets(results):
            verdict = "yes" if target.holds else "**no**"
            add(f"| {target.name} | {target.wanted} | {target.measured} | {verdict} |")
        add("")
        profile = run.get("profile")
        if profile:
            add(f"### Where the time goes: ListChatGroup page 1 ({database})\n")
            if "error" in profile:
                add(f"Not profiled: {profile['error']}\n")
            else:
                add(
                    f"{profile['tool']} (`record --gil --nonblocking --rate {PROFILE_RATE}`) on "
                    "the server process while wrk replayed ListChatGroup page 1 at "
                    f"{args.connections} connections: {profile['samples']:,} samples of the "
                    "thread holding the GIL, i.e. where the Python CPU time goes ("
                    + (
                        "SQLite's own C code runs without the GIL and is not in these samples; "
                        "it is small: see the queries below"
                        if database == "sqlite"
                        else "PostgreSQL works in its own processes: the DB CPU column above"
                    )
                    + "). The GIL was held in "
                    f"{profile['gil_busy']:.0%} of the sampling ticks. Shares are of all "
                    "samples.\n"
                )
                add("By package (innermost frame):\n")
                add("| package | share |\n|---|---:|")
                for name, pct in profile["categories"]:
                    add(f"| {name} | {pct}% |")
                add("\nopencams functions, inclusive (time in them and what they call):\n")
                add("| function | share |\n|---|---:|")
                for name, pct in profile["opencams"]:
                    add(f"| `{name}` | {pct}% |")
                add("\nTop frames by own time:\n")
                add("| frame | share |\n|---|---:|")
                for name, pct in profile["self"]:
                    add(f"| `{name}` | {pct}% |")
                add("")
            costs = profile.get("store_costs")
            if costs:
                add(
                    "The store calls behind one ListChatGroup, each timed alone in one process "
                    "(200 calls, no HTTP, no concurrency; CPU includes the driver's thread):\n"
                )
                add("| call | wall ms | CPU ms |\n|---|---:|---:|")
                for name, wall, cpu in costs:
                    shown = cpu if isinstance(cpu, str) else _fmt(cpu, 3)
                    add(f"| `{name}` | {_fmt(wall, 3)} | {shown} |")
                add("")
            plans = profile.get("plans")
            if plans:
                add(
                    "The SQL of `Store.list_groups` (captured from the engine) with its plan "
                    "and its time in the database alone (PostgreSQL: `EXPLAIN ANALYZE`; SQLite: "
                    "the mean of 20 executions through the driver):\n"
                )
                for plan in plans:
                    ms = "–" if plan["ms"] is None else f"{plan['ms']:.3f} ms"
                    add(f"- {plan['label']}, {ms}: `{_short_sql(plan['sql'])}`")
                    if plan["plan"]:
                        add("")
                        add("  ```")
                        for line in plan["plan"]:
                            add(f"  {line}")
                        add("  ```")
                add("")
    asgi = [run for run in runs if "granian-floor" in run["results"]]
    if asgi:
        add("## ASGI server: uvicorn or granian\n")
        for run in asgi:
            r = run["results"]
            pairs = [("floor", "granian-floor"), ("list-p1", "granian-list-p1")]
            add(f"{run['database']}:\n")
            add("| scenario | uvicorn req/s | granian req/s | uvicorn p99 ms | granian p99 ms |")
            add("|---|---:|---:|---:|---:|")
            for a, b in pairs:
                ra, rb = r.get(a), r.get(b)
                if ra is None or rb is None or rb.skipped:
                    continue
                add(f"| {a} | {ra.rps:,.0f} | {rb.rps:,.0f} | {ra.p99_ms:.2f} | {rb.p99_ms:.2f} |")
            add("")
        add(run_choice(asgi))
    return "\n".join(lines) + "\n"


def run_choice(asgi: list[dict[str, Any]]) -> str:
    verdicts = []
    for run in asgi:
        r = run["results"]
        u, g = r.get("list-p1"), r.get("granian-list-p1")
        if u is None or g is None or g.skipped or not g.rps:
            continue
        verdicts.append(g.rps / u.rps)
    if not verdicts:
        return "granian could not be measured in this run; opencams stays on uvicorn.\n"
    gain = min(verdicts)
    if gain >= 1.15:
        return (
            f"granian serves ListChatGroup {gain:.2f} × as fast as uvicorn here: worth "
            "switching `opencams serve` to it (its Rust HTTP layer does what httptools does in "
            "Python callbacks).\n"
        )
    return (
        f"**Choice: uvicorn** (with uvloop and httptools, what `uvicorn[standard]` installs). "
        f"On ListChatGroup granian reaches {gain:.2f} × uvicorn's throughput: the time is in "
        "the application, not in the HTTP server, so a second server dependency would not pay "
        "for itself. The floor shows the servers' own difference.\n"
    )


# --- main --------------------------------------------------------------------------------------


def scenarios(dataset: Dataset) -> dict[str, Scenario]:
    writes = dataset.write_numbers or [MID_NUMBER]
    members = dataset.member_groups
    tag = uuid.uuid4().hex[:6]

    def add_params(i: int) -> dict[str, str]:
        return {
            "CustSpaceId": SPACE,
            "BusinessNumber": writes[i % len(writes)],
            "Subject": f"Bench {tag} {i}",
            "Description": "Created by bench/run.py",
        }

    def participants_params(i: int) -> dict[str, str]:
        return {
            "CustSpaceId": SPACE,
            "BusinessNumber": HOT_NUMBER,
            "GroupId": members[i % len(members)],
        }

    found = [
        Scenario("floor", "GET /healthz (the floor)", None),
        Scenario(
            "list-p1",
            "ListChatGroup Size 20, page 1, hot number (RAM user)",
            "ListChatGroup",
            list_params(HOT_NUMBER),
            expect=expect_list(9000, 20),
        ),
        Scenario(
            "list-p1-root",
            "the same, root AccessKey (no policy evaluation)",
            "ListChatGroup",
            list_params(HOT_NUMBER),
            creds=Credentials(*ROOT_KEY),
            expect=expect_list(9000, 20),
        ),
        Scenario(
            "list-p500",
            "ListChatGroup Page.Index 500 (deep page)",
            "ListChatGroup",
            list_params(HOT_NUMBER, 500),
            expect=expect_list(9000, 20),
        ),
        Scenario(
            "list-subject",
            f'ListChatGroup Subject "{SUBJECT_FILTER}"',
            "ListChatGroup",
            list_params(HOT_NUMBER, Subject=SUBJECT_FILTER),
            expect=expect_list(100, 20),
        ),
        Scenario(
            "list-status",
            "ListChatGroup GroupStatus ACTIVE",
            "ListChatGroup",
            list_params(HOT_NUMBER, GroupStatus="ACTIVE"),
            expect=expect_list(8000, 20),
        ),
        Scenario(
            "list-1k-in-1m",
            "ListChatGroup page 1, a 1,000-group number, big database",
            "ListChatGroup",
            list_params(MID_NUMBER),
            expect=expect_list(900, 20),
        ),
        Scenario(
            "participants",
            "ListChatGroupParticipants (hot number's groups)",
            "ListChatGroupParticipants",
            participants_params,
            expect=expect_ok,
        ),
        Scenario(
            "add",
            "AddChatGroup (simulator over HTTP)",
            "AddChatGroup",
            add_params,
            expect=expect_ok,
        ),
    ]
    return {s.key: s for s in found}


def small_scenario() -> Scenario:
    return Scenario(
        "list-1k-in-1k",
        "ListChatGroup page 1, a 1,000-group number, database of 1,000 groups",
        "ListChatGroup",
        list_params(MID_NUMBER),
        expect=expect_list(900, 20),
    )


def bench_database(
    backend: str, args: argparse.Namespace, load: Load, granian: Path | None
) -> dict[str, Any]:
    work = args.work / backend
    work.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if args.quick else FULL
    log(f"{backend}: building the big database ({sizes.groups:,} groups)")
    big = build_dataset(backend, "big", sizes, work)
    log(f"{backend}: building the small database (1,000 groups)")
    small = build_dataset(backend, "small", None, work)
    results: dict[str, Result] = {}
    notes: list[str] = []
    env = server_env(big.database_url)
    settings = (
        "`OPENCAMS_SANDBOX=true` (the simulator mounted in the server, reached over HTTP), "
        "`OPENCAMS_SANDBOX_WEBHOOK_DELAY` 1 s (default), throttling 1,000,000/s per action "
        "for the bench account (`throttling:` in its provisioning; the default 50/s is the "
        "vendor's quota and would cap every figure), replay protection on (every request has "
        "its own nonce), the RAM user's policy evaluated on every call, the audit log on"
    )
    all_scenarios = scenarios(big)
    profile: dict[str, Any] | None = None
    with serve("uvicorn", env, work, "uvicorn") as server:
        floor = measure([server], all_scenarios["floor"], load, work, backend, 20000)
        results["floor"] = floor
        for key in (
            "list-p1",
            "list-p1-root",
            "list-p500",
            "list-subject",
            "list-status",
            "list-1k-in-1m",
            "participants",
        ):
            results[key] = measure([server], all_scenarios[key], load, work, backend, floor.rps)
        if args.profile:
            # Before AddChatGroup: its webhooks would still be arriving during the profile.
            log("profiling ListChatGroup with py-spy")
            profile = profile_list(
                server,
                all_scenarios["list-p1"],
                load,
                work,
                results["list-p1"].rps,
                args.profile_seconds,
            )
        results["add"] = measure([server], all_scenarios["add"], load, work, backend, floor.rps)
        problems = server.log_problems()
        if problems:
            notes.append(f"server log: {len(problems)} error lines, first: `{problems[0][:200]}`")
    if backend == "sqlite":
        # What durability costs (docs/deployment.md): the write path and the read path whose
        # nonces are group-committed, with synchronous=NORMAL beside the default FULL above.
        normal_env = server_env(big.database_url, OPENCAMS_SQLITE_SYNCHRONOUS="normal")
        with serve("uvicorn", normal_env, work, "uvicorn-normal") as server:
            for key in ("list-p1", "add"):
                lax = measure([server], all_scenarios[key], load, work, backend, floor.rps)
                lax.key, lax.title = f"{key}-normal", f"{lax.title}, synchronous=NORMAL"
                results[lax.key] = lax
        notes.append(
            "`list-p1-normal`, `add-normal`: the same as `list-p1` and `add` with "
            "`OPENCAMS_SQLITE_SYNCHRONOUS=normal`; the others run with the default `full` "
            "(every commit synced before it is answered)."
        )
    if profile is not None and "error" not in profile:
        profile["store_costs"] = store_costs(big.database_url)
        profile["plans"] = query_plans(big.database_url)
    # 1,000 groups in the whole database: the same query on a number of the same size.
    with serve("uvicorn", server_env(small.database_url), work, "uvicorn-small") as server:
        results["list-1k-in-1k"] = measure(
            [server], small_scenario(), load, work, backend, floor.rps
        )
    # Two worker processes.
    if serve_supports_workers():
        with serve("uvicorn", env, work, "uvicorn-2w", workers=2) as server:
            two = measure([server], all_scenarios["list-p1"], load, work, backend, 2 * floor.rps)
        two.note = "opencams serve --workers 2 (uvicorn's process manager; a standalone simulator)"
    else:
        with (
            serve("uvicorn", env, work, "uvicorn-a") as first,
            serve("uvicorn", env, work, "uvicorn-b") as second,
        ):
            two = measure(
                [first, second], all_scenarios["list-p1"], load, work, backend, 2 * floor.rps
            )
        two.note = "two opencams serve processes on two ports, one wrk each, half the connections"
    two.key, two.title = "list-p1-2w", "ListChatGroup page 1, 2 worker processes"
    results["list-p1-2w"] = two
    notes.append(f"`list-p1-2w`: {two.note}; compare with `list-p1` (one process).")
    # The same app under granian.
    if granian is not None:
        genv = server_env(big.database_url)
        with serve("granian", genv, work, "granian", granian=granian) as server:
            gfloor = measure([server], all_scenarios["floor"], load, work, backend, 20000)
            gfloor.key, gfloor.title = "granian-floor", "GET /healthz under granian"
            glist = measure([server], all_scenarios["list-p1"], load, work, backend, gfloor.rps)
            glist.key, glist.title = "granian-list-p1", "ListChatGroup page 1 under granian"
            glist.ratio_to_floor = glist.rps / gfloor.rps if gfloor.rps else None
            gfloor.ratio_to_floor = 1.0
        results["granian-floor"], results["granian-list-p1"] = gfloor, glist
        notes.append(
            f"granian {GRANIAN_VERSION} (`--interface asgi --loop uvloop --workers 1`, the "
            "production factory `opencams.app:factory`), installed under bench/out/tools only."
        )
    else:
        for key, title in (
            ("granian-floor", "GET /healthz under granian"),
            ("granian-list-p1", "ListChatGroup page 1 under granian"),
        ):
            results[key] = Result(key, title, backend, "granian", skipped="granian not installable")
    for key, result in results.items():
        if not key.startswith("granian") and floor.rps and not result.skipped:
            result.ratio_to_floor = result.rps / floor.rps
    return {
        "database": backend,
        "results": results,
        "seeds": big.seeds,
        "settings": settings,
        "notes": notes,
        "profile": profile,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny data, 2-second runs (smoke)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=None, help="seconds of warm-up per run")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql", "both"), default="sqlite", help="backend(s)"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="the report")
    parser.add_argument(
        "--json", type=Path, default=OUT / "results.json", help="the figures, machine-readable"
    )
    parser.add_argument(
        "--work", type=Path, default=OUT, help="databases, logs, signed requests (scratch)"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--granian", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="on a shared machine, wait up to this long in all for other processes to go idle",
    )
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.duration is None:
        args.duration = 2 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.profile is None:
        args.profile = not args.quick
    started = time.time()
    try:
        load = Load(
            args.duration,
            args.warmup,
            args.connections,
            args.threads,
            ensure_wrk(),
            quiet_budget=args.wait_quiet,
        )
        args.work.mkdir(parents=True, exist_ok=True)
        granian = pip_target("granian", GRANIAN_VERSION) if args.granian else None
        backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
        runs = [bench_database(backend, args, load, granian) for backend in backends]
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    info = machine()
    report = render(args, info, runs, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    summary = {
        "machine": info,
        "quick": args.quick,
        "runs": [
            {
                "database": run["database"],
                "results": [asdict(r) | {"errors": r.errors} for r in run["results"].values()],
                "targets": [asdict(t) for t in targets(run["results"])],
                "seeds": run["seeds"],
                "profile": run["profile"],
            }
            for run in runs
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    log(f"wrote {args.out} in {time.time() - started:.0f} s")
    failed = [r.key for run in runs for r in run["results"].values() if not r.skipped and r.errors]
    if failed:
        print(f"bench: scenarios with errors: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
