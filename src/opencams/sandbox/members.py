"""Who is in a group: business removals, join requests, and the user-side test controls.

Participants can only join through an invite link (Meta offers no "add"); removal by the
business bans the user from rejoining by link, leaving voluntarily does not (Meta's rules,
docs/simulator.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ControlRefused, MetaErrorAnswer, webhook_error
from .ids import invite_code_from_link, make_join_request_id, new_request_id, normalize_wa_id
from .rules import Page, Rules, paginate, parse_limit, require_whatsapp
from .state import MAX_PARTICIPANTS, MAX_REMOVE_PER_CALL, Group, JoinRequest, now_ts
from .webhooks import Event

# Join-request cursors are sequence numbers; any value up to this is a well-formed cursor.
_MAX_CURSOR = 2**62


@dataclass(frozen=True)
class RemovalTarget:
    input: str  # echoed back in the webhook exactly as the business sent it
    wa_id: str | None  # None for a BSUID (`user_id`) of no registered user


class Members:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.state = rules.state

    # --- Graph: remove participants ------------------------------------------------------

    def remove_participants(
        self, group_id: str, token: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        group, number = self.rules.resolve_group(group_id, token)
        self.rules.fail_sync("remove-participants")
        self.rules.check_eligible(number)
        self.rules.check_writable(group)
        targets = [
            RemovalTarget(t.input, self.state.wa_id_of_bsuid(t.input)) if t.wa_id is None else t
            for t in parse_removal(body)
        ]
        rule = self.rules.fail_webhook("remove-participants")
        request_id = new_request_id()

        def run() -> list[Event]:
            removed: list[dict[str, Any]] = []
            failed: list[dict[str, Any]] = []
            for target in targets:
                error = None
                if rule is not None:
                    error = webhook_error(rule.code, "Injected failure of remove-participants")
                elif group.status != "active":
                    error = webhook_error(131041)
                elif target.wa_id is None or target.wa_id not in group.participants:
                    error = webhook_error(131212)
                if error is not None:
                    failed.append({"input": target.input, "errors": [error]})
                    continue
                assert target.wa_id is not None
                del group.participants[target.wa_id]
                group.banned.add(target.wa_id)
                removed.append({"input": target.input, **self.state.identity(target.wa_id)})
            item: dict[str, Any] = {
                "timestamp": str(now_ts()),
                "group_id": group.group_id,
                "type": "group_participants_remove",
                "request_id": request_id,
                "initiated_by": "business",
            }
            if removed:
                item["removed_participants"] = removed
            if failed:
                item["failed_participants"] = failed
                if removed:
                    item["errors"] = [
                        webhook_error(131201, "Failed to remove some participants from the group")
                    ]
                else:
                    item["errors"] = [failed[0]["errors"][0]]
            return [self.rules.event(group, "group_participants_update", item)]

        self.rules.schedule(f"remove-participants {request_id}", run, group, request_id)
        return {"messaging_product": "whatsapp", "request_id": request_id}

    # --- Graph: join requests ------------------------------------------------------------

    def list_join_requests(
        self,
        group_id: str,
        token: str,
        limit: str | None,
        after: str | None,
        before: str | None,
    ) -> tuple[list[dict[str, Any]], Page]:
        group, number = self.rules.resolve_group(group_id, token)
        self.rules.fail_sync("join-requests")
        self.rules.check_eligible(number)
        size = parse_limit(limit)
        by_seq = {r.seq: r for r in group.join_requests.values()}
        page = paginate(sorted(by_seq), size, after, before, _MAX_CURSOR)
        return [by_seq[seq].wire() for seq in page.positions], page

    def approve_join_requests(
        self, group_id: str, token: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        group, ids = self._join_request_call(group_id, token, body)
        approved: list[str] = []
        added: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for request_id in ids:
            request = self._find_request(group, request_id)
            if request is None:
                failed.append(_failed_request(request_id, 131213))
            elif len(group.participants) >= MAX_PARTICIPANTS:
                failed.append(_failed_request(request_id, 131204))
            else:
                del group.join_requests[request.wa_id]
                group.participants[request.wa_id] = now_ts()
                approved.append(request_id)
                identity = self.state.identity(request.wa_id)
                shown = identity.get("wa_id") or identity.get("user_id") or request.wa_id
                added.append({"input": shown, **identity})
        if added:
            item = {
                "timestamp": str(now_ts()),
                "group_id": group.group_id,
                "type": "group_participants_add",
                "reason": "invite_link",
                "added_participants": added,
            }
            self.rules.emit_later(
                f"approve {group.group_id}",
                [self.rules.event(group, "group_participants_update", item)],
            )
        return _bulk_result("approved_join_requests", approved, failed)

    def reject_join_requests(
        self, group_id: str, token: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        group, ids = self._join_request_call(group_id, token, body)
        rejected: list[str] = []
        failed: list[dict[str, Any]] = []
        for request_id in ids:
            request = self._find_request(group, request_id)
            if request is None:
                failed.append(_failed_request(request_id, 131213))
            else:
                # Meta sends no webhook for a rejection; the user may request again.
                del group.join_requests[request.wa_id]
                rejected.append(request_id)
        return _bulk_result("rejected_join_requests", rejected, failed)

    def _join_request_call(
        self, group_id: str, token: str, body: dict[str, Any]
    ) -> tuple[Group, list[str]]:
        group, number = self.rules.resolve_group(group_id, token)
        self.rules.fail_sync("join-requests")
        self.rules.check_eligible(number)
        self.rules.check_writable(group)
        require_whatsapp(body)
        ids = body.get("join_requests")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise MetaErrorAnswer(100, "Param join_requests must be a non-empty list of ids")
        return group, list(dict.fromkeys(ids))

    @staticmethod
    def _find_request(group: Group, join_request_id: str) -> JoinRequest | None:
        for request in group.join_requests.values():
            if request.join_request_id == join_request_id:
                return request
        return None

    # --- test controls: what users do on their phones ------------------------------------

    def tap_link(self, link: str, raw_wa_id: object) -> dict[str, Any]:
        wa_id = control_wa_id(raw_wa_id)
        group = self.state.group_by_invite(invite_code_from_link(link))
        if group is None:
            raise ControlRefused(404, "invite link is unknown or has been revoked")
        if group.suspended:
            raise ControlRefused(409, "the group is suspended", 131207)
        if wa_id in group.participants:
            raise ControlRefused(409, f"{wa_id} is already a participant")
        if wa_id in group.banned:
            raise ControlRefused(
                403, f"{wa_id} was removed by the business and cannot rejoin through a link"
            )
        if len(group.participants) >= MAX_PARTICIPANTS:
            raise ControlRefused(
                409, f"the group is full ({MAX_PARTICIPANTS} participants)", 131204
            )
        result: dict[str, Any] = {"group_id": group.group_id, "wa_id": wa_id}
        if group.join_approval_mode == "auto_approve":
            group.participants[wa_id] = now_ts()
            item = {
                "timestamp": str(now_ts()),
                "group_id": group.group_id,
                "type": "group_participants_add",
                "reason": "invite_link",
                "added_participants": [self.state.identity(wa_id)],
            }
            self._emit(group, f"join {wa_id}", item)
            return {**result, "result": "joined"}
        pending = group.join_requests.get(wa_id)
        if pending is not None:
            # Tapping again while a request is pending changes nothing (no second webhook).
            return {**result, "result": "requested", "join_request_id": pending.join_request_id}
        request = JoinRequest(
            join_request_id=make_join_request_id(wa_id, group.jid),
            wa_id=wa_id,
            creation_timestamp=now_ts(),
            seq=self.state.next_seq(),
            identity=self.state.identity(wa_id),
        )
        group.join_requests[wa_id] = request
        item = {
            "timestamp": str(now_ts()),
            "group_id": group.group_id,
            "type": "group_join_request_created",
            "join_request_id": request.join_request_id,
            **self.state.identity(wa_id),
        }
        self._emit(group, f"join-request {wa_id}", item)
        return {**result, "result": "requested", "join_request_id": request.join_request_id}

    def cancel_request(self, group_id: str, raw_wa_id: object) -> dict[str, Any]:
        wa_id = control_wa_id(raw_wa_id)
        group = self.control_group(group_id)
        request = group.join_requests.pop(wa_id, None)
        if request is None:
            raise ControlRefused(404, f"{wa_id} has no pending join request in this group")
        item = {
            "timestamp": str(now_ts()),
            "group_id": group.group_id,
            "type": "group_join_request_revoked",
            "join_request_id": request.join_request_id,
            **self.state.identity(wa_id),
        }
        self._emit(group, f"cancel-request {wa_id}", item)
        return {"group_id": group.group_id, "wa_id": wa_id, "result": "cancelled"}

    def leave(self, group_id: str, raw_wa_id: object) -> dict[str, Any]:
        wa_id = control_wa_id(raw_wa_id)
        group = self.control_group(group_id)
        if group.participants.pop(wa_id, None) is None:
            raise ControlRefused(404, f"{wa_id} is not a participant of this group")
        item = {
            "timestamp": str(now_ts()),
            "group_id": group.group_id,
            "type": "group_participants_remove",
            "removed_participants": [self.state.identity(wa_id)],
            "initiated_by": "participant",
        }
        self._emit(group, f"leave {wa_id}", item)
        return {"group_id": group.group_id, "wa_id": wa_id, "result": "left"}

    def control_group(self, group_id: str) -> Group:
        group = self.state.active_group(group_id)
        if group is None:
            raise ControlRefused(404, "unknown group (give Meta's group id of an active group)")
        return group

    def _emit(self, group: Group, label: str, item: dict[str, Any]) -> None:
        self.rules.emit_later(label, [self.rules.event(group, "group_participants_update", item)])


def parse_removal(body: dict[str, Any]) -> list[RemovalTarget]:
    require_whatsapp(body)
    entries = body.get("participants")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_REMOVE_PER_CALL:
        raise MetaErrorAnswer(
            100, f"Param participants must be a list of 1 to {MAX_REMOVE_PER_CALL} entries"
        )
    targets: list[RemovalTarget] = []
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise MetaErrorAnswer(100, "Each participant must be an object with user or user_id")
        user, user_id = entry.get("user"), entry.get("user_id")
        if (user is None) == (user_id is None):
            raise MetaErrorAnswer(100, "Include user or user_id, but not both")
        if user is not None:
            wa_id = normalize_wa_id(user) if isinstance(user, str) else None
            if wa_id is None:
                raise MetaErrorAnswer(100, f"Param user is not a valid phone number: {user!r}")
            target, key = RemovalTarget(user, wa_id), wa_id
        else:
            if not isinstance(user_id, str) or not user_id:
                raise MetaErrorAnswer(100, "Param user_id must be a non-empty string")
            target, key = RemovalTarget(user_id, None), f"bsuid:{user_id}"
        if key in seen:
            raise MetaErrorAnswer(131202, f"Duplicate participant: {target.input}")
        seen.add(key)
        targets.append(target)
    return targets


def control_wa_id(raw: object) -> str:
    wa_id = normalize_wa_id(raw) if isinstance(raw, str) else None
    if wa_id is None:
        raise ControlRefused(400, "wa_id must be a phone number (6-20 digits, optional +)")
    return wa_id


def _failed_request(join_request_id: str, code: int) -> dict[str, Any]:
    return {"join_request_id": join_request_id, "errors": [webhook_error(code)]}


def _bulk_result(key: str, done: list[str], failed: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {"messaging_product": "whatsapp", key: done}
    if failed:
        result["failed_join_requests"] = failed
        if done:
            result["errors"] = [webhook_error(131201, "Some join requests could not be processed")]
        else:
            result["errors"] = [failed[0]["errors"][0]]
    return result
