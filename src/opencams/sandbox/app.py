"""Assembly of the simulator: state + rules + outbox behind one Starlette app."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from .config import SandboxConfig
from .control import ControlApi
from .graph import GraphApi
from .library import Library
from .members import Members
from .messages import Messages
from .rules import Rules
from .state import SimState
from .webhooks import Outbox


class Simulator:
    """A fake Meta: Graph groups endpoints at `/graph/{version}/...`, controls at `/control/...`.

    No lifespan is needed (Starlette's `Mount` would not run it): the webhook worker starts on
    the first request that schedules something. Call `aclose()` on shutdown.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.state = SimState()
        self.outbox = Outbox(config)
        self.rules = Rules(self.state, self.outbox)
        self.members = Members(self.rules)
        self.library = Library(self.state, allow_private=config.media_fetch_allow_private)
        self.messages = Messages(self.rules, self.library)
        graph = GraphApi(self.rules, self.members, self.messages)
        control = ControlApi(self.state, self.rules, self.members, self.outbox, self.messages)
        self.app: ASGIApp = Starlette(
            routes=[*graph.routes(), *control.routes()],
            exception_handlers={404: _not_found, 405: _not_allowed},
        )

    async def flush(self) -> dict[str, int]:
        """In-process equivalent of `POST /control/webhooks/flush`."""
        return await self.outbox.flush()

    async def aclose(self) -> None:
        """Cancel the delivery worker and close its HTTP client (pending webhooks stay queued)."""
        await self.outbox.aclose()


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"no such sandbox endpoint: {request.url.path}"}, 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": f"{request.method} not allowed on {request.url.path}"}, 405)
