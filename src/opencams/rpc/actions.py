"""The action table: wire name -> RAM action, parameter decoding, handler.

Decoding here is about the wire only (presence, encoding); what the values may be is decided by
`groups.validation`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opencams.groups import service
from opencams.groups.context import Ctx
from opencams.groups.requests import AddChatGroupRequest, ListChatGroupRequest, RawComplex
from opencams.rpc.errors import MissingParameter
from opencams.rpc.params import NotJson, Params

API_VERSION = "2020-06-06"


@dataclass(frozen=True)
class Action:
    name: str
    ram_action: str
    decode: Callable[[Params], Any]
    handler: Callable[[Ctx, Any], Awaitable[dict[str, Any]]]


def _page(params: Params) -> RawComplex | None:
    try:
        value = params.complex("Page")
    except NotJson:
        # Not JSON at all: validation refuses it like any other non-object (PageInvalid), in its
        # turn, after the allowlist check.
        return RawComplex(params.values["Page"], flattened=False)
    return RawComplex(value.value, value.flattened) if value else None


def _decode_add_chat_group(params: Params) -> AddChatGroupRequest:
    return AddChatGroupRequest(
        cust_space_id=params.require("CustSpaceId"),
        business_number=params.require("BusinessNumber"),
        # Subject of only spaces is present but invalid (SubjectInvalid), not missing.
        subject=_present("Subject", params),
        description=params.get("Description"),
        channel_type=params.get("ChannelType"),
        group_link=params.get("GroupLink"),
    )


def _decode_list_chat_group(params: Params) -> ListChatGroupRequest:
    cust_space_id = params.require("CustSpaceId")
    business_number = params.require("BusinessNumber")
    page = _page(params)
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


def _present(name: str, params: Params) -> str:
    value = params.values.get(name)
    if not value:
        raise MissingParameter(name)
    return value


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("AddChatGroup", "cams:AddChatGroup", _decode_add_chat_group, service.add_chat_group),
        Action(
            "ListChatGroup", "cams:ListChatGroup", _decode_list_chat_group, service.list_chat_group
        ),
    )
}
