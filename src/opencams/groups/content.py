"""SendChatappMessage's Content (a JSON string, CAMS's formats) as Meta's message object for a
group, and TemplateParams as a template's components (docs/messages.md#content-formats).

Pure functions: what refers to an earlier message (a reaction, a pin) comes back as the MessageId
named, for the caller to resolve to Meta's wamid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from opencams.errors import (
    ContentError,
    ContentNotEmpty,
    LinkNotEmpty,
    MessageTypeNotEmpty,
    MessageTypeNotSupport,
    TemplateParamsInvalid,
    TextNotEmpty,
)

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
GROUP_TYPES = (*MEDIA_TYPES, "text", "location", "contacts", "reaction", "pin")
# Types CAMS knows that Meta does not allow in groups (Meta: interactive, commerce, calling).
NOT_IN_GROUPS = frozenset(
    {
        "interactive",
        "typing_indicator",
        "carousel",
        "order",
        "product",
        "product_list",
        "catalog",
        "call",
        "flow",
    }
)
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CONTENT = 64 * 1024
HEADER_KEYS = {"headerImage": "image", "headerVideo": "video", "headerDocument": "document"}


@dataclass(frozen=True)
class Draft:
    """Meta's message object (without `to`/`recipient_type`), the canonical message type, and
    the MessageId it refers to (reaction, pin) whose wamid goes in `payload[type]["message_id"]`."""

    message_type: str
    payload: dict[str, Any] = field(hash=False)
    refers_to: str | None = None


def _get(content: dict[str, Any], *names: str) -> Any:
    """A field by its CAMS name, in any case (`fileName`, `FileName`, `filename`)."""
    folded = {key.lower(): value for key, value in content.items() if isinstance(key, str)}
    for name in names:
        if name.lower() in folded:
            return folded[name.lower()]
    return None


def _string(content: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = _get(content, name)
    if value is None or value == "":
        if required:
            raise ContentError(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ContentError(f"{name} must be a string")
    if len(value) > limit:
        raise ContentError(f"{name} is {len(value)} characters; at most {limit}")
    return value


def parse_content(raw: str | None) -> Any:
    if raw is None or not raw.strip():
        raise ContentNotEmpty()
    if len(raw) > MAX_CONTENT:
        raise ContentError(f"{len(raw)} characters; at most {MAX_CONTENT}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ContentError("it is not JSON") from None


def message_type(value: str | None) -> str:
    if value is None or not value.strip():
        raise MessageTypeNotEmpty()
    kind = value.strip()
    if kind in NOT_IN_GROUPS:
        raise MessageTypeNotSupport(f"WhatsApp does not allow {kind} messages in groups")
    if kind not in GROUP_TYPES:
        raise MessageTypeNotSupport(
            f"{kind!r} is not a message type; in groups: {', '.join(GROUP_TYPES)}"
        )
    return kind


def draft(kind: str, raw: str | None) -> Draft:
    """The Meta message object of `kind` built from the Content JSON."""
    value = parse_content(raw)
    if kind == "contacts":
        return Draft(kind, {"type": kind, "contacts": _contacts(value)})
    if not isinstance(value, dict):
        raise ContentError("it must be a JSON object")
    if kind == "text":
        text = _get(value, "text", "body")
        if not isinstance(text, str) or not text.strip():
            raise TextNotEmpty()
        if len(text) > MAX_TEXT:
            raise ContentError(f"text is {len(text)} characters; at most {MAX_TEXT}")
        body: dict[str, Any] = {"body": text}
        preview = _get(value, "previewUrl", "preview_url")
        if preview is not None:
            if not isinstance(preview, bool):
                raise ContentError("previewUrl must be true or false")
            body["preview_url"] = preview
        return Draft(kind, {"type": kind, kind: body})
    if kind in MEDIA_TYPES:
        return Draft(kind, {"type": kind, kind: _media(kind, value)})
    if kind == "location":
        return Draft(kind, {"type": kind, kind: _location(value)})
    if kind == "reaction":
        target = _string(value, "messageId", 512, required=True)
        emoji = _get(value, "emoji")
        if not isinstance(emoji, str):
            raise ContentError("emoji is required (a string; an empty one removes the reaction)")
        return Draft(kind, {"type": kind, kind: {"message_id": "", "emoji": emoji}}, target)
    # pin
    action = _get(value, "type", "action") or "pin"
    if action not in ("pin", "unpin"):
        raise ContentError("type must be pin or unpin")
    target = _string(value, "messageId", 512, required=True)
    pin: dict[str, Any] = {"type": action, "message_id": ""}
    if action == "pin":
        days = _get(value, "expirationDays", "expiration_days")
        days = 7 if days is None else days
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 30:
            raise ContentError("expirationDays must be an integer from 1 to 30")
        pin["expiration_days"] = days
    return Draft(kind, {"type": kind, kind: pin}, target)


def _media(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    link = _string(value, "link", 2048, required=False)
    media_id = _string(value, "id", 128, required=False)
    if link is None and media_id is None:
        raise LinkNotEmpty(kind=kind)
    if link is not None and media_id is not None:
        raise ContentError("give link or id, not both")
    media: dict[str, Any] = {}
    if link is not None:
        if not link.lower().startswith(("http://", "https://")):
            raise ContentError("link must be an http or https URL")
        media["link"] = link
    else:
        media["id"] = media_id
    caption = _string(value, "caption", MAX_CAPTION, required=False)
    if caption is not None:
        if kind in ("audio", "sticker"):
            raise ContentError(f"a {kind} message takes no caption")
        media["caption"] = caption
    filename = _string(value, "fileName", 240, required=False)
    if filename is not None:
        if kind != "document":
            raise ContentError(f"a {kind} message takes no fileName")
        media["filename"] = filename
    elif kind == "document" and link is not None:
        raise ContentError("fileName is required for a document sent by link")
    return media


def _location(value: dict[str, Any]) -> dict[str, Any]:
    location: dict[str, Any] = {}
    for name, bound in (("latitude", 90), ("longitude", 180)):
        raw = _get(value, name)
        try:
            number = float(raw) if isinstance(raw, int | float | str) and raw != "" else None
        except ValueError:
            number = None
        if isinstance(raw, bool) or number is None or not math.isfinite(number):
            raise ContentError(f"{name} is required, a number")
        if not -bound <= number <= bound:
            raise ContentError(f"{name} must be between -{bound} and {bound}")
        location[name] = number
    for name in ("name", "address"):
        text = _string(value, name, 1000, required=False)
        if text is not None:
            location[name] = text
    return location


def _contacts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = _get(value, "contacts") if _get(value, "contacts") is not None else [value]
    if not isinstance(value, list) or not value:
        raise ContentError("contacts must be a non-empty list")
    contacts = []
    for entry in value:
        if not isinstance(entry, dict):
            raise ContentError("each contact must be an object")
        name = _get(entry, "name")
        if isinstance(name, str) and name.strip():
            name = {"formatted_name": name}
        if not isinstance(name, dict) or not isinstance(
            _get(name, "formatted_name", "formattedName"), str
        ):
            raise ContentError("each contact needs a name")
        contact = {k: v for k, v in entry.items() if k.lower() != "name"}
        formatted = _get(name, "formatted_name", "formattedName")
        contact["name"] = {
            **{
                k: v
                for k, v in name.items()
                if k.lower() not in ("formatted_name", "formattedname")
            },
            "formatted_name": formatted,
        }
        contacts.append(contact)
    return contacts


def template(name: str, language: str, params: Any) -> dict[str, Any]:
    """Meta's template object: TemplateParams' digit keys are the body's positional parameters
    in numeric order, other keys named parameters; headerImage/headerVideo/headerDocument (a
    link) make a media header."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TemplateParamsInvalid("not an object")
    body: list[dict[str, Any]] = []
    header: list[dict[str, Any]] = []
    positional: list[tuple[int, str]] = []
    for key, value in params.items():
        if not isinstance(value, str):
            raise TemplateParamsInvalid(f"{key} is not a string")
        if key in HEADER_KEYS:
            kind = HEADER_KEYS[key]
            if not value.lower().startswith(("http://", "https://")):
                raise TemplateParamsInvalid(f"{key} must be an http or https URL")
            header.append({"type": kind, kind: {"link": value}})
        elif key.isdigit():
            positional.append((int(key), value))
        else:
            body.append({"type": "text", "parameter_name": key, "text": value})
    body = [{"type": "text", "text": v} for _, v in sorted(positional)] + body
    components: list[dict[str, Any]] = []
    if header:
        components.append({"type": "header", "parameters": header})
    if body:
        components.append({"type": "body", "parameters": body})
    payload: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        payload["components"] = components
    return {"type": "template", "template": payload}
