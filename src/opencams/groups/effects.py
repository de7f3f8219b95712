"""What each Meta group webhook does to the database (docs/api.md#group-statuses; the webhooks
themselves: docs/simulator.md).

Every handler runs inside the transaction that also records the event, and returns:
`applied`, `ignored` (nothing to do: stale, already settled, deleted group), or `parked` (it
names a group or an operation opencams has not recorded yet; it is kept and retried).

Reordering: memberships and suspensions remember Meta's timestamp of the last event applied to
them, and an older event that arrives later is ignored. Meta's timestamps are whole seconds: of two
events in the same second, the one applied last wins.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from opencams.channel.webhooks import GroupEvent, safe_id
from opencams.groups import notify
from opencams.names import (
    JOIN_APPROVAL_MODES,
    GroupStatus,
    JoinRequestState,
    OperationKind,
    OperationState,
)
from opencams.store import chat_groups, operations, participants
from opencams.store.clock import now_ms
from opencams.store.database import Tx
from opencams.store.records import GroupRecord, OperationRecord

_WA_ID = re.compile(r"[A-Za-z0-9._-]+")

Outcome = Literal["applied", "duplicate", "parked", "ignored"]
Handler = Callable[[Tx, GroupEvent], Awaitable[Outcome]]


def describe_errors(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        data = error.get("error_data")
        details = data.get("details") if isinstance(data, dict) else None
        text = error.get("message") or error.get("title") or "unknown error"
        parts.append(f"(#{error.get('code')}) {text}" + (f": {details}" if details else ""))
    return "; ".join(parts) or "Meta reported a failure without details"


def event_ts(event: GroupEvent) -> int:
    try:
        return int(event.timestamp) if event.timestamp is not None else int(time.time())
    except ValueError:
        return int(time.time())


async def _operation(
    tx: Tx, event: GroupEvent, group: GroupRecord, kind: OperationKind
) -> OperationRecord | None:
    """By Meta's request id; else the group's pending operation of that kind (Meta can answer
    by webhook before opencams has stored the request id of its own call)."""
    if event.request_id is not None:
        op = await operations.operation_by_request_id(tx, event.request_id)
        if op is not None:
            return op if op.kind == kind else None
    return await operations.pending_operation(tx, group.id, kind)


async def _live_group(tx: Tx, event: GroupEvent) -> GroupRecord | Outcome:
    if event.group_id is None:
        return "ignored"
    group = await chat_groups.group_by_meta_id(tx, event.group_id)
    if group is None:
        return "parked"
    if group.deleted_at is not None:
        return "ignored"
    return group


async def _tell(
    tx: Any,
    group_id: str,
    event_type: notify.EventType,
    *,
    unique_code: str | None = None,
    **fields: Any,
) -> None:
    await notify.about(
        tx, group_id, event_type, source="webhook", unique_code=unique_code, **fields
    )


# --- group_lifecycle_update -------------------------------------------------------------------


async def group_create(tx: Tx, event: GroupEvent) -> Outcome:
    if event.request_id is None:
        return "ignored"
    op = await operations.operation_by_request_id(tx, event.request_id)
    if op is None:
        return "parked"
    if op.kind != "create" or op.state != "pending":
        return "ignored"
    if event.errors or not event.group_id:
        reason = describe_errors(event.errors)
        await chat_groups.set_group(
            tx,
            op.group_id,
            when_status={GroupStatus.CREATING},
            status=GroupStatus.INACTIVE,
            failure_reason=reason,
        )
        await operations.settle_operation(tx, op.id, "failed", error=reason)
        await _tell(tx, op.group_id, "ChatGroupCreateFailed", unique_code=op.id, Reason=reason)
        return "applied"
    stand_in = await chat_groups.group_by_meta_id(tx, event.group_id)
    if stand_in is not None and stand_in.id != op.group_id:
        # A sync adopted this Meta group under a new row before its confirmation arrived:
        # the group is this operation's; the stand-in row gives way.
        await chat_groups.retire_group(tx, stand_in.id)
    confirmed: dict[str, Any] = {}
    mode = event.raw.get("join_approval_mode")
    if mode in JOIN_APPROVAL_MODES:  # else keep what was asked (Meta's default: auto_approve)
        confirmed["join_approval_mode"] = mode
    await chat_groups.set_group(
        tx,
        op.group_id,
        when_status={GroupStatus.CREATING},
        status=GroupStatus.ACTIVE,
        meta_group_id=event.group_id,
        invite_link=event.raw.get("invite_link") or None,
        **confirmed,
    )
    await operations.settle_operation(tx, op.id, "succeeded", result={"group_id": event.group_id})
    await _tell(tx, op.group_id, "ChatGroupCreated", unique_code=op.id)
    return "applied"


async def group_delete(tx: Tx, event: GroupEvent) -> Outcome:
    group = await _live_group(tx, event)
    if isinstance(group, str):
        return group
    op = await _operation(tx, event, group, "delete")
    if event.errors:
        reason = describe_errors(event.errors)
        previous = (
            op.asked().get("previous_status", GroupStatus.ACTIVE) if op else GroupStatus.ACTIVE
        )
        await chat_groups.set_group(
            tx,
            group.id,
            when_status={GroupStatus.DELETING},
            status=previous,
            failure_reason=reason,
        )
        if op is not None:
            await operations.settle_operation(tx, op.id, "failed", error=reason)
        await _tell(
            tx, group.id, "ChatGroupDeleteFailed", unique_code=op.id if op else None, Reason=reason
        )
        return "applied"
    # Deleted at Meta, whoever asked: the group is gone, and so is anything pending on it.
    await chat_groups.set_group(tx, group.id, deleted_at=now_ms())
    for pending in await operations.pending_operations(tx, [group.id]):
        if op is not None and pending.id == op.id:
            await operations.settle_operation(tx, pending.id, "succeeded")
        else:
            await operations.settle_operation(
                tx, pending.id, "failed", error="the group was deleted"
            )
    await notify.event(
        tx,
        group,
        "ChatGroupDeleted",
        source="webhook",
        unique_code=op.id if op else None,
        status="DELETED",
    )
    return "applied"


# --- group_settings_update --------------------------------------------------------------------

_ATTRIBUTES = ("group_subject", "group_description", "profile_picture")
_RESULT_NAMES = {
    "group_subject": "Subject",
    "group_description": "Description",
    "profile_picture": "ProfilePicture",
    "join_approval_mode": "JoinApprovalMode",
}


async def group_settings_update(tx: Tx, event: GroupEvent) -> Outcome:
    op = None
    if event.request_id is not None:
        op = await operations.operation_by_request_id(tx, event.request_id)
    if op is None:
        group = await _live_group(tx, event)
        if isinstance(group, str):
            return group
        op = await operations.pending_operation(tx, group.id, "update")
        if op is None:
            # A change opencams did not ask for (yet): keep it if it names a request.
            return "parked" if event.request_id is not None else "ignored"
    if op.kind != "update" or op.state != "pending":
        return "ignored"
    asked = op.asked()
    values: dict[str, Any] = {}
    outcome: dict[str, Any] = {}
    failures: list[str] = []
    for key in _ATTRIBUTES:
        part = event.raw.get(key)
        if not isinstance(part, dict):
            continue
        ok = part.get("update_successful") in (True, "true")
        outcome[key] = "updated" if ok else "refused"
        if not ok:
            errors = part.get("errors") if isinstance(part.get("errors"), list) else event.errors
            failures.append(f"{key}: {describe_errors(errors or [])}")
        elif key == "group_subject":
            subject = str(part.get("text") or asked.get("subject") or "")
            if subject:
                values["subject"] = subject
        elif key == "group_description":
            values["description"] = part.get("text", asked.get("description"))
        else:
            values.update(
                profile_picture_url=asked.get("picture_url"),
                picture_sha256=part.get("sha256") or asked.get("picture_sha256"),
            )
    if not outcome and event.errors:
        failures.append(describe_errors(event.errors))
    mode = asked.get("join_approval_mode")
    if mode is not None:
        # Meta's settings webhook documents no part for the join approval mode: the mode took
        # effect unless the update failed as a whole (docs/simulator.md; sync reads it back).
        failed_whole = bool(event.errors) and (not outcome or len(failures) == len(outcome))
        if not failed_whole:
            values["join_approval_mode"] = mode
        elif outcome:  # (with no other part, the whole failure is already the one reason)
            failures.append(f"join_approval_mode: {describe_errors(event.errors)}")
        outcome["join_approval_mode"] = "refused" if failed_whole else "updated"
    values["failure_reason"] = "; ".join(failures) or None
    await chat_groups.set_group(tx, op.group_id, **values)
    await chat_groups.set_group(
        tx, op.group_id, when_status={GroupStatus.UPDATING}, status=GroupStatus.ACTIVE
    )
    state: OperationState = (
        "succeeded" if not failures else ("partial" if len(failures) < len(outcome) else "failed")
    )
    await operations.settle_operation(
        tx, op.id, state, result=outcome, error=values["failure_reason"]
    )
    kinds: dict[str, notify.EventType] = {
        "succeeded": "ChatGroupUpdated",
        "partial": "ChatGroupUpdatePartlyFailed",
        "failed": "ChatGroupUpdateFailed",
    }
    await _tell(
        tx,
        op.group_id,
        kinds[state],
        unique_code=op.id,
        Results={_RESULT_NAMES.get(key, key): value for key, value in outcome.items()},
        Reason=values["failure_reason"],
    )
    return "applied"


# --- group_participants_update ----------------------------------------------------------------


def _who(entry: Any) -> str | None:
    """A participant's WhatsApp id (or the number the business used), else their business-scoped
    user id (BSUID: a user whose number WhatsApp hides), as stored: at most 32 characters."""
    if not isinstance(entry, dict):
        return None
    for key in ("wa_id", "input", "user_id"):
        value = safe_id(entry.get(key), 33)
        if value is not None:
            value = value.lstrip("+")
            if value and len(value) <= 32 and _WA_ID.fullmatch(value):
                return value
    return None


def _bsuid(entry: Any) -> str | None:
    """The business-scoped user id (2026: `user_id`, when Meta gives no `wa_id`), as stored."""
    if not isinstance(entry, dict):
        return None
    value = safe_id(entry.get("user_id"), 32)
    return value if value is not None and _WA_ID.fullmatch(value) else None


async def participants_add(tx: Tx, event: GroupEvent) -> Outcome:
    group = await _live_group(tx, event)
    if isinstance(group, str):
        return group
    ts = event_ts(event)
    joined = []
    for entry in event.raw.get("added_participants") or []:
        wa_id = _who(entry)
        if wa_id:
            if await participants.set_membership(tx, group.id, wa_id, participants.MEMBER, ts):
                joined.append(wa_id)
            await participants.set_join_request(tx, group.id, wa_id, "joined", ts, None)
    await participants.recount_participants(tx, group.id)
    if joined:
        await _tell(
            tx,
            group.id,
            "ChatGroupParticipantsJoined",
            Participants=joined,
            Reason=event.raw.get("reason") or None,
        )
    return "applied"


async def participants_remove(tx: Tx, event: GroupEvent) -> Outcome:
    group = await _live_group(tx, event)
    if isinstance(group, str):
        return group
    ts = event_ts(event)
    by_business = event.raw.get("initiated_by") == "business"
    removed = [w for w in (_who(e) for e in event.raw.get("removed_participants") or []) if w]
    changed = []
    for wa_id in removed:
        # Removed by the business: barred from rejoining by link. Left: may come back.
        if await participants.set_membership(
            tx, group.id, wa_id, "removed" if by_business else "left", ts
        ):
            changed.append(wa_id)
    await participants.recount_participants(tx, group.id)
    if not by_business and changed:
        await _tell(tx, group.id, "ChatGroupParticipantsLeft", Participants=changed)
    if by_business:
        op = await _operation(tx, event, group, "remove_participants")
        if op is not None and op.state == "pending":
            failed = {
                w: describe_errors(e.get("errors") or [])
                for e in event.raw.get("failed_participants") or []
                if (w := _who(e))
            }
            state: OperationState = (
                "succeeded" if not failed else ("partial" if removed else "failed")
            )
            await operations.settle_operation(
                tx,
                op.id,
                state,
                result={"removed": removed, "failed": failed},
                error="; ".join(f"{k}: {v}" for k, v in failed.items()) or None,
            )
            await _tell(
                tx,
                group.id,
                "ChatGroupParticipantsRemoveFailed"
                if state == "failed"
                else ("ChatGroupParticipantsRemoved"),
                unique_code=op.id,
                Participants=removed,
                FailedParticipants=[
                    {"ParticipantNumber": k, "Reason": v} for k, v in failed.items()
                ]
                or None,
            )
        elif changed:
            await _tell(tx, group.id, "ChatGroupParticipantsRemoved", Participants=changed)
    return "applied"


async def join_request(tx: Tx, event: GroupEvent) -> Outcome:
    group = await _live_group(tx, event)
    if isinstance(group, str):
        return group
    wa_id = _who(event.raw) or _bsuid(event.raw)
    if not wa_id:
        return "ignored"
    state = (
        JoinRequestState.PENDING
        if event.type == "group_join_request_created"
        else JoinRequestState.REVOKED
    )
    request_id = safe_id(event.raw.get("join_request_id"), 256)
    await participants.set_join_request(tx, group.id, wa_id, state, event_ts(event), request_id)
    await _tell(
        tx,
        group.id,
        "ChatGroupJoinRequestFiled"
        if state == JoinRequestState.PENDING
        else "ChatGroupJoinRequestCancelled",
        JoinRequestId=request_id,
        ParticipantNumber=wa_id,
    )
    return "applied"


# --- group_status_update ----------------------------------------------------------------------


async def suspension(tx: Tx, event: GroupEvent) -> Outcome:
    group = await _live_group(tx, event)
    if isinstance(group, str):
        return group
    ts = event_ts(event)
    if group.suspension_ts is not None and ts < group.suspension_ts:
        return "ignored"  # an older suspension event, delivered late
    if event.type == "group_suspend":
        if (
            await chat_groups.set_group(
                tx,
                group.id,
                when_status={
                    GroupStatus.ACTIVE,
                    GroupStatus.UPDATING,
                    GroupStatus.DELETING,
                    GroupStatus.SUSPENDED,
                },
                status=GroupStatus.SUSPENDED,
                suspension_ts=ts,
            )
            and group.status != GroupStatus.SUSPENDED
        ):
            await _tell(tx, group.id, "ChatGroupSuspended")
    elif await chat_groups.set_group(
        tx,
        group.id,
        when_status={GroupStatus.SUSPENDED},
        status=GroupStatus.ACTIVE,
        suspension_ts=ts,
    ):
        await _tell(tx, group.id, "ChatGroupSuspensionCleared")
    else:
        await chat_groups.set_group(tx, group.id, suspension_ts=ts)
    return "applied"


HANDLERS: dict[tuple[str, str], Handler] = {
    ("group_lifecycle_update", "group_create"): group_create,
    ("group_lifecycle_update", "group_delete"): group_delete,
    ("group_settings_update", "group_settings_update"): group_settings_update,
    ("group_participants_update", "group_participants_add"): participants_add,
    ("group_participants_update", "group_participants_remove"): participants_remove,
    ("group_participants_update", "group_join_request_created"): join_request,
    ("group_participants_update", "group_join_request_revoked"): join_request,
    ("group_status_update", "group_suspend"): suspension,
    ("group_status_update", "group_suspend_cleared"): suspension,
}


async def apply_effect(tx: Tx, event: GroupEvent) -> Outcome:
    handler = HANDLERS.get((event.field_name, event.type))
    return "ignored" if handler is None else await handler(tx, event)
