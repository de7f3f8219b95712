"""The server under test: `opencams serve` (uvicorn) or the same app under granian, started as a
subprocess the way production starts it, waited for until /healthz answers, stopped after."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import APP_SECRET, OPENCAMS, BenchError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    label: str
    port: int
    procs: list[subprocess.Popen[bytes]]
    log_path: Path
    pids_measured: list[int] = field(default_factory=list)
    meta_pid: int | None = None  # a standalone simulator serving as this server's Meta

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
            if "Traceback" in line
            or " ERROR" in line
            or line.startswith("ERROR")
            or '"level": "ERROR"'
            in line  # a JSON log line (OPENCAMS_LOG_FORMAT, docs/operations.md)
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
    standalone: bool = False,
) -> Iterator[Server]:
    """kind: uvicorn (`opencams serve`) or granian (the same app through granian).
    `standalone`: Meta is a standalone `opencams sandbox` process (always so for several
    workers), as production talks to Meta over the network, not to a simulator in its own
    process."""
    port = free_port()
    log_path = work / f"server-{label}.log"
    server_env_ = dict(env)
    sandbox: subprocess.Popen[bytes] | None = None
    extra: list[str] = []
    if workers > 1 or standalone:
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
        if workers > 1:
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
        yield Server(label, port, procs, log_path, meta_pid=sandbox.pid if sandbox else None)
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
