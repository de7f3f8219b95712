"""Meta's behaviour for numbers and groups: validation, limits, state changes, webhook events.

HTTP parsing lives in `graph.py`; this module receives plain values and raises `MetaErrorAnswer`.
Every Graph operation follows the same order of checks, so tests can rely on it:
authentication/lookup -> fail-next (sync) -> eligibility -> suspension (writes) -> validation ->
fail-next (webhook) -> acknowledge and schedule the effect after `webhook_delay`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import MetaErrorAnswer, webhook_error
from .ids import decode_cursor, encode_cursor, new_invite_code, new_request_id
from .media import validate_picture
from .state import (
    MAX_DESCRIPTION,
    MAX_GROUPS_PER_NUMBER,
    MAX_SUBJECT,
    FailRule,
    Group,
    JoinApprovalMode,
    PhoneNumber,
    SimState,
    now_ts,
)
from .webhooks import Event, Outbox

GROUP_FIELDS = (
    "subject",
    "description",
    "join_approval_mode",
    "suspended",
    "creation_timestamp",
    "participants",
    "total_participant_count",
)
JOIN_APPROVAL_MODES: tuple[JoinApprovalMode, ...] = ("auto_approve", "approval_required")
DEFAULT_LIMIT = 25
MAX_LIMIT = 1024


@dataclass(frozen=True)
class Page:
    """One page of a cursor-paginated edge; `positions` are what the cursors encode."""

    positions: list[int]
    before: str | None  # cursor of the first item
    after: str | None  # cursor of the last item
    previous_before: str | None  # the `before` of the `previous` link, if there is one
    next_after: str | None  # the `after` of the `next` link, if there is one


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise MetaErrorAnswer(100, "Param limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise MetaErrorAnswer(100, f"Param limit must be between 1 and {MAX_LIMIT}")
    return limit


def paginate(
    positions: Sequence[int], limit: int, after: str | None, before: str | None, upper: int
) -> Page:
    """Cursor pagination over sorted `positions` (all < `upper`), Graph style.

    A cursor is the position of an item; `after=p` gives the items after p, `before=p` the
    `limit` items just before p. Positions of removed items stay valid cursors.
    """
    if after and before:
        raise MetaErrorAnswer(100, "Params after and before cannot be used together")
    cursor = after or before
    pos: int | None = None
    if cursor:
        pos = decode_cursor(cursor)
        if pos is None or pos > upper:
            raise MetaErrorAnswer(131059)
    if before and pos is not None:
        end = bisect.bisect_left(positions, pos)
        start = max(0, end - limit)
    else:
        start = 0 if pos is None else bisect.bisect_right(positions, pos)
        end = min(len(positions), start + limit)
    items = list(positions[start:end])
    has_previous = start > 0
    has_next = end < len(positions)
    if items:
        first, last = encode_cursor(items[0]), encode_cursor(items[-1])
        return Page(items, first, last, first if has_previous else None, last if has_next else None)
    # An empty page (a cursor past either end) still points back to the items it is beside.
    previous = encode_cursor(min(pos + 1, upper)) if has_previous and pos is not None else None
    following = encode_cursor(pos - 1) if has_next and pos is not None and pos > 0 else None
    return Page([], None, None, previous, following)


def validate_subject(value: Any) -> str:
    if not isinstance(value, str):
        raise MetaErrorAnswer(100, "Param subject must be a string")
    subject = value.strip()
    if not subject:
        raise MetaErrorAnswer(100, "Param subject must not be empty")
    if len(subject) > MAX_SUBJECT:
        raise MetaErrorAnswer(100, f"Param subject must be at most {MAX_SUBJECT} characters long")
    return subject


def validate_description(value: Any) -> str:
    if not isinstance(value, str):
        raise MetaErrorAnswer(100, "Param description must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise MetaErrorAnswer(
            100, f"Param description must be at most {MAX_DESCRIPTION} characters long"
        )
    return value


def require_whatsapp(body: dict[str, Any]) -> None:
    product = body.get("messaging_product")
    if product is None:
        raise MetaErrorAnswer(100, "The parameter messaging_product is required.")
    if product != "whatsapp":
        raise MetaErrorAnswer(100, "Param messaging_product must be 'whatsapp'")


class Rules:
    def __init__(self, state: SimState, outbox: Outbox) -> None:
        self.state = state
        self.outbox = outbox

    # --- shared helpers ------------------------------------------------------------------

    def auth_number(self, phone_number_id: str, token: str) -> PhoneNumber:
        if not phone_number_id.isdigit():
            raise MetaErrorAnswer(100, unsupported_object(phone_number_id))
        number = self.state.register_number(phone_number_id)
        if not self.state.authorize(number, token):
            raise MetaErrorAnswer(
                190, "Invalid OAuth access token - the token does not grant access to this number"
            )
        return number

    def resolve_group(self, group_id: str, token: str) -> tuple[Group, PhoneNumber]:
        """An active group visible to `token`; anything else is "unknown group" (131041)."""
        group = self.state.active_group(group_id)
        if group is None:
            raise MetaErrorAnswer(131041)
        number = self.state.numbers[group.phone_number_id]
        if not self.state.authorize(number, token):
            raise MetaErrorAnswer(131041)
        return group, number

    def fail_sync(self, operation: str) -> None:
        rule = self.state.take_fail_rule(operation, "sync")
        if rule is not None:
            raise MetaErrorAnswer(rule.code, f"Injected failure of {operation} (fail-next)")

    def fail_webhook(self, operation: str) -> FailRule | None:
        return self.state.take_fail_rule(operation, "webhook")

    @staticmethod
    def check_eligible(number: PhoneNumber) -> None:
        if not number.eligible:
            raise MetaErrorAnswer(131215)

    @staticmethod
    def check_writable(group: Group) -> None:
        if group.suspended:
            raise MetaErrorAnswer(131207)

    def event(self, group: Group, field: str, item: dict[str, Any]) -> Event:
        number = self.state.numbers[group.phone_number_id]
        return Event(
            field=field,
            phone_number_id=number.phone_number_id,
            waba_id=number.waba_id,
            display_phone_number=number.display_phone_number,
            group=item,
        )

    def emit_later(self, label: str, events: list[Event]) -> None:
        """Webhooks for something that already happened (user actions): only delivery waits."""
        self.outbox.later(label, lambda: events)

    def schedule(
        self, label: str, run: Callable[[], list[Event]], group: Group, request_id: str
    ) -> None:
        """An operation Meta confirms by webhook: it may be held for a test to confirm
        (Outbox.hold_operations), named by its request id or its group."""
        self.outbox.later(label, run, confirms=(request_id, group.group_id))

    # --- create / list / get -------------------------------------------------------------

    def create_group(
        self, phone_number_id: str, token: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        number = self.auth_number(phone_number_id, token)
        self.fail_sync("create")
        self.check_eligible(number)
        require_whatsapp(body)
        if "subject" not in body:
            raise MetaErrorAnswer(100, "The parameter subject is required.")
        subject = validate_subject(body["subject"])
        description = None
        if body.get("description") is not None:
            description = validate_description(body["description"])
        mode = body.get("join_approval_mode", "auto_approve")
        if mode not in JOIN_APPROVAL_MODES:
            raise MetaErrorAnswer(
                100, "Param join_approval_mode must be one of auto_approve, approval_required"
            )
        if self.state.live_group_count(number) >= MAX_GROUPS_PER_NUMBER:
            raise MetaErrorAnswer(131211)
        group = self.state.new_group(number, subject, description, mode)
        rule = self.fail_webhook("create")

        def run() -> list[Event]:
            item: dict[str, Any] = {
                "timestamp": str(now_ts()),
                "type": "group_create",
                "request_id": group.request_id,
                "subject": group.subject,
            }
            if rule is not None:
                # Meta's "group create fail" example names the group id it had reserved, though
                # the group never comes to exist (docs/simulator.md).
                item["group_id"] = group.group_id
                group.status = "failed"
                group.failure = webhook_error(rule.code, "Injected failure of create")
                if group.description is not None:
                    item["description"] = group.description
                item["errors"] = [group.failure]
                return [self.event(group, "group_lifecycle_update", item)]
            self.state.activate(group)
            item.update(
                group_id=group.group_id,
                invite_link=group.invite_link,
                join_approval_mode=group.join_approval_mode,
            )
            if group.description is not None:
                item["description"] = group.description
            return [self.event(group, "group_lifecycle_update", item)]

        self.schedule(f"create {group.request_id}", run, group, group.request_id)
        return {"messaging_product": "whatsapp", "request_id": group.request_id}

    def list_groups(
        self,
        phone_number_id: str,
        token: str,
        limit: str | None,
        after: str | None,
        before: str | None,
    ) -> tuple[list[dict[str, Any]], Page]:
        number = self.auth_number(phone_number_id, token)
        self.fail_sync("list")
        self.check_eligible(number)
        size = parse_limit(limit)
        groups = self.state.groups
        positions = [i for i, gid in enumerate(number.group_ids) if groups[gid].status == "active"]
        page = paginate(positions, size, after, before, len(number.group_ids))
        items = []
        for pos in page.positions:
            group = groups[number.group_ids[pos]]
            items.append(
                {
                    "id": group.group_id,
                    "subject": group.subject,
                    "created_at": str(group.creation_timestamp),
                }
            )
        return items, page

    def get_group(self, group_id: str, token: str, fields: list[str]) -> dict[str, Any]:
        group, number = self.resolve_group(group_id, token)
        self.fail_sync("get")
        self.check_eligible(number)
        unknown = [f for f in fields if f not in GROUP_FIELDS and f not in ("id",)]
        if unknown:
            raise MetaErrorAnswer(
                100, f"Tried accessing nonexisting field ({unknown[0]}) on node type (Group)"
            )
        result: dict[str, Any] = {"messaging_product": "whatsapp", "id": group.group_id}
        values: dict[str, Any] = {
            "subject": group.subject,
            "description": group.description,
            "join_approval_mode": group.join_approval_mode,
            "suspended": group.suspended,
            "creation_timestamp": group.creation_timestamp,
            "participants": [self.state.identity(wa_id) for wa_id in group.participants],
            "total_participant_count": len(group.participants),
        }
        for name in fields:
            # Graph omits fields without a value (a group created without a description).
            if name in values and values[name] is not None:
                result[name] = values[name]
        return result

    # --- update / delete -----------------------------------------------------------------

    def update_group(
        self, group_id: str, token: str, params: dict[str, Any], picture_data: bytes | None
    ) -> dict[str, Any]:
        """`params`: the JSON body or the text parts of a multipart upload."""
        group, number = self.resolve_group(group_id, token)
        self.fail_sync("update")
        self.check_eligible(number)
        self.check_writable(group)
        require_whatsapp(params)
        subject = None
        if params.get("subject") is not None:
            subject = validate_subject(params["subject"])
        description = None
        if params.get("description") is not None:
            description = validate_description(params["description"])
        if picture_data is None and params.get("profile_picture_file") is not None:
            # A JSON body can only name a file on the caller's disk; Meta needs the bytes.
            raise MetaErrorAnswer(
                100, "Upload the profile picture as multipart/form-data (part 'file')"
            )
        picture = None if picture_data is None else validate_picture(picture_data)
        # Not in Meta's settings reference (only at create and in group info): the simulator
        # takes it under the same name, validated as at create (docs/simulator.md).
        mode = params.get("join_approval_mode")
        if mode is not None and mode not in JOIN_APPROVAL_MODES:
            raise MetaErrorAnswer(
                100, "Param join_approval_mode must be one of auto_approve, approval_required"
            )
        if subject is None and description is None and picture is None and mode is None:
            raise MetaErrorAnswer(
                100,
                "Nothing to update: give subject, description, join_approval_mode "
                "or a profile picture file",
            )
        rule = self.fail_webhook("update")
        request_id = new_request_id()

        def run() -> list[Event]:
            error = None
            if rule is not None:
                error = webhook_error(rule.code, "Injected failure of update")
            elif group.status != "active":
                error = webhook_error(131041)
            elif group.suspended:
                error = webhook_error(131207)
            item: dict[str, Any] = {
                "timestamp": str(now_ts()),
                "group_id": group.group_id,
                "type": "group_settings_update",
                "request_id": request_id,
            }
            ok = error is None
            if picture is not None:
                item["profile_picture"] = {
                    "mime_type": "image/jpeg",
                    "update_successful": ok,
                    "sha256": picture.sha256,
                }
                if ok:
                    group.picture_sha256 = picture.sha256
            if subject is not None:
                item["group_subject"] = {"text": subject, "update_successful": ok}
                if ok:
                    group.subject = subject
            if description is not None:
                item["group_description"] = {"text": description, "update_successful": ok}
                if ok:
                    group.description = description
            if mode is not None and ok:
                # Meta's webhook documents no part for it: the mode changes silently.
                group.join_approval_mode = mode
            if error is not None:
                for key in ("profile_picture", "group_subject", "group_description"):
                    if key in item:
                        item[key]["errors"] = [error]
                item["errors"] = [error]
            return [self.event(group, "group_settings_update", item)]

        self.schedule(f"update {request_id}", run, group, request_id)
        return {"messaging_product": "whatsapp", "request_id": request_id}

    def delete_group(self, group_id: str, token: str) -> dict[str, Any]:
        group, number = self.resolve_group(group_id, token)
        self.fail_sync("delete")
        self.check_eligible(number)
        self.check_writable(group)
        rule = self.fail_webhook("delete")
        request_id = new_request_id()

        def run() -> list[Event]:
            item: dict[str, Any] = {
                "timestamp": str(now_ts()),
                "group_id": group.group_id,
                "type": "group_delete",
                "request_id": request_id,
            }
            if rule is not None:
                item["errors"] = [webhook_error(rule.code, "Injected failure of delete")]
            elif group.status != "active":
                item["errors"] = [webhook_error(131041)]
            else:
                # Deleting removes every participant, the business included, and the link.
                group.status = "deleted"
                group.participants.clear()
                group.join_requests.clear()
                self.state.set_invite_code(group, None)
            return [self.event(group, "group_lifecycle_update", item)]

        self.schedule(f"delete {request_id}", run, group, request_id)
        # Like every other asynchronous Graph write, the answer names the request that the
        # group_delete webhook will carry (docs/simulator.md).
        return {"success": True, "request_id": request_id}

    # --- invite link ---------------------------------------------------------------------

    def get_invite_link(self, group_id: str, token: str) -> dict[str, Any]:
        group, number = self.resolve_group(group_id, token)
        self.fail_sync("invite-link")
        self.check_eligible(number)
        result: dict[str, Any] = {"messaging_product": "whatsapp"}
        if group.invite_link is not None:
            result["invite_link"] = group.invite_link
        return result

    def reset_invite_link(self, group_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        group, number = self.resolve_group(group_id, token)
        self.fail_sync("invite-link")
        self.check_eligible(number)
        self.check_writable(group)
        check_optional_whatsapp(body)
        # Once reset, every previous link is invalid (Meta: a reset invalidates every earlier link).
        self.state.set_invite_code(group, new_invite_code())
        return {"messaging_product": "whatsapp", "invite_link": group.invite_link}

    def delete_invite_link(self, group_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        group, number = self.resolve_group(group_id, token)
        self.fail_sync("invite-link")
        self.check_eligible(number)
        self.check_writable(group)
        check_optional_whatsapp(body)
        self.state.set_invite_code(group, None)
        return {"messaging_product": "whatsapp", "success": True}

    # --- suspension (test controls) ------------------------------------------------------

    def set_suspended(self, group: Group, suspended: bool) -> None:
        group.suspended = suspended
        item = {
            "timestamp": str(now_ts()),
            "type": "group_suspend" if suspended else "group_suspend_cleared",
            "group_id": group.group_id,
        }
        self.emit_later(
            f"{item['type']} {group.group_id}", [self.event(group, "group_status_update", item)]
        )


def check_optional_whatsapp(body: dict[str, Any]) -> None:
    """Bodies documented as `{"messaging_product":"whatsapp"}`: tolerated when absent."""
    if "messaging_product" in body:
        require_whatsapp(body)


def unsupported_object(node: str) -> str:
    return (
        f"Unsupported request. Object with ID '{node}' does not exist, cannot be loaded due "
        "to missing permissions, or does not support this operation."
    )
