"""What a test server adds in front of the opencams app: confirmation modes and `/_testing/...`.

Only opencams.testing's servers (the pytest plugin, `opencams.testing.running`, `opencams serve
--ephemeral`) are built with this layer, always over a temporary database of their own; a server
of `opencams serve` never has it.

Confirmation modes (when the simulator's webhooks confirm operations: create, update, delete,
removal of participants):

- `immediate`: operations are held at "Meta" and confirmed as the CAMS call that started them
  answers: the answer leaves only once their webhooks have been applied, so the next call sees
  the group ACTIVE (UPDATED, gone…). What users do (tap-link, leave…) is applied likewise before
  the control that did it answers.
- `manual`: operations are held until `POST /_testing/confirm` names their group (or none: all).
  What users do is still applied at once.
- a number of seconds: every webhook (users' too) is sent after that delay, as with
  `OPENCAMS_SANDBOX_WEBHOOK_DELAY`.

Routes (loopback clients only, JSON in and out):
    POST /_testing/reset            forget groups, operations, participants, join requests,
                                    webhook events, nonces, audit records, simulator state
                                    (the tenancy stays); the default confirmation mode again
    POST /_testing/confirmations    {"mode": "immediate" | "manual"} or {"delay": SECONDS}
    POST /_testing/confirm          {"group_id": G} (GroupId, or Meta's group id) or {}: all
    POST /_testing/join-approval    {"group_id": G, "required": bool}: the group's join setting
    GET  /_testing/lookup           ?group_id=G or ?business_number=N: Meta's ids of them
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencams.access.throttle import MemoryThrottle
from opencams.app import SANDBOX_PREFIX, Parts
from opencams.sandbox import Simulator
from opencams.store.repo import Store
from opencams.store.tables import (
    audit_events,
    business_numbers,
    chat_groups,
    join_requests,
    operations,
    participants,
    used_nonces,
    webhook_events,
)

PREFIX = "/_testing"
Mode = Literal["immediate", "manual"]
# "immediate", "manual", or a delay in seconds.
Confirmations = Mode | float

# Children before chat_groups (foreign keys); deleting groups runs the triggers that keep the
# live-group counts and move each number's list version on (never back: what a process
# remembers of a list is keyed by it).
RESET_TABLES = (
    participants,
    join_requests,
    operations,
    chat_groups,
    webhook_events,
    used_nonces,
    audit_events,
)


def check_confirmations(value: object) -> Confirmations:
    if value == "immediate" or value == "manual":
        return value
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return float(value)
    raise ValueError(
        f'confirmations are "immediate", "manual" or a delay in seconds (>= 0), not {value!r}'
    )


class TestingError(Exception):
    __test__ = False  # not a test class, whatever its name

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TestingLayer:
    """ASGI app: the opencams app, with the confirmation modes and the `/_testing` routes."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, app: ASGIApp, parts: Parts, *, database: Path, default: Confirmations):
        if parts.simulator is None:
            raise ValueError("a test server needs the built-in simulator")
        self.app = app
        self.parts = parts
        self.simulator: Simulator = parts.simulator
        self.outbox = self.simulator.outbox
        # Reset deletes rows: only ever in the server's own temporary database.
        own = getattr(parts.store.database, "path", None)  # SQLite's file; None otherwise
        self.own_database = own is not None and own.resolve() == database.resolve()
        self.default = default
        self.callback_url = self.outbox.config.callback_url
        self.confirmations: Confirmations = default
        self.set_confirmations(default)
        self.router = Router(
            routes=[
                Route(f"{PREFIX}/reset", self._wrap(self._reset), methods=["POST"]),
                Route(f"{PREFIX}/confirmations", self._wrap(self._confirmations), methods=["POST"]),
                Route(f"{PREFIX}/confirm", self._wrap(self._confirm), methods=["POST"]),
                Route(f"{PREFIX}/join-approval", self._wrap(self._join_approval), methods=["POST"]),
                Route(f"{PREFIX}/lookup", self._wrap(self._lookup), methods=["GET"]),
            ]
        )

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == PREFIX or path.startswith(f"{PREFIX}/"):
                if not _loopback(scope):
                    response = JSONResponse(
                        {"error": "the test controls answer loopback clients only"}, 403
                    )
                    await response(scope, receive, send)
                    return
                await self.router(scope, receive, send)
                return
            # The CAMS endpoint and the simulator's controls answer once what they started at
            # "Meta" has been confirmed (the Graph API itself and the webhook receiver do not
            # wait: they are what confirming goes through).
            if path == "/" or path.startswith(f"{SANDBOX_PREFIX}/control/"):
                send = self._after_settling(send)
        await self.app(scope, receive, send)

    def _after_settling(self, send: Send) -> Send:
        async def settled_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self.settle()
            await send(message)

        return settled_send

    async def settle(self) -> None:
        if self.confirmations == "immediate":
            await self.outbox.confirm()
        else:
            await self.outbox.settle()

    # --- the modes -----------------------------------------------------------------------

    def set_confirmations(self, value: Confirmations) -> None:
        value = check_confirmations(value)
        self.confirmations = value
        config = self.outbox.config
        if isinstance(value, float):
            config.webhook_delay = value
            self.outbox.hold_operations(False)
        else:
            config.webhook_delay = 0.0
            self.outbox.hold_operations(True)

    # --- routes --------------------------------------------------------------------------

    @staticmethod
    def _wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                body: dict[str, Any] = {}
                if request.method == "POST":
                    raw = await request.body()
                    if raw.strip():
                        body = json.loads(raw)
                    if not isinstance(body, dict):
                        raise TestingError(400, "the request body must be a JSON object")
                else:
                    body = dict(request.query_params)
                return JSONResponse(await handler(body))
            except ValueError as exc:  # malformed JSON, a bad mode
                return JSONResponse({"error": str(exc)}, 400)
            except TestingError as exc:
                return JSONResponse({"error": str(exc)}, exc.status)

        return endpoint

    async def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        await self.reset()
        return {"reset": True, "seconds": round(time.perf_counter() - started, 6)}

    async def reset(self) -> None:
        store = self.parts.store
        if not self.own_database:
            raise TestingError(409, "this server's database is not its own: refusing to reset")
        self.simulator.state.clear()
        self.outbox.reset()
        self.outbox.config.callback_url = self.callback_url
        self.set_confirmations(self.default)
        # A delivery under way ends before the rows go, and pending audit records are written
        # (and then deleted) rather than written after the reset.
        await self.outbox.settle()
        await self.parts.audit.flush()
        await clear_activity(store)
        self.parts.graph.breaker.succeeded()
        if isinstance(self.parts.throttle, MemoryThrottle):
            await self.parts.throttle.aclose()  # forgets every bucket; it stays usable

    async def _confirmations(self, body: dict[str, Any]) -> dict[str, Any]:
        if "delay" in body:
            self.set_confirmations(check_confirmations(body["delay"]))
        else:
            self.set_confirmations(check_confirmations(body.get("mode")))
        if self.confirmations == "immediate":
            await self.outbox.confirm()  # what was held until now is confirmed at once
        return {"confirmations": self.confirmations}

    async def _confirm(self, body: dict[str, Any]) -> dict[str, Any]:
        group_id = body.get("group_id")
        if group_id is None:
            return await self.outbox.confirm()
        if not isinstance(group_id, str) or not group_id:
            raise TestingError(400, "group_id must be a GroupId (or Meta's group id)")
        ids = await confirmation_ids(self.parts.store, group_id)
        return await self.outbox.confirm(ids)

    async def _join_approval(self, body: dict[str, Any]) -> dict[str, Any]:
        group_id = body.get("group_id")
        required = body.get("required")
        if not isinstance(group_id, str) or not isinstance(required, bool):
            raise TestingError(400, "give group_id (a string) and required (true or false)")
        _, meta_id = await meta_group_id(self.parts.store, group_id)
        meta_id = meta_id or group_id
        group = self.simulator.state.active_group(meta_id)
        if group is None:
            raise TestingError(404, f"no active group {group_id} at the simulator")
        group.join_approval_mode = "approval_required" if required else "auto_approve"
        return {"group_id": group_id, "join_approval_mode": group.join_approval_mode}

    async def _lookup(self, body: dict[str, Any]) -> dict[str, Any]:
        if "group_id" in body:
            known, meta_id = await meta_group_id(self.parts.store, str(body["group_id"]))
            return {"group_id": body["group_id"], "known": known, "meta_group_id": meta_id}
        if "business_number" in body:
            number = str(body["business_number"])
            query = select(business_numbers.c.phone_number_id).where(
                business_numbers.c.number == number
            )
            if body.get("space"):
                query = query.where(business_numbers.c.space_id == str(body["space"]))
            async with self.parts.store.read() as tx:
                found = [row[0] for row in (await tx.execute(query)).all()]
            if len(found) > 1:
                raise TestingError(409, f"{number} is a number of several spaces: give space")
            return {"business_number": number, "phone_number_id": found[0] if found else None}
        raise TestingError(400, "give group_id or business_number")


async def clear_activity(store: Store) -> None:
    """Delete everything the tests did (RESET_TABLES), in one transaction; keep the tenancy."""
    async with store.write() as tx:
        for table in RESET_TABLES:
            await tx.execute(delete(table))


async def meta_group_id(store: Store, group_id: str) -> tuple[bool, str | None]:
    """Whether opencams knows the GroupId, and Meta's id of it (None until Meta created it)."""
    async with store.read() as tx:
        row = (
            await tx.execute(
                select(chat_groups.c.meta_group_id).where(chat_groups.c.id == group_id)
            )
        ).first()
    return (False, None) if row is None else (True, row[0])


async def confirmation_ids(store: Store, group_id: str) -> set[str]:
    """What the simulator knows a group's pending operations by: their Meta request ids and the
    group's Meta id (a GroupId opencams does not know is taken as Meta's group id)."""
    async with store.read() as tx:
        group = (
            await tx.execute(
                select(chat_groups.c.meta_group_id).where(chat_groups.c.id == group_id)
            )
        ).first()
        if group is None:
            return {group_id}
        requests = (
            await tx.execute(
                select(operations.c.meta_request_id).where(
                    operations.c.group_id == group_id,
                    operations.c.state == "pending",
                    operations.c.meta_request_id.is_not(None),
                )
            )
        ).all()
    ids = {row[0] for row in requests}
    if group[0]:
        ids.add(group[0])
    return ids


def _loopback(scope: Scope) -> bool:
    client = scope.get("client")
    try:
        return ipaddress.ip_address(client[0] if client else "").is_loopback
    except ValueError:
        return False
