"""Shared fixtures: a migrated database on each backend, and a Store over it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from opencams.config import Settings
from opencams.store import db
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store
from tests.databases import BACKENDS, database_url

# Figures a test reports (tests/hostile/figures.py) travel in its report's user properties, so
# that they reach the terminal summary from pytest-xdist's workers too.
FIGURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        FIGURES.extend(str(value) for name, value in report.user_properties if name == "figure")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        full = os.environ.get("OPENCAMS_HOSTILE_FULL", "").lower() in ("1", "true", "yes")
        terminalreporter.section(f"hostile figures ({'full' if full else 'default'} counts)")
        for line in FIGURES:
            terminalreporter.write_line(f"hostile: {line}")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def migrated_url(db_url: str) -> str:
    db.upgrade(db_url)
    return db_url


@pytest.fixture
async def store(migrated_url: str) -> AsyncIterator[Store]:
    store = Store.open(migrated_url)
    try:
        yield store
    finally:
        await store.dispose()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox("unit-test-master-key-0123456789abcdef")


@pytest.fixture
def settings(migrated_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=migrated_url, secret_key_file=tmp_path / "secret.key")
