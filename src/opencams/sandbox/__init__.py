"""Built-in simulator of Meta's WhatsApp Cloud API Groups surface (a fake *Meta* over HTTP).

Separate from the rest of opencams on purpose: it imports nothing from it, so the connector is
exercised exactly as against graph.facebook.com.
"""

from .app import Simulator
from .config import SandboxConfig
from .ids import (
    decode_opaque,
    encode_opaque,
    fb_escape,
    fb_unescape,
    make_group_id,
    parse_group_id,
)
from .webhooks import serialize, sign

__all__ = [
    "SandboxConfig",
    "Simulator",
    "decode_opaque",
    "encode_opaque",
    "fb_escape",
    "fb_unescape",
    "make_group_id",
    "parse_group_id",
    "serialize",
    "sign",
]
