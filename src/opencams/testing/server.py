"""A real opencams server for tests, in this process: `CamsServer`, `running()`, `ServerPool`.

The server is uvicorn on a thread of its own with its own event loop, listening on a real TCP
port of 127.0.0.1 (the official SDK talks HTTP to it, as to the vendor), over a temporary SQLite
database of its own (a copy of a schema migrated once per process), provisioned from a tenancy,
with the built-in simulator posting its webhooks to the same server. It is served the way
`opencams serve` serves (opencams.server's HTTP protocol and settings), behind the test layer of
opencams.testing.controls. A subprocess `opencams serve` would pay Python's start-up and
opencams' imports for every server (docs/testing.md has the figures).

Settings come from the arguments only: `OPENCAMS_*` variables of the environment are ignored, so
that a developer's shell (a Meta Graph URL, a production database) never reaches a test server.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import secrets
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

import uvicorn
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from opencams.config import Settings
from opencams.testing.controls import Confirmations, TestingLayer, check_confirmations
from opencams.testing.sandbox import Sandbox
from opencams.testing.tenancy import Tenancy, TenancyError, defaults, load, user_key

Signature = Literal["v3", "v1"]

SDK_MISSING = (
    "the official CAMS SDK is not installed: pip install alibabacloud-cams20200606 "
    "(cams_client and CamsServer.client() use it; opencams does not depend on it)"
)
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0

# What a test server changes from the defaults of `opencams serve` (docs/testing.md).
TEST_SETTINGS: dict[str, Any] = {
    # Tests burst; throttling is tested by provisioning `throttling` (which still applies).
    "throttle_default_rate": 0,
    # `CamsServer.apply` takes effect at once.
    "provisioning_cache_seconds": 0,
    # Pictures for UpdateChatGroup are served by the test itself, on loopback.
    "picture_fetch_allow_private": True,
    # Media that tests send by link to the simulator is served by the test itself, on loopback.
    "sandbox_media_fetch_allow_private": True,
    # Retries against the simulator need not wait.
    "graph_backoff_seconds": 0.0,
    # A temporary database: commits need not survive a power loss.
    "sqlite_synchronous": "normal",
}
# A test server is always its own database and its own Meta.
FIXED_SETTINGS = (
    "database_url",
    "graph_base_url",
    "sandbox",
    "sandbox_callback_url",
    "sandbox_webhook_delay",
    "secret_key",
    "secret_key_file",
)


def reachable(host: str) -> str:
    """The address clients use for a listening address (`0.0.0.0` is reached as 127.0.0.1)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104


class SdkMissing(ImportError):
    pass


class IsolatedSettings(Settings):
    """Settings from the arguments alone (no environment, no settings file)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


_schema_lock = threading.Lock()
_schema: Path | None = None


def migrated_schema() -> Path:
    """An empty database at the newest schema, made once per process; servers start on a copy."""
    global _schema
    with _schema_lock:
        if _schema is None or not _schema.exists():
            from opencams.store import db

            directory = Path(tempfile.mkdtemp(prefix="opencams-schema-"))
            atexit.register(shutil.rmtree, directory, True)
            path = directory / "schema.db"
            db.upgrade(f"sqlite:///{path}")
            with contextlib.closing(sqlite3.connect(path)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _schema = path
        return _schema


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, which says when it listens, and stops as soon as it is asked."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready_event = ready
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await super().startup(sockets)
        if self.started:
            self._ready_event.set()

    async def main_loop(self) -> None:
        # uvicorn's loop, waking at once when stopped rather than at its next 0.1 s tick.
        assert self._stop is not None
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)

    def request_stop(self) -> None:
        self.should_exit = True
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                self._loop.call_soon_threadsafe(self._stop.set)


class CamsServer:
    """An opencams server with its own temporary database and simulator, for tests.

    `tenancy`: a dict in the form of `opencams apply`'s YAML, or the path of such a file; None
    for the default one (opencams.testing.tenancy). `settings`: Settings fields to change
    (docs/configuration.md, in lower case: `{"max_groups_per_number": 3}`). `confirmations`:
    "immediate" (default), "manual", or a delay in seconds (opencams.testing.controls).
    """

    def __init__(
        self,
        tenancy: Tenancy | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        confirmations: Confirmations = "immediate",
        host: str = "127.0.0.1",
        port: int = 0,
        directory: str | Path | None = None,
    ) -> None:
        self.tenancy = load(tenancy)
        self.settings = dict(settings or {})
        fixed = sorted(set(self.settings) & set(FIXED_SETTINGS))
        if fixed:
            raise ValueError(
                f"a test server sets {', '.join(fixed)} itself (its own temporary database and "
                "simulator; confirmations= sets the webhook timing)"
            )
        self.confirmations = check_confirmations(confirmations)
        self._spec = _parse(self.tenancy)
        chosen = defaults(self.tenancy)
        self.account_id = chosen.account_id
        self.access_key_id = chosen.access_key_id
        self.access_key_secret = chosen.access_key_secret
        self.space = chosen.space
        self.number = chosen.number
        self.host = host
        self.port = port
        self._own_directory = directory is None
        # Made when the server starts (a server never started leaves nothing behind).
        self.directory = Path(
            directory or Path(tempfile.gettempdir()) / f"opencams-test-{secrets.token_hex(8)}"
        )
        self.database = self.directory / "opencams.db"
        # Tenancies applied after the start (CamsServer.apply): the server is then no longer
        # the one its tenancy describes, and a pool does not lend it again.
        self.applied: list[dict[str, Any]] = []
        self.ready_seconds: float | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._uvicorn: _Uvicorn | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._layer: TestingLayer | None = None
        self._sandbox: Sandbox | None = None

    # --- where it is -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """host:port, as the SDK's `Config(endpoint=…)` wants it."""
        host = reachable(self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._ready.is_set()

    @property
    def tenancy_changed(self) -> bool:
        return bool(self.applied)

    @property
    def sandbox(self) -> Sandbox:
        """The simulator's test controls (opencams.testing.sandbox)."""
        if self._sandbox is None:
            self._sandbox = Sandbox(self.url, number=self.number, space=self.space)
        return self._sandbox

    def credentials(self) -> dict[str, Any]:
        """What a client needs, as `opencams serve --ephemeral` prints it."""
        return {
            "endpoint": self.endpoint,
            "protocol": "HTTP",
            "region_id": "cn-hangzhou",
            "url": self.url,
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "cust_space_id": self.space,
            "business_number": self.number,
            "sandbox_url": f"{self.url}/_sandbox",
            "testing_url": f"{self.url}/_testing",
            "database_url": self.database_url,
        }

    # --- life ------------------------------------------------------------------------------

    def start(self) -> CamsServer:
        """Start serving; returns once the server answers (raises what kept it from it)."""
        if self._thread is not None:
            raise RuntimeError("this server was started already")
        started = time.perf_counter()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"opencams-test-server-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS):
            self.stop()
            self.wait()
            raise RuntimeError(f"the test server did not start in {START_TIMEOUT_SECONDS:.0f} s")
        if self._error is None and (self._uvicorn is None or not self._uvicorn.started):
            self._error = RuntimeError("the test server stopped before it served")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            error = self._error
            self._cleanup()
            if isinstance(error, SystemExit):
                raise RuntimeError("the test server did not start (see the log)") from error
            raise error
        self.ready_seconds = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Ask the server to stop (returns at once; `wait` for it)."""
        if self._uvicorn is not None:
            self._uvicorn.request_stop()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
        self._cleanup()

    def close(self) -> None:
        """Stop serving and remove the temporary database (unless it lives in `directory`)."""
        self.stop()
        self.wait()

    def __enter__(self) -> CamsServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _cleanup(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, sock: socket.socket) -> None:
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(self._serve(sock))
        except BaseException as exc:  # reported to start(); a thread has no one else to tell
            self._error = exc
        finally:
            sock.close()
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        from opencams.app import Runtime, create_app
        from opencams.provision.apply import apply
        from opencams.server import CamsHttpProtocol
        from opencams.store.crypto import secret_box

        self._loop = asyncio.get_running_loop()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=not self._own_directory)
        shutil.copyfile(migrated_schema(), self.database)
        settings = IsolatedSettings(
            **{
                **TEST_SETTINGS,
                **self.settings,
                "database_url": self.database_url,
                "secret_key": secrets.token_urlsafe(32),
                "secret_key_file": self.directory / "secret.key",
                "sandbox": True,
                "sandbox_webhook_delay": 0.0,
            }
        )
        self._box = secret_box(settings)
        app = create_app(settings, Runtime(self_url=self.url))
        parts = app.state.parts
        self._parts = parts
        try:
            await apply(parts.store, self._box, self._spec)
        except BaseException:
            await parts.graph.aclose()
            await parts.store.dispose()
            raise
        self._layer = TestingLayer(app, parts, database=self.database, default=self.confirmations)
        config = uvicorn.Config(
            self._layer,
            lifespan="on",
            # The process's logging belongs to the test suite: uvicorn configures nothing.
            log_config=None,
            log_level=None,
            access_log=False,
            ws="none",
            # As `opencams serve` (opencams.server.run).
            http=CamsHttpProtocol,
            proxy_headers=False,
            forwarded_allow_ips="",
            timeout_keep_alive=settings.keep_alive_seconds,
            timeout_graceful_shutdown=5,
        )
        self._uvicorn = _Uvicorn(config, self._ready)
        await self._uvicorn.serve(sockets=[sock])

    # --- in the server's loop --------------------------------------------------------------

    def _call(self, coroutine: Any) -> Any:
        if self._loop is None or not self.running:
            coroutine.close()
            raise RuntimeError("the test server is not running")
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(STOP_TIMEOUT_SECONDS)

    # --- what tests do ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget what tests did: groups, operations, participants, join requests, webhook
        events, nonces, audit records and the simulator's state; the confirmation mode the
        server started with. The tenancy (accounts, keys, spaces, numbers, policies) stays."""
        self.sandbox._post_testing("reset")

    def apply(self, tenancy: Tenancy) -> None:
        """Provision more (as `opencams apply`): new keys, RAM users, policies, numbers…"""
        from opencams.provision.apply import apply

        extra = load(tenancy)
        spec = _parse(extra)
        self._call(apply(self._parts.store, self._box, spec))
        self.applied.append(extra)

    def user_key(self, user: str) -> tuple[str, str]:
        """The first AccessKey of a RAM user of the tenancy (or of one applied since)."""
        for tenancy in reversed([self.tenancy, *self.applied]):
            with contextlib.suppress(TenancyError):
                return user_key(tenancy, user)
        raise TenancyError(f"no RAM user {user} with an access key in the tenancy")

    def client(
        self,
        signature: Signature = "v3",
        *,
        user: str | None = None,
        access_key: tuple[str, str] | None = None,
        security_token: str | None = None,
    ) -> Any:
        """The official SDK's client for this server: signed with `signature` ("v3":
        ACS3-HMAC-SHA256, the SDK's default; "v1": HMAC-SHA1, the SDK's "v2" algorithm), as the
        default AccessKey, the RAM user `user`, or `access_key` (with an STS `security_token`)."""
        try:
            from alibabacloud_cams20200606.client import Client
            from alibabacloud_tea_openapi.utils_models import Config
        except ImportError as exc:
            raise SdkMissing(SDK_MISSING) from exc
        if signature not in ("v3", "v1"):
            raise ValueError(f'signature is "v3" or "v1", not {signature!r}')
        if user is not None and access_key is not None:
            raise ValueError("give user or access_key, not both")
        key = access_key or (self.user_key(user) if user is not None else None)
        if key is None:
            if self.access_key_id is None or self.access_key_secret is None:
                raise TenancyError("the tenancy has no account with an access key")
            key = (self.access_key_id, self.access_key_secret)
        config = Config(
            access_key_id=key[0],
            access_key_secret=key[1],
            security_token=security_token,
            endpoint=self.endpoint,
            protocol="HTTP",
            region_id="cn-hangzhou",
            no_proxy=reachable(self.host),
        )
        if signature == "v1":
            config.signature_algorithm = "v2"
        return Client(config)

    def __repr__(self) -> str:
        return f"CamsServer({self.url}, database={self.database})"


def _parse(tenancy: dict[str, Any]) -> Any:
    from opencams.errors import ProvisionError
    from opencams.provision.apply import parse

    try:
        return parse(tenancy, "tenancy")
    except ProvisionError as exc:
        problems = "\n".join(f"  - {p}" for p in exc.problems)
        raise TenancyError(f"the tenancy cannot be provisioned:\n{problems}") from exc


@contextlib.contextmanager
def running(
    tenancy: Tenancy | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    confirmations: Confirmations = "immediate",
) -> Iterator[CamsServer]:
    """An opencams server for the block: `with opencams.testing.running() as cams: …`."""
    server = CamsServer(tenancy, settings=settings, confirmations=confirmations).start()
    try:
        yield server
    finally:
        server.close()


class ServerPool:
    """Servers kept for a session: one per tenancy and settings, reset each time it is lent."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._servers: dict[str, CamsServer] = {}
        self._fresh: list[CamsServer] = []
        self._count = 0

    def _new(self, tenancy: Tenancy | None, settings: Mapping[str, Any]) -> CamsServer:
        self._count += 1
        directory = None if self.directory is None else self.directory / f"server-{self._count}"
        return CamsServer(tenancy, settings=settings, directory=directory)

    def acquire(
        self, tenancy: Tenancy | None = None, settings: Mapping[str, Any] | None = None
    ) -> CamsServer:
        from opencams.testing.tenancy import fingerprint

        settings = dict(settings or {})
        key = fingerprint(load(tenancy), settings)
        server = self._servers.get(key)
        if server is not None and server.running:
            server.reset()
            return server
        if server is not None:  # it stopped: let it go for good
            server.close()
        server = self._new(tenancy, settings).start()
        self._servers[key] = server
        return server

    def fresh(
        self, tenancy: Tenancy | None = None, settings: Mapping[str, Any] | None = None
    ) -> CamsServer:
        server = self._new(tenancy, dict(settings or {})).start()
        self._fresh.append(server)
        return server

    def release(self, server: CamsServer) -> None:
        """After a test: a fresh server goes, and so does one whose tenancy the test changed."""
        pooled = server in self._servers.values()
        if pooled and not server.tenancy_changed:
            return
        if pooled:
            self._servers = {k: s for k, s in self._servers.items() if s is not server}
        if server in self._fresh:
            self._fresh.remove(server)
        server.close()

    @property
    def servers(self) -> list[CamsServer]:
        return [*self._servers.values(), *self._fresh]

    def close(self) -> None:
        servers = self.servers
        self._servers, self._fresh = {}, []
        for server in servers:  # all stop together
            server.stop()
        for server in servers:
            server.wait()
