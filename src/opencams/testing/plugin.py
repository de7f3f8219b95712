"""The pytest plugin of opencams (entry point `pytest11`): fixtures for tests against a real
opencams server (docs/testing.md).

Importing it starts nothing and imports nothing of the server: a test suite that never asks for
these fixtures is not touched (the server's modules load, and a server starts, only when a test
asks for `cams_server` or a fixture built on it).

Fixtures:
    cams_server     an opencams server for the test (see opencams.testing.server.CamsServer):
                    `endpoint`, `access_key_id`, `access_key_secret`, `space`, `number`, …
    cams_client     the official SDK's client for it (signature: the `cams_signature` fixture)
    cams_sandbox    the simulator's test controls (opencams.testing.sandbox.Sandbox)
    cams_tenancy    override it to provision your own tenancy (default: None, the default one)
    cams_settings   override it to change settings (a dict of Settings fields)
    cams_signature  "v3" (default) or "v1"; override or parametrize it

Markers:
    cams_tenancy(dict or path)  this test's tenancy (a path is relative to the test's file)
    cams_settings(**fields)     this test's settings
    cams_confirm(mode)          "immediate" (default), "manual", or a delay in seconds
    cams_fresh                  a server of the test's own, closed after it

Servers are kept for the session, one per tenancy and settings, and reset before each test that
borrows one (`opencams_server_scope = function` in the ini file: a fresh server for every test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from opencams.testing.sandbox import Sandbox
    from opencams.testing.server import CamsServer, ServerPool

MARKERS = (
    "cams_tenancy(tenancy): provision this test's opencams server from a dict or a YAML file "
    "(opencams apply's format).",
    "cams_settings(**settings): opencams settings of this test's server.",
    'cams_confirm(mode): when the simulator confirms operations: "immediate", "manual" or '
    "a delay in seconds.",
    "cams_fresh: a fresh opencams server for this test alone.",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "opencams_server_scope",
        'opencams test servers: "session" (kept, reset between tests; the default) or '
        '"function" (a fresh server for every test)',
        default="session",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


@pytest.fixture(scope="session")
def cams_server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The session's opencams servers (their databases are under pytest's temporary dir)."""
    from opencams.testing.server import ServerPool

    pool = ServerPool(tmp_path_factory.mktemp("opencams", numbered=True))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def cams_tenancy() -> Any:
    """The tenancy of `cams_server`: None for the default one; override it with a dict in the
    form of `opencams apply`'s YAML, or the path of such a file."""
    return None


@pytest.fixture
def cams_settings() -> dict[str, Any]:
    """Settings of `cams_server` (Settings fields: {"max_groups_per_number": 3})."""
    return {}


@pytest.fixture
def cams_signature() -> str:
    """How `cams_client` signs: "v3" (ACS3-HMAC-SHA256) or "v1" (HMAC-SHA1)."""
    return "v3"


def _tenancy(request: pytest.FixtureRequest, fixture_value: Any) -> Any:
    marker = request.node.get_closest_marker("cams_tenancy")
    if marker is None:
        return fixture_value
    if len(marker.args) != 1 or marker.kwargs:
        pytest.fail("cams_tenancy takes one argument: a dict or a YAML file's path", pytrace=False)
    value = marker.args[0]
    if isinstance(value, str | Path) and not Path(value).is_absolute():
        beside = request.path.parent / value
        value = beside if beside.exists() else Path(request.config.rootpath) / value
    return value


def _confirmations(request: pytest.FixtureRequest) -> Any:
    marker = request.node.get_closest_marker("cams_confirm")
    if marker is None:
        return None
    if len(marker.args) != 1 or marker.kwargs:
        pytest.fail(
            'cams_confirm takes one argument: "immediate", "manual" or seconds', pytrace=False
        )
    return marker.args[0]


@pytest.fixture
def cams_server(
    request: pytest.FixtureRequest,
    cams_server_pool: ServerPool,
    cams_tenancy: Any,
    cams_settings: dict[str, Any],
) -> Iterator[CamsServer]:
    """An opencams server with its own temporary database and simulator, clean for this test."""
    from opencams.testing.tenancy import TenancyError

    tenancy = _tenancy(request, cams_tenancy)
    settings = dict(cams_settings)
    marker = request.node.get_closest_marker("cams_settings")
    if marker is not None:
        settings.update(marker.kwargs)
    fresh = (
        request.node.get_closest_marker("cams_fresh") is not None
        or request.config.getini("opencams_server_scope") == "function"
    )
    problem = None
    try:
        if fresh:
            server = cams_server_pool.fresh(tenancy, settings)
        else:
            server = cams_server_pool.acquire(tenancy, settings)
    except (TenancyError, ValueError) as exc:
        problem = str(exc)
    if problem is not None:  # outside the except block: the message alone, no traceback chain
        pytest.fail(f"opencams test server: {problem}", pytrace=False)
    try:
        confirmations = _confirmations(request)
        if confirmations == "manual":
            server.sandbox.confirm_manually()
        elif confirmations not in (None, "immediate"):
            server.sandbox.confirm_after(float(confirmations))
        yield server
    finally:
        cams_server_pool.release(server)


@pytest.fixture
def cams_client(cams_server: CamsServer, cams_signature: str) -> Any:
    """The official SDK's client (alibabacloud-cams20200606) for `cams_server`."""
    from opencams.testing.server import SdkMissing

    try:
        return cams_server.client(signature=cams_signature)  # type: ignore[arg-type]
    except SdkMissing as exc:
        problem = str(exc)
    pytest.fail(f"cams_client: {problem}", pytrace=False)


@pytest.fixture
def cams_sandbox(cams_server: CamsServer) -> Sandbox:
    """The simulator's test controls of `cams_server` (opencams.testing.sandbox.Sandbox)."""
    return cams_server.sandbox
