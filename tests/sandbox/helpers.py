"""Helpers shared by the simulator tests: the simulated number, a webhook receiver, Graph calls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

APP_SECRET = "sandbox-test-secret"
TOKEN = "test-token"
NUMBER = "110000000000001"
DISPLAY = "+1 705-555-0139"
WABA = "210000000000001"
DELAY = 0.05


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @property
    def field(self) -> str:
        return str(self.json["entry"][0]["changes"][0]["field"])

    @property
    def value(self) -> dict[str, Any]:
        value: dict[str, Any] = self.json["entry"][0]["changes"][0]["value"]
        return value

    @property
    def group(self) -> dict[str, Any]:
        """The group event of a group webhook ({} for a `messages` webhook)."""
        groups = self.value.get("groups") or [{}]
        item: dict[str, Any] = groups[0]
        return item

    @property
    def statuses(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.value.get("statuses", [])
        return items

    def signature_ok(self, secret: str = APP_SECRET) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-hub-signature-256", ""))


@dataclass
class Receiver:
    """Records every POST; answers `statuses.pop(0)` while any are queued, else 200.

    It runs in the server's thread; list appends/pops are atomic, and tests only poll.
    """

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    attempts: int = 0

    def reset(self) -> None:
        self.received = []
        self.statuses = []
        self.attempts = 0

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":
            await self._verify(scope, send)
            return
        self.attempts += 1
        try:
            status = self.statuses.pop(0)
        except IndexError:
            status = 200
        if status == 200:
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.received.append(Received(b"".join(chunks), headers))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    @staticmethod
    async def _verify(scope: Any, send: Any) -> None:
        """Meta's GET handshake: echo hub.challenge when the verify token matches."""
        query = dict(parse_qsl(scope["query_string"].decode()))
        ok = query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == "verify-me"
        body = query.get("hub.challenge", "").encode() if ok else b"forbidden"
        await send({"type": "http.response.start", "status": 200 if ok else 403, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def wait_for(self, count: int, within: float = 5.0) -> list[Received]:
        await wait_until(lambda: len(self.received) >= count, within)
        return self.received

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.group.get("type") == kind]


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def graph(path: str) -> str:
    return f"/graph/v23.0/{path.lstrip('/')}"


async def create_group(
    client: httpx.AsyncClient,
    receiver: Receiver,
    subject: str = "Team",
    number: str = NUMBER,
    **extra: Any,
) -> dict[str, Any]:
    """Create a group and wait for its success webhook; returns the webhook's group object."""
    response = await client.post(
        graph(f"{number}/groups"),
        json={"messaging_product": "whatsapp", "subject": subject, **extra},
    )
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]

    def arrived() -> bool:
        return any(r.group.get("request_id") == request_id for r in receiver.received)

    await wait_until(arrived)
    return next(r.group for r in receiver.received if r.group.get("request_id") == request_id)


async def join(client: httpx.AsyncClient, invite_link: str, *wa_ids: str) -> None:
    for wa_id in wa_ids:
        response = await client.post(
            "/control/tap-link", json={"invite_link": invite_link, "wa_id": wa_id}
        )
        assert response.status_code == 200, response.text


def assert_graph_error(response: httpx.Response, code: int, status: int = 400) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert error["message"].startswith(f"(#{code}) ")
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert error["fbtrace_id"]


def fake_jpeg(width: int, height: int, padding: int = 0) -> bytes:
    """SOI, an APP0 segment, a baseline SOF0 frame header, EOI: enough for a size check."""
    app0 = b"\xff\xe0" + (16).to_bytes(2, "big") + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = (
        b"\xff\xc0"
        + (17).to_bytes(2, "big")
        + b"\x08"
        + height.to_bytes(2, "big")
        + width.to_bytes(2, "big")
        + b"\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return b"\xff\xd8" + app0 + sof + b"\x00" * padding + b"\xff\xd9"
