"""The `opencams` command: serve, apply, db, sandbox, demo-credentials."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from opencams import __version__, logs, metrics, server
from opencams.access_cli import audit, keys_app, sts_app
from opencams.callbacks_cli import callbacks_app
from opencams.cli_common import settings_or_exit
from opencams.dev_cli import dev_app
from opencams.errors import ProvisionError, SchemaError, SecretKeyError
from opencams.messages_cli import messages_app
from opencams.provision.apply import apply, load_file
from opencams.sandbox.cli import build_app as build_sandbox_app
from opencams.store import db
from opencams.store.crypto import secret_box
from opencams.store.repo import Store

app = typer.Typer(
    help="opencams: a self-hosted, SDK-compatible CAMS chat-group API with a WhatsApp simulator.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema: upgrade and inspect.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(sts_app, name="sts")
app.command("audit")(audit)
app.add_typer(dev_app, name="dev")
app.add_typer(callbacks_app, name="callbacks")
app.add_typer(messages_app, name="messages")


def _self_url(host: str, port: int, scheme: str = "http") -> str:
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    if ":" in reachable and not reachable.startswith("["):
        reachable = f"[{reachable}]"
    return f"{scheme}://{reachable}:{port}"


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate chain: serve HTTPS (STS clients need it).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes (share the port).", min=1)] = 1,
    ephemeral: Annotated[
        bool,
        typer.Option(
            "--ephemeral",
            help="For tests and CI: a temporary database, the default test tenancy (or "
            "--tenancy), operations confirmed at once; prints the credentials as JSON "
            "(docs/testing.md). OPENCAMS_* settings are ignored.",
        ),
    ] = False,
    tenancy: Annotated[
        Path | None, typer.Option(help="With --ephemeral: provision from this YAML file.")
    ] = None,
) -> None:
    """Serve the CAMS endpoint, the webhook receiver and (by default) the simulator."""
    if ephemeral or tenancy is not None:
        from opencams.testing.ephemeral import serve_ephemeral

        raise typer.Exit(
            serve_ephemeral(
                ephemeral=ephemeral,
                host=host,
                port=port,
                log_level=log_level,
                tenancy=tenancy,
                tls=tls_cert is not None or tls_key is not None,
                workers=workers,
            )
        )
    if (tls_cert is None) != (tls_key is None):
        typer.echo("error: --tls-cert and --tls-key go together", err=True)
        raise typer.Exit(2)
    from opencams.app import SELF_URL_ENV, Runtime, create_app
    from opencams.errors import ConfigError

    settings = settings_or_exit()
    log_config = logs.configure(log_level, settings.log_format)
    self_url = _self_url(host, port, "https" if tls_cert else "http")
    if workers > 1 and settings.sandbox and settings.graph_base_url is None:
        typer.echo(
            "error: --workers needs a Meta outside the server: the built-in simulator keeps its "
            "state in each process. Run `opencams sandbox` on its own and set "
            "OPENCAMS_GRAPH_BASE_URL (or use Meta's Graph API)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        # Built once here even with several workers: a bad setting or schema stops `serve`
        # before any worker starts, with the message on this terminal.
        application: Any = create_app(settings, Runtime(self_url=self_url, freeze_gc=True))
    except (SchemaError, SecretKeyError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if workers > 1:
        os.environ[SELF_URL_ENV] = self_url
        application = "opencams.app:factory"
    options = server.ServeOptions(
        host=host,
        port=port,
        log_level=log_level,
        keep_alive_seconds=settings.keep_alive_seconds,
        tls_cert=str(tls_cert) if tls_cert else None,
        tls_key=str(tls_key) if tls_key else None,
        workers=workers,
        log_config=log_config,
    )
    with contextlib.ExitStack() as stack:
        if workers > 1:
            # Every worker writes its metrics under a fresh directory of this process's.
            stack.enter_context(metrics.multiprocess_dir())
        listener = settings.metrics_listener
        if listener is not None:
            from opencams.observability import start_listener

            listen_host = listener[0] or host
            try:
                stack.callback(start_listener(listen_host, listener[1]))
            except OSError as exc:
                typer.echo(f"error: metrics listener {listen_host}:{listener[1]}: {exc}", err=True)
                raise typer.Exit(1) from exc
        server.run(application, options, factory=workers > 1)


@app.command("apply")
def apply_cmd(
    file: Annotated[Path, typer.Argument(help="Provisioning YAML (docs/provisioning.md).")],
) -> None:
    """Provision accounts, keys, spaces and numbers from FILE. Idempotent; validates first."""
    settings = settings_or_exit()

    async def run() -> None:
        spec = load_file(file)
        db.check_ready(settings.database_url)
        store = Store.open(settings.database_url, synchronous=settings.sqlite_synchronous)
        try:
            report = await apply(store, secret_box(settings), spec)
        finally:
            await store.dispose()
        for line in report.created:
            typer.echo(f"created  {line}")
        for line in report.changed:
            typer.echo(f"changed  {line}")
        if report.is_noop:
            typer.echo(f"no changes ({report.unchanged} items already as the file says)")

    try:
        asyncio.run(run())
    except ProvisionError as exc:
        typer.echo(f"error: {file} was not applied; nothing was written:", err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1) from exc
    except (SchemaError, SecretKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("demo-credentials")
def demo_credentials(
    file: Annotated[Path, typer.Argument(help="Provisioning YAML.")],
    endpoint: Annotated[
        str, typer.Option(help="host:port the server listens on.")
    ] = "127.0.0.1:8080",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the endpoint and the first account's first AccessKey, space and number in FILE."""
    try:
        spec = load_file(file)
    except ProvisionError as exc:
        typer.echo("\n".join(exc.problems), err=True)
        raise typer.Exit(1) from exc
    account = next((a for a in spec.accounts if a.access_keys), None)
    if account is None:
        typer.echo(f"error: {file} defines no account with an access key", err=True)
        raise typer.Exit(1)
    key = account.access_keys[0]
    space = account.spaces[0] if account.spaces else None
    number = space.business_numbers[0].number if space and space.business_numbers else None
    info = {
        "endpoint": endpoint,
        "protocol": "HTTP",
        "access_key_id": key.id,
        "access_key_secret": key.secret,
        "cust_space_id": space.id if space else None,
        "business_number": number,
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo("opencams demo credentials (use them with the official SDK, see README):")
    for name, value in info.items():
        typer.echo(f"  {name:<18} {value}")


@app.command("sync")
def sync_cmd(
    space: Annotated[str | None, typer.Option(help="Only this CustSpaceId.")] = None,
    number: Annotated[str | None, typer.Option(help="Only this business number.")] = None,
    graph_base_url: Annotated[
        str | None,
        typer.Option(
            help="Graph base URL (default: OPENCAMS_GRAPH_BASE_URL, else the local simulator)."
        ),
    ] = None,
) -> None:
    """Reconcile opencams' groups with what Meta holds. Idempotent; safe while serving."""
    from rich.progress import Progress

    from opencams.app import SANDBOX_PREFIX
    from opencams.channel.graph import GraphClient
    from opencams.groups.context import Deps
    from opencams.groups.sync import Syncer

    settings = settings_or_exit()
    base = (
        graph_base_url
        or settings.graph_base_url
        or f"http://127.0.0.1:8080{SANDBOX_PREFIX}/graph/v23.0"
    )

    async def run() -> int:
        db.check_ready(settings.database_url)
        store = Store.open(settings.database_url, synchronous=settings.sqlite_synchronous)
        graph = GraphClient(
            base,
            timeout=settings.graph_timeout_seconds,
            max_attempts=settings.graph_max_attempts,
            backoff=settings.graph_backoff_seconds,
        )
        syncer = Syncer(
            Deps(store=store, channel=graph, secrets=secret_box(settings)),
            grace_seconds=settings.sync_grace_seconds,
        )
        try:
            with Progress(transient=True, disable=not sys.stdout.isatty()) as bar:
                tasks: dict[str, Any] = {}

                def progress(num: str, done: int, total: int) -> None:
                    if num not in tasks:
                        tasks[num] = bar.add_task(f"number {num}", total=total)
                    bar.update(tasks[num], completed=done)

                report = await syncer.run(space_id=space, number=number, progress=progress)
        finally:
            await graph.aclose()
            await store.dispose()
        for line in report.lines():
            typer.echo(line)
        for error in report.errors:
            typer.echo(f"error: {error}", err=True)
        return 1 if report.errors else 0

    try:
        code = asyncio.run(run())
    except (SchemaError, SecretKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest revision."""
    settings = settings_or_exit()
    try:
        before, after = db.upgrade(settings.database_url)
    except SchemaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if before == after:
        typer.echo(f"schema is up to date (revision {after})")
    else:
        typer.echo(f"schema upgraded from {before or '(empty)'} to {after}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    settings = settings_or_exit()
    current = db.current_revision(settings.database_url)
    typer.echo(f"database: {current or '(empty)'}; newest known: {db.head_revision()}")


def _resolve_group(group_id: str) -> str:
    """`opencams sandbox … --group G`: opencams GroupId -> Meta group id, from the database."""
    from sqlalchemy import select

    from opencams.store.tables import chat_groups

    settings = settings_or_exit()
    engine = db.make_sync_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            meta = conn.execute(
                select(chat_groups.c.meta_group_id).where(chat_groups.c.id == group_id)
            ).scalar()
    except Exception as exc:  # an unreachable database is an operator error here, not a bug
        typer.echo(f"error: cannot read the database to resolve --group: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    if meta is None:
        raise LookupError(f"no group {group_id} known to Meta in {settings.database_url}")
    return str(meta)


app.add_typer(
    build_sandbox_app(_resolve_group),
    name="sandbox",
    help="The WhatsApp simulator: run it on its own, or drive a running one (test controls).",
)


def main() -> None:
    app()
