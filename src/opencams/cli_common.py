"""What every `opencams` command needs: settings that stop the command cleanly when invalid, and
a store over a database at the current schema."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from opencams.config import Settings, load_settings
from opencams.errors import SchemaError, SecretKeyError
from opencams.store import db
from opencams.store.repo import Store

T = TypeVar("T")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ValueError as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc


def run_with_store(work: Callable[[Store, Settings], Awaitable[T]]) -> T:
    """Run `work` against the database of the current settings (which must be at the schema)."""
    settings = settings_or_exit()

    async def main() -> T:
        db.check_ready(settings.database_url)
        store = Store.open(settings.database_url, synchronous=settings.sqlite_synchronous)
        try:
            return await work(store, settings)
        finally:
            await store.dispose()

    try:
        return asyncio.run(main())
    except (SchemaError, SecretKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
