"""Messages in groups: the business sending (`POST /{phone-number-id}/messages` with
`recipient_type: "group"`), the status webhooks that follow, and what members send.

Order of checks of a send: authentication -> fail-next (sync) -> eligibility -> body shape ->
recipient -> group (unknown 131041, suspended 131207, no member 131020) -> message type and
content -> media (by id: known to the number; by link: fetched now) -> answer with a wamid and
schedule the statuses.

Status timeline of an accepted message (each step `webhook_delay` after the previous one):
`sent` (one, for the group) -> `delivered`, one webhook carrying a status per member (Meta
aggregates: one message x one group x one status per webhook) -> `read`, one webhook per member
whose read receipts are on. A member told to fail (`fail-next-delivery`) gets a `failed` status
instead. A pin gets only `sent` (Meta); a media fetch that fails gets one `failed` (131053).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .errors import ControlRefused, MetaErrorAnswer, webhook_error
from .ids import new_wamid, normalize_wa_id, parse_group_id
from .library import MEDIA_KINDS, Library
from .members import control_wa_id
from .rules import Rules, require_whatsapp
from .state import Group, Message, PhoneNumber, User, now_ts
from .webhooks import Event

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
GROUP_TYPES = frozenset(
    {*MEDIA_TYPES, "text", "location", "contacts", "reaction", "pin", "template"}
)
# Meta: not supported in groups (docs/simulator.md). Anything else is not a message type at all.
NOT_IN_GROUPS = frozenset({"interactive", "order", "product", "product_list", "catalog", "call"})
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PINNED = 3
CSW_SECONDS = 24 * 3600
UNDELIVERABLE = 131026


def _text(body: dict[str, Any], name: str, where: str, limit: int | None = None) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise MetaErrorAnswer(131008, f"The parameter {where}.{name} is required.")
    if not isinstance(value, str):
        raise MetaErrorAnswer(131009, f"Param {where}.{name} must be a string")
    if limit is not None and len(value) > limit:
        raise MetaErrorAnswer(131009, f"Param {where}.{name} must be at most {limit} characters")
    return value


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        raise MetaErrorAnswer(131008, f"The parameter {name} is required.")
    if not isinstance(value, dict):
        raise MetaErrorAnswer(131009, f"Param {name} must be an object")
    return value


def _validate_contacts(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise MetaErrorAnswer(131008, "The parameter contacts must be a non-empty list.")
    for contact in value:
        name = contact.get("name") if isinstance(contact, dict) else None
        if not isinstance(name, dict) or not isinstance(name.get("formatted_name"), str):
            raise MetaErrorAnswer(
                131008, "The parameter contacts[].name.formatted_name is required."
            )


class Messages:
    def __init__(self, rules: Rules, library: Library) -> None:
        self.rules = rules
        self.state = rules.state
        self.library = library

    # --- Graph: send ---------------------------------------------------------------------

    async def send(self, phone_number_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        number = self.rules.auth_number(phone_number_id, token)
        self.rules.fail_sync("send")
        self.rules.check_eligible(number)
        require_whatsapp(body)
        group = self._recipient_group(number, body)
        kind = body.get("type", "text")
        if not isinstance(kind, str) or not kind:
            raise MetaErrorAnswer(131009, "Param type must be a string")
        if kind in NOT_IN_GROUPS:
            raise MetaErrorAnswer(131009, f"Message type {kind} is not supported in groups")
        if kind not in GROUP_TYPES:
            raise MetaErrorAnswer(131009, f"Param type {kind!r} is not a valid message type")
        if kind == "contacts":
            _validate_contacts(body.get("contacts"))
            content: dict[str, Any] = {}
        else:
            content = _object(body, kind)
            self._validate(group, number, kind, content)
        if "context" in body:
            context = body["context"]
            if not isinstance(context, dict) or not isinstance(context.get("message_id"), str):
                raise MetaErrorAnswer(131009, "Param context.message_id must be a string")
        rule = self.rules.fail_webhook("send")
        failure: dict[str, Any] | None = None
        if rule is not None:
            failure = webhook_error(rule.code, "Injected failure of send")
        elif kind in MEDIA_TYPES and "link" in content:
            fetched = await self.library.fetch_link(kind, content["link"])
            if isinstance(fetched, str):
                failure = webhook_error(131053, f"Media download failed: {fetched}")
        message = Message(new_wamid(group.jid), group.group_id, kind, now_ts())
        self.state.messages[message.wamid] = message
        if kind == "pin":
            self._pin(group, content)
        self._schedule_statuses(group, message, failure)
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": group.group_id, "wa_id": group.group_id}],
            "messages": [{"id": message.wamid}],
        }

    def _recipient_group(self, number: PhoneNumber, body: dict[str, Any]) -> Group:
        to = body.get("to")
        if not isinstance(to, str) or not to:
            raise MetaErrorAnswer(131008, "The parameter to is required.")
        recipient_type = body.get("recipient_type", "individual")
        is_group_id = parse_group_id(to) is not None
        if recipient_type == "group":
            if not is_group_id:
                raise MetaErrorAnswer(
                    100, "Param to must be a group id when recipient_type is group"
                )
        elif recipient_type == "individual":
            if is_group_id:
                raise MetaErrorAnswer(
                    100, "Param to is a group id: set recipient_type to group to message a group"
                )
            if normalize_wa_id(to) is None:
                raise MetaErrorAnswer(100, f"Param to is not a valid phone number: {to!r}")
            raise MetaErrorAnswer(
                100, "The simulator only simulates group messages (recipient_type group)"
            )
        else:
            raise MetaErrorAnswer(100, "Param recipient_type must be individual or group")
        group = self.state.active_group(to)
        if group is None or group.phone_number_id != number.phone_number_id:
            raise MetaErrorAnswer(131041)
        self.rules.check_writable(group)
        if not group.participants:
            raise MetaErrorAnswer(131020, "Cannot send messages to single member groups.")
        return group

    def _validate(
        self, group: Group, number: PhoneNumber, kind: str, content: dict[str, Any]
    ) -> None:
        if kind == "text":
            _text(content, "body", "text", MAX_TEXT)
            if not isinstance(content.get("preview_url", False), bool):
                raise MetaErrorAnswer(131009, "Param text.preview_url must be true or false")
        elif kind in MEDIA_TYPES:
            self._validate_media(number, kind, content)
        elif kind == "location":
            for name, bound in (("latitude", 90), ("longitude", 180)):
                value = content.get(name)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise MetaErrorAnswer(131009, f"Param location.{name} must be a number")
                if not -bound <= value <= bound:
                    raise MetaErrorAnswer(131009, f"Param location.{name} is out of range")
        elif kind == "reaction":
            self._known_message(group, _text(content, "message_id", "reaction"))
            emoji = content.get("emoji")
            if not isinstance(emoji, str):
                raise MetaErrorAnswer(131009, "Param reaction.emoji must be a string")
        elif kind == "pin":
            self._validate_pin(group, content)
        elif kind == "template":
            _text(content, "name", "template", 512)
            language = content.get("language")
            if not isinstance(language, dict) or not isinstance(language.get("code"), str):
                raise MetaErrorAnswer(131008, "The parameter template.language.code is required.")
            if str(content.get("category", "")).lower() == "authentication":
                raise MetaErrorAnswer(
                    131009, "Authentication templates are not supported in groups"
                )

    def _validate_media(self, number: PhoneNumber, kind: str, content: dict[str, Any]) -> None:
        has_id, has_link = "id" in content, "link" in content
        if has_id == has_link:
            raise MetaErrorAnswer(131009, f"Param {kind} needs exactly one of id and link")
        if has_id:
            media_id = _text(content, "id", kind)
            media = self.library.owned(media_id, number.phone_number_id)
            if media is None:
                raise MetaErrorAnswer(131009, f"Param {kind}.id: no media {media_id!r}")
            if media.mime_type not in MEDIA_KINDS[kind].mime_types:
                raise MetaErrorAnswer(
                    131009, f"Media {media_id} is {media.mime_type}, not a {kind} type"
                )
        else:
            link = _text(content, "link", kind)
            if not link.startswith(("http://", "https://")):
                raise MetaErrorAnswer(131009, f"Param {kind}.link must be an http(s) URL")
        if "caption" in content:
            if kind in ("audio", "sticker"):
                raise MetaErrorAnswer(131009, f"Param {kind}.caption is not allowed")
            _text(content, "caption", kind, MAX_CAPTION)

    def _validate_pin(self, group: Group, content: dict[str, Any]) -> None:
        action = content.get("type")
        if action not in ("pin", "unpin"):
            raise MetaErrorAnswer(131009, "Param pin.type must be pin or unpin")
        wamid = _text(content, "message_id", "pin")
        self._known_message(group, wamid)
        if action == "unpin":
            if wamid not in group.pinned:
                raise MetaErrorAnswer(131009, f"Message {wamid} is not pinned")
            return
        days = content.get("expiration_days")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 30:
            raise MetaErrorAnswer(131009, "Param pin.expiration_days must be an integer 1-30")
        self._expire_pins(group)
        if wamid not in group.pinned and len(group.pinned) >= MAX_PINNED:
            raise MetaErrorAnswer(131009, f"A group has at most {MAX_PINNED} pinned messages")

    def _known_message(self, group: Group, wamid: str) -> Message:
        message = self.state.messages.get(wamid)
        if message is None or message.group_id != group.group_id:
            raise MetaErrorAnswer(131009, f"No message {wamid} in this group")
        return message

    @staticmethod
    def _expire_pins(group: Group) -> None:
        now = now_ts()
        for wamid, until in list(group.pinned.items()):
            if until <= now:
                del group.pinned[wamid]

    def _pin(self, group: Group, content: dict[str, Any]) -> None:
        if content["type"] == "pin":
            group.pinned[content["message_id"]] = now_ts() + 86400 * int(content["expiration_days"])
        else:
            group.pinned.pop(content["message_id"], None)

    # --- statuses ------------------------------------------------------------------------

    def _status(self, message: Message, status: str, wa_id: str | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": message.wamid,
            "status": status,
            "timestamp": str(now_ts()),
            "recipient_id": message.group_id,
            "recipient_type": "group",
        }
        if wa_id is not None:
            identity = self.state.identity(wa_id)
            # A member whose number is hidden is named by BSUID (docs/simulator.md).
            item["recipient_participant_id"] = identity.get("wa_id") or identity.get("user_id")
            if "user_id" in identity:
                item["recipient_user_id"] = identity["user_id"]
            if status in ("delivered", "read") and "username" in identity:
                item["recipient_username"] = identity["username"]
        return item

    def _pricing(self, group: Group, message: Message) -> dict[str, Any]:
        free = (
            message.type != "template"
            and group.last_inbound is not None
            and now_ts() - group.last_inbound < CSW_SECONDS
        )
        category = "group_utility" if message.type == "template" else "group_service"
        return {
            "billable": not free,
            "pricing_model": "PMP",
            "category": category,
            "type": "free_group_customer_service" if free else "regular",
        }

    def _schedule_statuses(
        self, group: Group, message: Message, failure: dict[str, Any] | None
    ) -> None:
        number = self.state.numbers[group.phone_number_id]
        delay = self.rules.outbox.config.webhook_delay

        def emit(label: str, step: int, statuses: list[dict[str, Any]]) -> None:
            event = self._event(number, {"statuses": statuses})
            self.rules.outbox.later(label, lambda: [event], delay * step)

        if failure is not None:
            message.status = "failed"
            item = self._status(message, "failed")
            item["errors"] = [failure]
            emit(f"failed {message.wamid}", 1, [item])
            return
        # Who fails is decided now: a later fail-next-delivery is for the next message.
        members = list(group.participants)
        failing = [w for w in members if self._take_failure(w)]

        def sent() -> list[Event]:
            message.status = "sent"
            for wa_id in members:
                message.statuses[wa_id] = "sent"
            return [self._event(number, {"statuses": [self._status(message, "sent")]})]

        self.rules.outbox.later(f"sent {message.wamid}", sent, delay)
        if message.type == "pin":
            return
        if failing:

            def failed() -> list[Event]:
                items = []
                for wa_id in failing:
                    message.statuses[wa_id] = "failed"
                    item = self._status(message, "failed", wa_id)
                    item["errors"] = [
                        webhook_error(UNDELIVERABLE, "Message could not be delivered to member")
                    ]
                    items.append(item)
                return [self._event(number, {"statuses": items})]

            self.rules.outbox.later(f"failed {message.wamid}", failed, delay * 2)
        receiving = [w for w in members if w not in failing]
        if not receiving:
            return

        def delivered() -> list[Event]:
            items = []
            for wa_id in receiving:
                message.statuses[wa_id] = "delivered"
                item = self._status(message, "delivered", wa_id)
                item["pricing"] = self._pricing(group, message)
                items.append(item)
            return [self._event(number, {"statuses": items})]

        self.rules.outbox.later(f"delivered {message.wamid}", delivered, delay * 2)
        readers = [w for w in receiving if self.state.user(w).read_receipts]
        for i, wa_id in enumerate(readers):

            def read(wa_id: str = wa_id) -> list[Event]:
                message.statuses[wa_id] = "read"
                return [self._event(number, {"statuses": [self._status(message, "read", wa_id)]})]

            self.rules.outbox.later(f"read {message.wamid} {wa_id}", read, delay * (3 + i))

    def _take_failure(self, wa_id: str) -> bool:
        user = self.state.users.get(wa_id)
        if user is None or user.fail_next_delivery <= 0:
            return False
        user.fail_next_delivery -= 1
        return True

    @staticmethod
    def _event(number: PhoneNumber, value: dict[str, Any]) -> Event:
        return Event(
            field="messages",
            phone_number_id=number.phone_number_id,
            waba_id=number.waba_id,
            display_phone_number=number.display_phone_number,
            messages=value,
        )

    # --- test controls: what members do --------------------------------------------------

    def member_sends(self, body: dict[str, Any]) -> dict[str, Any]:
        """A member sends `kind` (text, image, document, reaction, pin) to the group;
        `context` (a wamid) makes it a reply."""
        group, wa_id = self._member(body)
        kind = body.get("type", "text")
        content: dict[str, Any]
        if kind == "text":
            text = body.get("text")
            if not isinstance(text, str) or not text:
                raise ControlRefused(400, "missing field: text")
            content = {"body": text}
        elif kind in ("image", "document"):
            content = self._member_media(group, kind, body)
        elif kind == "reaction":
            content = {"message_id": self._control_message(group, body), "emoji": body.get("emoji")}
            if not isinstance(content["emoji"], str):
                raise ControlRefused(400, "field emoji must be a string ('' removes a reaction)")
        elif kind == "pin":
            wamid = self._control_message(group, body)
            days = body.get("expiration_days", 7)
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 30:
                raise ControlRefused(400, "expiration_days must be an integer 1-30")
            group.pinned[wamid] = now_ts() + 86400 * days
            content = {"type": "pin", "message_id": wamid, "expiration_days": days}
        else:
            raise ControlRefused(400, "type must be text, image, document, reaction or pin")
        message = Message(new_wamid(group.jid), group.group_id, kind, now_ts(), from_wa_id=wa_id)
        self.state.messages[message.wamid] = message
        group.last_inbound = message.timestamp
        user = self.state.user(wa_id)
        identity = user.identity()
        contact: dict[str, Any] = {"profile": {"name": user.profile_name or wa_id}}
        if "username" in identity:
            contact["profile"]["username"] = identity.pop("username")
        contact.update(identity)
        item: dict[str, Any] = {}
        if "wa_id" in identity:
            item["from"] = identity["wa_id"]
        if "user_id" in identity:
            item["from_user_id"] = identity["user_id"]
        item.update(
            group_id=group.group_id,
            id=message.wamid,
            timestamp=str(message.timestamp),
            type=kind,
        )
        item[kind] = content
        reply_to = body.get("context")
        if reply_to is not None and kind != "reaction":
            quoted = self._control_message(group, {"message_id": reply_to})
            author = self.state.messages[quoted].from_wa_id
            number = self.state.numbers[group.phone_number_id]
            # A hidden number is named by BSUID; the business by its own number.
            who = self.state.identity(author) if author else {}
            shown = who.get("wa_id") or who.get("user_id")
            item["context"] = {
                "from": shown or "".join(c for c in number.display_phone_number if c.isdigit()),
                "id": quoted,
            }
        number = self.state.numbers[group.phone_number_id]
        event = self._event(number, {"contacts": [contact], "messages": [item]})
        self.rules.emit_later(f"message {message.wamid}", [event])
        return {"group_id": group.group_id, "wa_id": wa_id, "id": message.wamid, "type": kind}

    def fail_next_delivery(self, body: dict[str, Any]) -> dict[str, Any]:
        group, wa_id = self._member(body)
        user = self._registered(wa_id)
        user.fail_next_delivery += 1
        return {
            "group_id": group.group_id,
            "wa_id": wa_id,
            "fail_next_delivery": user.fail_next_delivery,
        }

    def _registered(self, wa_id: str) -> User:
        user = self.state.users.get(wa_id)
        if user is None:
            user = self.state.users[wa_id] = User(wa_id)
        return user

    def _member(self, body: dict[str, Any]) -> tuple[Group, str]:
        group_id = body.get("group_id")
        if not isinstance(group_id, str) or not group_id:
            raise ControlRefused(400, "missing field: group_id")
        group = self.state.active_group(group_id)
        if group is None:
            raise ControlRefused(404, "unknown group (give Meta's group id of an active group)")
        wa_id = control_wa_id(body.get("wa_id"))
        if wa_id not in group.participants:
            raise ControlRefused(404, f"{wa_id} is not a participant of this group")
        return group, wa_id

    def _control_message(self, group: Group, body: dict[str, Any]) -> str:
        wamid = body.get("message_id")
        if not isinstance(wamid, str) or not wamid:
            raise ControlRefused(400, "missing field: message_id")
        message = self.state.messages.get(wamid)
        if message is None or message.group_id != group.group_id:
            raise ControlRefused(404, f"no message {wamid} in this group")
        return wamid

    def _member_media(self, group: Group, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = body.get("content_base64")
        if raw is None:
            data = _SAMPLE[kind]
        else:
            try:
                data = base64.b64decode(str(raw), validate=True)
            except (binascii.Error, ValueError):
                raise ControlRefused(400, "content_base64 is not base64") from None
        default_type = "image/jpeg" if kind == "image" else "application/pdf"
        mime_type = body.get("mime_type") or default_type
        if mime_type not in MEDIA_KINDS[kind].mime_types:
            raise ControlRefused(400, f"mime_type {mime_type!r} is not a {kind} type")
        filename = body.get("filename") if kind == "document" else None
        if kind == "document" and not filename:
            filename = "document.pdf"
        media = self.library.store(group.phone_number_id, data, str(mime_type), filename)
        content: dict[str, Any] = {
            "id": media.media_id,
            "mime_type": mime_type,
            "sha256": media.sha256,
        }
        if filename:
            content["filename"] = filename
        caption = body.get("caption")
        if isinstance(caption, str) and caption:
            content["caption"] = caption
        return content


# What a member's phone sends when a test gives no bytes: a 1x1 JPEG and a one-page PDF.
_SAMPLE = {
    "image": base64.b64decode(
        "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
        "////////////////////////////////wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAA"
        "AAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AN//Z"
    ),
    "document": b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
}
