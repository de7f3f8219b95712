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


OperationKind = Literal["create", "update", "delete", "remove_participants"]
OperationState = Literal["pending", "succeeded", "failed", "partial"]
