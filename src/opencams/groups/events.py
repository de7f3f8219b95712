"""Applying Meta's group webhooks to the database: exactly once, in any order of arrival.

Each event is recorded under a deduplication key in the same transaction that applies it, so a
redelivery (or the same delivery reaching two servers) changes nothing the second time. An event
about an operation opencams has not recorded yet (Meta can answer before AddChatGroup has written
its row) is *parked* and applied when the operation appears; both sides re-check after they
commit, so neither can miss the other.
"""

from __future__ import annotations

import json
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from opencams.channel.webhooks import GroupEvent
from opencams.store.repo import Store, now_ms

Outcome = Literal["applied", "duplicate", "parked", "ignored"]


def _describe_errors(event: GroupEvent) -> str:
    parts = []
    for error in event.errors:
        details = (
            error.get("error_data", {}).get("details")
            if isinstance(error.get("error_data"), dict)
            else None
        )
        text = error.get("message") or error.get("title") or "unknown error"
        parts.append(f"(#{error.get('code')}) {text}" + (f": {details}" if details else ""))
    return "; ".join(parts) or "Meta reported a failure without details"


async def _apply(store: Store, conn: AsyncConnection, event: GroupEvent) -> Outcome:
    if event.field_name == "group_lifecycle_update" and event.type == "group_create":
        if event.request_id is None:
            return "ignored"
        operation = await store.operation_by_request_id(conn, event.request_id)
        if operation is None:
            return "parked"
        if operation.kind != "create":
            return "ignored"
        values: dict[str, str | None]
        if event.errors:
            values = {"status": "INACTIVE", "failure_reason": _describe_errors(event)}
            succeeded = False
        else:
            values = {
                "status": "ACTIVE",
                "meta_group_id": event.group_id,
                "invite_link": event.raw.get("invite_link") or None,
                "join_approval_mode": event.raw.get("join_approval_mode") or None,
            }
            succeeded = True
        settled = await store.finish_create(
            conn,
            operation,
            group_values=values,
            succeeded=succeeded,
            error=None if succeeded else values["failure_reason"],
        )
        return "applied" if settled else "ignored"
    return "ignored"


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


async def apply_event(store: Store, event: GroupEvent) -> Outcome:
    key = event.dedupe_key()
    try:
        async with store.tx() as conn:
            recorded = await store.record_event(
                conn,
                {
                    "id": key,
                    "field": event.field_name,
                    "event_type": event.type,
                    "meta_request_id": event.request_id,
                    "meta_group_id": event.group_id,
                    "phone_number_id": event.phone_number_id,
                    "payload": _stored_payload(event),
                    "state": "received",
                    "received_at": now_ms(),
                },
            )
            if not recorded:
                return "duplicate"
            outcome = await _apply(store, conn, event)
            await store.set_event_state(conn, key, outcome)
    except IntegrityError:
        # The same event committed concurrently by another delivery.
        return "duplicate"
    if outcome == "parked" and event.request_id is not None:
        await apply_parked_for_request(store, event.request_id)
    return outcome


async def apply_parked_for_request(store: Store, request_id: str) -> int:
    """Apply events parked for `request_id` now that its operation may exist; returns how many."""
    applied = 0
    for event_id, payload in await store.parked_events(request_id):
        async with store.tx() as conn:
            if await store.operation_by_request_id(conn, request_id) is None:
                return applied
            if not await store.claim_parked_event(conn, event_id):
                continue  # another process applied it
            outcome = await _apply(store, conn, _event_from_payload(payload))
            await store.set_event_state(conn, event_id, outcome)
            applied += outcome == "applied"
    return applied
