"""AddChatGroupInviteLink and DeleteChatGroupInviteLink: synchronous at Meta, no webhook."""

from __future__ import annotations

from opencams.errors import GraphError
from opencams.groups.common import (
    WRITABLE,
    channel_error,
    meta_id,
    require_status,
    resolve_group,
    token,
)
from opencams.groups.context import Ctx
from opencams.groups.requests import GroupRef
from opencams.groups.results import Done, InviteLink
from opencams.store import chat_groups


async def add_chat_group_invite_link(ctx: Ctx, req: GroupRef) -> InviteLink:
    """The group's current link; one is made when it has none (docs/api.md)."""
    number, group = await resolve_group(ctx, req)
    require_status(group, WRITABLE, "inviting to it")
    if group.invite_link:
        return InviteLink(group.invite_link)
    try:
        # Meta may hold a link opencams has not seen (made by another client): prefer it.
        link = await ctx.deps.channel.get_invite_link(meta_id(group), token(ctx, number))
        if link is None:
            link = await ctx.deps.channel.reset_invite_link(meta_id(group), token(ctx, number))
    except GraphError as exc:
        raise channel_error(exc) from exc
    async with ctx.deps.store.write() as tx:
        await chat_groups.set_group(tx, group.id, invite_link=link)
    return InviteLink(link)


async def delete_chat_group_invite_link(ctx: Ctx, req: GroupRef) -> Done:
    """Revokes the link: the old one stops working, and InviteLink is absent until a new one."""
    number, group = await resolve_group(ctx, req)
    require_status(group, WRITABLE, "revoking its invite link")
    try:
        await ctx.deps.channel.delete_invite_link(meta_id(group), token(ctx, number))
    except GraphError as exc:
        raise channel_error(exc) from exc
    async with ctx.deps.store.write() as tx:
        await chat_groups.set_group(tx, group.id, invite_link=None)
    return Done()
