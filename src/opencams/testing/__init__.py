"""opencams in your own tests: a real opencams server with its own temporary database and
simulator, started in this process (docs/testing.md).

    from opencams.testing import running

    with running() as cams:
        client = cams.client()          # the official SDK, configured for the server
        cams.sandbox.tap_link(link, "8613900000001")

With pytest, the plugin shipped with opencams gives the same as fixtures: `cams_server`,
`cams_client`, `cams_sandbox`. This package imports the server only when it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opencams.testing.controls import Confirmations
    from opencams.testing.sandbox import Sandbox, SandboxError, Tap, Webhooks
    from opencams.testing.server import CamsServer, SdkMissing, ServerPool, running
    from opencams.testing.tenancy import TenancyError, default_tenancy

__all__ = [
    "CamsServer",
    "Confirmations",
    "Sandbox",
    "SandboxError",
    "SdkMissing",
    "ServerPool",
    "Tap",
    "TenancyError",
    "Webhooks",
    "default_tenancy",
    "running",
]

_WHERE = {
    "CamsServer": "server",
    "SdkMissing": "server",
    "ServerPool": "server",
    "running": "server",
    "Confirmations": "controls",
    "Sandbox": "sandbox",
    "SandboxError": "sandbox",
    "Tap": "sandbox",
    "Webhooks": "sandbox",
    "TenancyError": "tenancy",
    "default_tenancy": "tenancy",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
