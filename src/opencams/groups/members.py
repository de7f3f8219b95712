"""DeleteChatGroupParticipants: removal by the business, confirmed per member by webhook."""

from __future__ import annotations

from opencams.errors import (
    ChatGroupInvalidStatus,
    GraphError,
    ParticipantListInvalid,
    ParticipantNotFound,
)
from opencams.groups import validation
from opencams.groups.common import (
    WRITABLE,
    channel_error,
    meta_id,
    require_allowlisted,
    require_status,
    resolve_group,
    token,
)
from opencams.groups.context import Ctx
from opencams.groups.ids import new_unique_code
from opencams.groups.lifecycle import accepted, refused
from opencams.groups.requests import DeleteChatGroupParticipantsRequest, RawComplex
from opencams.groups.results import Done
from opencams.store import operations, participants

MAX_REMOVALS = 8  # Meta: at most 8 participants per removal call


def participant_numbers(raw: RawComplex | None) -> list[str]:
    """`[{"ParticipantNumber": "86…"}, …]`: 1 to 8 distinct, well-formed numbers."""
    if raw is None:
        raise ParticipantListInvalid("it is missing; give 1 to 8 ParticipantNumber entries")
    if not isinstance(raw.value, list):
        raise ParticipantListInvalid('it must be a JSON array like [{"ParticipantNumber":"86…"}]')
    if not 1 <= len(raw.value) <= MAX_REMOVALS:
        raise ParticipantListInvalid(f"it has {len(raw.value)} entries; give 1 to {MAX_REMOVALS}")
    numbers: list[str] = []
    for entry in raw.value:
        number = entry.get("ParticipantNumber") if isinstance(entry, dict) else None
        if not isinstance(number, str) or not number:
            raise ParticipantListInvalid("every entry needs a ParticipantNumber string")
        validation.phone_number(number, "ParticipantNumber")
        numbers.append(number)
    if len(set(numbers)) != len(numbers):
        raise ParticipantListInvalid("a ParticipantNumber appears more than once")
    return numbers


async def delete_chat_group_participants(ctx: Ctx, req: DeleteChatGroupParticipantsRequest) -> Done:
    require_allowlisted(ctx)
    numbers = participant_numbers(req.participants)
    number, group = await resolve_group(ctx, req.ref)
    require_status(group, WRITABLE, "removing participants")
    async with ctx.deps.store.write() as tx:
        present = await participants.members(tx, group.id, numbers)
        missing = [n for n in numbers if n not in present]
        if missing:
            raise ParticipantNotFound(", ".join(missing))
        if await operations.pending_operation(tx, group.id, "remove_participants"):
            raise ChatGroupInvalidStatus(
                "a removal of participants is still under way.", status=group.status
            )
        op_id = new_unique_code()
        await operations.insert_operation(
            tx,
            op_id=op_id,
            kind="remove_participants",
            group_id=group.id,
            meta_request_id=None,
            payload={"participants": numbers, "request_id": ctx.request_id},
        )
    try:
        request_id = await ctx.deps.channel.remove_participants(
            meta_id(group), token(ctx, number), numbers
        )
    except GraphError as exc:
        await refused(ctx, op_id, exc, group=group, claimed=None)
        raise channel_error(exc) from exc
    await accepted(ctx, op_id, request_id)
    return Done(result=len(numbers))
