"""Calls through the official SDK against a live server: clients, raw calls, groups, waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi import utils_models as api_models
from darabonba.runtime import RuntimeOptions

from tests.conformance.tenancy import KEY_A, SPACE_A1
from tests.live import LiveServer


def make_client(
    server: LiveServer, key: tuple[str, str] = KEY_A, signer: str | None = None
) -> Client:
    """An SDK client of `server`; `signer` "v2" signs V1 RPC (HMAC-SHA1), None signs V3."""
    config = api_models.Config(
        access_key_id=key[0],
        access_key_secret=key[1],
        endpoint=server.endpoint,
        protocol="HTTP",
        region_id="cn-hangzhou",
    )
    if signer:
        config.signature_algorithm = signer
    return Client(config)


def raw_call(client: Client, action: str, query: dict[str, str]) -> dict[str, Any]:
    """Any parameters, signed by the SDK itself; returns {statusCode, headers, body}."""
    params = api_models.Params(
        action=action,
        version="2020-06-06",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    return client.call_api(params, api_models.OpenApiRequest(query=query), RuntimeOptions())  # type: ignore[no-any-return]


# Exactly the snippet of docs/api.md#calling-the-extensions-with-the-official-sdk.
def call_extension(client: Client, action: str, **parameters: str) -> dict[str, Any]:
    """Call an opencams extension action through the official SDK; returns the response body."""
    params = api_models.Params(
        action=action,
        version="2020-06-06",
        protocol="HTTPS",  # the client's own protocol (Config.protocol) is the one used
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    request = api_models.OpenApiRequest(query=parameters)
    response = client.call_api(params, request, RuntimeOptions())
    return response["body"]  # type: ignore[no-any-return]


def list_groups(
    client: Client,
    number: str,
    space: str = SPACE_A1,
    index: int = 1,
    size: int = 100,
    **filters: str,
) -> Any:
    """One ListChatGroup page of `number` (asserted OK); returns its Data (.list, .total…)."""
    request = m.ListChatGroupRequest(
        cust_space_id=space,
        business_number=number,
        page=m.ListChatGroupRequestPage(index=index, size=size),
        **filters,
    )
    response = client.list_chat_group(request)
    assert response.body.code == "OK", response.body.to_map()
    return response.body.data


def add_group(
    client: Client, number: str, subject: str, space: str = SPACE_A1, **extra: str
) -> Any:
    """AddChatGroup; returns the response body (.code, .unique_code, …), whatever its Code."""
    return client.add_chat_group(
        m.AddChatGroupRequest(cust_space_id=space, business_number=number, subject=subject, **extra)
    ).body


def ref(number: str, group_id: str, space: str = SPACE_A1) -> dict[str, str]:
    """The keyword arguments naming one group in an SDK request model."""
    return {"cust_space_id": space, "business_number": number, "group_id": group_id}


def new_active_group(client: Client, number: str, prefix: str = "Group") -> tuple[str, str]:
    """A fresh ACTIVE group; returns (GroupId, subject)."""
    subject = f"{prefix} {uuid.uuid4().hex[:8]}"
    assert add_group(client, number, subject).code == "OK"
    item = wait_for(
        lambda: next(
            (
                g
                for g in list_groups(client, number, subject=subject).list
                if g.group_status == "ACTIVE"
            ),
            None,
        )
    )
    return item.group_id, subject


def group_item(client: Client, number: str, subject: str) -> Any:
    """The newest group of `number` whose subject contains `subject`, or None."""
    data = list_groups(client, number, subject=subject)
    return data.list[0] if data.list else None


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `predicate` every 50 ms until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
