"""UpdateAccountWebhook and UpdatePhoneWebhook: where a space's and a number's events go, and
the account's signing secret (docs/callbacks.md#configuring).

A number's own setting overrides its space's: its HttpFlag decides whether its events are sent,
and a callback URL it leaves unset is its space's. URLs are checked like the profile-picture
fetcher checks what it fetches: https only (unless the operator allows http for development), no
credentials, and a host whose every address is public (unless private addresses are allowed).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from opencams.errors import (
    CallbackUrlInvalid,
    FetchRefused,
    InvalidParameter,
    NoAuth,
    QueueDeliveryNotSupported,
)
from opencams.groups import validation
from opencams.groups.common import require_allowlisted, resolve_number
from opencams.groups.context import Ctx
from opencams.groups.results import Done
from opencams.safefetch import FetchPolicy, check_target
from opencams.store import callbacks, tenancy
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store

MAX_URL_LENGTH = 1024


@dataclass(frozen=True)
class UrlRules:
    allow_http: bool = False  # OPENCAMS_CALLBACK_ALLOW_HTTP
    allow_private: bool = False  # OPENCAMS_CALLBACK_ALLOW_PRIVATE


@dataclass(frozen=True)
class UpdateWebhookRequest:
    cust_space_id: str
    phone_number: str | None  # None: the space's setting (UpdateAccountWebhook)
    http_flag: str | None
    queue_flag: str | None
    status_callback_url: str | None
    up_callback_url: str | None


def _flag(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("Y", "N"):
        raise InvalidParameter(name, "Valid values: Y, N.")
    return value == "Y"


async def check_url(url: str | None, rules: UrlRules, name: str) -> str | None:
    """The URL to store: None keeps the current one, "" clears it."""
    if url is None:
        return None
    url = url.strip()
    if not url:
        return ""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlInvalid(f"{name} is longer than {MAX_URL_LENGTH} characters")
    if not url.lower().startswith("https://") and not (
        rules.allow_http and url.lower().startswith("http://")
    ):
        raise CallbackUrlInvalid(f"{name} must be an https:// URL")
    try:
        await check_target(url, FetchPolicy(allow_private=rules.allow_private, noun="callback"))
    except FetchRefused as exc:
        raise CallbackUrlInvalid(f"{name}: {exc.reason}") from None
    return url


async def ensure_secret(store: Store, box: SecretBox, account_id: str) -> None:
    """Give the account a signing secret if it has none."""
    async with store.write() as tx:
        if await callbacks.secret_enc(tx, account_id) is None:
            await callbacks.put_secret(tx, account_id, box.seal(new_secret()), replace=False)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def update_webhook(ctx: Ctx, req: UpdateWebhookRequest) -> Done:
    require_allowlisted(ctx)
    rules = UrlRules(ctx.deps.callback_allow_http, ctx.deps.callback_allow_private)
    http_flag = _flag("HttpFlag", req.http_flag)
    if _flag("QueueFlag", req.queue_flag):
        raise QueueDeliveryNotSupported()
    number = ""
    if req.phone_number is not None:
        validation.phone_number(req.phone_number)
        number = (await resolve_number(ctx, req.cust_space_id, req.phone_number)).number
    else:
        async with ctx.deps.store.read() as tx:
            if not await tenancy.space_of_account(tx, ctx.caller.account_id, req.cust_space_id):
                raise NoAuth()
    status_url = await check_url(req.status_callback_url, rules, "StatusCallbackUrl")
    up_url = await check_url(req.up_callback_url, rules, "UpCallbackUrl")
    await ensure_secret(ctx.deps.store, ctx.deps.secrets, ctx.caller.account_id)
    async with ctx.deps.store.write() as tx:
        await callbacks.put_setting(
            tx,
            req.cust_space_id,
            number,
            http_flag=http_flag,
            status_callback_url=status_url,
            up_callback_url=up_url,
        )
    return Done()
