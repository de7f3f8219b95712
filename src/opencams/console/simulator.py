"""The console's way to the built-in simulator: its own control API (`/control/...`,
docs/simulator.md), called over ASGI in this process, exactly as `opencams sandbox` calls it over
HTTP. Nothing of the simulator is reimplemented here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import httpx
from starlette.types import ASGIApp

from opencams.sandbox.state import OPERATIONS

# Group controls (the group is Meta's id of one of the account's groups) and global ones.
GROUP_CONTROLS = ("tap-link", "leave", "cancel-request", "join-approval", "suspend", "unsuspend")
WEBHOOK_CONTROLS = (
    "webhooks/hold",
    "webhooks/release",
    "webhooks/reorder",
    "webhooks/drop",
    "webhooks/flush",
)
# What `fail-next` can fail: the simulator's own list.
FAILABLE = OPERATIONS


@dataclass(frozen=True)
class ControlAnswer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def error(self) -> str:
        return str(self.body.get("error", self.body))


class SimulatorControls:
    def __init__(self, app: ASGIApp) -> None:
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://simulator", timeout=30.0
        )

    async def call(self, name: str, body: dict[str, Any] | None = None) -> ControlAnswer:
        response = await self._http.post(f"/control/{name}", json=body or {})
        return _answer(response)

    async def state(self) -> dict[str, Any]:
        answer = _answer(await self._http.get("/control/state"))
        return answer.body if answer.ok else {}

    async def aclose(self) -> None:
        await self._http.aclose()


def _answer(response: httpx.Response) -> ControlAnswer:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text}
    if not isinstance(body, dict):
        body = {"value": body}
    return ControlAnswer(response.status_code, cast(dict[str, Any], body))
