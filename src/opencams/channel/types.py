"""Typed results of Graph calls (Meta's shapes, parsed leniently by the client)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CreatedGroupRequest:
    request_id: str


@dataclass(frozen=True)
class GroupSummary:
    id: str
    subject: str
    created_at: str


@dataclass(frozen=True)
class GroupPage:
    groups: list[GroupSummary]
    after: str | None


@dataclass(frozen=True)
class GroupInfo:
    id: str
    subject: str | None
    description: str | None
    suspended: bool
    join_approval_mode: str | None
    total_participant_count: int | None
    participants: list[str]


@dataclass(frozen=True)
class MediaInfo:
    """`GET /{media-id}`: where to download it (with the token) and what it is."""

    id: str
    url: str
    mime_type: str
    sha256: str
    file_size: int


@dataclass(frozen=True)
class JoinRequestInfo:
    """One pending join request at Meta. `wa_id` may be absent (2026 BSUID variant): then
    `user_id` (the business-scoped user id) names the user."""

    join_request_id: str
    wa_id: str | None
    user_id: str | None
    username: str | None
    creation_timestamp: int | None


@dataclass(frozen=True)
class JoinRequestPage:
    requests: list[JoinRequestInfo]
    after: str | None


@dataclass(frozen=True)
class JoinRequestFailure:
    """One entry of Meta's `failed_join_requests`: the first error's code and text."""

    join_request_id: str
    code: int | None
    message: str


@dataclass(frozen=True)
class JoinRequestOutcome:
    """What Meta answered to an approval (`approved_join_requests`) or a rejection
    (`rejected_join_requests`), and the requests it could not act on."""

    done: list[str]
    failed: list[JoinRequestFailure]
