"""The action table: (version, wire name) -> parameter decoding, the RAM action that authorizes
it, the handler, and how its result is rendered.

Decoding here is about the wire only (presence, encoding); what the values may be is decided by
`groups.validation` and the handlers. Each entry pairs a decoder, a handler and a renderer of
the same request and result types: mypy checks the pairing. STS's AssumeRole is an entry like
the others; its `ram_action` is None because a role's trust, not a RAM policy, decides who may
assume it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from opencams.access.sts import AssumedRole, AssumeRoleRequest, RoleAssumer
from opencams.callbacks.settings import UpdateWebhookRequest, update_webhook
from opencams.errors import MissingParameter, NotJson
from opencams.groups import joinrequests, lifecycle, links, listing, members, messages
from opencams.groups.context import Ctx, Deps
from opencams.groups.requests import (
    AddChatGroupRequest,
    DeleteChatGroupParticipantsRequest,
    GroupRef,
    JoinRequestsDecisionRequest,
    ListChatappMessageRequest,
    ListChatGroupJoinRequestsRequest,
    ListChatGroupParticipantsRequest,
    ListChatGroupRequest,
    RawComplex,
    SendChatappMessageRequest,
    UpdateChatGroupRequest,
)
from opencams.identity import Caller
from opencams.names import API_VERSION, STS_VERSION, ActionName
from opencams.rpc import render
from opencams.rpc.params import Params

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True)
class Call:
    """One authenticated call, as a handler sees it."""

    caller: Caller
    request_id: str
    deps: Deps
    roles: RoleAssumer


@dataclass(frozen=True)
class Action(Generic[Req, Res]):
    name: ActionName
    version: str
    ram_action: str | None  # None: the handler decides who may (AssumeRole: the role's trust)
    decode: Callable[[Params], Req]
    run: Callable[[Call, Req], Awaitable[Res]]
    render: Callable[[Res], dict[str, Any]]

    async def __call__(self, call: Call, params: Params) -> dict[str, Any]:
        return self.render(await self.run(call, self.decode(params)))


def _groups(handler: Callable[[Ctx, Req], Awaitable[Res]]) -> Callable[[Call, Req], Awaitable[Res]]:
    async def run(call: Call, req: Req) -> Res:
        return await handler(
            Ctx(caller=call.caller, deps=call.deps, request_id=call.request_id), req
        )

    return run


async def _assume_role(call: Call, req: AssumeRoleRequest) -> AssumedRole:
    return await call.roles.assume_role(call.caller, req)


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
        join_approval_mode=params.get("JoinApprovalMode"),
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
    mode = params.get("JoinApprovalMode")
    if subject is None and description is None and picture is None and mode is None:
        raise MissingParameter("Subject, Description, ProfilePictureFile or JoinApprovalMode")
    return UpdateChatGroupRequest(
        ref=ref,
        subject=subject,
        description=description,
        profile_picture_file=picture,
        join_approval_mode=mode,
    )


def _list_participants(params: Params) -> ListChatGroupParticipantsRequest:
    return ListChatGroupParticipantsRequest(ref=_ref(params), page=_complex(params, "Page"))


def _delete_participants(params: Params) -> DeleteChatGroupParticipantsRequest:
    return DeleteChatGroupParticipantsRequest(
        ref=_ref(params), participants=_complex(params, "List")
    )


def _update_account_webhook(params: Params) -> UpdateWebhookRequest:
    return UpdateWebhookRequest(
        cust_space_id=params.require("CustSpaceId"),
        phone_number=None,
        http_flag=params.get("HttpFlag"),
        queue_flag=params.get("QueueFlag"),
        status_callback_url=params.values.get("StatusCallbackUrl"),
        up_callback_url=None,
    )


def _update_phone_webhook(params: Params) -> UpdateWebhookRequest:
    return UpdateWebhookRequest(
        cust_space_id=params.require("CustSpaceId"),
        phone_number=params.require("PhoneNumber"),
        http_flag=params.get("HttpFlag"),
        queue_flag=params.get("QueueFlag"),
        status_callback_url=params.values.get("StatusCallbackUrl"),
        up_callback_url=params.values.get("UpCallbackUrl"),
    )


def _list_join_requests(params: Params) -> ListChatGroupJoinRequestsRequest:
    return ListChatGroupJoinRequestsRequest(ref=_ref(params), page=_complex(params, "Page"))


def _join_request_decision(params: Params) -> JoinRequestsDecisionRequest:
    return JoinRequestsDecisionRequest(
        ref=_ref(params), join_request_ids=_complex(params, "JoinRequestIds")
    )


def _send_chatapp_message(params: Params) -> SendChatappMessageRequest:
    return SendChatappMessageRequest(
        channel_type=params.require("ChannelType"),
        type=params.require("Type"),
        from_number=params.require("From"),
        to=params.require("To"),
        cust_space_id=params.get("CustSpaceId"),
        cust_waba_id=params.get("CustWabaId"),
        recipient_type=params.get("RecipientType"),
        message_type=params.get("MessageType"),
        content=params.values.get("Content"),
        template_code=params.get("TemplateCode"),
        template_name=params.get("TemplateName"),
        language=params.get("Language"),
        template_params=_complex(params, "TemplateParams"),
        context_message_id=params.get("ContextMessageId"),
        task_id=params.get("TaskId"),
    )


def _list_chatapp_message(params: Params) -> ListChatappMessageRequest:
    cust_space_id = params.require("CustSpaceId")
    business_number = params.require("BusinessNumber")
    channel_type = params.require("ChannelType")
    page = _complex(params, "Page")
    if page is None:
        raise MissingParameter("Page")
    return ListChatappMessageRequest(
        cust_space_id=cust_space_id,
        business_number=business_number,
        channel_type=channel_type,
        page=page,
        event_action=params.get("EventAction"),
        message_status=params.get("MessageStatus"),
        start_time=params.get("StartTime"),
        end_time=params.get("EndTime"),
        template_code=params.get("TemplateCode"),
        user_number=params.get("UserNumber"),
    )


def _assume_role_request(params: Params) -> AssumeRoleRequest:
    return AssumeRoleRequest(
        role_arn=params.require("RoleArn"),
        role_session_name=params.require("RoleSessionName"),
        duration_seconds=params.get("DurationSeconds"),
        policy=params.get("Policy"),
    )


def _cams(
    name: ActionName,
    decode: Callable[[Params], Req],
    handler: Callable[[Ctx, Req], Awaitable[Res]],
    renderer: Callable[[Res], dict[str, Any]],
) -> Action[Req, Res]:
    return Action(name, API_VERSION, f"cams:{name}", decode, _groups(handler), renderer)


_TABLE: tuple[Action[Any, Any], ...] = (
    _cams("AddChatGroup", _add_chat_group, lifecycle.add_chat_group, render.created),
    _cams("ListChatGroup", _list_chat_group, listing.list_chat_group, render.group_page),
    _cams("UpdateChatGroup", _update_chat_group, lifecycle.update_chat_group, render.done),
    _cams("DeleteChatGroup", _ref, lifecycle.delete_chat_group, render.done),
    _cams("AddChatGroupInviteLink", _ref, links.add_chat_group_invite_link, render.invite_link),
    _cams("DeleteChatGroupInviteLink", _ref, links.delete_chat_group_invite_link, render.done),
    _cams(
        "ListChatGroupParticipants",
        _list_participants,
        listing.list_chat_group_participants,
        render.participant_page,
    ),
    _cams(
        "DeleteChatGroupParticipants",
        _delete_participants,
        members.delete_chat_group_participants,
        render.done,
    ),
    _cams("UpdateAccountWebhook", _update_account_webhook, update_webhook, render.acknowledged),
    _cams("UpdatePhoneWebhook", _update_phone_webhook, update_webhook, render.acknowledged),
    # opencams extensions (docs/api.md#join-requests)
    _cams(
        "ListChatGroupJoinRequests",
        _list_join_requests,
        joinrequests.list_chat_group_join_requests,
        render.join_request_page,
    ),
    _cams(
        "ApproveChatGroupJoinRequests",
        _join_request_decision,
        joinrequests.approve_chat_group_join_requests,
        render.join_request_results,
    ),
    _cams(
        "RejectChatGroupJoinRequests",
        _join_request_decision,
        joinrequests.reject_chat_group_join_requests,
        render.join_request_results,
    ),
    _cams(
        "SendChatappMessage",
        _send_chatapp_message,
        messages.send_chatapp_message,
        render.sent_message,
    ),
    _cams(
        "ListChatappMessage",
        _list_chatapp_message,
        messages.list_chatapp_message,
        render.message_page,
    ),
    Action(
        "AssumeRole", STS_VERSION, None, _assume_role_request, _assume_role, render.assumed_role
    ),
)

ACTIONS: dict[tuple[str, str], Action[Any, Any]] = {
    (action.version, action.name): action for action in _TABLE
}
