"""ListChatGroupJoinRequests, ApproveChatGroupJoinRequests, RejectChatGroupJoinRequests: the
opencams extensions for groups that require approval to join (docs/api.md#join-requests).

Join requests are recorded from Meta's `group_join_request_created` / `_revoked` webhooks (and
by sync); the list is served from the database. An approval or rejection names requests by
JoinRequestId: those not pending in opencams are answered `NotFound.JoinRequest` without asking
Meta; the rest go to Meta in one call, and what Meta answered is recorded in one unit of work:
approved requests become `approved` (the user becomes a participant when Meta's
`group_participants_add` webhook arrives), rejected ones `rejected`, and those Meta does not
know (131213) `gone`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opencams.channel.types import JoinRequestFailure, JoinRequestOutcome
from opencams.errors import (
    BusinessError,
    ChannelRejected,
    ChatGroupNotFound,
    GraphError,
    JoinRequestListInvalid,
    JoinRequestNotFound,
    ParticipantLimitExceeded,
    RecipientNotEligible,
)
from opencams.groups import notify, validation
from opencams.groups.common import (
    WRITABLE,
    channel_error,
    meta_id,
    require_allowlisted,
    require_status,
    resolve_group,
    resolve_group_number,
    token,
)
from opencams.groups.context import Ctx
from opencams.groups.requests import (
    JoinRequestsDecisionRequest,
    ListChatGroupJoinRequestsRequest,
    RawComplex,
)
from opencams.groups.results import (
    JoinRequestItem,
    JoinRequestPage,
    JoinRequestResult,
    JoinRequestResults,
)
from opencams.names import JoinRequestState
from opencams.store import participants

# opencams' own bound on one approval or rejection (Meta documents none): a page of requests
# to reject at once, well above the 8 participants a group can hold.
MAX_JOIN_REQUESTS_PER_CALL = 20
MAX_JOIN_REQUEST_ID = 256  # what opencams stores of an id
DEFAULT_JOIN_REQUESTS_PAGE = validation.Page(index=1, size=20)

# Meta's per-request codes (failed_join_requests) and the documented CAMS codes they become.
_META_CODES: dict[int, type[BusinessError]] = {
    131213: JoinRequestNotFound,  # Group join request does not exist
    131204: ParticipantLimitExceeded,  # the group is full
    131203: RecipientNotEligible,  # the user cannot be added (e.g. terms not accepted)
}

Decide = Callable[[str, str, list[str]], Awaitable[JoinRequestOutcome]]


def join_request_ids(raw: RawComplex | None) -> list[str]:
    """`["<JoinRequestId>", …]`: 1 to MAX_JOIN_REQUESTS_PER_CALL distinct, non-empty strings."""
    limit = MAX_JOIN_REQUESTS_PER_CALL
    if raw is None:
        raise JoinRequestListInvalid(f"it is missing; give 1 to {limit} JoinRequestId strings")
    if not isinstance(raw.value, list):
        raise JoinRequestListInvalid('it must be a JSON array like ["<JoinRequestId>"]')
    if not 1 <= len(raw.value) <= limit:
        raise JoinRequestListInvalid(f"it has {len(raw.value)} entries; give 1 to {limit}")
    ids: list[str] = []
    for value in raw.value:
        if not isinstance(value, str) or not value.strip():
            raise JoinRequestListInvalid("every entry must be a non-empty JoinRequestId string")
        if len(value) > MAX_JOIN_REQUEST_ID:
            raise JoinRequestListInvalid(
                f"a JoinRequestId is longer than {MAX_JOIN_REQUEST_ID} characters"
            )
        ids.append(value)
    if len(set(ids)) != len(ids):
        raise JoinRequestListInvalid("a JoinRequestId appears more than once")
    return ids


async def list_chat_group_join_requests(
    ctx: Ctx, req: ListChatGroupJoinRequestsRequest
) -> JoinRequestPage:
    require_allowlisted(ctx)
    page = validation.optional_page(req.page, DEFAULT_JOIN_REQUESTS_PAGE)
    number = await resolve_group_number(ctx, req.ref)
    async with ctx.deps.store.read() as tx:
        found = await participants.pending_join_request_page(
            tx, number.id, req.ref.group_id, page.offset, page.size
        )
    if found is None:
        raise ChatGroupNotFound()
    total, rows = found
    return JoinRequestPage(
        total=total,
        requests=[
            JoinRequestItem(
                join_request_id=row.join_request_id,
                participant_number=row.wa_id,
                create_time=row.created_ts * 1000,
            )
            for row in rows
        ],
    )


async def approve_chat_group_join_requests(
    ctx: Ctx, req: JoinRequestsDecisionRequest
) -> JoinRequestResults:
    return await _decide(ctx, req, "approving join requests", JoinRequestState.APPROVED)


async def reject_chat_group_join_requests(
    ctx: Ctx, req: JoinRequestsDecisionRequest
) -> JoinRequestResults:
    return await _decide(ctx, req, "rejecting join requests", JoinRequestState.REJECTED)


async def _decide(
    ctx: Ctx, req: JoinRequestsDecisionRequest, doing: str, decided: JoinRequestState
) -> JoinRequestResults:
    require_allowlisted(ctx)
    ids = join_request_ids(req.join_request_ids)
    number, group = await resolve_group(ctx, req.ref)
    require_status(group, WRITABLE, doing)
    async with ctx.deps.store.read() as tx:
        known = await participants.join_requests_of(tx, group.id, ids)
    pending = {r.join_request_id for r in known if r.state == JoinRequestState.PENDING}
    asked = [i for i in ids if i in pending]

    outcome = JoinRequestOutcome(done=[], failed=[])
    if asked:
        channel = ctx.deps.channel
        call: Decide = (
            channel.approve_join_requests
            if decided == JoinRequestState.APPROVED
            else channel.reject_join_requests
        )
        try:
            outcome = await call(meta_id(group), token(ctx, number), asked)
        except GraphError as exc:
            # Meta refused the call as a whole: nothing changed there, nothing is written here.
            raise channel_error(exc) from exc

    done = set(outcome.done) & set(asked)
    failed = {f.join_request_id: f for f in outcome.failed if f.join_request_id in pending}
    unknown_at_meta = {i for i, f in failed.items() if f.code == 131213}
    who = {r.join_request_id: r.wa_id for r in known}
    async with ctx.deps.store.write() as tx:
        # The customer is told of each decision that this call changed (in this transaction).
        still = {
            r.join_request_id
            for r in await participants.join_requests_of(tx, group.id, done)
            if r.state == JoinRequestState.PENDING
        }
        await participants.settle_join_requests(tx, group.id, done, decided)
        await participants.settle_join_requests(
            tx, group.id, unknown_at_meta, JoinRequestState.GONE
        )
        for request_id in (i for i in asked if i in still):
            await notify.about(
                tx,
                group.id,
                "ChatGroupJoinRequestApproved"
                if decided == JoinRequestState.APPROVED
                else "ChatGroupJoinRequestRejected",
                source="api",
                JoinRequestId=request_id,
                ParticipantNumber=who.get(request_id),
            )
    return JoinRequestResults(results=[_result(i, i in pending, done, failed) for i in ids])


def _result(
    join_request_id: str,
    was_pending: bool,
    done: set[str],
    failed: dict[str, JoinRequestFailure],
) -> JoinRequestResult:
    if join_request_id in done:
        return JoinRequestResult(join_request_id, True, "OK", "OK")
    error: BusinessError
    if not was_pending:
        error = JoinRequestNotFound(join_request_id)
    elif join_request_id in failed:
        failure = failed[join_request_id]
        detail = f"(#{failure.code}) {failure.message}"
        error = _META_CODES.get(failure.code or 0, ChannelRejected)(detail)
    else:
        # Meta listed it neither as done nor as failed: its state there is unknown, so it stays
        # pending here (a sync reads it back).
        error = ChannelRejected("WhatsApp did not report on this join request")
    return JoinRequestResult(join_request_id, False, error.code, error.message)
