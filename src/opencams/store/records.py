"""Typed rows handed out by the store (frozen dataclasses; no raw dicts past this layer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AccessKeyRecord:
    id: str
    account_id: str
    secret_enc: str
    status: str
    user_name: str | None
    account_allowlisted: bool


@dataclass(frozen=True)
class NumberRecord:
    id: int
    space_id: str
    account_id: str
    number: str
    phone_number_id: str
    waba_id: str
    access_token_enc: str


@dataclass(frozen=True)
class GroupRecord:
    id: str
    number_id: int
    business_number: str
    channel_type: str
    subject: str
    description: str | None
    status: str
    meta_group_id: str | None
    invite_link: str | None
    profile_picture_url: str | None
    participant_count: int
    group_type: str | None
    group_link: str | None
    business_role: str | None
    join_approval_mode: str | None
    failure_reason: str | None
    picture_sha256: str | None
    suspension_ts: int | None
    created_at: int
    updated_at: int
    deleted_at: int | None


@dataclass(frozen=True)
class GroupFilter:
    number_id: int
    channel_type: str | None = None
    status: str | None = None
    subject_contains: str | None = None
    group_type: str | None = None
    group_link: str | None = None
    business_number: str = ""  # not a filter: what the listed records carry as theirs


@dataclass(frozen=True)
class OperationRecord:
    id: str
    kind: str
    group_id: str
    meta_request_id: str | None
    state: str
    payload: str | None = None
    created_at: int = 0

    def asked(self) -> dict[str, Any]:
        """The operation's payload (what the caller asked for), decoded."""
        value = json.loads(self.payload) if self.payload else {}
        return value if isinstance(value, dict) else {}
