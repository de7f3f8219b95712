"""What an operation needs to run: who calls, and the parts it may use (as Protocols, so that the
domain imports no HTTP client)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from opencams.channel.types import (
    CreatedGroupRequest,
    GroupInfo,
    GroupPage,
    JoinRequestOutcome,
    JoinRequestPage,
    MediaInfo,
)
from opencams.identity import Caller
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store


class GroupChannel(Protocol):
    """The Graph operations the domain uses (`channel.graph.GraphClient`)."""

    async def create_group(
        self,
        phone_number_id: str,
        token: str,
        *,
        subject: str,
        description: str | None,
        join_approval_mode: str | None = None,
    ) -> CreatedGroupRequest: ...

    async def update_group(
        self,
        group_id: str,
        token: str,
        *,
        subject: str | None = None,
        description: str | None = None,
        picture: bytes | None = None,
        join_approval_mode: str | None = None,
    ) -> str | None: ...

    async def delete_group(self, group_id: str, token: str) -> str | None: ...

    async def get_invite_link(self, group_id: str, token: str) -> str | None: ...

    async def reset_invite_link(self, group_id: str, token: str) -> str: ...

    async def delete_invite_link(self, group_id: str, token: str) -> None: ...

    async def remove_participants(
        self, group_id: str, token: str, users: list[str]
    ) -> str | None: ...

    async def list_groups(
        self, phone_number_id: str, token: str, *, limit: int = 100, after: str | None = None
    ) -> GroupPage: ...

    async def get_group(self, group_id: str, token: str) -> GroupInfo: ...

    async def list_join_requests(
        self, group_id: str, token: str, *, limit: int = 100, after: str | None = None
    ) -> JoinRequestPage: ...

    async def approve_join_requests(
        self, group_id: str, token: str, join_request_ids: list[str]
    ) -> JoinRequestOutcome: ...

    async def reject_join_requests(
        self, group_id: str, token: str, join_request_ids: list[str]
    ) -> JoinRequestOutcome: ...

    async def send_message(
        self, phone_number_id: str, token: str, payload: dict[str, Any]
    ) -> str: ...

    async def get_media(self, media_id: str, token: str) -> MediaInfo: ...

    async def download_media(self, info: MediaInfo, token: str, *, max_bytes: int) -> bytes: ...


class FetchedPicture(Protocol):
    @property
    def data(self) -> bytes: ...

    @property
    def sha256(self) -> str: ...


class PictureSource(Protocol):
    """Fetches and checks a profile picture; raises PictureUnusable."""

    async def fetch(self, url: str) -> FetchedPicture: ...


@dataclass(frozen=True)
class Deps:
    store: Store
    channel: GroupChannel
    secrets: SecretBox
    pictures: PictureSource | None = None
    max_groups_per_number: int = 10_000
    # Callback URLs (callbacks.settings): http:// and private addresses, for development.
    callback_allow_http: bool = False
    callback_allow_private: bool = False
    # Group messages (docs/messages.md): where customers fetch inbound media (signed URLs sealed
    # with `media_tokens`, valid `media_url_seconds`), and when an interrupted send is settled.
    media_tokens: SecretBox | None = None
    public_url: str = "http://127.0.0.1:8080"
    media_url_seconds: int = 3600
    sending_timeout_seconds: float = 120.0


@dataclass(frozen=True)
class Ctx:
    caller: Caller
    deps: Deps
    request_id: str
