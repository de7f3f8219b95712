"""What an operation needs to run: who calls, and the parts it may use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from opencams.channel.types import CreatedGroupRequest
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store


class GroupChannel(Protocol):
    """The Graph operations the domain uses (GraphClient; tests may pass another transport)."""

    async def create_group(
        self,
        phone_number_id: str,
        token: str,
        *,
        subject: str,
        description: str | None,
        join_approval_mode: str | None = None,
    ) -> CreatedGroupRequest: ...


@dataclass(frozen=True)
class Caller:
    account_id: str
    access_key_id: str
    allowlisted: bool


@dataclass(frozen=True)
class Deps:
    store: Store
    channel: GroupChannel
    secrets: SecretBox
    max_groups_per_number: int = 10_000


@dataclass(frozen=True)
class Ctx:
    caller: Caller
    deps: Deps
    request_id: str
