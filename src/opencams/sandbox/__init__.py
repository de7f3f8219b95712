"""Built-in simulator of Meta's WhatsApp Cloud API Groups surface (a fake *Meta* over HTTP).

It imports nothing from the rest of opencams on purpose: the connector talks to it exactly as
it would to graph.facebook.com. Under the simulator's base URL:

Graph (`Authorization: Bearer <token>`; any `v<major>.<minor>` version segment):
    POST/GET        /graph/{v}/{phone_number_id}/groups       create (async) / list (cursors)
    GET/POST/DELETE /graph/{v}/{group_id}                     info (?fields=) / settings / delete
    GET/POST/DELETE /graph/{v}/{group_id}/invite_link         current / reset / revoke
    DELETE          /graph/{v}/{group_id}/participants        remove (async, bans from rejoining)
    GET/POST/DELETE /graph/{v}/{group_id}/join_requests       list / approve / reject
    POST            /graph/{v}/{phone_number_id}/messages     group messages (statuses by webhook)
    POST            /graph/{v}/{phone_number_id}/media        upload (multipart)
    GET/DELETE      /graph/{v}/{media_id}                     media info (url) / delete
    GET             /lookaside/whatsapp_business/attachments/ media download (with the token)

Test controls (JSON in and out, 4xx `{"error": ...}` when refused), all POST unless noted:
    /control/numbers, /control/eligible, /control/fail-next, /control/tap-link,
    /control/cancel-request, /control/leave, /control/join-approval, /control/suspend,
    /control/unsuspend, /control/users, /control/member-message, /control/fail-next-delivery,
    /control/webhooks/{hold,release,reorder,drop,duplicate,flush,redeliver,callback,verify},
    GET /control/state, /control/reset
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
