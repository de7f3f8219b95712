"""The chat-group actions. One function per CAMS action, named after it in snake_case.

Every function checks, in this order: the account's allowlisting, the content of the parameters,
the tenancy chain (space owned by the caller's account, number in that space), then the state
and limits. Nothing is written until every check has passed.
"""

from __future__ import annotations

import json
from typing import Any

from opencams.channel.errors import GraphError
from opencams.groups import validation
from opencams.groups.context import Ctx
from opencams.groups.events import apply_parked_for_request
from opencams.groups.ids import new_group_id, new_unique_code
from opencams.groups.requests import AddChatGroupRequest, ListChatGroupRequest
from opencams.rpc.errors import (
    BusinessError,
    ChannelNotEligible,
    ChannelRejected,
    ChannelThrottled,
    ChannelUnavailable,
    ChatGroupLimitExceeded,
    NoAuth,
    NotInAllowlist,
)
from opencams.store.records import GroupFilter, GroupRecord, NumberRecord
from opencams.store.repo import now_ms


def _require_allowlisted(ctx: Ctx) -> None:
    if not ctx.caller.allowlisted:
        raise NotInAllowlist()


async def _resolve_number(ctx: Ctx, space_id: str, number: str) -> NumberRecord:
    record = await ctx.deps.store.number_in_space(ctx.caller.account_id, space_id, number)
    if record is None:
        raise NoAuth()
    return record


def channel_error(exc: GraphError) -> BusinessError:
    mapping: dict[str, type[BusinessError]] = {
        "not_eligible": ChannelNotEligible,
        "throttled": ChannelThrottled,
        "unavailable": ChannelUnavailable,
        "rejected": ChannelRejected,
    }
    return mapping[exc.category](exc.describe())


def group_item(group: GroupRecord) -> dict[str, Any]:
    """A ListChatGroup item; keys without a value are omitted (contract §5)."""
    item: dict[str, Any] = {
        "GroupId": group.id,
        "BusinessNumber": group.business_number,
        "Subject": group.subject,
        "Description": group.description,
        "GroupStatus": group.status,
        "InviteLink": group.invite_link,
        "ProfilePictureFile": group.profile_picture_url,
        "TotalParticipantCount": group.participant_count,
        "GmtModifier": group.updated_at,
        "GroupType": group.group_type,
        "GroupLink": group.group_link,
        "BusinessRole": group.business_role,
    }
    return {k: v for k, v in item.items() if v is not None and v != ""}


async def add_chat_group(ctx: Ctx, req: AddChatGroupRequest) -> dict[str, Any]:
    _require_allowlisted(ctx)
    channel_type = validation.channel_type(req.channel_type)
    validation.phone_number(req.business_number)
    subject = validation.subject(req.subject)
    description = validation.description(req.description)
    number = await _resolve_number(ctx, req.cust_space_id, req.business_number)

    limit = ctx.deps.max_groups_per_number
    if await ctx.deps.store.count_live_groups(number.id) >= limit:
        raise ChatGroupLimitExceeded(limit=limit)

    token = ctx.deps.secrets.open(number.access_token_enc)
    try:
        created = await ctx.deps.channel.create_group(
            number.phone_number_id, token, subject=subject, description=description
        )
    except GraphError as exc:
        # A synchronous refusal leaves nothing behind: no group row, no operation.
        raise channel_error(exc) from exc

    group_id = new_group_id()
    unique_code = new_unique_code()
    now = now_ms()
    await ctx.deps.store.insert_group_with_operation(
        group={
            "id": group_id,
            "number_id": number.id,
            "channel_type": channel_type,
            "subject": subject,
            "subject_search": subject.casefold(),
            "description": description,
            "status": "CREATING",
            "participant_count": 0,
            "group_link": req.group_link,
            "created_at": now,
            "updated_at": now,
        },
        operation={
            "id": unique_code,
            "kind": "create",
            "group_id": group_id,
            "meta_request_id": created.request_id,
            "state": "pending",
            "payload": json.dumps({"subject": subject, "description": description}),
            "created_at": now,
        },
    )
    # Meta may have answered by webhook before the row above existed; such an event was parked.
    await apply_parked_for_request(ctx.deps.store, created.request_id)
    return {"UniqueCode": unique_code, "GroupId": group_id}


async def list_chat_group(ctx: Ctx, req: ListChatGroupRequest) -> dict[str, Any]:
    _require_allowlisted(ctx)
    page = validation.page(req.page)
    channel_type = validation.channel_type(req.channel_type)
    status = validation.group_status(req.group_status)
    validation.phone_number(req.business_number)
    number = await _resolve_number(ctx, req.cust_space_id, req.business_number)

    total, groups = await ctx.deps.store.list_groups(
        GroupFilter(
            number_id=number.id,
            channel_type=channel_type if req.channel_type is not None else None,
            status=status,
            subject_contains=req.subject,
            group_type=req.group_type,
            group_link=req.group_link,
        ),
        offset=page.offset,
        limit=page.size,
    )
    return {"Data": {"Total": total, "List": [group_item(g) for g in groups]}}
