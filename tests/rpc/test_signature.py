"""The verifier against requests captured from the official SDK, and its refusals."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from opencams import errors
from opencams.access.signature import check_timestamp, parse_timestamp, parse_v1, parse_v3

SUBJECT = "My group ~ é/+*"
CAPTURED_QUERY = [
    ("BusinessNumber", "8613800000000"),
    ("ChannelType", "WHATSAPP"),
    ("CustSpaceId", "cams-abc123"),
    ("Page", '{"Index":1,"Size":20}'),
    ("Subject", SUBJECT),
]
SIGNED = (
    "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;"
    "x-acs-date;x-acs-signature-nonce;x-acs-version"
)


def captured_headers(signature: str = "0" * 64) -> dict[str, list[str]]:
    return {
        "accept": ["application/json"],
        "host": ["127.0.0.1:38137"],
        "user-agent": ["AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"],
        "x-acs-action": ["ListChatGroup"],
        "x-acs-content-sha256": [hashlib.sha256(b"").hexdigest()],
        "x-acs-credentials-provider": ["static_ak"],
        "x-acs-date": ["2026-11-29T11:16:36Z"],
        "x-acs-signature-nonce": ["dc68b008603d761ab2ffb57c9aec926b"],
        "x-acs-version": ["2020-06-06"],
        "authorization": [
            f"ACS3-HMAC-SHA256 Credential=testAKID,SignedHeaders={SIGNED},Signature={signature}"
        ],
        "content-length": ["0"],
        "accept-encoding": ["identity"],
    }


def test_v3_string_to_sign_matches_the_sdk_capture() -> None:
    claim = parse_v3(
        method="POST", path="/", query=CAPTURED_QUERY, headers=captured_headers(), body=b""
    )
    assert claim.string_to_sign == (
        "ACS3-HMAC-SHA256\nd853ee6dbc49be10d417281faa5f52906cdd78ee6feab16754773a8607d574f7"
    )
    assert claim.access_key_id == "testAKID"
    assert claim.nonce == "dc68b008603d761ab2ffb57c9aec926b"
    signature = claim.expected_signature("testSecret")
    good = parse_v3(
        method="POST",
        path="/",
        query=CAPTURED_QUERY,
        headers=captured_headers(signature),
        body=b"",
    )
    good.verify("testSecret")
    with pytest.raises(errors.SignatureDoesNotMatch) as wrong:
        good.verify("otherSecret")
    assert "ACS3-HMAC-SHA256\nd853ee6d" in wrong.value.message


def test_v3_decoded_plus_is_a_space_like_the_sdk_sends_it() -> None:
    # The SDK's URL has `Subject=My+group+~+%C3%A9`; the canonical form must use %20.
    query = parse_qsl("Subject=My+group+~+%C3%A9%2F%2B%2A", keep_blank_values=True)
    assert query == [("Subject", SUBJECT)]


def test_v1_string_to_sign_matches_the_sdk_capture() -> None:
    params = [
        ("Action", "ListChatGroup"),
        ("Format", "json"),
        ("Version", "2020-06-06"),
        ("Timestamp", "2026-11-29T11:16:36Z"),
        ("SignatureNonce", "ad0f4466998ea4dcf91cd6f2672f1792"),
        *CAPTURED_QUERY,
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("AccessKeyId", "testAKID"),
        ("Signature", "x"),
    ]
    claim = parse_v1(method="POST", params=params)
    assert claim.string_to_sign == (
        "POST&%2F&AccessKeyId%3DtestAKID%26Action%3DListChatGroup%26BusinessNumber%3D8613800000000"
        "%26ChannelType%3DWHATSAPP%26CustSpaceId%3Dcams-abc123%26Format%3Djson%26Page%3D%257B%2522"
        "Index%2522%253A1%252C%2522Size%2522%253A20%257D%26SignatureMethod%3DHMAC-SHA1%26Signature"
        "Nonce%3Dad0f4466998ea4dcf91cd6f2672f1792%26SignatureVersion%3D1.0%26Subject%3DMy%2520group"
        "%2520~%2520%25C3%25A9%252F%252B%252A%26Timestamp%3D2026-11-29T11%253A16%253A36Z%26Version"
        "%3D2020-06-06"
    )


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda h: h.pop("authorization"), errors.IncompleteSignature),
        (
            lambda h: h.__setitem__("authorization", ["ACS3-HMAC-SHA256 garbage"]),
            errors.IncompleteSignature,
        ),
        (
            lambda h: h.__setitem__(
                "authorization", ["ACS3-HMAC-SM3 Credential=a,SignedHeaders=host,Signature=b"]
            ),
            errors.IncompleteSignature,
        ),
        (
            lambda h: h.__setitem__(
                "authorization",
                [
                    f"ACS3-HMAC-SHA256 Credential=k,SignedHeaders={SIGNED.replace('host;', '')},Signature=s"
                ],
            ),
            errors.IncompleteSignature,
        ),
        (lambda h: h.pop("x-acs-date"), errors.IncompleteSignature),
        (lambda h: h.__setitem__("x-acs-content-sha256", ["f" * 64]), errors.SignatureDoesNotMatch),
    ],
    ids=[
        "no-authorization",
        "unparsable",
        "other-algorithm",
        "host-unsigned",
        "signed-header-absent",
        "payload-hash",
    ],
)
def test_v3_refusals(mutate, error) -> None:  # type: ignore[no-untyped-def]
    headers = captured_headers()
    mutate(headers)
    with pytest.raises(error):
        parse_v3(method="POST", path="/", query=CAPTURED_QUERY, headers=headers, body=b"")


def test_v1_refusals() -> None:
    with pytest.raises(errors.IncompleteSignature):
        parse_v1(method="POST", params=[("AccessKeyId", "k")])
    with pytest.raises(errors.MissingParameter):
        parse_v1(method="POST", params=[("Signature", "s"), ("Timestamp", "2026-11-29T11:16:36Z")])
    with pytest.raises(errors.IncompleteSignature):
        parse_v1(method="POST", params=[("Signature", "s"), ("SignatureMethod", "HMAC-SHA256")])


def test_timestamps() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_timestamp("2026-11-29T11:16:36.312Z").microsecond == 312000
    check_timestamp("2026-11-29T11:46:00Z", now, 900)
    check_timestamp((now + timedelta(minutes=14)).strftime("%Y-%m-%dT%H:%M:%SZ"), now, 900)
    with pytest.raises(errors.InvalidTimeStampExpired):
        check_timestamp("2026-11-29T11:44:59Z", now, 900)
    with pytest.raises(errors.InvalidTimeStampExpired):
        check_timestamp("2026-11-29T12:15:01Z", now, 900)
    for bad in ("2026-11-29 11:16:36", "2026-11-29T11:16:36+08:00", "yesterday", ""):
        with pytest.raises(errors.InvalidTimeStampFormat):
            parse_timestamp(bad)
