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
