"""What the chat-group actions return: typed results. Only `rpc.render` knows how they look on
the wire (PascalCase keys, the envelope)."""

from __future__ import annotations

from dataclasses import dataclass

from opencams.store.records import GroupRecord


@dataclass(frozen=True)
class Created:
    """AddChatGroup: the operation's UniqueCode, and (an extension) the new GroupId."""

    unique_code: str
    group_id: str


@dataclass(frozen=True)
class Done:
    """An accepted change: `result` is what the vendor answers in `Result` (1, or the number of
    participants whose removal was asked)."""

    result: int = 1


@dataclass(frozen=True)
class InviteLink:
    link: str


@dataclass(frozen=True)
class GroupPage:
    """One page of ListChatGroup, and how many groups match in all."""

    total: int
    groups: list[GroupRecord]


@dataclass(frozen=True)
class ParticipantPage:
    """One page of ListChatGroupParticipants (their numbers), and how many there are."""

    total: int
    numbers: list[str]


@dataclass(frozen=True)
class JoinRequestItem:
    """A pending join request: `participant_number` is the user's WhatsApp id, or their
    business-scoped user id when Meta gave no WhatsApp id; `create_time` in epoch ms."""

    join_request_id: str
    participant_number: str
    create_time: int


@dataclass(frozen=True)
class JoinRequestPage:
    """One page of ListChatGroupJoinRequests, and how many requests are pending in all."""

    total: int
    requests: list[JoinRequestItem]


@dataclass(frozen=True)
class JoinRequestResult:
    """The outcome of one JoinRequestId: `code` is "OK" or a documented error code."""

    join_request_id: str
    success: bool
    code: str
    message: str


@dataclass(frozen=True)
class JoinRequestResults:
    """Approve/RejectChatGroupJoinRequests: one result per id, in the order given."""

    results: list[JoinRequestResult]


@dataclass(frozen=True)
class SentMessage:
    """SendChatappMessage: opencams' MessageId of the message (its fate: ListChatappMessage,
    the status callbacks, `opencams messages show`)."""

    message_id: str


@dataclass(frozen=True)
class MessageItem:
    """One ListChatappMessage item (docs/messages.md#listchatappmessage)."""

    message_id: str
    business_number: str
    event_action: str  # DOWN (outbound) | UP (inbound)
    type: str  # message | template
    message_type: str
    message: str | None
    status: str  # Sending, Sent, Delivered, Read, Failed, Unknown, Received
    user_number: str | None  # the GroupId (DOWN) or the member who sent it (UP)
    group_id: str
    wamid: str | None
    send_time_ms: int
    template_code: str | None
    language: str | None
    fail_reason: str | None


@dataclass(frozen=True)
class MessagePage:
    items: list[MessageItem]
