"""What operators watch: `/metrics` (Prometheus), `/readyz` (readiness), and the figures read
from the database for them (docs/operations.md).

- **Metrics** (`OPENCAMS_METRICS`): `on` serves `/metrics` on the main port, outside the CAMS
  endpoint's authentication; `off` serves none (the 404 envelope); `host:port` or `:port` serves
  it on a listener of its own (`start_listener`, run by `opencams serve`: under `--workers N`
  in the parent process, which adds up every worker's figures).
- **Database figures** (pending operations, the nonce table): read by `DatabaseGauges` at most
  every REFRESH_SECONDS: when scraped on the main port, or every REFRESH_SECONDS by each worker
  when the metrics have a listener of their own.
- **Readiness**: the database answers and is at the schema this opencams expects, Redis answers
  when configured, and there is a Meta to talk to (the built-in simulator or a Graph URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from opencams import metrics
from opencams.errors import StoreError
from opencams.names import OperationKind
from opencams.store import callbacks, db, status
from opencams.store.repo import Store

log = logging.getLogger("opencams.observability")

REFRESH_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 3.0
KINDS: tuple[str, ...] = get_args(OperationKind)


class DatabaseGauges:
    """Refreshes the database's gauges (metrics.PENDING_*, NONCES, DATABASE_UP), at most every
    `max_age` seconds however often it is asked."""

    def __init__(
        self,
        store: Store,
        *,
        max_age: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._clock = clock
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        if self._at is not None and self._clock() - self._at < self._max_age:
            return
        async with self._lock:
            if self._at is not None and self._clock() - self._at < self._max_age:
                return
            try:
                async with self._store.read() as tx:
                    pending = await status.pending_by_kind(tx)
                    nonces = await status.nonce_count(tx)
                    backlog = await callbacks.backlog(tx)
            except StoreError as exc:
                log.warning("metrics: database figures not read: %s", exc)
                metrics.DATABASE_UP.set(0)
            else:
                now_ms = time.time() * 1000
                by_kind = {p.kind: p for p in pending}
                for kind in KINDS:
                    found = by_kind.get(kind)
                    metrics.PENDING_OPERATIONS.labels(kind).set(found.count if found else 0)
                    age = max(0.0, (now_ms - found.oldest_created_ms) / 1000) if found else 0.0
                    metrics.PENDING_OLDEST_SECONDS.labels(kind).set(age)
                metrics.NONCES.set(nonces)
                metrics.CALLBACK_BACKLOG.set(backlog)
                metrics.DATABASE_UP.set(1)
            self._at = self._clock()

    async def run_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._max_age)


class MetricsPage:
    """`GET /metrics` on the main port."""

    def __init__(self, gauges: DatabaseGauges) -> None:
        self._gauges = gauges

    async def __call__(self, _: Request) -> Response:
        await self._gauges.refresh()
        return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)


def start_listener(host: str, port: int) -> Callable[[], None]:
    """Serve the metrics on a listener of their own (a thread of this process); returns the
    function that stops it. Under several workers this reads every worker's figures."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry())

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


class Readiness:
    """`GET /readyz`: 200 with the checks when the server can serve, else 503 with the reason."""

    def __init__(self, store: Store, *, redis_url: str | None, meta: str | None) -> None:
        self._store = store
        self._redis_url = redis_url
        self._redis: aioredis.Redis | None = None
        self._meta = meta

    async def _database(self) -> Check:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                async with self._store.read() as tx:
                    revision = await status.schema_revision(tx, self._store.database.dialect_name)
        except TimeoutError:
            return Check(False, f"the database did not answer in {READY_TIMEOUT_SECONDS:g} s")
        except StoreError as exc:
            # The driver's words stay in the log: the answer may reach anyone who asks.
            log.warning("readiness: the database is unavailable: %s", exc)
            return Check(False, "the database is unavailable")
        head = db.head_revision()
        if revision != head:
            return Check(
                False,
                f"the database schema is at revision {revision or '(empty)'}, not {head}: "
                "run `opencams db upgrade`",
            )
        return Check(True, f"reachable, schema at {head}")

    async def _redis_check(self) -> Check:
        if self._redis_url is None:
            return Check(True, "not configured")
        if self._redis is None:
            self._redis = aioredis.from_url(
                self._redis_url,
                socket_timeout=READY_TIMEOUT_SECONDS,
                socket_connect_timeout=READY_TIMEOUT_SECONDS,
            )
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await self._redis.ping()
        except (TimeoutError, OSError, aioredis.RedisError) as exc:
            return Check(False, f"Redis is unreachable: {type(exc).__name__}")
        return Check(True, "reachable")

    def _meta_check(self) -> Check:
        if self._meta is None:
            return Check(False, "no Meta: neither the simulator nor OPENCAMS_GRAPH_BASE_URL")
        return Check(True, self._meta)

    async def __call__(self, _: Request) -> Response:
        checks = {
            "database": await self._database(),
            "redis": await self._redis_check(),
            "meta": self._meta_check(),
        }
        body: dict[str, Any] = {"checks": {name: c.detail for name, c in checks.items()}}
        failed = [c.detail for c in checks.values() if not c.ok]
        if failed:
            body = {"status": "not ready", "reason": "; ".join(failed), **body}
            return JSONResponse(body, status_code=503)
        return JSONResponse({"status": "ready", **body})

    async def aclose(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
