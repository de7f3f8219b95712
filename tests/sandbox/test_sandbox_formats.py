"""Id formats, JPEG sizing and multipart parsing (pure functions, no HTTP)."""

from __future__ import annotations

import base64

import httpx
import pytest

from opencams.sandbox import (
    decode_opaque,
    encode_opaque,
    fb_escape,
    fb_unescape,
    make_group_id,
    parse_group_id,
    serialize,
    sign,
)
from opencams.sandbox.ids import (
    decode_cursor,
    encode_cursor,
    invite_code_from_link,
    make_join_request_id,
    new_group_jid,
    new_invite_code,
    new_request_id,
    normalize_wa_id,
)
from opencams.sandbox.media import jpeg_size, parse_multipart
from tests.sandbox.helpers import fake_jpeg

META_SAMPLE_GROUP_ID = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"


def test_group_id_matches_meta_sample() -> None:
    assert make_group_id("+1 705-555-0139", "120363404694233820") == META_SAMPLE_GROUP_ID
    assert parse_group_id(META_SAMPLE_GROUP_ID) == ("17055550139", "120363404694233820")
    assert parse_group_id("not-a-group") is None
    assert parse_group_id(encode_opaque("something:else")) is None


def test_join_request_id_matches_meta_sample() -> None:
    sample = "MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw"
    assert make_join_request_id("16467043595", "120363404694233820") == sample


def test_fb_escape_round_trip() -> None:
    for text in ["Z", "ZZ=", "aZD=", "", "ZA", "=="]:
        assert fb_unescape(fb_escape(text)) == text
    sample_cursor = "eyJvZAmZAzZAXQiOjAsInZAlcnNpb25JZACI6IjE3NTU1NTM3MDUxNzUwNTQ1MTAifQZDZD"
    assert decode_opaque(sample_cursor) == '{"offset":0,"versionId":"1755553705175054510"}'
    with pytest.raises(ValueError, match="escape"):
        fb_unescape("abZQ")
    assert decode_opaque("%%%") is None


def test_generated_formats() -> None:
    jid = new_group_jid()
    assert jid.startswith("120363")
    assert len(jid) == 18
    assert jid.isdigit()
    request_id = new_request_id()
    assert len(request_id) == 15
    assert request_id.isdigit()
    code = new_invite_code()
    assert len(code) == 22
    assert code.isalnum()
    assert invite_code_from_link(f"https://chat.whatsapp.com/{code}") == code
    assert decode_cursor(encode_cursor(42)) == 42
    assert decode_cursor("bm90LWEtbnVtYmVy") is None  # base64 of "not-a-number"
    assert decode_cursor("***") is None
    assert normalize_wa_id("+1 786-534-7866") == "17865347866"
    assert normalize_wa_id("abc") is None


def test_serialize_escapes_unicode_and_sign_is_lowercase_hex() -> None:
    body = serialize({"subject": "äöå", "n": 1})
    assert body == b'{"subject":"\\u00e4\\u00f6\\u00e5","n":1}'
    signature = sign("secret", body)
    assert signature.startswith("sha256=")
    assert signature[7:] == signature[7:].lower()
    assert len(signature) == 7 + 64


def test_jpeg_size() -> None:
    assert jpeg_size(fake_jpeg(640, 480)) == (640, 480)
    assert jpeg_size(b"\x89PNG\r\n\x1a\n") is None
    assert jpeg_size(b"\xff\xd8\xff\xd9") is None
    assert jpeg_size(b"\xff\xd8\xff\xc0\x00") is None


def test_multipart_round_trip_with_httpx_encoder() -> None:
    picture = fake_jpeg(200, 200) + b"\r\n--not-the-boundary\r\n"
    request = httpx.Request(
        "POST",
        "http://x/",
        data={"messaging_product": "whatsapp", "subject": "Ünïcode"},
        files={"file": ("p.jpg", picture, "image/jpeg")},
    )
    body = request.read()
    parts = {p.name: p for p in parse_multipart(body, request.headers["content-type"])}
    assert parts["messaging_product"].data == b"whatsapp"
    assert parts["subject"].data.decode() == "Ünïcode"
    assert parts["file"].data == picture
    assert parts["file"].filename == "p.jpg"
    assert parts["file"].content_type == "image/jpeg"
    with pytest.raises(ValueError, match="boundary"):
        parse_multipart(body, "multipart/form-data")
    with pytest.raises(ValueError, match="closing"):
        parse_multipart(body[:-10], request.headers["content-type"])


def test_base64_of_generated_group_ids_never_needs_url_escaping() -> None:
    # Group ids go into URL paths, so they must not contain '/' or '+'.
    for _ in range(200):
        group_id = make_group_id("8613800000001", new_group_jid())
        assert "/" not in group_id
        assert "+" not in group_id
        raw = base64.b64decode(fb_unescape(group_id))
        assert raw.startswith(b"capi_group:8613800000001:120363")
