"""Applying Meta's group webhooks: exactly once, in any order of arrival.

Each event is recorded under a deduplication key in the same transaction that applies it, so a
redelivery (or the same delivery reaching two servers) changes nothing the second time. An event
that names a group or an operation opencams has not recorded yet is *parked*: kept, and applied
when the group or operation appears (after AddChatGroup stores its row, after a create webhook
links Meta's group id, after sync adopts a group). Both sides re-check after they commit, so
neither can miss the other. `effects` holds what each event does.
"""

from __future__ import annotations

import json
import logging

from opencams import metrics
from opencams.channel.webhooks import GroupEvent
from opencams.errors import StoreConflict
from opencams.groups.effects import Outcome, apply_effect
from opencams.store import operations
from opencams.store.database import Tx
from opencams.store.repo import Store

log = logging.getLogger("opencams.webhook")


def _stored_payload(event: GroupEvent) -> str:
    return json.dumps(
        {"field": event.field_name, "phone_number_id": event.phone_number_id, "event": event.raw},
        separators=(",", ":"),
    )


def _event_from_payload(payload: str) -> GroupEvent:
    data = json.loads(payload)
    raw = data["event"]
    return GroupEvent(
        field_name=data["field"],
        type=str(raw.get("type", "")),
        phone_number_id=data.get("phone_number_id"),
        group_id=raw.get("group_id"),
        request_id=raw.get("request_id"),
        timestamp=raw.get("timestamp"),
        raw=raw,
    )


def _links_group(event: GroupEvent, outcome: Outcome) -> bool:
    """A create that succeeded makes Meta's group id known: events parked on it can go."""
    # A failed create may name a group id too (Meta's example does): it links nothing.
    return (
        outcome == "applied"
        and event.type == "group_create"
        and bool(event.group_id)
        and not event.errors
    )


async def _cause(tx: Tx, event: GroupEvent) -> str | None:
    """The RequestId of the CAMS request whose operation this event answers, if any."""
    if event.request_id is None:
        return None
    op = await operations.operation_by_request_id(tx, event.request_id)
    if op is None:
        return None
    cause = op.asked().get("request_id")
    return cause if isinstance(cause, str) else None


def _log(event: GroupEvent, outcome: str, cause: str | None, *, parked: bool = False) -> None:
    log.info(
        "webhook event",
        extra={
            "RequestId": cause,
            "field": event.field_name,
            "event_type": event.type,
            "outcome": outcome,
            "was_parked": parked,
        },
    )


async def apply_event(store: Store, event: GroupEvent) -> Outcome:
    """Apply one event; counts it (opencams_webhook_events) and logs its line."""
    metrics.WEBHOOK_RECEIVED.inc()
    outcome = await _apply_event(store, event)
    metrics.webhook_outcome(outcome)
    return outcome


async def _apply_event(store: Store, event: GroupEvent) -> Outcome:
    key = event.dedupe_key()
    cause: str | None = None
    try:
        async with store.write() as tx:
            recorded = await operations.record_event(
                tx,
                {
                    "id": key,
                    "field": event.field_name,
                    "event_type": event.type,
                    "meta_request_id": event.request_id,
                    "meta_group_id": event.group_id,
                    "phone_number_id": event.phone_number_id,
                    "payload": _stored_payload(event),
                    "state": "received",
                },
            )
            if not recorded:
                return "duplicate"
            outcome = await apply_effect(tx, event)
            await operations.set_event_state(tx, key, outcome)
            if outcome == "applied" and log.isEnabledFor(logging.INFO):
                cause = await _cause(tx, event)
    except StoreConflict:
        # The same event committed concurrently by another delivery (or server)?
        async with store.read() as tx:
            seen = await operations.event_exists(tx, key)
        if seen:
            return "duplicate"
        raise
    _log(event, outcome, cause)
    if _links_group(event, outcome):
        await apply_parked(store, meta_group_id=event.group_id)
    elif outcome == "parked":
        await apply_parked(store, request_id=event.request_id, meta_group_id=event.group_id)
    return outcome


async def apply_parked(
    store: Store,
    *,
    request_id: str | None = None,
    meta_group_id: str | None = None,
) -> int:
    """Retry parked events naming this request or Meta group; returns how many were applied."""
    applied = 0
    pending = [(request_id, meta_group_id)]
    seen: set[str] = set()
    while pending:
        rid, gid = pending.pop()
        async with store.read() as tx:
            events = await operations.parked_events(tx, request_id=rid, meta_group_id=gid)
        for event_id, payload in events:
            if event_id in seen:
                continue
            seen.add(event_id)
            event = _event_from_payload(payload)
            async with store.write() as tx:
                if not await operations.claim_parked_event(tx, event_id):
                    continue  # another process took it
                outcome = await apply_effect(tx, event)
                await operations.set_event_state(tx, event_id, outcome)
                cause = await _cause(tx, event) if outcome == "applied" else None
            _log(event, outcome, cause, parked=True)
            if outcome == "applied":
                metrics.WEBHOOK_UNPARKED.inc()
                applied += 1
                if _links_group(event, outcome):
                    pending.append((None, event.group_id))
    return applied
