"""A live opencams server as a user runs it: `db upgrade`, `apply`, then `serve` subprocesses."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from opencams.store.database import INTERLEAVED

BIN = Path(sys.executable).parent / "opencams"
SECRET_KEY = "test-secret-key-0123456789abcdef-XYZ"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    url: str
    endpoint: str  # host:port, as the SDK wants it
    env: dict[str, str]
    tenancy: dict[str, Any]
    log_path: Path
    pid: int = 0

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, check=check)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def run_cli(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"opencams {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def base_env(database_url: str, work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCAMS_")}
    env.update(
        OPENCAMS_DATABASE_URL=database_url,
        OPENCAMS_SECRET_KEY=SECRET_KEY,
        OPENCAMS_SANDBOX_WEBHOOK_DELAY="0.05",
        OPENCAMS_GRAPH_BACKOFF_SECONDS="0.01",
        OPENCAMS_GRAPH_TIMEOUT_SECONDS="5",
    )
    env.update(extra)
    return env


@contextmanager
def live_server(
    database_url: str,
    work: Path,
    tenancy: dict[str, Any],
    tls: tuple[Path, Path, Path] | None = None,
    serve_args: tuple[str, ...] = (),
    **extra_env: str,
) -> Iterator[LiveServer]:
    """`tls`: (certificate chain, private key, CA bundle) to serve HTTPS."""
    work.mkdir(parents=True, exist_ok=True)
    env = base_env(database_url, work, **extra_env)
    tenancy_file = work / "tenancy.yaml"
    tenancy_file.write_text(yaml.safe_dump(tenancy))
    run_cli(env, "db", "upgrade")
    run_cli(env, "apply", str(tenancy_file))
    port = int(extra_env.pop("OPENCAMS_TEST_PORT", 0)) or free_port()
    log_path = work / f"server-{port}.log"
    tls_args = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                str(BIN),
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *tls_args,
                *serve_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    verify: Any = ssl.create_default_context(cafile=str(tls[2])) if tls else True
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield LiveServer(url, f"127.0.0.1:{port}", env, tenancy, log_path, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if os.environ.get("OPENCAMS_KEEP_TEST_LOGS"):
            shutil.copy(
                log_path, Path(os.environ["OPENCAMS_KEEP_TEST_LOGS"]) / f"server-{port}.log"
            )
        assert INTERLEAVED not in log_path.read_text(errors="replace"), (
            f"the server reported an interleaved transaction (see {log_path})"
        )


def control(server: LiveServer, name: str, body: dict[str, Any] | None = None) -> Any:
    """Call a test control of the server's built-in simulator."""
    response = httpx.post(f"{server.url}/_sandbox/control/{name}", json=body or {}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def sandbox_state(server: LiveServer) -> Any:
    response = httpx.get(f"{server.url}/_sandbox/control/state", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def query_db(server: LiveServer, sql: str, **params: Any) -> list[Any]:
    """Read the server's database directly (what a restart or an operator would see)."""
    from sqlalchemy import text

    from opencams.store.db import make_sync_engine

    engine = make_sync_engine(server.env["OPENCAMS_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()
