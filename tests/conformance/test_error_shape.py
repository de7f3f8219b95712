"""Both error envelopes, pinned across every path that can fail (raw HTTP, independent signer).

Gateway failures: HTTP 4xx/5xx and exactly {RequestId, HostId, Code, Message, Recommend}.
Business failures: HTTP 200 and exactly {RequestId, Code, Message, Success: false}.
Both: JSON, RequestId an upper-case UUID, echoed in `x-acs-request-id`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conformance.tenancy import (
    KEY_A,
    KEY_A_OFF,
    KEY_B,
    KEY_C,
    NUM_BAD,
    NUM_C1,
    SPACE_A1,
    SPACE_C1,
)
from tests.live import LiveServer
from tests.signing import utc_stamp, v1_params, v3_request

UUID_UPPER = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
LIST = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_BAD, "Page": '{"Index":1,"Size":20}'}
ADD = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_BAD, "Subject": "x"}
SEND = {
    "ChannelType": "whatsapp",
    "Type": "message",
    "From": NUM_BAD,
    "To": "0" * 22,
    "RecipientType": "group",
    "CustSpaceId": SPACE_A1,
    "MessageType": "text",
    "Content": '{"text":"x"}',
}


def common(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert UUID_UPPER.match(body["RequestId"])
    assert response.headers["x-acs-request-id"] == body["RequestId"]
    return body  # type: ignore[no-any-return]


def gateway(response: httpx.Response, code: str, status: int) -> dict[str, Any]:
    body = common(response)
    assert response.status_code == status, body
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}, body
    assert body["Code"] == code, body
    assert body["Message"]
    assert body["HostId"] == response.request.headers["host"]
    return body


def business(response: httpx.Response, code: str) -> dict[str, Any]:
    body = common(response)
    assert response.status_code == 200
    assert set(body) == {"RequestId", "Code", "Message", "Success"}, body
    assert (body["Code"], body["Success"]) == (code, False)
    return body


def send(request: httpx.Request) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return client.send(request)


def v1(
    server: LiveServer,
    action: str,
    params: dict[str, str],
    key: tuple[str, str] = KEY_A,
    method: str = "POST",
    **kw: Any,
) -> httpx.Response:
    signed = v1_params(action, params, *key, method=method, **kw)
    if method == "GET":
        return httpx.get(server.url + "/", params=signed, timeout=10)
    return httpx.post(server.url + "/", params=signed, timeout=10)


def v3(
    server: LiveServer, action: str, params: dict[str, str], key: tuple[str, str] = KEY_A, **kw: Any
) -> httpx.Response:
    return send(v3_request(server.url, action, params, *key, **kw))


# --- success shapes, for contrast -----------------------------------------------------------


def test_success_shapes(server: LiveServer) -> None:
    for response in (
        v3(server, "ListChatGroup", LIST),
        v1(server, "ListChatGroup", LIST),
        v1(server, "ListChatGroup", LIST, method="GET"),
    ):
        body = common(response)
        assert response.status_code == 200
        assert (body["Code"], body["Success"]) == ("OK", True)
        assert body["Data"] == {"Total": 0, "List": []}


def test_form_body_is_accepted_and_covered_by_the_payload_hash(server: LiveServer) -> None:
    form = httpx.QueryParams(LIST).__str__().encode()
    ok = v3(
        server, "ListChatGroup", {}, body=form, content_type="application/x-www-form-urlencoded"
    )
    assert ok.json()["Code"] == "OK"
    request = v3_request(
        server.url,
        "ListChatGroup",
        {},
        *KEY_A,
        body=form,
        content_type="application/x-www-form-urlencoded",
    )
    request = httpx.Request(
        "POST", request.url, headers=request.headers, content=form.replace(b"20", b"21")
    )
    gateway(send(request), "SignatureDoesNotMatch", 400)


# --- gateway failures -----------------------------------------------------------------------


def test_missing_action_and_version(server: LiveServer) -> None:
    body = gateway(
        httpx.post(server.url + "/", params={"Version": "2020-06-06"}), "MissingParameter", 400
    )
    assert '"Action"' in body["Message"]
    body = gateway(
        httpx.post(server.url + "/", params={"Action": "ListChatGroup"}), "MissingParameter", 400
    )
    assert '"Version"' in body["Message"]


def test_wrong_version(server: LiveServer) -> None:
    gateway(v3(server, "ListChatGroup", LIST, version="2017-05-25"), "InvalidVersion", 400)
    gateway(v1(server, "ListChatGroup", LIST, version="2017-05-25"), "InvalidVersion", 400)


def test_unknown_action(server: LiveServer) -> None:
    gateway(v3(server, "SendChatappMassMessage", LIST), "InvalidAction.NotFound", 404)
    gateway(v1(server, "DescribeInstances", LIST), "InvalidAction.NotFound", 404)


def test_unsigned_request(server: LiveServer) -> None:
    gateway(
        httpx.post(
            server.url + "/", params={"Action": "ListChatGroup", "Version": "2020-06-06", **LIST}
        ),
        "IncompleteSignature",
        400,
    )


@pytest.mark.parametrize(
    "header",
    [
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
    ],
)
def test_required_header_unsigned(server: LiveServer, header: str) -> None:
    signed = [
        "accept",
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    ]
    signed.remove(header)
    body = gateway(v3(server, "ListChatGroup", LIST, signed=signed), "IncompleteSignature", 400)
    assert header in body["Message"]


def test_unparsable_authorization(server: LiveServer) -> None:
    request = v3_request(server.url, "ListChatGroup", LIST, *KEY_A)
    for value in (
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SHA256 Credential=x",
        "ACS3-HMAC-SM3 Credential=a,SignedHeaders=host,Signature=b",
    ):
        request.headers["authorization"] = value
        gateway(send(request), "IncompleteSignature", 400)


def test_tampered_query_after_signing(server: LiveServer) -> None:
    request = v3_request(server.url, "AddChatGroup", ADD, *KEY_A)
    tampered = httpx.Request(
        "POST", str(request.url).replace("Subject=x", "Subject=y"), headers=request.headers
    )
    body = gateway(send(tampered), "SignatureDoesNotMatch", 400)
    assert "server string to sign is:ACS3-HMAC-SHA256\n" in body["Message"]
    signed = v1_params("AddChatGroup", ADD, *KEY_A)
    signed["Subject"] = "y"
    body = gateway(httpx.post(server.url + "/", params=signed), "SignatureDoesNotMatch", 400)
    assert "server string to sign is:POST&%2F&" in body["Message"]


def test_tampered_header_after_signing(server: LiveServer) -> None:
    request = v3_request(server.url, "ListChatGroup", LIST, *KEY_A)
    request.headers["host"] = "127.0.0.2:1"
    gateway(send(request), "SignatureDoesNotMatch", 400)


def test_wrong_secret_and_unknown_key(server: LiveServer) -> None:
    gateway(
        v3(server, "ListChatGroup", LIST, key=(KEY_A[0], "wrong-secret-0000000")),
        "SignatureDoesNotMatch",
        400,
    )
    gateway(
        v1(server, "ListChatGroup", LIST, key=(KEY_A[0], "wrong-secret-0000000")),
        "SignatureDoesNotMatch",
        400,
    )
    gateway(
        v3(server, "ListChatGroup", LIST, key=("LTAI5tUnknownKey001", "x")),
        "InvalidAccessKeyId.NotFound",
        404,
    )
    gateway(
        v1(server, "ListChatGroup", LIST, key=("LTAI5tUnknownKey001", "x")),
        "InvalidAccessKeyId.NotFound",
        404,
    )


def test_inactive_key(server: LiveServer) -> None:
    gateway(v3(server, "ListChatGroup", LIST, key=KEY_A_OFF), "InvalidAccessKeyId.Inactive", 400)


@pytest.mark.parametrize("minutes", [-16, 16, -60 * 24])
def test_stale_or_future_timestamp(server: LiveServer, minutes: int) -> None:
    when = utc_stamp(datetime.now(UTC) + timedelta(minutes=minutes))
    gateway(v3(server, "ListChatGroup", LIST, date=when), "InvalidTimeStamp.Expired", 400)
    gateway(v1(server, "ListChatGroup", LIST, timestamp=when), "InvalidTimeStamp.Expired", 400)


def test_timestamp_near_the_edge_is_accepted(server: LiveServer) -> None:
    when = utc_stamp(datetime.now(UTC) - timedelta(minutes=14))
    assert v3(server, "ListChatGroup", LIST, date=when).json()["Code"] == "OK"
    millis = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    assert v1(server, "ListChatGroup", LIST, timestamp=millis).json()["Code"] == "OK"


def test_malformed_timestamp(server: LiveServer) -> None:
    gateway(
        v3(server, "ListChatGroup", LIST, date="29 Nov 2026 11:00:00 GMT"),
        "InvalidTimeStamp.Format",
        400,
    )
    gateway(
        v1(server, "ListChatGroup", LIST, timestamp="2026-11-29T11:00:00+08:00"),
        "InvalidTimeStamp.Format",
        400,
    )


def test_replayed_nonce(server: LiveServer) -> None:
    nonce = uuid.uuid4().hex
    assert v3(server, "ListChatGroup", LIST, nonce=nonce).json()["Code"] == "OK"
    gateway(v3(server, "ListChatGroup", LIST, nonce=nonce), "SignatureNonceUsed", 400)
    # The same nonce under another AccessKeyId is that key's own.
    other = {
        "CustSpaceId": "cams-beta01",
        "BusinessNumber": "8613800000031",
        "Page": '{"Index":1,"Size":1}',
    }
    assert v3(server, "ListChatGroup", other, key=KEY_B, nonce=nonce).json()["Code"] == "OK"
    nonce = uuid.uuid4().hex
    assert v1(server, "ListChatGroup", LIST, nonce=nonce).json()["Code"] == "OK"
    gateway(v1(server, "ListChatGroup", LIST, nonce=nonce), "SignatureNonceUsed", 400)


def test_a_refused_signature_does_not_burn_the_nonce(server: LiveServer) -> None:
    nonce = uuid.uuid4().hex
    gateway(
        v3(server, "ListChatGroup", LIST, key=(KEY_A[0], "wrong-secret-0000000"), nonce=nonce),
        "SignatureDoesNotMatch",
        400,
    )
    assert v3(server, "ListChatGroup", LIST, nonce=nonce).json()["Code"] == "OK"


def test_security_token_with_a_long_term_key(server: LiveServer) -> None:
    response = v3(server, "ListChatGroup", LIST, extra_headers={"x-acs-security-token": "abc"})
    gateway(response, "InvalidSecurityToken.MismatchWithAccessKey", 400)


def test_duplicate_parameter_and_oversized_body(server: LiveServer) -> None:
    signed = v1_params("ListChatGroup", LIST, *KEY_A)
    response = httpx.post(server.url + "/", params=signed, data={"Page": LIST["Page"]})
    body = gateway(response, "InvalidParameter", 400)
    assert '"Page"' in body["Message"]
    big = b"Subject=" + b"x" * (1 << 20)
    gateway(
        v3(server, "AddChatGroup", {}, body=big, content_type="application/x-www-form-urlencoded"),
        "InvalidParameter",
        400,
    )


def test_missing_business_parameter_is_a_gateway_error(server: LiveServer) -> None:
    body = gateway(
        v3(server, "ListChatGroup", {"CustSpaceId": SPACE_A1, "Page": LIST["Page"]}),
        "MissingParameter",
        400,
    )
    assert '"BusinessNumber"' in body["Message"]


# --- business failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "params", "code"),
    [
        ("ListChatGroup", {**LIST, "Page": "[1,2]"}, "InvalidParameter.PageInvalid"),
        (
            "ListChatGroup",
            {**LIST, "ChannelType": "LINE"},
            "InvalidParameter.ChannelTypeNotSupport",
        ),
        (
            "ListChatGroup",
            {**LIST, "GroupStatus": "GONE"},
            "InvalidParameter.GroupStatusNotSupport",
        ),
        ("ListChatGroup", {**LIST, "BusinessNumber": "abc"}, "InvalidParameter.PhoneNumberError"),
        ("AddChatGroup", {**ADD, "Subject": " "}, "InvalidParameter.SubjectInvalid"),
        ("AddChatGroup", {**ADD, "Description": "d" * 2049}, "InvalidParameter.DescriptionInvalid"),
        ("ListChatGroup", {**LIST, "CustSpaceId": "cams-beta01"}, "Authentication.NoAuth"),
        (
            "AddChatGroup",
            {**ADD, "JoinApprovalMode": "sometimes"},
            "InvalidParameter.JoinApprovalModeInvalid",
        ),
        (
            "ApproveChatGroupJoinRequests",
            {**ADD, "GroupId": "G-any", "JoinRequestIds": "[]"},
            "InvalidParameter.JoinRequestListInvalid",
        ),
        (
            "RejectChatGroupJoinRequests",
            {**ADD, "GroupId": "G-any", "JoinRequestIds": '["a","a"]'},
            "InvalidParameter.JoinRequestListInvalid",
        ),
        (
            "ListChatGroupJoinRequests",
            {**ADD, "GroupId": "G-unknown"},
            "NotFound.ChatGroup",
        ),
        (
            "SendChatappMessage",
            {**SEND, "RecipientType": "individual"},
            "InvalidParameter.RecipientTypeNotSupport",
        ),
        ("SendChatappMessage", {**SEND, "Type": "sms"}, "InvalidParameter.TypeNotSupport"),
        (
            "SendChatappMessage",
            {**SEND, "MessageType": "interactive"},
            "InvalidParameter.MessageTypeNotSupport",
        ),
        (
            "SendChatappMessage",
            {k: v for k, v in SEND.items() if k != "MessageType"},
            "InvalidParameter.MessageTypeNotEmpty",
        ),
        (
            "SendChatappMessage",
            {k: v for k, v in SEND.items() if k != "Content"},
            "InvalidParameter.ContentNotEmpty",
        ),
        ("SendChatappMessage", {**SEND, "Content": "{"}, "InvalidParameter.ContentError"),
        ("SendChatappMessage", {**SEND, "Content": '{"text":""}'}, "InvalidParameter.TextNotEmpty"),
        (
            "SendChatappMessage",
            {**SEND, "MessageType": "image", "Content": "{}"},
            "InvalidParameter.LinkNotEmpty",
        ),
        (
            "SendChatappMessage",
            {**SEND, "Type": "template"},
            "InvalidParameter.TemplateCodeNotEmpty",
        ),
        (
            "SendChatappMessage",
            {**SEND, "Type": "template", "TemplateCode": "t"},
            "InvalidParameter.LanguageNotEmpty",
        ),
        (
            "SendChatappMessage",
            {
                **SEND,
                "Type": "template",
                "TemplateCode": "t",
                "Language": "en",
                "TemplateParams": "[1]",
            },
            "InvalidParameter.TemplateParams",
        ),
        ("SendChatappMessage", SEND, "NotFound.ChatGroup"),
        (
            "ListChatappMessage",
            {**LIST, "ChannelType": "whatsapp", "EventAction": "SIDEWAYS"},
            "InvalidParameter.FilterInvalid",
        ),
    ],
)
def test_business_failure_shape(
    server: LiveServer, action: str, params: dict[str, str], code: str
) -> None:
    business(v3(server, action, params), code)
    business(v1(server, action, params), code)


def test_not_allowlisted_shape(server: LiveServer) -> None:
    params = {"CustSpaceId": SPACE_C1, "BusinessNumber": NUM_C1, "Page": LIST["Page"]}
    business(v3(server, "ListChatGroup", params, key=KEY_C), "Forbidden.NotInAllowlist")
