"""Hostile testing through the real server (`opencams serve` subprocesses), with figures.

Every test records its figures (tests/hostile/figures.py); they are printed at the end of the run,
one line each (tests/conftest.py). Counts are sized for a default run of a few minutes on two cores;
OPENCAMS_HOSTILE_FULL=1 multiplies them by 10. Everything is sent to 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.tenancy import TENANCY
from tests.databases import BACKENDS, database_url
from tests.hostile.figures import take_figures
from tests.live import LiveServer, live_server


@pytest.fixture(autouse=True)
def report_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test's figures go into its report (tests/conftest.py prints them after the run)."""
    yield
    for line in take_figures():
        request.node.user_properties.append(("figure", line))


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server on SQLite with the built-in simulator, for the tests that only send."""
    work: Path = tmp_path_factory.mktemp("hostile-sqlite")
    with database_url("sqlite", work) as url, live_server(url, work, TENANCY) as server:
        yield server


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The same on PostgreSQL (fails rather than skips under CI=true when it is unreachable)."""
    work: Path = tmp_path_factory.mktemp("hostile-pg")
    with database_url("postgresql", work) as url, live_server(url, work, TENANCY) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend_server(request: pytest.FixtureRequest) -> tuple[str, LiveServer]:
    """(backend, server) for each backend, the servers shared by the session."""
    backend: str = request.param
    server: LiveServer = request.getfixturevalue(f"{backend.replace('postgresql', 'pg')}_server")
    return backend, server
