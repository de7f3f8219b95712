"""Webhook application against a real database: exactly once, and events that come too early."""

from __future__ import annotations

import json
from typing import Any

from opencams.channel.webhooks import parse_events
from opencams.groups.events import apply_event, apply_parked
from opencams.provision.apply import apply, parse
from opencams.store import chat_groups, operations, participants
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


def envelope(field: str, group: dict[str, Any]) -> bytes:
    change = {"field": field, "value": {"metadata": {"phone_number_id": "1"}, "groups": [group]}}
    return json.dumps(
        {"object": "whatsapp_business_account", "entry": [{"id": "w", "changes": [change]}]}
    ).encode()


async def active_group(store: Store, box: SecretBox) -> None:
    await pending(store, box, "R3")
    [created], _ = parse_events(event("R3", join_approval_mode="approval_required"))
    assert await apply_event(store, created) == "applied"


async def test_join_approval_mode_follows_the_settings_webhook(
    store: Store, box: SecretBox
) -> None:
    await active_group(store, box)
    group = await stored_group(store, "G1")
    assert group is not None and group.join_approval_mode == "approval_required"
    for op_id, request_id, errors, expected, state in (
        ("U2", "R4", [{"code": 131207, "message": "suspended"}], "approval_required", "failed"),
        ("U3", "R5", None, "auto_approve", "succeeded"),
    ):
        async with store.write() as tx:
            await chat_groups.set_group(tx, "G1", status="UPDATING")
            await operations.insert_operation(
                tx,
                op_id=op_id,
                kind="update",
                group_id="G1",
                meta_request_id=request_id,
                payload={"join_approval_mode": "auto_approve"},
            )
        item: dict[str, Any] = {"type": "group_settings_update", "request_id": request_id}
        if errors:
            item["errors"] = errors
        [settings], _ = parse_events(envelope("group_settings_update", item))
        assert await apply_event(store, settings) == "applied"
        group = await stored_group(store, "G1")
        assert group is not None
        assert (group.status, group.join_approval_mode) == ("ACTIVE", expected)
        async with store.read() as tx:
            op = await operations.operation_by_request_id(tx, request_id)
        assert op is not None and op.state == state


async def test_a_join_request_without_wa_id_is_kept_under_the_bsuid(
    store: Store, box: SecretBox
) -> None:
    await active_group(store, box)
    item = {
        "type": "group_join_request_created",
        "group_id": "META-1",
        "timestamp": "1755548877",
        "join_request_id": "JR-B",
        "user_id": "US.13491208655302741918",
        "username": "ann",
    }
    [filed], _ = parse_events(envelope("group_participants_update", item))
    assert await apply_event(store, filed) == "applied"
    number = await store.number_in_space("1000000000000001", "cams-acme01", "8613800000001")
    assert number is not None
    async with store.read() as tx:
        found = await participants.pending_join_request_page(tx, number.id, "G1", 0, 10)
    assert found is not None
    total, rows = found
    assert (total, rows[0].wa_id, rows[0].join_request_id) == (1, "US.13491208655302741918", "JR-B")
    assert rows[0].created_ts == 1755548877
