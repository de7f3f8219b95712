"""Reconciliation with Meta: `opencams sync` and the optional periodic sync of the server.

For each business number: walk Meta's group list (cursor pagination), read each group's details,
participants and invite link, then, group by group in its own transaction:

- a group Meta has and opencams does not: adopted (a CREATING group with the same subject whose
  create was never confirmed), or created as a new row (a group made outside opencams);
- a known group: subject, description, join approval mode, suspension, invite link,
  participants and pending join requests are set to Meta's values (a request Meta no longer
  has pending is marked `gone`); pending operations older than the grace period are settled from
  what Meta shows;
- a group opencams has and Meta no longer lists: marked deleted;
- a create never confirmed within the grace period and not found at Meta: INACTIVE.

Every change is a conditional update, so sync is idempotent and safe beside a serving server;
the grace period leaves operations whose webhook is still on its way to the webhook.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opencams.channel.types import GroupInfo, GroupSummary, JoinRequestInfo
from opencams.errors import GraphError, StoreUnavailable
from opencams.groups import notify
from opencams.groups.context import Deps
from opencams.groups.events import apply_parked
from opencams.groups.ids import new_group_id
from opencams.names import JOIN_APPROVAL_MODES, GroupStatus, JoinRequestState, OperationState
from opencams.store import chat_groups, operations, participants, tenancy
from opencams.store.clock import now_ms
from opencams.store.records import GroupRecord, NumberRecord, OperationRecord

log = logging.getLogger("opencams.sync")

Progress = Callable[[str, int, int], None]  # (number, groups done, groups total)


@dataclass
class SyncReport:
    numbers: int = 0
    groups_at_meta: int = 0
    adopted: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    marked_inactive: int = 0
    participants_changed: int = 0
    join_requests_changed: int = 0
    operations_settled: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return (
            self.adopted
            + self.created
            + self.updated
            + self.deleted
            + self.marked_inactive
            + self.participants_changed
            + self.join_requests_changed
            + self.operations_settled
        )

    def lines(self) -> list[str]:
        return [
            f"numbers synced:          {self.numbers}",
            f"groups at Meta:          {self.groups_at_meta}",
            f"adopted (confirmed):     {self.adopted}",
            f"created (unknown):       {self.created}",
            f"updated (drift):         {self.updated}",
            f"deleted (gone at Meta):  {self.deleted}",
            f"creates never confirmed: {self.marked_inactive}",
            f"participant changes:     {self.participants_changed}",
            f"join request changes:    {self.join_requests_changed}",
            f"operations settled:      {self.operations_settled}",
            f"errors:                  {len(self.errors)}",
        ]


@dataclass(frozen=True)
class MetaGroup:
    summary: GroupSummary
    info: GroupInfo
    invite_link: str | None
    # Meta's pending join requests, read at `read_at` (ms); None when they could not be read.
    join_requests: list[JoinRequestInfo] | None = None
    read_at: int = 0


def _created_ms(summary: GroupSummary) -> int:
    try:
        return int(summary.created_at) * 1000
    except ValueError:
        return now_ms()


_SETTLED: dict[tuple[str, str], notify.EventType] = {
    ("update", "succeeded"): "ChatGroupUpdated",
    ("update", "failed"): "ChatGroupUpdateFailed",
    ("delete", "failed"): "ChatGroupDeleteFailed",
    ("remove_participants", "succeeded"): "ChatGroupParticipantsRemoved",
    ("remove_participants", "partial"): "ChatGroupParticipantsRemoved",
    ("remove_participants", "failed"): "ChatGroupParticipantsRemoveFailed",
}


async def _tell(
    tx: Any,
    group_id: str,
    event_type: notify.EventType,
    *,
    unique_code: str | None = None,
    **fields: Any,
) -> None:
    await notify.about(tx, group_id, event_type, source="sync", unique_code=unique_code, **fields)


class Syncer:
    def __init__(self, deps: Deps, *, grace_seconds: float = 60.0) -> None:
        self.deps = deps
        self.grace_ms = int(grace_seconds * 1000)

    def _settleable(self, op: OperationRecord) -> bool:
        return now_ms() - op.created_at >= self.grace_ms

    async def run(
        self,
        *,
        space_id: str | None = None,
        number: str | None = None,
        progress: Progress | None = None,
    ) -> SyncReport:
        report = SyncReport()
        async with self.deps.store.read() as tx:
            found = await tenancy.numbers(tx, space_id=space_id, number=number)
        for record in found:
            try:
                await self.sync_number(record, report, progress)
            except GraphError as exc:
                report.errors.append(f"{record.number}: {exc.describe()}")
            except StoreUnavailable:
                raise
            except Exception as exc:  # one number's trouble must not stop the others
                log.exception("sync of number %s failed", record.number)
                report.errors.append(f"{record.number}: {type(exc).__name__}: {exc}")
        return report

    async def _fetch(self, number: NumberRecord, token: str) -> list[GroupSummary]:
        summaries: list[GroupSummary] = []
        after: str | None = None
        while True:
            page = await self.deps.channel.list_groups(
                number.phone_number_id, token, limit=100, after=after
            )
            summaries.extend(page.groups)
            if not page.after:
                return summaries
            after = page.after

    async def _join_requests_at_meta(
        self, number: NumberRecord, group_id: str, token: str, report: SyncReport
    ) -> list[JoinRequestInfo] | None:
        """Every pending join request of a Meta group (cursor pages); None when Meta would not
        tell (the group's requests are then left as they are)."""
        found: list[JoinRequestInfo] = []
        after: str | None = None
        try:
            while True:
                page = await self.deps.channel.list_join_requests(
                    group_id, token, limit=100, after=after
                )
                found.extend(page.requests)
                if not page.after:
                    return found
                after = page.after
        except GraphError as exc:
            if exc.code == 131041:
                raise  # the group is gone: the caller's concern
            report.errors.append(f"{number.number}/{group_id} join requests: {exc.describe()}")
            return None

    async def sync_number(
        self, number: NumberRecord, report: SyncReport, progress: Progress | None = None
    ) -> None:
        token = self.deps.secrets.open(number.access_token_enc)
        started = now_ms()
        summaries = await self._fetch(number, token)
        report.numbers += 1
        report.groups_at_meta += len(summaries)
        seen: set[str] = set()
        for done, summary in enumerate(summaries, start=1):
            try:
                read_at = now_ms()
                info = await self.deps.channel.get_group(summary.id, token)
                link = await self.deps.channel.get_invite_link(summary.id, token)
                requests = await self._join_requests_at_meta(number, summary.id, token, report)
            except GraphError as exc:
                if exc.code == 131041:  # deleted between the list and the read
                    continue
                report.errors.append(f"{number.number}/{summary.id}: {exc.describe()}")
                seen.add(summary.id)  # unknown state: certainly not "gone"
                continue
            seen.add(summary.id)
            try:
                await self._group(number, MetaGroup(summary, info, link, requests, read_at), report)
            except StoreUnavailable:
                raise
            except Exception as exc:  # one odd group must not stop the rest of the number
                log.exception("sync of group %s failed", summary.id)
                report.errors.append(f"{number.number}/{summary.id}: {type(exc).__name__}: {exc}")
            if progress is not None:
                progress(number.number, done, len(summaries))
        await self._gone(number, token, seen, started, report)
        await self._never_confirmed(number, report)
        await self._unstick(number, report)

    async def _group(self, number: NumberRecord, meta: MetaGroup, report: SyncReport) -> None:
        async with self.deps.store.write() as tx:
            group = await chat_groups.group_by_meta_id(tx, meta.summary.id)
            if group is None:
                if await self._in_flight(tx, number, meta):
                    return  # its own confirmation is on the way: leave it to the webhook
                adopted = await self._adopt(tx, number, meta)
                if adopted is None:
                    group_id = new_group_id()
                    now = now_ms()
                    subject = meta.info.subject or meta.summary.subject
                    await chat_groups.insert_group(
                        tx,
                        id=group_id,
                        number_id=number.id,
                        channel_type="WHATSAPP",
                        subject=subject,
                        description=meta.info.description,
                        status=GroupStatus.SUSPENDED if meta.info.suspended else GroupStatus.ACTIVE,
                        meta_group_id=meta.summary.id,
                        invite_link=meta.invite_link,
                        join_approval_mode=meta.info.join_approval_mode,
                        participant_count=0,
                        created_at=_created_ms(meta.summary),
                        updated_at=now,
                    )
                    report.created += 1
                    await _tell(tx, group_id, "ChatGroupSynced", Corrections=["discovered"])
                else:
                    report.adopted += 1
                    report.operations_settled += 1
                group = await chat_groups.group_by_meta_id(tx, meta.summary.id)
                assert group is not None
            if group.deleted_at is not None:
                return
            await self._settle(tx, group, meta, report)
            await self._drift(tx, group, meta, report)
            await self._participants(tx, group, meta, report)
            await self._join_requests(tx, group, meta, report)
        await apply_parked(self.deps.store, meta_group_id=meta.summary.id)

    async def _in_flight(self, tx: Any, number: NumberRecord, meta: MetaGroup) -> bool:
        """A CREATING group of the same subject whose create is younger than the grace period."""
        subject = meta.info.subject or meta.summary.subject
        for group in await chat_groups.live_groups_of_number(tx, number.id):
            if group.status == GroupStatus.CREATING and group.subject == subject:
                op = await operations.pending_operation(tx, group.id, "create")
                if op is not None and not self._settleable(op):
                    return True
        return False

    async def _adopt(self, tx: Any, number: NumberRecord, meta: MetaGroup) -> str | None:
        """A CREATING group of this number whose create is still pending, same subject."""
        subject = meta.info.subject or meta.summary.subject
        for group in await chat_groups.live_groups_of_number(tx, number.id):
            if group.status != GroupStatus.CREATING or group.subject != subject:
                continue
            op = await operations.pending_operation(tx, group.id, "create")
            if op is None or not self._settleable(op):
                continue
            await chat_groups.set_group(
                tx,
                group.id,
                when_status={GroupStatus.CREATING},
                status=GroupStatus.SUSPENDED if meta.info.suspended else GroupStatus.ACTIVE,
                meta_group_id=meta.summary.id,
                invite_link=meta.invite_link,
            )
            await operations.settle_operation(
                tx, op.id, "succeeded", result={"group_id": meta.summary.id, "by": "sync"}
            )
            await _tell(tx, group.id, "ChatGroupCreated", unique_code=op.id)
            return group.id
        return None

    async def _settle(
        self, tx: Any, group: GroupRecord, meta: MetaGroup, report: SyncReport
    ) -> None:
        for op in await operations.pending_operations(tx, [group.id]):
            if not self._settleable(op):
                continue
            state: OperationState
            asked = op.asked()
            if op.kind == "update":
                missed = [
                    name
                    for name, value in (
                        ("subject", meta.info.subject),
                        ("description", meta.info.description),
                        ("join_approval_mode", meta.info.join_approval_mode),
                    )
                    if asked.get(name) is not None and asked[name] != value
                ]
                state = "failed" if missed else "succeeded"
                error = f"Meta does not show the new {', '.join(missed)}" if missed else None
                if not missed and asked.get("join_approval_mode"):
                    await chat_groups.set_group(
                        tx, group.id, join_approval_mode=asked["join_approval_mode"]
                    )
                if not missed and asked.get("picture_url"):
                    await chat_groups.set_group(
                        tx,
                        group.id,
                        profile_picture_url=asked["picture_url"],
                        picture_sha256=asked.get("picture_sha256"),
                    )
                await chat_groups.set_group(
                    tx, group.id, when_status={GroupStatus.UPDATING}, status=GroupStatus.ACTIVE
                )
            elif op.kind == "delete":
                state, error = "failed", "Meta still has the group"
                await chat_groups.set_group(
                    tx,
                    group.id,
                    when_status={GroupStatus.DELETING},
                    status=asked.get("previous_status", GroupStatus.ACTIVE),
                    failure_reason=error,
                )
            elif op.kind == "remove_participants":
                still = [n for n in asked.get("participants", []) if n in meta.info.participants]
                removed = [n for n in asked.get("participants", []) if n not in still]
                state = "succeeded" if not still else ("partial" if removed else "failed")
                error = f"still members: {', '.join(still)}" if still else None
                for wa_id in removed:
                    await participants.set_membership(
                        tx, group.id, wa_id, "removed", int(time.time())
                    )
            else:
                continue
            if await operations.settle_operation(tx, op.id, state, error=error):
                report.operations_settled += 1
                await _tell(
                    tx, group.id, _SETTLED[(op.kind, state)], unique_code=op.id, Reason=error
                )

    async def _drift(
        self, tx: Any, group: GroupRecord, meta: MetaGroup, report: SyncReport
    ) -> None:
        values: dict[str, Any] = {}
        subject = meta.info.subject
        if subject and subject != group.subject and group.status != GroupStatus.UPDATING:
            values["subject"] = subject
        if (
            meta.info.description is not None
            and meta.info.description != group.description
            and group.status != GroupStatus.UPDATING
        ):
            values["description"] = meta.info.description
        if meta.invite_link != group.invite_link:
            values["invite_link"] = meta.invite_link
        mode = meta.info.join_approval_mode
        if (
            mode in JOIN_APPROVAL_MODES
            and mode != group.join_approval_mode
            and group.status != GroupStatus.UPDATING
        ):
            values["join_approval_mode"] = mode
        changed = False
        if values:
            changed = await chat_groups.set_group(tx, group.id, **values)
        if meta.info.suspended:
            changed |= await chat_groups.set_group(
                tx,
                group.id,
                when_status={GroupStatus.ACTIVE, GroupStatus.UPDATING},
                status=GroupStatus.SUSPENDED,
            )
        else:
            changed |= await chat_groups.set_group(
                tx, group.id, when_status={GroupStatus.SUSPENDED}, status=GroupStatus.ACTIVE
            )
        report.updated += changed
        corrections = sorted(values)
        if meta.info.suspended and changed and group.status != GroupStatus.SUSPENDED:
            await _tell(tx, group.id, "ChatGroupSuspended")
        elif not meta.info.suspended and group.status == GroupStatus.SUSPENDED and changed:
            await _tell(tx, group.id, "ChatGroupSuspensionCleared")
        if values and changed:
            await _tell(tx, group.id, "ChatGroupSynced", Corrections=corrections)

    async def _participants(
        self, tx: Any, group: GroupRecord, meta: MetaGroup, report: SyncReport
    ) -> None:
        now = int(time.time())
        current = await participants.members(tx, group.id)
        at_meta = set(meta.info.participants)
        joined: list[str] = []
        left: list[str] = []
        for wa_id in meta.info.participants:  # Meta's order is its join order
            if wa_id not in current and await participants.set_membership(
                tx, group.id, wa_id, participants.MEMBER, now
            ):
                joined.append(wa_id)
        for wa_id in sorted(current - at_meta):
            if await participants.set_membership(tx, group.id, wa_id, "left", now):
                left.append(wa_id)
        changed = len(joined) + len(left)
        if joined:
            await _tell(tx, group.id, "ChatGroupParticipantsJoined", Participants=joined)
        if left:
            await _tell(tx, group.id, "ChatGroupParticipantsLeft", Participants=left)
        if changed:
            await participants.recount_participants(tx, group.id)
            report.participants_changed += changed

    async def _join_requests(
        self, tx: Any, group: GroupRecord, meta: MetaGroup, report: SyncReport
    ) -> None:
        """Requests pending at Meta are pending here (a filing whose webhook was lost appears);
        requests pending here that Meta no longer has are `gone`. A row changed since Meta was
        read is newer than what Meta showed, and is left alone."""
        if meta.join_requests is None:
            return
        rows = {r.wa_id: r for r in await participants.join_requests_of(tx, group.id)}
        at_meta: set[str] = set()
        changed = 0
        for request in meta.join_requests:
            who = request.wa_id or request.user_id
            if not who or len(who) > 32 or len(request.join_request_id) > 256:
                continue
            at_meta.add(request.join_request_id)
            row = rows.get(who)
            if row is not None and (
                row.updated_at >= meta.read_at
                or (
                    row.state == JoinRequestState.PENDING
                    and row.join_request_id == request.join_request_id
                )
            ):
                continue
            await participants.set_join_request(
                tx,
                group.id,
                who,
                JoinRequestState.PENDING,
                request.creation_timestamp or int(time.time()),
                request.join_request_id,
            )
            changed += 1
        gone = [
            r.join_request_id
            for r in rows.values()
            if r.state == JoinRequestState.PENDING
            and r.join_request_id not in at_meta
            and r.updated_at < meta.read_at
        ]
        changed += await participants.settle_join_requests(
            tx, group.id, gone, JoinRequestState.GONE
        )
        report.join_requests_changed += changed

    async def _gone(
        self, number: NumberRecord, token: str, seen: set[str], started: int, report: SyncReport
    ) -> None:
        """Groups Meta did not list. Each is asked for once more before it is marked deleted:
        one confirmed (or changed) while the list was being read is simply newer than it."""
        async with self.deps.store.write() as tx:
            candidates = [
                g
                for g in await chat_groups.live_groups_of_number(tx, number.id)
                if g.meta_group_id is not None
                and g.meta_group_id not in seen
                and g.updated_at < started
            ]
        for group in candidates:
            assert group.meta_group_id is not None
            try:
                await self.deps.channel.get_group(group.meta_group_id, token)
                continue  # Meta has it after all
            except GraphError as exc:
                if exc.code != 131041:
                    report.errors.append(f"{number.number}/{group.meta_group_id}: {exc.describe()}")
                    continue
            async with self.deps.store.write() as tx:
                if not await chat_groups.set_group(tx, group.id, deleted_at=now_ms()):
                    continue
                report.deleted += 1
                deleting = None
                for op in await operations.pending_operations(tx, [group.id]):
                    state: OperationState = "succeeded" if op.kind == "delete" else "failed"
                    error = None if state == "succeeded" else "the group is gone at Meta"
                    if await operations.settle_operation(tx, op.id, state, error=error):
                        report.operations_settled += 1
                        deleting = op.id if op.kind == "delete" else deleting
                await notify.event(
                    tx,
                    group,
                    "ChatGroupDeleted",
                    source="sync",
                    unique_code=deleting,
                    status="DELETED",
                )

    async def _unstick(self, number: NumberRecord, report: SyncReport) -> None:
        """UPDATING or DELETING with no operation pending (settled elsewhere): back to ACTIVE."""
        async with self.deps.store.write() as tx:
            for group in await chat_groups.live_groups_of_number(tx, number.id):
                if group.status not in (GroupStatus.UPDATING, GroupStatus.DELETING):
                    continue
                if await operations.pending_operations(tx, [group.id]):
                    continue
                if await chat_groups.set_group(
                    tx, group.id, when_status={group.status}, status=GroupStatus.ACTIVE
                ):
                    report.updated += 1

    async def _never_confirmed(self, number: NumberRecord, report: SyncReport) -> None:
        async with self.deps.store.write() as tx:
            for group in await chat_groups.live_groups_of_number(tx, number.id):
                if group.status != GroupStatus.CREATING:
                    continue
                op = await operations.pending_operation(tx, group.id, "create")
                if op is None or not self._settleable(op):
                    continue
                reason = "Meta never confirmed the creation (found by sync)"
                await chat_groups.set_group(
                    tx,
                    group.id,
                    when_status={GroupStatus.CREATING},
                    status=GroupStatus.INACTIVE,
                    failure_reason=reason,
                )
                if await operations.settle_operation(tx, op.id, "failed", error=reason):
                    report.marked_inactive += 1
                    report.operations_settled += 1
                    await _tell(
                        tx, group.id, "ChatGroupCreateFailed", unique_code=op.id, Reason=reason
                    )
