"""Meta error codes and the two JSON shapes they take: Graph error bodies and webhook errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencams.errors import SimulatorError

from .ids import new_fbtrace_id


@dataclass(frozen=True)
class ErrorInfo:
    title: str
    http_status: int


# Meta's Groups error codes (docs/simulator.md) plus the generic Graph/Cloud codes a connector
# meets. Codes not listed here can still be injected through fail-next; they get HTTP 400 and a
# generic title.
ERRORS: dict[int, ErrorInfo] = {
    1: ErrorInfo("An unknown error occurred", 500),
    2: ErrorInfo("Service temporarily unavailable", 503),
    3: ErrorInfo("Capability or permissions issue", 400),
    4: ErrorInfo("Application request limit reached", 429),
    10: ErrorInfo("Permission denied", 403),
    100: ErrorInfo("Invalid parameter", 400),
    190: ErrorInfo("Invalid OAuth access token", 401),
    200: ErrorInfo("Permission denied", 403),
    2500: ErrorInfo("Unknown path components", 400),
    80007: ErrorInfo("Rate limit issues", 429),
    130429: ErrorInfo("Rate limit hit", 429),
    131000: ErrorInfo("Something went wrong", 500),
    131008: ErrorInfo("Required parameter is missing", 400),
    131009: ErrorInfo("Parameter value is not valid", 400),
    131016: ErrorInfo("Service unavailable", 503),
    131020: ErrorInfo("Bad Group", 400),
    131026: ErrorInfo("Message undeliverable", 400),
    131041: ErrorInfo("Group unknown", 400),
    131053: ErrorInfo("Media upload error", 400),
    131059: ErrorInfo("Invalid cursor", 400),
    131201: ErrorInfo("Request partially succeeded", 206),
    131202: ErrorInfo("Duplicate participant", 400),
    131203: ErrorInfo("Unable to add participant to group", 400),
    131204: ErrorInfo("Participant overlimit", 400),
    131207: ErrorInfo("Group suspended", 403),
    131208: ErrorInfo("Group Rate Limit Hit", 429),
    131209: ErrorInfo("Invalid Group Profile Picture Aspect Ratio", 400),
    131210: ErrorInfo("Image is Too Small to Process", 400),
    131211: ErrorInfo("Group create limit reached", 400),
    131212: ErrorInfo("Participant is not a part of the group", 400),
    131213: ErrorInfo("Group join request does not exist", 400),
    131214: ErrorInfo("Group creation is temporarily disabled", 400),
    131215: ErrorInfo("Phone number not eligible to access Groups APIs", 400),
}

# Longer explanations Meta puts in `error_data.details` when the caller gave none.
DEFAULT_DETAILS: dict[int, str] = {
    131041: "The group doesn't exist or you are not a member of it.",
    131059: "The cursor is expired or corrupted; start pagination from the beginning.",
    131204: "Group participant size exceeds limit.",
    131207: "The group is suspended.",
    131208: "Too many group operations from this phone number in a short period.",
    131209: "The profile picture must be square.",
    131210: "The profile picture must be at least 192x192 pixels.",
    131211: "This phone number has reached the limit of 10000 groups.",
    131214: "Group creation is temporarily disabled for this WhatsApp Business Account.",
    131215: "This phone number is not eligible to access Groups APIs.",
}


def error_info(code: int) -> ErrorInfo:
    return ERRORS.get(code, ErrorInfo("Error", 400))


class MetaErrorAnswer(SimulatorError):
    """Raised by the rules; the Graph layer renders it as a Graph error response."""

    def __init__(self, code: int, details: str | None = None) -> None:
        self.code = code
        self.details = details or DEFAULT_DETAILS.get(code) or error_info(code).title
        super().__init__(f"({code}) {self.details}")

    @property
    def http_status(self) -> int:
        return error_info(self.code).http_status

    def body(self) -> dict[str, Any]:
        return graph_error_body(self.code, self.details)


def graph_error_body(code: int, details: str) -> dict[str, Any]:
    return {
        "error": {
            "message": f"(#{code}) {error_info(code).title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": new_fbtrace_id(),
        }
    }


def webhook_error(code: int, details: str | None = None) -> dict[str, Any]:
    """Error object used inside webhooks and bulk responses (code, title, message, error_data)."""
    info = error_info(code)
    text = details or DEFAULT_DETAILS.get(code) or info.title
    return {
        "code": code,
        "title": info.title,
        "message": f"(#{code}) {info.title}",
        "error_data": {"details": text},
    }


class ControlRefused(SimulatorError):
    """A test control refused (e.g. tapping the link of a full group); rendered as 4xx JSON."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        self.status = status
        self.message = message
        self.code = code
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.code is not None:
            body["code"] = self.code
        return body
