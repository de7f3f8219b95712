"""Typed requests of the chat-group actions, as decoded from the wire by `rpc.actions`.

Required scalars are guaranteed non-empty by the wire layer (MissingParameter otherwise); the
rules about their content live in `groups.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawComplex:
    """A decoded `Page`/`List` value; flattened values are always strings."""

    value: Any
    flattened: bool


@dataclass(frozen=True)
class AddChatGroupRequest:
    cust_space_id: str
    business_number: str
    subject: str
    description: str | None = None
    channel_type: str | None = None
    group_link: str | None = None
    join_approval_mode: str | None = None  # an opencams extension


@dataclass(frozen=True)
class ListChatGroupRequest:
    cust_space_id: str
    business_number: str
    page: RawComplex | None
    channel_type: str | None = None
    group_status: str | None = None
    subject: str | None = None
    group_type: str | None = None
    group_link: str | None = None


@dataclass(frozen=True)
class GroupRef:
    """The three parameters that name a group in every per-group action."""

    cust_space_id: str
    business_number: str
    group_id: str
    channel_type: str | None = None


@dataclass(frozen=True)
class UpdateChatGroupRequest:
    ref: GroupRef
    subject: str | None = None
    description: str | None = None
    profile_picture_file: str | None = None
    join_approval_mode: str | None = None  # an opencams extension


@dataclass(frozen=True)
class ListChatGroupParticipantsRequest:
    ref: GroupRef
    page: RawComplex | None = None


@dataclass(frozen=True)
class DeleteChatGroupParticipantsRequest:
    ref: GroupRef
    participants: RawComplex | None = None


@dataclass(frozen=True)
class ListChatGroupJoinRequestsRequest:
    ref: GroupRef
    page: RawComplex | None = None


@dataclass(frozen=True)
class JoinRequestsDecisionRequest:
    """ApproveChatGroupJoinRequests and RejectChatGroupJoinRequests: `JoinRequestIds`."""

    ref: GroupRef
    join_request_ids: RawComplex | None = None


@dataclass(frozen=True)
class SendChatappMessageRequest:
    """SendChatappMessage as opencams serves it: a message to one of the number's groups."""

    channel_type: str
    type: str  # message | template
    from_number: str
    to: str  # the GroupId
    cust_space_id: str | None = None
    cust_waba_id: str | None = None
    recipient_type: str | None = None
    message_type: str | None = None
    content: str | None = None
    template_code: str | None = None
    template_name: str | None = None
    language: str | None = None
    template_params: RawComplex | None = None
    context_message_id: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class ListChatappMessageRequest:
    cust_space_id: str
    business_number: str
    channel_type: str
    page: RawComplex | None
    event_action: str | None = None
    message_status: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    template_code: str | None = None
    user_number: str | None = None
