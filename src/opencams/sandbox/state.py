"""In-memory model of what "Meta" knows: business numbers, groups, participants, fail rules.

Everything here is synchronous and only touched from the event loop, so no locking is needed.
The rules that change this state live in `rules.py`; this module holds data and lookups.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .ids import invite_link, make_group_id, new_group_jid, new_invite_code, new_request_id

MAX_GROUPS_PER_NUMBER = 10_000
MAX_PARTICIPANTS = 8  # excluding the business number
MAX_SUBJECT = 128
MAX_DESCRIPTION = 2048
MAX_REMOVE_PER_CALL = 8

GroupStatus = Literal["creating", "active", "failed", "deleted"]
JoinApprovalMode = Literal["auto_approve", "approval_required"]
FailMode = Literal["sync", "webhook"]

# Operation names used by fail-next (docs/simulator.md), plus `join-requests` (list/approve/reject).
Operation = Literal[
    "create",
    "get",
    "list",
    "update",
    "delete",
    "invite-link",
    "remove-participants",
    "join-requests",
    "send",
    "media",
]
OPERATIONS: tuple[str, ...] = get_args(Operation)
# Operations answered by a webhook, the only ones a `mode: webhook` failure makes sense for.
WEBHOOK_OPERATIONS = ("create", "update", "delete", "remove-participants", "send")


def now_ts() -> int:
    return int(time.time())


@dataclass
class PhoneNumber:
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str | None = None
    eligible: bool = True
    # Every group ever created on this number, in creation order (whatever its status); listing
    # filters by status so cursors (positions) stay valid when groups are deleted.
    group_ids: list[str] = field(default_factory=list)

    def dump(self) -> dict[str, Any]:
        return {
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "display_phone_number": self.display_phone_number,
            "token_bound": self.access_token is not None,
            "eligible": self.eligible,
        }


@dataclass
class User:
    """A simulated WhatsApp user. Registered users (`/control/users`) may carry the 2026
    identity fields: a username, a business-scoped user id (BSUID) and a hidden number."""

    wa_id: str  # the phone number: the simulator's key, even when hidden from the business
    profile_name: str | None = None
    username: str | None = None
    user_id: str | None = None  # BSUID, e.g. US.13491208655302741918
    parent_user_id: str | None = None  # e.g. US.ENT.11815799212886844830
    number_hidden: bool = False
    read_receipts: bool = True
    fail_next_delivery: int = 0  # business messages this user will fail to receive

    def identity(self) -> dict[str, Any]:
        """How Meta names this user in participant lists and webhooks."""
        wire: dict[str, Any] = {}
        if not self.number_hidden:
            wire["wa_id"] = self.wa_id
        if self.user_id is not None:
            wire["user_id"] = self.user_id
        if self.parent_user_id is not None:
            wire["parent_user_id"] = self.parent_user_id
        if self.username is not None:
            wire["username"] = self.username
        return wire

    def dump(self) -> dict[str, Any]:
        return {
            "wa_id": self.wa_id,
            "profile_name": self.profile_name,
            "username": self.username,
            "user_id": self.user_id,
            "parent_user_id": self.parent_user_id,
            "number_hidden": self.number_hidden,
            "read_receipts": self.read_receipts,
            "fail_next_delivery": self.fail_next_delivery,
        }


@dataclass
class JoinRequest:
    join_request_id: str
    wa_id: str
    creation_timestamp: int
    seq: int
    identity: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {
            "join_request_id": self.join_request_id,
            **(self.identity or {"wa_id": self.wa_id}),
            "creation_timestamp": self.creation_timestamp,
        }


@dataclass
class Media:
    """Media Meta holds: uploaded by the business, or sent by a member in a group."""

    media_id: str
    phone_number_id: str
    mime_type: str
    data: bytes
    filename: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def dump(self) -> dict[str, Any]:
        return {
            "id": self.media_id,
            "phone_number_id": self.phone_number_id,
            "mime_type": self.mime_type,
            "file_size": len(self.data),
            "sha256": self.sha256,
            "filename": self.filename,
        }


@dataclass
class Message:
    """A message in a group: sent by the business (`from_wa_id` None) or by a member."""

    wamid: str
    group_id: str
    type: str
    timestamp: int
    from_wa_id: str | None = None
    # Business messages: participant wa_id -> last status reported (sent, delivered, read, failed)
    statuses: dict[str, str] = field(default_factory=dict)
    status: str = "accepted"  # of the message as a whole: accepted, sent, failed

    def dump(self) -> dict[str, Any]:
        return {
            "id": self.wamid,
            "group_id": self.group_id,
            "type": self.type,
            "from": self.from_wa_id,
            "status": self.status,
            "participants": dict(self.statuses),
        }


@dataclass
class Group:
    group_id: str
    jid: str
    phone_number_id: str
    seq: int
    request_id: str  # of the create call
    subject: str
    description: str | None
    join_approval_mode: JoinApprovalMode
    status: GroupStatus = "creating"
    creation_timestamp: int = 0
    suspended: bool = False
    invite_code: str | None = None
    # wa_id -> unix seconds joined; dicts keep insertion order, so participants list stably.
    participants: dict[str, int] = field(default_factory=dict)
    # Users removed by the business may not rejoin through a link (docs/simulator.md).
    banned: set[str] = field(default_factory=set)
    join_requests: dict[str, JoinRequest] = field(default_factory=dict)  # wa_id -> pending
    picture_sha256: str | None = None
    failure: dict[str, Any] | None = None  # the error a failed create reported
    pinned: dict[str, int] = field(default_factory=dict)  # wamid -> unix seconds it expires
    last_inbound: int | None = None  # when a member last wrote (customer service window)

    @property
    def live(self) -> bool:
        """Counts against the 10,000 groups limit."""
        return self.status in ("creating", "active")

    @property
    def invite_link(self) -> str | None:
        return invite_link(self.invite_code) if self.invite_code else None

    def dump(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "phone_number_id": self.phone_number_id,
            "request_id": self.request_id,
            "status": self.status,
            "subject": self.subject,
            "description": self.description,
            "join_approval_mode": self.join_approval_mode,
            "creation_timestamp": self.creation_timestamp,
            "suspended": self.suspended,
            "invite_link": self.invite_link,
            "participants": list(self.participants),
            "banned": sorted(self.banned),
            "join_requests": [r.wire() for r in self.join_requests.values()],
            "picture_sha256": self.picture_sha256,
            "failure": self.failure,
            "pinned": list(self.pinned),
        }


@dataclass(frozen=True)
class FailRule:
    operation: str
    code: int
    mode: FailMode


class SimState:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything (the reset control); rules keep their reference to this object."""
        self.numbers: dict[str, PhoneNumber] = {}
        self.groups: dict[str, Group] = {}
        self.invite_codes: dict[str, str] = {}  # current invite code -> group id
        self.fail_rules: dict[str, deque[FailRule]] = {}
        self.users: dict[str, User] = {}  # wa_id -> registered user
        self.media: dict[str, Media] = {}
        self.messages: dict[str, Message] = {}  # wamid -> group message
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    # --- numbers -------------------------------------------------------------------------

    def register_number(
        self,
        phone_number_id: str,
        waba_id: str | None = None,
        display_phone_number: str | None = None,
        access_token: str | None = None,
    ) -> PhoneNumber:
        number = self.numbers.get(phone_number_id)
        if number is None:
            number = PhoneNumber(
                phone_number_id=phone_number_id,
                waba_id=waba_id or synthetic_waba_id(phone_number_id),
                display_phone_number=display_phone_number or phone_number_id,
            )
            self.numbers[phone_number_id] = number
        else:
            if waba_id:
                number.waba_id = waba_id
            if display_phone_number:
                number.display_phone_number = display_phone_number
        if access_token:
            number.access_token = access_token
        return number

    def authorize(self, number: PhoneNumber, token: str) -> bool:
        """The first token seen for a number binds to it; any other token is refused later."""
        if number.access_token is None:
            number.access_token = token
            return True
        return number.access_token == token

    # --- groups --------------------------------------------------------------------------

    def new_group(
        self,
        number: PhoneNumber,
        subject: str,
        description: str | None = None,
        join_approval_mode: JoinApprovalMode = "auto_approve",
        request_id: str | None = None,
    ) -> Group:
        """A group in status `creating` (not visible through Graph until activated)."""
        while True:
            jid = new_group_jid()
            group_id = make_group_id(number.display_phone_number, jid)
            if group_id not in self.groups:
                break
        group = Group(
            group_id=group_id,
            jid=jid,
            phone_number_id=number.phone_number_id,
            seq=len(number.group_ids),
            request_id=request_id or new_request_id(),
            subject=subject,
            description=description,
            join_approval_mode=join_approval_mode,
        )
        self.groups[group_id] = group
        number.group_ids.append(group_id)
        return group

    def activate(self, group: Group) -> None:
        group.status = "active"
        group.creation_timestamp = now_ts()
        self.set_invite_code(group, new_invite_code())

    def set_invite_code(self, group: Group, code: str | None) -> None:
        if group.invite_code is not None:
            self.invite_codes.pop(group.invite_code, None)
        group.invite_code = code
        if code is not None:
            self.invite_codes[code] = group.group_id

    def seed_groups(
        self, phone_number_id: str, count: int, subject_prefix: str = "seed"
    ) -> list[Group]:
        """Test helper: `count` active groups at once, without webhooks or HTTP calls."""
        number = self.register_number(phone_number_id)
        created = []
        for i in range(count):
            group = self.new_group(number, f"{subject_prefix} {i}")
            self.activate(group)
            created.append(group)
        return created

    def live_group_count(self, number: PhoneNumber) -> int:
        return sum(1 for gid in number.group_ids if self.groups[gid].live)

    def active_group(self, group_id: str) -> Group | None:
        group = self.groups.get(group_id)
        if group is None or group.status != "active":
            return None
        return group

    def group_by_invite(self, code: str) -> Group | None:
        group_id = self.invite_codes.get(code)
        return self.active_group(group_id) if group_id else None

    # --- users ---------------------------------------------------------------------------

    def user(self, wa_id: str) -> User:
        """The registered user, or a plain one (wa_id only, the pre-2026 payloads)."""
        return self.users.get(wa_id) or User(wa_id)

    def identity(self, wa_id: str) -> dict[str, Any]:
        return self.user(wa_id).identity()

    def wa_id_of_bsuid(self, user_id: str) -> str | None:
        for user in self.users.values():
            if user.user_id == user_id:
                return user.wa_id
        return None

    # --- fail-next -----------------------------------------------------------------------

    def add_fail_rule(self, rule: FailRule) -> None:
        self.fail_rules.setdefault(rule.operation, deque()).append(rule)

    def take_fail_rule(self, operation: str, mode: FailMode) -> FailRule | None:
        """Consume the oldest pending rule of `operation` if it has this mode."""
        rules = self.fail_rules.get(operation)
        if not rules or rules[0].mode != mode:
            return None
        return rules.popleft()

    def dump(self) -> dict[str, Any]:
        return {
            "numbers": [n.dump() for n in self.numbers.values()],
            "groups": [g.dump() for g in self.groups.values()],
            "users": [u.dump() for u in self.users.values()],
            "media": [m.dump() for m in self.media.values()],
            "messages": [m.dump() for m in self.messages.values()],
            "fail_next": [
                {"operation": r.operation, "code": r.code, "mode": r.mode}
                for rules in self.fail_rules.values()
                for r in rules
            ],
        }


def synthetic_waba_id(phone_number_id: str) -> str:
    """A stable 15-digit WABA id derived from the number, for auto-registered numbers."""
    digest = int.from_bytes(hashlib.sha256(phone_number_id.encode()).digest()[:8], "big")
    return str(100_000_000_000_000 + digest % 900_000_000_000_000)
