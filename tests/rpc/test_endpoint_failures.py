"""Failures that a healthy live server cannot show: a database that is gone, and a bug.

The endpoint is driven in-process over ASGI. The database failure is real (PostgreSQL on a port
where nothing listens); the bug is injected, the one failure here that cannot be caused for real.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from opencams.access.audit import AuditLog
from opencams.access.authn import Authenticator
from opencams.access.authz import AllowAll
from opencams.access.sts import RoleAssumer, Tokens
from opencams.access.throttle import MemoryThrottle, Throttling
from opencams.channel.types import CreatedGroupRequest
from opencams.groups.context import Deps
from opencams.names import API_VERSION
from opencams.rpc import actions
from opencams.rpc.endpoint import Endpoint
from opencams.store import db
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store
from tests.live import free_port
from tests.signing import v3_request

BOX = SecretBox("unit-test-master-key-0123456789abcdef")


class NoChannel:
    async def create_group(self, *_: Any, **__: Any) -> CreatedGroupRequest:
        raise AssertionError("not reached")


def app_over(store: Store) -> Starlette:
    tokens = Tokens(BOX)
    endpoint = Endpoint(
        authenticator=Authenticator(store, BOX, tokens),
        authorizer=AllowAll(),
        throttling=Throttling(MemoryThrottle(), store, default_rate=0),
        audit=AuditLog(store),
        deps=Deps(store=store, channel=NoChannel(), secrets=BOX),
        roles=RoleAssumer(store, tokens),
    )
    return Starlette(routes=[Route("/", endpoint, methods=["GET", "POST"])])


async def call(app: Starlette) -> httpx.Response:
    request = v3_request(
        "http://testserver",
        "ListChatGroup",
        {"CustSpaceId": "c", "BusinessNumber": "8613800000001", "Page": "{}"},
        "LTAI5tAnyKey000001",
        "s",
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.send(request)


async def test_database_down_is_service_unavailable() -> None:
    store = Store.open(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    try:
        response = await call(app_over(store))
    finally:
        await store.dispose()
    body = response.json()
    assert response.status_code == 503
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == "ServiceUnavailable"
    assert response.headers["x-acs-request-id"] == body["RequestId"]


async def test_a_bug_is_an_internal_error_envelope(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path}/bug.db"
    db.upgrade(url)
    store = Store.open(url)

    async def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "access_key", broken)
    try:
        response = await call(app_over(store))
    finally:
        await store.dispose()
    body = response.json()
    assert response.status_code == 500
    assert body["Code"] == "InternalError"
    assert "boom" not in body["Message"]  # internals are logged, not returned
    assert "boom" in caplog.text and body["RequestId"] in caplog.text


def test_every_action_declares_its_ram_action() -> None:
    for (version, name), action in actions.ACTIONS.items():
        if version == API_VERSION:
            assert action.ram_action == f"cams:{name}"
        else:  # AssumeRole: the role's trust decides, not a RAM policy
            assert (name, action.ram_action) == ("AssumeRole", None)


async def test_a_query_string_that_is_not_utf8_is_a_bad_parameter(tmp_path: Any) -> None:
    """The endpoint reads the query from the ASGI scope: bytes that are not UTF-8 (which
    uvicorn's parser refuses, but another ASGI server may pass on) are InvalidParameter."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    db.upgrade(url)
    store = Store.open(url)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"Action=\xff\xfe&Version=2020-06-06",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "scheme": "http",
    }
    try:
        await app_over(store)(scope, receive, send)
    finally:
        await store.dispose()
    assert sent[0]["status"] == 400
    body = json.loads(sent[1]["body"])
    assert body["Code"] == "InvalidParameter"
    assert "UTF-8" in body["Message"]
