"""ListChatGroup and ListChatGroupParticipants: served from the database, never from Meta."""

from __future__ import annotations

from opencams.errors import ChatGroupNotFound
from opencams.groups import validation
from opencams.groups.common import (
    require_allowlisted,
    resolve_group_number,
    resolve_number,
)
from opencams.groups.context import Ctx
from opencams.groups.requests import ListChatGroupParticipantsRequest, ListChatGroupRequest
from opencams.groups.results import GroupPage, ParticipantPage
from opencams.store.records import GroupFilter

# ListChatGroupParticipants takes Page optionally (the SDK and the vendor doc mark it optional);
# a group has at most 8 participants, so the default page holds them all.
DEFAULT_PARTICIPANTS_PAGE = validation.Page(index=1, size=20)


async def list_chat_group(ctx: Ctx, req: ListChatGroupRequest) -> GroupPage:
    require_allowlisted(ctx)
    page = validation.page(req.page)
    channel_type = validation.channel_type(req.channel_type)
    status = validation.group_status(req.group_status)
    validation.phone_number(req.business_number)
    number = await resolve_number(ctx, req.cust_space_id, req.business_number)

    total, groups = await ctx.deps.store.list_groups(
        GroupFilter(
            number_id=number.id,
            channel_type=channel_type if req.channel_type is not None else None,
            status=status,
            subject_contains=req.subject,
            group_type=req.group_type,
            group_link=req.group_link,
            business_number=number.number,
        ),
        offset=page.offset,
        limit=page.size,
    )
    return GroupPage(total=total, groups=groups)


async def list_chat_group_participants(
    ctx: Ctx, req: ListChatGroupParticipantsRequest
) -> ParticipantPage:
    require_allowlisted(ctx)
    page = validation.optional_page(req.page, DEFAULT_PARTICIPANTS_PAGE)
    number = await resolve_group_number(ctx, req.ref)
    found = await ctx.deps.store.group_members(number.id, req.ref.group_id, page.offset, page.size)
    if found is None:
        raise ChatGroupNotFound()
    total, members = found
    return ParticipantPage(total=total, numbers=members)
