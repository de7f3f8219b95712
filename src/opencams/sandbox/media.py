"""Profile-picture uploads with the standard library only: multipart parsing and JPEG sizing.

python-multipart (Starlette's form parser) is not a dependency, and Pillow is not either; a
fake Meta only needs the part bytes and the dimensions from the JPEG frame header.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.message import Message

from .errors import MetaErrorAnswer

MAX_PICTURE_BYTES = 5 * 1024 * 1024
MIN_PICTURE_SIDE = 192

# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True)
class Picture:
    """A validated profile picture (JPEG, square, >= 192 px, <= 5 MB)."""

    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def _param(header: str, name: str, param: str) -> str | None:
    message = Message()
    message[name] = header
    value = message.get_param(param, header=name)
    if value is None or isinstance(value, tuple):
        return None
    return value


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Split a multipart/form-data body; raises ValueError when it is malformed."""
    boundary = _param(content_type, "content-type", "boundary")
    if not boundary:
        raise ValueError("multipart body without boundary")
    # Every delimiter is CRLF + "--" + boundary; prefixing CRLF makes the first one match too.
    pieces = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    parts: list[Part] = []
    closed = False
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            closed = True
            break
        head, sep, data = piece.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without header block")
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _param(disposition, "content-disposition", "name")
        if name is None:
            raise ValueError("multipart part without a name")
        parts.append(
            Part(
                name=name,
                filename=_param(disposition, "content-disposition", "filename"),
                content_type=headers.get("content-type"),
                data=data,
            )
        )
    if not closed:
        raise ValueError("multipart body without closing delimiter")
    return parts


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame segment, or None if not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or scan data before any frame header
            return None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            if i + 9 > len(data):
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None


def validate_picture(data: bytes) -> Picture:
    if len(data) > MAX_PICTURE_BYTES:
        raise MetaErrorAnswer(100, "The profile picture must be at most 5 MB")
    size = jpeg_size(data)
    if size is None:
        raise MetaErrorAnswer(100, "The profile picture must be an image/jpeg file")
    width, height = size
    if width != height:
        raise MetaErrorAnswer(131209, f"The profile picture must be square (got {width}x{height})")
    if width < MIN_PICTURE_SIDE:
        raise MetaErrorAnswer(
            131210, f"The profile picture must be at least 192x192 pixels (got {width}x{height})"
        )
    return Picture(sha256=hashlib.sha256(data).hexdigest(), width=width, height=height)
