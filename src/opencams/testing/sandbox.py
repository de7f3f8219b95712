"""The simulator's test controls as a typed Python API (`cams_sandbox`, `CamsServer.sandbox`).

A client of a test server's HTTP controls: the simulator's (`/_sandbox/control/…`,
docs/simulator.md) and the test layer's (`/_testing/…`, opencams.testing.controls). Groups are
named by their opencams GroupId, as ListChatGroup shows them (Meta's group id works too); business
numbers by their number. Every call returns once its effect is visible through the CAMS API,
except where the confirmation mode says otherwise (a delay, or `webhooks.hold()`).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import httpx

from opencams.errors import SimulatorError
from opencams.sandbox.state import Operation


class SandboxError(SimulatorError):
    """A control refused: `status` (HTTP), `error` (its message), `code` (Meta's, if any)."""

    def __init__(self, status: int, error: str, code: int | None = None) -> None:
        super().__init__(f"{error} (HTTP {status}{f', Meta code {code}' if code else ''})")
        self.status = status
        self.error = error
        self.code = code


@dataclass(frozen=True)
class Tap:
    """What a tap on an invite link did: `joined`, or `requested` (with its join request id)."""

    result: Literal["joined", "requested"]
    wa_id: str
    join_request_id: str | None = None


class Sandbox:
    """Test controls of the opencams test server at `url`."""

    def __init__(
        self,
        url: str,
        *,
        number: str | None = None,
        space: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.number = number
        self.space = space
        # trust_env=False: a proxy of the environment must never see loopback calls.
        self._http = httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)
        self.webhooks = Webhooks(self)

    def close(self) -> None:
        self._http.close()

    # --- HTTP ------------------------------------------------------------------------------

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text}
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            code = body.get("code") if isinstance(body, dict) else None
            raise SandboxError(response.status_code, str(error or body), code)
        return cast(dict[str, Any], body)

    def _control(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._answer(self._http.post(f"/_sandbox/control/{name}", json=body or {}))

    def _post_testing(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._answer(self._http.post(f"/_testing/{name}", json=body or {}))

    def _meta(self, group_id: str) -> str:
        """Meta's id of a group: looked up for a GroupId, used as is otherwise."""
        found = self._answer(self._http.get("/_testing/lookup", params={"group_id": group_id}))
        if not found.get("known"):
            return group_id
        meta = found.get("meta_group_id")
        if meta is None:
            raise SandboxError(
                409,
                f"group {group_id} is not known to Meta yet (still CREATING: confirm it first)",
            )
        return str(meta)

    def _phone_number_id(self, number: str | None) -> str:
        number = number or self.number
        if number is None:
            raise ValueError("give the business number")
        params = {"business_number": number}
        if self.space:
            params["space"] = self.space
        found = self._answer(self._http.get("/_testing/lookup", params=params))
        if found.get("phone_number_id") is None:
            raise SandboxError(404, f"no business number {number} in the tenancy")
        return str(found["phone_number_id"])

    # --- what users do on their phones -----------------------------------------------------

    def tap_link(self, invite_link: str, wa_id: str) -> Tap:
        """The user `wa_id` taps the invite link: joins (or asks to, if the group requires
        approval). Refused (SandboxError) for a revoked link, a suspended or full group
        (131204), a participant, or a user the business removed."""
        answer = self._control("tap-link", {"invite_link": invite_link, "wa_id": wa_id})
        return Tap(answer["result"], answer["wa_id"], answer.get("join_request_id"))

    def request_join(self, invite_link: str, wa_id: str) -> str:
        """The user asks to join a group that requires approval (`require_approval`); returns
        the join request id (the same one while the request is pending)."""
        group = self._group_by_link(invite_link)
        if group is not None and group.get("join_approval_mode") != "approval_required":
            raise SandboxError(
                409, "the group approves joins itself: call require_approval(group) first"
            )
        tap = self.tap_link(invite_link, wa_id)
        assert tap.join_request_id is not None
        return tap.join_request_id

    def cancel_request(self, group_id: str, wa_id: str) -> None:
        """The user withdraws a pending join request."""
        self._control("cancel-request", {"group_id": self._meta(group_id), "wa_id": wa_id})

    def leave(self, group_id: str, wa_id: str) -> None:
        """A participant leaves the group (they may rejoin through the link)."""
        self._control("leave", {"group_id": self._meta(group_id), "wa_id": wa_id})

    def user(
        self,
        wa_id: str,
        *,
        profile_name: str | None = None,
        username: str | None = None,
        number_hidden: bool | None = None,
        parent_user_id: bool | str | None = None,
        read_receipts: bool | None = None,
    ) -> dict[str, Any]:
        """Register a simulated user; a username gives them a BSUID (`user_id`), and
        `number_hidden` leaves `wa_id` out of what Meta reports. Returns the user."""
        body: dict[str, Any] = {"wa_id": wa_id}
        for name, value in (
            ("profile_name", profile_name),
            ("username", username),
            ("number_hidden", number_hidden),
            ("parent_user_id", parent_user_id),
            ("read_receipts", read_receipts),
        ):
            if value is not None:
                body[name] = value
        return self._control("users", body)

    def say(self, group_id: str, wa_id: str, text: str, *, reply_to: str | None = None) -> str:
        """A member writes `text` in the group (a reply to wamid `reply_to`); returns its wamid."""
        body: dict[str, Any] = {"group_id": self._meta(group_id), "wa_id": wa_id, "text": text}
        if reply_to is not None:
            body["context"] = reply_to
        return str(self._control("member-message", body)["id"])

    def send_media(
        self,
        group_id: str,
        wa_id: str,
        kind: Literal["image", "document"],
        *,
        content: bytes | None = None,
        mime_type: str | None = None,
        filename: str | None = None,
        caption: str | None = None,
    ) -> str:
        """A member sends an image or document (served by `GET /{media-id}`); returns its wamid."""
        body: dict[str, Any] = {"group_id": self._meta(group_id), "wa_id": wa_id, "type": kind}
        if content is not None:
            body["content_base64"] = base64.b64encode(content).decode("ascii")
        for name, value in (("mime_type", mime_type), ("filename", filename), ("caption", caption)):
            if value is not None:
                body[name] = value
        return str(self._control("member-message", body)["id"])

    def react(self, group_id: str, wa_id: str, message_id: str, emoji: str) -> str:
        """A member reacts to a message (`emoji=""` removes the reaction); returns its wamid."""
        body = {
            "group_id": self._meta(group_id),
            "wa_id": wa_id,
            "type": "reaction",
            "message_id": message_id,
            "emoji": emoji,
        }
        return str(self._control("member-message", body)["id"])

    def pin(self, group_id: str, wa_id: str, message_id: str, days: int = 7) -> str:
        """A member pins a message for `days` (1-30); returns the pin's wamid."""
        body = {
            "group_id": self._meta(group_id),
            "wa_id": wa_id,
            "type": "pin",
            "message_id": message_id,
            "expiration_days": days,
        }
        return str(self._control("member-message", body)["id"])

    def fail_next_delivery(self, group_id: str, wa_id: str) -> None:
        """The member fails to receive the business's next message (a `failed` status)."""
        self._control("fail-next-delivery", {"group_id": self._meta(group_id), "wa_id": wa_id})

    def require_approval(self, group_id: str, required: bool = True) -> None:
        """The group's admin makes joining need approval (or not) on their phone."""
        self._post_testing("join-approval", {"group_id": group_id, "required": required})

    # --- what WhatsApp does ----------------------------------------------------------------

    def suspend(self, group_id: str) -> None:
        """WhatsApp suspends the group (the group becomes SUSPENDED; writes fail)."""
        self._control("suspend", {"group_id": self._meta(group_id)})

    def unsuspend(self, group_id: str) -> None:
        self._control("unsuspend", {"group_id": self._meta(group_id)})

    def fail_next(self, operation: Operation, code: int, *, webhook: bool = False) -> None:
        """Meta fails the next call of `operation` with error `code` (131214, 131215, 2…): at
        once, or (`webhook=True`, for create, update, delete, remove-participants) in the
        webhook that reports its outcome."""
        mode = "webhook" if webhook else "sync"
        self._control("fail-next", {"operation": operation, "code": code, "mode": mode})

    def eligible(self, value: bool = True, *, number: str | None = None) -> None:
        """Make a business number (default: the tenancy's first) (in)eligible for groups:
        every Graph call for it fails with 131215 until `eligible(True)`."""
        self._control(
            "eligible", {"phone_number_id": self._phone_number_id(number), "eligible": value}
        )

    # --- when Meta confirms ----------------------------------------------------------------

    def confirm_immediately(self) -> None:
        """Every operation is confirmed before its CAMS call answers (the default)."""
        self._post_testing("confirmations", {"mode": "immediate"})

    def confirm_manually(self) -> None:
        """Operations wait (CREATING, UPDATING, DELETING…) until `confirm` or `confirm_all`."""
        self._post_testing("confirmations", {"mode": "manual"})

    def confirm_after(self, seconds: float) -> None:
        """Every webhook is sent `seconds` after what it reports, as by Meta."""
        self._post_testing("confirmations", {"delay": seconds})

    def confirm(self, group_id: str) -> int:
        """Confirm the group's pending operations now; returns once their webhooks have been
        applied (so ListChatGroup shows the result). Returns how many there were."""
        answer = self._post_testing("confirm", {"group_id": group_id})
        return int(answer["operations"])

    def confirm_all(self) -> int:
        """Confirm every pending operation now (see `confirm`)."""
        return int(self._post_testing("confirm")["operations"])

    # --- looking -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The simulator's whole state (docs/simulator.md, `state`)."""
        return self._answer(self._http.get("/_sandbox/control/state"))

    def meta_group_id(self, group_id: str) -> str:
        return self._meta(group_id)

    def group(self, group_id: str) -> dict[str, Any]:
        """The simulator's view of a group: status, participants, banned, join requests…"""
        meta = self._meta(group_id)
        for group in self.state()["groups"]:
            if group["group_id"] == meta:
                return cast(dict[str, Any], group)
        raise SandboxError(404, f"the simulator has no group {group_id}")

    def _group_by_link(self, invite_link: str) -> dict[str, Any] | None:
        code = invite_link.rstrip("/").rsplit("/", 1)[-1]
        for group in self.state()["groups"]:
            link = group.get("invite_link") or ""
            if link and link.rsplit("/", 1)[-1] == code:
                return cast(dict[str, Any], group)
        return None


class Webhooks:
    """How the simulator delivers its webhooks (docs/simulator.md, Delivery)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def hold(self) -> None:
        """Queue webhooks instead of sending them (what they report still happens at Meta)."""
        self._sandbox._control("webhooks/hold")

    def release(self) -> int:
        """Stop holding and send the queue in order; returns once applied, with how many."""
        return int(self._sandbox._control("webhooks/release")["delivered"])

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold webhooks for the block, then release them."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    def reorder(self) -> list[str]:
        """Shuffle the queue (the order always changes when it holds two or more)."""
        return [str(i) for i in self._sandbox._control("webhooks/reorder")["queue"]]

    def drop(self) -> int:
        """Lose the queued webhooks; returns how many."""
        return int(self._sandbox._control("webhooks/drop")["dropped"])

    def duplicate(self, on: bool = True) -> None:
        """Send each webhook twice (Meta's at-least-once delivery)."""
        self._sandbox._control("webhooks/duplicate", {"on": on})

    def flush(self) -> dict[str, int]:
        """Run every pending operation and retry every failed delivery now."""
        return cast(dict[str, int], self._sandbox._control("webhooks/flush"))

    def redeliver(self) -> int:
        """Queue the dead letters again; returns how many."""
        return int(self._sandbox._control("webhooks/redeliver")["requeued"])

    def queue(self) -> list[dict[str, Any]]:
        """The queued webhooks: id, field, type, Meta group id, attempts."""
        return cast(list[dict[str, Any]], self._sandbox.state()["webhooks"]["queue"])

    def dead_letters(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._sandbox.state()["webhooks"]["dead_letters"])
