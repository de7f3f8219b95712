"""Content rules for request parameters (docs/errors.md business codes, docs/api.md Meta limits).

Meta's limits are checked here, before Meta is called, so that a bad request costs no Graph call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opencams.errors import (
    ChannelTypeNotSupport,
    DescriptionInvalid,
    GroupStatusNotSupport,
    InvalidParameter,
    JoinApprovalModeInvalid,
    PageInvalid,
    PhoneNumberError,
    SubjectInvalid,
)
from opencams.groups.requests import RawComplex
from opencams.names import JOIN_APPROVAL_MODES, GroupStatus

SUPPORTED_CHANNELS = frozenset({"WHATSAPP"})
STATUSES = frozenset(GroupStatus)
MAX_SUBJECT = 128
MAX_DESCRIPTION = 2048
MAX_PAGE_SIZE = 100
_PHONE = re.compile(r"[0-9]{6,20}")
_DECIMAL = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Page:
    index: int
    size: int

    @property
    def offset(self) -> int:
        return (self.index - 1) * self.size


def channel_type(value: str | None) -> str:
    """ChannelType is optional and case-insensitive; WhatsApp is the only channel with groups."""
    if value is None:
        return "WHATSAPP"
    normalized = value.strip().upper()
    if normalized not in SUPPORTED_CHANNELS:
        raise ChannelTypeNotSupport(f"{value!r}; supported: WHATSAPP")
    return normalized


def group_status(value: str | None) -> str | None:
    if value is None:
        return None
    normalized = value.strip().upper()
    if normalized not in STATUSES:
        raise GroupStatusNotSupport(f"{value!r}; supported: {', '.join(sorted(STATUSES))}")
    return normalized


def phone_number(value: str, name: str = "BusinessNumber") -> str:
    if not _PHONE.fullmatch(value):
        raise PhoneNumberError(f"{name} must be 6 to 20 digits, country code first, no '+'")
    return value


def subject(value: str) -> str:
    trimmed = value.strip()
    if not trimmed:
        raise SubjectInvalid("it is empty after trimming white space")
    if len(trimmed) > MAX_SUBJECT:
        raise SubjectInvalid(f"{len(trimmed)} characters after trimming; at most {MAX_SUBJECT}")
    return trimmed


def description(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_DESCRIPTION:
        raise DescriptionInvalid(f"{len(value)} characters; at most {MAX_DESCRIPTION}")
    return value


def join_approval_mode(value: str | None) -> str | None:
    """An opencams extension: Meta's two modes, spelled as Meta spells them."""
    if value is None:
        return None
    if value not in JOIN_APPROVAL_MODES:
        raise JoinApprovalModeInvalid(f"{value!r}; supported: {', '.join(JOIN_APPROVAL_MODES)}")
    return value


MAX_GROUP_LINK = 1024


def group_link(value: str | None) -> str | None:
    """A free-form link (the vendor's Telegram field), stored and matched as given."""
    if value is not None and len(value) > MAX_GROUP_LINK:
        raise InvalidParameter("GroupLink", f"At most {MAX_GROUP_LINK} characters.")
    return value


def _page_int(raw: object, name: str, flattened: bool) -> int:
    # bool is an int in Python; JSON true is not a page number.
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if flattened and isinstance(raw, str) and _DECIMAL.fullmatch(raw):
        return int(raw)
    if raw is None:
        raise PageInvalid(f"{name} is missing")
    raise PageInvalid(f"{name} must be an integer, got {raw!r}")


def page(raw: RawComplex | None, *, default: Page | None = None) -> Page:
    """Page: an object with integer Index >= 1 and Size 1..100."""
    if raw is None:
        if default is None:
            raise PageInvalid("Page is missing")
        return default
    value = raw.value
    if not isinstance(value, dict):
        raise PageInvalid('Page must be a JSON object such as {"Index":1,"Size":20}')
    index = _page_int(value.get("Index"), "Index", raw.flattened)
    size = _page_int(value.get("Size"), "Size", raw.flattened)
    return _bounded(index, size)


def _bounded(index: int, size: int) -> Page:
    if index < 1:
        raise PageInvalid(f"Index must be 1 or more, got {index}")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise PageInvalid(f"Size must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    return Page(index=index, size=size)


def optional_page(raw: RawComplex | None, default: Page) -> Page:
    """Page where both it and its members are optional: what is absent takes the default."""
    if raw is None:
        return default
    if not isinstance(raw.value, dict):
        raise PageInvalid('Page must be a JSON object such as {"Index":1,"Size":20}')
    value = {"Index": default.index, "Size": default.size, **raw.value}
    return page(RawComplex(value, raw.flattened))
