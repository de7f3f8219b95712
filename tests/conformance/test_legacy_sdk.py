"""The legacy core SDK (aliyun-python-sdk-core): V1 signatures, form-body parameters, GET."""

from __future__ import annotations

import json
import uuid

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest

from tests.conformance.helpers import wait_for
from tests.conformance.tenancy import KEY_A, NUM_LOOP, SPACE_A1
from tests.live import LiveServer


def request(server: LiveServer, action: str, method: str = "POST") -> CommonRequest:
    req = CommonRequest(domain=server.endpoint, version="2020-06-06", action_name=action)
    req.set_protocol_type("http")
    req.set_method(method)
    req.set_accept_format("json")
    return req


def call(client: AcsClient, req: CommonRequest) -> dict[str, object]:
    return json.loads(client.do_action_with_exception(req))  # type: ignore[no-any-return]


def test_legacy_sdk_add_and_list(server: LiveServer) -> None:
    client = AcsClient(KEY_A[0], KEY_A[1], "cn-hangzhou")
    subject = f"Legacy {uuid.uuid4().hex[:8]} é"
    add = request(server, "AddChatGroup")
    for name, value in (
        ("CustSpaceId", SPACE_A1),
        ("BusinessNumber", NUM_LOOP),
        ("Subject", subject),
    ):
        add.add_body_params(name, value)
    body = call(client, add)
    assert body["Code"] == "OK" and body["UniqueCode"]

    def listed() -> dict[str, object] | None:
        req = request(server, "ListChatGroup", method="GET")
        req.add_query_param("CustSpaceId", SPACE_A1)
        req.add_query_param("BusinessNumber", NUM_LOOP)
        req.add_query_param("Subject", subject)
        req.add_query_param(
            "Page", json.dumps({"Index": 1, "Size": 20})
        )  # with spaces, as it sends
        data = call(client, req)["Data"]
        assert isinstance(data, dict)
        items = data["List"]
        assert isinstance(items, list)
        return items[0] if items and items[0]["GroupStatus"] == "ACTIVE" else None

    group = wait_for(listed)
    assert group["Subject"] == subject


def test_legacy_sdk_sees_gateway_errors(server: LiveServer) -> None:
    client = AcsClient(KEY_A[0], "not-the-secret-0000000", "cn-hangzhou")
    req = request(server, "ListChatGroup")
    req.add_query_param("CustSpaceId", SPACE_A1)
    with pytest.raises(ServerException) as info:
        call(client, req)
    assert info.value.get_error_code() == "SignatureDoesNotMatch"
    assert info.value.get_http_status() == 400
