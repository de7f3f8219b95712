"""The action table: wire name -> RAM action, parameter decoding, handler.

Decoding here is about the wire only (presence, encoding); what the values may be is decided by
`groups.validation` and the handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opencams.groups import lifecycle, links, listing, members
from opencams.groups.context import Ctx
from opencams.groups.requests import (
    AddChatGroupRequest,
    DeleteChatGroupParticipantsRequest,
    GroupRef,
    ListChatGroupParticipantsRequest,
    ListChatGroupRequest,
    RawComplex,
    UpdateChatGroupRequest,
)
from opencams.rpc.errors import MissingParameter
from opencams.rpc.params import NotJson, Params

API_VERSION = "2020-06-06"


@dataclass(frozen=True)
class Action:
    name: str
    ram_action: str
    decode: Callable[[Params], Any]
    handler: Callable[[Ctx, Any], Awaitable[dict[str, Any]]]


def _complex(params: Params, name: str) -> RawComplex | None:
    try:
        value = params.complex(name)
    except NotJson:
        # Not JSON at all: validation refuses it like any other value of the wrong shape, in its
        # turn (after the allowlist check), with the parameter's own business code.
        return RawComplex(params.values[name], flattened=False)
    return RawComplex(value.value, value.flattened) if value else None


def _present(name: str, params: Params) -> str:
    """Required, but white space alone is present (and then judged by content rules)."""
    value = params.values.get(name)
    if not value:
        raise MissingParameter(name)
    return value


def _ref(params: Params) -> GroupRef:
    return GroupRef(
        cust_space_id=params.require("CustSpaceId"),
        business_number=params.require("BusinessNumber"),
        group_id=params.require("GroupId"),
        channel_type=params.get("ChannelType"),
    )


def _add_chat_group(params: Params) -> AddChatGroupRequest:
    return AddChatGroupRequest(
        cust_space_id=params.require("CustSpaceId"),
        business_number=params.require("BusinessNumber"),
        subject=_present("Subject", params),
        description=params.get("Description"),
        channel_type=params.get("ChannelType"),
        group_link=params.get("GroupLink"),
    )


def _list_chat_group(params: Params) -> ListChatGroupRequest:
    cust_space_id = params.require("CustSpaceId")
    business_number = params.require("BusinessNumber")
    page = _complex(params, "Page")
    if page is None:
        raise MissingParameter("Page")
    return ListChatGroupRequest(
        cust_space_id=cust_space_id,
        business_number=business_number,
        page=page,
        channel_type=params.get("ChannelType"),
        group_status=params.get("GroupStatus"),
        subject=params.get("Subject"),
        group_type=params.get("GroupType"),
        group_link=params.get("GroupLink"),
    )


def _update_chat_group(params: Params) -> UpdateChatGroupRequest:
    ref = _ref(params)
    subject = params.values.get("Subject") or None
    description = params.values.get("Description")
    picture = params.get("ProfilePictureFile")
    if subject is None and description is None and picture is None:
        raise MissingParameter("Subject, Description or ProfilePictureFile")
    return UpdateChatGroupRequest(
        ref=ref, subject=subject, description=description, profile_picture_file=picture
    )


def _list_participants(params: Params) -> ListChatGroupParticipantsRequest:
    return ListChatGroupParticipantsRequest(ref=_ref(params), page=_complex(params, "Page"))


def _delete_participants(params: Params) -> DeleteChatGroupParticipantsRequest:
    return DeleteChatGroupParticipantsRequest(
        ref=_ref(params), participants=_complex(params, "List")
    )


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("AddChatGroup", "cams:AddChatGroup", _add_chat_group, lifecycle.add_chat_group),
        Action("ListChatGroup", "cams:ListChatGroup", _list_chat_group, listing.list_chat_group),
        Action(
            "UpdateChatGroup",
            "cams:UpdateChatGroup",
            _update_chat_group,
            lifecycle.update_chat_group,
        ),
        Action("DeleteChatGroup", "cams:DeleteChatGroup", _ref, lifecycle.delete_chat_group),
        Action(
            "AddChatGroupInviteLink",
            "cams:AddChatGroupInviteLink",
            _ref,
            links.add_chat_group_invite_link,
        ),
        Action(
            "DeleteChatGroupInviteLink",
            "cams:DeleteChatGroupInviteLink",
            _ref,
            links.delete_chat_group_invite_link,
        ),
        Action(
            "ListChatGroupParticipants",
            "cams:ListChatGroupParticipants",
            _list_participants,
            listing.list_chat_group_participants,
        ),
        Action(
            "DeleteChatGroupParticipants",
            "cams:DeleteChatGroupParticipants",
            _delete_participants,
            members.delete_chat_group_participants,
        ),
    )
}

# Every action a policy or a throttle can name (AssumeRole is STS's, served at the same endpoint).
ACTION_NAMES: tuple[str, ...] = (*ACTIONS, "AssumeRole")
