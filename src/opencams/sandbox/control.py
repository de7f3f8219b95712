"""Test controls under `/control/...` (docs/simulator.md#test-controls): not part of Meta's API.

JSON in, JSON out; a refusal is a 4xx `{"error": "..."}` (plus `code` when a Meta code explains
it), so `opencams sandbox CONTROL` can exit non-zero.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ControlRefused
from .ids import new_bsuid
from .members import Members, control_wa_id
from .messages import Messages
from .rules import Rules
from .state import OPERATIONS, WEBHOOK_OPERATIONS, FailMode, FailRule, SimState, User
from .webhooks import Outbox

Body = dict[str, Any]
Handler = Callable[[Body], Awaitable[Body]]


async def control_body(request: Request) -> Body:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ControlRefused(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ControlRefused(400, "the request body must be a JSON object")
    return body


def text_field(body: Body, name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ControlRefused(400, f"missing field: {name}")
        return None
    if not isinstance(value, str):
        raise ControlRefused(400, f"field {name} must be a string")
    return value


def required_text(body: Body, name: str) -> str:
    return cast(str, text_field(body, name))


def bool_field(body: Body, name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise ControlRefused(400, f"field {name} must be true or false")
    return value


class ControlApi:
    def __init__(
        self,
        state: SimState,
        rules: Rules,
        members: Members,
        outbox: Outbox,
        messages: Messages,
    ) -> None:
        self.state = state
        self.rules = rules
        self.members = members
        self.outbox = outbox
        self.messages = messages

    def routes(self) -> list[Route]:
        posts: dict[str, Handler] = {
            "numbers": self.numbers,
            "fail-next": self.fail_next,
            "eligible": self.eligible,
            "tap-link": self.tap_link,
            "cancel-request": self.cancel_request,
            "leave": self.leave,
            "users": self.users,
            "member-message": self.member_message,
            "fail-next-delivery": self.fail_next_delivery,
            "join-approval": self.join_approval,
            "suspend": self.suspend,
            "unsuspend": self.unsuspend,
            "reset": self.reset,
            "webhooks/hold": self.hold,
            "webhooks/release": self.release,
            "webhooks/reorder": self.reorder,
            "webhooks/drop": self.drop,
            "webhooks/duplicate": self.duplicate,
            "webhooks/flush": self.flush,
            "webhooks/redeliver": self.redeliver,
            "webhooks/callback": self.callback,
            "webhooks/verify": self.verify,
        }
        routes = [
            Route(f"/control/{name}", _wrap(h), methods=["POST"]) for name, h in posts.items()
        ]
        routes.append(Route("/control/state", _wrap(self.dump), methods=["GET"]))
        return routes

    # --- numbers and failures ------------------------------------------------------------

    async def numbers(self, body: Body) -> Body:
        phone_number_id = required_text(body, "phone_number_id")
        if not phone_number_id.isdigit():
            raise ControlRefused(400, "phone_number_id must be digits")
        number = self.state.register_number(
            phone_number_id,
            waba_id=text_field(body, "waba_id", required=False),
            display_phone_number=text_field(body, "display_phone_number", required=False),
            access_token=text_field(body, "access_token", required=False),
        )
        return number.dump()

    async def fail_next(self, body: Body) -> Body:
        operation = required_text(body, "operation")
        if operation not in OPERATIONS:
            raise ControlRefused(400, f"operation must be one of {', '.join(OPERATIONS)}")
        code = body.get("code")
        if not isinstance(code, int) or isinstance(code, bool) or code <= 0:
            raise ControlRefused(400, "code must be a positive integer (a Meta error code)")
        mode = body.get("mode", "sync")
        if mode not in ("sync", "webhook"):
            raise ControlRefused(400, "mode must be sync or webhook")
        if mode == "webhook" and operation not in WEBHOOK_OPERATIONS:
            raise ControlRefused(
                400,
                f"{operation} has no webhook; webhook mode is for {', '.join(WEBHOOK_OPERATIONS)}",
            )
        rule = FailRule(operation=operation, code=code, mode=cast(FailMode, mode))
        self.state.add_fail_rule(rule)
        return {"operation": operation, "code": code, "mode": mode}

    async def eligible(self, body: Body) -> Body:
        phone_number_id = required_text(body, "phone_number_id")
        if not phone_number_id.isdigit():
            raise ControlRefused(400, "phone_number_id must be digits")
        number = self.state.register_number(phone_number_id)
        number.eligible = bool_field(body, "eligible")
        return number.dump()

    # --- what users and WhatsApp do ------------------------------------------------------

    async def tap_link(self, body: Body) -> Body:
        return self.members.tap_link(required_text(body, "invite_link"), body.get("wa_id"))

    async def cancel_request(self, body: Body) -> Body:
        return self.members.cancel_request(required_text(body, "group_id"), body.get("wa_id"))

    async def leave(self, body: Body) -> Body:
        return self.members.leave(required_text(body, "group_id"), body.get("wa_id"))

    async def users(self, body: Body) -> Body:
        """Register (or update) a user: profile name, username (which gives a BSUID), hidden
        number, parent BSUID, read receipts."""
        wa_id = control_wa_id(body.get("wa_id"))
        user = self.state.users.get(wa_id) or User(wa_id)
        name = text_field(body, "profile_name", required=False)
        if name is not None:
            user.profile_name = name
        username = text_field(body, "username", required=False)
        if username is not None:
            user.username = username
        if user.username is not None and user.user_id is None:
            user.user_id = new_bsuid(wa_id)
        if "parent_user_id" in body:
            parent = body["parent_user_id"]
            if parent is True:
                user.parent_user_id = user.parent_user_id or new_bsuid(wa_id, enterprise=True)
            elif parent is False or parent is None:
                user.parent_user_id = None
            elif isinstance(parent, str) and parent:
                user.parent_user_id = parent
            else:
                raise ControlRefused(400, "parent_user_id must be true, false or a BSUID")
        if "number_hidden" in body:
            user.number_hidden = bool_field(body, "number_hidden")
        if user.number_hidden and user.user_id is None:
            raise ControlRefused(400, "only a user with a username can hide their number")
        if "read_receipts" in body:
            user.read_receipts = bool_field(body, "read_receipts")
        self.state.users[wa_id] = user
        return {**user.dump(), "identity": user.identity()}

    async def member_message(self, body: Body) -> Body:
        return self.messages.member_sends(body)

    async def fail_next_delivery(self, body: Body) -> Body:
        return self.messages.fail_next_delivery(body)

    async def join_approval(self, body: Body) -> Body:
        """The group's admin makes joining need approval (or not) on their phone."""
        group = self.members.control_group(required_text(body, "group_id"))
        required = bool_field(body, "required")
        group.join_approval_mode = "approval_required" if required else "auto_approve"
        return {"group_id": group.group_id, "join_approval_mode": group.join_approval_mode}

    async def suspend(self, body: Body) -> Body:
        return self._suspension(body, True)

    async def unsuspend(self, body: Body) -> Body:
        return self._suspension(body, False)

    def _suspension(self, body: Body, suspended: bool) -> Body:
        group = self.members.control_group(required_text(body, "group_id"))
        if group.suspended == suspended:
            state = "suspended" if suspended else "not suspended"
            raise ControlRefused(409, f"the group is already {state}")
        self.rules.set_suspended(group, suspended)
        return {"group_id": group.group_id, "suspended": suspended}

    # --- webhooks ------------------------------------------------------------------------

    async def hold(self, body: Body) -> Body:
        self.outbox.hold()
        return {"held": True, "queue_length": self.outbox.queue_length}

    async def release(self, body: Body) -> Body:
        return {"held": False, **await self.outbox.release()}

    async def reorder(self, body: Body) -> Body:
        return {"queue": self.outbox.reorder()}

    async def drop(self, body: Body) -> Body:
        return {"dropped": self.outbox.drop()}

    async def duplicate(self, body: Body) -> Body:
        on = bool_field(body, "on")
        self.outbox.set_duplicate(on)
        return {"duplicate": on}

    async def flush(self, body: Body) -> Body:
        return await self.outbox.flush()

    async def redeliver(self, body: Body) -> Body:
        return {"requeued": self.outbox.redeliver_dead_letters()}

    async def callback(self, body: Body) -> Body:
        """Change where webhooks go (e.g. a standalone simulator whose server moved)."""
        url = text_field(body, "callback_url", required=False)
        self.outbox.config.callback_url = url
        self.outbox.wake()
        return {"callback_url": url}

    async def verify(self, body: Body) -> Body:
        """Run Meta's GET verification handshake against the callback URL."""
        result = await self.outbox.verify_callback(required_text(body, "verify_token"))
        if not result["ok"]:
            raise ControlRefused(409, f"callback verification failed: {result}")
        return result

    # --- state ---------------------------------------------------------------------------

    async def dump(self, body: Body) -> Body:
        config = self.outbox.config
        return {
            "config": {
                "graph_version": config.graph_version,
                "webhook_delay": config.webhook_delay,
                "retry_delays": list(config.retry_delays),
            },
            **self.state.dump(),
            "webhooks": self.outbox.dump(),
        }

    async def reset(self, body: Body) -> Body:
        self.state.clear()
        self.outbox.reset()
        return {"reset": True}


def _wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            body = await control_body(request) if request.method == "POST" else {}
            return JSONResponse(await handler(body))
        except ControlRefused as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    return endpoint
