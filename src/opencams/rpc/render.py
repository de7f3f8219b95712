"""Typed results on the wire: the fields each action answers beside RequestId, Code and Success
(rpc.envelope adds those). PascalCase keys live here and nowhere else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from opencams.access.sts import AssumedRole
from opencams.groups.results import (
    Created,
    Done,
    GroupPage,
    InviteLink,
    JoinRequestPage,
    JoinRequestResults,
    MessageItem,
    MessagePage,
    ParticipantPage,
    SentMessage,
)
from opencams.store.records import GroupRecord

Fields = dict[str, Any]


def created(result: Created) -> Fields:
    return {"UniqueCode": result.unique_code, "GroupId": result.group_id}


def done(result: Done) -> Fields:
    return {"Result": result.result}


def acknowledged(result: Done) -> Fields:
    """The webhook actions answer only RequestId, Code (and Success)."""
    return {}


def invite_link(result: InviteLink) -> Fields:
    return {"InviteLink": result.link}


def group_item(group: GroupRecord) -> Fields:
    """A ListChatGroup item; keys without a value are omitted (docs/api.md#listchatgroup)."""
    item: Fields = {}
    for key, value in (
        ("GroupId", group.id),
        ("BusinessNumber", group.business_number),
        ("Subject", group.subject),
        ("Description", group.description),
        ("GroupStatus", group.status),
        ("InviteLink", group.invite_link),
        ("ProfilePictureFile", group.profile_picture_url),
        ("TotalParticipantCount", group.participant_count),
        ("GmtModifier", group.updated_at),
        ("GroupType", group.group_type),
        ("GroupLink", group.group_link),
        ("BusinessRole", group.business_role),
        ("JoinApprovalMode", group.join_approval_mode),  # an opencams extension
    ):
        if value is not None and value != "":
            item[key] = value
    return item


# The items of the last pages rendered, by the identity of their list of records: the store
# hands out the same list for a page it remembers (store.listing.PageMemory), so a page read
# again renders nothing again. The entry holds the list, so that its id cannot be reused while
# it is here. Rendered items are shared between answers and never changed.
_RENDERED: dict[int, tuple[Sequence[GroupRecord], list[Fields]]] = {}
MAX_RENDERED = 256


def group_page(result: GroupPage) -> Fields:
    groups = result.groups
    found = _RENDERED.get(id(groups))
    if found is None or found[0] is not groups:
        if len(_RENDERED) >= MAX_RENDERED:
            _RENDERED.clear()
        found = _RENDERED[id(groups)] = (groups, [group_item(g) for g in groups])
    return {"Data": {"Total": result.total, "List": found[1]}}


def participant_page(result: ParticipantPage) -> Fields:
    return {
        "Data": {
            "Total": result.total,
            "List": [{"ParticipantNumber": n} for n in result.numbers],
        }
    }


def join_request_page(result: JoinRequestPage) -> Fields:
    return {
        "Data": {
            "Total": result.total,
            "List": [
                {
                    "JoinRequestId": r.join_request_id,
                    "ParticipantNumber": r.participant_number,
                    "CreateTime": r.create_time,
                }
                for r in result.requests
            ],
        }
    }


def join_request_results(result: JoinRequestResults) -> Fields:
    return {
        "Results": [
            {
                "JoinRequestId": r.join_request_id,
                "Success": r.success,
                "Code": r.code,
                "Message": r.message,
            }
            for r in result.results
        ]
    }


def assumed_role(result: AssumedRole) -> Fields:
    """STS AssumeRole's answer."""
    return {
        "AssumedRoleUser": {"Arn": result.arn, "AssumedRoleId": result.assumed_role_id},
        "Credentials": {
            "AccessKeyId": result.session.access_key_id,
            "AccessKeySecret": result.session.secret,
            "SecurityToken": result.token,
            "Expiration": result.session.expiration,
        },
    }


def sent_message(result: SentMessage) -> Fields:
    return {"MessageId": result.message_id}


EVENT_ACTION_NAMES = {"DOWN": "outbound", "UP": "inbound"}


def message_item(item: MessageItem) -> Fields:
    """A ListChatappMessage item; keys without a value are omitted (docs/messages.md)."""
    sent = datetime.fromtimestamp(item.send_time_ms / 1000, UTC)
    fields: Fields = {}
    for key, value in (
        ("MessageId", item.message_id),
        ("UniqueMessageId", item.wamid),
        ("BusinessNumber", item.business_number),
        ("ChannelType", "whatsapp"),
        ("EventAction", item.event_action),
        ("EventActionName", EVENT_ACTION_NAMES[item.event_action]),
        ("Type", item.type),
        ("MessageType", item.message_type),
        ("MessageTypeName", item.message_type),
        ("Message", item.message),
        ("MessageStatus", item.status),
        ("MessageStatusName", item.status),
        ("UserNumber", item.user_number),
        ("ConversationId", item.group_id),
        ("SendTime", sent.strftime("%Y-%m-%d %H:%M:%S")),
        ("Month", sent.strftime("%Y%m")),
        ("TemplateCode", item.template_code),
        ("LanguageCode", item.language),
        ("FailReason", item.fail_reason),
    ):
        if value is not None and value != "":
            fields[key] = value
    return fields


def message_page(result: MessagePage) -> Fields:
    return {"Data": [message_item(i) for i in result.items]}
