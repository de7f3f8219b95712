"""Assembles the ASGI application: CAMS endpoint at `/`, Meta webhooks at `/webhooks/whatsapp`,
`/healthz` (liveness), `/readyz` (readiness), `/metrics` (unless OPENCAMS_METRICS says otherwise),
(unless disabled) the built-in simulator under `/_sandbox`, and the web console under `/console`
(OPENCAMS_CONSOLE; on by default beside the simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opencams.access.audit import AuditLog
from opencams.access.authn import Authenticator
from opencams.access.authz import Authorizer
from opencams.access.network import parse_networks
from opencams.access.sts import RoleAssumer, Tokens
from opencams.access.throttle import Throttle, Throttling, make_throttle
from opencams.callbacks.delivery import Deliverer, DeliveryPolicy
from opencams.channel.breaker import Breaker
from opencams.channel.graph import GraphClient
from opencams.channel.pictures import PictureFetcher, PicturePolicy
from opencams.channel.webhooks import handshake_challenge, parse_notification, signature_valid
from opencams.config import Settings
from opencams.console import Console, Sessions, SimulatorControls
from opencams.console.web import PREFIX as CONSOLE_PREFIX
from opencams.errors import (
    ConfigError,
    GatewayError,
    InvalidActionNotFound,
    StoreRejected,
    StoreUnavailable,
    UnsupportedHTTPMethod,
    WebhookRejected,
)
from opencams.groups import media
from opencams.groups.context import Deps
from opencams.groups.events import apply_event
from opencams.groups.message_events import MediaLinks, apply_inbound, apply_status
from opencams.groups.messages import settle_interrupted
from opencams.groups.sync import Syncer
from opencams.metrics import webhook_outcome
from opencams.observability import DatabaseGauges, MetricsPage, Readiness
from opencams.rpc.endpoint import Endpoint, Incoming
from opencams.rpc.envelope import failure, new_request_id
from opencams.sandbox import SandboxConfig, Simulator
from opencams.store import access as access_store
from opencams.store import db, tenancy
from opencams.store.crypto import SecretBox, secret_box
from opencams.store.repo import Store

log = logging.getLogger("opencams")

SANDBOX_PREFIX = "/_sandbox"
NONCE_PRUNE_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Runtime:
    """Where this server can reach itself (for the built-in simulator's defaults), and whether
    the app is the process's own (`opencams serve`), which lets it tune the process."""

    self_url: str = "http://127.0.0.1:8080"
    # After startup, what the process has built (modules, the app, its caches) is moved out of
    # the garbage collector's reach (gc.freeze): its full collections then walk only what
    # requests made, a fraction of a millisecond instead of tens (a stall every request in
    # flight would wait out). Only for a process that serves this one app until it exits.
    freeze_gc: bool = False


@dataclass(frozen=True)
class Parts:
    """What a built app keeps state in, for opencams.testing, which resets its own test servers
    between tests (`app.state.parts`); serving never reads it."""

    store: Store
    graph: GraphClient
    throttle: Throttle
    audit: AuditLog
    simulator: Simulator | None


class WebhookReceiver:
    def __init__(self, store: Store, box: SecretBox, links: MediaLinks | None = None) -> None:
        self._store = store
        self._box = box
        self._links = links or MediaLinks(None, "", 0)

    async def _setting(self, key: str) -> str | None:
        async with self._store.read() as tx:
            entry = await tenancy.config_value(tx, key)
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
            raw = await _capped_body(request)
            if raw is None:
                return JSONResponse({"error": "body too large"}, status_code=413)
            secret = await self.app_secret()
            if secret is None or not signature_valid(
                raw, request.headers.get("x-hub-signature-256"), secret
            ):
                return JSONResponse({"error": "invalid signature"}, status_code=401)
            try:
                notification = parse_notification(raw)
            except WebhookRejected as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            outcomes: list[str] = []
            applying: list[Callable[[], Awaitable[str]]] = [
                *(functools.partial(apply_event, self._store, e) for e in notification.groups),
                *(functools.partial(apply_status, self._store, s) for s in notification.statuses),
                *(
                    functools.partial(apply_inbound, self._store, m, self._links)
                    for m in notification.messages
                ),
            ]
            for apply in applying:
                try:
                    outcomes.append(await apply())
                except StoreRejected as exc:
                    # A value the database cannot hold: skipped, so that the rest is applied.
                    log.warning("webhook event skipped, unstorable value: %s", exc)
                    webhook_outcome("rejected")
                    outcomes.append("rejected")
            skipped = notification.skipped
            if skipped:
                log.warning("%d webhook items skipped: unusable ids", skipped)
            return JSONResponse(
                {"received": len(applying) + skipped, "outcomes": outcomes, "skipped": skipped}
            )
        except ClientDisconnect:
            log.info("webhook delivery abandoned by its sender mid-body")
            return JSONResponse({"error": "incomplete body"}, status_code=400)
        except StoreUnavailable as exc:
            # Meta retries deliveries that were not acknowledged: nothing is lost.
            log.warning("webhook not applied, database unavailable: %s", exc)
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        except Exception:
            log.exception("webhook delivery failed")
            return JSONResponse({"error": "internal error"}, status_code=500)


MAX_WEBHOOK_BYTES = 4 << 20


async def _capped_body(request: Request) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class LoopbackControls:
    """The simulator's test controls answer only clients on this machine (loopback)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(
            f"{SANDBOX_PREFIX}/control"
        ):
            client = scope.get("client")
            host = client[0] if client else ""
            try:
                local = ipaddress.ip_address(host).is_loopback
            except ValueError:
                local = False
            if not local:
                response = JSONResponse(
                    {"error": "the simulator's controls answer loopback clients only"},
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def media_route(deps: Deps) -> Callable[[Request], Awaitable[Response]]:
    """An inbound message's media, behind a sealed expiring link (groups.media)."""

    async def serve_media(request: Request) -> Response:
        try:
            answer = await media.fetch(deps, request.path_params["token"])
        except StoreUnavailable:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
        if answer.status != 200:
            return JSONResponse({"error": answer.error}, status_code=answer.status)
        headers = {"cache-control": "private, no-store"}
        if answer.filename:
            safe = "".join(c for c in answer.filename if c.isprintable() and c not in '"\\')
            headers["content-disposition"] = f'attachment; filename="{safe}"'
        return Response(answer.data, media_type=answer.mime_type, headers=headers)

    return serve_media


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no such path, a method a route does not take) as CAMS gateway
    errors, so that every answer of the server is the JSON envelope."""
    error: GatewayError = InvalidActionNotFound()
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        methods = (exc.headers or {}).get("Allow", "GET").split(", ")
        error = UnsupportedHTTPMethod(request.method, ", ".join(sorted(set(methods) - {"HEAD"})))
    return failure(new_request_id(), error, request.headers.get("host", ""))


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    runtime = runtime or Runtime()
    db.check_ready(settings.database_url)
    store = Store.open(
        settings.database_url,
        synchronous=settings.sqlite_synchronous,
        tenancy_cache_seconds=settings.provisioning_cache_seconds,
    )
    box = secret_box(settings)
    media_tokens = secret_box(settings, b"media")
    public_url = (settings.public_url or runtime.self_url).rstrip("/")
    receiver = WebhookReceiver(
        store, box, MediaLinks(media_tokens, public_url, settings.media_url_seconds)
    )
    if settings.graph_base_url is None and not settings.sandbox:
        raise ConfigError(
            "OPENCAMS_SANDBOX=false needs OPENCAMS_GRAPH_BASE_URL (Meta's Graph API, or a "
            "standalone simulator): without it there is no Meta to talk to"
        )
    graph_base = settings.graph_base_url or f"{runtime.self_url}{SANDBOX_PREFIX}/graph/v23.0"
    graph = GraphClient(
        graph_base,
        timeout=settings.graph_timeout_seconds,
        max_attempts=settings.graph_max_attempts,
        max_connections=settings.graph_max_connections,
        backoff=settings.graph_backoff_seconds,
        breaker=Breaker(
            failures=settings.graph_breaker_failures, cool_down=settings.graph_breaker_seconds
        ),
    )
    deps = Deps(
        store=store,
        channel=graph,
        secrets=box,
        pictures=PictureFetcher(PicturePolicy(allow_private=settings.picture_fetch_allow_private)),
        max_groups_per_number=settings.max_groups_per_number,
        callback_allow_http=settings.callback_allow_http,
        callback_allow_private=settings.callback_allow_private,
        media_tokens=media_tokens,
        public_url=public_url,
        media_url_seconds=settings.media_url_seconds,
        sending_timeout_seconds=settings.message_sending_timeout_seconds,
    )
    tokens = Tokens(secret_box(settings, b"sts"))
    throttle = make_throttle(settings.redis_url)
    audit = AuditLog(store)
    endpoint = Endpoint(
        authenticator=Authenticator(
            store,
            box,
            tokens,
            timestamp_tolerance_seconds=settings.timestamp_tolerance_seconds,
            nonce_ttl_seconds=settings.nonce_ttl_seconds,
        ),
        authorizer=Authorizer(
            store, mode=settings.auth_mode, cache_seconds=settings.provisioning_cache_seconds
        ),
        throttling=Throttling(
            throttle,
            store,
            default_rate=settings.throttle_default_rate,
            action_rates=dict(settings.throttle_rates),
        ),
        audit=audit,
        deps=deps,
        roles=RoleAssumer(store, tokens, min_duration=settings.sts_min_duration_seconds),
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )
    mounted = settings.sandbox and settings.graph_base_url is None
    readiness = Readiness(
        store,
        redis_url=settings.redis_url,
        meta="the built-in simulator" if mounted else "Graph API at a configured URL",
    )
    gauges = DatabaseGauges(store)
    routes: list[BaseRoute] = [
        Route("/webhooks/whatsapp", receiver.__call__, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readiness.__call__, methods=["GET"]),
        Route("/media/{token}", media_route(deps), methods=["GET"]),
    ]
    if settings.metrics == "on":
        routes.append(Route("/metrics", MetricsPage(gauges).__call__, methods=["GET"]))
    simulator: Simulator | None = None
    # The simulator is mounted only when it is this server's Meta: beside a real Graph API its
    # controls (which make the server send requests) have no business being reachable.
    if mounted:
        simulator = Simulator(
            SandboxConfig(
                callback_url=settings.sandbox_callback_url
                or f"{runtime.self_url}/webhooks/whatsapp",
                app_secret=receiver.app_secret,
                webhook_delay=settings.sandbox_webhook_delay,
                media_fetch_allow_private=settings.sandbox_media_fetch_allow_private,
            )
        )
        routes.append(Mount(SANDBOX_PREFIX, app=LoopbackControls(simulator.app)))
    console_controls: SimulatorControls | None = None
    if settings.console == "on" or (settings.console == "auto" and simulator is not None):
        console_controls = SimulatorControls(simulator.app) if simulator is not None else None
        console = Console(
            endpoint=endpoint,
            store=store,
            sessions=Sessions(
                secret_box(settings, b"console-session"), settings.console_session_seconds
            ),
            simulator=console_controls,
        )
        routes.extend(console.routes())
        root: ASGIApp = BrowserToConsole(endpoint)
    else:
        root = endpoint
    routes.insert(0, Route("/", root, methods=list(ROOT_METHODS)))

    deliverer: Deliverer | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal deliverer
        tasks = [
            asyncio.create_task(_prune_nonces(store)),
            asyncio.create_task(
                _settle_sends_forever(deps, settings.message_resolve_interval_seconds)
            ),
        ]
        if settings.callback_delivery:
            deliverer = Deliverer(store, box, delivery_policy(settings))
            deliverer.start()
        if settings.metrics_listener is not None:
            # Scraped elsewhere (opencams serve's own listener): the figures are kept fresh here.
            tasks.append(asyncio.create_task(gauges.run_forever()))
        if settings.sync_interval_seconds > 0:
            syncer = Syncer(deps, grace_seconds=settings.sync_grace_seconds)
            tasks.append(asyncio.create_task(_sync_forever(syncer, settings.sync_interval_seconds)))
        if runtime.freeze_gc:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if deliverer is not None:
                await deliverer.stop()
            await audit.aclose()
            await throttle.aclose()
            await readiness.aclose()
            if console_controls is not None:
                await console_controls.aclose()
            if simulator is not None:
                await simulator.aclose()
            await graph.aclose()
            await store.dispose()

    application = CamsApp(
        root,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: http_error, 405: http_error},
    )
    # `/healthz/` is no path of ours: a 404 in the envelope, not Starlette's redirect to the
    # path without the slash (an empty 307 that no CAMS client expects).
    application.router.redirect_slashes = False
    application.state.parts = Parts(store, graph, throttle, audit, simulator)
    return application


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout=settings.callback_timeout_seconds,
        retry_window=settings.callback_retry_hours * 3600,
        backoff_base=settings.callback_backoff_seconds,
        backoff_max=settings.callback_backoff_max_seconds,
        batch_max=settings.callback_batch_max,
        poll=settings.callback_poll_seconds,
        concurrency=settings.callback_concurrency,
        retention=settings.callback_retention_days * 86400,
        allow_private=settings.callback_allow_private,
    )


# The methods of the CAMS endpoint at `/`; others are answered 405 by the router.
ROOT_METHODS = ("GET", "POST")


class CamsApp(Starlette):
    """The app: Starlette's routes, middleware and lifespan, with one shortcut. A CAMS call
    (GET or POST to `/`, the path every request of the API takes) goes straight to the
    endpoint, past the error middleware and the router that would route it there anyway: the
    endpoint answers every failure itself (rpc.endpoint), so there is nothing for them to do."""

    def __init__(self, root: ASGIApp, **options: Any) -> None:
        super().__init__(**options)
        self._root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/"
            and not scope.get("root_path")
            and scope["method"] in ROOT_METHODS
        ):
            scope["app"] = self
            await self._root(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class BrowserToConsole:
    """A browser opening `/` (a GET without parameters or signature that accepts HTML) goes to
    the console; everything else, every SDK call among it, is the CAMS endpoint's (an ASGI app,
    like this)."""

    def __init__(self, endpoint: ASGIApp) -> None:
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "GET" and not scope.get("query_string"):
            incoming = Incoming.of(scope)
            if "authorization" not in incoming.headers and "text/html" in incoming.header("accept"):
                await RedirectResponse(f"{CONSOLE_PREFIX}/", 303)(scope, receive, send)
                return
        await self._endpoint(scope, receive, send)


SELF_URL_ENV = "OPENCAMS_SERVE_SELF_URL"


def factory() -> Starlette:
    """For `opencams serve --workers N`: each worker process builds its app from the settings
    (the environment) and the address `serve` passed down."""
    import os

    from opencams.config import load_settings

    return create_app(load_settings(), Runtime(self_url=os.environ[SELF_URL_ENV], freeze_gc=True))


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


async def _settle_sends_forever(deps: Deps, interval: float) -> None:
    """Sends interrupted by a crash (left `sending`) are settled `unknown`, never resent."""
    while True:
        try:
            settled = await settle_interrupted(deps)
            if settled:
                log.warning("%d interrupted sends settled as unknown (not resent)", settled)
        except StoreUnavailable as exc:
            log.warning("settling interrupted sends skipped: %s", exc)
        except Exception:
            log.exception("settling interrupted sends failed")
        await asyncio.sleep(interval)


async def _prune_nonces(store: Store) -> None:
    while True:
        await asyncio.sleep(NONCE_PRUNE_INTERVAL_SECONDS)
        try:
            async with store.write() as tx:
                await access_store.prune_nonces(tx)
        except StoreUnavailable as exc:
            log.warning("nonce pruning skipped: %s", exc)
