"""The events opencams tells the customer about (docs/callbacks.md has an example of each).

Each function runs inside the unit of work that applies the change it reports, so the event is
committed exactly when its effect is (store.callbacks.emit). The event's fields are the CAMS
identifiers the customer knows: GroupId, the UniqueCode of the operation an event completes,
participant numbers, the group's Status after the change.
"""

from __future__ import annotations

from typing import Any, Literal

from opencams.store import callbacks, chat_groups
from opencams.store.database import Tx
from opencams.store.records import GroupRecord

EventType = Literal[
    "ChatGroupCreated",
    "ChatGroupCreateFailed",
    "ChatGroupUpdated",
    "ChatGroupUpdatePartlyFailed",
    "ChatGroupUpdateFailed",
    "ChatGroupDeleted",
    "ChatGroupDeleteFailed",
    "ChatGroupParticipantsJoined",
    "ChatGroupParticipantsLeft",
    "ChatGroupParticipantsRemoved",
    "ChatGroupParticipantsRemoveFailed",
    "ChatGroupJoinRequestFiled",
    "ChatGroupJoinRequestCancelled",
    "ChatGroupJoinRequestApproved",
    "ChatGroupJoinRequestRejected",
    "ChatGroupSuspended",
    "ChatGroupSuspensionCleared",
    "ChatGroupSynced",
]

EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

# Where a change came from: Meta's webhook, opencams' reconciliation, or the API call itself.
Source = Literal["webhook", "sync", "api"]


async def event(
    tx: Tx,
    group: GroupRecord,
    event_type: EventType,
    *,
    source: Source,
    unique_code: str | None = None,
    status: str | None = None,
    **fields: Any,
) -> None:
    await callbacks.emit(
        tx,
        number_id=group.number_id,
        group_id=group.id,
        event_type=event_type,
        data={
            "UniqueCode": unique_code,
            "Status": status,
            "Source": source,
            **fields,
        },
    )


async def about(
    tx: Tx,
    group_id: str,
    event_type: EventType,
    *,
    source: Source,
    unique_code: str | None = None,
    **fields: Any,
) -> None:
    """The event for a change just applied to a group, with the group as it is now."""
    group = await chat_groups.group_by_id(tx, group_id)
    if group is None:
        return
    await event(
        tx,
        group,
        event_type,
        source=source,
        unique_code=unique_code,
        status=group.status,
        Subject=group.subject,
        InviteLink=group.invite_link,
        **fields,
    )
