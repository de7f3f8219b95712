"""Fetch and check the picture behind `UpdateChatGroup`'s `ProfilePictureFile`.

The URL comes from the API caller and the server fetches it: a server-side request forgery
surface. The fetch itself (public addresses only unless `allow_private`, pinned connections,
redirects checked hop by hop, a byte cap and one deadline) is `opencams.safefetch`'s.
The image checks mirror Meta's rules
for group profile pictures (JPEG, square, at least 192 px a side, at most 5 MB) so the caller
gets a precise reason now instead of an opaque Graph error later.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

from opencams import safefetch
from opencams.errors import FetchRefused, PictureUnusable
from opencams.safefetch import FetchPolicy, Target

JPEG_CONTENT_TYPE = "image/jpeg"
_MAX_ERROR_DETAIL = 200


@dataclass(frozen=True)
class Picture:
    data: bytes  # the JPEG bytes as fetched
    width: int
    height: int
    sha256: str  # hex of data
    content_type: str  # "image/jpeg"


@dataclass(frozen=True)
class PicturePolicy:
    allow_private: bool = False  # OPENCAMS_PICTURE_FETCH_ALLOW_PRIVATE
    max_bytes: int = 5 * 1024 * 1024  # Meta: <= 5 MB
    timeout: float = 10.0  # whole fetch, seconds
    min_side: int = 192  # Meta: square, >= 192 px
    max_redirects: int = 3

    def __post_init__(self) -> None:
        # Bad values are operator configuration errors, not caller input: fail loudly at startup.
        if self.min_side <= 0:
            raise ValueError("min_side must be positive")
        self.fetch_policy()

    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy(
            allow_private=self.allow_private,
            max_bytes=self.max_bytes,
            timeout=self.timeout,
            max_redirects=self.max_redirects,
            noun="picture",
            accept=JPEG_CONTENT_TYPE,
            user_agent="opencams-picture-fetch/1",
        )


def _detail(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:_MAX_ERROR_DETAIL]


async def check_target(url: str | httpx.URL, policy: PicturePolicy) -> Target:
    """One hop's URL and address checks (opencams.safefetch), or PictureUnusable."""
    try:
        return await safefetch.check_target(url, policy.fetch_policy())
    except FetchRefused as exc:
        raise PictureUnusable(exc.reason) from None


async def fetch_picture(
    url: str, policy: PicturePolicy, *, transport: httpx.AsyncBaseTransport | None = None
) -> Picture:
    """Download `url` under `policy` and return the checked JPEG, or raise PictureUnusable.

    The fetch itself (SSRF checks, pinned addresses, byte cap, deadline) is opencams.safefetch;
    `transport` is passed to it (see there).
    """
    try:
        fetched = await safefetch.fetch(url, policy.fetch_policy(), transport=transport)
    except FetchRefused as exc:
        raise PictureUnusable(exc.reason) from None
    # Decoding is CPU work; keep it off the event loop.
    return await asyncio.to_thread(check_picture, fetched.data, policy)


# --- image checks --------------------------------------------------------------------------


def check_picture(data: bytes, policy: PicturePolicy) -> Picture:
    """A square JPEG of at least `min_side` pixels within the byte cap, or PictureUnusable."""
    if len(data) > policy.max_bytes:
        raise PictureUnusable(f"picture is larger than {policy.max_bytes} bytes")
    if not data:
        raise PictureUnusable("picture is empty")
    # Pillow is a parser of hostile bytes here: whatever it raises (OSError, SyntaxError,
    # ValueError, struct errors, decompression-bomb errors, warnings promoted to errors) means
    # "not an image we accept", so the handlers below are deliberately broad.
    try:
        # `formats` pins the decoder: identification is by content, so a PNG named .jpg fails.
        # `open` only parses the header, so a huge declared size costs nothing yet.
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            width, height = image.size
            image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PictureUnusable("picture has too many pixels to be processed safely") from None
    except UnidentifiedImageError:
        raise PictureUnusable("picture is not a JPEG image") from None
    except Exception as exc:
        raise PictureUnusable(f"picture is not a readable JPEG image ({_detail(exc)})") from None
    # Pillow only *warns* between one and two times the limit; treat that zone as a refusal too,
    # independent of how warnings are filtered in this process.
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise PictureUnusable("picture has too many pixels to be processed safely")
    if width != height:
        raise PictureUnusable(f"picture must be square, got {width}x{height} pixels")
    if width < policy.min_side:
        raise PictureUnusable(
            f"picture must be at least {policy.min_side}x{policy.min_side} pixels, "
            f"got {width}x{height}"
        )
    # JPEG's verify() checks nothing beyond the header, so a truncated or corrupt file would pass
    # and fail later at Meta with an opaque error. Decoding at 1/8 scale (libjpeg's DCT scaling)
    # exercises the whole entropy-coded stream at a 64th of the memory of a full decode.
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            image.draft("L", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except Exception as exc:
        raise PictureUnusable(f"picture is a damaged JPEG image ({_detail(exc)})") from None
    return Picture(
        data=data,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=JPEG_CONTENT_TYPE,
    )


class PictureFetcher:
    """The domain's picture source (groups.context.PictureSource): fetch_picture under one
    policy. Raises PictureUnusable."""

    def __init__(self, policy: PicturePolicy) -> None:
        self._policy = policy

    async def fetch(self, url: str) -> Picture:
        return await fetch_picture(url, self._policy)
