"""The names the wire, the policies and the database share: API versions, action names, group
statuses, operation kinds and states. Imports nothing of the project."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

API_VERSION = "2020-06-06"  # CAMS
STS_VERSION = "2015-04-01"  # STS AssumeRole, served at the same endpoint

ChatGroupAction = Literal[
    "AddChatGroup",
    "ListChatGroup",
    "UpdateChatGroup",
    "DeleteChatGroup",
    "AddChatGroupInviteLink",
    "DeleteChatGroupInviteLink",
    "ListChatGroupParticipants",
    "DeleteChatGroupParticipants",
    # opencams extensions (docs/api.md#join-requests)
    "ListChatGroupJoinRequests",
    "ApproveChatGroupJoinRequests",
    "RejectChatGroupJoinRequests",
]
# Where a space's and a number's events go (docs/callbacks.md).
WebhookAction = Literal["UpdateAccountWebhook", "UpdatePhoneWebhook"]
StsAction = Literal["AssumeRole"]
# Messages to and from groups (docs/messages.md).
MessageAction = Literal["SendChatappMessage", "ListChatappMessage"]
ActionName = ChatGroupAction | WebhookAction | MessageAction | StsAction

# Every action a policy or a throttle can name.
ACTION_NAMES: tuple[str, ...] = (
    *get_args(ChatGroupAction),
    *get_args(WebhookAction),
    *get_args(MessageAction),
    *get_args(StsAction),
)


class GroupStatus(StrEnum):
    """A chat group's status, as ListChatGroup shows it (docs/api.md#group-statuses)."""

    CREATING = "CREATING"  # asked of Meta, not confirmed yet
    ACTIVE = "ACTIVE"
    UPDATING = "UPDATING"  # a settings change is waiting for Meta
    DELETING = "DELETING"  # a deletion is waiting for Meta
    SUSPENDED = "SUSPENDED"  # by WhatsApp
    INACTIVE = "INACTIVE"  # Meta refused the creation


JoinApprovalMode = Literal["auto_approve", "approval_required"]
JOIN_APPROVAL_MODES: tuple[str, ...] = get_args(JoinApprovalMode)


class JoinRequestState(StrEnum):
    """A join request as opencams records it (docs/api.md#join-requests)."""

    PENDING = "pending"  # filed at Meta, waiting for the business
    REVOKED = "revoked"  # the user cancelled it
    APPROVED = "approved"  # approved by the business; the join's webhook is on its way
    JOINED = "joined"  # the user became a participant
    REJECTED = "rejected"  # rejected by the business (the user may ask again)
    GONE = "gone"  # Meta no longer has it pending (found by sync, or Meta's 131213)


OperationKind = Literal["create", "update", "delete", "remove_participants"]
OperationState = Literal["pending", "succeeded", "failed", "partial"]
