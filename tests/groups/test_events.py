"""Webhook application against a real database: exactly once, and events that come too early."""

from __future__ import annotations

import json
from typing import Any

from opencams.channel.webhooks import parse_events
from opencams.groups.events import apply_event, apply_parked
from opencams.provision.apply import apply, parse
from opencams.store import chat_groups, operations
from opencams.store.crypto import SecretBox
from opencams.store.records import GroupRecord
from opencams.store.repo import Store
from tests.provision.helpers import DOC


def event(request_id: str, **extra: Any) -> bytes:
    group = {
        "type": "group_create",
        "request_id": request_id,
        "group_id": "META-1",
        "invite_link": "https://chat.whatsapp.com/abc",
        **extra,
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "w",
                    "changes": [
                        {
                            "field": "group_lifecycle_update",
                            "value": {
                                "metadata": {"phone_number_id": "110000000000001"},
                                "groups": [group],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


async def pending(store: Store, box: SecretBox, request_id: str) -> None:
    await apply(store, box, parse(DOC))
    number = await store.number_in_space("1000000000000001", "cams-acme01", "8613800000001")
    assert number is not None
    async with store.write() as tx:
        await chat_groups.insert_group(
            tx,
            id="G1",
            number_id=number.id,
            channel_type="WHATSAPP",
            subject="s",
            status="CREATING",
            participant_count=0,
            created_at=1,
            updated_at=1,
        )
        await operations.insert_operation(
            tx, op_id="U1", kind="create", group_id="G1", meta_request_id=request_id, payload={}
        )


async def stored_group(store: Store, group_id: str) -> GroupRecord | None:
    async with store.read() as tx:
        return await chat_groups.group_by_id(tx, group_id)


async def test_early_event_is_parked_then_applied_once(store: Store, box: SecretBox) -> None:
    [early], _ = parse_events(event("R1"))
    assert await apply_event(store, early) == "parked"
    assert await apply_event(store, early) == "duplicate"
    await pending(store, box, "R1")
    assert await apply_parked(store, request_id="R1") == 1
    assert await apply_parked(store, request_id="R1") == 0
    group = await stored_group(store, "G1")
    assert group is not None
    assert (group.status, group.meta_group_id, group.invite_link) == (
        "ACTIVE",
        "META-1",
        "https://chat.whatsapp.com/abc",
    )


async def test_parked_event_applied_by_the_webhook_side_when_operation_exists(
    store: Store, box: SecretBox
) -> None:
    # The operation is committed first; the webhook then applies directly.
    await pending(store, box, "R2")
    [evt], _ = parse_events(
        event(
            "R2",
            errors=[{"code": 131214, "message": "disabled", "error_data": {"details": "too many"}}],
        )
    )
    assert await apply_event(store, evt) == "applied"
    group = await stored_group(store, "G1")
    assert group is not None and group.status == "INACTIVE"
    assert group.failure_reason == "(#131214) disabled: too many"
    assert group.meta_group_id is None


async def test_events_of_other_fields_are_recorded_not_applied(store: Store) -> None:
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "w", "changes": [{"field": "messages", "value": {"messages": []}}]}],
        }
    ).encode()
    assert parse_events(raw) == ([], 0)
