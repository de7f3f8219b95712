"""Assembles the ASGI application: CAMS endpoint at `/`, Meta webhooks at `/webhooks/whatsapp`,
`/healthz`, and (unless disabled) the built-in simulator under `/_sandbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from opencams.access.authn import Authenticator
from opencams.channel.graph import GraphClient
from opencams.channel.pictures import Picture, PicturePolicy, PictureRejected, fetch_picture
from opencams.channel.webhooks import (
    WebhookRejected,
    handshake_challenge,
    parse_events,
    signature_valid,
)
from opencams.config import Settings
from opencams.groups.context import Deps, PictureUnusable
from opencams.groups.events import apply_event
from opencams.groups.sync import Syncer
from opencams.rpc.endpoint import Endpoint
from opencams.sandbox import SandboxConfig, Simulator
from opencams.store import db
from opencams.store.crypto import SecretBox, secret_box
from opencams.store.repo import Store, StoreUnavailable

log = logging.getLogger("opencams")

SANDBOX_PREFIX = "/_sandbox"
NONCE_PRUNE_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Runtime:
    """Where this server can reach itself (for the built-in simulator's defaults)."""

    self_url: str = "http://127.0.0.1:8080"


class PictureFetcher:
    """The domain's picture source: channel.pictures with the configured policy."""

    def __init__(self, policy: PicturePolicy) -> None:
        self._policy = policy

    async def fetch(self, url: str) -> Picture:
        try:
            return await fetch_picture(url, self._policy)
        except PictureRejected as exc:
            raise PictureUnusable(exc.reason) from exc


class WebhookReceiver:
    def __init__(self, store: Store, box: SecretBox) -> None:
        self._store = store
        self._box = box

    async def _setting(self, key: str) -> str | None:
        entry = await self._store.config_value(key)
        if entry is None:
            return None
        value, secret = entry
        return self._box.open(value) if secret else value

    async def app_secret(self) -> str | None:
        return await self._setting("whatsapp.app_secret")

    async def __call__(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                challenge = handshake_challenge(
                    dict(request.query_params), await self._setting("whatsapp.verify_token")
                )
                if challenge is None:
                    return PlainTextResponse("verification failed", status_code=403)
                return PlainTextResponse(challenge)
            raw = await request.body()
            secret = await self.app_secret()
            if secret is None or not signature_valid(
                raw, request.headers.get("x-hub-signature-256"), secret
            ):
                return JSONResponse({"error": "invalid signature"}, status_code=401)
            try:
                events = parse_events(raw)
            except WebhookRejected as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            outcomes = [await apply_event(self._store, event) for event in events]
            return JSONResponse({"received": len(events), "outcomes": outcomes})
        except StoreUnavailable as exc:
            # Meta retries deliveries that were not acknowledged: nothing is lost.
            log.warning("webhook not applied, database unavailable: %s", exc)
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    runtime = runtime or Runtime()
    db.check_ready(settings.database_url)
    store = Store(db.make_async_engine(settings.database_url))
    box = secret_box(settings)
    receiver = WebhookReceiver(store, box)
    graph_base = settings.graph_base_url or f"{runtime.self_url}{SANDBOX_PREFIX}/graph/v23.0"
    graph = GraphClient(
        graph_base,
        timeout=settings.graph_timeout_seconds,
        max_attempts=settings.graph_max_attempts,
        backoff=settings.graph_backoff_seconds,
    )
    deps = Deps(
        store=store,
        channel=graph,
        secrets=box,
        pictures=PictureFetcher(PicturePolicy(allow_private=settings.picture_fetch_allow_private)),
        max_groups_per_number=settings.max_groups_per_number,
    )
    endpoint = Endpoint(
        Authenticator(
            store,
            box,
            timestamp_tolerance_seconds=settings.timestamp_tolerance_seconds,
            nonce_ttl_seconds=settings.nonce_ttl_seconds,
        ),
        deps,
    )
    routes: list[Route | Mount] = [
        Route("/", endpoint.__call__, methods=["GET", "POST"]),
        Route("/webhooks/whatsapp", receiver.__call__, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    simulator: Simulator | None = None
    if settings.sandbox:
        simulator = Simulator(
            SandboxConfig(
                callback_url=settings.sandbox_callback_url
                or f"{runtime.self_url}/webhooks/whatsapp",
                app_secret=receiver.app_secret,
                webhook_delay=settings.sandbox_webhook_delay,
            )
        )
        routes.append(Mount(SANDBOX_PREFIX, app=simulator.app))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_prune_nonces(store))]
        if settings.sync_interval_seconds > 0:
            syncer = Syncer(deps, grace_seconds=settings.sync_grace_seconds)
            tasks.append(asyncio.create_task(_sync_forever(syncer, settings.sync_interval_seconds)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if simulator is not None:
                await simulator.aclose()
            await graph.aclose()
            await store.dispose()

    return Starlette(routes=routes, lifespan=lifespan)


async def _sync_forever(syncer: Syncer, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await syncer.run()
        except StoreUnavailable as exc:
            log.warning("periodic sync skipped: %s", exc)
            continue
        except Exception:
            log.exception("periodic sync failed")
            continue
        if report.changes or report.errors:
            log.info("periodic sync: %s", "; ".join(report.lines()))


async def _prune_nonces(store: Store) -> None:
    while True:
        await asyncio.sleep(NONCE_PRUNE_INTERVAL_SECONDS)
        try:
            await store.prune_nonces()
        except StoreUnavailable as exc:
            log.warning("nonce pruning skipped: %s", exc)
