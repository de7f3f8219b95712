"""AddChatGroup, UpdateChatGroup, DeleteChatGroup: the asynchronous, Meta-confirmed changes.

Update and delete first move the group to UPDATING/DELETING and record a pending operation in one
transaction (so two callers cannot both start a change, and an acknowledged change survives a
restart), then call Meta. A synchronous refusal settles the operation as failed and puts the
status back; success stores Meta's request id, and the webhook (or sync) settles the rest.
"""

from __future__ import annotations

from typing import Any

from opencams.errors import (
    ChatGroupInvalidStatus,
    ChatGroupLimitExceeded,
    GraphError,
    PictureUnusable,
    ProfilePictureInvalid,
)
from opencams.groups import notify, validation
from opencams.groups.common import (
    channel_error,
    meta_id,
    require_allowlisted,
    require_status,
    resolve_group,
    resolve_number,
    token,
)
from opencams.groups.context import Ctx
from opencams.groups.events import apply_parked
from opencams.groups.ids import new_group_id, new_unique_code
from opencams.groups.requests import AddChatGroupRequest, GroupRef, UpdateChatGroupRequest
from opencams.groups.results import Created, Done
from opencams.names import GroupStatus, OperationKind
from opencams.store import chat_groups, operations
from opencams.store.clock import now_ms
from opencams.store.records import GroupRecord


async def add_chat_group(ctx: Ctx, req: AddChatGroupRequest) -> Created:
    require_allowlisted(ctx)
    channel_type = validation.channel_type(req.channel_type)
    validation.phone_number(req.business_number)
    subject = validation.subject(req.subject)
    description = validation.description(req.description)
    group_link = validation.group_link(req.group_link)
    mode = validation.join_approval_mode(req.join_approval_mode)
    number = await resolve_number(ctx, req.cust_space_id, req.business_number)

    limit = ctx.deps.max_groups_per_number
    async with ctx.deps.store.read() as tx:
        live = await chat_groups.count_live(tx, number.id)
    if live >= limit:
        raise ChatGroupLimitExceeded(limit=limit)

    try:
        created = await ctx.deps.channel.create_group(
            number.phone_number_id,
            token(ctx, number),
            subject=subject,
            description=description,
            join_approval_mode=mode,
        )
    except GraphError as exc:
        # A synchronous refusal leaves nothing behind: no group row, no operation.
        raise channel_error(exc) from exc

    group_id = new_group_id()
    unique_code = new_unique_code()
    async with ctx.deps.store.write() as tx:
        await chat_groups.insert_group(
            tx,
            id=group_id,
            number_id=number.id,
            channel_type=channel_type,
            subject=subject,
            description=description,
            status=GroupStatus.CREATING,
            participant_count=0,
            group_link=group_link,
            join_approval_mode=mode,
        )
        await operations.insert_operation(
            tx,
            op_id=unique_code,
            kind="create",
            group_id=group_id,
            meta_request_id=created.request_id,
            payload={
                "subject": subject,
                "description": description,
                "join_approval_mode": mode,
                "request_id": ctx.request_id,
            },
        )
    # Meta may have answered by webhook before the row above existed; such an event was parked.
    await apply_parked(ctx.deps.store, request_id=created.request_id)
    return Created(unique_code=unique_code, group_id=group_id)


async def begin(
    ctx: Ctx, group: GroupRecord, kind: OperationKind, to_status: str, payload: dict[str, Any]
) -> str:
    """Claim the group for a change and record the pending operation; returns its id."""
    op_id = new_unique_code()
    async with ctx.deps.store.write() as tx:
        # Only from ACTIVE: one settings change or deletion at a time, never both at once.
        if not await chat_groups.set_group(
            tx, group.id, when_status={GroupStatus.ACTIVE}, status=to_status
        ):
            current = await chat_groups.group_by_id(tx, group.id)
            raise ChatGroupInvalidStatus(
                "another change of the group is under way.",
                status=current.status if current else "gone",
            )
        # The RequestId that started it: the webhook completing it logs it (docs/operations.md).
        payload = {**payload, "previous_status": group.status, "request_id": ctx.request_id}
        await operations.insert_operation(
            tx, op_id=op_id, kind=kind, group_id=group.id, meta_request_id=None, payload=payload
        )
    return op_id


async def refused(
    ctx: Ctx, op_id: str, exc: GraphError, *, group: GroupRecord, claimed: str | None
) -> None:
    """Meta refused at once: settle the operation; put back the status this call claimed."""
    async with ctx.deps.store.write() as tx:
        await operations.settle_operation(tx, op_id, "failed", error=exc.describe())
        if claimed is not None:
            await chat_groups.set_group(
                tx,
                group.id,
                when_status={claimed},
                status=group.status,
                failure_reason=exc.describe(),
            )


async def accepted(ctx: Ctx, op_id: str, request_id: str | None) -> None:
    if request_id is None:
        return
    async with ctx.deps.store.write() as tx:
        await operations.set_operation_request_id(tx, op_id, request_id)
    await apply_parked(ctx.deps.store, request_id=request_id)


async def update_chat_group(ctx: Ctx, req: UpdateChatGroupRequest) -> Done:
    require_allowlisted(ctx)
    subject = validation.subject(req.subject) if req.subject is not None else None
    description = validation.description(req.description)
    mode = validation.join_approval_mode(req.join_approval_mode)
    number, group = await resolve_group(ctx, req.ref)
    require_status(group, {GroupStatus.ACTIVE}, "changing its settings")

    picture = None
    if req.profile_picture_file is not None:
        if ctx.deps.pictures is None:
            raise ProfilePictureInvalid("pictures are not enabled on this server")
        try:
            picture = await ctx.deps.pictures.fetch(req.profile_picture_file)
        except PictureUnusable as exc:
            raise ProfilePictureInvalid(exc.reason) from exc

    op_id = await begin(
        ctx,
        group,
        "update",
        GroupStatus.UPDATING,
        {
            "subject": subject,
            "description": description,
            "picture_url": req.profile_picture_file,
            "picture_sha256": picture.sha256 if picture else None,
            "join_approval_mode": mode,
        },
    )
    try:
        request_id = await ctx.deps.channel.update_group(
            meta_id(group),
            token(ctx, number),
            subject=subject,
            description=description,
            picture=picture.data if picture else None,
            join_approval_mode=mode,
        )
    except GraphError as exc:
        await refused(ctx, op_id, exc, group=group, claimed=GroupStatus.UPDATING)
        raise channel_error(exc) from exc
    await accepted(ctx, op_id, request_id)
    return Done()


async def delete_chat_group(ctx: Ctx, req: GroupRef) -> Done:
    number, group = await resolve_group(ctx, req)
    if group.status == GroupStatus.INACTIVE:
        # Meta never created it: nothing to ask Meta, the record simply goes.
        async with ctx.deps.store.write() as tx:
            if await chat_groups.set_group(
                tx, group.id, when_status={GroupStatus.INACTIVE}, deleted_at=now_ms()
            ):
                await notify.event(tx, group, "ChatGroupDeleted", source="api", status="DELETED")
        return Done()
    require_status(group, {GroupStatus.ACTIVE}, "deleting it")
    op_id = await begin(ctx, group, "delete", GroupStatus.DELETING, {})
    try:
        request_id = await ctx.deps.channel.delete_group(meta_id(group), token(ctx, number))
    except GraphError as exc:
        await refused(ctx, op_id, exc, group=group, claimed=GroupStatus.DELETING)
        raise channel_error(exc) from exc
    await accepted(ctx, op_id, request_id)
    return Done()
