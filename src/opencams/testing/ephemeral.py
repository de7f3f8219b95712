"""`opencams serve --ephemeral`: a test server for test suites in other languages and CI.

The same server as the pytest plugin's (opencams.testing.server): a temporary database, the
default test tenancy (or `--tenancy FILE`), operations confirmed before their calls answer, the
`/_testing` controls. Once it answers, the credentials are printed on standard output as one JSON
line; it serves until SIGINT or SIGTERM, then removes its database.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from opencams.testing.server import CamsServer, reachable
from opencams.testing.tenancy import TenancyError


def serve_ephemeral(
    *,
    ephemeral: bool,
    host: str,
    port: int,
    log_level: str,
    tenancy: Path | None,
    tls: bool,
    workers: int,
) -> int:
    """Serve until interrupted; returns the exit status."""
    problems = []
    if not ephemeral:
        problems.append("--tenancy goes with --ephemeral")
    if tls:
        problems.append("--ephemeral serves HTTP only (no --tls-cert, --tls-key)")
    if workers > 1:
        problems.append("--ephemeral is one process (no --workers)")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    stop = threading.Event()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server = CamsServer(tenancy, host=host, port=port)
            server.start()
        except (TenancyError, ValueError, OSError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            credentials = server.credentials()
            if reachable(host) != host:
                credentials["listening_on"] = host
            print(json.dumps(credentials), flush=True)
            while not stop.wait(0.5):
                if not server.running:
                    print("error: the server stopped", file=sys.stderr)
                    return 1
        finally:
            server.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
