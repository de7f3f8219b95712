"""Checks and conversions shared by the chat-group actions."""

from __future__ import annotations

from collections.abc import Collection

from opencams.errors import (
    BusinessError,
    ChannelNotEligible,
    ChannelRejected,
    ChannelThrottled,
    ChannelUnavailable,
    ChatGroupInvalidStatus,
    ChatGroupNotFound,
    GraphError,
    NoAuth,
    NotInAllowlist,
)
from opencams.groups import validation
from opencams.groups.context import Ctx
from opencams.groups.requests import GroupRef
from opencams.names import GroupStatus
from opencams.store import chat_groups
from opencams.store.records import GroupRecord, NumberRecord

# Statuses in which the group exists at Meta and takes changes (docs/api.md#group-statuses: no
# write while CREATING, DELETING or SUSPENDED; INACTIVE groups were never created at Meta).
WRITABLE = frozenset({GroupStatus.ACTIVE, GroupStatus.UPDATING})


def require_allowlisted(ctx: Ctx) -> None:
    if not ctx.caller.allowlisted:
        raise NotInAllowlist()


async def resolve_number(ctx: Ctx, space_id: str, number: str) -> NumberRecord:
    record = await ctx.deps.store.number_in_space(ctx.caller.account_id, space_id, number)
    if record is None:
        raise NoAuth()
    return record


async def resolve_group_number(ctx: Ctx, ref: GroupRef) -> NumberRecord:
    """Allowlist, parameter content, tenancy: the number a group reference names."""
    require_allowlisted(ctx)
    validation.channel_type(ref.channel_type)
    validation.phone_number(ref.business_number)
    return await resolve_number(ctx, ref.cust_space_id, ref.business_number)


async def resolve_group(ctx: Ctx, ref: GroupRef) -> tuple[NumberRecord, GroupRecord]:
    """Allowlist, parameter content, tenancy, then the group itself."""
    number = await resolve_group_number(ctx, ref)
    async with ctx.deps.store.write() as tx:
        group = await chat_groups.group_of_number(tx, ref.group_id, number.id)
    if group is None:
        raise ChatGroupNotFound()
    return number, group


def require_status(group: GroupRecord, allowed: Collection[str], doing: str) -> None:
    if group.status not in allowed:
        raise ChatGroupInvalidStatus(
            f"{doing} needs it {' or '.join(sorted(allowed))}.", status=group.status
        )


def token(ctx: Ctx, number: NumberRecord) -> str:
    return ctx.deps.secrets.open(number.access_token_enc)


def meta_id(group: GroupRecord) -> str:
    # Every WRITABLE group was confirmed by Meta, which gave it its id.
    assert group.meta_group_id is not None, group.id
    return group.meta_group_id


def channel_error(exc: GraphError) -> BusinessError:
    mapping: dict[str, type[BusinessError]] = {
        "not_eligible": ChannelNotEligible,
        "throttled": ChannelThrottled,
        "unavailable": ChannelUnavailable,
        "rejected": ChannelRejected,
    }
    return mapping[exc.category](exc.describe())
