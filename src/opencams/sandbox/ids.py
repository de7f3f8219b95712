"""Identifier formats of Meta's Groups API, as reverse-engineered from Meta's own samples.

The connector must treat all of these as opaque; the simulator reproduces the shapes anyway so
that code written against it does not accidentally depend on a friendlier format (e.g. group ids
that are plain digits and would survive an `int()` round-trip).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string

INVITE_LINK_PREFIX = "https://chat.whatsapp.com/"
GROUP_ID_PREFIX = "capi_group:"
# WhatsApp group JIDs of groups created through the Cloud API all start with this prefix.
GROUP_JID_PREFIX = "120363"

_ALNUM = string.ascii_letters + string.digits
_UNESCAPE = re.compile(r"Z(.)")


def fb_escape(b64: str) -> str:
    """Graph's escaping of base64 inside ids: `Z` -> `ZA` first, then `=` -> `ZD`."""
    return b64.replace("Z", "ZA").replace("=", "ZD")


def fb_unescape(escaped: str) -> str:
    """Reverse of `fb_escape`; scans left to right so `ZA`/`ZD` pairs never overlap."""

    def repl(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "A":
            return "Z"
        if code == "D":
            return "="
        raise ValueError(f"unknown Graph escape Z{code}")

    if escaped.endswith("Z"):
        raise ValueError("dangling Graph escape")
    return _UNESCAPE.sub(repl, escaped)


def encode_opaque(text: str) -> str:
    """`fb_escape(base64(text))`, the shape of group ids, join request ids and cursors."""
    return fb_escape(base64.b64encode(text.encode()).decode("ascii"))


def decode_opaque(value: str) -> str | None:
    """Inverse of `encode_opaque`; None when `value` is not one of ours (or corrupted)."""
    try:
        raw = base64.b64decode(fb_unescape(value), validate=True)
        return raw.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def digits_of(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def new_group_jid() -> str:
    """`120363` + 12 random digits, the numeric part of a WhatsApp group JID."""
    return f"{GROUP_JID_PREFIX}{secrets.randbelow(10**12):012d}"


def make_group_id(business_phone: str, jid: str) -> str:
    """Meta's group id: `fb_escape(b64("capi_group:<business phone digits>:<group jid>"))`."""
    return encode_opaque(f"{GROUP_ID_PREFIX}{digits_of(business_phone)}:{jid}")


def parse_group_id(group_id: str) -> tuple[str, str] | None:
    """(business phone digits, group jid) of a Meta-shaped group id, or None."""
    text = decode_opaque(group_id)
    if text is None or not text.startswith(GROUP_ID_PREFIX):
        return None
    phone, sep, jid = text[len(GROUP_ID_PREFIX) :].partition(":")
    if not sep or not phone.isdigit() or not jid.isdigit():
        return None
    return phone, jid


def make_join_request_id(wa_id: str, jid: str) -> str:
    """Join request id as in Meta's sample: `b64("<user phone>:<group jid>")`, Graph-escaped."""
    return encode_opaque(f"{wa_id}:{jid}")


def new_request_id() -> str:
    """A 15-digit numeric string, like Meta's sample `106540352242922`."""
    return str(10**14 + secrets.randbelow(9 * 10**14))


def new_invite_code(length: int = 22) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def invite_link(code: str) -> str:
    return INVITE_LINK_PREFIX + code


def invite_code_from_link(link_or_code: str) -> str:
    """Accepts a full `https://chat.whatsapp.com/<code>` link or the bare code."""
    text = link_or_code.strip()
    if text.startswith(INVITE_LINK_PREFIX):
        text = text[len(INVITE_LINK_PREFIX) :]
    return text.strip("/")


def new_fbtrace_id() -> str:
    return "".join(secrets.choice(_ALNUM + "_-") for _ in range(11))


def encode_cursor(position: int) -> str:
    # Meta's list cursors are plain base64 of a number (e.g. `MTAxNTExOTQ1MjAwNzI5NDE=`).
    return base64.b64encode(str(position).encode()).decode("ascii")


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.b64decode(cursor, validate=True).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    return int(text)


def normalize_wa_id(user: str) -> str | None:
    """`+1 786-534-7866` / `17865347866` -> `17865347866`; None when it is not a phone number."""
    text = user.strip()
    if text.startswith("+"):
        text = text[1:]
    text = text.replace(" ", "").replace("-", "")
    if not text.isdigit() or not 6 <= len(text) <= 20:
        return None
    return text


def new_wamid(jid: str) -> str:
    """`wamid.` + base64, like Meta's `wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0...`: an
    opaque string the connector must not parse (here it carries the group jid and 10 random
    bytes)."""
    raw = b"\x18\x12" + jid.encode() + b"\x15\x02\x00\x12\x18\x14" + secrets.token_bytes(10)
    return "wamid." + base64.b64encode(raw).decode("ascii")


def new_media_id() -> str:
    """Meta's media ids are numeric strings (15-16 digits)."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


# Country codes of the phone prefixes the simulator names in BSUIDs (`CC.<digits>`); others: ZZ.
_BSUID_COUNTRIES = (
    ("1", "US"),
    ("44", "GB"),
    ("49", "DE"),
    ("55", "BR"),
    ("852", "HK"),
    ("86", "CN"),
    ("91", "IN"),
)


def new_bsuid(wa_id: str, enterprise: bool = False) -> str:
    """A business-scoped user id: `CC.` (or `CC.ENT.` for a parent BSUID) + 20 digits."""
    country = next((cc for prefix, cc in _BSUID_COUNTRIES if wa_id.startswith(prefix)), "ZZ")
    digits = f"{secrets.randbelow(10**20):020d}"
    return f"{country}.ENT.{digits}" if enterprise else f"{country}.{digits}"
