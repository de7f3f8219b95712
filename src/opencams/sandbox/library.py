"""Media Meta holds: uploads (`POST /{phone-number-id}/media`), `GET /{media-id}`, downloads,
and media the business sends by `link`, which Meta fetches itself.

Types and size limits are Meta's for Cloud API media (docs/simulator.md, Media): a fetch by link
follows opencams.safefetch's rules (public addresses only unless `media_fetch_allow_private`).
"""

from __future__ import annotations

from dataclasses import dataclass

from opencams import safefetch
from opencams.errors import FetchRefused

from .errors import MetaErrorAnswer
from .ids import new_media_id
from .state import Media, SimState

KB = 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class MediaKind:
    max_bytes: int
    mime_types: frozenset[str]


MEDIA_KINDS: dict[str, MediaKind] = {
    "audio": MediaKind(
        16 * MB,
        frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}),
    ),
    "document": MediaKind(
        100 * MB,
        frozenset(
            {
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
    ),
    "image": MediaKind(5 * MB, frozenset({"image/jpeg", "image/png"})),
    # Meta: 100 KB for a static sticker, 500 KB for an animated one; a fake Meta cannot tell
    # them apart without decoding WebP, so it allows the larger.
    "sticker": MediaKind(500 * KB, frozenset({"image/webp"})),
    "video": MediaKind(16 * MB, frozenset({"video/mp4", "video/3gpp"})),
}
MAX_UPLOAD_BYTES = max(kind.max_bytes for kind in MEDIA_KINDS.values())


def kind_of(mime_type: str) -> str | None:
    """The media kind a MIME type is uploaded as (`image/webp` is a sticker)."""
    for name, kind in MEDIA_KINDS.items():
        if mime_type in kind.mime_types:
            return name
    return None


class Library:
    def __init__(self, state: SimState, *, allow_private: bool, timeout: float = 10.0) -> None:
        self.state = state
        self.allow_private = allow_private
        self.timeout = timeout

    def upload(
        self, phone_number_id: str, data: bytes, mime_type: str, filename: str | None
    ) -> Media:
        kind = kind_of(mime_type)
        if kind is None:
            raise MetaErrorAnswer(131053, f"Param type {mime_type!r} is not a supported media type")
        limit = MEDIA_KINDS[kind].max_bytes
        if not data:
            raise MetaErrorAnswer(131053, "The uploaded file is empty")
        if len(data) > limit:
            raise MetaErrorAnswer(
                131053, f"{kind} media must be at most {limit} bytes (got {len(data)})"
            )
        return self.store(phone_number_id, data, mime_type, filename)

    def store(
        self, phone_number_id: str, data: bytes, mime_type: str, filename: str | None
    ) -> Media:
        while True:
            media_id = new_media_id()
            if media_id not in self.state.media:
                break
        media = Media(media_id, phone_number_id, mime_type, data, filename)
        self.state.media[media_id] = media
        return media

    def owned(self, media_id: str, phone_number_id: str) -> Media | None:
        media = self.state.media.get(media_id)
        if media is None or media.phone_number_id != phone_number_id:
            return None
        return media

    async def fetch_link(self, kind: str, url: str) -> tuple[bytes, str] | str:
        """Meta fetching media sent by link: (bytes, MIME type), or why it failed."""
        limit = MEDIA_KINDS[kind].max_bytes
        policy = safefetch.FetchPolicy(
            allow_private=self.allow_private,
            max_bytes=limit,
            timeout=self.timeout,
            noun="media",
            user_agent="facebookexternalhit/1.1",
        )
        try:
            fetched = await safefetch.fetch(url, policy)
        except FetchRefused as exc:
            return exc.reason
        mime_type = fetched.content_type or ""
        if mime_type not in MEDIA_KINDS[kind].mime_types:
            return f"media URL served {mime_type or 'no content type'}, not a supported {kind} type"
        if not fetched.data:
            return "media URL served an empty body"
        return fetched.data, mime_type
